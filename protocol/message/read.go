package message

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/html/charset"
)

// Reading: a stored message decoded for display, in one streaming pass. Transfer
// encodings (RFC 2045) and charsets (any the charset package knows: GBK and
// GB18030, Big5, ISO-8859-x, Windows-125x, Shift_JIS, KOI8-R…) are decoded to
// UTF-8; header text per RFC 2047, file names per RFC 2231.

// MaxDisplayText caps the decoded text and the decoded HTML kept for display.
const MaxDisplayText = 4 << 20

const maxHeaderFields = 500

// Decoded is a message as a reader sees it.
type Decoded struct {
	Headers               []HeaderField // every field of the top header, decoded, in order
	From, To, Cc, ReplyTo []Address
	Subject               string
	Date                  *time.Time
	MessageID             string   // without angle brackets
	InReplyTo, References []string // without angle brackets
	Text                  string   // the text/plain parts of the body
	HTML                  string   // the text/html parts of the body, as sent (not sanitized)
	Truncated             bool     // Text or HTML was cut at MaxDisplayText
	Attachments           []AttachmentInfo
}

// AttachmentInfo describes a part that is not body text: a file, an inline
// image, an attached message.
type AttachmentInfo struct {
	Index       int // its place among the message's attachments, from 0
	Filename    string
	ContentType string // media type, with the charset of text
	Size        int64  // decoded size in octets
	ContentID   string // without angle brackets
	Inline      bool
}

// Decode reads a whole message from r.
func Decode(r io.Reader) (*Decoded, error) {
	return decode(r, MaxParts)
}

func decode(r io.Reader, maxParts int) (*Decoded, error) {
	d := &Decoded{}
	var text, html strings.Builder
	visit := func(kind leafKind, info *AttachmentInfo, e *gomessage.Entity) (bool, error) {
		switch kind {
		case leafAttachment:
			n, err := io.Copy(io.Discard, e.Body)
			if err != nil && !tolerable(err) {
				return false, fmt.Errorf("read attachment %d: %w", info.Index, err)
			}
			info.Size = n
			d.Attachments = append(d.Attachments, *info)
		case leafText, leafHTML:
			b := &text
			if kind == leafHTML {
				b = &html
			}
			s, cut, err := displayText(e, kind, MaxDisplayText-b.Len())
			if err != nil {
				return false, err
			}
			if b.Len() > 0 && s != "" {
				b.WriteString("\n")
			}
			b.WriteString(s)
			d.Truncated = d.Truncated || cut
		}
		return false, nil
	}
	top, err := walk(r, visit, maxParts)
	if err != nil {
		return nil, err
	}
	d.Text, d.HTML = text.String(), html.String()
	d.describe(top)
	return d, nil
}

func (d *Decoded) describe(hdr textproto.Header) {
	mh := mail.Header{Header: gomessage.Header{Header: hdr}}
	f := mh.Fields()
	for f.Next() && len(d.Headers) < maxHeaderFields {
		v, err := f.Text()
		if err != nil {
			v = f.Value()
		}
		d.Headers = append(d.Headers, HeaderField{Name: f.Key(), Value: strings.ToValidUTF8(v, "\uFFFD")})
	}
	d.Subject, _ = mh.Subject()
	d.Subject = strings.ToValidUTF8(d.Subject, "\uFFFD")
	d.From, d.To, d.Cc, d.ReplyTo = addresses(mh, "From"), addresses(mh, "To"), addresses(mh, "Cc"), addresses(mh, "Reply-To")
	if t, err := mh.Date(); err == nil && !t.IsZero() {
		t = t.UTC()
		d.Date = &t
	}
	d.MessageID, _ = mh.MessageID()
	d.InReplyTo, _ = mh.MsgIDList("In-Reply-To")
	d.References, _ = mh.MsgIDList("References")
}

// ErrNoAttachment is an attachment index the message does not have.
var ErrNoAttachment = errors.New("no such attachment")

// StreamAttachment finds attachment index of the message read from r, calls open
// with its description, and copies its decoded content to the writer open
// returns. Before open is called nothing is written; a message without that
// attachment is ErrNoAttachment.
func StreamAttachment(r io.Reader, index int, open func(*AttachmentInfo) (io.Writer, error)) error {
	return streamAttachment(r, index, open, MaxParts)
}

