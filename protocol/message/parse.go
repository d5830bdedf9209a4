package message

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // every charset real mail uses
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/html"
)

// Limits on what parsing keeps; the message itself is never truncated.
const (
	maxSearchText = 256 << 10 // decoded text kept for search
	maxHeaderText = 64 << 10  // decoded header fields kept for header search
	maxTextPart   = 1 << 20   // raw bytes of one text part decoded for search
	previewLen    = 200       // runes of preview
	maxDepth      = 20        // nesting of multiparts and attached messages
)

// Limits on the structure (BODYSTRUCTURE) kept for a message, so that neither
// parsing nor the stored structure grows with the number of MIME parts a sender
// can pack into a message (an empty part takes 7 octets). A message past them is
// still delivered, and stored as it came; only its description is cut short:
//
// The parts are described in order, depth first, while both limits hold. At the
// first part that would pass one, that part and everything after it in the
// enclosing multipart (every further part, header and body, with the delimiter
// lines between them, up to the CRLF that begins the close delimiter) are
// described as one opaque part: application/octet-stream, whose size is those
// octets' count. Each enclosing multipart then ends the same way, with its own
// remaining parts as one opaque part; the body of an attached message
// (message/rfc822) that can no longer be described is one opaque part too. The
// parts described before the cut keep their numbers, sizes and line counts, so a
// BODY[n] fetch of any of them returns exactly the octets the structure says.
// The opaque parts are not parsed: the rest of a multipart is scanned for its
// boundary only, allocating nothing per part.
const (
	// MaxParts is the most body parts (the parts of multiparts and the bodies
	// of attached messages, at any depth; the message itself not counted) a
	// structure describes, besides the opaque parts past the limits (at most
	// one per entity open at the cut, so at most maxDepth+1) and, should the
	// multipart where the cut falls have no parts at all, the empty part RFC
	// 3501 requires in its place.
	MaxParts = 1000
	// MaxStructureSize is the most octets the stored structure
	// (EncodeBodyStructure) takes. The IMAP form of a structure is shorter than
	// its JSON, so a FETCH of BODY and BODYSTRUCTURE together stays well under
	// the line lengths IMAP clients accept (Python's imaplib: 1,000,000).
	MaxStructureSize = 256 << 10

	// structureReserve is kept out of the budget that parts are admitted
	// against, for what is added once it is spent: at most one opaque or
	// placeholder part (~260 octets of JSON) per entity still open then,
	// which maxDepth bounds.
	structureReserve = 16 << 10
	// nodeSlack covers what a part's cost, taken before its body is read,
	// cannot know: its size and line counts, and the JSON joining it to its
	// parent.
	nodeSlack = 32
)

// limits are the structure limits a walk applies: MaxParts, MaxStructureSize
// and structureReserve, save in tests.
type limits struct {
	parts, size, reserve int
}

var defaultLimits = limits{parts: MaxParts, size: MaxStructureSize, reserve: structureReserve}

// opaqueDescription is the body-fld-desc of an opaque part.
const opaqueDescription = "not parsed: past the limits on MIME parts"

// Address is a parsed mailbox address.
type Address struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
}

// Parsed is what one pass over a message yields. Parsing never fails on malformed
// MIME: what cannot be understood is described as well as it can be.
type Parsed struct {
	HeaderSize     int64
	Envelope       *imap.Envelope
	BodyStructure  imap.BodyStructure
	Subject        string
	From, To, Cc   []Address
	Date           *time.Time
	MessageID      string
	HasAttachments bool
	Preview        string
	HeaderText     string
	SearchText     string
}

// Parse reads a whole message (CRLF line endings) once. Its structure is cut
// short past MaxParts parts or MaxStructureSize octets (see MaxParts).
func Parse(r io.Reader) (*Parsed, error) {
	return parse(r, defaultLimits)
}

