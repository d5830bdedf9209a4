package wire

import (
	"net"
	"sync"
)

// Handoff is a net.Listener that yields the connections given to it: the way
// to hand connections accepted here to a library that only serves listeners
// (go-smtp, go-imap).
type Handoff struct {
	name      string
	conns     chan net.Conn
	done      chan struct{}
	once      sync.Once
	accepting chan struct{}
	startOnce sync.Once
}

// NewHandoff returns an open Handoff; name is its address's text.
func NewHandoff(name string) *Handoff {
	return &Handoff{name: name, conns: make(chan net.Conn), done: make(chan struct{}), accepting: make(chan struct{})}
}

// Accept waits for the next connection given, or for Close.
func (h *Handoff) Accept() (net.Conn, error) {
	h.startOnce.Do(func() { close(h.accepting) })
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Give waits until the library accepts c; false if the Handoff was closed
// first (c is then the caller's to close).
func (h *Handoff) Give(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

// Accepting is closed once the library first called Accept: it has set up
// its serving by then.
func (h *Handoff) Accepting() <-chan struct{} { return h.accepting }

// Close makes Accept and Give fail from now on.
func (h *Handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr is a placeholder: the connections came from elsewhere.
func (h *Handoff) Addr() net.Addr { return handoffAddr(h.name) }

type handoffAddr string

func (a handoffAddr) Network() string { return "handoff" }
func (a handoffAddr) String() string  { return string(a) }
