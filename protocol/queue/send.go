package queue

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
)

// attempt tries to deliver one job and returns, for each of its entries, nil
// (delivered) or why not. Hops are tried in order until one of them gets as
// far as answering MAIL FROM; a hop that cannot be reached, or that defers the
// whole transaction, passes the job to the next.
func (q *Queue) attempt(ctx context.Context, j *job) []*failure {
	content, err := q.store.ContentLayout(ctx, j.contentID)
	if err != nil {
		return j.all(&failure{status: "4.3.0", stage: "reading the message", err: fmt.Errorf("load content %d: %w", j.contentID, err)})
	}
	targets, f := q.route(ctx, j.domain)
	if f != nil {
		return j.all(f)
	}
	var last *failure
	var hidden []string // hops none of whose addresses is public, with those addresses
	for _, t := range targets {
		outs, next := q.tryTarget(ctx, t, j, content)
		if !next {
			return outs
		}
		if f := outs[0]; f.nonPublic != nil {
			hidden = append(hidden, fmt.Sprintf("%s (%s)", f.remote, strings.Join(f.nonPublic, ", ")))
			if last == nil || last.nonPublic != nil {
				last = f
			}
		} else {
			last = f // a failure worth retrying says more than a hop never to be dialed
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(hidden) == len(targets) {
		// Not a fault that time mends: DNS points the domain's mail at
		// loopback, private or reserved addresses (a misconfiguration, or an
		// attempt to reach services on this host or its network).
		what := "MX of " + j.domain
		if targets[0].implicit {
			what = "domain " + j.domain + " has no MX and"
		}
		return j.all(&failure{perm: true, status: "5.4.4", stage: "address lookup", remote: last.remote,
			err: fmt.Errorf("%s resolves only to non-public addresses, which mail is never sent to: %s",
				what, strings.Join(hidden, "; "))})
	}
	return j.all(last)
}

// tryTarget runs one SMTP transaction with one target. next reports that the
// transaction never started (every outcome is the same temporary failure) and
// another hop may do better.
func (q *Queue) tryTarget(ctx context.Context, t target, j *job, content *models.Content) (outs []*failure, next bool) {
	s := q.pool.get(ctx, t)
	if s == nil {
		var f *failure
		if s, f = q.open(ctx, t); f != nil {
			return j.all(f), !f.perm
		}
	}
	outs, next, clean := q.transact(ctx, s, j, content)
	if clean {
		q.pool.put(t, s)
	} else {
		s.close() // in no state to say QUIT: mid-DATA, say, or broken
	}
	return outs, next
}

// open starts a session with a target: connected, TLS on if it could be had,
// authenticated to the relay host when credentials are set.
func (q *Queue) open(ctx context.Context, t target) (*session, *failure) {
	s, f := q.connect(ctx, t)
	if f != nil && f.tlsFailed {
		t.noTLS = true
		s, f = q.connect(ctx, t)
	}
	if f != nil {
		return nil, f
	}
	if !t.relay || q.opt.RelayUsername == "" {
		return s, nil
	}
	if !s.c.SupportsAuth(sasl.Plain) {
		s.quit()
		return nil, &failure{status: "4.7.0", stage: "AUTH", remote: s.host, err: fmt.Errorf("relay host %s does not offer AUTH PLAIN", t.Hop)}
	}
	if err := s.c.Auth(sasl.NewPlainClient("", q.opt.RelayUsername, q.opt.RelayPassword)); err != nil {
		s.quit()
		// Wrong credentials are our configuration's fault, not the
		// recipient's: keep the mail until an administrator fixes them.
		f := replyFailure(err, s.host, "AUTH")
		f.perm, f.status = false, "4.7.0"
		return nil, f
	}
	return s, nil
}

// transact runs MAIL, RCPT for each entry and DATA. clean reports that the
// session ended the transaction in good order and may carry another.
func (q *Queue) transact(ctx context.Context, s *session, j *job, content *models.Content) (outs []*failure, next, clean bool) {
	opts := &gosmtp.MailOptions{Size: content.Size}
	if j.envelopeID != "" && printableASCII(j.envelopeID) {
		opts.EnvelopeID = j.envelopeID
	}
	if j.needsUTF8() {
		if ok, _ := s.c.Extension("SMTPUTF8"); !ok {
			return j.all(&failure{perm: true, status: "5.6.7", stage: "MAIL FROM", remote: s.host, err: errNoSMTPUTF8}), false, true
		}
		opts.UTF8 = true
	}
	if err := s.c.Mail(j.sender, opts); err != nil {
		f := replyFailure(err, s.host, "MAIL FROM")
		return j.all(f), !f.perm, f.reply != nil && s.c.Reset() == nil
	}
	outs = make([]*failure, len(j.entries))
	var accepted []int
	for i, e := range j.entries {
		if err := s.c.Rcpt(e.Recipient, nil); err != nil {
			outs[i] = replyFailure(err, s.host, "RCPT TO")
			if outs[i].reply == nil { // the connection broke: nothing more will be answered
				for k := range outs {
					if outs[k] == nil {
						outs[k] = outs[i]
					}
				}
				return outs, false, false
			}
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return outs, false, s.c.Reset() == nil
	}
	if f := q.data(ctx, s, content); f != nil {
		for _, i := range accepted {
			outs[i] = f
		}
		// After the final reply the transaction is over either way; a refused
		// DATA command leaves recipients to clear.
		return outs, false, f.reply != nil && (f.stage == "end of DATA" || s.c.Reset() == nil)
	}
	q.log.Debug("relayed", "host", s.host, "tls", s.tls, "recipients", len(accepted), "size", content.Size)
	return outs, false, true
}

// data streams the content from the store (one chunk in memory at a time)
// and returns nil once the server took responsibility for it.
func (q *Queue) data(ctx context.Context, s *session, content *models.Content) *failure {
	w, err := s.c.Data()
	if err != nil {
		return replyFailure(err, s.host, "DATA")
	}
	if _, err := io.Copy(w, q.mbox.Open(ctx, content, 0)); err != nil {
		// The transaction cannot be finished without sending a broken message:
		// the caller drops the connection, so the server discards it.
		return &failure{status: "4.3.0", stage: "DATA", remote: s.host, err: fmt.Errorf("send message to %s: %w", s.host, err)}
	}
	if _, err := w.CloseWithResponse(); err != nil {
		return replyFailure(err, s.host, "end of DATA")
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
