package handlers

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// SendRequest is a message to send. Addresses are "alice@example.com",
// "Alice Liddell <alice@example.com>" or {"name":…,"email":…}.
type SendRequest struct {
	// The sender: you (the default) or a group you belong to.
	From *AddressInput  `json:"from,omitempty" extensions:"x-or-string"`
	To   []AddressInput `json:"to" extensions:"x-or-string"`
	Cc   []AddressInput `json:"cc" extensions:"x-or-string"`
	// Recipients who get the message without appearing in any header field.
	Bcc     []AddressInput `json:"bcc" extensions:"x-or-string"`
	ReplyTo []AddressInput `json:"reply_to" extensions:"x-or-string"`
	Subject string         `json:"subject" example:"Quarterly report"`
	// The plain-text body.
	Text string `json:"text" example:"Hello Bob,\nthe numbers are attached."`
	// The HTML body; with text, the message carries both as alternatives.
	HTML        string            `json:"html" example:"<p>Hello Bob,</p><p><img src=\"cid:chart\"></p>"`
	Attachments []AttachmentInput `json:"attachments"`
	// Extra header fields (name → value). Fields mailgate writes or that record a
	// message's path (From, To, Subject, Date, Message-ID, MIME-Version, Content-*,
	// Received, Return-Path, Resent-*, DKIM-Signature…) are refused.
	Headers map[string]string `json:"headers" example:"X-Campaign:q3-report"`
} //@name SendRequest

// AddressInput is an address in a SendRequest.
type AddressInput struct {
	Name  string `json:"name,omitempty" example:"Bob Builder"`
	Email string `json:"email" format:"email" example:"bob@example.com" binding:"required"`
} //@name AddressInput

// UnmarshalJSON takes an object or a string (an RFC 5322 mailbox).
func (a *AddressInput) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		a.Name, a.Email = "", s
		if strings.Contains(s, "<") {
			// "Name <address>"; what does not parse is kept whole, for the
			// check that names the field.
			if p, err := mail.ParseAddress(s); err == nil {
				a.Name, a.Email = p.Name, p.Address
			}
		}
		return nil
	}
	type plain AddressInput
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*a = AddressInput(p)
	return nil
}

// AttachmentInput is a file of a SendRequest.
type AttachmentInput struct {
	Filename string `json:"filename" example:"report.pdf"`
	// Media type; empty: guessed from the file name.
	ContentType string `json:"content_type" example:"application/pdf"`
	// The file, base64-encoded (RFC 4648, with padding; line breaks are ignored).
	Content base64Text `json:"content" swaggertype:"string" format:"byte" example:"JVBERi0xLjQK"`
	// Show inside the HTML body (referenced as cid:<content_id>) rather than as a file.
	Inline    bool   `json:"inline" example:"false"`
	ContentID string `json:"content_id" example:"chart"`
} //@name AttachmentInput

// base64Text keeps the raw JSON string of an attachment's content without
// copying it: it points into the request body, which outlives the send, and is
// decoded straight into a buffer, so the request body is the only copy in memory.
type base64Text []byte

func (b *base64Text) UnmarshalJSON(data []byte) error {
	*b = data // checked by decodeBase64, which knows the field's name
	return nil
}

// outgoing is a send request read and checked, whether it came as JSON or as a form.
type outgoing struct {
	from                 *message.Address // nil: the user itself
	to, cc, bcc, replyTo []message.Address
	subject, text, html  string
	attachments          []message.Attachment
	headers              []message.HeaderField
	buffers              []*message.Buffer
	digests              []string // of the attachments' content
}

func (o *outgoing) close() {
	for _, b := range o.buffers {
		b.Close()
	}
}

// hash identifies the request's content for Idempotency-Key: the same message
// sent as JSON or as a form, with any boundary or field order, hashes the same.
func (o *outgoing) hash() string {
	type att struct {
		Filename, ContentType, ContentID, Digest string
		Inline                                   bool
	}
	v := struct {
		From                 *message.Address
		To, Cc, Bcc, ReplyTo []message.Address
		Subject, Text, HTML  string
		Headers              []message.HeaderField
		Attachments          []att
	}{o.from, o.to, o.cc, o.bcc, o.replyTo, o.subject, o.text, o.html, o.headers, nil}
	for i, a := range o.attachments {
		v.Attachments = append(v.Attachments, att{a.Filename, a.ContentType, a.ContentID, o.digests[i], a.Inline})
	}
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readOutgoing reads a send request, as JSON or as multipart/form-data.
func (h *Handlers) readOutgoing(c *gin.Context) (*outgoing, error) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if c.GetHeader("Content-Type") == "" {
		mt, err = "application/json", nil
	}
	switch {
	case err != nil:
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return h.readJSON(c)
	case mt == "multipart/form-data":
		return h.readForm(c)
	}
	return nil, Errorf(http.StatusUnsupportedMediaType, CodeUnsupported, "send the message as application/json or multipart/form-data")
}

