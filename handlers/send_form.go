package handlers

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// The form a browser posts (multipart/form-data): one field per value. Files
// stream from the request into buffers as they arrive, so a form holds no file
// in memory beyond a buffer's first MiB.
//
//	from, subject, text, html         at most once each
//	to, cc, bcc, reply_to             any number of times, each one address or a comma-separated list
//	headers                           any number of times, each "Name: value"
//	attachments                       files
//	inline                            files shown inside the HTML, referenced as cid:<file name>
var singleFormFields = map[string]bool{"from": true, "subject": true, "text": true, "html": true}

func (h *Handlers) readForm(c *gin.Context) (*outgoing, error) {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeInvalid, "the multipart/form-data body has no boundary")
	}
	o := &outgoing{}
	ok := false
	defer func() {
		if !ok {
			o.close()
		}
	}()
	values := map[string][]string{}
	nfile := 0
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, formError(err)
		}
		name := p.FormName()
		switch {
		case name == "attachments" || name == "inline":
			field := fmt.Sprintf("%s[%d]", name, nfile)
			nfile++
			if err := h.formFile(o, p, field, name == "inline"); err != nil {
				return nil, err
			}
		case singleFormFields[name] || name == "to" || name == "cc" || name == "bcc" || name == "reply_to" || name == "headers":
			v, err := io.ReadAll(p)
			if err != nil {
				return nil, formError(err)
			}
			if singleFormFields[name] && len(values[name]) > 0 {
				return nil, models.Invalid(name, "is given more than once")
			}
			values[name] = append(values[name], string(v))
		default:
			return nil, &HTTPError{Status: http.StatusBadRequest, Code: CodeInvalid, Field: name, Message: name + ": unknown field"}
		}
	}
	first := func(k string) string {
		if v := values[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	o.subject, o.text, o.html = first("subject"), strings.ReplaceAll(first("text"), "\r\n", "\n"), first("html")
	var from *AddressInput
	if v := strings.TrimSpace(first("from")); v != "" {
		a := formAddress(v)
		from = &a
	}
	lists := map[string][]AddressInput{}
	for _, k := range []string{"to", "cc", "bcc", "reply_to"} {
		for _, v := range values[k] {
			lists[k] = append(lists[k], formAddresses(v)...)
		}
	}
	if err := o.setAddresses(from, lists["to"], lists["cc"], lists["bcc"], lists["reply_to"]); err != nil {
		return nil, err
	}
	for i, v := range values["headers"] {
		name, value, found := strings.Cut(v, ":")
		if !found {
			return nil, models.Invalid(fmt.Sprintf("headers[%d]", i), `must be "Name: value"`)
		}
		o.headers = append(o.headers, message.HeaderField{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	if err := o.check(h.maxRcpt); err != nil {
		return nil, err
	}
	ok = true
	return o, nil
}

// formFile streams one file of the form into a buffer.
func (h *Handlers) formFile(o *outgoing, p *multipart.Part, field string, inline bool) error {
	b := h.mbox.NewBuffer()
	o.buffers = append(o.buffers, b)
	if _, err := io.Copy(b, p); err != nil {
		if errors.Is(err, message.ErrTooLarge) {
			return err
		}
		return formError(err)
	}
	name := p.FileName()
	// application/octet-stream is what a browser or curl says when it does not
	// know: then the type is guessed from the name.
	ct := p.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/octet-stream" {
		ct = ""
	}
	cid := ""
	if inline {
		cid = name // the HTML refers to it as cid:<file name>
	}
	return o.addAttachment(field, b, name, ct, cid, inline)
}

func formAddress(v string) AddressInput {
	if a, err := mail.ParseAddress(v); err == nil {
		return AddressInput{Name: a.Name, Email: a.Address}
	}
	return AddressInput{Email: v} // kept whole, for the check that names the field
}

func formAddresses(v string) []AddressInput {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]AddressInput, len(list))
		for i, a := range list {
			out[i] = AddressInput{Name: a.Name, Email: a.Address}
		}
		return out
	}
	return []AddressInput{{Email: strings.TrimSpace(v)}}
}

func formError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	}
	return Errorf(http.StatusBadRequest, CodeInvalid, "the multipart/form-data body is malformed")
}
