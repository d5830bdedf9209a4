package message

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// partBomb is a message of n empty parts, 9 octets each ("--bbb\r\n\r\n"), as
// anyone can send to port 25. It returns where the rest past MaxParts parts
// begins and ends: Parse's opaque part.
func partBomb(n int) (msg string, tailStart, tailEnd int) {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: bomb\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=bbb\r\n\r\n")
	for i := 0; i < n; i++ {
		b.WriteString("--bbb\r\n")
		if i == MaxParts {
			tailStart = b.Len()
		}
		b.WriteString("\r\n")
	}
	// The CRLF before the close delimiter is part of it (RFC 2046 §5.1.1).
	tailEnd = b.Len() - 2
	b.WriteString("--bbb--\r\n")
	return b.String(), tailStart, tailEnd
}

// allocs runs f and reports how much it allocated in all, and how much more the
// live heap holds afterwards (what f keeps, after a collection).
func allocs(f func()) (total, live int64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	total = int64(after.TotalAlloc - before.TotalAlloc)
	runtime.GC()
	runtime.ReadMemStats(&after)
	return total, int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

func isOpaque(bs imap.BodyStructure) bool {
	s, ok := bs.(*imap.BodyStructureSinglePart)
	return ok && s.Type == "application" && s.Subtype == "octet-stream" && s.Description == opaqueDescription
}

// countParts counts the parts a structure describes (the message itself not
// counted) and, of them, the opaque ones.
func countParts(bs imap.BodyStructure) (parts, opaque int) {
	var walk func(imap.BodyStructure, bool)
	walk = func(bs imap.BodyStructure, root bool) {
		if !root {
			parts++
			if isOpaque(bs) {
				opaque++
			}
		}
		switch b := bs.(type) {
		case *imap.BodyStructureMultiPart:
			for _, c := range b.Children {
				walk(c, false)
			}
		case *imap.BodyStructureSinglePart:
			if b.MessageRFC822 != nil {
				walk(b.MessageRFC822.BodyStructure, false)
			}
		}
	}
	walk(bs, true)
	return parts, opaque
}

func TestParsePartBomb(t *testing.T) {
	for _, n := range []int{100_000, 300_000} {
		msg, tailStart, tailEnd := partBomb(n)
		var p *Parsed
		var err error
		total, live := allocs(func() { p, err = Parse(strings.NewReader(msg)) })
		if err != nil {
			t.Fatal(err)
		}
		enc := EncodeBodyStructure(p.BodyStructure)
		t.Logf("%d parts, %d octets: allocated %d KiB while parsing, %d KiB kept; structure %d octets",
			n, len(msg), total>>10, live>>10, len(enc))
		if total > 20<<20 || live > 4<<20 {
			t.Errorf("%d parts: parsing allocated %d octets and kept %d", n, total, live)
		}
		if len(enc) > MaxStructureSize {
			t.Errorf("%d parts: structure of %d octets", n, len(enc))
		}
		parts, opaque := countParts(p.BodyStructure)
		if parts != MaxParts+1 || opaque != 1 {
			t.Errorf("%d parts: structure has %d parts, %d opaque", n, parts, opaque)
		}
		mp := p.BodyStructure.(*imap.BodyStructureMultiPart)
		last := mp.Children[len(mp.Children)-1].(*imap.BodyStructureSinglePart)
		if !isOpaque(last) || int(last.Size) != tailEnd-tailStart {
			t.Errorf("%d parts: last part %+v, want %d octets", n, last, tailEnd-tailStart)
		}
		if !p.HasAttachments {
			t.Errorf("%d parts: the opaque rest is not counted as an attachment", n)
		}
		if _, err := DecodeBodyStructure(enc); err != nil {
			t.Fatal(err)
		}

		// Reading the message for display is flat too, and serves the rest.
		var d *Decoded
		total, _ = allocs(func() { d, err = Decode(strings.NewReader(msg)) })
		if err != nil || total > 20<<20 {
			t.Fatalf("%d parts: Decode allocated %d octets: %v", n, total, err)
		}
		if len(d.Attachments) != 1 || d.Attachments[0].Size != int64(tailEnd-tailStart) {
			t.Fatalf("%d parts: attachments %+v", n, d.Attachments)
		}
	}
}

// Parts with a header each: past the limit their headers are not even read.
func TestParsePartBombWithHeaders(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 0; b.Len() < 4<<20; i++ {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/x-%d; name=\"f%d\"\r\nContent-Disposition: attachment\r\n\r\nx\r\n", i, i)
	}
	b.WriteString("--b--\r\n")
	total, _ := allocs(func() {
		if _, err := Parse(strings.NewReader(b.String())); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%d octets of parts with headers: allocated %d KiB", b.Len(), total>>10)
	if total > 20<<20 {
		t.Errorf("allocated %d octets", total)
	}
}

// A multipart of parts that are multiparts: the limit counts parts at any depth.
func TestParsePartBombNested(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=o\r\n\r\n")
	for i := 0; i < 2000; i++ {
		b.WriteString("--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n")
		for j := 0; j < 100; j++ {
			b.WriteString("--i\r\n\r\n")
		}
		b.WriteString("--i--\r\n")
	}
	b.WriteString("--o--\r\n")
	var p *Parsed
	total, _ := allocs(func() { p, _ = Parse(strings.NewReader(b.String())) })
	parts, opaque := countParts(p.BodyStructure)
	enc := EncodeBodyStructure(p.BodyStructure)
	t.Logf("%d octets: allocated %d KiB, %d parts (%d opaque), structure %d octets", b.Len(), total>>10, parts, opaque, len(enc))
	if parts > MaxParts+maxDepth+1 || opaque != 2 || len(enc) > MaxStructureSize || total > 20<<20 {
		t.Errorf("%d parts, %d opaque, structure %d octets, allocated %d", parts, opaque, len(enc), total)
	}
}

// fetchBody is what FETCH BODY[part] returns for the message.
func fetchBody(msg string, part ...int) []byte {
	return imapserver.ExtractBodySection(strings.NewReader(msg), &imap.FetchItemBodySection{Part: part})
}

// Past the limit the parts kept are exact, and the rest is one part whose octets
// are the original rest of the multipart.
func TestParsePartLimitExact(t *testing.T) {
	const n = 1500
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\npreamble\r\n")
	var bodies []string
	tailStart := 0
	for i := 0; i < n; i++ {
		b.WriteString("--=_b\r\n")
		if i == MaxParts {
			tailStart = b.Len()
		}
		var body string
		if i%10 == 9 {
			body = fmt.Sprintf("iVBORw0KGgo%d=", i)
			b.WriteString("Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		} else {
			body = fmt.Sprintf("part %d\r\n%s", i, strings.Repeat("line\r\n", i%4))
			b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
		}
		bodies = append(bodies, body)
		b.WriteString(body + "\r\n")
	}
	tailEnd := b.Len() - 2
	b.WriteString("--=_b--\r\nepilogue\r\n")
	msg := b.String()

	p, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mp := p.BodyStructure.(*imap.BodyStructureMultiPart)
	if len(mp.Children) != MaxParts+1 {
		t.Fatalf("%d parts", len(mp.Children))
	}
	for i, c := range mp.Children[:MaxParts] {
		s := c.(*imap.BodyStructureSinglePart)
		if int(s.Size) != len(bodies[i]) || s.Text != nil && s.Text.NumLines != int64(strings.Count(bodies[i], "\n")) {
			t.Fatalf("part %d: %d octets, %+v lines; want %d", i+1, s.Size, s.Text, len(bodies[i]))
		}
		// Each FETCH re-reads the message up to the part: a sample will do.
		if i%20 == 0 || i >= MaxParts-10 {
			if got := fetchBody(msg, i+1); string(got) != bodies[i] {
				t.Fatalf("FETCH BODY[%d] gives %q, want %q", i+1, got, bodies[i])
			}
		}
	}
	rest := mp.Children[MaxParts].(*imap.BodyStructureSinglePart)
	if !isOpaque(rest) || int(rest.Size) != tailEnd-tailStart {
		t.Fatalf("rest %+v, want %d octets", rest, tailEnd-tailStart)
	}
	if !strings.Contains(p.SearchText, "part 998") || strings.Contains(p.SearchText, "part 1001") {
		t.Errorf("search text covers the wrong parts")
	}
	if len(EncodeBodyStructure(p.BodyStructure)) > MaxStructureSize {
		t.Errorf("structure too large")
	}

	// The display reader cuts at the same place and serves the rest, exactly.
	d, err := Decode(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	last := d.Attachments[len(d.Attachments)-1]
	if len(d.Attachments) != MaxParts/10+1 || last.ContentType != "application/octet-stream" || last.Size != int64(tailEnd-tailStart) {
		t.Fatalf("%d attachments, last %+v", len(d.Attachments), last)
	}
	var got bytes.Buffer
	err = StreamAttachment(strings.NewReader(msg), last.Index, func(*AttachmentInfo) (io.Writer, error) { return &got, nil })
	if err != nil || got.String() != msg[tailStart:tailEnd] {
		t.Fatalf("rest streamed %d octets (%v), want the %d of the original", got.Len(), err, tailEnd-tailStart)
	}
}

// The limit met inside a nested multipart: that multipart's rest, and then the
// enclosing one's, are each one part.
func TestParsePartLimitNested(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=outer\r\n\r\n")
	b.WriteString("--outer\r\nContent-Type: text/plain\r\n\r\nfirst\r\n")
	b.WriteString("--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n")
	// The outer part and the inner multipart take two of the parts.
	innerKept := MaxParts - 2
	var innerStart, innerEnd int
	for i := 0; i < 1200; i++ {
		b.WriteString("--inner\r\n")
		if i == innerKept {
			innerStart = b.Len()
		}
		fmt.Fprintf(&b, "Content-Type: text/plain\r\n\r\ninner %d\r\n", i)
	}
	innerEnd = b.Len() - 2
	b.WriteString("--inner--\r\n\r\n")
	b.WriteString("--outer\r\n")
	outerStart := b.Len()
	b.WriteString("Content-Type: text/plain\r\n\r\nthird\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nfourth\r\n")
	outerEnd := b.Len() - 2
	b.WriteString("--outer--\r\n")
	msg := b.String()

	p, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	outer := p.BodyStructure.(*imap.BodyStructureMultiPart)
	if len(outer.Children) != 3 {
		t.Fatalf("outer has %d parts", len(outer.Children))
	}
	inner := outer.Children[1].(*imap.BodyStructureMultiPart)
	if len(inner.Children) != innerKept+1 {
		t.Fatalf("inner has %d parts, want %d", len(inner.Children), innerKept+1)
	}
	for i, c := range inner.Children[:innerKept] {
		want := fmt.Sprintf("inner %d", i)
		if int(c.(*imap.BodyStructureSinglePart).Size) != len(want) {
			t.Fatalf("part 2.%d: %d octets", i+1, c.(*imap.BodyStructureSinglePart).Size)
		}
		if i%50 == 0 || i >= innerKept-5 {
			if got := fetchBody(msg, 2, i+1); string(got) != want {
				t.Fatalf("FETCH BODY[2.%d] gives %q", i+1, got)
			}
		}
	}
	if r := inner.Children[innerKept].(*imap.BodyStructureSinglePart); !isOpaque(r) || int(r.Size) != innerEnd-innerStart {
		t.Errorf("inner rest %+v, want %d octets", r, innerEnd-innerStart)
	}
	if r := outer.Children[2].(*imap.BodyStructureSinglePart); !isOpaque(r) || int(r.Size) != outerEnd-outerStart {
		t.Errorf("outer rest %+v, want %d octets", r, outerEnd-outerStart)
	}
	if got := fetchBody(msg, 1); string(got) != "first" {
		t.Errorf("BODY[1] = %q", got)
	}
}

// The limit met at an attached message: it keeps its envelope and size, and its
// body is one opaque part.
func TestParsePartLimitAttachedMessage(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 0; i < MaxParts-1; i++ {
		b.WriteString("--b\r\n\r\n")
	}
	innerBody := "--i\r\nContent-Type: text/plain\r\n\r\none\r\n--i\r\n\r\ntwo\r\n--i--\r\n"
	attached := "Subject: attached\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n" + innerBody
	b.WriteString("--b\r\nContent-Type: message/rfc822\r\n\r\n" + attached + "\r\n--b\r\n")
	restStart := b.Len()
	b.WriteString("\r\nafter")
	restEnd := b.Len()
	b.WriteString("\r\n--b--\r\n")
	msg := b.String()

	p, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mp := p.BodyStructure.(*imap.BodyStructureMultiPart)
	if len(mp.Children) != MaxParts+1 {
		t.Fatalf("%d parts", len(mp.Children))
	}
	m := mp.Children[MaxParts-1].(*imap.BodyStructureSinglePart)
	if m.MessageRFC822 == nil || m.MessageRFC822.Envelope.Subject != "attached" || int(m.Size) != len(attached) ||
		m.MessageRFC822.NumLines != int64(strings.Count(attached, "\n")) {
		t.Fatalf("attached message %+v", m)
	}
	if body := m.MessageRFC822.BodyStructure; !isOpaque(body) || int(body.(*imap.BodyStructureSinglePart).Size) != len(innerBody) {
		t.Errorf("attached body %+v, want opaque of %d octets", body, len(innerBody))
	}
	if r := mp.Children[MaxParts].(*imap.BodyStructureSinglePart); !isOpaque(r) || int(r.Size) != restEnd-restStart {
		t.Errorf("rest %+v, want %d octets", r, restEnd-restStart)
	}
	if got := fetchBody(msg, MaxParts); string(got) != attached {
		t.Errorf("BODY[%d] = %q", MaxParts, got)
	}
}

// Large part headers: the structure stays under MaxStructureSize, cut where a
// part no longer fits, however deep the cut.
func TestParseStructureSizeLimit(t *testing.T) {
	desc := strings.Repeat("d", 20<<10)
	t.Run("flat", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
		var starts []int
		for i := 0; i < 40; i++ {
			b.WriteString("--b\r\n")
			starts = append(starts, b.Len())
			b.WriteString("Content-Type: text/plain\r\nContent-Description: " + desc + "\r\n\r\nx\r\n")
		}
		tailEnd := b.Len() - 2
		b.WriteString("--b--\r\n")
		p, _ := Parse(strings.NewReader(b.String()))
		mp := p.BodyStructure.(*imap.BodyStructureMultiPart)
		kept := len(mp.Children) - 1
		if want := (MaxStructureSize - structureReserve) / (len(desc) + 250); kept < want || kept > want+1 {
			t.Fatalf("%d parts kept, want about %d", kept, want)
		}
		if r := mp.Children[kept].(*imap.BodyStructureSinglePart); !isOpaque(r) || int(r.Size) != tailEnd-starts[kept] {
			t.Errorf("rest %+v, want %d octets", r, tailEnd-starts[kept])
		}
		if n := len(EncodeBodyStructure(p.BodyStructure)); n > MaxStructureSize {
			t.Errorf("structure of %d octets", n)
		}
	})
	t.Run("deep", func(t *testing.T) {
		// The budget runs out at the deepest level; every level then ends with
		// an opaque part, from the reserve.
		var b strings.Builder
		for d := 0; d < maxDepth-1; d++ {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=l%d\r\nContent-Description: %s\r\n\r\n--l%d\r\n", d, desc[:200], d)
		}
		b.WriteString("Content-Type: multipart/mixed; boundary=z\r\n\r\n")
		for i := 0; i < 40; i++ {
			b.WriteString("--z\r\nContent-Description: " + desc + "\r\n\r\nx\r\n")
		}
		b.WriteString("--z--\r\n")
		for d := maxDepth - 2; d >= 0; d-- {
			fmt.Fprintf(&b, "\r\n--l%d\r\n\r\nmore\r\n--l%d--\r\n", d, d)
		}
		p, _ := Parse(strings.NewReader(b.String()))
		parts, opaque := countParts(p.BodyStructure)
		n := len(EncodeBodyStructure(p.BodyStructure))
		if _, ok := p.BodyStructure.(*imap.BodyStructureMultiPart); !ok || opaque != maxDepth || n > MaxStructureSize {
			t.Errorf("%d parts, %d opaque, %d octets", parts, opaque, n)
		}
	})
	t.Run("message header", func(t *testing.T) {
		// Not even the message's own description fits: its body is opaque.
		hdr := "Subject: big\r\nContent-Type: multipart/mixed; boundary=b; x=\"" + strings.Repeat("p", MaxStructureSize) + "\"\r\n\r\n"
		body := "--b\r\n\r\nhello\r\n--b--\r\n"
		p, _ := Parse(strings.NewReader(hdr + body))
		if !isOpaque(p.BodyStructure) || int(p.BodyStructure.(*imap.BodyStructureSinglePart).Size) != len(body) ||
			p.HeaderSize != int64(len(hdr)) || p.Subject != "big" {
			t.Errorf("structure %s", EncodeBodyStructure(p.BodyStructure))
		}
	})
}

// Below the limits nothing changes: the structure is go-imap's own, and the same
// without limits.
func TestParseLimitsKeepOrdinaryStructures(t *testing.T) {
	g := &msgGen{r: rand.New(rand.NewSource(1))}
	unlimited := limits{parts: 1 << 30, size: 1 << 30}
	for i := 0; i < 500; i++ {
		msg := "From: a@example.com\r\nSubject: m\r\nMIME-Version: 1.0\r\n" + g.entity(0)
		p, err := Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		want := imapserver.ExtractBodyStructure(strings.NewReader(msg))
		defaultEncoding(want)
		if !reflect.DeepEqual(p.BodyStructure, want) {
			t.Fatalf("message %d: structure differs from go-imap's:\n got %s\nwant %s\n%s", i, EncodeBodyStructure(p.BodyStructure), EncodeBodyStructure(want), msg)
		}
		u, _ := parse(strings.NewReader(msg), unlimited)
		if EncodeBodyStructure(u.BodyStructure) != EncodeBodyStructure(p.BodyStructure) || u.SearchText != p.SearchText {
			t.Fatalf("message %d: limits change an ordinary structure", i)
		}
	}
}

// msgGen writes well-formed MIME entities: nested multiparts, attached
// messages, text and attachments.
type msgGen struct {
	r   *rand.Rand
	seq int
}

func (g *msgGen) entity(depth int) string {
	g.seq++
	k := g.r.Intn(6)
	if depth >= 4 && k < 2 {
		k = 2 + g.r.Intn(4)
	}
	switch k {
	case 0:
		subs := []string{"mixed", "alternative", "related"}
		bd := fmt.Sprintf("=_b%d", g.seq)
		var b strings.Builder
		fmt.Fprintf(&b, "Content-Type: multipart/%s; boundary=\"%s\"\r\n\r\n", subs[g.r.Intn(len(subs))], bd)
		if g.r.Intn(3) == 0 {
			b.WriteString("This is a multi-part message in MIME format.\r\n")
		}
		for i := 0; i < 1+g.r.Intn(5); i++ {
			b.WriteString("--" + bd + "\r\n" + g.entity(depth+1) + "\r\n")
		}
		b.WriteString("--" + bd + "--\r\n")
		return b.String()
	case 1:
		return fmt.Sprintf("Content-Type: message/rfc822\r\n\r\nFrom: x%d@example.com\r\nSubject: inner\r\n%s", g.seq, g.entity(depth+1))
	case 2:
		return fmt.Sprintf("Content-Type: application/pdf; name=\"f%d.pdf\"\r\nContent-Disposition: attachment; filename=\"f%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK", g.seq, g.seq)
	case 3:
		return "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-ID: <c@x>\r\n\r\n<p>Gr=C3=BC=C3=9Fe</p>\r\n--not-a-boundary\r\n"
	case 4:
		return "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Language: de\r\n\r\nline one\r\nline two\r\n"
	default:
		return "Content-Type: image/png\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo="
	}
}

// limitedPrefix checks a structure parsed under small limits against the one
// parsed without: the parts it describes are the first ones of the full
// structure, depth first, and each opaque part ends its multipart.
func limitedPrefix(t *testing.T, full, cut imap.BodyStructure) {
	t.Helper()
	fl, cl := preorder(full, nil), preorder(cut, nil)
	i := 0
	for _, n := range cl {
		if n == "opaque" {
			continue
		}
		if i >= len(fl) || fl[i] != n {
			t.Fatalf("part %d of the cut structure is not the full structure's:\n cut  %s\n full %s", i, n, strings.Join(fl, "\n      "))
		}
		i++
	}
}

// preorder lists each part's own description, depth first; "opaque" for an
// opaque part, which must be the last of its multipart.
func preorder(bs imap.BodyStructure, out []string) []string {
	if isOpaque(bs) {
		return append(out, "opaque")
	}
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		c := *b
		c.Children = nil
		out = append(out, EncodeBodyStructure(&c))
		for i, ch := range b.Children {
			if isOpaque(ch) && i != len(b.Children)-1 {
				return append(out, "opaque part not last")
			}
			out = preorder(ch, out)
		}
	case *imap.BodyStructureSinglePart:
		c := *b
		if b.MessageRFC822 != nil {
			m := *b.MessageRFC822
			m.BodyStructure = nil
			c.MessageRFC822 = &m
		}
		out = append(out, EncodeBodyStructure(&c))
		if b.MessageRFC822 != nil {
			out = preorder(b.MessageRFC822.BodyStructure, out)
		}
	}
	return out
}

// checkLimited parses m under small limits and checks what any message must
// give then.
func checkLimited(t *testing.T, m string, full *Parsed) {
	t.Helper()
	for _, lim := range []limits{{parts: 1, size: MaxStructureSize}, {parts: 3, size: MaxStructureSize}, {parts: MaxParts, size: 1500, reserve: 600}} {
		p, err := parse(strings.NewReader(m), lim)
		if err != nil {
			t.Fatal(err)
		}
		enc := EncodeBodyStructure(p.BodyStructure)
		if len(enc) > lim.size {
			t.Fatalf("limits %+v: structure of %d octets", lim, len(enc))
		}
		if isOpaque(p.BodyStructure) && !isOpaque(full.BodyStructure) {
			continue // the guard: nothing of the message's own description fits
		}
		parts, opaque := countParts(p.BodyStructure)
		if parts-opaque > lim.parts+1 || opaque > maxDepth+1 { // +1: an empty multipart's placeholder
			t.Fatalf("limits %+v: %d parts, %d opaque", lim, parts, opaque)
		}
		limitedPrefix(t, full.BodyStructure, p.BodyStructure)
		var check func(imap.BodyStructure)
		check = func(bs imap.BodyStructure) {
			switch b := bs.(type) {
			case *imap.BodyStructureMultiPart:
				for _, c := range b.Children {
					check(c)
				}
			case *imap.BodyStructureSinglePart:
				if int(b.Size) > len(m) {
					t.Fatalf("limits %+v: part of %d octets in a message of %d", lim, b.Size, len(m))
				}
				if b.MessageRFC822 != nil {
					check(b.MessageRFC822.BodyStructure)
				}
			}
		}
		check(p.BodyStructure)
	}
}

func TestParseLimitedCorpus(t *testing.T) {
	g := &msgGen{r: rand.New(rand.NewSource(2))}
	for i := 0; i < 300; i++ {
		m := "Subject: m\r\n" + g.entity(0)
		full, err := Parse(strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		checkLimited(t, m, full)
	}
}

// The rest reader gives exactly the octets between the start of the part it
// starts at and the end of the multipart's last part, however the multipart ends.
func TestMultipartRest(t *testing.T) {
	for _, c := range []struct{ body, rest string }{
		{"--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue", "A: 1\r\n\r\none\r\n--b\r\n\r\ntwo"},
		{"--b\r\n\r\n--b\r\n\r\n--b--", "\r\n--b\r\n"},
		{"--b\r\nx\r\n--b \t\r\ny", "x\r\n--b \t\r\ny"},    // no close delimiter
		{"--b\r\nx\r\n--b-junk\r\n--b\r\ny\r\n--b--", "x"}, // a line where a delimiter should be
		{"--b\r\nx\r\n--bc\r\n--b--\r\n", "x\r\n--bc"},     // not a delimiter: "--bc"
		{"--b\nx\n--b\n\ny\n--b--\n", "x\n--b\n\ny"},       // LF line endings
		{"pre\r\n--b\r\n--b\r\n\r\n--b--\r\n", "--b\r\n"},  // an empty header-less part
		{"--b\r\n\r\nend", "\r\nend"},                      // cut short
		{"--b\r\n" + strings.Repeat("z", 10000) + "\r\n--b--", strings.Repeat("z", 10000)},
	} {
		mr := newMultipartReader(strings.NewReader(c.body), "b")
		if !mr.NextRaw() {
			t.Fatalf("%q: no part", c.body)
		}
		rr := mr.Rest()
		got, err := io.ReadAll(iotestOneByte{rr})
		if err != nil || string(got) != c.rest || rr.End-rr.Start != int64(len(c.rest)) {
			t.Errorf("%q: rest %q (%d..%d, %v), want %q", c.body, got, rr.Start, rr.End, err, c.rest)
		}
	}
}

// iotestOneByte reads one octet at a time.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func BenchmarkParsePartBomb(b *testing.B) {
	for _, n := range []int{100_000, 300_000} {
		msg, _, _ := partBomb(n)
		b.Run(fmt.Sprintf("parts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for i := 0; i < b.N; i++ {
				p, err := Parse(strings.NewReader(msg))
				if err != nil {
					b.Fatal(err)
				}
				_ = EncodeBodyStructure(p.BodyStructure)
			}
		})
	}
}
