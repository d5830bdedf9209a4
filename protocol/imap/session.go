package imap

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/wire"
)

// Per-command time limits for database work.
const (
	opTimeout    = wire.OpTimeout
	fetchTimeout = 30 * time.Minute // a FETCH streams to a possibly slow client
)

// session is one connection's backend. The library calls its methods one
// command at a time, IDLE included, so only the fields shared with other
// goroutines need locks.
type session struct {
	srv    *Server
	conn   *imapserver.Conn
	cc     *cmdConn
	wc     *wire.Conn
	ctx    context.Context // ends with the connection
	cancel context.CancelFunc
	remote string
	log    *slog.Logger

	user   *models.User // nil until authenticated
	hungUp bool         // the last allowed login failed: BYE follows its NO

	// Command bookkeeping (see commands.go), by the command goroutine (and
	// the IDLE goroutine while the command goroutine waits for DONE).
	answered bool   // the last command succeeded and the poll ending it is due
	pending  string // CLOSE or UNSELECT, counted by the poll that ends it
	closing  bool   // Expunge was CLOSE's
	staged   func() // the end of an APPEND, run after its reply

	// The selected mailbox, nil in the authenticated state. Written only by
	// the command goroutine, under mu, because an IDLE goroutine the library
	// does not wait for may still read it while the connection closes.
	mu        sync.Mutex
	view      *view
	mailboxID int64
	appending bool // guarded by mu: an APPEND is being received or answered

	// told are the keywords the client has been given for the selected
	// mailbox (see keywordNews).
	told toldKeywords

	byeOnce sync.Once
}

var (
	_ imapserver.SessionIMAP4rev2 = (*session)(nil)
	_ imapserver.SessionSASL      = (*session)(nil)
)

func (s *Server) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	cc, ok := conn.NetConn().(*cmdConn)
	if !ok { // cannot happen: every connection comes through handle or STARTTLS
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Internal error"}
	}
	wc := cc.wc
	ctx, cancel := context.WithCancel(wc.Context())
	sess := &session{
		srv: s, conn: conn, cc: cc, wc: wc, ctx: ctx, cancel: cancel,
		remote: wc.RemoteAddr().String(), log: wc.Logger(),
	}
	cc.sess.Store(sess)
	if !s.addSession(sess) {
		cancel()
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	sess.log.Debug("imap connection")
	return sess, nil, nil
}

// bye tells the client why the connection ends and closes it. It may be called
// from any goroutine but not from inside a write; the library serializes the
// BYE with its own writes.
func (s *session) bye(reason string) {
	s.byeOnce.Do(func() {
		s.log.Info("imap connection closed by server", "reason", reason)
		s.conn.Bye(reason) //nolint:errcheck // the connection is going anyway
	})
}

// drain is the session's part of Shutdown: BYE now, or after the reply to
// the APPEND being received (see afterAppend).
func (s *session) drain() {
	s.mu.Lock()
	appending := s.appending
	s.mu.Unlock()
	if !appending {
		s.bye("Server shutting down")
	}
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
// connection now: over TLS (implicit or since STARTTLS), or where wire's
// policy allows it (loopback, Policy.AllowInsecureAuth).
func (s *session) authAllowed() bool {
	return s.wc.PlaintextAuthAllowed(s.cc.tls)
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	s.begin()
	s.end("NAMESPACE", nil)
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}

// delim is the hierarchy delimiter (models.Delimiter).
const delim = '/'

// Unselect ends CLOSE and UNSELECT, and starts a SELECT or EXAMINE while a
// mailbox is selected.
func (s *session) Unselect() error {
	verb := "UNSELECT"
	if s.closing {
		verb = "CLOSE"
	}
	s.begin()
	s.unselect()
	s.pending = verb // counted by the poll that ends it; a SELECT's begin drops it
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
	s.told.tell(nil)
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

// Poll ends every command of the authenticated and selected states but
// SELECT, EXAMINE and the failed ones, and is all of NOOP and CHECK (and of
// CAPABILITY and ENABLE there).
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.wc.Touch()
	verb := s.pending
	if verb == "" && !s.answered {
		verb = "NOOP"
	}
	s.pending, s.answered = "", false
	err := s.poll(w, allowExpunge)
	if verb != "" {
		s.count(verb, err)
	}
	if fn := s.staged; fn != nil {
		// The APPEND's reply comes next.
		s.staged = nil
		s.cc.thenRun(fn)
	}
	return err
}

// poll brings the state up to date and reports what the client has not been
// told. A database failure here is logged, not returned: the library would
// drop the connection, and the changes will be reported at the next poll.
func (s *session) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
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
// mailbox there is nothing to report, but the command is legal: wait. The
// client may stay silent up to the idle timeout (30 minutes by default,
// which covers the 29 after which clients renew IDLE); DONE counts as a
// command again.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) (err error) {
	s.begin()
	// IDLE waits for the client: its idle timeout runs meanwhile (RFC 9051
	// §6.3.13: clients renew IDLE before the autologout timer).
	s.wc.End()
	defer func() {
		s.wc.Touch()
		s.end("IDLE", err)
	}()
	v := s.current()
	if v == nil {
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	if err := s.poll(w, true); err != nil {
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
