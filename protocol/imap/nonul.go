package imap

import (
	"bytes"
	"io"
)

// A message is stored as it came, NUL bytes included, but an IMAP literal may
// not hold NUL (RFC 9051 4.3: CHAR8 excludes it; only a literal8, in answer to
// BINARY, may). So BODY[] and RFC822 sections are sent with each NUL as 0x80,
// as Dovecot does: the octet count, and so every partial range and size the
// client was told, stays the same. BINARY[] sends the octets unchanged.

// nulTo80 is what a NUL becomes in a BODY section.
const nulTo80 = 0x80

// noNUL writes what it is given to w with every NUL replaced.
type noNUL struct {
	w   io.WriteCloser
	buf []byte
}

func (n *noNUL) Write(p []byte) (int, error) {
	i := bytes.IndexByte(p, 0)
	if i < 0 {
		return n.w.Write(p)
	}
	// p may be the reader's own buffer (a cached chunk): never change it.
	n.buf = append(n.buf[:0], p...)
	for b := n.buf[i:]; ; {
		b[0] = nulTo80
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			break
		}
		b = b[j:]
	}
	if _, err := n.w.Write(n.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (n *noNUL) Close() error { return n.w.Close() }
