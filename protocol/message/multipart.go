package message

// Splitting a multipart body into its parts (RFC 2046 §5.1.1).
//
// The body of a multipart is a preamble, then parts, each opened by a delimiter
// line, then a close delimiter line and an epilogue:
//
//	delimiter       := CRLF "--" boundary    ; the CRLF belongs to it, not to the part before
//	delimiter line  := delimiter *(SP / HTAB) CRLF
//	close delimiter := delimiter "--" *(SP / HTAB) (CRLF / end of data)
//	part            := header CRLF body
//
// The preamble and the epilogue are ignored. The first delimiter line needs no
// CRLF before it: any line of the preamble that is one opens the first part.
// Nor does a delimiter that follows a part's header at once, its body empty.
//
// The reader finds the same parts, with the same octets, as go-message's
// multipart reader (which go-imap's FETCH BODY[n] and BODYSTRUCTURE use), so
// that the structure Parse computes matches, part for part, what a FETCH
// returns. It was written from the RFC; where that reader is more lenient than
// the RFC, or stricter, the behaviour was matched as observed through its public
// API, and multipart_test.go compares the two on edge cases, generated bodies
// and fuzzed ones:
//
//   - Lines may end in a bare LF, if the first delimiter line does: from then on
//     LF is the line end, and a CR before it is data.
//   - "--boundary" ends a part when followed by padding, a line end, a '-' or
//     the end of the data; whatever follows on that line must then make a
//     delimiter line or a close delimiter, or the multipart ends there.
//   - A part whose data ends before a delimiter ends there, without the octets
//     that might have begun one; the multipart ends with it.
//   - No line where a delimiter may be (in the preamble, or between parts) may
//     be longer than the look-ahead window (window octets, line end included):
//     the multipart ends at such a line.
//
// Besides the parts, it gives what the limits on parts need: where each part
// begins in the multipart body, and the rest of a multipart as raw octets, up to
// its close delimiter, found without parsing any part's header, so that nothing
// is allocated per part.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-message/textproto"
)

// window is the look-ahead of a multipart reader: the longest line it reads
// where a delimiter may be, and room enough for a delimiter and the octet after
// it however long a boundary RFC 2046 allows (70 octets).
const window = 4096

// How a part's content ends, once known.
type contentEnd int8

const (
	endUnknown contentEnd = iota // not found yet
	endDash                      // "--boundary" at the very start of the content
	endLine                      // a line end, then "--boundary"
	endCut                       // the data ended (or could not be read) first
)

// What a line where a delimiter may be turns out to be.
type lineKind int8

const (
	lineOther lineKind = iota
	lineOpen           // a delimiter line: a part follows
	lineClose          // the close delimiter
)

var errMalformedMultipart = errors.New("multipart: no delimiter where one should be")

// multipartReader reads the parts of one multipart body in order: NextPart (or
// NextRaw, or Rest for all that is left) opens each. It is not safe for
// concurrent use.
type multipartReader struct {
	src source
	br  *bufio.Reader

	dash     []byte // "--" boundary
	lineDash []byte // the line end, then "--" boundary: CRLF--boundary, or LF--boundary
	opened   int    // parts opened so far
	err      error  // why the multipart has ended (io.EOF: at its close delimiter), once it has

	// The current part: its position, and what is known of its content (the
	// body, or with NextRaw the header and body) from the next unread octet on.
	open  bool
	start int64      // position of the part's first octet in the multipart body
	fresh bool       // no octet of the content read yet: a delimiter may begin at once
	ready int        // octets at the front of the buffer known to be content
	end   contentEnd // what follows those octets, if known
	part  *mimePart  // the part NextPart returned, if it is the current one
}

// source counts the octets read from the multipart body and, once its reader
// has failed or ended, does not call it again.
type source struct {
	r   io.Reader
	n   int64
	err error
}

func (s *source) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	s.err = err
	return n, err
}

func newMultipartReader(r io.Reader, boundary string) *multipartReader {
	mr := &multipartReader{
		dash:     []byte("--" + boundary),
		lineDash: []byte("\r\n--" + boundary),
	}
	mr.src.r = r
	mr.br = bufio.NewReaderSize(&mr.src, window)
	return mr
}

