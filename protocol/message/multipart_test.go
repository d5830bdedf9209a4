package message

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// The multipart reader must find what go-message's does (go-imap's FETCH and
// BODYSTRUCTURE use it): the same parts, headers and body octets, ending the
// same way. These tests compare the two through go-message's public API.

// mpPart is one part as a reader gave it.
type mpPart struct {
	header string // the header fields, in order
	body   string
	cut    bool // the body ended with an error rather than at a delimiter
}

// mpResult is all a reader found in a multipart body.
type mpResult struct {
	parts []mpPart
	clean bool // ended at the close delimiter (io.EOF), not with an error
}

func (r mpResult) String() string {
	var b strings.Builder
	for i, p := range r.parts {
		fmt.Fprintf(&b, "part %d: header %q body %q cut %v\n", i+1, p.header, p.body, p.cut)
	}
	fmt.Fprintf(&b, "clean end: %v", r.clean)
	return b.String()
}

func headerString(h textproto.Header) string {
	var b strings.Builder
	for f := h.Fields(); f.Next(); {
		b.WriteString(f.Key() + ": " + f.Value() + "\n")
	}
	return b.String()
}

const maxCompareParts = 1000

func goMessageParts(body, boundary string) mpResult {
	mr := textproto.NewMultipartReader(strings.NewReader(body), boundary)
	var res mpResult
	for len(res.parts) < maxCompareParts {
		p, err := mr.NextPart()
		if err != nil {
			res.clean = err == io.EOF
			break
		}
		data, err := io.ReadAll(p)
		res.parts = append(res.parts, mpPart{header: headerString(p.Header), body: string(data), cut: err != nil})
	}
	return res
}

// ourParts reads body with newMultipartReader from r, and checks that each part
// is where the reader says it is: its header, then its body, from its start.
func ourParts(t *testing.T, body string, r io.Reader, boundary string) mpResult {
	t.Helper()
	mr := newMultipartReader(r, boundary)
	var res mpResult
	for len(res.parts) < maxCompareParts {
		p, err := mr.NextPart()
		if err != nil {
			res.clean = err == io.EOF
			break
		}
		start, bodyStart := mr.start, mr.pos()
		data, err := io.ReadAll(p)
		if err != nil && err != io.ErrUnexpectedEOF {
			t.Fatalf("body of part %d: %v", len(res.parts)+1, err)
		}
		res.parts = append(res.parts, mpPart{header: headerString(p.Header), body: string(data), cut: err != nil})
		if start > bodyStart || bodyStart+int64(len(data)) > int64(len(body)) {
			t.Fatalf("part %d at %d, body at %d, %d octets, in %d", len(res.parts), start, bodyStart, len(data), len(body))
		}
		hdr, herr := textproto.ReadHeader(bufio.NewReader(strings.NewReader(body[start:bodyStart])))
		if herr != nil || headerString(hdr) != headerString(p.Header) || body[bodyStart:bodyStart+int64(len(data))] != string(data) {
			t.Fatalf("part %d is not at %d..%d..: %q", len(res.parts), start, bodyStart, body[start:])
		}
	}
	return res
}

// compareMultipart checks that the reader finds what go-message's does in body,
// read at once and a few octets at a time, and that Rest, from any part, gives
// the octets it says, ending where the parts found end.
func compareMultipart(t *testing.T, body, boundary string) {
	t.Helper()
	want := goMessageParts(body, boundary)
	for _, r := range []io.Reader{strings.NewReader(body), iotest.OneByteReader(strings.NewReader(body)),
		iotest.HalfReader(strings.NewReader(body)), iotest.DataErrReader(strings.NewReader(body))} {
		got := ourParts(t, body, r, boundary)
		if got.String() != want.String() {
			t.Fatalf("boundary %q, body %q (%T):\n got %s\nwant %s", boundary, body, r, got, want)
		}
	}
	checkRest(t, body, boundary)
}

