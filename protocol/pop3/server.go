// Package pop3 is mailgate's POP3 server: RFC 1939 (USER/PASS, STAT, LIST,
// RETR, DELE, NOOP, RSET, QUIT, TOP, UIDL, with the AUTHORIZATION, TRANSACTION
// and UPDATE states), RFC 2449 (CAPA, RESP-CODES, AUTH-RESP-CODE, PIPELINING,
// IMPLEMENTATION), RFC 2595 (STLS), RFC 5034 (AUTH PLAIN, RFC 4616, and
// LOGIN) and the [SYS/TEMP] code of RFC 3206. APOP is left out: it needs
// passwords stored in the clear.
//
// It is a protocol adapter on package wire, which accepts the connections and
// owns the caps, the login and idle timeouts, the plaintext-login policy and
// graceful shutdown.
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
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/wire"
)

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown or Close.
var ErrServerClosed = wire.ErrServerClosed

// defaultIdle is the idle timeout when Limits.IdleTimeout is 0: the minimum
// RFC 1939 §3 allows.
const defaultIdle = 10 * time.Minute

// Options tune a Server. The zero value of each field has a sensible default.
type Options struct {
	// Hostname names the server in its greeting ("": os.Hostname).
	Hostname string
	// TLSConfig enables STLS and ServeTLS (nil: neither is offered).
	TLSConfig *tls.Config
	// Limits are the connection caps and the login and idle timeouts, shared
	// with the other front ends (a zero IdleTimeout: 10 minutes, the minimum
	// RFC 1939 §3 allows).
	Limits wire.Limits
	// Policy says where USER/PASS and AUTH may run without TLS.
	Policy wire.Policy
	// Metrics are the front end's counters (nil: unregistered ones).
	Metrics *wire.Metrics
	// LockTTL is the lease on a maildrop; a live session renews it every
	// LockTTL/3, so a crashed instance blocks the maildrop at most this long
	// (0: 60 seconds).
	LockTTL time.Duration
	// InstanceID names this instance in the maildrop lock table ("": host
	// name and process id).
	InstanceID string
	Logger     *slog.Logger
}

// Server serves POP3 sessions.
type Server struct {
	auth Authenticator // immutable
	mbox Maildrop      // immutable
	opt  Options       // immutable after New
	wire *wire.Server  // immutable

	panics atomic.Int64 // recovered panics, which tests expect to stay 0
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
	if opt.LockTTL <= 0 {
		opt.LockTTL = 60 * time.Second
	}
	if opt.InstanceID == "" {
		opt.InstanceID = fmt.Sprintf("%s-%d", opt.Hostname, os.Getpid())
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{auth: authn, mbox: mbox, opt: opt}
	s.wire = wire.NewServer(wire.Options{
		Protocol:    "pop3",
		Limits:      opt.Limits,
		Policy:      opt.Policy,
		DefaultIdle: defaultIdle,
		NeedsLogin:  true,
		TLSConfig:   opt.TLSConfig,
		Handle:      s.handle,
		Refuse:      refuse,
		Metrics:     opt.Metrics,
		Logger:      opt.Logger.With("proto", "pop3"),
	})
	return s
}

// Serve accepts connections on ln until Shutdown or Close; they get STLS when
// Options.TLSConfig is set. It always returns a non-nil error:
// ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error { return s.wire.Serve(ln) }

// ServeTLS serves implicit-TLS POP3 (port 995) on a plain listener, with
// Options.TLSConfig.
func (s *Server) ServeTLS(ln net.Listener) error { return s.wire.ServeTLS(ln) }

// Shutdown stops accepting connections, closes sessions waiting for a command
// with -ERR [SYS/TEMP] (they delete nothing, as RFC 1939 requires of a session
// that did not QUIT), lets a RETR, TOP or QUIT in progress finish, and waits
// for the sessions to end, or for ctx; then it closes whatever is left.
func (s *Server) Shutdown(ctx context.Context) error { return s.wire.Shutdown(ctx) }

// Close closes the listeners and every connection at once.
func (s *Server) Close() error { return s.wire.Close() }

// refuse turns away a connection over the caps (RFC 2449 §8, RFC 3206 §4).
func refuse(nc net.Conn, reason string) {
	line := "-ERR [" + codeSysTemp + "] Too many connections; try again later\r\n"
	if reason == "shutdown" {
		line = "-ERR [" + codeSysTemp + "] Server shutting down; try again later\r\n"
	}
	nc.Write([]byte(line)) //nolint:errcheck // the connection is closed next either way
}

// newOwner names one session in the maildrop lock table: the instance, so an
// operator can tell who holds a lock, and a random part, so that two sessions
// never share a lease.
func (s *Server) newOwner() string {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	return s.opt.InstanceID + "/" + hex.EncodeToString(b[:])
}