func streamAttachment(r io.Reader, index int, open func(*AttachmentInfo) (io.Writer, error), maxParts int) error {
	found := false
	visit := func(kind leafKind, info *AttachmentInfo, e *gomessage.Entity) (bool, error) {
		if kind != leafAttachment || info.Index != index {
			return false, nil
		}
		found = true
		w, err := open(info)
		if err != nil {
			return true, err
		}
		if _, err := io.Copy(w, e.Body); err != nil && !tolerable(err) {
			return true, fmt.Errorf("copy attachment %d: %w", index, err)
		}
		return true, nil
	}
	if _, err := walk(r, visit, maxParts); err != nil {
		return err
	}
	if !found {
		return ErrNoAttachment
	}
	return nil
}

type leafKind int

const (
	leafText leafKind = iota
	leafHTML
	leafAttachment
)

// visitor sees each leaf part once, in order; it returns true to stop the walk.
type visitor func(kind leafKind, info *AttachmentInfo, e *gomessage.Entity) (bool, error)

// walk reads the message's header, then visits its leaf parts depth first. An
// attached message (message/rfc822) is one attachment: its parts are its own.
// Malformed structure ends the walk quietly; what was read stands. Past maxParts
// parts of multiparts (MaxParts but in tests), the rest of each open multipart
// is one attachment of raw octets (application/octet-stream), the same octets
// as Parse's opaque parts, so that what is shown and listed stays small. (This
// walk does not enter attached messages and keeps no structure, so it counts
// the parts of multiparts only.)
func walk(r io.Reader, visit visitor, maxParts int) (textproto.Header, error) {
	// The parsers below turn a read error into the end of a part or a cut-short
	// multipart, which a malformed message also gives; recording it here tells a
	// failing store from a message that is merely broken.
	rec := &errRecorder{r: r}
	hdr, err := walkFrom(rec, visit, maxParts)
	if rec.err != nil {
		return hdr, fmt.Errorf("read message: %w", rec.err)
	}
	return hdr, err
}

type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func walkFrom(r io.Reader, visit visitor, maxParts int) (textproto.Header, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	hdr, err := textproto.ReadHeader(br)
	if err != nil {
		hdr = textproto.Header{} // a header that cannot be read: show the rest as text
	}
	w := &partWalker{visit: visit, maxParts: maxParts}
	_, err = w.part(hdr, br, 0)
	return hdr, err
}

type partWalker struct {
	visit    visitor
	next     int // index of the next attachment
	parts    int // parts of multiparts read, at any depth
	maxParts int
}

func (w *partWalker) part(hdr textproto.Header, body io.Reader, depth int) (bool, error) {
	h := gomessage.Header{Header: hdr}
	mediaType, params, err := h.ContentType()
	if err != nil || !strings.Contains(mediaType, "/") {
		mediaType, params = "text/plain", map[string]string{} // RFC 2045 §5.2
	}
	mediaType = strings.ToLower(mediaType)
	if strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "" && depth < maxDepth {
		mr := newMultipartReader(body, params["boundary"])
		for {
			if w.parts >= w.maxParts {
				// Past the part limit: the remaining parts of each open
				// multipart are one attachment.
				if !mr.NextRaw() {
					return false, nil
				}
				return w.rest(mr.Rest())
			}
			p, err := mr.NextPart()
			if err != nil {
				return false, nil // the end, or structure past repair
			}
			w.parts++
			stop, err := w.part(p.Header, p, depth+1)
			if stop || err != nil {
				return stop, err
			}
		}
	}
	disp, _, _ := h.ContentDisposition()
	disp = strings.ToLower(disp)
	filename, _ := (&mail.AttachmentHeader{Header: h}).Filename()
	if filename == "" {
		filename = extFilename(h.Get("Content-Disposition"))
	}
	kind := leafAttachment
	if disp != "attachment" && (mediaType == "text/plain" || mediaType == "text/html") && (filename == "" || disp == "inline") {
		kind = leafText
		if mediaType == "text/html" {
			kind = leafHTML
		}
	}
	var info *AttachmentInfo
	if kind == leafAttachment {
		info = w.describe(h, mediaType, params, disp, filename)
		// A file is served as it was sent: undo the transfer encoding only, and
		// keep the charset the Content-Type names.
		delete(params, "charset")
		h = h.Copy()
		h.SetContentType(mediaType, params)
	}
	e, err := gomessage.New(h, body)
	if err != nil && !tolerable(err) {
		return false, fmt.Errorf("read part: %w", err)
	}
	stop, err := w.visit(kind, info, e)
	if stop || err != nil {
		return stop, err
	}
	if _, err := io.Copy(io.Discard, e.Body); err != nil && !tolerable(err) {
		return false, fmt.Errorf("skip part: %w", err)
	}
	return false, nil
}

