// Package wire is the connection layer under mailgate's SMTP, IMAP and POP3
// servers: listening with connection caps, implicit TLS, per-connection ids,
// loggers and contexts, one meaning for the login and idle timeouts, one
// plaintext-login policy, graceful shutdown, and the front ends' metrics. The
// servers above it are protocol adapters: they speak on a Conn and call back
// into it when a command arrives, a login succeeds or fails, or a message is
// being transferred.
package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown or Close.
var ErrServerClosed = errors.New("wire: server closed")

// Defaults of Limits.
const (
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 20
	DefaultLoginTimeout        = time.Minute
	DefaultMaxLoginFailures    = 3
)

// Limits bound what one client and all clients together may hold.
type Limits struct {
	// MaxConnections open at once on the server (0: DefaultMaxConnections).
	MaxConnections int
	// MaxConnectionsPerIP open at once from one client address; IPv6 clients
	// are counted per /64, which one host usually has to itself (0:
	// DefaultMaxConnectionsPerIP).
	MaxConnectionsPerIP int
	// LoginTimeout is the time from connecting to a successful login, on
	// servers where one is needed (0: DefaultLoginTimeout).
	LoginTimeout time.Duration
	// IdleTimeout is how long a client may go without completing a command
	// (or making progress in a transfer); 0: the protocol's own minimum.
	IdleTimeout time.Duration
	// MaxLoginFailures ends a connection after this many failed logins
	// (0: DefaultMaxLoginFailures).
	MaxLoginFailures int
}

func (l Limits) withDefaults(idle time.Duration) Limits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnectionsPerIP <= 0 {
		l.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if l.LoginTimeout <= 0 {
		l.LoginTimeout = DefaultLoginTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = idle
	}
	if l.MaxLoginFailures <= 0 {
		l.MaxLoginFailures = DefaultMaxLoginFailures
	}
	return l
}

// Options configure a Server. Protocol, Handle and DefaultIdle are required.
type Options struct {
	// Protocol names the front end in logs and metrics: "smtp", "imap", "pop3".
	Protocol string
	// Limits and Policy are shared by every front end (set once in serve).
	Limits Limits
	Policy Policy
	// DefaultIdle is the idle timeout when Limits.IdleTimeout is 0: the
	// smallest the protocol's RFC allows a server to use.
	DefaultIdle time.Duration
	// NeedsLogin applies the login timeout (false for SMTP from other servers,
	// which never log in).
	NeedsLogin bool
	// TLSConfig is used by ServeTLS.
	TLSConfig *tls.Config
	// Handle runs one connection: it speaks on nc (c itself, or TLS over it)
	// and closes nc when done. It is called in a goroutine of its own and may
	// return before the connection ends.
	Handle func(c *Conn, nc net.Conn)
	// Refuse writes the protocol's refusal of a connection over the caps, such
	// as "421 4.7.0 …" (the connection is closed after it).
	Refuse func(nc net.Conn, reason string)
	// Expire, when set, is called once (in a goroutine of its own) when the
	// login or idle timeout runs out, so the protocol can say why before it
	// closes the connection (IMAP's BYE); reads fail expireGrace later.
	// Without it, the read blocked at that moment fails with a timeout.
	Expire func(c *Conn, reason string)
	// Drain, when set, is called for each connection when Shutdown starts.
	// Without it, a connection waiting for a command has its read fail with a
	// timeout (its protocol then says goodbye); one in a transfer finishes it.
	Drain   func(c *Conn)
	Metrics *Metrics
	Logger  *slog.Logger
}

// expireGrace is how much later than an Expire callback a blocked read fails,
// so that the protocol's goodbye goes out first.
const expireGrace = 5 * time.Second

// refuseTimeout bounds writing a refusal (a TLS handshake included).
const refuseTimeout = 5 * time.Second

// maxRefusing bounds refusals written at once; past it, connections over the
// caps are closed without a word.
const maxRefusing = 64

// Server accepts connections for one protocol. Serve and ServeTLS may be
// called for several listeners.
type Server struct {
	opt Options
	log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{} // guarded by mu
	conns     map[*Conn]struct{}        // guarded by mu
	perIP     map[string]int            // guarded by mu
	closing   bool                      // guarded by mu
	drained   chan struct{}             // guarded by mu; closed when conns empties while closing
	refusing  int                       // guarded by mu
}

