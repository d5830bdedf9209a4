package message

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Composing: a message built from parts, as a web app sends it (RFC 5322 header
// fields; MIME per RFC 2045/2046: text and HTML as multipart/alternative, inline
// images referenced by Content-ID as multipart/related (RFC 2387), attachments
// as multipart/mixed; RFC 2047 for non-ASCII header text and display names;
// RFC 2231 for non-ASCII file names).

// Draft is a message to compose.
type Draft struct {
	From    Address
	To, Cc  []Address
	ReplyTo []Address
	Subject string
	Text    string // the plain text body ("": none)
	HTML    string // the HTML body ("": none)
	// Attachments in order. Inline ones with a ContentID go beside the HTML
	// body in multipart/related; the others are attachments proper.
	Attachments []Attachment
	// Headers are extra header fields, each accepted by CheckHeaderField.
	Headers []HeaderField
	Date    time.Time // zero: now
	// Hostname names this server in the Message-ID.
	Hostname string
}

// Bcc recipients are no part of a Draft on purpose: they are in the envelope
// only, and never in any header field.

// Attachment is one file of a Draft.
type Attachment struct {
	Filename    string
	ContentType string // a media type, with parameters if any; "": from the file name
	Inline      bool
	ContentID   string // without angle brackets
	Body        Source
}

// HeaderField is one extra header field.
type HeaderField struct{ Name, Value string }

// reservedFields are header fields a Draft's Headers may not set: mailgate writes
// them (structure, identity, dates) or they record a message's path (trace
// fields, RFC 5322 §3.6.7; signatures and authentication results added on the
// way), which a sender must not be able to forge.
var reservedFields = map[string]string{
	"from": "from", "sender": "from", "to": "to", "cc": "cc", "bcc": "bcc", "reply-to": "reply_to",
	"subject": "subject", "date": "", "message-id": "", "mime-version": "", "received": "", "return-path": "",
	"dkim-signature": "", "authentication-results": "", "delivered-to": "", "x-original-to": "",
}

var reservedPrefixes = []string{"content-", "resent-", "arc-"}

// CheckHeaderField tells why an extra header field cannot be part of a message,
// or returns nil.
func CheckHeaderField(name, value string) error {
	if name == "" || len(name) > 76 {
		return errors.New("a header field name has 1 to 76 characters")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return fmt.Errorf("header field name %q may only hold printable ASCII without ':'", name)
		}
	}
	lower := strings.ToLower(name)
	if field, ok := reservedFields[lower]; ok {
		if field != "" {
			return fmt.Errorf("%s is set from the field %q, not from headers", name, field)
		}
		return fmt.Errorf("%s is written by the server and cannot be set", name)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(lower, p) {
			return fmt.Errorf("%s* fields describe the message's structure or path and cannot be set", name[:len(p)])
		}
	}
	if len(value) > 4000 {
		return fmt.Errorf("the value of %s is longer than 4000 bytes", name)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("the value of %s is not UTF-8", name)
	}
	for _, r := range value {
		if r < 32 && r != '\t' || r == 127 {
			return fmt.Errorf("the value of %s holds a control character (a header field is one line)", name)
		}
	}
	return nil
}

// CheckText tells why s cannot be a one-line header value (subject, display name).
func CheckText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not UTF-8")
	}
	for _, r := range s {
		if r < 32 && r != '\t' || r == 127 {
			return errors.New("holds a control character (it must be one line)")
		}
	}
	return nil
}

// Compose writes d as a MIME message to w and returns its Message-ID (without
// angle brackets). Attachment bodies are streamed into w, base64-encoded, one at
// a time.
func Compose(w io.Writer, d *Draft) (string, error) {
	var scratch mail.Header
	date := d.Date
	if date.IsZero() {
		date = time.Now()
	}
	scratch.SetDate(date)
	host := d.Hostname
	if host == "" {
		host = "localhost"
	}
	if err := scratch.GenerateMessageIDWithHostname(host); err != nil {
		return "", fmt.Errorf("make Message-ID: %w", err)
	}
	msgID, _ := scratch.MessageID()
	fields := [][2]string{{"Date", scratch.Get("Date")}, {"From", addressList(&scratch, []Address{d.From})}}
	for _, f := range []struct {
		name string
		list []Address
	}{{"To", d.To}, {"Cc", d.Cc}, {"Reply-To", d.ReplyTo}} {
		if len(f.list) > 0 {
			fields = append(fields, [2]string{f.name, addressList(&scratch, f.list)})
		}
	}
	scratch.SetSubject(d.Subject)
	fields = append(fields, [2]string{"Subject", scratch.Get("Subject")}, [2]string{"Message-Id", scratch.Get("Message-Id")})
	for _, f := range d.Headers {
		if err := CheckHeaderField(f.Name, f.Value); err != nil {
			return "", err
		}
		scratch.SetText("X-Scratch", f.Value)
		fields = append(fields, [2]string{f.Name, scratch.Get("X-Scratch")})
	}
	fields = append(fields, [2]string{"MIME-Version", "1.0"})

	root, err := d.tree()
	if err != nil {
		return "", err
	}
	if err := root.write(w, fields); err != nil {
		return "", err
	}
	return msgID, nil
}