func parse(r io.Reader, lim limits) (*Parsed, error) {
	cr := &countingReader{r: r}
	br := bufio.NewReader(cr)
	hdr, err := textproto.ReadHeader(br)
	if err != nil {
		// A message without a well-formed header still gets stored: treat what
		// could be read as a header-less body.
		hdr = textproto.Header{}
	}
	p := &Parsed{HeaderSize: cr.n - int64(br.Buffered())}
	mh := mail.Header{Header: gomessage.Header{Header: hdr}}
	p.Envelope = ExtractEnvelope(hdr) // envelope.go: groups, comments, obsolete forms
	p.Subject, _ = mh.Text("Subject")
	if p.Subject == "" {
		p.Subject = hdr.Get("Subject")
	}
	p.From = addresses(mh, "From")
	p.To = addresses(mh, "To")
	p.Cc = addresses(mh, "Cc")
	if d, err := mh.Date(); err == nil && !d.IsZero() {
		d = d.UTC()
		p.Date = &d
	}
	p.MessageID, _ = mh.MessageID()
	p.HeaderText = headerText(mh)

	w := &walker{lim: lim}
	p.BodyStructure = w.part(hdr, br, 0)
	if p.BodyStructure == nil || len(EncodeBodyStructure(p.BodyStructure)) > lim.size {
		// Even the message's own description does not fit (a Content-Type with
		// a quarter of a megabyte of parameters, say): the whole body is one
		// opaque part. The second test is a guard the budget should make moot.
		io.Copy(io.Discard, br) //nolint:errcheck // count the rest
		p.BodyStructure = w.opaque(cr.n - p.HeaderSize)
	}
	p.HasAttachments = w.attachments
	text := w.plain.String()
	if strings.TrimSpace(text) == "" {
		text = w.html.String()
	}
	p.Preview = preview(text)
	var st strings.Builder
	st.WriteString(p.Subject)
	for _, l := range [][]Address{p.From, p.To, p.Cc} {
		for _, a := range l {
			st.WriteString("\n" + a.Name + " " + a.Email)
		}
	}
	st.WriteString("\n")
	st.WriteString(w.plain.String())
	st.WriteString("\n")
	st.WriteString(w.html.String())
	st.WriteString("\n")
	st.WriteString(w.nested.String())
	p.SearchText = truncate(st.String(), maxSearchText)
	p.clean()
	return p, nil
}

func addresses(h mail.Header, key string) []Address {
	list, err := h.AddressList(key)
	if err != nil || len(list) == 0 {
		// Keep whatever the field says, so that listing shows something.
		if v := strings.TrimSpace(h.Get(key)); v != "" && len(list) == 0 {
			return []Address{{Email: v}}
		}
	}
	out := make([]Address, 0, len(list))
	for _, a := range list {
		out = append(out, Address{Name: a.Name, Email: a.Address})
	}
	return out
}

func headerText(h mail.Header) string {
	var b strings.Builder
	f := h.Fields()
	for f.Next() {
		v, err := f.Text()
		if err != nil {
			v = f.Value()
		}
		b.WriteString(f.Key())
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
		if b.Len() > maxHeaderText {
			break
		}
	}
	return truncate(b.String(), maxHeaderText)
}

// walker computes BODYSTRUCTURE and gathers text in the same pass.
type walker struct {
	plain, html strings.Builder // text of the message itself
	nested      strings.Builder // text of attached messages: searched, not previewed
	depthMsg    int             // how many attached messages deep the walk is
	attachments bool
	lim         limits
	parts       int  // body parts described (the message itself not counted)
	used        int  // what the parts described cost of the structure budget
	full        bool // a part did not fit: nothing more is described
}

// admit reports whether the structure has room for one more part, described by
// bs (its children and attached body not included), and takes the room. Once a
// part does not fit, none does: the rest of each open entity is opaque.
func (w *walker) admit(bs imap.BodyStructure, depth int) bool {
	if w.full || (depth > 0 && w.parts >= w.lim.parts) {
		w.full = true
		return false
	}
	cost := len(EncodeBodyStructure(bs)) + nodeSlack
	if w.used+cost > w.lim.size-w.lim.reserve {
		w.full = true
		return false
	}
	w.used += cost
	if depth > 0 {
		w.parts++
	}
	return true
}

// roomLeft reports, before a part's header is read, whether it may be described.
func (w *walker) roomLeft() bool {
	if w.parts >= w.lim.parts {
		w.full = true
	}
	return !w.full
}

// opaque describes octets that are not parsed.
func (w *walker) opaque(size int64) *imap.BodyStructureSinglePart {
	w.attachments = true
	return &imap.BodyStructureSinglePart{Type: "application", Subtype: "octet-stream", Description: opaqueDescription,
		Encoding: "7bit", Size: uint32(size), Extended: &imap.BodyStructureSinglePartExt{}}
}

