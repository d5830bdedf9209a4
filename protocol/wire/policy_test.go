package wire

import (
	"net"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	cases := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.8.9.10"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, false},
		{&net.UnixAddr{Name: "/run/mailgate.sock", Net: "unix"}, true},
		{&net.UnixAddr{Name: "", Net: "unix"}, true}, // an unnamed peer of a Unix socket
		{nil, false},
	}
	for _, c := range cases {
		if got := IsLoopback(c.addr); got != c.want {
			t.Errorf("IsLoopback(%v) = %v, want %v", c.addr, got, c.want)
		}
	}
}

func TestIPKey(t *testing.T) {
	cases := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 25}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 25}, "192.0.2.7"},
		// One /64 is one client: its hosts share the cap.
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 25}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 25}, "2001:db8:1:2::/64"},
		{&net.UnixAddr{Name: "/run/x", Net: "unix"}, ""},
	}
	for _, c := range cases {
		if got := ipKey(c.addr); got != c.want {
			t.Errorf("ipKey(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}
