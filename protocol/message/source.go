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
	return io.MultiReader(strings.NewReader(p.prefix), p.src.Reader())
}

func (p prefixed) Size() int64 { return int64(len(p.prefix)) + p.src.Size() }

// Bytes is a Source over a byte slice.
type Bytes []byte

func (b Bytes) Reader() io.Reader { return strings.NewReader(string(b)) }
func (b Bytes) Size() int64       { return int64(len(b)) }