// checkRest reads the rest of the multipart from each part on, after NextRaw
// and after NextPart, and checks that it gives the octets of the input from
// where it starts to where it says it ends, which is where the content of the
// last part ends when read part by part.
func checkRest(t *testing.T, body, boundary string) {
	t.Helper()
	// open opens k parts, the last with its header read if parsed.
	open := func(k int, parsed bool) (*multipartReader, bool) {
		var r io.Reader = strings.NewReader(body)
		if len(body) < 2*window {
			r = iotest.OneByteReader(r)
		}
		mr := newMultipartReader(r, boundary)
		for i := 1; i <= k; i++ {
			if parsed && i == k {
				_, err := mr.NextPart()
				return mr, err == nil
			}
			if !mr.NextRaw() {
				return mr, false
			}
		}
		return mr, true
	}
	n := 0
	for mr := newMultipartReader(strings.NewReader(body), boundary); mr.NextRaw(); {
		n++
	}
	for k := 1; k <= n; k++ {
		if k == 6 && n > 10 {
			k = n - 4 // the first parts and the last will do
		}
		for _, parsed := range []bool{false, true} {
			mr, ok := open(k, parsed)
			if !ok {
				if !parsed {
					t.Fatalf("body %q: part %d of %d not opened", body, k, n)
				}
				continue
			}
			// Where the parts end, read one by one.
			var end int64
			for {
				for mr.skip() {
				}
				end = mr.pos()
				if !mr.NextRaw() {
					break
				}
			}
			mr, _ = open(k, parsed)
			start, from := mr.start, mr.pos()
			rr := mr.Rest()
			got, err := io.ReadAll(rr)
			if err != nil || rr.End != end || rr.Start != start || from > end || string(got) != body[from:end] {
				t.Fatalf("body %q: rest from part %d (parsed %v): %q, %d..%d, %v; want ..%d",
					body, k, parsed, got, rr.Start, rr.End, err, end)
			}
		}
	}
}

func TestMultipartLikeGoMessage(t *testing.T) {
	long := strings.Repeat("p", window-1)
	for _, body := range []string{
		"--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue",
		"preamble\r\n--b\r\n\r\nx\r\n--b--",
		"--b\r\n\r\nx\r\n--b--",                    // no line end after the close delimiter
		"--b\r\n\r\nx\r\n--b-- \t",                 // padding, then the end
		"--b\r\n\r\nx\r\n--b--\t\r\nepilogue",      // padding, then the line end
		"--b\r\n\r\nx\r\n--b--x\r\n",               // not a close delimiter
		"--b\r\n\r\nx\r\n--b",                      // the data ends at the boundary
		"--b\r\n\r\nx\r\n--b-",                     // one '-'
		"--b\r\n\r\nx\r\n--b-junk\r\n--b\r\n\r\ny", // a line where a delimiter should be
		"--b\r\n\r\nx\r\n--bc\r\n--b--",            // a longer word
		"--b\r\n\r\n--bc\r\n--b--",                 // a longer word at the start of a body
		"--b\r\n\r\n--b\r\n\r\n--b--",              // empty bodies
		"--b\r\n\r\n--b--",                         // a body that is empty, no line end before the delimiter
		"--b\r\n\r\nx\r\n-",                        // cut short
		"--b\r\n\r\nx\r\n--",                       // cut short
		"--b\r\n\r\nx\r",                           // cut short
		"--b\r\n\r\n-",                             // cut short
		"--b\r\n\r\n",                              // cut short
		"--b\r\nbroken",                            // a header cut short
		"--b\r\n--b\r\n\r\n--b--",                  // a delimiter where the header should be
		"--b \t\r\n\r\nx\r\n--b\t\r\n\r\ny\r\n--b--",
		"--b\n\nx\r\n--b\n\ny\n--b--\n", // LF line ends: the CR is data
		"--b\n\nx\n--b\r\n\r\ny\n--b--\n",
		"--b\r\n\r\nx\n--b\n\r\n--b--\r\n", // a bare LF in a CRLF body
		"--b--\n--b\r\n\r\nq\r\n--b--",     // a close delimiter with LF, in the preamble
		"--b--\r\n--b\r\n\r\nq\r\n--b--",   // the close delimiter, before any part
		"--bb\r\n--b\r\n\r\nq\r\n--b--",
		"x--b\r\n--b\r\n\r\nq\r\n--b--",
		"",
		"--b",
		"--b--",
		"no delimiter\r\n",
		long + "\n--b\r\n\r\nq\r\n--b--",         // the longest preamble line
		long + "p\n--b\r\n\r\nq\r\n--b--",        // one octet longer
		"--b" + long[:window-5] + "\n\nq\n--b--", // the longest delimiter line
		"--b" + long[:window-4] + "\n\nq\n--b--",
		"--b\r\n\r\nq\r\n--b" + strings.Repeat(" ", window-5) + "\r\n\r\nr\r\n--b--",
		"--b\r\n\r\nq\r\n--b" + strings.Repeat(" ", window-4) + "\r\n\r\nr\r\n--b--",
		"--b\r\n\r\nq\r\n--b--" + strings.Repeat(" ", window) + "\r\n",
		"--b\r\n\r\n" + strings.Repeat("a\r\n-", 3000) + "\r\n--b--",
	} {
		compareMultipart(t, body, "b")
	}
	// Boundaries as long as the window allows, and longer.
	for n := window - 8; n <= window+2; n++ {
		b := strings.Repeat("B", n)
		for _, body := range []string{
			"--" + b + "\r\n\r\nx\r\n--" + b + "\r\n\r\ny\r\n--" + b + "--\r\n",
			"--" + b + "\n\nx\n--" + b + "\n\ny\n--" + b + "--\n",
			"--" + b + "\r\n\r\nx\r\n--" + b + "x\r\n--" + b + "--\r\n",
		} {
			compareMultipart(t, body, b)
		}
	}
}