func (h *Handlers) readJSON(c *gin.Context) (*outgoing, error) {
	var buf bytes.Buffer
	if n := c.Request.ContentLength; n > 0 {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(c.Request.Body); err != nil {
		return nil, jsonError(err)
	}
	body := buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, Errorf(http.StatusBadRequest, CodeInvalid, "request body is empty; a JSON object is required")
	}
	var req SendRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, jsonError(err)
	}
	if err := checkFields(body); err != nil {
		return nil, err
	}
	o := &outgoing{subject: req.Subject, text: req.Text, html: req.HTML}
	ok := false
	defer func() {
		if !ok {
			o.close()
		}
	}()
	if err := o.setAddresses(req.From, req.To, req.Cc, req.Bcc, req.ReplyTo); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(req.Headers))
	for k := range req.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		o.headers = append(o.headers, message.HeaderField{Name: k, Value: req.Headers[k]})
	}
	for i, a := range req.Attachments {
		field := fmt.Sprintf("attachments[%d]", i)
		b := h.mbox.NewBuffer()
		o.buffers = append(o.buffers, b)
		if err := decodeBase64(b, a.Content, field+".content"); err != nil {
			return nil, err
		}
		if err := o.addAttachment(field, b, a.Filename, a.ContentType, a.ContentID, a.Inline); err != nil {
			return nil, err
		}
	}
	if err := o.check(h.maxRcpt); err != nil {
		return nil, err
	}
	ok = true
	return o, nil
}

// checkFields refuses unknown fields at the top and in attachments, naming them.
// body is valid JSON (json.Unmarshal accepted it): one quick pass over it finds
// the keys, skipping values (the base64 strings) at the speed of IndexByte.
func checkFields(body []byte) error {
	top, atts := jsonKeys(body)
	if err := knownFields(top, reflect.TypeOf(SendRequest{}), ""); err != nil {
		return err
	}
	for i, keys := range atts {
		if err := knownFields(keys, reflect.TypeOf(AttachmentInput{}), fmt.Sprintf("attachments[%d].", i)); err != nil {
			return err
		}
	}
	return nil
}

func knownFields(keys []string, t reflect.Type, prefix string) error {
	known := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	for _, k := range keys {
		if !known[k] {
			f := prefix + k
			return &HTTPError{Status: http.StatusBadRequest, Code: CodeInvalid, Field: f, Message: f + ": unknown field"}
		}
	}
	return nil
}

// jsonKeys lists the keys of the top-level object of a valid JSON document, and
// of each object in its "attachments" array.
func jsonKeys(b []byte) (top []string, attachments [][]string) {
	s := &jsonSkipper{b: b}
	s.object(func(key string) {
		top = append(top, key)
		if key != "attachments" || s.peek() != '[' {
			s.value()
			return
		}
		s.array(func() {
			if s.peek() != '{' {
				s.value()
				return
			}
			var keys []string
			s.object(func(k string) { keys = append(keys, k); s.value() })
			attachments = append(attachments, keys)
		})
	})
	return top, attachments
}

// jsonSkipper walks valid JSON without decoding values.
type jsonSkipper struct {
	b []byte
	i int
}

func (s *jsonSkipper) peek() byte {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// str skips a string, and returns it decoded when decode is set (for keys).
func (s *jsonSkipper) str(decode bool) string {
	start := s.i
	s.i++
	for s.i < len(s.b) {
		k := bytes.IndexByte(s.b[s.i:], '"')
		if k < 0 {
			s.i = len(s.b)
			break
		}
		s.i += k + 1
		esc := 0
		for j := s.i - 2; j > start && s.b[j] == '\\'; j-- {
			esc++
		}
		if esc%2 == 0 {
			break
		}
	}
	var out string
	if decode {
		json.Unmarshal(s.b[start:s.i], &out) //nolint:errcheck // the document is valid
	}
	return out
}

func (s *jsonSkipper) object(field func(key string)) {
	if s.peek() != '{' {
		s.value()
		return
	}
	s.i++
	for s.peek() == '"' {
		key := s.str(true)
		if s.peek() == ':' {
			s.i++
		}
		field(key)
		if s.peek() == ',' {
			s.i++
		}
	}
	if s.peek() == '}' {
		s.i++
	}
}

func (s *jsonSkipper) array(elem func()) {
	s.i++ // [
	for c := s.peek(); c != ']' && c != 0; c = s.peek() {
		elem()
		if s.peek() == ',' {
			s.i++
		}
	}
	if s.peek() == ']' {
		s.i++
	}
}

func (s *jsonSkipper) value() {
	switch s.peek() {
	case '"':
		s.str(false)
	case '{':
		s.object(func(string) { s.value() })
	case '[':
		s.array(s.value)
	case 0:
	default: // number, true, false, null
		for s.i < len(s.b) && !strings.ContainsRune(",}] \t\r\n", rune(s.b[s.i])) {
			s.i++
		}
	}
}

// decodeBase64 decodes a JSON string of base64 into b, streaming.
func decodeBase64(b *message.Buffer, raw base64Text, field string) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil // absent: an empty file
	}
	if raw[0] != '"' {
		return models.Invalid(field, "must be a string of base64")
	}
	inner := []byte(raw[1 : len(raw)-1])
	if bytes.IndexByte(inner, '\\') >= 0 {
		// JSON escapes ("\/" from some encoders, "\n" between lines): undo them,
		// at the cost of one copy of this attachment.
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return models.Invalid(field, "is not a valid JSON string")
		}
		inner = []byte(s)
	}
	_, err := io.Copy(b, base64.NewDecoder(base64.StdEncoding, bytes.NewReader(inner)))
	var ce base64.CorruptInputError
	switch {
	case errors.As(err, &ce):
		return models.Invalid(field, fmt.Sprintf("is not valid base64 (at byte %d)", int64(ce)))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return models.Invalid(field, "is not valid base64 (truncated or missing padding)")
	case errors.Is(err, message.ErrTooLarge):
		return err
	case err != nil:
		return fmt.Errorf("decode base64: %w", err)
	}
	return nil
}

