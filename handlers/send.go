package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/message"
)

// idempotencyStale is how long a claimed Idempotency-Key may stay unfinished
// before a retry takes it over: longer than any request may run (the HTTP
// server's write timeout is 10 minutes).
const idempotencyStale = 15 * time.Minute

// SendMessage godoc
//
//	@ID				sendMessage
//	@Summary		Send a message
//	@Description	Builds a MIME message (text and HTML as alternatives, inline images beside the HTML, attachments; RFC 2047 and RFC 2231 for non-ASCII text and file names; Message-ID and Date set; Bcc in no header) and sends it through the same pipeline as SMTP submission: recipients here get it in their INBOX now (a group reaches its members), others are queued for relay, and a copy goes to your \Sent mailbox. Recipients that cannot get it (unknown here, disabled, over quota) are listed in rejected while the others get it; if none can, nothing is sent (422).
//	@Description	Send JSON (attachments base64-encoded), or multipart/form-data as a browser does: fields from, subject, text, html once; to, cc, bcc, reply_to and headers ("Name: value") any number of times; files as attachments, and as inline (the HTML refers to them as cid:<file name>).
//	@Description	With an Idempotency-Key header, a retry of the same request (same key, same content) returns the first answer, with Idempotent-Replayed: true, and sends nothing again; the same key with different content is 422; a retry while the first is still running is 409. Keys are kept 24 hours.
//	@Tags			messages
//	@Accept			json
//	@Accept			mpfd
//	@Produce		json
//	@Param			Idempotency-Key	header		string		false	"Any unique string of 1-255 printable characters, one per message"
//	@Param			body			body		SendRequest	true	"The message"
//	@Param			from			formData	string		false	"The sender: you (default) or a group you belong to"
//	@Param			to				formData	[]string	false	"Recipient (repeat the field, or separate with commas)"	collectionFormat(multi)
//	@Param			cc				formData	[]string	false	"Cc recipient"	collectionFormat(multi)
//	@Param			bcc				formData	[]string	false	"Bcc recipient"	collectionFormat(multi)
//	@Param			reply_to		formData	[]string	false	"Reply-To address"	collectionFormat(multi)
//	@Param			subject			formData	string		false	"Subject"
//	@Param			text			formData	string		false	"Plain-text body"
//	@Param			html			formData	string		false	"HTML body"
//	@Param			headers			formData	[]string	false	"Extra header field, as Name: value"	collectionFormat(multi)
//	@Param			attachments		formData	file		false	"A file to attach (repeat the field for more)"
//	@Param			inline			formData	file		false	"An image shown in the HTML as cid:<file name>"
//	@Success		202				{object}	SendResult
//	@Header			202				{string}	Location			"/api/v1/messages/{id} of the copy in your Sent mailbox"
//	@Header			202				{string}	Idempotent-Replayed	"true when this is the stored answer to an earlier request with the same Idempotency-Key"
//	@Failure		400				{object}	ErrorEnvelope	"Invalid field: bad address, no recipient, bad base64, unknown or refused field (named in the message)"
//	@Failure		401				{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403				{object}	ErrorEnvelope	"from is neither you nor a group you belong to"
//	@Failure		409				{object}	ErrorEnvelope	"A request with this Idempotency-Key is still running"
//	@Failure		413				{object}	ErrorEnvelope	"The message is larger than MAILGATE_MAX_MESSAGE_BYTES"
//	@Failure		415				{object}	ErrorEnvelope	"Neither JSON nor multipart/form-data"
//	@Failure		422				{object}	ErrorEnvelope	"No recipient can get the message (reasons in the message), your Sent copy would put you over your quota (quota_exceeded; nothing was sent), or the Idempotency-Key was used for a different message"
//	@Failure		429				{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Failure		503				{object}	ErrorEnvelope	"The database is unavailable; nothing was sent, try again"
//	@Security		BearerAuth
//	@Router			/api/v1/messages [post]
func (h *Handlers) SendMessage(c *gin.Context) error {
	key := c.GetHeader("Idempotency-Key")
	if key != "" && !validIdempotencyKey(key) {
		return models.Invalid("Idempotency-Key", "must be 1-255 printable ASCII characters")
	}
	out, err := h.readOutgoing(c)
	if err != nil {
		return err
	}
	defer out.close()
	me := CurrentUser(c)
	ctx := ctxOf(c)
	if key != "" {
		ans, err := h.store.ClaimIdempotencyKey(ctx, me.ID, key, out.hash(), idempotencyStale)
		if err != nil {
			return err
		}
		if ans != nil {
			c.Header("Idempotent-Replayed", "true")
			c.Data(ans.Status, "application/json; charset=utf-8", []byte(ans.Response))
			return nil
		}
	}
	res, body, err := h.send(ctx, me, out, key)
	if err != nil {
		if key != "" {
			// Nothing was committed: let a retry run again. A failure here only
			// delays the retry until the claim is stale.
			if rerr := h.store.ReleaseIdempotencyKey(context.WithoutCancel(ctx), me.ID, key); rerr != nil {
				c.Error(fmt.Errorf("release idempotency key: %w", rerr)) //nolint:errcheck // for the access log
			}
		}
		return err
	}
	if res.ID != "" {
		c.Header("Location", "/api/v1/messages/"+res.ID)
	}
	c.Data(http.StatusAccepted, "application/json; charset=utf-8", body)
	return nil
}