// mpGen writes multipart bodies with the pieces malformed mail is made of.
type mpGen struct{ r *rand.Rand }

func (g mpGen) pick(s ...string) string { return s[g.r.Intn(len(s))] }

func (g mpGen) body(b string) string {
	var s strings.Builder
	nl := g.pick("\r\n", "\r\n", "\n")
	for n := g.r.Intn(12); n > 0; n-- {
		switch g.r.Intn(12) {
		case 0:
			s.WriteString(g.pick("", nl, "pre"+nl, "--"+b+"--"+nl, "--"+b+"x"+nl))
		case 1, 2, 3:
			s.WriteString(g.pick("", nl) + "--" + b + g.pick("", " ", "\t ", "-", "--", "x", "\r") + g.pick(nl, "\r\n", "\n", ""))
		case 4:
			s.WriteString(g.pick("A: 1", "Content-Type: text/plain", "B:", " folded", "no colon", "") + g.pick(nl, "\r\n", "\n", ""))
		case 5, 6:
			s.WriteString(g.pick("body", "x", "", "-", "--", "\r", "\n", "\r\n", "--"+b, "\r\n--"+b, "\n--"+b, "--"+b[:len(b)/2]))
		case 7:
			s.WriteString(nl + "--" + b + "--" + g.pick("", " ", nl, "\r\n", "x"))
		case 8:
			s.WriteString(nl)
		case 9:
			s.WriteString(strings.Repeat(g.pick("a", " ", "-"), g.r.Intn(window+200)))
		default:
			s.WriteString("--" + b + nl + g.pick("", "A: 1"+nl) + nl + g.pick("", "x", "x"+nl+"y") + nl)
		}
	}
	return s.String()
}

func TestMultipartLikeGoMessageGenerated(t *testing.T) {
	g := mpGen{rand.New(rand.NewSource(3))}
	n := 4000
	if testing.Short() {
		n = 400
	}
	for i := 0; i < n; i++ {
		b := g.pick("b", "=_b", "-", "b c", "Ab9")
		body := g.body(b)
		compareMultipart(t, body, b)
		if len(body) > 0 {
			compareMultipart(t, body[:g.r.Intn(len(body))], b) // cut short anywhere
		}
	}
}

