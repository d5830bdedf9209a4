package queue_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/protocol/queue"
)

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"93.184.215.14", true},
		{"8.8.8.8", true},
		{"2a02:898::25", true},
		{"2606:4700::1111", true},
		{"::ffff:93.184.215.14", true},    // IPv4-mapped: judged as IPv4
		{"64:ff9b::5db8:d70e", true},      // NAT64 of 93.184.215.14
		{"2002:5db8:d70e::1", true},       // 6to4 of 93.184.215.14
		{"127.0.0.1", false},              // loopback
		{"127.1.2.3", false},              // loopback
		{"10.0.0.5", false},               // RFC 1918
		{"172.16.0.1", false},             // RFC 1918
		{"172.31.255.254", false},         // RFC 1918
		{"192.168.1.1", false},            // RFC 1918
		{"169.254.169.254", false},        // link-local (cloud metadata)
		{"0.0.0.0", false},                // unspecified
		{"0.1.2.3", false},                // "this network"
		{"100.64.0.1", false},             // CGNAT
		{"100.127.255.254", false},        // CGNAT
		{"192.0.0.8", false},              // IETF protocol assignments
		{"192.0.2.1", false},              // documentation
		{"198.18.0.1", false},             // benchmarking
		{"198.51.100.7", false},           // documentation
		{"203.0.113.9", false},            // documentation
		{"224.0.0.1", false},              // multicast
		{"239.255.255.250", false},        // multicast
		{"240.0.0.1", false},              // reserved
		{"255.255.255.255", false},        // broadcast
		{"::", false},                     // unspecified
		{"::1", false},                    // loopback
		{"::127.0.0.1", false},            // IPv4-compatible
		{"::ffff:127.0.0.1", false},       // IPv4-mapped loopback
		{"::ffff:10.0.0.5", false},        // IPv4-mapped private
		{"::ffff:169.254.169.254", false}, // IPv4-mapped link-local
		{"fc00::1", false},                // unique local
		{"fd12:3456::1", false},           // unique local
		{"fe80::1", false},                // link-local
		{"febf::1", false},                // link-local
		{"fec0::1", false},                // site-local
		{"ff02::1", false},                // multicast
		{"2001:db8::1", false},            // documentation
		{"3fff::1", false},                // documentation
		{"100::1", false},                 // discard-only
		{"64:ff9b::7f00:1", false},        // NAT64 of 127.0.0.1
		{"64:ff9b::a00:5", false},         // NAT64 of 10.0.0.5
		{"64:ff9b:1::1", false},           // local-use NAT64
		{"2002:7f00:1::1", false},         // 6to4 of 127.0.0.1
		{"2002:c0a8:101::1", false},       // 6to4 of 192.168.1.1
	} {
		ip := net.ParseIP(tc.ip)
		if ip == nil {
			t.Fatalf("bad test address %q", tc.ip)
		}
		if got := queue.PublicAddr(ip); got != tc.public {
			t.Errorf("PublicAddr(%s) = %v, want %v", tc.ip, got, tc.public)
		}
	}
	if queue.PublicAddr(nil) || queue.PublicAddr(net.IP{1, 2, 3}) {
		t.Error("a malformed address counts as public")
	}
}

// dialWatch is a queue.Options.Dial that records every address the queue
// wants to connect to. It connects for real only to loopback addresses, and
// to the addresses in redirect (a public-looking "ip:port" → a loopback
// receiver): no test traffic ever leaves the machine.
type dialWatch struct {
	redirect map[string]string
	mu       sync.Mutex
	dialed   []string
}

func (d *dialWatch) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, addr)
	d.mu.Unlock()
	if to, ok := d.redirect[addr]; ok {
		addr = to
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dials nothing outside loopback: %s", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *dialWatch) addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...)
}

// countingListener accepts connections on loopback and counts them.
func countingListener(t testing.TB) (port int, count func() int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port, n.Load
}

func ips(t testing.TB, ss ...string) []net.IPAddr {
	t.Helper()
	var out []net.IPAddr
	for _, s := range ss {
		ip := net.ParseIP(s)
		if ip == nil {
			t.Fatalf("bad test address %q", s)
		}
		out = append(out, net.IPAddr{IP: ip})
	}
	return out
}

