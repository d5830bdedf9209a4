package handlers

import (
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// Mailbox is a folder of the user's mail, with its counters.
type Mailbox struct {
	ID   string `json:"id" validate:"required" format:"uuid" example:"3f1c2b9e-7a45-4d1e-9b1a-0c2d4e6f8a10"`
	Name string `json:"name" validate:"required" example:"INBOX"`
	// Special-use attribute (RFC 6154): \Sent, \Drafts, \Trash, \Junk, \Archive, \All, \Flagged, or empty.
	SpecialUse string `json:"special_use" validate:"required" example:"\\Sent"`
	Subscribed bool   `json:"subscribed" validate:"required" example:"true"`
	Total      int64  `json:"total" validate:"required" example:"42"`    // messages
	Unseen     int64  `json:"unseen" validate:"required" example:"3"`    // messages without \Seen
	Size       int64  `json:"size" validate:"required" example:"183204"` // octets
} //@name Mailbox

// MailboxList lists the user's mailboxes in name order.
type MailboxList struct {
	Items []Mailbox `json:"items" validate:"required"`
} //@name MailboxList

// CreateMailboxRequest describes a new mailbox.
type CreateMailboxRequest struct {
	// Levels of the hierarchy are separated by "/"; missing parents are created.
	Name string `json:"name" example:"Projects/2024" binding:"required"`
	// Optional special-use attribute, with or without the backslash: Sent, Drafts, Trash, Junk, Archive, All, Flagged.
	SpecialUse string `json:"special_use" example:"Archive"`
} //@name CreateMailboxRequest

// UpdateMailboxRequest renames a mailbox (its children move with it) or
// (un)subscribes it; absent fields stay as they are.
type UpdateMailboxRequest struct {
	Name       *string `json:"name,omitempty" example:"Projects/2025"`
	Subscribed *bool   `json:"subscribed,omitempty" example:"false"`
} //@name UpdateMailboxRequest

// Address is a mailbox address as a message names it.
type Address struct {
	Name  string `json:"name,omitempty" example:"Alice Liddell"`
	Email string `json:"email" validate:"required" example:"alice@example.com"`
} //@name Address

// MessageSummary is a message as a listing shows it.
type MessageSummary struct {
	ID        string `json:"id" validate:"required" format:"uuid" example:"0b7e6c1a-2f4d-4c8e-9a3b-5d6e7f809112"`
	Mailbox   string `json:"mailbox" validate:"required" example:"INBOX"`
	MailboxID string `json:"mailbox_id" validate:"required" format:"uuid" example:"3f1c2b9e-7a45-4d1e-9b1a-0c2d4e6f8a10"`
	// The IMAP UID: stable within the mailbox while the message stays in it.
	UID     int64     `json:"uid" validate:"required" example:"17"`
	From    []Address `json:"from" validate:"required"`
	To      []Address `json:"to" validate:"required"`
	Cc      []Address `json:"cc" validate:"required"`
	Subject string    `json:"subject" validate:"required" example:"Quarterly report"`
	// The Date field of the message, or when it arrived if it has none.
	Date time.Time `json:"date" validate:"required" format:"date-time"`
	// When the message arrived in the mailbox (the IMAP internal date; listings sort by it).
	ReceivedAt time.Time `json:"received_at" validate:"required" format:"date-time"`
	Size       int64     `json:"size" validate:"required" example:"48213"` // octets, as stored
	// IMAP flags: \Seen, \Answered, \Flagged, \Deleted, \Draft and keywords.
	Flags          []string `json:"flags" validate:"required" example:"\\Seen"`
	Seen           bool     `json:"seen" validate:"required" example:"true"`
	Flagged        bool     `json:"flagged" validate:"required" example:"false"`
	Answered       bool     `json:"answered" validate:"required" example:"false"`
	HasAttachments bool     `json:"has_attachments" validate:"required" example:"true"`
	Preview        string   `json:"preview" validate:"required" example:"Hello Bob, the numbers for Q3 are in the attached PDF…"`
} //@name MessageSummary

// MessagePage is one page of a listing, newest first.
type MessagePage struct {
	Items []MessageSummary `json:"items" validate:"required"`
	// Pass as ?cursor= (with the same filters) for the next page; empty on the last page.
	NextCursor string `json:"next_cursor" validate:"required"`
} //@name MessagePage

// HeaderField is one header field, decoded to UTF-8.
type HeaderField struct {
	Name  string `json:"name" validate:"required" example:"Subject"`
	Value string `json:"value" validate:"required" example:"Quarterly report"`
} //@name HeaderField

// Attachment describes a part of a message that is not its text: a file, an
// inline image, an attached message.
type Attachment struct {
	// Its place among the message's attachments: GET /api/v1/messages/{id}/attachments/{index}.
	Index       int    `json:"index" validate:"required" example:"0"`
	Filename    string `json:"filename" validate:"required" example:"report.pdf"`
	ContentType string `json:"content_type" validate:"required" example:"application/pdf"`
	Size        int64  `json:"size" validate:"required" example:"30512"` // decoded octets
	// Content-ID without angle brackets: HTML refers to inline images as cid:<content_id>.
	ContentID string `json:"content_id" validate:"required" example:"logo@example.com"`
	Inline    bool   `json:"inline" validate:"required" example:"false"`
} //@name Attachment

// MessageDetail is a whole message decoded for display.
type MessageDetail struct {
	MessageSummary
	ReplyTo []Address `json:"reply_to" validate:"required"`
	// Message-ID without angle brackets.
	MessageIDHeader string   `json:"message_id" validate:"required" example:"DN4YOJIQT2P1.3N5AGQXYLBERT@mail.example.com"`
	InReplyTo       []string `json:"in_reply_to" validate:"required"`
	References      []string `json:"references" validate:"required"`
	// Every field of the message's header, decoded to UTF-8, in order.
	Headers []HeaderField `json:"headers" validate:"required"`
	// The plain-text body, decoded to UTF-8 (empty if the message has none).
	Text string `json:"text" validate:"required" example:"Hello Bob,\nthe numbers are attached."`
	// The HTML body as sent, decoded to UTF-8. Never show it unsanitized.
	HTML string `json:"html" validate:"required" example:"<p>Hello Bob,</p><script>track()</script>"`
	// The HTML body made safe to show: no scripts, event handlers, styles, forms or
	// frames, and nothing loaded from elsewhere (images only from cid: and data: URLs).
	HTMLSanitized string `json:"html_sanitized" validate:"required" example:"<p>Hello Bob,</p>"`
	// True when text or html was longer than 4 MiB and was cut.
	Truncated   bool         `json:"truncated" validate:"required" example:"false"`
	Attachments []Attachment `json:"attachments" validate:"required"`
} //@name MessageDetail

// UpdateMessageRequest changes a message's flags or moves it; absent fields stay as they are.
type UpdateMessageRequest struct {
	Seen     *bool `json:"seen,omitempty" example:"true"`
	Flagged  *bool `json:"flagged,omitempty" example:"false"`
	Answered *bool `json:"answered,omitempty"`
	// Move the message to this mailbox (its name or id). The message keeps its id.
	Mailbox *string `json:"mailbox,omitempty" example:"Archive"`
} //@name UpdateMessageRequest

// Rejection is a recipient that does not get a message, and why.
type Rejection struct {
	Address string `json:"address" validate:"required" example:"nobody@example.com"`
	Reason  string `json:"reason" validate:"required" example:"no such user here"`
} //@name Rejection

// SendResult tells what became of a sent message.
type SendResult struct {
	// The id of the copy in the sender's \Sent mailbox (absent if the sender has none).
	ID string `json:"id,omitempty" format:"uuid" example:"0b7e6c1a-2f4d-4c8e-9a3b-5d6e7f809112"`
	// The Message-ID of the new message, without angle brackets.
	MessageID string `json:"message_id" validate:"required" example:"DN4YOJIQT2P1.3N5AGQXYLBERT@mail.example.com"`
	// Recipients on this server: the message is in their mailboxes now (a group counts once).
	Accepted []string `json:"accepted" validate:"required" example:"bob@example.com,team@example.com"`
	// Recipients elsewhere: the message waits in the outbound queue.
	Queued []string `json:"queued" validate:"required" example:"carol@example.org"`
	// Recipients that do not get the message.
	Rejected []Rejection `json:"rejected" validate:"required"`
} //@name SendResult

func mailboxDTO(mb *models.Mailbox) Mailbox {
	return Mailbox{ID: mb.PublicID, Name: mb.Name, SpecialUse: mb.SpecialUse, Subscribed: mb.Subscribed,
		Total: mb.MessagesCount, Unseen: mb.UnseenCount, Size: mb.SizeBytes}
}

func addressDTOs(list []message.Address) []Address {
	out := make([]Address, 0, len(list))
	for _, a := range list {
		out = append(out, Address{Name: a.Name, Email: a.Email})
	}
	return out
}

func flagNames(m *models.Message) []string {
	out := []string{}
	for _, f := range []struct {
		on   bool
		name string
	}{{m.Seen, `\Seen`}, {m.Answered, `\Answered`}, {m.Flagged, `\Flagged`}, {m.Deleted, `\Deleted`}, {m.Draft, `\Draft`}} {
		if f.on {
			out = append(out, f.name)
		}
	}
	return append(out, models.FlagsOf(m).Keywords...)
}

func summaryDTO(m *models.Message, mb *models.Mailbox) MessageSummary {
	date := m.InternalDate.UTC()
	if m.SentAt != nil {
		date = m.SentAt.UTC()
	}
	return MessageSummary{
		ID: m.PublicID, Mailbox: mb.Name, MailboxID: mb.PublicID, UID: int64(m.UID),
		From: addressDTOs(message.ParseAddressesJSON(m.FromAddr)), To: addressDTOs(message.ParseAddressesJSON(m.ToAddrs)),
		Cc: addressDTOs(message.ParseAddressesJSON(m.CcAddrs)), Subject: m.Subject, Date: date, ReceivedAt: m.InternalDate.UTC(),
		Size: m.Size, Flags: flagNames(m), Seen: m.Seen, Flagged: m.Flagged, Answered: m.Answered,
		HasAttachments: m.HasAttachments, Preview: m.Preview,
	}
}

func detailDTO(m *models.Message, mb *models.Mailbox, d *message.Decoded) MessageDetail {
	out := MessageDetail{MessageSummary: summaryDTO(m, mb), ReplyTo: addressDTOs(d.ReplyTo), MessageIDHeader: d.MessageID,
		InReplyTo: nonNil(d.InReplyTo), References: nonNil(d.References), Headers: make([]HeaderField, 0, len(d.Headers)),
		Text: d.Text, HTML: d.HTML, HTMLSanitized: message.SanitizeHTML(d.HTML), Truncated: d.Truncated,
		Attachments: make([]Attachment, 0, len(d.Attachments))}
	// The stored listing columns come from the same header; the decoded ones are
	// fuller (they keep what the listing parser may have cut).
	out.From, out.To, out.Cc = addressDTOs(d.From), addressDTOs(d.To), addressDTOs(d.Cc)
	for _, f := range d.Headers {
		out.Headers = append(out.Headers, HeaderField{Name: f.Name, Value: f.Value})
	}
	for _, a := range d.Attachments {
		out.Attachments = append(out.Attachments, Attachment{Index: a.Index, Filename: a.Filename, ContentType: a.ContentType,
			Size: a.Size, ContentID: a.ContentID, Inline: a.Inline})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