// NewServer returns a Server for opt.
func NewServer(opt Options) *Server {
	if opt.Handle == nil || opt.Protocol == "" || opt.DefaultIdle <= 0 {
		panic("wire: NewServer needs Protocol, Handle and DefaultIdle")
	}
	opt.Limits = opt.Limits.withDefaults(opt.DefaultIdle)
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil, opt.Protocol)
	}
	return &Server{
		opt: opt, log: opt.Logger,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*Conn]struct{}),
		perIP:     make(map[string]int),
	}
}

// Metrics are the server's counters.
func (s *Server) Metrics() *Metrics { return s.opt.Metrics }

// Serve accepts connections on ln until Shutdown or Close, then returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS is Serve with TLS from the first byte (ports 465, 993, 995). ln is a
// plain listener: the timeouts and caps apply to the handshake too.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opt.TLSConfig == nil {
		return fmt.Errorf("%s: implicit TLS needs a TLS configuration", s.opt.Protocol)
	}
	return s.serve(ln, true)
}

func (s *Server) serve(ln net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", implicitTLS)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if retryable(err) {
				// Out of file descriptors and the like: wait, do not spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("%s accept: %w", s.opt.Protocol, err)
		}
		delay = 0
		s.accept(nc, implicitTLS)
	}
}

// retryable tells an accept error the listener may recover from (out of
// file descriptors, a connection aborted before it was accepted).
func retryable(err error) bool {
	var ne net.Error
	var t interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Timeout() || errors.As(err, &t) && t.Temporary()
}

// accept admits nc under the caps, or refuses it.
func (s *Server) accept(nc net.Conn, implicitTLS bool) {
	m := s.opt.Metrics
	ip := ipKey(nc.RemoteAddr())
	s.mu.Lock()
	var reason string
	switch {
	case s.closing:
		reason = "shutdown"
	case len(s.conns) >= s.opt.Limits.MaxConnections:
		reason = "max_connections"
	case ip != "" && s.perIP[ip] >= s.opt.Limits.MaxConnectionsPerIP:
		reason = "max_connections_per_ip"
	}
	if reason != "" {
		refuse := s.refusing < maxRefusing && s.opt.Refuse != nil
		if refuse {
			s.refusing++
		}
		s.mu.Unlock()
		m.refused.WithLabelValues(reason).Inc()
		s.log.Warn("connection refused", "remote", nc.RemoteAddr().String(), "reason", reason)
		if !refuse {
			nc.Close()
			return
		}
		go s.refuse(nc, implicitTLS, reason)
		return
	}
	c := newConn(s, nc, ip, implicitTLS)
	s.conns[c] = struct{}{}
	if ip != "" {
		s.perIP[ip]++
	}
	s.mu.Unlock()
	m.connections.Inc()
	m.open.Inc()
	var speak net.Conn = c
	if implicitTLS {
		speak = tls.Server(c, s.opt.TLSConfig)
	}
	c.log.Debug("connection accepted", "tls", implicitTLS)
	go s.opt.Handle(c, speak)
}

func (s *Server) refuse(nc net.Conn, implicitTLS bool, reason string) {
	defer func() {
		nc.Close()
		s.mu.Lock()
		s.refusing--
		s.mu.Unlock()
	}()
	nc.SetDeadline(time.Now().Add(refuseTimeout)) //nolint:errcheck // a broken conn fails the write anyway
	if implicitTLS {
		tc := tls.Server(nc, s.opt.TLSConfig)
		if tc.Handshake() != nil {
			return
		}
		nc = tc
	}
	s.opt.Refuse(nc, reason)
}

// forget removes a closed connection.
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if c.ip != "" {
		if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
			delete(s.perIP, c.ip)
		}
	}
	s.opt.Metrics.open.Dec()
	if s.closing && len(s.conns) == 0 && s.drained != nil {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// stop marks the server closing, closes the listeners and lists the
// connections.
func (s *Server) stop() ([]*Conn, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.drained)
		}
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns, s.drained
}

// Shutdown stops accepting, asks every connection to finish (a client waiting
// for a command is told goodbye in its protocol; a transfer in progress is
// completed and answered), and waits for them to close. If ctx ends first,
// the rest are closed (an unanswered message is retried by its sender) and
// ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	conns, drained := s.stop()
	for _, c := range conns {
		c.drain()
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	conns, _ := s.stop()
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// ipKey is the address a client is counted under: its IP, or for IPv6 its
// /64. Peers without an IP (Unix sockets) are not counted per address.
func ipKey(a net.Addr) string {
	var ip net.IP
	switch x := a.(type) {
	case *net.TCPAddr:
		ip = x.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return ""
		}
		ip = net.ParseIP(host)
	}
	if ip == nil {
		return ""
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
