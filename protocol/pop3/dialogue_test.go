package pop3

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// step is one command of a scripted dialogue and the prefix its first
// response line must have; multi reads (and returns) a multi-line body.
type step struct {
	send  string
	want  string
	multi bool
}

func runScript(t *testing.T, c *client, script []step) map[string][]string {
	t.Helper()
	bodies := map[string][]string{}
	for _, s := range script {
		got := c.cmd(s.send)
		if !strings.HasPrefix(got, s.want) {
			t.Fatalf("%q → %q, want prefix %q", s.send, got, s.want)
		}
		if s.multi && strings.HasPrefix(got, "+OK") {
			bodies[s.send] = c.lines()
		}
	}
	return bodies
}

func TestDialogue(t *testing.T) {
	e := newEnv(t)
	m1, raw1 := e.deliver(testMessage(1))
	m2, _ := e.deliver(testMessage(2))
	total := m1.Size + m2.Size

	c := dial(t, e.addr)
	bodies := runScript(t, c, []step{
		{send: "CAPA", want: "+OK", multi: true},
		{send: "STAT", want: "-ERR STAT is not valid in the AUTHORIZATION state"},
		{send: "HELO", want: "-ERR Unknown command"},
		{send: "RETRIEVE 1", want: "-ERR Unknown command"},
		{send: "", want: "-ERR Empty command"},
		{send: "PASS x", want: "-ERR Send USER first"},
		{send: "USER " + testUser, want: "+OK"},
		{send: "PASS wrong password", want: "-ERR [AUTH] Authentication failed"},
		{send: "user " + testUser, want: "+OK"},
		{send: "pass " + testPassword, want: "+OK Maildrop has 2 messages (" + fmt.Sprint(total) + " octets)"},
		{send: "USER bob", want: "-ERR USER is not valid in the TRANSACTION state"},
		{send: "STLS", want: "-ERR STLS is not valid in the TRANSACTION state"},
		{send: "CAPA", want: "+OK", multi: true},
		{send: "STAT", want: fmt.Sprintf("+OK 2 %d", total)},
		{send: "STAT 1", want: "-ERR Syntax error"},
		{send: "LIST", want: "+OK 2 messages", multi: true},
		{send: "LIST 2", want: fmt.Sprintf("+OK 2 %d", m2.Size)},
		{send: "LIST 3", want: "-ERR No such message"},
		{send: "LIST 0", want: "-ERR No such message"},
		{send: "LIST -1", want: "-ERR No such message"},
		{send: "LIST 1x", want: "-ERR No such message"},
		{send: "LIST 99999999999999999999", want: "-ERR No such message"},
		{send: "UIDL", want: "+OK", multi: true},
		{send: "UIDL 1", want: "+OK 1 " + m1.PublicID},
		{send: "TOP 1", want: "-ERR Syntax error"},
		{send: "TOP 1 x", want: "-ERR Syntax error"},
		{send: "RETR", want: "-ERR No such message"},
		{send: "DELE 1", want: "+OK Message 1 marked deleted"},
		{send: "DELE 1", want: "-ERR Message already deleted"},
		{send: "RETR 1", want: "-ERR Message already deleted"},
		{send: "LIST 1", want: "-ERR Message already deleted"},
		{send: "STAT", want: fmt.Sprintf("+OK 1 %d", m2.Size)},
		{send: "LIST", want: "+OK 1 messages", multi: true},
		{send: "RSET", want: fmt.Sprintf("+OK Maildrop has 2 messages (%d octets)", total)},
		{send: "RETR 1", want: fmt.Sprintf("+OK %d octets", m1.Size)},
	})
	if got := c.body(); !bytes.Equal(got, raw1) {
		t.Fatalf("RETR 1 sent %q, want the stored %q", got, raw1)
	}
	if caps := strings.Join(bodies["CAPA"], ","); caps != "TOP,UIDL,RESP-CODES,AUTH-RESP-CODE,PIPELINING,IMPLEMENTATION mailgate" {
		t.Errorf("CAPA in TRANSACTION = %s", caps)
	}
	if got, want := bodies["LIST"], []string{fmt.Sprintf("2 %d", m2.Size)}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("LIST after DELE = %q, want %q", got, want)
	}
	if got := bodies["UIDL"]; len(got) != 2 || got[0] != "1 "+m1.PublicID || got[1] != "2 "+m2.PublicID {
		t.Errorf("UIDL = %q", got)
	}
	runScript(t, c, []step{
		{send: "NOOP", want: "+OK"},
		{send: "NOOP x", want: "-ERR Syntax error"},
		{send: "DELE 2", want: "+OK"},
		{send: "QUIT", want: "+OK pop.example.com POP3 server signing off (1 messages left)"},
	})
	c.expectClosed()
	e.waitIdle()

	c = dial(t, e.addr)
	mustPrefix(t, "PASS", c.login(testUser, testPassword), "+OK Maildrop has 1 messages")
	mustPrefix(t, "UIDL", c.cmd("UIDL 1"), "+OK 1 "+m1.PublicID)
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
}

