package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/net/netutil"

	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = gosmtp.ErrServerClosed

// Mode is the role of a listener.
type Mode int

const (
	// ModeMTA receives mail from other servers (port 25).
	ModeMTA Mode = iota
	// ModeSubmission takes mail from users' clients, AUTH required (port 587).
	ModeSubmission
	// ModeSubmissions is ModeSubmission over implicit TLS (port 465).
	ModeSubmissions
)

func (m Mode) String() string {
	switch m {
	case ModeMTA:
		return "mta"
	case ModeSubmission:
		return "submission"
	case ModeSubmissions:
		return "submissions"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Options tune a Server. Zero values take the defaults given.
type Options struct {
	Mode Mode
	// Hostname names this server in the greeting and trace headers ("": the
	// deliverer's hostname).
	Hostname string
	// TLSConfig enables STARTTLS (nil: not offered). Required by ModeSubmissions.
	TLSConfig *tls.Config
	// AllowInsecureAuth offers AUTH without TLS to any peer (loopback peers
	// always get it).
	AllowInsecureAuth bool
	// MaxMessageBytes is the largest message accepted, as sent (0: the mailbox
	// service's limit).
	MaxMessageBytes int64
	// MaxRecipients per message (0: 100).
	MaxRecipients int
	// MaxConnections open at once; further clients wait in the accept queue
	// (0: 500).
	MaxConnections int
	// ReadTimeout is how long a client may stay silent, between commands or
	// within a message (0: 5 minutes, RFC 5321 §4.5.3.2.7).
	ReadTimeout time.Duration
	// WriteTimeout bounds each reply (0: 5 minutes).
	WriteTimeout time.Duration
	Logger       *slog.Logger
}

// storeTimeout bounds storing one message once it is received.
const storeTimeout = 5 * time.Minute

// Server is an SMTP server in one mode. Serve may be called for several
// listeners.
type Server struct {
	authn *auth.Authenticator
	dlv   *delivery.Deliverer
	opt   Options
	gs    *gosmtp.Server
	// loopbackIsRemote makes loopback peers count as remote for the AUTH-over-TLS
	// rule, so tests on 127.0.0.1 can see what remote peers see. Set only by tests.
	loopbackIsRemote bool

	mu       sync.Mutex
	conns    map[*conn]struct{} // guarded by mu
	draining bool               // guarded by mu
	closed   bool               // guarded by mu
}

// New returns a Server that authenticates with authn and delivers with dlv.
func New(authn *auth.Authenticator, dlv *delivery.Deliverer, opt Options) *Server {
	if opt.Hostname == "" {
		opt.Hostname = dlv.Hostname()
	}
	if opt.MaxMessageBytes <= 0 {
		opt.MaxMessageBytes = dlv.Mailbox().MaxMessageBytes()
	}
	if opt.MaxRecipients <= 0 {
		opt.MaxRecipients = 100
	}
	if opt.MaxConnections <= 0 {
		opt.MaxConnections = 500
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = 5 * time.Minute
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 5 * time.Minute
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	opt.Logger = opt.Logger.With("proto", "smtp", "mode", opt.Mode.String())
	s := &Server{authn: authn, dlv: dlv, opt: opt, conns: make(map[*conn]struct{})}
	gs := gosmtp.NewServer(backend{s})
	gs.Domain = opt.Hostname
	gs.TLSConfig = opt.TLSConfig
	gs.MaxMessageBytes = opt.MaxMessageBytes
	gs.MaxRecipients = opt.MaxRecipients
	// The session decides who may AUTH (TLS, loopback, the option): go-smtp's
	// switch is all or nothing.
	gs.AllowInsecureAuth = true
	gs.ReadTimeout = 0 // per-read idle deadlines instead: see conn
	gs.WriteTimeout = opt.WriteTimeout
	gs.EnableSMTPUTF8 = true
	gs.ErrorLog = errorLog{opt.Logger}
	s.gs = gs
	return s
}

// Serve accepts connections on ln until Shutdown or Close, and then returns
// ErrServerClosed. ln is a plain TCP listener in every mode: in ModeSubmissions
// Serve adds the implicit TLS itself, above its own per-read deadlines.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	closed := s.closed || s.draining
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	var l net.Listener = &listener{Listener: netutil.LimitListener(ln, s.opt.MaxConnections), srv: s}
	if s.opt.Mode == ModeSubmissions {
		if s.opt.TLSConfig == nil {
			return errors.New("smtp: implicit TLS (submissions) needs a TLS config")
		}
		l = tls.NewListener(l, s.opt.TLSConfig)
	}
	s.opt.Logger.Info("listening", "addr", ln.Addr().String())
	if err := s.gs.Serve(l); err != nil {
		return fmt.Errorf("smtp %s: %w", s.opt.Mode, err)
	}
	return ErrServerClosed
}

// Shutdown stops accepting connections, ends idle ones (421) and waits for the
// messages in transfer to be stored and answered. If ctx ends first, the
// remaining connections are closed (their messages are not acknowledged, so
// their clients retry) and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	err := s.gs.Shutdown(ctx)
	if errors.Is(err, gosmtp.ErrServerClosed) {
		err = nil
	}
	if ctx.Err() != nil {
		s.closeConns()
		return ctx.Err()
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.gs.Close()
	if errors.Is(err, gosmtp.ErrServerClosed) {
		err = nil // after Shutdown: go-smtp no longer closes connections itself
	}
	s.closeConns()
	return err
}

func (s *Server) closeConns() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// track wraps a newly accepted connection.
func (s *Server) track(nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{Conn: nc, id: newConnID(), ctx: ctx, cancel: cancel, idle: s.opt.ReadTimeout, srv: s}
	c.log = s.opt.Logger.With("conn", c.id, "remote", nc.RemoteAddr().String())
	s.mu.Lock()
	s.conns[c] = struct{}{}
	draining := s.draining || s.closed
	s.mu.Unlock()
	if draining {
		c.drain()
	}
	c.log.Debug("connection accepted")
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// errorLog routes go-smtp's internal error reports to slog.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Warn("smtp library", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (e errorLog) Println(v ...any) {
	e.log.Warn("smtp library", "detail", strings.TrimSpace(fmt.Sprintln(v...)))
}