func FuzzMultipart(f *testing.F) {
	f.Add("b", "--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\n")
	f.Add("b", "--b\n\nx\r\n--b\n\ny\n--b--\n")
	f.Add("b", "--b\r\n\r\nx\r\n--b-junk\r\n--b\r\n\r\ny")
	f.Add("=_x", "pre\r\n--=_x \r\n\r\n--=_xc\r\n--=_x\r\n--=_x--")
	f.Fuzz(func(t *testing.T, boundary, body string) {
		// Content-Type parsing gives no boundary with a line end in it.
		if boundary == "" || strings.ContainsAny(boundary, "\r\n") || len(body) > 64<<10 {
			return
		}
		compareMultipart(t, body, boundary)
	})
}

// The reader allocates nothing per part that Rest reads, however many.
func TestMultipartRestAllocations(t *testing.T) {
	body := strings.Repeat("--b\r\nA: 1\r\n\r\n", 100_000) + "--b--\r\n"
	allocated := testing.AllocsPerRun(3, func() {
		mr := newMultipartReader(bytes.NewReader([]byte(body)), "b")
		mr.NextRaw()
		if n, err := io.Copy(io.Discard, mr.Rest()); err != nil || n != int64(len(body)-len("--b\r\n\r\n--b--\r\n")) {
			t.Fatalf("rest of %d octets: %v", n, err)
		}
	})
	if allocated > 20 {
		t.Errorf("%v allocations", allocated)
	}
}

// entity writes a MIME entity (header and body) whose multiparts, at any depth,
// are made of the pieces malformed mail is: delimiter lines with padding or a
// bare LF or junk after the boundary, bodies that mention the boundary, close
// delimiters missing or cut short.
func (g mpGen) entity(depth int, seq *int) string {
	*seq++
	switch k := g.r.Intn(6); {
	case depth < 4 && k < 3:
		b := fmt.Sprintf("%s%d", g.pick("b", "=_x", "b-"), *seq)
		nl := g.pick("\r\n", "\r\n", "\r\n", "\n")
		var s strings.Builder
		fmt.Fprintf(&s, "Content-Type: multipart/%s; boundary=\"%s\"\r\n\r\n", g.pick("mixed", "alternative"), b)
		s.WriteString(g.pick("", "", "preamble"+nl, "--"+b+"x"+nl, nl))
		for n := g.r.Intn(5); n > 0; n-- {
			s.WriteString("--" + b + g.pick("", "", "", " ", "\t", "-", "x") + g.pick(nl, nl, nl, "\r\n", "\n", "") + g.entity(depth+1, seq))
			s.WriteString(g.pick(nl, nl, nl, "", "\r", "\n"))
		}
		s.WriteString(g.pick("--"+b+"--"+nl, "--"+b+"--", "--"+b+"-- \t"+nl, "--"+b+"-"+nl, "--"+b+"-x"+nl, "", "--"+b[:len(b)-1]))
		s.WriteString(g.pick("", "", "epilogue"+nl, "--"+b+nl))
		return s.String()
	case depth < 4 && k == 3:
		return "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n" + g.entity(depth+1, seq)
	default:
		var s strings.Builder
		s.WriteString(g.pick("Content-Type: text/plain\r\n", "Content-Type: application/octet-stream\r\n", "", "X: y\n") + g.pick("\r\n", "\n"))
		for n := g.r.Intn(4); n > 0; n-- {
			s.WriteString(g.pick("text", "\r\n", "\n", "\r", "--", "-", "--b1", "\r\n--b", "--=_x", "line\r\n"))
		}
		return s.String()
	}
}

