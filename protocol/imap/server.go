package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown or Close.
var ErrServerClosed = errors.New("imap: server closed")

// Options tune a Server.
type Options struct {
	// Hostname names this server in logs.
	Hostname string
	// TLSConfig enables STARTTLS on Serve's listeners and is required by
	// ServeTLS (implicit TLS, port 993). nil: no STARTTLS.
	TLSConfig *tls.Config
	// AllowInsecureAuth lets LOGIN and AUTHENTICATE run without TLS from any
	// address. Without it they are refused before TLS except from loopback.
	AllowInsecureAuth bool
	// MaxMessageBytes caps APPEND (advertised as APPENDLIMIT); larger literals
	// are refused before they are read. 0: the mailbox service's limit.
	MaxMessageBytes int64
	// IdleTimeout logs out an authenticated connection without traffic
	// (0: 30 minutes, the minimum RFC 9051 §5.4 allows).
	IdleTimeout time.Duration
	// LoginTimeout closes a connection that has not authenticated this long
	// after connecting (0: 1 minute).
	LoginTimeout time.Duration
	// MaxLoginFailures closes a connection after this many failed logins
	// (0: 3). The Authenticator slows each failure past its free ones.
	MaxLoginFailures int
	Logger           *slog.Logger
}

// Server is mailgate's IMAP server.
type Server struct {
	authn *auth.Authenticator
	mbox  *mailbox.Service
	opt   Options
	log   *slog.Logger
	reg   *registry

	ctx    context.Context // cancelled by Close: ends watchers and session contexts
	cancel context.CancelFunc

	// Two library servers, because imapserver decides whether plaintext
	// login is allowed once for all connections: trusted serves loopback
	// peers (or everyone with AllowInsecureAuth), secure everyone else; both
	// see TLS connections as such.
	secure, trusted     *imapserver.Server
	secureLn, trustedLn *chanListener

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	drained   chan struct{} // closed when the last session ends during Shutdown
	closed    bool
	nextID    atomic.Uint64

	// distrustLoopback makes loopback peers untrusted too (set by tests, to
	// see what a client on another host sees).
	distrustLoopback atomic.Bool
}

// New returns a Server that authenticates with authn and serves the mail of
// mbox. Start it with Serve (port 143, STARTTLS when Options.TLSConfig is set)
// and ServeTLS (port 993), both on plain TCP listeners:
//
//	srv := imap.New(authn, mbox, imap.Options{Hostname: host, TLSConfig: tlsConf,
//		AllowInsecureAuth: insecure, MaxMessageBytes: maxBytes, Logger: log})
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
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 30 * time.Minute
	}
	if opt.LoginTimeout <= 0 {
		opt.LoginTimeout = time.Minute
	}
	if opt.MaxLoginFailures <= 0 {
		opt.MaxLoginFailures = 3
	}
	log := opt.Logger.With("proto", "imap")
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		authn: authn, mbox: mbox, opt: opt, log: log,
		reg: newRegistry(ctx, mbox, log), ctx: ctx, cancel: cancel,
		listeners: make(map[net.Listener]struct{}), sessions: make(map[*session]struct{}),
	}
	caps := imap.CapSet{
		imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {},
		imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapESearch: {}, imap.CapSearchRes: {},
		imap.CapListExtended: {}, imap.CapListStatus: {}, imap.CapMove: {}, imap.CapStatusSize: {},
		imap.CapBinary: {}, imap.CapChildren: {},
		imap.CapSpecialUse: {}, imap.CapCreateSpecialUse: {}, imap.CapLiteralPlus: {},
	}
	for _, insecure := range []bool{false, true} {
		srv := imapserver.New(&imapserver.Options{
			NewSession:   s.newSession,
			Caps:         caps,
			Logger:       libLogger{log},
			TLSConfig:    opt.TLSConfig,
			InsecureAuth: insecure,
		})
		ln := newChanListener(dummyAddr{})
		go srv.Serve(ln) //nolint:errcheck // returns nil once ln is closed
		if insecure {
			s.trusted, s.trustedLn = srv, ln
		} else {
			s.secure, s.secureLn = srv, ln
		}
	}
	return s
}

// dummyAddr is the address of the internal listeners; nothing reads it.
type dummyAddr struct{}

func (dummyAddr) Network() string { return "imap" }
func (dummyAddr) String() string  { return "mailgate-imap" }

// appendLimit is the APPENDLIMIT, which the library holds in a uint32.
func (s *Server) appendLimit() uint32 {
	return uint32(min(s.opt.MaxMessageBytes, math.MaxUint32))
}

// Serve accepts plaintext connections on ln (STARTTLS offered when
// Options.TLSConfig is set). It returns ErrServerClosed after Shutdown/Close.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, false)
}

// ServeTLS accepts connections on ln, a plain TCP listener, and speaks TLS on
// them from the first byte with Options.TLSConfig (IMAPS, RFC 8314). Passing a
// tls.Listener to Serve works too, but then the login and idle timeouts run
// above TLS and cannot cover a stalled handshake as well.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opt.TLSConfig == nil {
		return errors.New("imap: ServeTLS needs Options.TLSConfig")
	}
	return s.serve(ln, true)
}

func (s *Server) serve(ln net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("imap accept: %w", err)
		}
		delay = 0
		lc := newLimitConn(c, s.opt.LoginTimeout, s.opt.IdleTimeout)
		var conn net.Conn = lc
		if implicitTLS {
			conn = tls.Server(lc, s.opt.TLSConfig)
		}
		target := s.secureLn
		if s.trustPeer(c.RemoteAddr()) {
			target = s.trustedLn
		}
		if !target.deliver(conn) {
			conn.Close()
			return ErrServerClosed
		}
	}
}

// trustPeer tells whether a peer may log in without TLS: everyone with
// AllowInsecureAuth, otherwise loopback peers only.
func (s *Server) trustPeer(a net.Addr) bool {
	return s.opt.AllowInsecureAuth || (!s.distrustLoopback.Load() && isLoopback(a))
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// stopAccepting marks the server closed and closes its listeners.
func (s *Server) stopAccepting() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
		if len(s.sessions) == 0 {
			close(s.drained)
		}
	}
	return sessions
}

// Shutdown stops accepting, tells every client BYE (IMAP connections are
// long-lived: waiting for them to end by themselves could take 30 minutes)
// and waits until their sessions end or ctx is done, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	sessions := s.stopAccepting()
	for _, sess := range sessions {
		go sess.bye("Server shutting down")
	}
	var err error
	select {
	case <-s.drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.Close()
	return err
}

// Close stops the server at once, closing every connection.
func (s *Server) Close() error {
	s.stopAccepting()
	s.cancel()
	// imapserver.Server.Serve registers with a WaitGroup only after it has
	// published its listener, so a Close racing with a starting Serve races on
	// that WaitGroup: wait until both have reached Accept.
	<-s.secureLn.accepting
	<-s.trustedLn.accepting
	s.secureLn.Close()
	s.trustedLn.Close()
	s.secure.Close()  //nolint:errcheck // only "already closed"
	s.trusted.Close() //nolint:errcheck // only "already closed"
	return nil
}

func (s *Server) addSession(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[sess] = struct{}{}
	return true
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	if s.drained != nil && len(s.sessions) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
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
