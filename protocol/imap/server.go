package imap

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/wire"
)

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown or Close.
var ErrServerClosed = wire.ErrServerClosed

// defaultIdleTimeout is the idle timeout when Limits.IdleTimeout is 0: the
// minimum RFC 9051 §5.4 allows (clients renew IDLE every 29 minutes).
const defaultIdleTimeout = 30 * time.Minute

// libraryAppendLimit is the largest APPEND literal go-imap's imapserver takes
// when the session does not implement SessionAppendLimit (its
// defaultAppendLimit). MaxMessageBytes is clamped to it: see Session.Append.
const libraryAppendLimit = 100 << 20

// Options tune a Server.
type Options struct {
	// Hostname names this server in logs.
	Hostname string
	// Version is the server's version, given to clients in the ID response
	// (RFC 2971) with the name "mailgate". "": the name alone.
	Version string
	// TLSConfig enables STARTTLS on Serve's listeners and is required by
	// ServeTLS (implicit TLS, port 993). nil: no STARTTLS.
	TLSConfig *tls.Config
	// MaxMessageBytes caps APPEND (advertised as APPENDLIMIT). 0: the
	// mailbox service's limit; never more than 100 MiB, the most go-imap
	// reads for an APPEND.
	MaxMessageBytes int64
	// Limits are the connection caps and timeouts shared by the front ends;
	// the idle timeout defaults to 30 minutes (RFC 9051 §5.4).
	Limits wire.Limits
	// Policy says when a password may be sent without TLS.
	Policy wire.Policy
	// Metrics are the front end's counters (nil: unregistered ones).
	Metrics *wire.Metrics
	Logger  *slog.Logger
}

// Server is mailgate's IMAP server: a protocol adapter on package wire,
// which accepts the connections and owns their caps, timeouts and shutdown,
// over go-imap's imapserver, which speaks the protocol.
type Server struct {
	authn *auth.Authenticator
	mbox  *mailbox.Service
	opt   Options
	log   *slog.Logger
	reg   *registry
	wire  *wire.Server

	ctx    context.Context // cancelled by Close: ends the mailbox watchers
	cancel context.CancelFunc

	// Two library servers, because imapserver decides whether plaintext
	// login is allowed once for all connections: trusted gets the
	// connections where wire's policy allows it from the start (loopback,
	// implicit TLS, Policy.AllowInsecureAuth) and those that ran STARTTLS,
	// secure the others (the library then advertises LOGINDISABLED and
	// refuses LOGIN). Neither does STARTTLS: cmdConn runs it.
	secure, trusted     *imapserver.Server
	secureLn, trustedLn *wire.Handoff
	libOnce             sync.Once

	mu       sync.Mutex
	sessions map[*wire.Conn]*session // guarded by mu
	emptied  chan struct{}           // guarded by mu; closed when sessions empties
	closed   bool                    // guarded by mu
}