// The structure Parse computes has the parts go-imap finds (its BODYSTRUCTURE,
// and FETCH BODY[n]), with their sizes, however malformed the multiparts.
func TestParseLikeGoImapMalformed(t *testing.T) {
	g := mpGen{rand.New(rand.NewSource(4))}
	unlimited := limits{parts: 1 << 30, size: 1 << 30}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		seq := 0
		msg := "Subject: m\r\n" + g.entity(0, &seq)
		if h := strings.Index(msg, "\r\n\r\n") + 4; g.r.Intn(4) == 0 && h > 4 {
			msg = msg[:h+g.r.Intn(len(msg)-h+1)] // cut short, after the message's header
		}
		p, err := parse(strings.NewReader(msg), unlimited)
		if err != nil {
			t.Fatal(err)
		}
		want := imapserver.ExtractBodyStructure(strings.NewReader(msg))
		if d := sameParts(p.BodyStructure, want, msg, nil); d != "" {
			t.Fatalf("message %d: %s\n got %s\nwant %s\n%q", i, d, EncodeBodyStructure(p.BodyStructure), EncodeBodyStructure(want), msg)
		}
	}
}

// sameParts compares the parts of two structures and their sizes, and checks
// the size of each leaf against what FETCH BODY[path] returns. The empty part
// Parse puts in a multipart that has none (go-imap leaves it empty) is not a
// difference.
func sameParts(got, want imap.BodyStructure, msg string, path []int) string {
	switch w := want.(type) {
	case *imap.BodyStructureMultiPart:
		if w.Extended == nil || w.Extended.Params["boundary"] == "" {
			return "" // a Content-Type cut short: Parse has it text/plain
		}
		g, ok := got.(*imap.BodyStructureMultiPart)
		if !ok {
			return fmt.Sprintf("part %v is no multipart", path)
		}
		if len(w.Children) == 0 && len(g.Children) == 1 && reflect.DeepEqual(g.Children[0], emptyPart()) {
			return ""
		}
		if len(g.Children) != len(w.Children) {
			return fmt.Sprintf("part %v has %d parts, want %d", path, len(g.Children), len(w.Children))
		}
		for i := range w.Children {
			if d := sameParts(g.Children[i], w.Children[i], msg, append(path[:len(path):len(path)], i+1)); d != "" {
				return d
			}
		}
	case *imap.BodyStructureSinglePart:
		g, ok := got.(*imap.BodyStructureSinglePart)
		if !ok {
			return fmt.Sprintf("part %v is a multipart", path)
		}
		if g.Size != w.Size {
			return fmt.Sprintf("part %v has %d octets, want %d", path, g.Size, w.Size)
		}
		if len(path) > 0 {
			// (A part cut short FETCHes as nothing: go-imap gives up on the
			// read error. Its BODYSTRUCTURE counts the octets.)
			if body := fetchBody(msg, path...); body != nil && len(body) != int(g.Size) {
				return fmt.Sprintf("BODY[%v] has %d octets, the structure says %d", path, len(body), g.Size)
			}
		}
		if (g.MessageRFC822 == nil) != (w.MessageRFC822 == nil) {
			return fmt.Sprintf("part %v: attached message or not", path)
		}
		if w.MessageRFC822 != nil {
			if g.MessageRFC822.NumLines != w.MessageRFC822.NumLines {
				return fmt.Sprintf("part %v has %d lines, want %d", path, g.MessageRFC822.NumLines, w.MessageRFC822.NumLines)
			}
			if len(path) == 0 {
				return "" // the message's body is an attached message: the structure of that is another test's
			}
			// The parts of the attached message's multipart are numbered
			// below the part; a body that is not multipart is its part 1.
			inner := path
			if _, ok := w.MessageRFC822.BodyStructure.(*imap.BodyStructureMultiPart); !ok {
				inner = append(path[:len(path):len(path)], 1)
			}
			return sameParts(g.MessageRFC822.BodyStructure, w.MessageRFC822.BodyStructure, msg, inner)
		}
	}
	return ""
}