func validIdempotencyKey(k string) bool {
	if len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 32 || k[i] > 126 {
			return false
		}
	}
	return strings.TrimSpace(k) != ""
}

// send composes the message and hands it to the delivery pipeline. It returns
// the answer and its JSON, which (with an Idempotency-Key) is stored in the
// delivery's own transaction.
func (h *Handlers) send(ctx context.Context, me *models.User, out *outgoing, key string) (*SendResult, []byte, error) {
	from := message.Address{Name: me.DisplayName, Email: me.Email}
	if out.from != nil {
		from = *out.from
		if err := h.dlv.CheckSender(ctx, me, from.Email); err != nil {
			return nil, nil, onField("from", err)
		}
		if from.Name == "" && from.Email == me.Email {
			from.Name = me.DisplayName
		}
	}
	sp := h.mbox.NewSpool()
	defer sp.Close()
	// Composing writes lines of 76 octets; the spool (a file beyond its first
	// MiB) gets them in large pieces.
	bw := bufio.NewWriterSize(sp, 64<<10)
	msgID, err := message.Compose(bw, &message.Draft{From: from, To: out.to, Cc: out.cc, ReplyTo: out.replyTo,
		Subject: out.subject, Text: out.text, HTML: out.html, Attachments: out.attachments, Headers: out.headers,
		Hostname: h.dlv.Hostname()})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = sp.Finish()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("compose message: %w", err)
	}
	result := &SendResult{MessageID: msgID, Accepted: []string{}, Queued: []string{}, Rejected: []Rejection{}}
	rcpts, err := h.resolve(ctx, me, out, sp.Size(), result)
	if err != nil {
		return nil, nil, err
	}
	if len(rcpts) == 0 {
		return nil, nil, noRecipients(result.Rejected)
	}
	var body []byte
	env := &delivery.Envelope{From: me.Email, User: me, Recipients: rcpts, SaveSent: true,
		BeforeCommit: func(ctx context.Context, tx *models.Store, res *delivery.Result) error {
			r := *result
			r.Accepted, r.Rejected = accepted(rcpts, res, result.Rejected)
			r.Queued = append([]string{}, res.Queued...)
			if len(r.Accepted) == 0 && len(r.Queued) == 0 {
				return noRecipients(r.Rejected) // all over quota by now: roll back, store nothing
			}
			if res.Sent != nil {
				r.ID = res.Sent.PublicID
			}
			b, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			if key != "" {
				if err := tx.FinishIdempotencyKey(ctx, me.ID, key, http.StatusAccepted, string(b)); err != nil {
					return err
				}
			}
			*result, body = r, b
			return nil
		}}
	if _, err := h.dlv.Deliver(ctx, env, sp); err != nil {
		return nil, nil, err
	}
	return result, body, nil
}

// resolve checks each distinct recipient as SMTP's RCPT does, with the user as
// the authenticated sender. Refused ones go to result.Rejected.
func (h *Handlers) resolve(ctx context.Context, me *models.User, out *outgoing, size int64, result *SendResult) ([]*delivery.Recipient, error) {
	var rcpts []*delivery.Recipient
	seen := map[string]bool{}
	for _, list := range [][]message.Address{out.to, out.cc, out.bcc} {
		for _, a := range list {
			if seen[a.Email] {
				continue
			}
			seen[a.Email] = true
			r, err := h.dlv.Resolve(ctx, a.Email, me, size)
			if reason := rejectReason(err); reason != "" {
				result.Rejected = append(result.Rejected, Rejection{Address: a.Email, Reason: reason})
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("resolve %s: %w", a.Email, err)
			}
			rcpts = append(rcpts, r)
		}
	}
	return rcpts, nil
}

// rejectReason says why a recipient cannot get the message, or "" when the error
// is not about the recipient.
func rejectReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, delivery.ErrNoSuchUser):
		return "no such user here"
	case errors.Is(err, delivery.ErrDisabled):
		return "mailbox disabled"
	case errors.Is(err, models.ErrQuota):
		return "mailbox full"
	case errors.Is(err, delivery.ErrRelayDenied):
		return "relaying denied"
	case errors.Is(err, delivery.ErrBadAddress):
		return "invalid address"
	}
	return ""
}

// accepted lists the local recipients that hold the message after delivery,
// moving those over quota at delivery time to the rejected.
func accepted(rcpts []*delivery.Recipient, res *delivery.Result, rejected []Rejection) ([]string, []Rejection) {
	failed := map[string]bool{}
	out := append([]Rejection{}, rejected...)
	for _, f := range res.Failed {
		failed[f.Address] = true
	}
	var ok []string
	for _, r := range rcpts {
		switch {
		case r.Remote():
		case failed[r.Address]:
			out = append(out, Rejection{Address: r.Address, Reason: "mailbox full"})
		default:
			ok = append(ok, r.Address)
		}
	}
	if ok == nil {
		ok = []string{}
	}
	return ok, out
}

func noRecipients(rejected []Rejection) error {
	parts := make([]string, len(rejected))
	for i, r := range rejected {
		parts[i] = r.Address + ": " + r.Reason
	}
	return &HTTPError{Status: http.StatusUnprocessableEntity, Code: CodeNoRecipients, Field: "to",
		Message: "to: no recipient can get this message, so nothing was sent (" + strings.Join(parts, "; ") + ")"}
}
