package imap

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// timeoutGrace is how much later than its own timers the connection lets a
// read deadline expire, so that a client always gets a BYE with the reason
// before the connection closes (RFC 9051 §7.1.5).
const timeoutGrace = 5 * time.Second

// limitConn enforces the two timeouts go-imap's imapserver hard-codes
// differently: a connection must authenticate within loginTimeout of
// connecting (the library only bounds each read, so a client sending NOOPs
// could stay unauthenticated forever), and an authenticated connection is
// logged out after idleTimeout without traffic (the library waits 35 minutes;
// RFC 9051 §5.4 asks for at least 30). It sits under TLS, so it sees the
// connection's raw bytes.
type limitConn struct {
	net.Conn
	loginTimeout time.Duration
	idleTimeout  time.Duration
	start        time.Time

	authed   atomic.Bool
	last     atomic.Int64 // unix nanoseconds of the last read or write
	mu       sync.Mutex
	timer    *time.Timer
	onExpire func(reason string) // set once the IMAP connection exists
	closed   bool
	// afterWrite runs once after the next write (a tagged reply).
	afterWrite atomic.Pointer[func()]
}

func newLimitConn(c net.Conn, loginTimeout, idleTimeout time.Duration) *limitConn {
	lc := &limitConn{Conn: c, loginTimeout: loginTimeout, idleTimeout: idleTimeout, start: time.Now()}
	lc.last.Store(lc.start.UnixNano())
	// Bound the reads before the library sets any deadline: on the
	// implicit-TLS port the handshake runs inside the greeting's write.
	c.SetReadDeadline(lc.start.Add(loginTimeout + timeoutGrace)) //nolint:errcheck // a broken conn fails its first read anyway
	return lc
}

// arm starts the timers; expire is called (once, in its own goroutine) with
// the reason when one runs out.
func (c *limitConn) arm(expire func(reason string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.onExpire = expire
	c.timer = time.AfterFunc(max(c.loginTimeout-time.Since(c.start), 0), c.check)
}

// authenticated switches from the login deadline to the idle timeout.
func (c *limitConn) authenticated() {
	c.touch()
	c.authed.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Reset(c.idleTimeout)
	}
}

func (c *limitConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *limitConn) check() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.onExpire == nil {
		return
	}
	reason := "Authenticate sooner: closing"
	if c.authed.Load() {
		idle := time.Since(time.Unix(0, c.last.Load()))
		if idle < c.idleTimeout {
			c.timer.Reset(c.idleTimeout - idle)
			return
		}
		reason = "Autologout: idle for too long"
	}
	expire := c.onExpire
	c.onExpire = nil
	go expire(reason)
}

func (c *limitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *limitConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	if fn := c.afterWrite.Swap(nil); fn != nil {
		(*fn)()
	}
	return n, err
}

// thenRun runs fn (once) after the next write to the connection: the reply
// to the command being handled, when nothing else is written before it.
func (c *limitConn) thenRun(fn func()) { c.afterWrite.Store(&fn) }

// SetReadDeadline keeps the library's deadlines within this connection's own
// limits, and a little beyond them, so that the timers above (which say why)
// fire first: before authentication the login deadline alone applies.
func (c *limitConn) SetReadDeadline(t time.Time) error {
	var limit time.Time
	if c.authed.Load() {
		limit = time.Now().Add(c.idleTimeout + timeoutGrace)
		if !t.IsZero() && t.Before(limit) {
			limit = t
		}
	} else {
		limit = c.start.Add(c.loginTimeout + timeoutGrace)
	}
	return c.Conn.SetReadDeadline(limit)
}

func (c *limitConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *limitConn) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// limitOf finds the limitConn under what the library holds (a TLS connection
// after STARTTLS or on the implicit-TLS port).
func limitOf(c net.Conn) *limitConn {
	for i := 0; i < 4 && c != nil; i++ {
		switch x := c.(type) {
		case *limitConn:
			return x
		case *tls.Conn:
			c = x.NetConn()
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// limitOrSelf is the connection's limitConn if it has one.
func limitOrSelf(c net.Conn) net.Conn {
	if lc := limitOf(c); lc != nil {
		return lc
	}
	return c
}

// isLoopback reports whether a peer address is on this host.
func isLoopback(a net.Addr) bool {
	host := a.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// chanListener hands accepted connections to an imapserver.Server, which only
// takes a listener: the server's own accept loop decides per connection which
// of the two library servers (plaintext login allowed or not) gets it.
type chanListener struct {
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{}
	once      sync.Once
	accepting chan struct{} // closed at the first Accept
	startOnce sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{}), accepting: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { close(l.accepting) })
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