// Domains whose MX (or own address) is loopback, private or otherwise not
// public are never connected to, and their mail bounces at the first attempt;
// an operator's transport-map route to loopback still delivers.
func TestMXNonPublicBounces(t *testing.T) {
	e := newEnv(t, lifetime)
	port, conns := countingListener(t)
	r := startReceiver(t, "", nil, nil)
	_, rport, _ := net.SplitHostPort(r.addr)
	dns := fakeDNS{
		mx: map[string][]*net.MX{
			"lo.test":   {{Host: "mx.lo.test.", Pref: 10}},
			"ten.test":  {{Host: "mx.ten.test.", Pref: 10}},
			"many.test": {{Host: "b.many.test.", Pref: 20}, {Host: "a.many.test.", Pref: 10}},
			"lit.test":  {{Host: "127.0.0.1.", Pref: 10}}, // an IP literal as MX host
		},
		ips: map[string][]net.IPAddr{
			"mx.lo.test":  ips(t, "127.0.0.1"),
			"mx.ten.test": ips(t, "10.0.0.5"),
			"a.many.test": ips(t, "::1", "192.168.1.1", "::ffff:127.0.0.1"),
			"b.many.test": ips(t, "169.254.169.254", "fe80::1", "100.64.0.1", "0.0.0.0", "fd00::1", "172.16.0.1"),
			"self.test":   ips(t, "127.0.0.1"), // no MX: the domain's own address
			// The operator's route names a host that resolves to loopback.
			"relay.internal": ips(t, "127.0.0.1"),
		},
	}
	e.send(t, body("ssrf", "to nowhere inside\r\n"),
		"a@lo.test", "b@ten.test", "c@many.test", "d@lit.test", "e@self.test", "f@routed.test")
	opt := options(t, route(t, "routed.test", "relay.internal:"+rport))
	opt.Resolver = dns
	opt.MXPort = port // were a loopback MX dialed, the listener would count it
	w := &dialWatch{}
	opt.Dial = w.Dial
	e.run(t, opt)
	waitFor(t, "one delivery and five bounces", 10*time.Second, func() bool {
		return len(r.messages()) == 1 && len(e.inbox(t, e.alice)) == 5 && len(e.queued(t)) == 0
	})
	if m := r.messages()[0]; len(m.rcpts) != 1 || m.rcpts[0] != "f@routed.test" {
		t.Fatalf("the transport-map route delivered %+v", m)
	}
	if n := conns(); n != 0 {
		t.Errorf("%d connections to a loopback MX", n)
	}
	for _, a := range w.addrs() {
		if a != r.addr {
			t.Errorf("dialed %s", a)
		}
	}
	want := map[string]string{ // recipient → what the bounce must name
		"a@lo.test":   "MX of lo.test resolves only to non-public addresses",
		"b@ten.test":  "mx.ten.test (10.0.0.5)",
		"c@many.test": "a.many.test (::1, 192.168.1.1, 127.0.0.1); b.many.test (169.254.169.254",
		"d@lit.test":  "MX of lit.test resolves only to non-public addresses",
		"e@self.test": "domain self.test has no MX and resolves only to non-public addresses",
	}
	for _, raw := range e.inbox(t, e.alice) {
		d := parseDSN(t, raw)
		if len(d.recipients) != 1 {
			t.Fatalf("bounce for %d recipients", len(d.recipients))
		}
		rc := d.recipients[0]
		rcpt := strings.TrimPrefix(rc.Get("Final-Recipient"), "rfc822; ")
		text, ok := want[rcpt]
		if !ok {
			t.Errorf("unexpected bounce for %s", rcpt)
			continue
		}
		delete(want, rcpt)
		if rc.Get("Action") != "failed" || rc.Get("Status") != "5.4.4" || rc.Get("Remote-MTA") != "" {
			t.Errorf("%s: recipient fields %v", rcpt, rc)
		}
		if !strings.Contains(d.human, "resolves only to non-public addresses") || !strings.Contains(d.human, text) {
			t.Errorf("%s: human part %q lacks %q", rcpt, d.human, text)
		}
		if strings.Contains(d.human, "gave up") {
			t.Errorf("%s: bounced on expiry, not at once: %q", rcpt, d.human)
		}
	}
	if len(want) != 0 {
		t.Errorf("no bounce for %v", want)
	}
}