func TestCapaAuthorization(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr)
	mustPrefix(t, "CAPA", c.cmd("CAPA"), "+OK")
	if got := strings.Join(c.lines(), ","); got != "TOP,UIDL,RESP-CODES,AUTH-RESP-CODE,PIPELINING,USER,SASL PLAIN LOGIN,STLS,IMPLEMENTATION mailgate" {
		t.Errorf("CAPA = %s", got)
	}
	mustPrefix(t, "CAPA x", c.cmd("CAPA x"), "-ERR")
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
	c.expectClosed()

	// Over implicit TLS there is no STLS to offer.
	c = dialTLS(t, e.tlsAddr)
	mustPrefix(t, "CAPA", c.cmd("CAPA"), "+OK")
	if got := strings.Join(c.lines(), ","); strings.Contains(got, "STLS") || !strings.Contains(got, "USER") {
		t.Errorf("CAPA over TLS = %s", got)
	}
	mustPrefix(t, "STLS", c.cmd("STLS"), "-ERR TLS is already active")
}

func TestTop(t *testing.T) {
	e := newEnv(t)
	_, raw := e.deliver("Subject: top\r\nX-A: b\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n")
	hdrEnd := bytes.Index(raw, []byte("\r\n\r\n")) + 4
	c := dial(t, e.addr)
	mustPrefix(t, "PASS", c.login(testUser, testPassword), "+OK")
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, string(raw[:hdrEnd])},
		{1, string(raw[:hdrEnd]) + "line 1\r\n"},
		{2, string(raw[:hdrEnd]) + "line 1\r\n.line 2\r\n"},
		{100, string(raw)},
	} {
		mustPrefix(t, "TOP", c.cmd(fmt.Sprintf("TOP 1 %d", tc.n)), "+OK")
		if got := string(c.body()); got != tc.want {
			t.Errorf("TOP 1 %d = %q, want %q", tc.n, got, tc.want)
		}
	}
	mustPrefix(t, "TOP 2 0", c.cmd("TOP 2 0"), "-ERR No such message")
}

func TestCopyTopEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"Subject: x\r\n", 0, "Subject: x\r\n"},                     // no body at all
		{"Subject: x\r\n\r\n", 5, "Subject: x\r\n\r\n"},             // empty body
		{"Subject: x\r\n\r\na\r\nb", 2, "Subject: x\r\n\r\na\r\nb"}, // last line without CRLF
		{"\r\nbody\r\n", 0, "\r\n"},                                 // empty header
		{"A: " + strings.Repeat("x", 9000) + "\r\n\r\nb\r\nc\r\n", 1, "A: " + strings.Repeat("x", 9000) + "\r\n\r\nb\r\n"},
	} {
		var out bytes.Buffer
		if err := copyTop(&out, strings.NewReader(tc.in), tc.n); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("copyTop(%.30q, %d) = %.60q, want %.60q", tc.in, tc.n, out.String(), tc.want)
		}
	}
}

func TestRetrExactBytes(t *testing.T) {
	e := newEnv(t)
	// Lines that need dot-stuffing, 8-bit octets, a body larger than a
	// storage chunk and than every buffer on the way, and one without a
	// trailing line break inside.
	big := strings.Repeat(".dot at start\r\n"+strings.Repeat("x", 998)+"\r\n", 400)
	msgs := []string{
		testMessage(1),
		"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n这是一封测试邮件\r\n\x01\x7f\xff\r\n",
		"Subject: big\r\n\r\n" + big,
		"Subject: lf only\n\n.a\nb\n",
	}
	var stored [][]byte
	for _, m := range msgs {
		_, raw := e.deliver(m)
		stored = append(stored, raw)
	}
	c := dial(t, e.addr)
	mustPrefix(t, "PASS", c.login(testUser, testPassword), "+OK")
	mustPrefix(t, "LIST", c.cmd("LIST"), "+OK")
	list := c.lines()
	for i, raw := range stored {
		if want := fmt.Sprintf("%d %d", i+1, len(raw)); list[i] != want {
			t.Errorf("LIST line %q, want %q", list[i], want)
		}
		mustPrefix(t, "RETR", c.cmd(fmt.Sprintf("RETR %d", i+1)), fmt.Sprintf("+OK %d octets", len(raw)))
		if got := c.body(); !bytes.Equal(got, raw) {
			t.Errorf("RETR %d: got %d bytes, want %d stored bytes", i+1, len(got), len(raw))
		}
	}
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
}

