package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// setupMail makes the domain example.com, the users alice and bob, and the group
// team@example.com of both, through the API.
func setupMail(t *testing.T, s *Server) {
	t.Helper()
	tok := login(t, s, s.Admin, s.Pass)
	for _, r := range []struct{ path, body string }{
		{"/api/v1/domains", `{"name":"example.com"}`},
		{"/api/v1/users", `{"email":"alice@example.com","password":"alice-secret-1"}`},
		{"/api/v1/users", `{"email":"bob@example.com","password":"bob-secret-12"}`},
		{"/api/v1/groups", `{"email":"team@example.com","members":["alice@example.com","bob@example.com"]}`},
	} {
		if st := postJSON(t, s, r.path, tok, r.body); st != 201 {
			t.Fatalf("POST %s %s: %d", r.path, r.body, st)
		}
	}
}

// seedSend is the seed document's smtplib example, pointed at mailgate: implicit
// TLS, login, a MIMEMultipart with a UTF-8 subject, a text part and a binary
// attachment, sent to a user and to a group. It prints the sent message.
const seedSend = `
import smtplib, ssl, sys
from email.header import Header
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart
from email.mime.application import MIMEApplication

host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
server = smtplib.SMTP_SSL(host=host, port=int(port), timeout=10, context=ctx)
server.login("alice@example.com", "alice-secret-1")
email = MIMEMultipart()
email["From"] = Header("python smtplib", "utf-8")
email["To"] = Header("Leo", "utf-8")
email["Subject"] = Header("这是一封测试邮件", "utf-8")
email.attach(MIMEText("Python邮件发送测试...", "plain", "utf-8"))
attachment = MIMEApplication(bytes(range(256)) * 40)
attachment.add_header("Content-Disposition", "attachment", filename="1.jpg")
email.attach(attachment)
try:
    sender = "alice@example.com"
    server.sendmail(sender, sys.argv[2].split(","), email.as_string())
finally:
    server.quit()
sys.stdout.write(email.as_string())
`

// seedFetch is the seed document's poplib example: list, retr of every message,
// dele, quit. It prints each retrieved message, separated by a marker line.
const seedFetch = `
import poplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
server = poplib.POP3_SSL(host=host, port=int(port), timeout=10, context=ctx)
server.user(sys.argv[2])
server.pass_(sys.argv[3])
res, _list, octets = server.list()
for item in _list:
    n = int(item.split()[0])
    res, raw_data, octets = server.retr(n)
    sys.stdout.write("=====MESSAGE=====\n")
    sys.stdout.write("\r\n".join(l.decode("utf-8", "surrogateescape") for l in raw_data) + "\r\n")
    if sys.argv[4] == "dele":
        server.dele(n)
server.quit()
`

// TestSeedSmtplibAndPoplib runs the seed's client code against mailgate: what
// smtplib sends to a user and a group, both users retrieve with poplib, byte for
// byte after the trace headers, and delete; a second look finds nothing.
func TestSeedSmtplibAndPoplib(t *testing.T) {
	s := Start(t, nil)
	setupMail(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sent := python(t, ctx, seedSend, s.Addr["submissions"], "bob@example.com,team@example.com")
	sent = strings.ReplaceAll(sent, "\r\n", "\n")
	for _, who := range []struct{ user, pass string }{{"alice@example.com", "alice-secret-1"}, {"bob@example.com", "bob-secret-12"}} {
		out := python(t, ctx, seedFetch, s.Addr["pop3s"], who.user, who.pass, "dele")
		msgs := strings.Split(out, "=====MESSAGE=====\n")[1:]
		if len(msgs) != 1 {
			t.Fatalf("%s has %d messages, want 1 (the group and the direct copy are one message):\n%s", who.user, len(msgs), out)
		}
		got := strings.ReplaceAll(msgs[0], "\r\n", "\n")
		if !strings.HasPrefix(got, "Return-Path: <alice@example.com>\nReceived: from ") {
			t.Fatalf("%s: trace headers missing:\n%.300s", who.user, got)
		}
		// After Return-Path and the (folded) Received field comes the sent message.
		idx := strings.Index(got, sent[:40])
		if idx < 0 || got[idx:] != sent {
			t.Fatalf("%s: retrieved message differs from the sent one after the trace headers", who.user)
		}
		again := python(t, ctx, seedFetch, s.Addr["pop3s"], who.user, who.pass, "keep")
		if strings.Contains(again, "=====MESSAGE=====") {
			t.Fatalf("%s: messages left after dele+quit", who.user)
		}
	}
}

// TestNoOpenRelay: a stranger cannot relay to a domain not hosted here on any
// SMTP port, while mail for a local user is accepted on port 25.
func TestNoOpenRelay(t *testing.T) {
	s := Start(t, nil)
	setupMail(t, s)
	swaks := requireTool(t, "swaks", "swaks")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cases := []struct {
		port, want string
		tls        []string
	}{
		{s.Addr["smtp"], "554 5.7.1", nil},
		{s.Addr["submission"], "530 5.7.0", []string{"--tls"}},
		{s.Addr["submissions"], "530 5.7.0", []string{"--tlsc"}},
	}
	for _, c := range cases {
		args := append([]string{"--server", c.port, "--from", "spammer@evil.example", "--to", "victim@elsewhere.example",
			"--helo", "evil.example", "--timeout", "10"}, c.tls...)
		out := run(t, ctx, swaks, args...)
		if !strings.Contains(out, c.want) {
			t.Errorf("relay attempt on %s: want %q in:\n%s", c.port, c.want, out)
		}
	}
	out := run(t, ctx, swaks, "--server", s.Addr["smtp"], "--from", "friend@elsewhere.example", "--to", "bob@example.com", "--timeout", "10")
	if !strings.Contains(out, "250 2.0.0") {
		t.Fatalf("inbound mail for a local user refused:\n%s", out)
	}
}
