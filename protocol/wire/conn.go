package wire

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one accepted client connection, below TLS. It owns the read and
// write deadlines (what a library above sets is ignored): a read fails once
// the client has gone IdleTimeout without completing a command, or, before a
// login, LoginTimeout after connecting. The adapter says when a command
// completed (Touch), when a transfer is in progress (Transfer) and how logins
// went (LoggedIn, LoginFailed).
type Conn struct {
	net.Conn
	srv    *Server            // immutable
	id     string             // immutable
	ip     string             // immutable; the key of the per-IP cap
	log    *slog.Logger       // immutable
	ctx    context.Context    // immutable; ends with Close
	cancel context.CancelFunc // immutable
	start  time.Time          // immutable
	tls    bool               // immutable: implicit TLS

	last     atomic.Int64 // UnixNano of the last completed command or transfer progress
	loggedIn atomic.Bool

	mu       sync.Mutex
	busy     bool        // guarded by mu: a transfer is in progress
	working  bool        // guarded by mu: a command is being carried out
	draining bool        // guarded by mu
	closed   bool        // guarded by mu
	expired  bool        // guarded by mu: Expire was called
	timer    *time.Timer // guarded by mu; only with Options.Expire
	failures int         // guarded by mu

	closeAfterWrite atomic.Bool
}

func newConn(s *Server, nc net.Conn, ip string, implicitTLS bool) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{Conn: nc, srv: s, id: newID(), ip: ip, ctx: ctx, cancel: cancel, start: time.Now(), tls: implicitTLS}
	c.log = s.log.With("conn", c.id, "remote", nc.RemoteAddr().String())
	c.last.Store(c.start.UnixNano())
	if s.opt.Expire != nil {
		c.timer = time.AfterFunc(time.Until(c.deadline()), c.check)
	}
	return c
}

// ID names the connection in logs and replies.
func (c *Conn) ID() string { return c.id }

// Logger carries the connection's id and peer.
func (c *Conn) Logger() *slog.Logger { return c.log }

// Context ends when the connection closes.
func (c *Conn) Context() context.Context { return c.ctx }

// Server is the server that accepted the connection.
func (c *Conn) Server() *Server { return c.srv }

// ImplicitTLS reports whether the connection came in on a TLS port.
func (c *Conn) ImplicitTLS() bool { return c.tls }

// Touch records a complete command (or progress in a transfer): the idle
// timeout counts from the latest one.
func (c *Conn) Touch() { c.last.Store(time.Now().UnixNano()) }

// Begin marks a command as being carried out: however long it takes (a large
// FETCH to a slow reader, a login's password check), the client is not idle
// meanwhile. End marks it done; the idle timeout counts from then.
func (c *Conn) Begin() {
	c.mu.Lock()
	c.working = true
	c.mu.Unlock()
	c.Touch()
}

// End marks the command begun by Begin as done.
func (c *Conn) End() {
	c.mu.Lock()
	c.working = false
	c.mu.Unlock()
	c.Touch()
}

// Transfer marks a message transfer as running (true) or done: while it runs,
// every byte received counts as activity, and Shutdown lets it finish.
func (c *Conn) Transfer(on bool) {
	c.mu.Lock()
	c.busy = on
	c.mu.Unlock()
	c.Touch()
}

// deadline is when the connection's next read must have completed a command.
func (c *Conn) deadline() time.Time {
	lim := c.srv.opt.Limits
	d := time.Unix(0, c.last.Load()).Add(lim.IdleTimeout)
	if c.srv.opt.NeedsLogin && !c.loggedIn.Load() {
		if l := c.start.Add(lim.LoginTimeout); l.Before(d) {
			d = l
		}
	}
	return d
}

// ExpiredReason tells which timeout a read that timed out ran into:
// "login", "idle", or "shutdown".
func (c *Conn) ExpiredReason() string {
	c.mu.Lock()
	draining := c.draining
	c.mu.Unlock()
	if draining {
		return "shutdown"
	}
	if c.srv.opt.NeedsLogin && !c.loggedIn.Load() && !time.Now().Before(c.start.Add(c.srv.opt.Limits.LoginTimeout)) {
		return "login"
	}
	return "idle"
}

