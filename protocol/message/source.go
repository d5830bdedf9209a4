package message

import (
	"io"
	"strings"
)

// Source is a message that can be read from the start any number of times.
type Source interface {
	Reader() io.Reader
	Size() int64
}

// WithPrefix returns src with header fields (CRLF-terminated lines) in front,
// without copying src: the Return-Path of a local delivery, for instance.
func WithPrefix(prefix string, src Source) Source {
	if prefix == "" {
		return src
	}
	return prefixed{prefix: prefix, src: src}
}

type prefixed struct {
	prefix string
	src    Source
}

func (p prefixed) Reader() io.Reader {
	return &prefixReader{prefix: p.prefix, r: p.src.Reader()}
}

// prefixReader reads prefix, then r. Unlike io.MultiReader its WriteTo needs no
// buffer of its own when r has a WriteTo (as spooled messages do).
type prefixReader struct {
	prefix string
	r      io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if p.prefix != "" {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.r.Read(b)
}

func (p *prefixReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if p.prefix != "" {
		n, err := io.WriteString(w, p.prefix)
		total += int64(n)
		p.prefix = p.prefix[n:]
		if err != nil {
			return total, err
		}
	}
	n, err := io.Copy(w, p.r)
	return total + n, err
}

func (p prefixed) Size() int64 { return int64(len(p.prefix)) + p.src.Size() }

// Bytes is a Source over a byte slice.
type Bytes []byte

func (b Bytes) Reader() io.Reader { return strings.NewReader(string(b)) }
func (b Bytes) Size() int64       { return int64(len(b)) }
