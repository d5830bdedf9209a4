package imap_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailgate/mailgate/models"
	mgimap "github.com/mailgate/mailgate/protocol/imap"
	"github.com/mailgate/mailgate/protocol/wire"
)

// distrust makes loopback clients count as remote, to see what a client on
// another host sees before TLS.
var distrust = wire.Policy{DistrustLoopback: true}

func TestPlaintextLoginNeedsTLS(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{Policy: distrust}})
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
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{Policy: distrust}})
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
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Policy: wire.Policy{AllowInsecureAuth: true, DistrustLoopback: true}}})
	r := dialRaw(t, e.addr)
	r.login()
}

func TestUnauthenticatedConnectionClosedSoon(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Limits: wire.Limits{LoginTimeout: 400 * time.Millisecond}}})
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
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Limits: wire.Limits{IdleTimeout: idle}}})
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

func TestAppendOverLimit(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{MaxMessageBytes: 1000}})
	r := dialRaw(t, e.addr)
	r.login()
	// go-imap beta.8 writes a static APPENDLIMIT=n as a bare APPENDLIMIT;
	// the number is put back.
	if u := r.expectOK("CAPABILITY"); !hasLine(u, " APPENDLIMIT=1000") {
		t.Fatalf("caps %q", u)
	}
	if u := r.expectOK("STATUS INBOX (APPENDLIMIT)"); !hasLine(u, "APPENDLIMIT 1000") {
		t.Fatalf("STATUS %q", u)
	}
	// A synchronizing literal over the limit is refused before the
	// continuation request (RFC 7889): the client sends nothing more.
	r.send("a1 APPEND INBOX {5000}")
	if l := r.line(); l != "a1 NO [TOOBIG] Message too large (APPENDLIMIT=1000)" {
		t.Fatalf("oversized APPEND: %q", l)
	}
	// Over the library's 100 MiB too.
	r.send("a3 APPEND INBOX {104857601}")
	if l := r.line(); !strings.HasPrefix(l, "a3 NO [TOOBIG]") {
		t.Fatalf("APPEND over 100 MiB: %q", l)
	}
	r.expectOK("NOOP") // the session goes on
	// With the mailbox as a literal, the message literal is the second.
	r.send("a5 APPEND {5}")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation for the mailbox: %q", l)
	}
	r.send("INBOX {5000}")
	if l := r.line(); !strings.HasPrefix(l, "a5 NO [TOOBIG]") {
		t.Fatalf("oversized APPEND after a mailbox literal: %q", l)
	}
	r.expectOK("NOOP")
	msg := testMessage(1, "fits")
	r.send("a4 APPEND INBOX {" + itoa(len(msg)) + "}")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	r.send(msg)
	if l := r.line(); !strings.HasPrefix(l, "a4 OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", l)
	}
}

// noMailbox fails unless the user has no mailbox of that name.
func noMailbox(t *testing.T, e *env, name string) {
	t.Helper()
	if _, err := e.mbox.Get(context.Background(), e.user.ID, name); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("mailbox %q: %v, want not found", name, err)
	}
}

// A LITERAL+ APPEND over the limit is refused only once its bytes are read,
// so that they are never taken for commands.
func TestAppendLiteralNotSmuggled(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{MaxMessageBytes: 1 << 20}})
	r := dialRaw(t, e.addr)
	r.login()
	const line = "A2 CREATE Smuggled\r\n"
	const n = 3 << 20 / len(line) // a literal of about 3 MiB of commands
	size := n * len(line)
	errc := make(chan error, 1)
	go func() {
		// The command and the first lines in one write, the rest streamed.
		first := fmt.Sprintf("A1 APPEND INBOX {%d+}\r\n", size) + strings.Repeat(line, 100)
		_, err := r.conn.Write([]byte(first))
		chunk := []byte(strings.Repeat(line, 1000))
		for sent := 100; err == nil && sent < n; sent += 1000 {
			_, err = r.conn.Write(chunk[:min(1000, n-sent)*len(line)])
		}
		if err == nil {
			_, err = r.conn.Write([]byte("\r\nA3 NOOP\r\n"))
		}
		errc <- err
	}()
	if l := r.line(); !strings.HasPrefix(l, "A1 NO [TOOBIG]") {
		t.Fatalf("oversized LITERAL+ APPEND: %q", l)
	}
	if l := r.line(); !strings.HasPrefix(l, "A3 OK") {
		t.Fatalf("after the literal: %q", l)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	noMailbox(t, e, "Smuggled")
	r.expectOK("NOOP")
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
	rest, rerr := readAll(r)
	if !strings.Contains(rest, "* BYE Server shutting down") {
		t.Fatalf("no BYE at shutdown: %q (%v)", rest, rerr)
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
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{Limits: wire.Limits{LoginTimeout: 300 * time.Millisecond}}})
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
