// Package pop3 is mailgate's POP3 server: RFC 1939 (USER/PASS, STAT, LIST,
// RETR, DELE, NOOP, RSET, QUIT, TOP, UIDL, with the AUTHORIZATION, TRANSACTION
// and UPDATE states), RFC 2449 (CAPA, RESP-CODES, AUTH-RESP-CODE, PIPELINING,
// IMPLEMENTATION), RFC 2595 (STLS), RFC 5034 (AUTH PLAIN, RFC 4616) and the
// [SYS/TEMP] code of RFC 3206. APOP is left out: it needs passwords stored in
// the clear.
//
// The maildrop is the user's INBOX, read through package mailbox. At login the
// session takes an exclusive lease on the maildrop in the store (so a second
// session on any instance gets -ERR [IN-USE]) and snapshots its messages:
// numbers and sizes stay fixed for the session. DELE only marks; QUIT expunges
// the marked messages in one transaction (IMAP sessions and the HTTP API see
// them go); a session that ends any other way deletes nothing.
package pop3

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("pop3: server closed")

// Options tune a Server. The zero value of each field has a sensible default.
type Options struct {
	// Hostname names the server in its greeting ("": os.Hostname).
	Hostname string
	// TLSConfig enables STLS and ServeTLS (nil: neither is offered).
	TLSConfig *tls.Config
	// AllowInsecureAuth lets USER/PASS and AUTH run without TLS from any
	// address; without it only loopback clients may log in in the clear.
	AllowInsecureAuth bool
	// IdleTimeout closes an authenticated session idle this long (0: 10 minutes,
	// the minimum RFC 1939 §3 allows; tests use less).
	IdleTimeout time.Duration
	// AuthTimeout closes a session that has not logged in and is idle this
	// long (0: 60 seconds).
	AuthTimeout time.Duration
	// MaxAuthFailures closes a session after this many failed logins (0: 3).
	// The Authenticator also slows down clients that keep failing.
	MaxAuthFailures int
	// LockTTL is the lease on a maildrop; a live session renews it every
	// LockTTL/3, so a crashed instance blocks the maildrop at most this long
	// (0: 60 seconds).
	LockTTL time.Duration
	// InstanceID names this instance in the maildrop lock table (""): host
	// name and process id).
	InstanceID string
	Logger     *slog.Logger
}

// Server serves POP3 sessions.
type Server struct {
	auth Authenticator // immutable
	mbox Maildrop      // immutable
	opt  Options       // immutable after New
	log  *slog.Logger  // immutable

	// exemptLoopback lets loopback clients log in without TLS; tests turn it
	// off to see the refusal.
	exemptLoopback bool

	nextConn atomic.Uint64
	panics   atomic.Int64 // recovered panics, which tests expect to stay 0

	// closing is set (under mu) by Shutdown and Close; sessions read it
	// without mu, before they wait for their next command.
	closing   atomic.Bool
	mu        sync.Mutex
	listeners map[net.Listener]struct{} // guarded by mu
	conns     map[*conn]struct{}        // guarded by mu
}

// New returns a Server that checks credentials with authn and serves each
// user's INBOX from mbox. Call Serve (STLS port, 110) and ServeTLS (implicit
// TLS port, 995) with listeners.
func New(authn *auth.Authenticator, mbox *mailbox.Service, opt Options) *Server {
	return newServer(authn, mbox, opt)
}

func newServer(authn Authenticator, mbox Maildrop, opt Options) *Server {
	if opt.Hostname == "" {
		opt.Hostname, _ = os.Hostname()
		if opt.Hostname == "" {
			opt.Hostname = "localhost"
		}
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 10 * time.Minute
	}
	if opt.AuthTimeout <= 0 {
		opt.AuthTimeout = 60 * time.Second
	}
	if opt.AuthTimeout > opt.IdleTimeout {
		opt.AuthTimeout = opt.IdleTimeout
	}
	if opt.MaxAuthFailures <= 0 {
		opt.MaxAuthFailures = 3
	}
	if opt.LockTTL <= 0 {
		opt.LockTTL = 60 * time.Second
	}
	if opt.InstanceID == "" {
		opt.InstanceID = fmt.Sprintf("%s-%d", opt.Hostname, os.Getpid())
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		auth: authn, mbox: mbox, opt: opt, exemptLoopback: true,
		log:       opt.Logger.With("proto", "pop3"),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
}

// Serve accepts connections on ln until Shutdown or Close. A connection that
// is a *tls.Conn (ln made by tls.NewListener) is implicit TLS; any other gets
// STLS when Options.TLSConfig is set. It always returns a non-nil error:
// ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.untrack(ln)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("pop3: accept: %w", err)
		}
		backoff = 0
		c := s.newConn(nc)
		if !s.addConn(c) {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// ServeTLS serves implicit-TLS POP3 (port 995) on a plain listener, with
// Options.TLSConfig. Equivalent to Serve(tls.NewListener(ln, TLSConfig)).
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opt.TLSConfig == nil {
		return errors.New("pop3: ServeTLS needs Options.TLSConfig")
	}
	return s.Serve(tls.NewListener(ln, s.opt.TLSConfig))
}

// Shutdown stops accepting connections, closes sessions waiting for a command
// (they delete nothing, as RFC 1939 requires of a session that did not QUIT),
// and waits for the commands in progress to end, or for ctx; then it closes
// whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.interruptIdle()
	}
	s.mu.Unlock()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.abort()
	}
	return nil
}

func (s *Server) isClosing() bool { return s.closing.Load() }

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

func (s *Server) addConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// activeConns counts open sessions (tests wait for it to drop).
func (s *Server) activeConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// newOwner names one session in the maildrop lock table: the instance, so an
// operator can tell who holds a lock, and a random part, so that two sessions
// never share a lease.
func (s *Server) newOwner() string {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	return s.opt.InstanceID + "/" + hex.EncodeToString(b[:])
}
