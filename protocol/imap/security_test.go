package imap_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	mgimap "github.com/mailgate/mailgate/protocol/imap"
)

func TestPlaintextLoginNeedsTLS(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t)})
	mgimap.DistrustLoopback(e.srv)
	r := dialRaw(t, e.addr)
	u := r.expectOK("CAPABILITY")
	if !hasLine(u, "STARTTLS", "LOGINDISABLED") || hasLine(u, "AUTH=PLAIN") {
		t.Fatalf("before TLS: %q", u)
	}
	if _, st := r.cmd(`LOGIN alice@example.com "correct horse battery"`); !strings.HasPrefix(st, "NO [PRIVACYREQUIRED]") {
		t.Fatalf("LOGIN before TLS: %s", st)
	}
	if _, st := r.cmd("AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ=="); !strings.HasPrefix(st, "NO [PRIVACYREQUIRED]") {
		t.Fatalf("AUTHENTICATE before TLS: %s", st)
	}

	c, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t)})
	mgimap.DistrustLoopback(e.srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln) //nolint:errcheck // ends with the test
	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has("AUTH=PLAIN") || caps.Has("STARTTLS") || caps.Has("LOGINDISABLED") {
		t.Fatalf("caps on 993: %v %v", caps, err)
	}
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN over TLS: %v", err)
	}
}

func TestAllowInsecureAuth(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{AllowInsecureAuth: true}})
	mgimap.DistrustLoopback(e.srv)
	r := dialRaw(t, e.addr)
	r.login()
}

func TestUnauthenticatedConnectionClosedSoon(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{LoginTimeout: 400 * time.Millisecond}})
	r := dialRaw(t, e.addr)
	start := time.Now()
	// Keeping busy without logging in does not help.
	for i := 0; i < 3; i++ {
		r.expectOK("NOOP")
	}
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := readAll(r)
	if !strings.Contains(rest, "* BYE") {
		t.Fatalf("no BYE before closing: %q", rest)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestIdleConnectionLoggedOut(t *testing.T) {
	// The timeout counts from the last byte either way, so it must exceed
	// how long a SELECT may take on a loaded test machine.
	const idle = 2 * time.Second
	e := newEnvWith(t, envOptions{opt: mgimap.Options{IdleTimeout: idle}})
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	r.send("i1 IDLE")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	start := time.Now()
	r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	rest, _ := readAll(r)
	if !strings.Contains(rest, "* BYE Autologout") {
		t.Fatalf("no autologout BYE: %q", rest)
	}
	if d := time.Since(start); d < idle-100*time.Millisecond {
		t.Fatalf("logged out after %v, before the %v timeout", d, idle)
	}
}

func TestAppendOverLimitRefusedBeforeReading(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{MaxMessageBytes: 1000}})
	r := dialRaw(t, e.addr)
	r.login()
	if u := r.expectOK("CAPABILITY"); !hasLine(u, "APPENDLIMIT=1000") {
		t.Fatalf("caps %q", u)
	}
	// A synchronizing literal: the server must answer NO before asking for it.
	r.send("a1 APPEND INBOX {5000}")
	if l := r.line(); !strings.HasPrefix(l, "a1 NO [TOOBIG]") {
		t.Fatalf("oversized APPEND: %q", l)
	}
	r.expectOK("NOOP") // the session goes on
	msg := testMessage(1, "fits")
	r.send("a2 APPEND INBOX {" + itoa(len(msg)) + "}")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	r.send(msg)
	if l := r.line(); !strings.HasPrefix(l, "a2 OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", l)
	}
}

func TestShutdownSaysBye(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(5 * time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := readAll(r)
	if !strings.Contains(rest, "* BYE Server shutting down") {
		t.Fatalf("no BYE at shutdown: %q", rest)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// A client that opens the implicit-TLS port and never starts the handshake
// is dropped once the login time is up.
func TestStalledTLSHandshakeDropped(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{LoginTimeout: 300 * time.Millisecond}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.ServeTLS(ln) //nolint:errcheck // ends with the test
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	buf := make([]byte, 16)
	if _, err := c.Read(buf); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("connection still open: %v", err)
	}
}
