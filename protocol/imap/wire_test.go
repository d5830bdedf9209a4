package imap_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	mgimap "github.com/mailgate/mailgate/protocol/imap"
	"github.com/mailgate/mailgate/protocol/wire"
)

// What the front end shares with the others through package wire: caps,
// timeouts, login failures and metrics.

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// closedAfter reads the rest of the connection and fails unless it contains
// want and then ends.
func closedAfter(t *testing.T, r *raw, want string, within time.Duration) string {
	t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(within))
	rest, err := readAll(r)
	if !strings.Contains(rest, want) {
		t.Fatalf("want %q before the end, got %q (%v)", want, rest, err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %q", rest)
	}
	return rest
}

func TestConnectionsPerIPCapped(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Limits: wire.Limits{MaxConnectionsPerIP: 1}}})
	first := dialRaw(t, e.addr)
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	second := &raw{t: t, conn: c, r: bufio.NewReader(c)}
	closedAfter(t, second, "* BYE [UNAVAILABLE] Too many connections; try again later\r\n", 10*time.Second)
	first.login() // the first is unaffected
}

func TestLoginTimeoutSaysBye(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Limits: wire.Limits{LoginTimeout: 300 * time.Millisecond}}})
	r := dialRaw(t, e.addr)
	start := time.Now()
	closedAfter(t, r, "* BYE Authenticate sooner\r\n", 10*time.Second)
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestIdleTimeoutAfterLogin(t *testing.T) {
	const idle = 500 * time.Millisecond
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Limits: wire.Limits{IdleTimeout: idle}}})
	r := dialRaw(t, e.addr)
	r.login()
	start := time.Now()
	closedAfter(t, r, "* BYE Autologout: idle for too long\r\n", 10*time.Second)
	if d := time.Since(start); d < idle-100*time.Millisecond || d > 4*time.Second {
		t.Fatalf("logged out after %v with an idle timeout of %v", d, idle)
	}
}

// Commands keep a connection alive past the idle timeout.
func TestCommandsResetIdleTimeout(t *testing.T) {
	const idle = 600 * time.Millisecond
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Limits: wire.Limits{IdleTimeout: idle}}})
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	for end := time.Now().Add(3 * idle); time.Now().Before(end); {
		time.Sleep(idle / 3)
		r.expectOK("NOOP")
	}
	r.expectOK("FETCH 1:* (FLAGS)")
}

func TestAuthenticateLogin(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	if u := r.expectOK("CAPABILITY"); !hasLine(u, "AUTH=PLAIN", "AUTH=LOGIN") {
		t.Fatalf("caps on loopback: %q", u)
	}
	r.send("a1 AUTHENTICATE LOGIN")
	if l := r.line(); l != "+ "+b64("Username:") {
		t.Fatalf("first challenge %q", l)
	}
	r.send(b64(testUser))
	if l := r.line(); l != "+ "+b64("Password:") {
		t.Fatalf("second challenge %q", l)
	}
	r.send(b64(testPass))
	if l := r.line(); !strings.HasPrefix(l, "a1 OK") {
		t.Fatalf("AUTHENTICATE LOGIN: %q", l)
	}
	r.expectOK("SELECT INBOX")

	// With the user name as initial response (SASL-IR), and PLAIN.
	r2 := dialRaw(t, e.addr)
	r2.send("b1 AUTHENTICATE LOGIN " + b64(testUser))
	if l := r2.line(); l != "+ "+b64("Password:") {
		t.Fatalf("challenge after initial response %q", l)
	}
	r2.send(b64(testPass))
	if l := r2.line(); !strings.HasPrefix(l, "b1 OK") {
		t.Fatalf("AUTHENTICATE LOGIN with SASL-IR: %q", l)
	}
	r3 := dialRaw(t, e.addr)
	r3.expectOK("AUTHENTICATE PLAIN " + b64("\x00"+testUser+"\x00"+testPass))
	// Another identity is refused.
	r4 := dialRaw(t, e.addr)
	if _, st := r4.cmd("AUTHENTICATE PLAIN " + b64("bob@example.com\x00"+testUser+"\x00"+testPass)); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("PLAIN for another identity: %s", st)
	}
	if _, st := r4.cmd("AUTHENTICATE CRAM-MD5"); !strings.HasPrefix(st, "NO") {
		t.Fatalf("unknown mechanism: %s", st)
	}
	if _, st := r4.cmd("AUTHENTICATE PLAIN " + b64("no separators")); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("malformed PLAIN: %s", st)
	}
}

// The third failed login, whatever the command, is answered and then the
// connection is closed.
func TestLoginFailuresHangUp(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	if _, st := r.cmd(`LOGIN alice@example.com "wrong password"`); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("first failure: %s", st)
	}
	if _, st := r.cmd("AUTHENTICATE PLAIN " + b64("\x00"+testUser+"\x00wrong")); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("second failure: %s", st)
	}
	r.send("t9 AUTHENTICATE LOGIN")
	r.line()
	r.send(b64(testUser))
	r.line()
	r.send(b64("still wrong"))
	if l := r.line(); !strings.HasPrefix(l, "t9 NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("third failure: %q", l)
	}
	closedAfter(t, r, "* BYE Too many failed logins\r\n", 10*time.Second)
}