// Read reads with the connection's deadline. While the server shuts down, a
// connection outside a transfer reads a timeout instead, unless the protocol
// has a Drain hook of its own (which says goodbye and closes).
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.draining && !c.busy && c.srv.opt.Drain == nil {
		c.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	d := c.deadline()
	if c.timer != nil {
		d = d.Add(expireGrace) // the Expire callback speaks first
	}
	// Under mu, so that drain's deadline is not overwritten by a read that
	// started just before it.
	if err := c.Conn.SetReadDeadline(d); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	busy := c.busy
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.srv.opt.Metrics.bytesIn.Add(float64(n))
		if busy {
			c.Touch()
		}
	}
	return n, err
}

// Write writes with a deadline of one idle timeout, so that a client that
// stopped reading cannot hold the connection.
func (c *Conn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.srv.opt.Limits.IdleTimeout)) //nolint:errcheck // a broken conn fails the write
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.srv.opt.Metrics.bytesOut.Add(float64(n))
	}
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

// CloseAfterNextWrite closes the connection once the next write (the reply
// being prepared, such as a refused login's) has gone out.
func (c *Conn) CloseAfterNextWrite() { c.closeAfterWrite.Store(true) }

// SetReadDeadline is a no-op: the deadlines are the Conn's business.
func (c *Conn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline is a no-op, for the same reason.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline is a no-op, for the same reason.
func (c *Conn) SetDeadline(time.Time) error { return nil }

// check runs when the Expire timer fires.
func (c *Conn) check() {
	c.mu.Lock()
	if c.closed || c.expired {
		c.mu.Unlock()
		return
	}
	if c.working { // no timeout while the server itself is busy with a command
		c.timer.Reset(c.srv.opt.Limits.IdleTimeout)
		c.mu.Unlock()
		return
	}
	if wait := time.Until(c.deadline()); wait > 0 {
		c.timer.Reset(wait)
		c.mu.Unlock()
		return
	}
	c.expired = true
	c.mu.Unlock()
	reason := c.ExpiredReason()
	c.log.Info("connection timed out", "timeout", reason)
	go c.srv.opt.Expire(c, reason)
}

// LoggedIn records a successful login: the login timeout no longer applies.
func (c *Conn) LoggedIn() {
	c.loggedIn.Store(true)
	c.Touch()
	c.srv.opt.Metrics.Login(LoginOK)
}

// IsLoggedIn reports whether LoggedIn was called.
func (c *Conn) IsLoggedIn() bool { return c.loggedIn.Load() }

// LoginFailed records a failed login (throttled: the credential check slowed
// it down) and reports whether the connection has used up its attempts: the
// adapter then answers the failure and hangs up.
func (c *Conn) LoginFailed(throttled bool) (hangUp bool) {
	result := LoginFailed
	if throttled {
		result = LoginThrottled
	}
	c.srv.opt.Metrics.Login(result)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	return c.failures >= c.srv.opt.Limits.MaxLoginFailures
}

// Draining reports whether the server is shutting down.
func (c *Conn) Draining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// drain starts the connection's part of a shutdown.
func (c *Conn) drain() {
	c.mu.Lock()
	c.draining = true
	hook := c.srv.opt.Drain
	if hook == nil && !c.busy && !c.closed {
		c.Conn.SetReadDeadline(time.Now()) //nolint:errcheck // a closed conn needs no waking
	}
	c.mu.Unlock()
	if hook != nil {
		go hook(c)
	}
}

// Close closes the connection once and ends its context.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.cancel()
	err := c.Conn.Close()
	c.srv.forget(c)
	c.log.Debug("connection closed")
	return err
}

// ConnOf finds the Conn under what a library holds: the Conn itself, or TLS
// (implicit or started later) over it. nil if nc did not come from a Server.
func ConnOf(nc net.Conn) *Conn {
	for i := 0; i < 4 && nc != nil; i++ {
		switch x := nc.(type) {
		case *Conn:
			return x
		case *tls.Conn:
			nc = x.NetConn()
		case interface{ NetConn() net.Conn }:
			nc = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func newID() string {
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// OpTimeout bounds the store work of one command, on every front end (a
// transfer to or from the client is bounded by the idle timeout instead).
const OpTimeout = time.Minute

// OpContext is a context for one command's store work.
func (c *Conn) OpContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, OpTimeout)
}
