package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strings"
	"testing"
	"time"
)

// What POP3 gets from package wire: caps, the login timeout, the login
// failure count, the policy, shutdown and the metrics.

// rawLine connects to addr (over TLS if tlsConn) and returns the first line
// the server sends, then whether the server closed the connection after it.
func rawLine(t *testing.T, addr string, tlsConn bool) (string, bool) {
	t.Helper()
	var nc net.Conn
	var err error
	if tlsConn {
		nc, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		nc, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, line)
	}
	rest, err := io.ReadAll(r)
	return strings.TrimSuffix(line, "\r\n"), err == nil && len(rest) == 0
}

func TestRefusedOverPerIPCap(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.Limits.MaxConnectionsPerIP = 2 }))
	c1 := dial(t, e.addr)
	dialTLS(t, e.tlsAddr) // the cap counts the client over both ports
	const refusal = "-ERR [SYS/TEMP] Too many connections; try again later"
	for _, tlsConn := range []bool{false, true} {
		addr := e.addr
		if tlsConn {
			addr = e.tlsAddr
		}
		line, closed := rawLine(t, addr, tlsConn)
		if line != refusal || !closed {
			t.Errorf("third connection (TLS %v) got %q, closed %v; want %q and close", tlsConn, line, closed, refusal)
		}
	}
	if n := e.metric("mailgate_pop3_connections_refused_total", "reason", "max_connections_per_ip"); n != 2 {
		t.Errorf("refused counter = %v, want 2", n)
	}
	// A place frees up when a session ends.
	mustPrefix(t, "QUIT", c1.cmd("QUIT"), "+OK")
	c1.expectClosed()
	deadline := time.Now().Add(10 * time.Second)
	for e.metric("mailgate_pop3_connections_open") > 1 {
		if time.Now().After(deadline) {
			t.Fatal("the closed session is still counted")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	c3 := dial(t, e.addr)
	mustPrefix(t, "login", c3.login(testUser, testPassword), "+OK")
}

func TestLoginTimeout(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.Limits.LoginTimeout = 300 * time.Millisecond }))
	const timedOut = "-ERR [AUTH] Login timeout"

	// Commands before a login do not extend the login timeout: it counts
	// from connecting.
	start := time.Now()
	c := dial(t, e.addr)
	for range 2 {
		time.Sleep(100 * time.Millisecond)
		mustPrefix(t, "CAPA", c.cmd("CAPA"), "+OK")
		c.lines()
	}
	mustPrefix(t, "no login", c.line(), timedOut)
	c.expectClosed()
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("a session without login lasted %v; want the 300ms LoginTimeout", d)
	}

	// Waiting in the middle of AUTH.
	c = dial(t, e.addr)
	mustPrefix(t, "AUTH PLAIN", c.cmd("AUTH PLAIN"), "+ ")
	mustPrefix(t, "in AUTH", c.line(), timedOut)
	c.expectClosed()

	// Over implicit TLS, a client that never starts the handshake.
	nc, err := net.DialTimeout("tcp", e.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
		t.Errorf("silent TLS client: read %q, %v; want a close", b, err)
	}

	// Once logged in, the login timeout no longer applies.
	c = dial(t, e.addr)
	c.send("USER " + testUser + "\r\nPASS " + testPassword)
	mustPrefix(t, "USER", c.line(), "+OK")
	if r := c.line(); !strings.HasPrefix(r, "+OK") {
		t.Skipf("login took longer than the 300ms login timeout on this machine: %q", r)
	}
	time.Sleep(500 * time.Millisecond)
	mustPrefix(t, "STAT after the login timeout", c.cmd("STAT"), "+OK")
}