// Only the public addresses of a host from DNS are dialed: its private ones
// and an MX with nothing but private addresses are skipped.
func TestMXSkipsNonPublicAddresses(t *testing.T) {
	e := newEnv(t, lifetime)
	port, conns := countingListener(t)
	r := startReceiver(t, "", nil, nil)
	dns := fakeDNS{
		mx: map[string][]*net.MX{
			"pub.test":  {{Host: "mx2.pub.test.", Pref: 20}, {Host: "mx1.pub.test.", Pref: 10}},
			"pub6.test": {{Host: "mx.pub6.test.", Pref: 10}},
		},
		ips: map[string][]net.IPAddr{
			"mx1.pub.test": ips(t, "127.0.0.1", "10.0.0.5"),
			// More private addresses than the four tried per host come first.
			"mx2.pub.test": ips(t, "10.0.0.6", "127.0.0.1", "192.168.0.9", "::1", "93.184.215.14"),
			"mx.pub6.test": ips(t, "fd00::25", "2a02:898::25"),
		},
	}
	pub4 := net.JoinHostPort("93.184.215.14", fmt.Sprint(port))
	pub6 := net.JoinHostPort("2a02:898::25", fmt.Sprint(port))
	w := &dialWatch{redirect: map[string]string{pub4: r.addr, pub6: r.addr}}
	e.send(t, body("public", "only there\r\n"), "a@pub.test")
	e.send(t, body("public6", "only there\r\n"), "b@pub6.test")
	opt := options(t, nil)
	opt.Resolver = dns
	opt.MXPort = port
	opt.Dial = w.Dial
	e.run(t, opt)
	waitFor(t, "two deliveries", 10*time.Second, func() bool {
		return len(r.messages()) == 2 && len(e.queued(t)) == 0
	})
	if n := conns(); n != 0 {
		t.Errorf("%d connections to a loopback MX address", n)
	}
	var four, six int
	for _, a := range w.addrs() {
		switch a {
		case pub4:
			four++
		case pub6:
			six++
		default:
			t.Errorf("dialed %s", a)
		}
	}
	if four == 0 || six == 0 {
		t.Errorf("dialed %v, want the public addresses", w.addrs())
	}
	if n := len(e.inbox(t, e.alice)); n != 0 {
		t.Errorf("alice got %d bounces", n)
	}
}

// A failure worth retrying at one MX keeps the mail queued even when the other
// MX hosts are not public.
func TestMXNonPublicWithTemporaryFailureDefers(t *testing.T) {
	e := newEnv(t, lifetime)
	dns := fakeDNS{
		mx: map[string][]*net.MX{"half.test": {{Host: "mx1.half.test.", Pref: 10}, {Host: "mx2.half.test.", Pref: 20}}},
		ips: map[string][]net.IPAddr{
			"mx1.half.test": ips(t, "10.0.0.5"),
			"mx2.half.test": ips(t, "93.184.215.14"), // dialWatch refuses it: connection failure
		},
	}
	w := &dialWatch{}
	e.send(t, body("half", "later\r\n"), "a@half.test")
	opt := options(t, nil)
	opt.Resolver = dns
	opt.BackoffBase, opt.BackoffMax = time.Hour, time.Hour
	opt.Dial = w.Dial
	e.run(t, opt)
	waitFor(t, "a deferred attempt", 10*time.Second, func() bool {
		es := e.queued(t)
		return len(es) == 1 && es[0].Attempts >= 1 && es[0].LastError != ""
	})
	es := e.queued(t)
	if !strings.Contains(es[0].LastError, "connect to mx2.half.test") {
		t.Errorf("last error = %q", es[0].LastError)
	}
	if got := w.addrs(); len(got) != 1 || got[0] != "93.184.215.14:25" {
		t.Errorf("dialed %v", got)
	}
	if n := len(e.inbox(t, e.alice)); n != 0 {
		t.Errorf("alice got %d bounces", n)
	}
}