// New returns a Server that authenticates with authn and serves the mail of
// mbox. Start it with Serve (port 143, STARTTLS when Options.TLSConfig is set)
// and ServeTLS (port 993), both on plain TCP listeners:
//
//	srv := imap.New(authn, mbox, imap.Options{Hostname: host, TLSConfig: tlsConf,
//		Limits: limits, Policy: policy, MaxMessageBytes: maxBytes, Metrics: m, Logger: log})
//	go srv.Serve(ln143)    // MAILGATE_IMAP_ADDR
//	go srv.ServeTLS(ln993) // MAILGATE_IMAPS_ADDR
//	...
//	srv.Shutdown(ctx)
func New(authn *auth.Authenticator, mbox *mailbox.Service, opt Options) *Server {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MaxMessageBytes <= 0 || opt.MaxMessageBytes > mbox.MaxMessageBytes() {
		opt.MaxMessageBytes = mbox.MaxMessageBytes()
	}
	opt.MaxMessageBytes = min(opt.MaxMessageBytes, libraryAppendLimit)
	log := opt.Logger.With("proto", "imap")
	if opt.Hostname != "" {
		log = log.With("host", opt.Hostname)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		authn: authn, mbox: mbox, opt: opt, log: log,
		reg: newRegistry(ctx, mbox, log), ctx: ctx, cancel: cancel,
		sessions: make(map[*wire.Conn]*session),
	}
	s.wire = wire.NewServer(wire.Options{
		Protocol:    "imap",
		Limits:      opt.Limits,
		Policy:      opt.Policy,
		DefaultIdle: defaultIdleTimeout,
		NeedsLogin:  true,
		TLSConfig:   opt.TLSConfig,
		Handle:      s.handle,
		Refuse:      refuse,
		Expire:      s.expire,
		Drain:       s.drain,
		Metrics:     opt.Metrics,
		Logger:      log,
	})
	caps := imap.CapSet{
		imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {},
		imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapESearch: {}, imap.CapSearchRes: {},
		imap.CapListExtended: {}, imap.CapListStatus: {}, imap.CapMove: {}, imap.CapStatusSize: {},
		imap.CapBinary: {}, imap.CapChildren: {},
		imap.CapSpecialUse: {}, imap.CapCreateSpecialUse: {}, imap.CapLiteralPlus: {},
		// A static capability rather than imapserver.SessionAppendLimit, with
		// which the library would refuse a larger LITERAL+ APPEND without
		// reading it. cmdConn refuses a synchronizing APPEND over the limit
		// before its continuation request; a LITERAL+ one is read and
		// refused by Session.Append. (beta.8 advertises this as a bare
		// "APPENDLIMIT", which cmdConn completes with the number.)
		imap.Cap(fmt.Sprintf("APPENDLIMIT=%d", s.appendLimit())): {},
	}
	for _, insecure := range []bool{false, true} {
		srv := imapserver.New(&imapserver.Options{
			NewSession:   s.newSession,
			Caps:         caps,
			Logger:       libLogger{log},
			InsecureAuth: insecure,
		})
		ln := wire.NewHandoff("mailgate-imap")
		go srv.Serve(ln) //nolint:errcheck // returns nil once ln is closed
		if insecure {
			s.trusted, s.trustedLn = srv, ln
		} else {
			s.secure, s.secureLn = srv, ln
		}
	}
	return s
}

// appendLimit is the APPENDLIMIT, at most libraryAppendLimit.
func (s *Server) appendLimit() uint32 {
	return uint32(s.opt.MaxMessageBytes)
}

// metrics are the front end's counters.
func (s *Server) metrics() *wire.Metrics { return s.wire.Metrics() }

// Serve accepts plaintext connections on ln (STARTTLS offered when
// Options.TLSConfig is set). It returns ErrServerClosed after Shutdown/Close.
func (s *Server) Serve(ln net.Listener) error { return s.wire.Serve(ln) }

// ServeTLS accepts connections on ln, a plain TCP listener, and speaks TLS on
// them from the first byte with Options.TLSConfig (IMAPS, RFC 8314), the
// handshake within the login timeout.
func (s *Server) ServeTLS(ln net.Listener) error { return s.wire.ServeTLS(ln) }

// handle passes a connection accepted by wire to one of the library servers,
// through a cmdConn over nc (the wire.Conn, or for implicit TLS the wire's
// TLS connection over it).
func (s *Server) handle(c *wire.Conn, nc net.Conn) {
	cc := newCmdConn(s, c, nc, c.ImplicitTLS())
	target := s.secureLn
	if c.PlaintextAuthAllowed(cc.tls) {
		target = s.trustedLn
	}
	if !target.Give(cc) {
		nc.Close()
	}
}

// refuse answers a connection over the caps.
func refuse(nc net.Conn, reason string) {
	text := "Too many connections; try again later"
	if reason == "shutdown" {
		text = "Server shutting down"
	}
	nc.Write([]byte("* BYE [UNAVAILABLE] " + text + "\r\n")) //nolint:errcheck // closed next either way
}