// rest describes the rest of a multipart, from the start of its current part,
// as one opaque part.
func (w *walker) rest(mr *multipartReader) imap.BodyStructure {
	rr := mr.Rest()
	io.Copy(io.Discard, rr) //nolint:errcheck // a read error ends the body as it ends a part
	return w.opaque(rr.End - rr.Start)
}

// emptyPart stands in for the parts of a multipart that has none.
func emptyPart() imap.BodyStructure {
	return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain",
		Params: map[string]string{"charset": "us-ascii"}, Encoding: "7bit", Text: &imap.BodyStructureText{}}
}

// part describes one entity (the message, a part, an attached message's body)
// and reads its body. When the structure has no room for it, it reads no more
// than its header (and an attached message's header) and returns nil: the
// caller then describes it, with what follows it, as opaque.
func (w *walker) part(hdr textproto.Header, body io.Reader, depth int) imap.BodyStructure {
	h := gomessage.Header{Header: hdr}
	mediaType, params, err := h.ContentType()
	if err != nil || mediaType == "" || !strings.Contains(mediaType, "/") {
		// RFC 2045 §5.2: a missing or unparseable Content-Type is text/plain.
		mediaType, params = "text/plain", map[string]string{"charset": "us-ascii"}
	}
	typ, sub, _ := strings.Cut(strings.ToLower(mediaType), "/")
	disp := disposition(h)

	if typ == "multipart" && params["boundary"] != "" && depth < maxDepth {
		bs := &imap.BodyStructureMultiPart{Subtype: sub,
			Extended: &imap.BodyStructureMultiPartExt{Params: params, Disposition: disp, Language: language(h), Location: h.Get("Content-Location")}}
		if !w.admit(bs, depth) {
			return nil
		}
		mr := newMultipartReader(body, params["boundary"])
		for {
			if !w.roomLeft() {
				// Past the limits: the remaining parts, unread, are one.
				if mr.NextRaw() {
					bs.Children = append(bs.Children, w.rest(mr))
				}
				break
			}
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			child := w.part(part.Header, part, depth+1)
			if child == nil {
				bs.Children = append(bs.Children, w.rest(mr))
				break
			}
			bs.Children = append(bs.Children, child)
		}
		io.Copy(io.Discard, body) //nolint:errcheck // epilogue
		if len(bs.Children) == 0 {
			// RFC 3501 requires at least one part; describe an empty text part.
			// It counts, but is added even past the limits (once at most: a
			// multipart still open there has a part unless it has none at all).
			bs.Children = []imap.BodyStructure{emptyPart()}
			w.used += len(EncodeBodyStructure(bs.Children[0])) + nodeSlack
			w.parts++
		}
		return bs
	}

	bs := &imap.BodyStructureSinglePart{
		Type: typ, Subtype: sub, Params: params,
		ID: h.Get("Content-Id"), Description: h.Get("Content-Description"),
		Encoding: strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))),
	}
	if bs.Encoding == "" {
		bs.Encoding = "7bit"
	}
	if typ == "multipart" {
		// No boundary (or nested too deep): describe it as opaque data.
		bs.Type, bs.Subtype = "application", "octet-stream"
	}
	if typ == "text" {
		bs.Text = &imap.BodyStructureText{}
	}
	bs.Extended = &imap.BodyStructureSinglePartExt{Disposition: disp, Language: language(h), Location: h.Get("Content-Location")}
	cr := &countingReader{r: body}
	switch {
	case (typ == "message" && (sub == "rfc822" || sub == "global")) && depth < maxDepth:
		br := bufio.NewReader(cutAsEnd{cr})
		inner, _ := textproto.ReadHeader(br)
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: ExtractEnvelope(inner)}
		if !w.admit(bs, depth) {
			return nil
		}
		start := cr.n - int64(br.Buffered()) // where the attached message's body begins
		var innerBS imap.BodyStructure
		if w.roomLeft() {
			w.depthMsg++
			innerBS = w.part(inner, br, depth+1)
			w.depthMsg--
		}
		io.Copy(io.Discard, br) //nolint:errcheck // count the rest
		if innerBS == nil {
			innerBS = w.opaque(cr.n - start)
		}
		bs.MessageRFC822.BodyStructure = innerBS
		bs.MessageRFC822.NumLines = cr.lines
	case typ == "text" && (sub == "plain" || sub == "html") && (disp == nil || !strings.EqualFold(disp.Value, "attachment")):
		if !w.admit(bs, depth) {
			return nil
		}
		var raw bytes.Buffer
		io.Copy(&raw, io.LimitReader(cr, maxTextPart)) //nolint:errcheck // best effort
		io.Copy(io.Discard, cr)                        //nolint:errcheck // count the rest
		w.text(hdr, sub, raw.Bytes())
	default:
		if !w.admit(bs, depth) {
			return nil
		}
		io.Copy(io.Discard, cr) //nolint:errcheck // count only
	}
	bs.Size = uint32(cr.n)
	if typ == "text" {
		bs.Text.NumLines = cr.lines
	}
	if isAttachment(typ, disp, params) {
		w.attachments = true
	}
	return bs
}