// pos is the position in the multipart body of the next octet to be read.
func (mr *multipartReader) pos() int64 { return mr.src.n - int64(mr.br.Buffered()) }

// lineEnd is the line end of this body: CRLF, or LF.
func (mr *multipartReader) lineEnd() []byte { return mr.lineDash[:len(mr.lineDash)-len(mr.dash)] }

// mimePart is a part NextPart opened: its header, then through Read the octets of
// its body as they are (no transfer encoding undone).
type mimePart struct {
	Header textproto.Header
	mr     *multipartReader
}

// Read reads the part's body. It ends with io.EOF at the delimiter that ends the
// part, io.ErrUnexpectedEOF if the data ends first, or the error of a failing
// reader. Once the next part is opened, the body of this one has been skipped.
func (p *mimePart) Read(b []byte) (int, error) {
	if p.mr.part != p {
		return 0, io.EOF
	}
	return p.mr.content(b)
}

// NextPart opens the next part and reads its header. At the close delimiter it
// returns io.EOF; at anything else that ends the multipart (a header that cannot
// be read, a line where a delimiter should be, the end of the data), an error.
func (mr *multipartReader) NextPart() (*mimePart, error) {
	if err := mr.next(); err != nil {
		return nil, err
	}
	hdr, err := textproto.ReadHeader(mr.br)
	if err != nil {
		mr.open = false
		mr.err = fmt.Errorf("multipart: part header: %w", err)
		return nil, mr.err
	}
	mr.part = &mimePart{Header: hdr, mr: mr}
	return mr.part, nil
}

// NextRaw opens the next part as NextPart does, without reading its header: the
// part's content is its header and body, for Rest to read. It reports whether
// there is a next part.
func (mr *multipartReader) NextRaw() bool {
	return mr.next() == nil
}

// next skips what is left of the current part, or the preamble before the
// first, and reads the delimiter line that opens the next part.
func (mr *multipartReader) next() error {
	if mr.err != nil {
		return mr.err
	}
	if mr.opened == 0 {
		return mr.preamble()
	}
	for mr.skip() {
	}
	_, _, err := mr.delimiter()
	return err
}

// preamble skips the lines before the first delimiter line, and opens the part
// it begins.
func (mr *multipartReader) preamble() error {
	for {
		line, err := mr.br.ReadSlice('\n')
		switch mr.kind(line, err) {
		case lineOpen:
			mr.openPart()
			return nil
		case lineClose:
			mr.err = io.EOF
			return mr.err
		}
		if err != nil {
			mr.err = fmt.Errorf("multipart: no delimiter line: %w", readFailure(err))
			return mr.err
		}
	}
}

// delimiter reads what ends the current part's content, once that is known to
// be a delimiter, and opens the part it begins if it is a delimiter line. It
// returns the octets read: the line end before the delimiter (their count, as
// they are lineEnd's), and the rest of its line, valid until mr.br is next read.
func (mr *multipartReader) delimiter() (lineEnd int, line []byte, err error) {
	mr.open, mr.part = false, nil
	switch mr.end {
	case endCut:
		mr.err = mr.cutError()
		return 0, nil, mr.err
	case endLine:
		lineEnd = len(mr.lineEnd())
		mr.br.Discard(lineEnd) //nolint:errcheck // buffered: it was found there
	}
	line, rerr := mr.br.ReadSlice('\n')
	switch mr.kind(line, rerr) {
	case lineOpen:
		mr.openPart()
		return lineEnd, line, nil
	case lineClose:
		mr.err = io.EOF
	default:
		if rerr != nil {
			mr.err = fmt.Errorf("multipart: delimiter line: %w", readFailure(rerr))
		} else {
			mr.err = errMalformedMultipart
		}
	}
	return 0, nil, mr.err
}

func (mr *multipartReader) openPart() {
	mr.opened++
	mr.open, mr.fresh, mr.ready, mr.end = true, true, 0, endUnknown
	mr.start = mr.pos()
}