// rest visits the unparsed rest of a multipart as one attachment.
func (w *partWalker) rest(r io.Reader) (bool, error) {
	info := &AttachmentInfo{Index: w.next, ContentType: "application/octet-stream"}
	w.next++
	e, err := gomessage.New(gomessage.Header{}, r)
	if err != nil {
		return false, fmt.Errorf("read part: %w", err)
	}
	stop, err := w.visit(leafAttachment, info, e)
	if stop || err != nil {
		return stop, err
	}
	if _, err := io.Copy(io.Discard, e.Body); err != nil && !tolerable(err) {
		return false, fmt.Errorf("skip part: %w", err)
	}
	return false, nil
}

func (w *partWalker) describe(h gomessage.Header, mediaType string, params map[string]string, disp, filename string) *AttachmentInfo {
	ct := mediaType
	if strings.HasPrefix(mediaType, "text/") && params["charset"] != "" {
		ct += "; charset=" + strings.ToLower(params["charset"])
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		ct = "application/octet-stream" // nested past maxDepth: opaque bytes
	}
	cid := strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>")
	info := &AttachmentInfo{Index: w.next, Filename: strings.ToValidUTF8(filename, "_"), ContentType: ct, ContentID: cid,
		Inline: disp == "inline" || (disp == "" && cid != "")}
	w.next++
	return info
}

// extFilename decodes an RFC 2231 filename*= in a charset other than UTF-8
// (mime.ParseMediaType knows only UTF-8 and US-ASCII): old clients write
// ISO-8859-x and Windows-125x names this way.
func extFilename(disposition string) string {
	for _, p := range strings.Split(disposition, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "filename*") {
			continue
		}
		cs, rest, ok1 := strings.Cut(strings.Trim(strings.TrimSpace(v), `"`), "'")
		_, enc, ok2 := strings.Cut(rest, "'")
		raw, err := url.PathUnescape(enc)
		if !ok1 || !ok2 || err != nil || cs == "" {
			return ""
		}
		if gomessage.CharsetReader == nil {
			return ""
		}
		dec, err := gomessage.CharsetReader(strings.ToLower(cs), strings.NewReader(raw))
		if err != nil {
			return ""
		}
		b, err := io.ReadAll(dec)
		if err != nil {
			return ""
		}
		return string(b)
	}
	return ""
}

// displayText decodes a text part to UTF-8, keeping at most max bytes.
func displayText(e *gomessage.Entity, kind leafKind, max int) (string, bool, error) {
	if max < 0 {
		max = 0
	}
	raw, err := io.ReadAll(io.LimitReader(e.Body, int64(max)+1))
	if err != nil && !tolerable(err) {
		return "", false, fmt.Errorf("read text part: %w", err)
	}
	cut := len(raw) > max
	if cut {
		raw = raw[:max]
	}
	_, params, _ := e.Header.ContentType()
	if !utf8.Valid(raw) && params["charset"] == "" && kind == leafHTML {
		// No charset declared: an HTML document may name it in a <meta> tag.
		if enc, name, _ := charset.DetermineEncoding(raw, "text/html"); name != "utf-8" {
			if dec, err := enc.NewDecoder().Bytes(raw); err == nil {
				raw = dec
			}
		}
	}
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	if cut {
		s = strings.TrimRight(s, "\uFFFD") // a character cut in half
	}
	return s, cut, nil
}

// tolerable reports errors of the message rather than of reading it: a charset
// or transfer encoding the decoder does not know (the bytes come through as they
// are), malformed encoded data, a multipart cut short. A failure to read the
// stored bytes is none of these and ends the walk.
func tolerable(err error) bool {
	if gomessage.IsUnknownCharset(err) || gomessage.IsUnknownEncoding(err) {
		return true
	}
	var ce base64.CorruptInputError
	return errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "quotedprintable")
}