func isAttachment(typ string, disp *imap.BodyStructureDisposition, params map[string]string) bool {
	if disp != nil && strings.EqualFold(disp.Value, "attachment") {
		return true
	}
	if disp != nil && strings.EqualFold(disp.Value, "inline") {
		return false
	}
	_, named := params["name"]
	return named && typ != "text" && typ != "multipart"
}

// text decodes a text part (transfer encoding, then charset) and keeps it.
func (w *walker) text(hdr textproto.Header, sub string, raw []byte) {
	e, err := gomessage.New(gomessage.Header{Header: hdr}, bytes.NewReader(raw))
	var r io.Reader = bytes.NewReader(raw)
	if e != nil && (err == nil || gomessage.IsUnknownCharset(err) || gomessage.IsUnknownEncoding(err)) {
		r = e.Body
	}
	dec, _ := io.ReadAll(io.LimitReader(r, maxSearchText))
	s := strings.ToValidUTF8(string(dec), "\uFFFD")
	if sub == "html" {
		s = HTMLText(s)
	}
	if w.depthMsg > 0 {
		if w.nested.Len() < maxSearchText {
			w.nested.WriteString(s)
			w.nested.WriteByte('\n')
		}
		return
	}
	if sub == "html" {
		if w.html.Len() < maxSearchText {
			w.html.WriteString(s)
			w.html.WriteByte('\n')
		}
		return
	}
	if w.plain.Len() < maxSearchText {
		w.plain.WriteString(s)
		w.plain.WriteByte('\n')
	}
}

// HTMLText returns the visible text of an HTML document.
func HTMLText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return b.String()
		case html.StartTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				skip++
			case "br", "p", "div", "tr", "li":
				b.WriteByte('\n')
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				if skip > 0 {
					skip--
				}
			}
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
				b.WriteByte(' ')
			}
		}
	}
}

func disposition(h gomessage.Header) *imap.BodyStructureDisposition {
	v := h.Get("Content-Disposition")
	if v == "" {
		return nil
	}
	d, params, err := mime.ParseMediaType(v)
	if err != nil {
		d, _, _ = strings.Cut(v, ";")
		d = strings.TrimSpace(d)
		params = nil
	}
	if d == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: strings.ToLower(d), Params: params}
}

func language(h gomessage.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	var out []string
	for _, l := range strings.Split(v, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func preview(s string) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = n > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
		if n >= previewLen {
			break
		}
	}
	return b.String()
}

func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") // drops a rune cut in half
}

// cutAsEnd reads an attached message as go-imap's BODYSTRUCTURE does, which
// reads the part whole before parsing it: where the part is cut short (no
// delimiter after it), the message simply ends. Its last multipart then has the
// parts that end of data gives it, as go-imap finds them.
type cutAsEnd struct{ r io.Reader }

func (c cutAsEnd) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

type countingReader struct {
	r     io.Reader
	n     int64
	lines int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.lines += int64(bytes.Count(p[:n], []byte{'\n'}))
	return n, err
}

// AddressesJSON encodes an address list for the listing columns.
func AddressesJSON(list []Address) string {
	if len(list) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(list)
	return string(b)
}

// ParseAddressesJSON decodes what AddressesJSON made.
func ParseAddressesJSON(s string) []Address {
	var out []Address
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil
	}
	return out
}

// String formats an address for display: "Name <email>" or "email".
func (a Address) String() string {
	if a.Name == "" {
		return a.Email
	}
	return fmt.Sprintf("%q <%s>", a.Name, a.Email)
}
