package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
)

// Per-command time limits for database work.
const (
	opTimeout    = time.Minute
	fetchTimeout = 30 * time.Minute // a FETCH streams to a possibly slow client
)

// session is one connection's backend. The library calls its methods one
// command at a time, IDLE included, so only the fields shared with other
// goroutines need locks.
type session struct {
	srv     *Server
	conn    *imapserver.Conn
	lc      *limitConn // nil only if the connection did not come through Serve
	ctx     context.Context
	cancel  context.CancelFunc
	remote  string
	trusted bool // plaintext login allowed (loopback or AllowInsecureAuth)
	log     *slog.Logger

	user     *models.User // nil until authenticated
	failures int

	// The selected mailbox, nil in the authenticated state. Written only by
	// the command goroutine, under mu, because an IDLE goroutine the library
	// does not wait for may still read it while the connection closes.
	mu        sync.Mutex
	view      *view
	mailboxID int64

	byeOnce sync.Once
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func (s *Server) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	nc := conn.NetConn()
	id := s.nextID.Add(1)
	ctx, cancel := context.WithCancel(s.ctx)
	sess := &session{srv: s, conn: conn, lc: limitOf(nc), ctx: ctx, cancel: cancel, remote: nc.RemoteAddr().String()}
	sess.trusted = s.trustPeer(limitOrSelf(nc).RemoteAddr())
	sess.log = s.log.With("conn", id, "remote", sess.remote)
	if !s.addSession(sess) {
		cancel()
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	if sess.lc != nil {
		sess.lc.arm(sess.bye)
	}
	sess.log.Debug("imap connection")
	return sess, nil, nil
}

// bye tells the client why the connection ends and closes it. It may be called
// from any goroutine; the library serializes the write with its own.
func (s *session) bye(reason string) {
	s.byeOnce.Do(func() {
		s.log.Info("imap connection closed by server", "reason", reason)
		s.conn.Bye(reason) //nolint:errcheck // the connection is going anyway
	})
}

func (s *session) Close() error {
	s.unselect()
	s.cancel()
	s.srv.removeSession(s)
	return nil
}

// opCtx is a context for one command's database work.
func (s *session) opCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, d)
}

// authAllowed reports whether plaintext credentials may be sent on this
// connection now: over TLS, from loopback, or when configured insecure.
func (s *session) authAllowed() bool {
	_, isTLS := s.conn.NetConn().(*tls.Conn)
	return isTLS || s.trusted
}

// Login checks credentials (LOGIN, and AUTHENTICATE PLAIN, which the library
// maps to Login). After MaxLoginFailures failures the connection is closed;
// each failure past the Authenticator's free ones is already slowed down.
func (s *session) Login(username, password string) error {
	if !s.authAllowed() {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}
	}
	if s.failures >= s.srv.opt.MaxLoginFailures {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Too many failures"}
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	u, err := s.srv.authn.Check(ctx, username, password, s.remote)
	if errors.Is(err, auth.ErrFailed) {
		s.failures++
		if s.failures >= s.srv.opt.MaxLoginFailures {
			// After the tagged NO has gone out (nothing else is written
			// before authentication), and in a goroutine: BYE takes the
			// library's writer.
			bye := func() { go s.bye("Too many failed logins") }
			if s.lc != nil {
				s.lc.thenRun(bye)
			} else {
				bye()
			}
		}
		return imapserver.ErrAuthFailed
	}
	if err != nil {
		return s.fail("login", err)
	}
	s.user = u
	s.log = s.log.With("user", u.Email)
	if s.lc != nil {
		s.lc.authenticated()
	}
	s.log.Info("imap login")
	return nil
}

// AppendLimit is advertised as APPENDLIMIT=n; the library refuses a larger
// APPEND literal before asking the client to send it.
func (s *session) AppendLimit() uint32 { return s.srv.appendLimit() }

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}

// delim is the hierarchy delimiter (models.Delimiter).
const delim = '/'

func (s *session) Unselect() error {
	s.unselect()
	return nil
}

func (s *session) unselect() {
	s.mu.Lock()
	v := s.view
	s.view, s.mailboxID = nil, 0
	s.mu.Unlock()
	if v == nil {
		return
	}
	v.st.detach(v)
	s.srv.reg.release(v.st)
}

// setView makes v the selected mailbox's view.
func (s *session) setView(v *view) {
	s.mu.Lock()
	s.view, s.mailboxID = v, v.st.id
	s.mu.Unlock()
}

// current is the view, for the IDLE goroutine.
func (s *session) current() *view {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view
}

// selected returns the view of the selected mailbox, or the reason there is
// none to work on.
func (s *session) selected() (*view, error) {
	if s.view == nil {
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "No mailbox selected"}
	}
	s.view.st.mu.Lock()
	gone := s.view.deletedByMe
	s.view.st.mu.Unlock()
	if gone {
		return nil, s.fail("selected", errSelectedGone)
	}
	return s.view, nil
}

// Poll brings the state up to date and reports what the client has not been
// told. A database failure here is logged, not returned: the library would
// drop the connection, and the changes will be reported at the next poll.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	v := s.current()
	if v == nil {
		return nil
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	if err := v.st.apply(ctx); err != nil {
		s.log.Warn("imap poll: reading changes failed", "err", err)
	}
	return s.flush(ctx, w, v, allowExpunge)
}

// flush writes the view's pending updates.
func (s *session) flush(ctx context.Context, w *imapserver.UpdateWriter, v *view, allowExpunge bool) error {
	p := v.collect(allowExpunge)
	if p.bye {
		// RFC 2180 §3.3: another session deleted the selected mailbox. An
		// EXPUNGE of every message would look to a sync client like the user
		// deleting all mail; BYE makes it reconnect and find the mailbox gone.
		s.bye("Selected mailbox was deleted")
		return nil
	}
	for _, seq := range p.expunges {
		if err := w.WriteExpunge(seq); err != nil {
			return err
		}
	}
	if p.exists > 0 {
		if err := w.WriteNumMessages(p.exists); err != nil {
			return err
		}
		var from, to uint32
		if !v.readOnly && !v.rev2 {
			var err error
			if from, to, err = s.srv.mbox.ClaimRecent(ctx, v.st.id); err != nil {
				s.log.Warn("imap: claim recent failed", "err", err)
			}
		}
		if err := w.WriteNumRecent(v.claimed(from, to)); err != nil {
			return err
		}
	}
	for _, f := range p.flags {
		if err := w.WriteMessageFlags(f.seq, imap.UID(f.uid), f.flags); err != nil {
			return err
		}
	}
	return nil
}

// Idle reports changes as they are applied (the state's watcher applies them
// when the database signals) until the client sends DONE. Without a selected
// mailbox there is nothing to report, but the command is legal: wait.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	v := s.current()
	if v == nil {
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	if err := s.Poll(w, true); err != nil {
		return err
	}
	for {
		select {
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		case <-v.wake:
			ctx, cancel := s.opCtx(opTimeout)
			err := s.flush(ctx, w, v, true)
			cancel()
			if err != nil {
				return err
			}
		}
	}
}

// applyOwn brings the state up to date after this session changed the
// mailbox, so that the poll that ends the command reports the change.
func (s *session) applyOwn(ctx context.Context, v *view, own []models.FlagChange) {
	if err := v.st.apply(ctx); err != nil {
		s.log.Warn("imap: reading own changes failed", "err", err)
	}
	if len(own) > 0 {
		v.dropEcho(own)
	}
}
