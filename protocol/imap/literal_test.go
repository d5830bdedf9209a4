package imap_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	mgimap "github.com/mailgate/mailgate/protocol/imap"
	"github.com/mailgate/mailgate/protocol/wire"
)

// What a client sends inside a literal is data, never commands, whatever
// the library does with the literal (refuses it unread, or answers its
// command without reading it).

// smuggled is a literal's worth of commands: 20 bytes a line.
const smuggled = "A2 CREATE Smuggled\r\n"

// A LITERAL+ literal over the library's 4096 bytes for anything but an
// APPEND's message: BYE, and the connection closes.
func TestBufferedLiteralPlusTooBig(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Metrics: wire.NewMetrics(reg, "imap")}})
	r := dialRaw(t, e.addr)
	r.login()
	if _, err := r.conn.Write([]byte("A1 CREATE {5000+}\r\n" + strings.Repeat(smuggled, 250) + "\r\nA3 NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	rest := closedAfter(t, r, "* BYE [TOOBIG] Literal too large; closing\r\n", 10*time.Second)
	if strings.Contains(rest, "A2 ") || strings.Contains(rest, "A3 ") {
		t.Fatalf("commands of the literal answered: %q", rest)
	}
	noMailbox(t, e, "Smuggled")
	if got := gather(t, reg, "mailgate_imap_commands_total"); !strings.Contains(strings.Join(got, "\n"), `command="CREATE",result="bad"} 1`) {
		t.Fatalf("metrics: %v", got)
	}
	// Before login too (a LOGIN's user name, say).
	r2 := dialRaw(t, e.addr)
	r2.send("B1 LOGIN {5000+}")
	closedAfter(t, r2, "* BYE [TOOBIG]", 10*time.Second)
}

// An APPEND's LITERAL+ message over the library's 100 MiB: the header
// decides, the bytes after it are never read as commands.
func TestAppendLiteralPlusOver100MiB(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	if _, err := r.conn.Write([]byte("A1 APPEND INBOX {104857601+}\r\n" + strings.Repeat(smuggled, 10))); err != nil {
		t.Fatal(err)
	}
	rest := closedAfter(t, r, "* BYE [TOOBIG] Literal too large; closing\r\n", 10*time.Second)
	if strings.Contains(rest, "A2 ") {
		t.Fatalf("commands of the literal answered: %q", rest)
	}
	noMailbox(t, e, "Smuggled")
	// With the mailbox as a literal, the message is the second literal.
	r2 := dialRaw(t, e.addr)
	r2.login()
	if _, err := r2.conn.Write([]byte("A1 APPEND {5+}\r\nINBOX {104857601+}\r\n" + strings.Repeat(smuggled, 10))); err != nil {
		t.Fatal(err)
	}
	closedAfter(t, r2, "* BYE [TOOBIG]", 10*time.Second)
	noMailbox(t, e, "Smuggled")
}

// The case of the issue: a LITERAL+ APPEND under 100 MiB but over the
// configured limit is read (to be refused once read): what it holds does not
// run while it is being read.
func TestAppendLiteralPlusUnderLibraryLimit(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{MaxMessageBytes: 1000}})
	r := dialRaw(t, e.addr)
	r.login()
	if _, err := r.conn.Write([]byte("A1 APPEND INBOX {99999999+}\r\n" + strings.Repeat(smuggled, 100) + "A3 NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	r.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if got, err := readAll(r); got != "" || !isTimeout(err) {
		t.Fatalf("answered inside the literal: %q (%v)", got, err)
	}
	r.conn.Close()
	time.Sleep(100 * time.Millisecond)
	noMailbox(t, e, "Smuggled")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A command the library answers without reading its LITERAL+ literal (here
// a malformed one): the literal is read past, not run.
func TestLiteralOfRefusedCommandSkipped(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	r.send("A1 NOOP {20+}\r\n" + smuggled) // the literal, then the line's end
	if l := r.line(); !strings.HasPrefix(l, "A1 BAD") {
		t.Fatalf("malformed NOOP: %q", l)
	}
	// A continuation with a literal of its own, and one ending in a
	// synchronizing literal, which the client does not send.
	r.send("A3 SELECT {5+}\r\nINBOX extra {20+}\r\n" + smuggled + " {5}")
	if l := r.line(); !strings.HasPrefix(l, "A3 BAD") {
		t.Fatalf("malformed SELECT: %q", l)
	}
	r.expectOK("NOOP")
	noMailbox(t, e, "Smuggled")
	// A line the library would cut: a bare CR, a quoted string the line end
	// cuts.
	r.send("A4 NOOP x\r" + smuggled[:len(smuggled)-2])
	if l := r.line(); !strings.HasPrefix(l, "A4 BAD [CLIENTBUG]") {
		t.Fatalf("bare CR: %q", l)
	}
	r.send(`A5 CREATE "x`)
	if l := r.line(); !strings.HasPrefix(l, "A5 BAD [CLIENTBUG]") {
		t.Fatalf("open quoted string: %q", l)
	}
	r.expectOK("NOOP")
	noMailbox(t, e, "Smuggled")
}

// Past the library's 50 KiB a command is refused whole: the library would
// fail in the middle of the line and take the rest for a command.
func TestLongCommandLine(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	const libraryMax = 50 * 1024
	prefix := "A1 SEARCH TEXT "
	r.send(prefix + strings.Repeat("x", libraryMax+1-len(prefix)) + smuggled[:len(smuggled)-2])
	if l := r.line(); !strings.HasPrefix(l, "A1 BAD [TOOBIG]") {
		t.Fatalf("long line: %q", l)
	}
	r.expectOK("NOOP")
	// Much longer, ending in a literal, which is read past.
	r.send("A3 SEARCH TEXT " + strings.Repeat("y", 200<<10) + " {20+}\r\n" + smuggled)
	if l := r.line(); !strings.HasPrefix(l, "A3 BAD [TOOBIG]") {
		t.Fatalf("long line: %q", l)
	}
	r.expectOK("NOOP")
	noMailbox(t, e, "Smuggled")
	// A long line is fine under the limit.
	r.expectOK("SELECT INBOX")
	if _, st := r.cmd("SEARCH TEXT " + strings.Repeat("z", 40<<10)); !strings.HasPrefix(st, "OK") {
		t.Fatalf("SEARCH of 40 KiB: %s", st)
	}
}

// A literal whose content looks like commands (and like responses) is
// stored as sent, synchronizing or not, and FETCH returns it unchanged.
func TestLiteralContentStoredExactly(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t)})
	r := dialRaw(t, e.addr)
	r.login()
	body := "Subject: commands\r\n\r\nA2 DELETE INBOX\r\nA3 STARTTLS\r\n+ OK\r\n* CAPABILITY IMAP4rev1 APPENDLIMIT\r\n" +
		"A4 CREATE {5+}\r\nDONE\r\n" + strings.Repeat("filler line\r\n", 600) + "A5 LOGOUT\r\n"
	r.send("A1 APPEND INBOX {" + itoa(len(body)) + "}")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	r.send(body)
	if l := r.line(); !strings.HasPrefix(l, "A1 OK [APPENDUID ") {
		t.Fatalf("APPEND: %q", l)
	}
	r.expectOK("APPEND INBOX {" + itoa(len(body)) + "+}\r\n" + body)
	r.expectOK("NOOP")
	r.expectOK("SELECT INBOX")
	for _, uid := range []string{"1", "2"} {
		r.send("F" + uid + " UID FETCH " + uid + " BODY.PEEK[]")
		head := r.line()
		if !strings.HasSuffix(head, "{"+itoa(len(body))+"}") {
			t.Fatalf("FETCH: %q", head)
		}
		got := make([]byte, len(body))
		if _, err := io.ReadFull(r.r, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != body {
			t.Fatalf("fetched %q, want %q", got, body)
		}
		if l := r.line(); l != ")" {
			t.Fatalf("after the literal: %q", l)
		}
		if l := r.line(); !strings.HasPrefix(l, "F"+uid+" OK") {
			t.Fatalf("FETCH: %q", l)
		}
	}
	for _, uid := range []uint32{1, 2} {
		m, err := e.mbox.Get(context.Background(), e.user.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		raw := fetchRaw(t, e, m.ID, uid)
		if raw != body {
			t.Fatalf("stored %q, want %q", raw, body)
		}
	}
	noMailbox(t, e, "Smuggled")
	r.expectOK("LIST \"\" INBOX")
}

// STARTTLS is cmdConn's: offered until TLS is on, refused after login and
// once TLS runs; what the client pipelined after it is dropped; no greeting
// follows the handshake.
func TestStartTLS(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{MaxMessageBytes: 5000}})
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, conn: c, r: bufio.NewReader(c)}
	if g := r.line(); !strings.HasPrefix(g, "* OK [CAPABILITY ") || !strings.Contains(g, " STARTTLS") {
		t.Fatalf("greeting %q", g)
	}
	if u := r.expectOK("CAPABILITY"); !hasLine(u, "* CAPABILITY ", " STARTTLS", "AUTH=PLAIN") {
		t.Fatalf("before TLS on loopback: %q", u)
	}
	// STARTTLS with a LOGIN slipped in behind it in the same packet.
	r.send("a1 STARTTLS\r\na2 LOGIN " + testUser + ` "` + testPass + `"`)
	if l := r.line(); l != "a1 OK Begin TLS negotiation now" {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	s := &raw{t: t, conn: tc, r: bufio.NewReader(tc)}
	// No greeting, no reply to a2: the first line is b1's.
	s.send("b1 NOOP")
	if l := s.line(); !strings.HasPrefix(l, "b1 OK") {
		t.Fatalf("first line under TLS: %q", l)
	}
	if _, st := s.cmd("SELECT INBOX"); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("the pipelined LOGIN ran: SELECT %s", st)
	}
	u := s.expectOK("CAPABILITY")
	if hasLine(u, "STARTTLS") || hasLine(u, "LOGINDISABLED") || !hasLine(u, "AUTH=PLAIN") {
		t.Fatalf("under TLS: %q", u)
	}
	if _, st := s.cmd("STARTTLS"); st != "BAD TLS already active" {
		t.Fatalf("second STARTTLS: %s", st)
	}
	s.login()
	if u := s.expectOK("CAPABILITY"); !hasLine(u, " APPENDLIMIT=5000") {
		t.Fatalf("caps after login: %q", u)
	}
	s.expectOK("SELECT INBOX")

	// After login in the clear (loopback may): refused.
	r2 := dialRaw(t, e.addr)
	r2.login()
	if _, st := r2.cmd("STARTTLS"); st != "BAD STARTTLS is not allowed after login" {
		t.Fatalf("STARTTLS after login: %s", st)
	}
	if u := r2.expectOK("CAPABILITY"); hasLine(u, "STARTTLS") {
		t.Fatalf("STARTTLS offered after login: %q", u)
	}

	// Without a TLS configuration: neither offered nor run.
	r3 := dialRaw(t, newEnv(t).addr)
	if u := r3.expectOK("CAPABILITY"); hasLine(u, "STARTTLS") {
		t.Fatalf("STARTTLS offered without TLS: %q", u)
	}
	if _, st := r3.cmd("STARTTLS"); !strings.HasPrefix(st, "NO") {
		t.Fatalf("STARTTLS without TLS: %s", st)
	}
	r3.login()
}