// kind tells a delimiter line from a close delimiter and from any other line,
// given what reading the line returned. A line that did not fit the window, or
// that a failing reader cut short, is no delimiter. The first delimiter line
// sets the line end of the body.
func (mr *multipartReader) kind(line []byte, err error) lineKind {
	if (err != nil && err != io.EOF) || !bytes.HasPrefix(line, mr.dash) {
		return lineOther
	}
	after := line[len(mr.dash):]
	if err == nil { // the whole line, its line end included
		tail := skipPadding(after)
		if bytes.Equal(tail, mr.lineEnd()) {
			return lineOpen
		}
		if mr.opened == 0 && len(tail) == 1 && tail[0] == '\n' {
			mr.lineDash = mr.lineDash[1:] // lines end in LF alone
			return lineOpen
		}
	}
	if bytes.HasPrefix(after, []byte("--")) {
		// Complete, or at the end of the data without its line end.
		if tail := skipPadding(after[2:]); len(tail) == 0 || bytes.Equal(tail, mr.lineEnd()) {
			return lineClose
		}
	}
	return lineOther
}

// skipPadding drops the transport padding (spaces and tabs) at the start of b.
func skipPadding(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// readFailure is the error a line could not be read for: the data ended, or the
// line is longer than the window, or the reader failed.
func readFailure(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// cutError is what reading content that the data ended first returns.
func (mr *multipartReader) cutError() error {
	if mr.src.err == nil || mr.src.err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return mr.src.err
}

// content reads the current part's content. It returns io.EOF once the content
// has ended at a delimiter, and cutError if the data ended first.
func (mr *multipartReader) content(p []byte) (int, error) {
	if !mr.open {
		return 0, io.EOF
	}
	mr.find()
	if mr.ready == 0 {
		if mr.end == endCut {
			return 0, mr.cutError()
		}
		return 0, io.EOF
	}
	if len(p) > mr.ready {
		p = p[:mr.ready]
	}
	n, _ := mr.br.Read(p) // from the buffer: the octets are there
	mr.ready -= n
	if n > 0 {
		mr.fresh = false
	}
	return n, nil
}

// skip drops the content octets known to be there, and reports whether there
// may be more.
func (mr *multipartReader) skip() bool {
	mr.find()
	if mr.ready == 0 {
		return false
	}
	mr.br.Discard(mr.ready) //nolint:errcheck // buffered
	mr.ready, mr.fresh = 0, false
	return true
}

// find makes the next octets of the content known: some octets (ready), or what
// ends the content (end), reading more data as long as neither can be told. The
// window holds all that is decided on: a delimiter and the octet after it fit.
func (mr *multipartReader) find() {
	for mr.ready == 0 && mr.end == endUnknown {
		w, _ := mr.br.Peek(mr.br.Buffered())
		last := mr.src.err != nil || len(w) == mr.br.Size() // w cannot grow
		mr.ready, mr.end = mr.scan(w, last)
		if mr.ready > 0 || mr.end != endUnknown {
			return
		}
		if last {
			// What is left may be the start of a delimiter the data cut
			// short: it is not content.
			mr.end = endCut
			return
		}
		if _, err := mr.br.Peek(len(w) + 1); err != nil && mr.src.err == nil {
			mr.src.err = err // a reader that makes no progress: it ends the data
		}
	}
}

// scan reads w, the next octets of the current part's content, and returns how
// many of them, from the start, are content for certain, and whether a
// delimiter follows those. It returns 0 and endUnknown when it needs more
// octets to tell; last says that no more will come.
func (mr *multipartReader) scan(w []byte, last bool) (int, contentEnd) {
	from := 0
	if mr.fresh {
		// Nothing read yet: the content may be empty, "--boundary" at once.
		k := min(len(w), len(mr.dash))
		if bytes.Equal(w[:k], mr.dash[:k]) {
			if k < len(mr.dash) {
				return 0, endUnknown
			}
			switch mr.ends(w[k:], last) {
			case verdictYes:
				return 0, endDash
			case verdictWait:
				return 0, endUnknown
			}
			from = k // "--boundary" begins a longer word: content
		}
	}
	// Elsewhere a delimiter begins with a line end. Look at each place one
	// begins: the first octet of the line end.
	for i := from; i < len(w); {
		j := bytes.IndexByte(w[i:], mr.lineDash[0])
		if j < 0 {
			break
		}
		i += j
		rest := w[i:]
		if len(rest) < len(mr.lineDash) {
			if bytes.HasPrefix(mr.lineDash, rest) {
				return i, endUnknown // may be a delimiter that w cuts short
			}
			i++
			continue
		}
		if !bytes.HasPrefix(rest, mr.lineDash) {
			i++
			continue
		}
		switch mr.ends(rest[len(mr.lineDash):], last) {
		case verdictYes:
			return i, endLine
		case verdictWait:
			return i, endUnknown
		}
		i += len(mr.lineDash) // the boundary is the start of a longer word
	}
	return len(w), endUnknown
}

type verdict int8

const (
	verdictNo verdict = iota
	verdictYes
	verdictWait
)

// ends tells, from what follows a "--boundary" just found, whether it is a
// delimiter: it is if followed by transport padding, a line end, a '-' (taken
// for the start of a close delimiter), or nothing at all.
func (mr *multipartReader) ends(after []byte, last bool) verdict {
	if len(after) == 0 {
		if last {
			return verdictYes
		}
		return verdictWait
	}
	switch after[0] {
	case ' ', '\t', '\r', '\n', '-':
		return verdictYes
	}
	return verdictNo
}

// Rest returns a reader of the rest of the multipart as raw octets: what is left
// of the current part's content, then each further part, header and body, with
// the delimiter lines between them, up to (not including) the delimiter before
// the close delimiter line, or whatever else ends the multipart first: a line
// where a delimiter line should be, or the end of the data. The further parts'
// headers are not parsed: they are scanned for the boundary as bodies are, and
// nothing is allocated for them. (So a header line that begins with the
// boundary, which no well-formed part has, ends a part where NextPart would
// have read it as a field or failed on it; and the CRLF of the blank line
// after an empty header is the one before the delimiter that may follow it.)
//
// Start is where the current part began (its first header octet); once the
// reader has returned io.EOF, End is where the rest ended. Rest is for after
// NextPart or NextRaw has opened a part; the multipart reader is not used again
// but through the reader Rest returns.
func (mr *multipartReader) Rest() *restReader {
	r := &restReader{mr: mr, Start: mr.start, End: mr.pos()}
	if !mr.open {
		r.Start, r.err = r.End, io.EOF
	}
	mr.part = nil
	return r
}

type restReader struct {
	mr         *multipartReader
	Start, End int64

	lineEnd int    // octets of the line end before a delimiter line still to give
	line    []byte // what is still to give of a delimiter line, in mr.br's buffer
	err     error  // once the rest has ended: io.EOF, or why it could not be read
}

func (r *restReader) Read(p []byte) (int, error) {
	for {
		switch {
		case r.err != nil:
			return 0, r.err
		case len(p) == 0:
			return 0, nil
		case r.lineEnd > 0:
			le := r.mr.lineEnd()
			n := copy(p, le[len(le)-r.lineEnd:])
			r.lineEnd -= n
			return n, nil
		case len(r.line) > 0:
			n := copy(p, r.line)
			r.line = r.line[n:]
			return n, nil
		}
		n, err := r.mr.content(p)
		if n > 0 {
			return n, nil
		}
		r.End = r.mr.pos()
		if err == io.EOF { // at a delimiter: another part, or the end
			le, line, derr := r.mr.delimiter()
			if derr == nil {
				r.lineEnd, r.line = le, line
				continue
			}
			err = derr
		}
		r.err = io.EOF
		if e := r.mr.src.err; e != nil && e != io.EOF && e != io.ErrUnexpectedEOF && errors.Is(err, e) {
			r.err = e // the reader failed: that is no end of the data
		}
	}
}