func addressList(h *mail.Header, list []Address) string {
	out := make([]*mail.Address, len(list))
	for i, a := range list {
		out[i] = &mail.Address{Name: a.Name, Address: a.Email}
	}
	h.SetAddressList("X-Scratch", out)
	return h.Get("X-Scratch")
}

// part is one entity of the tree Compose writes: a multipart with children, or
// a leaf whose body is encoded on the way out.
type part struct {
	fields   [][2]string // Content-* fields, in order
	subtype  string      // multipart/<subtype> when children is set
	children []*part
	body     func() io.Reader
	encoding string // base64 or quoted-printable
}

func (d *Draft) tree() (*part, error) {
	var body *part
	text := textPart("plain", d.Text)
	html := textPart("html", d.HTML)
	switch {
	case d.Text != "" && d.HTML != "":
		body = &part{subtype: "alternative", children: []*part{text, html}}
	case d.HTML != "":
		body = html
	default:
		body = text // an empty text/plain part when there is no body at all
	}
	var related, mixed []*part
	for i := range d.Attachments {
		a := &d.Attachments[i]
		p, err := attachmentPart(a)
		if err != nil {
			return nil, fmt.Errorf("attachment %d: %w", i, err)
		}
		if a.Inline && a.ContentID != "" && d.HTML != "" {
			related = append(related, p)
		} else {
			mixed = append(mixed, p)
		}
	}
	if len(related) > 0 {
		body = &part{subtype: "related", children: append([]*part{body}, related...),
			fields: [][2]string{{"Content-Type", `multipart/related; type="` + relatedType(body) + `"`}}}
	}
	if len(mixed) > 0 {
		body = &part{subtype: "mixed", children: append([]*part{body}, mixed...)}
	}
	return body, nil
}

// relatedType is the type parameter of multipart/related: the root's type (RFC 2387 §3.1).
func relatedType(root *part) string {
	if root.children != nil {
		return "multipart/" + root.subtype
	}
	return "text/html"
}

func textPart(sub, s string) *part {
	return &part{
		fields:   [][2]string{{"Content-Type", "text/" + sub + "; charset=utf-8"}, {"Content-Transfer-Encoding", "quoted-printable"}},
		body:     func() io.Reader { return strings.NewReader(s) },
		encoding: "quoted-printable",
	}
}

func attachmentPart(a *Attachment) (*part, error) {
	mt, params, err := mime.ParseMediaType(a.ContentType)
	if a.ContentType == "" {
		mt, params, err = guessType(a.Filename), map[string]string{}, nil
	}
	if err != nil || !strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") {
		return nil, fmt.Errorf("content type %q is not a media type of a single part", a.ContentType)
	}
	disp := "attachment"
	if a.Inline {
		disp = "inline"
	}
	var ctParams, dispParams [][2]string
	for k, v := range params {
		if k != "name" {
			ctParams = append(ctParams, [2]string{k, v})
		}
	}
	if a.Filename != "" {
		ctParams = append(ctParams, [2]string{"name", a.Filename})
		dispParams = append(dispParams, [2]string{"filename", a.Filename})
	}
	fields := [][2]string{
		{"Content-Type", FormatParams(mt, ctParams)},
		{"Content-Disposition", FormatParams(disp, dispParams)},
		{"Content-Transfer-Encoding", "base64"},
	}
	if a.ContentID != "" {
		fields = append(fields, [2]string{"Content-Id", "<" + a.ContentID + ">"})
	}
	src := a.Body
	return &part{fields: fields, body: src.Reader, encoding: "base64"}, nil
}

func guessType(filename string) string {
	if t := mime.TypeByExtension(strings.ToLower(path.Ext(filename))); t != "" {
		if mt, _, err := mime.ParseMediaType(t); err == nil {
			return mt
		}
	}
	return "application/octet-stream"
}

// write writes p as a whole message: extra header fields, p's own, then the body.
func (p *part) write(w io.Writer, extra [][2]string) error {
	boundary := p.boundary()
	h := headerOf(append(append([][2]string{}, extra...), p.contentFields(boundary)...))
	if err := textproto.WriteHeader(w, h); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	if err := p.writeBody(w, boundary); err != nil {
		return err
	}
	if p.children == nil {
		_, err := io.WriteString(w, "\r\n") // end the last line of a single-part message
		return err
	}
	return nil
}