func (o *outgoing) setAddresses(from *AddressInput, to, cc, bcc, replyTo []AddressInput) error {
	if from != nil {
		a, err := checkAddress("from", *from)
		if err != nil {
			return err
		}
		o.from = &a
	}
	for _, l := range []struct {
		field string
		in    []AddressInput
		out   *[]message.Address
	}{{"to", to, &o.to}, {"cc", cc, &o.cc}, {"bcc", bcc, &o.bcc}, {"reply_to", replyTo, &o.replyTo}} {
		for i, in := range l.in {
			a, err := checkAddress(fmt.Sprintf("%s[%d]", l.field, i), in)
			if err != nil {
				return err
			}
			*l.out = append(*l.out, a)
		}
	}
	return nil
}

func checkAddress(field string, in AddressInput) (message.Address, error) {
	if strings.TrimSpace(in.Email) == "" {
		return message.Address{}, models.Invalid(field, "needs an email address")
	}
	n, err := models.NormalizeEmail(in.Email)
	if err != nil {
		return message.Address{}, models.Invalid(field, err.Error())
	}
	if err := message.CheckText(in.Name); err != nil {
		return message.Address{}, models.Invalid(field, "the name "+err.Error())
	}
	return message.Address{Name: strings.TrimSpace(in.Name), Email: n}, nil
}

func (o *outgoing) addAttachment(field string, b *message.Buffer, filename, contentType, cid string, inline bool) error {
	if err := message.CheckText(filename); err != nil || len(filename) > 255 {
		return models.Invalid(field+".filename", "must be one line of at most 255 bytes")
	}
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || !strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") {
			return models.Invalid(field+".content_type", fmt.Sprintf("%q is not a media type such as application/pdf", contentType))
		}
	}
	cid = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(cid), "<"), ">")
	for i := 0; i < len(cid); i++ {
		if c := cid[i]; c <= 32 || c >= 127 || c == '<' || c == '>' || c == '"' {
			return models.Invalid(field+".content_id", "may only hold printable ASCII without spaces, quotes or angle brackets")
		}
	}
	if len(cid) > 200 {
		return models.Invalid(field+".content_id", "is longer than 200 characters")
	}
	o.attachments = append(o.attachments, message.Attachment{Filename: filename, ContentType: contentType, Inline: inline, ContentID: cid, Body: b})
	o.digests = append(o.digests, hex.EncodeToString(b.SHA256()))
	return nil
}

// check validates what the fields say together.
func (o *outgoing) check(maxRcpt int) error {
	n := len(o.to) + len(o.cc) + len(o.bcc)
	if n == 0 {
		return models.Invalid("to", "at least one recipient in to, cc or bcc is required")
	}
	if n > maxRcpt {
		return models.Invalid("to", fmt.Sprintf("a message may have at most %d recipients (to, cc and bcc together)", maxRcpt))
	}
	if err := message.CheckText(o.subject); err != nil {
		return models.Invalid("subject", err.Error())
	}
	for _, f := range o.headers {
		if err := message.CheckHeaderField(f.Name, f.Value); err != nil {
			return models.Invalid("headers."+f.Name, err.Error())
		}
	}
	if len(o.headers) > 50 {
		return models.Invalid("headers", "at most 50 extra header fields")
	}
	for _, s := range []struct{ field, v string }{{"text", o.text}, {"html", o.html}} {
		if !utf8.ValidString(s.v) {
			return models.Invalid(s.field, "is not UTF-8")
		}
	}
	return nil
}
