// Package message holds what mailgate knows about RFC 5322 messages: a spool that
// takes a message in as it streams (normalizing line endings and hashing it),
// and a single-pass parser that computes, once at delivery, everything the front
// ends later need without reading the body again: the IMAP ENVELOPE and
// BODYSTRUCTURE, listing fields, a preview and text for search.
package message

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// ErrTooLarge is returned by a Spool written past its limit.
var ErrTooLarge = errors.New("message exceeds the size limit")

// memLimit is how much of a message a Spool keeps in memory before it moves the
// message to a temporary file.
const memLimit = 1 << 20

// Spool holds one incoming message. Writes are normalized to CRLF line endings
// (a bare LF or a bare CR becomes CRLF: IMAP and POP3 need CRLF, and a lone CR or
// LF must never be able to end a line where another server would not) and hashed.
// Up to 1 MiB stays in memory; beyond that the message goes to a temporary file,
// so memory stays flat however large the message.
type Spool struct {
	dir   string
	limit int64
	mem   bytes.Buffer
	file  *os.File
	size  int64
	sum   hash.Hash
	cr    bool // the last byte written was a CR not yet known to precede LF
	err   error
	w     []byte // scratch for normalization
}

// NewSpool returns an empty spool that refuses to grow past limit bytes (0: no
// limit). Temporary files go in dir ("" for the system default).
func NewSpool(dir string, limit int64) *Spool {
	return &Spool{dir: dir, limit: limit, sum: sha256.New()}
}

// Write adds bytes, normalizing line endings.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	out := s.w[:0]
	for _, c := range p {
		switch {
		case s.cr && c == '\n':
			out = append(out, '\n')
			s.cr = false
			continue
		case s.cr:
			out = append(out, '\n') // a bare CR ends a line
			s.cr = false
		}
		switch c {
		case '\r':
			out = append(out, '\r')
			s.cr = true
		case '\n':
			out = append(out, '\r', '\n') // a bare LF ends a line
		default:
			out = append(out, c)
		}
	}
	s.w = out
	if err := s.put(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteString adds a string (trace header fields, for instance).
func (s *Spool) WriteString(v string) (int, error) { return s.Write([]byte(v)) }

func (s *Spool) put(b []byte) error {
	if s.limit > 0 && s.size+int64(len(b)) > s.limit {
		s.err = ErrTooLarge
		return s.err
	}
	s.sum.Write(b)
	s.size += int64(len(b))
	if s.file == nil && s.mem.Len()+len(b) > memLimit {
		f, err := os.CreateTemp(s.dir, "mailgate-spool-*")
		if err != nil {
			s.err = fmt.Errorf("spool to disk: %w", err)
			return s.err
		}
		// The name is not needed again: unlink now so nothing is left behind
		// even if the process dies.
		os.Remove(f.Name())
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			f.Close()
			s.err = fmt.Errorf("spool to disk: %w", err)
			return s.err
		}
		s.mem = bytes.Buffer{}
		s.file = f
	}
	if s.file != nil {
		if _, err := s.file.Write(b); err != nil {
			s.err = fmt.Errorf("spool to disk: %w", err)
			return s.err
		}
		return nil
	}
	s.mem.Write(b)
	return nil
}

// Finish ends the message: a trailing bare CR becomes CRLF. The spool must not be
// written to afterwards.
func (s *Spool) Finish() error {
	if s.err != nil {
		return s.err
	}
	if s.cr {
		s.cr = false
		return s.put([]byte{'\n'})
	}
	return nil
}

// Size is the number of bytes held.
func (s *Spool) Size() int64 { return s.size }

// SHA256 is the digest of the bytes held.
func (s *Spool) SHA256() []byte { return s.sum.Sum(nil) }

// Reader returns a new reader of the whole message; each call starts over.
func (s *Spool) Reader() io.Reader {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.size)
	}
	return bytes.NewReader(s.mem.Bytes())
}

// Close releases the temporary file, if any.
func (s *Spool) Close() error {
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		return err
	}
	return nil
}
