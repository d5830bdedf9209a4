package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// Delivery status notifications (bounces), RFC 3464: a multipart/report
// (RFC 6522) of report-type delivery-status with a human-readable part, the
// machine-readable message/delivery-status part and the original message's
// header as text/rfc822-headers. Status codes are those of RFC 3463.

// DSN actions (RFC 3464 §2.3.3) mailgate reports.
const (
	ActionFailed  = "failed"
	ActionDelayed = "delayed"
)

// MaxDSNHeaderBytes caps how much of the original header a DSN quotes: enough
// for any real header, small enough that a DSN never grows large.
const MaxDSNHeaderBytes = 64 << 10

// DSN describes one delivery status notification about one message.
type DSN struct {
	Sender      string    // the original's reverse-path: the DSN goes there; "" gets none
	EnvelopeID  string    // RFC 3461 ENVID of the original, if it had one
	ArrivalDate time.Time // when the original arrived here
	Recipients  []DSNRecipient
	Header      []byte // the original's header section, as ReadHeader returns it
}

// DSNRecipient is the status of one recipient of the original.
type DSNRecipient struct {
	Address     string
	Action      string // ActionFailed or ActionDelayed
	Status      string // RFC 3463 code such as "5.1.1"
	RemoteMTA   string // host name of the server that answered; "" when none did
	Diagnostic  string // that server's reply, "550 5.1.1 No such user"; "" when none
	LastAttempt time.Time
	Reason      string // one line for people: what happened
}

// ReadHeader reads a message's header section (without the blank line that
// ends it) from r, at most max bytes, cut at a line end.
func ReadHeader(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, int64(max)+2))
	var out bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 && len(line) > 0 {
			break // the blank line ending the header
		}
		if out.Len()+len(text)+2 > max {
			break // a line cut by the limit is left out whole
		}
		if len(text) > 0 {
			out.Write(text)
			out.WriteString("\r\n")
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read header: %w", err)
		}
	}
	return out.Bytes(), nil
}

// Bounce stores a DSN in the INBOX of the original sender when the sender is
// a local address (a group's members each get it) and reports whether it did.
// A null sender (the original was itself a bounce) or an address not hosted
// here gets nothing: mailgate relays only for its own users, so a remote
// sender cannot have been accepted.
func (d *Deliverer) Bounce(ctx context.Context, dsn *DSN) (bool, error) {
	var stored bool
	err := d.store.Tx(ctx, func(tx *models.Store) error {
		var err error
		stored, err = d.BounceTx(ctx, tx, dsn)
		return err
	})
	return stored, err
}

// BounceTx is Bounce inside the caller's transaction: the queue removes the
// failed entries and stores their bounce atomically, so a bounce is stored once.
// The DSN skips quota checks: a full mailbox must not swallow the news that
// mail was lost.
func (d *Deliverer) BounceTx(ctx context.Context, tx *models.Store, dsn *DSN) (bool, error) {
	if dsn.Sender == "" || len(dsn.Recipients) == 0 {
		return false, nil
	}
	r, err := tx.ResolveAddress(ctx, dsn.Sender)
	if errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrInvalid) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bounce to %s: %w", dsn.Sender, err)
	}
	var ids []int64
	for _, u := range r.Users {
		if !u.Disabled {
			ids = append(ids, u.ID)
		}
	}
	inboxes, err := tx.Inboxes(ctx, ids)
	if err != nil {
		return false, fmt.Errorf("bounce to %s: %w", dsn.Sender, err)
	}
	var targets []models.AppendTarget
	for _, id := range ids {
		if mb, ok := inboxes[id]; ok {
			targets = append(targets, models.AppendTarget{MailboxID: mb.ID, UserID: id, SkipQuota: true})
		}
	}
	if len(targets) == 0 {
		return false, nil
	}
	p, err := d.mbox.Prepare(message.Bytes(d.renderDSN(dsn, time.Now())))
	if err != nil {
		return false, fmt.Errorf("prepare bounce: %w", err)
	}
	out, err := d.mbox.AppendTx(ctx, tx, p, targets)
	if err != nil {
		return false, fmt.Errorf("store bounce for %s: %w", dsn.Sender, err)
	}
	for _, o := range out {
		if o.Err == nil {
			return true, nil
		}
	}
	return false, nil
}

