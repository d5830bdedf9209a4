package queue_test

import (
	"context"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/protocol/queue"
)

func TestParseTransportMap(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // String() of the result; "" with err set means an error containing err
		err  string
	}{
		{in: "", want: ""},
		{in: "   ", want: ""},
		{in: "example.org=mx.internal:25", want: "example.org=mx.internal:25"},
		{in: " B.test = 127.0.0.1:2525 , a.test=[::1]:25 ", want: "a.test=[::1]:25,b.test=127.0.0.1:2525"},
		{in: "example.org.=MX.Internal.:587", want: "example.org=mx.internal:587"},
		{in: "bücher.example=relay_1.lan:25", want: "xn--bcher-kva.example=relay_1.lan:25"},
		{in: "a.test=host:25,", err: "entry 2 is empty"},
		{in: ",a.test=host:25", err: "entry 1 is empty"},
		{in: "a.test", err: "want domain=host:port"},
		{in: "a.test=host", err: "want host:port"},
		{in: "a.test=host:", err: "port must be"},
		{in: "a.test=host:0", err: "port must be"},
		{in: "a.test=host:65536", err: "port must be"},
		{in: "a.test=host:+25", err: "port must be"},
		{in: "a.test=host:025", err: "port must be"},
		{in: "a.test=host:smtp", err: "port must be"},
		{in: "a.test=:25", err: "host name is empty"},
		{in: "a.test=bad host:25", err: "contains"},
		{in: "a.test=a..b:25", err: "empty or over-long label"},
		{in: "a.test=::1:25", err: "want host:port"},
		{in: "=host:25", err: "domain name is empty"},
		{in: "nodot=host:25", err: "two labels"},
		{in: "a b.test=host:25", err: "not valid"},
		{in: "a.test=h1:25,A.TEST=h2:25", err: "listed twice"},
		{in: "a.test=h1:25=x", err: "port must be"},
	} {
		m, err := queue.ParseTransportMap(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseTransportMap(%q) = %v, %v; want error containing %q", tc.in, m, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("ParseTransportMap(%q): %v", tc.in, err)
		case tc.err == "" && m.String() != tc.want:
			t.Errorf("ParseTransportMap(%q) = %q, want %q", tc.in, m.String(), tc.want)
		}
	}
}

func FuzzParseTransportMap(f *testing.F) {
	for _, s := range []string{"", "a.test=h:25", "a.test=[::1]:25,b.test=10.0.0.1:2525", "x=y", "a.test=h:25,,",
		"bücher.example=h:1", "a.test=h:99999", "a.test=[fe80::1%eth0]:25", "a.test=h.:25,b.test=H:26"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := queue.ParseTransportMap(s)
		if err != nil {
			return
		}
		// What parses renders to the canonical form, which parses to itself.
		again, err := queue.ParseTransportMap(m.String())
		if err != nil {
			t.Fatalf("re-parse %q (from %q): %v", m.String(), s, err)
		}
		if again.String() != m.String() || len(again) != len(m) {
			t.Fatalf("round trip %q → %q", m.String(), again.String())
		}
		for d, h := range m {
			if d == "" || h.Host == "" || h.Port < 1 || h.Port > 65535 || strings.ContainsAny(d+h.Host, ",= ") {
				t.Fatalf("bad entry %q=%+v from %q", d, h, s)
			}
		}
	})
}

func TestBackoff(t *testing.T) {
	const m = time.Minute
	for _, tc := range []struct {
		attempt   int
		base, max time.Duration
		want      time.Duration
	}{
		{0, m, time.Hour, m},
		{1, m, time.Hour, m},
		{2, m, time.Hour, 2 * m},
		{3, m, time.Hour, 4 * m},
		{6, m, time.Hour, 32 * m},
		{7, m, time.Hour, time.Hour},
		{1000, m, time.Hour, time.Hour},
		{1 << 30, m, time.Hour, time.Hour},
		{3, 20 * time.Millisecond, 200 * time.Millisecond, 80 * time.Millisecond},
		{5, 20 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond},
		{1, 2 * time.Hour, time.Hour, time.Hour},
		{4, 0, time.Hour, time.Hour},
	} {
		if got := queue.Backoff(tc.attempt, tc.base, tc.max); got != tc.want {
			t.Errorf("Backoff(%d, %s, %s) = %s, want %s", tc.attempt, tc.base, tc.max, got, tc.want)
		}
	}
}

// fakeDNS stands in for the DNS (not ours, and not on a test machine).
type fakeDNS struct {
	mx  map[string][]*net.MX
	ips map[string][]net.IPAddr
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if mx, ok := f.mx[name]; ok {
		return mx, nil
	}
	return nil, notFound(name)
}

func (f fakeDNS) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if ips, ok := f.ips[host]; ok {
		return ips, nil
	}
	return nil, notFound(host)
}

func TestMXRouting(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, nil)
	_, port, _ := net.SplitHostPort(r.addr)
	lo, dead := []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}, []net.IPAddr{{IP: net.IPv4(127, 0, 0, 2)}}
	dns := fakeDNS{
		mx: map[string][]*net.MX{
			// The preferred MX refuses connections; the backup takes the mail.
			"mx.test":   {{Host: "backup.mx.test.", Pref: 20}, {Host: "primary.mx.test.", Pref: 10}},
			"null.test": {{Host: ".", Pref: 0}}, // RFC 7505
		},
		ips: map[string][]net.IPAddr{
			"primary.mx.test": dead, "backup.mx.test": lo,
			"amx.test": lo, // no MX: the domain's own address
		},
	}
	e.send(t, body("routes", "by MX\r\n"), "a@mx.test", "b@amx.test", "c@null.test", "d@nx.test")
	opt := options(t, nil)
	opt.Resolver = dns
	opt.MXPort = mustAtoi(t, port)
	opt.AllowPrivateMX = true // the MX hosts are on loopback
	e.run(t, opt)
	waitFor(t, "two deliveries and two bounces", 10*time.Second, func() bool {
		return len(r.messages()) == 2 && len(e.inbox(t, e.alice)) == 2 && len(e.queued(t)) == 0
	})
	var got []string
	for _, m := range r.messages() {
		got = append(got, m.rcpts...)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "a@mx.test b@amx.test" {
		t.Fatalf("delivered to %v", got)
	}
	statuses := map[string]string{}
	for _, raw := range e.inbox(t, e.alice) {
		d := parseDSN(t, raw)
		for _, rc := range d.recipients {
			statuses[rc.Get("Final-Recipient")] = rc.Get("Status")
		}
	}
	if statuses["rfc822; c@null.test"] != "5.1.10" || statuses["rfc822; d@nx.test"] != "5.4.4" || len(statuses) != 2 {
		t.Fatalf("bounce statuses = %v", statuses)
	}
}

func mustAtoi(t testing.TB, s string) int {
	t.Helper()
	h, err := queue.ParseHop("x:"+s, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h.Port
}
