package smtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/wire"
)

// backend makes a session for each greeting: go-smtp calls it at the first
// HELO/EHLO and again after STARTTLS.
type backend struct{ srv *Server }

func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	cn := wire.ConnOf(c.Conn())
	if cn == nil {
		// Only a listener that did not come from Serve gets here.
		return nil, replyTryLater
	}
	cn.Touch()
	b.srv.opt.count("EHLO", nil, b.srv.wire)
	isTLS := false
	if cc, ok := c.Conn().(*cmdConn); ok {
		isTLS = cc.tls
	}
	ctx, cancel := context.WithCancel(cn.Context())
	return &session{srv: b.srv, conn: cn, log: cn.Logger(), gc: c, tls: isTLS, ctx: ctx, cancel: cancel}, nil
}

// session is one SMTP session: from a greeting to QUIT, STARTTLS or a close.
// go-smtp calls its methods from the connection's goroutine, except Data during
// BDAT, which runs in a goroutine of its own while RSET may come in: hence mu.
type session struct {
	srv  *Server      // immutable
	conn *wire.Conn   // immutable
	log  *slog.Logger // immutable
	gc   *gosmtp.Conn // immutable
	tls  bool         // immutable: the session runs over TLS
	// ctx ends with the session (QUIT, STARTTLS, a new greeting, a close).
	ctx    context.Context    // immutable
	cancel context.CancelFunc // immutable

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
	return s.conn.OpContext()
}

// refuse turns err into the reply for cmd and logs it: a refusal by policy at
// debug level, an internal failure (answered 451) as an error.
func (s *session) refuse(cmd string, err error) error {
	r, known := reply(err)
	if !known {
		s.log.Error("command failed", "cmd", cmd, "err", err)
	} else {
		s.log.Debug("command refused", "cmd", cmd, "code", r.Code, "err", err)
	}
	return r
}

// done counts a command's answer (nil: a 2xx) and passes err on.
func (s *session) done(cmd string, err error) error {
	s.conn.Touch()
	s.srv.opt.count(cmd, err, s.srv.wire)
	return err
}

// count adds an answered command to the metrics, by its reply's class.
func (o Options) count(cmd string, err error, w *wire.Server) {
	class := "2xx"
	if err != nil {
		class = "5xx"
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			class = fmt.Sprintf("%dxx", se.Code/100)
		}
	}
	w.Metrics().Command(cmd, class)
}

// Mail starts a transaction. Submission needs AUTH first (RFC 6409 §4.3), and an
// authenticated sender may only use its own address or a group's it belongs to.
func (s *session) Mail(from string, opts *gosmtp.MailOptions) error {
	return s.done("MAIL", s.mail(from, opts))
}

func (s *session) mail(from string, opts *gosmtp.MailOptions) error {
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
func (s *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	return s.done("RCPT", s.rcpt(to, opts))
}

func (s *session) rcpt(to string, _ *gosmtp.RcptOptions) error {
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
	s.conn.Touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hasFrom, s.from, s.size, s.rcpts, s.seen = false, "", 0, nil, nil
}

// Logout ends the session: go-smtp then closes or re-greets the connection.
func (s *session) Logout() error {
	s.cancel()
	return nil
}

// revoke ends the connection of a session whose user may no longer send: it
// was disabled or deleted, or its password changed (auth.WatchUser).
func (s *session) revoke(reason string) {
	if s.ctx.Err() != nil {
		return // the session ended meanwhile
	}
	s.log.Info("ending session: credentials revoked", "reason", reason)
	if cc, ok := s.gc.Conn().(*cmdConn); ok {
		cc.reply("421 4.7.0 " + s.srv.opt.Hostname + " Credentials no longer valid, closing connection")
	}
	s.conn.Close()
}

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