// bounceFailed tells a local sender about recipients whose mailbox filled up
// between RCPT and the commit. The message is committed for the others by now,
// so a failure here is logged, never reported to the client (which would send
// the message again to everyone).
func (d *Deliverer) bounceFailed(ctx context.Context, env *Envelope, src message.Source, failed []Failure) {
	if env.From == "" || len(failed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	hdr, err := ReadHeader(src.Reader(), MaxDSNHeaderBytes)
	if err != nil {
		d.opt.Logger.Warn("bounce for over-quota recipients not sent", "from", env.From, "err", err)
		return
	}
	now := time.Now()
	dsn := &DSN{Sender: env.From, EnvelopeID: env.EnvelopeID, ArrivalDate: now, Header: hdr}
	for _, f := range failed {
		dsn.Recipients = append(dsn.Recipients, DSNRecipient{Address: f.Address, Action: ActionFailed,
			Status: "5.2.2", LastAttempt: now, Reason: "mailbox full"})
	}
	stored, err := d.Bounce(ctx, dsn)
	switch {
	case err != nil:
		d.opt.Logger.Warn("bounce for over-quota recipients not stored", "from", env.From, "err", err)
	case !stored:
		d.opt.Logger.Info("no bounce: sender is not local", "from", env.From, "recipients", len(failed))
	}
}

// renderDSN writes the notification. It is small (the quoted header is
// capped), so it is built in memory.
func (d *Deliverer) renderDSN(dsn *DSN, now time.Time) []byte {
	host := d.opt.Hostname
	boundary := "=_dsn_" + strings.ReplaceAll(models.NewID(), "-", "")
	failed := false
	for _, r := range dsn.Recipients {
		failed = failed || r.Action == ActionFailed
	}
	subject := "Delayed Mail (still being retried)"
	if failed {
		subject = "Undelivered Mail Returned to Sender"
	}
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	w("Return-Path: <>")
	w("Date: %s", now.Format(time.RFC1123Z))
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", host)
	w("To: <%s>", dsn.Sender)
	w("Subject: %s", subject)
	w("Message-ID: <%s@%s>", models.NewID(), host)
	w("Auto-Submitted: auto-replied") // RFC 3834: no automatic replies to this
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;")
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated delivery status notification.")
	w("")
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("Content-Transfer-Encoding: 8bit")
	w("")
	w("This is the mail system at host %s.", host)
	w("")
	if failed {
		w("Your message could not be delivered to one or more recipients.")
		w("It has not been delivered to the addresses below and will not be retried.")
	} else {
		w("Your message has not been delivered yet to the recipients below.")
		w("Delivery is still being retried; you need not send it again.")
	}
	w("")
	for _, r := range dsn.Recipients {
		w("<%s>: %s", r.Address, oneLine(r.Reason, 900))
	}
	w("")
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", host)
	if dsn.EnvelopeID != "" {
		w("Original-Envelope-Id: %s", oneLine(dsn.EnvelopeID, 100))
	}
	if !dsn.ArrivalDate.IsZero() {
		w("Arrival-Date: %s", dsn.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, r := range dsn.Recipients {
		w("")
		w("Final-Recipient: rfc822; %s", r.Address)
		w("Action: %s", r.Action)
		w("Status: %s", r.Status)
		if r.RemoteMTA != "" {
			w("Remote-MTA: dns; %s", oneLine(r.RemoteMTA, 255))
		}
		if r.Diagnostic != "" {
			w("Diagnostic-Code: smtp; %s", oneLine(r.Diagnostic, 900))
		}
		if !r.LastAttempt.IsZero() {
			w("Last-Attempt-Date: %s", r.LastAttempt.Format(time.RFC1123Z))
		}
	}
	w("")
	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	b.Write(dsn.Header)
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}

// oneLine makes text safe for one header field line: invalid UTF-8 is
// replaced, line breaks and other control characters become single spaces,
// and it is cut to at most max bytes without splitting a character.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