// boundary returns a fresh random boundary for a multipart, "" for a leaf.
func (p *part) boundary() string {
	if p.children == nil {
		return ""
	}
	return textproto.NewMultipartWriter(io.Discard).Boundary()
}

// contentFields are p's Content-* fields, with the boundary of a multipart.
func (p *part) contentFields(boundary string) [][2]string {
	if p.children == nil {
		return p.fields
	}
	ct := "multipart/" + p.subtype
	if len(p.fields) > 0 { // multipart/related carries its root's type
		ct = p.fields[0][1]
	}
	return [][2]string{{"Content-Type", ct + `; boundary="` + boundary + `"`}}
}

func headerOf(fields [][2]string) textproto.Header {
	var h textproto.Header
	for i := len(fields) - 1; i >= 0; i-- { // textproto writes the last added first
		h.AddRaw(fold(fields[i][0], fields[i][1]))
	}
	return h
}

// fold renders a header field with its lines kept within 78 octets where the
// value has room to break (RFC 5322 §2.2.3): at spaces, which includes the
// spaces between RFC 2047 encoded-words and after parameter separators.
func fold(name, value string) []byte {
	var b strings.Builder
	b.WriteString(name + ":")
	n := b.Len()
	for i, word := range strings.Split(value, " ") {
		if i > 0 && n+1+len(word) > 78 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteString(" " + word)
		n += 1 + len(word)
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// writeBody writes p's body: its children between boundaries, or its content
// encoded.
func (p *part) writeBody(w io.Writer, boundary string) error {
	if p.children != nil {
		mw := textproto.NewMultipartWriter(w)
		mw.SetBoundary(boundary)
		for _, c := range p.children {
			cb := c.boundary()
			pw, err := mw.CreatePart(headerOf(c.contentFields(cb)))
			if err != nil {
				return fmt.Errorf("start part: %w", err)
			}
			if err := c.writeBody(pw, cb); err != nil {
				return err
			}
		}
		if err := mw.Close(); err != nil {
			return fmt.Errorf("end multipart: %w", err)
		}
		return nil
	}
	var enc io.WriteCloser
	switch p.encoding {
	case "base64":
		enc = base64.NewEncoder(base64.StdEncoding, &lineBreaker{w: w, max: 76})
	default:
		enc = quotedprintable.NewWriter(w)
	}
	if _, err := io.Copy(enc, p.body()); err != nil {
		return fmt.Errorf("write body: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("write body: %w", err)
	}
	return nil
}

// lineBreaker cuts base64 output into lines of max characters (RFC 2045 §6.8).
type lineBreaker struct {
	w   io.Writer
	max int
	n   int
}

func (l *lineBreaker) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		room := l.max - l.n
		chunk := p
		if len(chunk) > room {
			chunk = chunk[:room]
		}
		n, err := l.w.Write(chunk)
		written += n
		l.n += n
		if err != nil {
			return written, err
		}
		p = p[len(chunk):]
		if l.n == l.max {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return written, err
			}
			l.n = 0
		}
	}
	return written, nil
}

// FormatParams renders a media type or disposition with parameters. Plain ASCII
// values are quoted strings; any other value is written per RFC 2231: UTF-8,
// percent-encoded, and cut into numbered continuations short enough for header
// folding (name*0*=utf-8”…; name*1*=…).
func FormatParams(value string, params [][2]string) string {
	var b strings.Builder
	b.WriteString(value)
	for _, p := range params {
		name, v := p[0], p[1]
		if plainASCII(v) {
			if isToken(v) && name == "charset" { // file names stay quoted: some clients want them so
				b.WriteString("; " + name + "=" + v)
			} else {
				b.WriteString("; " + name + `="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`)
			}
			continue
		}
		enc := percentEncode(v)
		const piece = 40
		if len(enc) <= piece {
			b.WriteString("; " + name + "*=utf-8''" + enc)
			continue
		}
		for i := 0; len(enc) > 0; i++ {
			n := min(piece, len(enc))
			// Never cut a %XX escape in two.
			if k := strings.LastIndexByte(enc[:n], '%'); k >= 0 && k > n-3 && n < len(enc) {
				n = k
			}
			prefix := ""
			if i == 0 {
				prefix = "utf-8''"
			}
			fmt.Fprintf(&b, "; %s*%d*=%s%s", name, i, prefix, enc[:n])
			enc = enc[n:]
		}
	}
	return b.String()
}

func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 32 || s[i] > 126 {
			return false
		}
	}
	return len(s) <= 60
}

// isToken reports whether s is an RFC 2045 token, which needs no quotes.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 127 || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// percentEncode escapes every byte that is not an RFC 2231 attribute-char.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