func TestOversizeCredentialRefused(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	long := strings.Repeat("x", 2000)
	if _, st := r.cmd(fmt.Sprintf("LOGIN %s %q", testUser, long)); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED] User name or password too long") {
		t.Fatalf("LOGIN with a long password: %s", st)
	}
	if _, st := r.cmd(fmt.Sprintf("LOGIN {%d+}\r\n%s %q", len(long), long, testPass)); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED] User name or password too long") {
		t.Fatalf("LOGIN with a long user name: %s", st)
	}
	if _, st := r.cmd("AUTHENTICATE PLAIN " + b64("\x00"+testUser+"\x00"+long)); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("AUTHENTICATE PLAIN with a long password: %s", st)
	}
	// Each counted as a failed login: that was the third.
	closedAfter(t, r, "* BYE Too many failed logins\r\n", 10*time.Second)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Metrics: wire.NewMetrics(reg, "imap"), MaxMessageBytes: 1000}})
	e.deliver(t, testMessage(1, "one"))
	r := dialRaw(t, e.addr)
	if _, st := r.cmd(`LOGIN alice@example.com "wrong password"`); !strings.HasPrefix(st, "NO") {
		t.Fatalf("bad LOGIN: %s", st)
	}
	r.login()
	r.expectOK("CAPABILITY") // a poll alone, as NOOP
	r.expectOK("SELECT INBOX")
	r.expectOK("FETCH 1 (FLAGS)")
	r.expectOK("UID FETCH 1:* (UID)")
	r.expectOK("STORE 1 +FLAGS (\\Flagged)")
	r.expectOK("UID SEARCH ALL")
	r.expectOK("NOOP")
	r.expectOK("CHECK")
	if _, st := r.cmd("SELECT Nonexistent"); !strings.HasPrefix(st, "NO") {
		t.Fatalf("SELECT of no mailbox: %s", st)
	}
	r.expectOK("EXAMINE INBOX")
	if _, st := r.cmd("FETCH 1:* (FLAGS"); !strings.HasPrefix(st, "BAD") { // the library's
		t.Fatalf("syntax error: %s", st)
	}
	msg := testMessage(2, "appended")
	r.expectOK("APPEND INBOX {" + itoa(len(msg)) + "+}\r\n" + msg)
	big := strings.Repeat("x", 1001)
	if _, st := r.cmd("APPEND INBOX {" + itoa(len(big)) + "+}\r\n" + big); !strings.HasPrefix(st, "NO [TOOBIG]") {
		t.Fatalf("APPEND over the limit: %s", st)
	}
	r.send("i1 IDLE")
	r.line()
	r.send("DONE")
	if l := r.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("IDLE: %q", l)
	}
	r.expectOK("UNSELECT")
	r.expectOK("NOOP")

	want := []string{
		`mailgate_imap_commands_total{command="APPEND",result="no"} 1`,
		`mailgate_imap_commands_total{command="APPEND",result="ok"} 1`,
		`mailgate_imap_commands_total{command="EXAMINE",result="ok"} 1`,
		`mailgate_imap_commands_total{command="FETCH",result="ok"} 1`,
		`mailgate_imap_commands_total{command="IDLE",result="ok"} 1`,
		`mailgate_imap_commands_total{command="LOGIN",result="no"} 1`,
		`mailgate_imap_commands_total{command="LOGIN",result="ok"} 1`,
		`mailgate_imap_commands_total{command="NOOP",result="ok"} 4`,
		`mailgate_imap_commands_total{command="SELECT",result="no"} 1`,
		`mailgate_imap_commands_total{command="SELECT",result="ok"} 1`,
		`mailgate_imap_commands_total{command="STORE",result="ok"} 1`,
		`mailgate_imap_commands_total{command="UID FETCH",result="ok"} 1`,
		`mailgate_imap_commands_total{command="UID SEARCH",result="ok"} 1`,
		`mailgate_imap_commands_total{command="UNSELECT",result="ok"} 1`,
		`mailgate_imap_connections_open 1`,
		`mailgate_imap_logins_total{result="failed"} 1`,
		`mailgate_imap_logins_total{result="ok"} 1`,
		`mailgate_imap_messages_total{result="accepted"} 1`,
		`mailgate_imap_messages_total{result="rejected"} 1`,
	}
	got := gather(t, reg, "mailgate_imap_connections_open", "mailgate_imap_commands_total",
		"mailgate_imap_logins_total", "mailgate_imap_messages_total")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("metrics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// gather renders the named metrics of reg as sorted lines "name{labels} value".
// (prometheus/testutil would need a module this one does not require.)
func gather(t *testing.T, reg *prometheus.Registry, names ...string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out = append(out, fmt.Sprintf("%s %v", name, v))
		}
	}
	sort.Strings(out)
	return out
}

// Shutdown lets an APPEND being received finish and be answered, then says
// BYE.
func TestShutdownFinishesAppend(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	msg := testMessage(1, "during shutdown")
	half := len(msg) / 2
	r.send("a1 APPEND INBOX {" + itoa(len(msg)) + "}")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	if _, err := r.conn.Write([]byte(msg[:half])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the server is inside the APPEND
	done := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	time.Sleep(200 * time.Millisecond) // Shutdown has begun
	r.send(msg[half:])
	if l := r.line(); !strings.HasPrefix(l, "a1 OK [APPENDUID ") {
		t.Fatalf("APPEND during shutdown: %q", l)
	}
	closedAfter(t, r, "* BYE Server shutting down\r\n", 10*time.Second)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
