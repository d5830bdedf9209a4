package smtp

import (
	"context"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/delivery"
)

// commandTimeout bounds the store lookups of one command (MAIL, RCPT, AUTH).
const commandTimeout = 30 * time.Second

// backend makes a session for each greeting: go-smtp calls it at the first
// HELO/EHLO and again after STARTTLS.
type backend struct{ srv *Server }

func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	cn := connOf(c.Conn())
	if cn == nil {
		// Only a listener that did not come from Serve gets here.
		return nil, replyTryLater
	}
	_, isTLS := c.TLSConnectionState()
	return &session{srv: b.srv, conn: cn, gc: c, tls: isTLS}, nil
}

// session is one SMTP session: from a greeting to QUIT, STARTTLS or a close.
// go-smtp calls its methods from the connection's goroutine, except Data during
// BDAT, which runs in a goroutine of its own while RSET may come in: hence mu.
type session struct {
	srv  *Server      // immutable
	conn *conn        // immutable
	gc   *gosmtp.Conn // immutable
	tls  bool         // immutable: the session runs over TLS

	mu      sync.Mutex
	user    *models.User          // guarded by mu; nil until AUTH succeeds
	hasFrom bool                  // guarded by mu
	from    string                // guarded by mu; the reverse-path, "" for the null sender
	helo    string                // guarded by mu; the client's HELO name when MAIL came
	size    int64                 // guarded by mu; the SIZE the client announced, 0 if none
	rcpts   []*delivery.Recipient // guarded by mu
	seen    map[string]bool       // guarded by mu; normalized recipients accepted so far
}

func (s *session) authUser() *models.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user
}

func (s *session) commandContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.conn.ctx, commandTimeout)
}

// refuse turns err into the reply for cmd and logs it: a refusal by policy at
// debug level, an internal failure (answered 451) as an error.
func (s *session) refuse(cmd string, err error) error {
	r, known := reply(err)
	if !known {
		s.conn.log.Error("command failed", "cmd", cmd, "err", err)
	} else {
		s.conn.log.Debug("command refused", "cmd", cmd, "code", r.Code, "err", err)
	}
	return r
}

// Mail starts a transaction. Submission needs AUTH first (RFC 6409 §4.3), and an
// authenticated sender may only use its own address or a group's it belongs to.
func (s *session) Mail(from string, opts *gosmtp.MailOptions) error {
	user := s.authUser()
	if user == nil && s.srv.opt.Mode != ModeMTA {
		return s.refuse("MAIL", errAuthRequired)
	}
	if from != "" {
		if _, err := models.NormalizeEmail(from); err != nil {
			return s.refuse("MAIL", errBadSender)
		}
	}
	if user != nil {
		if from == "" {
			// The null sender is for bounces, which users do not send.
			return s.refuse("MAIL", delivery.ErrSenderDenied)
		}
		ctx, cancel := s.commandContext()
		defer cancel()
		if err := s.srv.dlv.CheckSender(ctx, user, from); err != nil {
			return s.refuse("MAIL", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hasFrom, s.from, s.rcpts, s.seen = true, from, nil, nil
	// Read here, in the connection's goroutine: during BDAT, Data runs in another.
	s.helo = s.gc.Hostname()
	s.size = 0
	if opts != nil {
		s.size = opts.Size
	}
	return nil
}

// Rcpt resolves a recipient now, so that a refusal reaches the client as a
// reply to this RCPT and not as a bounce later.
func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.mu.Lock()
	user, size, n := s.user, s.size, len(s.rcpts)
	s.mu.Unlock()
	if n >= s.srv.opt.MaxRecipients {
		return s.refuse("RCPT", errTooManyRecipients)
	}
	ctx, cancel := s.commandContext()
	defer cancel()
	r, err := s.srv.dlv.Resolve(ctx, to, user, size)
	if err != nil {
		return s.refuse("RCPT", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[string]bool)
	}
	if !s.seen[r.Address] { // a repeated recipient gets one copy
		s.seen[r.Address] = true
		s.rcpts = append(s.rcpts, r)
	}
	return nil
}

// Reset drops the transaction (RSET, a new EHLO, or the end of DATA); the
// authentication stays.
func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hasFrom, s.from, s.size, s.rcpts, s.seen = false, "", 0, nil, nil
}

// Logout ends the session: go-smtp then closes or re-greets the connection.
func (s *session) Logout() error { return nil }

// envelope snapshots the transaction for Data, with the HELO name.
func (s *session) envelope() (*delivery.Envelope, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasFrom || len(s.rcpts) == 0 {
		return nil, "", delivery.ErrNoRecipients
	}
	rcpts := make([]*delivery.Recipient, len(s.rcpts))
	copy(rcpts, s.rcpts)
	return &delivery.Envelope{From: s.from, User: s.user, Recipients: rcpts}, s.helo, nil
}

var _ gosmtp.AuthSession = (*session)(nil)
