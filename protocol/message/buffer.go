package message

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
)

// Buffer holds binary data (an attachment on its way into a message) as it
// streams in: up to 1 MiB in memory, the rest in an unlinked temporary file, so
// memory stays flat however large the data. Unlike a Spool it keeps the bytes as
// they are. Once written, it is a Source.
type Buffer struct {
	dir   string
	limit int64
	mem   bytes.Buffer
	file  *os.File
	size  int64
	sum   hash.Hash
	err   error
}

// NewBuffer returns an empty buffer that refuses to grow past limit bytes (0: no
// limit) with ErrTooLarge. Temporary files go in dir ("" for the system default).
func NewBuffer(dir string, limit int64) *Buffer {
	return &Buffer{dir: dir, limit: limit, sum: sha256.New()}
}

// Write adds bytes.
func (b *Buffer) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.limit > 0 && b.size+int64(len(p)) > b.limit {
		b.err = ErrTooLarge
		return 0, b.err
	}
	b.sum.Write(p)
	b.size += int64(len(p))
	if b.file == nil && b.mem.Len()+len(p) > memLimit {
		f, err := os.CreateTemp(b.dir, "mailgate-part-*")
		if err != nil {
			b.err = fmt.Errorf("buffer to disk: %w", err)
			return 0, b.err
		}
		os.Remove(f.Name()) // nothing is left behind, even if the process dies
		if _, err := f.Write(b.mem.Bytes()); err != nil {
			f.Close()
			b.err = fmt.Errorf("buffer to disk: %w", err)
			return 0, b.err
		}
		b.mem = bytes.Buffer{}
		b.file = f
	}
	if b.file != nil {
		if _, err := b.file.Write(p); err != nil {
			b.err = fmt.Errorf("buffer to disk: %w", err)
			return 0, b.err
		}
		return len(p), nil
	}
	b.mem.Write(p)
	return len(p), nil
}

// Size is the number of bytes held.
func (b *Buffer) Size() int64 { return b.size }

// SHA256 is the digest of the bytes held.
func (b *Buffer) SHA256() []byte { return b.sum.Sum(nil) }

// Reader returns a new reader of all the bytes; each call starts over.
func (b *Buffer) Reader() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return bytes.NewReader(b.mem.Bytes())
}

// Close releases the temporary file, if any.
func (b *Buffer) Close() error {
	b.mem = bytes.Buffer{}
	if b.file != nil {
		err := b.file.Close()
		b.file = nil
		return err
	}
	return nil
}