// byeGrace bounds the BYE of a timeout: a client that does not read cannot
// keep the connection open with it.
const byeGrace = 5 * time.Second

// expire says why a connection timed out, and closes it.
func (s *Server) expire(c *wire.Conn, reason string) {
	text := "Autologout: idle for too long"
	switch reason {
	case "login":
		text = "Authenticate sooner"
	case "shutdown":
		text = "Server shutting down"
	}
	sess := s.sessionOf(c)
	if sess == nil { // no IMAP session: in the middle of STARTTLS
		c.Close()
		return
	}
	t := time.AfterFunc(byeGrace, func() { c.Close() })
	defer t.Stop()
	sess.bye(text)
}

// drain starts a connection's part of Shutdown: BYE, at once or, during an
// APPEND, once it has been answered.
func (s *Server) drain(c *wire.Conn) {
	if sess := s.sessionOf(c); sess != nil {
		sess.drain()
	}
	// Without a session yet (or between the two sessions of a STARTTLS),
	// newSession sees Draining and says BYE itself.
}

// sessionOf is the connection's current session: a connection that ran
// STARTTLS has had two, the first removed when the second takes over.
func (s *Server) sessionOf(c *wire.Conn) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[c]
}

// addSession registers a new session, unless the server or the connection
// is closing. Under mu, so that drain either finds the session or newSession
// sees the connection draining.
func (s *Server) addSession(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || sess.wc.Draining() {
		return false
	}
	s.sessions[sess.wc] = sess
	return true
}

// removeSession unregisters a session that ended, or that STARTTLS
// replaced; it may be called twice.
func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.wc] == sess {
		delete(s.sessions, sess.wc)
	}
	if len(s.sessions) == 0 && s.emptied != nil {
		close(s.emptied)
		s.emptied = nil
	}
}

// waitSessions waits until every session has ended (the library closes a
// session after its connection).
func (s *Server) waitSessions(ctx context.Context) error {
	s.mu.Lock()
	if len(s.sessions) == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.emptied == nil {
		s.emptied = make(chan struct{})
	}
	ch := s.emptied
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) markClosed() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// Shutdown stops accepting, tells every client BYE (IMAP connections are
// long-lived: waiting for them to end by themselves could take 30 minutes; an
// APPEND being received is completed and answered first) and waits until
// they end or ctx is done, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.markClosed()
	err := s.wire.Shutdown(ctx)
	if err == nil {
		err = s.waitSessions(ctx)
	}
	s.closeLibrary()
	return err
}

// Close stops the server at once, closing every connection.
func (s *Server) Close() error {
	s.markClosed()
	s.wire.Close() //nolint:errcheck // always nil
	s.closeLibrary()
	return nil
}

// closeLibrary stops the library servers and the mailbox watchers.
func (s *Server) closeLibrary() {
	s.libOnce.Do(func() {
		s.cancel()
		// imapserver.Server.Serve registers with a WaitGroup only after it
		// has published its listener, so a Close racing with a starting
		// Serve races on that WaitGroup: wait until both have reached Accept.
		<-s.secureLn.Accepting()
		<-s.trustedLn.Accepting()
		s.secureLn.Close()
		s.trustedLn.Close()
		s.secure.Close()  //nolint:errcheck // only "already closed"
		s.trusted.Close() //nolint:errcheck // only "already closed"
	})
}

// libLogger passes the library's messages to slog: a panic is an error; a
// connection that broke or timed out is routine.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch {
	case strings.Contains(msg, "panic"):
		l.log.Error("imap library", "msg", msg)
	case strings.HasPrefix(msg, "failed to read command"), strings.HasPrefix(msg, "failed to write greeting"),
		strings.Contains(msg, net.ErrClosed.Error()):
		l.log.Debug("imap connection ended", "msg", msg)
	default:
		l.log.Warn("imap library", "msg", msg)
	}
}