func TestAuthLogin(t *testing.T) {
	e := newEnv(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	username, password := "+ "+b64("Username:"), "+ "+b64("Password:")
	c := dial(t, e.addr)
	runScript(t, c, []step{
		{send: "AUTH LOGIN", want: username},
		{send: b64(testUser), want: password},
		{send: b64("wrong password"), want: "-ERR [AUTH] Authentication failed"},
		{send: "AUTH LOGIN " + b64(testUser), want: password},
		{send: "*", want: "-ERR [AUTH] Authentication cancelled"},
		{send: "AUTH login " + b64("Alice@Example.com"), want: password},
		{send: b64(testPassword), want: "+OK Maildrop has 0 messages"},
		{send: "QUIT", want: "+OK"},
	})
	c.expectClosed()
}

func TestOversizeCredential(t *testing.T) {
	e := newEnv(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	long := strings.Repeat("x", 2000)
	const tooLong = "-ERR [AUTH] Authentication failed: credentials too long"
	c := dial(t, e.addr)
	runScript(t, c, []step{
		{send: "AUTH PLAIN", want: "+ "},
		{send: b64("\x00" + testUser + "\x00" + long), want: tooLong},
		{send: "AUTH LOGIN", want: "+ "},
		{send: b64(long + "@example.com"), want: tooLong},
		{send: "AUTH LOGIN " + b64(testUser), want: "+ "},
		{send: b64(long), want: tooLong + "; too many failures, closing"},
	})
	c.expectClosed()
	e.waitIdle()
	if n := e.metric("mailgate_pop3_logins_total", "result", "failed"); n != 3 {
		t.Errorf("failed logins counted: %v, want 3", n)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.deliver(testMessage(1))
	c := dial(t, e.addr)
	runScript(t, c, []step{
		{send: "CAPA", want: "+OK", multi: true},
		{send: "STAT", want: "-ERR"},
		{send: "BOGUS", want: "-ERR Unknown command"},
		{send: "USER " + strings.Repeat("a", 300), want: "-ERR Line too long"},
		{send: "USER " + testUser, want: "+OK"},
		{send: "PASS wrong password", want: "-ERR [AUTH]"},
		{send: "USER " + testUser, want: "+OK"},
		{send: "PASS " + testPassword, want: "+OK"},
		{send: "STAT", want: "+OK"},
		{send: "RETR 1", want: "+OK", multi: true},
		{send: "QUIT", want: "+OK"},
	})
	c.expectClosed()
	e.waitIdle()
	for name, want := range map[string]map[string]float64{
		"mailgate_pop3_commands_total": {
			"command=CAPA,result=ok":   1,
			"command=OTHER,result=err": 2, // BOGUS and the over-long line
			"command=PASS,result=err":  1,
			"command=PASS,result=ok":   1,
			"command=QUIT,result=ok":   1,
			"command=RETR,result=ok":   1,
			"command=STAT,result=err":  1,
			"command=STAT,result=ok":   1,
			"command=USER,result=ok":   2,
		},
		"mailgate_pop3_logins_total":      {"result=failed": 1, "result=ok": 1},
		"mailgate_pop3_connections_total": {"": 1},
	} {
		if got := e.series(name); !maps.Equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if in, out := e.metric("mailgate_pop3_received_bytes_total"), e.metric("mailgate_pop3_sent_bytes_total"); in == 0 || out < in {
		t.Errorf("bytes in %v, out %v", in, out)
	}
}

// TestShutdownLetsRetrFinish starts Shutdown while a large RETR is on its way:
// the message arrives whole, then the session is told goodbye.
func TestShutdownLetsRetrFinish(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.Logger = nil }))
	total := e.fill(1, 8<<20)
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK Maildrop has 1 messages")
	mustPrefix(t, "RETR", c.cmd("RETR 1"), fmt.Sprintf("+OK %d octets", total))
	// The server is now blocked writing: the client has not read the body.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			break // the listener is closed: Shutdown has begun
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("Shutdown did not close the listener")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	if got := len(c.body()); int64(got) != total {
		t.Fatalf("RETR during Shutdown sent %d octets, want %d", got, total)
	}
	mustPrefix(t, "after RETR", c.line(), "-ERR [SYS/TEMP] Server shutting down")
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 2 {
		if err := <-e.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	}
}
