package pop3

import (
	"bufio"
	"bytes"
)

// dotWriter writes the body of a multi-line reply (RFC 1939 §3): a line that
// starts with "." gets one more, a bare LF goes out as CRLF, and Close ends the
// reply with ".CRLF" after a line break. It gives the same bytes as
// net/textproto's DotWriter (FuzzDotWriter holds it to that), but copies runs
// of bytes between line breaks instead of one byte at a time, which made
// textproto's writer the largest cost of RETR; and Close does not flush, so
// that pipelined replies still go out together.
type dotWriter struct {
	w     *bufio.Writer
	state dotState
	err   error
}

type dotState uint8

const (
	dotBegin     dotState = iota // nothing written yet
	dotBeginLine                 // at the start of a line
	dotData                      // inside a line
	dotCR                        // just after a CR
)

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w} }

func (d *dotWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	for len(p) > 0 && d.err == nil {
		switch d.state {
		case dotBegin, dotBeginLine:
			d.state = dotData
			if p[0] == '.' {
				d.err = d.w.WriteByte('.')
			}
		case dotCR:
			// As textproto does: the byte after a CR is plain data, even a CR.
			d.state = dotData
			if p[0] == '\n' {
				d.state = dotBeginLine
			}
			d.err = d.w.WriteByte(p[0])
			p = p[1:]
			continue
		}
		i := indexCRorLF(p)
		if i < 0 {
			_, d.err = d.w.Write(p)
			break
		}
		if _, d.err = d.w.Write(p[:i]); d.err != nil {
			break
		}
		if p[i] == '\r' {
			d.err = d.w.WriteByte('\r')
			d.state = dotCR
		} else {
			_, d.err = d.w.WriteString("\r\n")
			d.state = dotBeginLine
		}
		p = p[i+1:]
	}
	if d.err != nil {
		return 0, d.err
	}
	return n, nil
}

// indexCRorLF finds the first CR or LF: two vectorised scans beat one
// byte-by-byte scan for both.
func indexCRorLF(p []byte) int {
	lf := bytes.IndexByte(p, '\n')
	end := lf
	if lf < 0 {
		end = len(p)
	}
	if cr := bytes.IndexByte(p[:end], '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// Close ends the reply: the line break the body may lack, then ".CRLF". An
// empty body is the terminating line alone.
func (d *dotWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	var end string
	switch d.state {
	case dotBegin, dotBeginLine:
		end = ".\r\n"
	case dotCR:
		end = "\n.\r\n"
	default:
		end = "\r\n.\r\n"
	}
	_, d.err = d.w.WriteString(end)
	return d.err
}
