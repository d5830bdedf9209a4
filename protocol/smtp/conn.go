package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// conn is one client connection as accepted, below TLS. It gives every Read
// its own idle deadline, carries the connection's id, logger and context, and
// lets Shutdown end idle connections without cutting off a message in transfer.
type conn struct {
	net.Conn
	id     string             // immutable
	log    *slog.Logger       // immutable
	ctx    context.Context    // connection lifetime; cancelled by Close
	cancel context.CancelFunc // immutable
	idle   time.Duration      // immutable; 0: no read deadline
	srv    *Server            // immutable

	mu       sync.Mutex
	busy     bool // guarded by mu: a message is being received or stored
	draining bool // guarded by mu: the server is shutting down
	closed   bool // guarded by mu
}

// Read reads with a fresh idle deadline. While the server drains, a connection
// that is not in the middle of a message reads a timeout instead, which go-smtp
// answers with 421 and a close.
func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.draining && !c.busy {
		c.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	if c.idle > 0 {
		// Set under mu so that drain's deadline cannot be overwritten by a read
		// that started just before it.
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// SetReadDeadline is a no-op: the deadline of each read is this type's business
// (go-smtp's whole-DATA deadline is exactly what it replaces).
func (c *conn) SetReadDeadline(time.Time) error { return nil }

// SetDeadline sets only the write deadline, for the same reason.
func (c *conn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

// setBusy marks the connection as receiving or storing a message.
func (c *conn) setBusy(b bool) {
	c.mu.Lock()
	c.busy = b
	c.mu.Unlock()
}

// drain makes an idle connection's pending read fail now and every later read
// fail once its message, if any, is done.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.busy {
		c.Conn.SetReadDeadline(time.Now()) //nolint:errcheck // a closed conn needs no waking
	}
}

// Close closes the connection once and ends its context.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.srv.forget(c)
	c.log.Debug("connection closed")
	return c.Conn.Close()
}

// connOf finds the conn under what go-smtp holds (itself, or TLS over it).
func connOf(nc net.Conn) *conn {
	for {
		switch x := nc.(type) {
		case *conn:
			return x
		case *tls.Conn:
			nc = x.NetConn()
		default:
			return nil
		}
	}
}

// listener wraps accepted connections in conn and tracks them for Shutdown.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.srv.track(nc), nil
}

func newConnID() string {
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// isLoopback reports whether a peer address is on this host's loopback.
func isLoopback(a net.Addr) bool {
	switch x := a.(type) {
	case *net.TCPAddr:
		return x.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
