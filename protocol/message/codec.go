package message

import (
	"encoding/json"
	"fmt"
	"mime"

	"github.com/emersion/go-imap/v2"
)

// The IMAP ENVELOPE and BODYSTRUCTURE are kept with the content as JSON, so that
// FETCH never parses a message again.
//
// The envelope's JSON is imap.Envelope's, every string decoded (group names
// included). SEARCH FROM, TO, CC and BCC read its address lists in the store
// (models/search.go: the keys "From", "To", "Cc", "Bcc" and "Name", "Mailbox",
// "Host" of each address), so those names are part of the stored format.

// EncodeEnvelope renders an envelope for storage.
func EncodeEnvelope(e *imap.Envelope) string {
	b, _ := json.Marshal(e)
	return string(b)
}

// DecodeEnvelope reads what EncodeEnvelope made, ready for go-imap's writer:
// group names are encoded (see wireEnvelope).
func DecodeEnvelope(s string) (*imap.Envelope, error) {
	var e imap.Envelope
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	wireEnvelope(&e)
	return &e, nil
}

// wireEnvelope encodes the group names of an envelope as go-imap encodes a
// display name (RFC 2047 Q encoding in UTF-8, and only when the text is not
// plain ASCII): a group name travels in the mailbox field (RFC 9051 §7.5.2),
// which go-imap sends as it is. Envelopes stored before groups were marked have
// no group start (every address had a host), so they pass unchanged.
func wireEnvelope(e *imap.Envelope) {
	if e == nil {
		return
	}
	for _, l := range [][]imap.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		for i := range l {
			if l[i].IsGroupStart() {
				l[i].Mailbox = mime.QEncoding.Encode("utf-8", l[i].Mailbox)
			}
		}
	}
}

// bodyJSON is imap.BodyStructure with its interface made concrete.
type bodyJSON struct {
	Multi  *multiJSON  `json:"m,omitempty"`
	Single *singleJSON `json:"s,omitempty"`
}

type multiJSON struct {
	Children []bodyJSON                      `json:"c"`
	Subtype  string                          `json:"t"`
	Extended *imap.BodyStructureMultiPartExt `json:"x,omitempty"`
}

type singleJSON struct {
	Type, Subtype string
	Params        map[string]string `json:",omitempty"`
	ID            string            `json:",omitempty"`
	Description   string            `json:",omitempty"`
	Encoding      string            `json:",omitempty"`
	Size          uint32
	Message       *messageJSON                     `json:",omitempty"`
	Text          *imap.BodyStructureText          `json:",omitempty"`
	Extended      *imap.BodyStructureSinglePartExt `json:",omitempty"`
}

type messageJSON struct {
	Envelope *imap.Envelope
	Body     bodyJSON
	NumLines int64
}

func toJSON(bs imap.BodyStructure) bodyJSON {
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		m := &multiJSON{Subtype: b.Subtype, Extended: b.Extended}
		for _, c := range b.Children {
			m.Children = append(m.Children, toJSON(c))
		}
		return bodyJSON{Multi: m}
	case *imap.BodyStructureSinglePart:
		s := &singleJSON{Type: b.Type, Subtype: b.Subtype, Params: b.Params, ID: b.ID, Description: b.Description,
			Encoding: b.Encoding, Size: b.Size, Text: b.Text, Extended: b.Extended}
		if b.MessageRFC822 != nil {
			s.Message = &messageJSON{Envelope: b.MessageRFC822.Envelope, Body: toJSON(b.MessageRFC822.BodyStructure), NumLines: b.MessageRFC822.NumLines}
		}
		return bodyJSON{Single: s}
	}
	return bodyJSON{}
}

func fromJSON(j bodyJSON) imap.BodyStructure {
	switch {
	case j.Multi != nil:
		m := &imap.BodyStructureMultiPart{Subtype: j.Multi.Subtype, Extended: j.Multi.Extended}
		for _, c := range j.Multi.Children {
			m.Children = append(m.Children, fromJSON(c))
		}
		return m
	case j.Single != nil:
		s := j.Single
		b := &imap.BodyStructureSinglePart{Type: s.Type, Subtype: s.Subtype, Params: s.Params, ID: s.ID, Description: s.Description,
			Encoding: s.Encoding, Size: s.Size, Text: s.Text, Extended: s.Extended}
		if s.Message != nil {
			wireEnvelope(s.Message.Envelope)
			b.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: s.Message.Envelope, BodyStructure: fromJSON(s.Message.Body), NumLines: s.Message.NumLines}
		}
		return b
	}
	return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "us-ascii"}, Encoding: "7bit", Text: &imap.BodyStructureText{}}
}

// EncodeBodyStructure renders a body structure for storage.
func EncodeBodyStructure(bs imap.BodyStructure) string {
	b, _ := json.Marshal(toJSON(bs))
	return string(b)
}

// DecodeBodyStructure reads what EncodeBodyStructure made.
func DecodeBodyStructure(s string) (imap.BodyStructure, error) {
	var j bodyJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return nil, fmt.Errorf("decode body structure: %w", err)
	}
	return fromJSON(j), nil
}
