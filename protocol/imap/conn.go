package imap

import (
	"net"
	"sync"
)

// chanListener hands connections to an imapserver.Server, which only takes a
// listener: handle decides per connection which of the two library servers
// (plaintext login allowed or not) gets it.
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