// Where plaintext login needs TLS: LOGINDISABLED and STARTTLS before it,
// neither after, and then LOGIN works.
func TestStartTLSDistrusted(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{Policy: distrust}})
	r := dialRaw(t, e.addr)
	if u := r.expectOK("CAPABILITY"); !hasLine(u, " STARTTLS", "LOGINDISABLED") || hasLine(u, "AUTH=") {
		t.Fatalf("before TLS: %q", u)
	}
	s := startTLS(t, r)
	if u := s.expectOK("CAPABILITY"); hasLine(u, "STARTTLS") || hasLine(u, "LOGINDISABLED") || !hasLine(u, "AUTH=PLAIN", "AUTH=LOGIN") {
		t.Fatalf("under TLS: %q", u)
	}
	s.login()
	s.expectOK("SELECT INBOX")
}

// startTLS runs STARTTLS on r and returns the client over TLS.
func startTLS(t *testing.T, r *raw) *raw {
	t.Helper()
	if _, st := r.cmd("STARTTLS"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("STARTTLS: %s", st)
	}
	tc := tls.Client(r.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return &raw{t: t, conn: tc, r: bufio.NewReader(tc)}
}

// The session after STARTTLS is the one timeouts and Shutdown find.
func TestStartTLSTimeoutAndShutdown(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{Policy: distrust,
		Limits: wire.Limits{LoginTimeout: 500 * time.Millisecond}}})
	s := startTLS(t, dialRaw(t, e.addr))
	closedAfter(t, s, "* BYE Authenticate sooner\r\n", 10*time.Second)

	e2 := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{Policy: distrust}})
	s2 := startTLS(t, dialRaw(t, e2.addr))
	s2.login()
	s2.expectOK("SELECT INBOX")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(5 * time.Second)
		defer cancel()
		done <- e2.srv.Shutdown(ctx)
	}()
	closedAfter(t, s2, "* BYE Server shutting down\r\n", 10*time.Second)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// fetchRaw reads a stored message through the mailbox service.
func fetchRaw(t *testing.T, e *env, mailboxID int64, uid uint32) string {
	t.Helper()
	ctx := context.Background()
	m, err := e.mbox.MessageByUID(ctx, mailboxID, uid)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := e.mbox.OpenMessage(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