func TestLongLines(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr)
	// 253 octets + CRLF = 255: the longest line allowed.
	mustPrefix(t, "255 octets", c.cmd("USER "+strings.Repeat("a", 248)), "+OK")
	mustPrefix(t, "256 octets", c.cmd("USER "+strings.Repeat("a", 249)), "-ERR Line too long")
	mustPrefix(t, "10 KB", c.cmd("USER "+strings.Repeat("a", 10000)), "-ERR Line too long")
	mustPrefix(t, "after", c.cmd("CAPA"), "+OK")
	c.lines()
	mustPrefix(t, "PASS", c.login(testUser, testPassword), "+OK")
	mustPrefix(t, "long in TRANSACTION", c.cmd("LIST "+strings.Repeat("1", 300)), "-ERR Line too long")
	mustPrefix(t, "STAT", c.cmd("STAT"), "+OK 0 0")
	// A line with no end in sight: the server gives up and closes. (It may
	// reset the connection while the client still writes, so the reply can
	// be lost; what matters is that the connection ends.)
	go c.nc.Write(bytes.Repeat([]byte("x"), maxDiscard+100000))
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	rest, err := io.ReadAll(c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open after an endless line")
	}
	if len(rest) > 0 && !strings.HasPrefix(string(rest), "-ERR Line too long; closing") {
		t.Fatalf("after an endless line: %q", rest)
	}
}

func TestControlCharacters(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr)
	mustPrefix(t, "NUL", c.cmd("USER a\x00b"), "-ERR Command contains control characters")
	mustPrefix(t, "ESC", c.cmd("USER \x1b[31m"), "-ERR Command contains control characters")
	c.nc.Write([]byte("NOOP\n")) // a bare LF ends a line too
	mustPrefix(t, "bare LF", c.line(), "-ERR NOOP is not valid in the AUTHORIZATION state")
}

func TestAuthFailuresCloseConnection(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr)
	mustPrefix(t, "1st", c.login(testUser, "wrong 1"), "-ERR [AUTH] Authentication failed")
	mustPrefix(t, "2nd", c.login("nobody@example.com", "wrong 2"), "-ERR [AUTH] Authentication failed")
	mustPrefix(t, "3rd", c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+testUser+"\x00wrong 3"))), "-ERR [AUTH] Authentication failed; too many failures, closing")
	c.expectClosed()
}

func TestAuthPlain(t *testing.T) {
	e := newEnv(t)
	plain := func(id, user, pw string) string {
		return base64.StdEncoding.EncodeToString([]byte(id + "\x00" + user + "\x00" + pw))
	}
	c := dial(t, e.addr)
	mustPrefix(t, "AUTH", c.cmd("AUTH"), "+OK")
	if got := c.lines(); strings.Join(got, ",") != "PLAIN,LOGIN" {
		t.Errorf("AUTH lists %q", got)
	}
	mustPrefix(t, "AUTH CRAM-MD5", c.cmd("AUTH CRAM-MD5"), "-ERR Unsupported authentication mechanism")
	mustPrefix(t, "bad base64", c.cmd("AUTH PLAIN !!!"), "-ERR [AUTH] Invalid base64")
	mustPrefix(t, "continuation", c.cmd("AUTH PLAIN"), "+ ")
	mustPrefix(t, "cancel", c.cmd("*"), "-ERR [AUTH] Authentication cancelled")
	mustPrefix(t, "other identity", c.cmd("AUTH PLAIN "+plain("bob@example.com", testUser, testPassword)), "-ERR [AUTH] Authentication failed")
	mustPrefix(t, "continuation", c.cmd("AUTH plain"), "+ ")
	mustPrefix(t, "response", c.cmd(plain(testUser, "ALICE@Example.COM", testPassword)), "+OK Maildrop has 0 messages")
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
	e.waitIdle()

	c = dial(t, e.addr)
	mustPrefix(t, "malformed", c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("no nuls"))), "-ERR [AUTH] Authentication failed")
	mustPrefix(t, "initial response", c.cmd("AUTH PLAIN "+plain("", testUser, testPassword)), "+OK Maildrop has 0 messages")
}

