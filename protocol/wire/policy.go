package wire

import "net"

// Policy is the one rule for when a client may send a password in the clear.
type Policy struct {
	// AllowInsecureAuth lets clients anywhere log in without TLS.
	AllowInsecureAuth bool
	// DistrustLoopback makes loopback peers count as remote, so that tests on
	// 127.0.0.1 see what a client on another host sees.
	DistrustLoopback bool
}

// PlaintextAuthAllowed reports whether a password may be sent on the
// connection: over TLS (overTLS: implicit, or started since), from a peer on
// this host (TCP loopback or a Unix socket), or anywhere if the operator
// allowed it.
func (c *Conn) PlaintextAuthAllowed(overTLS bool) bool {
	p := c.srv.opt.Policy
	if overTLS || c.tls || p.AllowInsecureAuth {
		return true
	}
	return !p.DistrustLoopback && IsLoopback(c.RemoteAddr())
}

// IsLoopback reports whether a peer is on this host: a loopback IP, or a Unix
// socket.
func IsLoopback(a net.Addr) bool {
	switch x := a.(type) {
	case *net.TCPAddr:
		return x.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	case nil:
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