func TestPlaintextRefusedWithoutTLS(t *testing.T) {
	e := newEnv(t, asRemoteUsers)
	c := dial(t, e.addr)
	mustPrefix(t, "CAPA", c.cmd("CAPA"), "+OK")
	if got := strings.Join(c.lines(), ","); strings.Contains(got, "USER") || strings.Contains(got, "SASL") || !strings.Contains(got, "STLS") {
		t.Errorf("CAPA before TLS = %s", got)
	}
	mustPrefix(t, "USER", c.cmd("USER "+testUser), "-ERR [AUTH] Plaintext authentication is refused without TLS")
	mustPrefix(t, "PASS", c.cmd("PASS "+testPassword), "-ERR [AUTH] Plaintext authentication is refused without TLS")
	mustPrefix(t, "AUTH", c.cmd("AUTH PLAIN AGFsaWNlAHg="), "-ERR [AUTH] Plaintext authentication is refused without TLS")
	// Anything pipelined after STLS in the clear is dropped, not run under TLS.
	c.send("STLS\r\nUSER injected")
	mustPrefix(t, "STLS", c.line(), "+OK Begin TLS")
	c.starttls()
	mustPrefix(t, "CAPA", c.cmd("CAPA"), "+OK")
	if got := strings.Join(c.lines(), ","); !strings.Contains(got, "USER") || !strings.Contains(got, "SASL PLAIN LOGIN") || strings.Contains(got, "STLS") {
		t.Errorf("CAPA after STLS = %s", got)
	}
	mustPrefix(t, "PASS without USER", c.cmd("PASS "+testPassword), "-ERR Send USER first")
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK")
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")

	e2 := newEnv(t, asRemoteUsers, withOptions(func(o *Options) { o.Policy.AllowInsecureAuth = true }))
	c = dial(t, e2.addr)
	mustPrefix(t, "insecure allowed", c.login(testUser, testPassword), "+OK")
}

func TestNoTLSConfigured(t *testing.T) {
	e := newEnv(t, noTLS)
	c := dial(t, e.addr)
	mustPrefix(t, "CAPA", c.cmd("CAPA"), "+OK")
	if got := strings.Join(c.lines(), ","); strings.Contains(got, "STLS") {
		t.Errorf("CAPA without a certificate = %s", got)
	}
	mustPrefix(t, "STLS", c.cmd("STLS"), "-ERR STLS is not available")
}

func TestPipelining(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver(testMessage(i))
	}
	c := dial(t, e.addr)
	// One write with the whole session (RFC 2449 §6.6).
	c.send("USER " + testUser + "\r\nPASS " + testPassword + "\r\nSTAT\r\nRETR 1\r\nBOGUS\r\nDELE 2\r\nLIST\r\nUIDL 3\r\nQUIT")
	mustPrefix(t, "USER", c.line(), "+OK")
	mustPrefix(t, "PASS", c.line(), "+OK Maildrop has 3 messages")
	mustPrefix(t, "STAT", c.line(), "+OK 3 ")
	mustPrefix(t, "RETR", c.line(), "+OK")
	if !bytes.Contains(c.body(), []byte("Hello number 1.")) {
		t.Error("RETR 1 has the wrong body")
	}
	mustPrefix(t, "BOGUS", c.line(), "-ERR")
	mustPrefix(t, "DELE", c.line(), "+OK")
	mustPrefix(t, "LIST", c.line(), "+OK 2 messages")
	if l := c.lines(); len(l) != 2 || !strings.HasPrefix(l[1], "3 ") {
		t.Errorf("LIST = %q", l)
	}
	mustPrefix(t, "UIDL", c.line(), "+OK 3 ")
	mustPrefix(t, "QUIT", c.line(), "+OK")
	c.expectClosed()
	e.waitIdle()
	if n := e.inboxCount(); n != 2 {
		t.Errorf("INBOX has %d messages, want 2", n)
	}
}
