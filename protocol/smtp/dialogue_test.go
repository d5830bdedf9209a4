package smtp_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/protocol/smtp"
	"github.com/mailgate/mailgate/protocol/wire"
)

// body returns DATA content ending with the terminating dot line (send adds
// the final CRLF).
func body(header string, size int) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\r\n")
	for b.Len() < size {
		b.WriteString(strings.Repeat("0123456789", 9) + "\r\n")
	}
	b.WriteString(".")
	return b.String()
}

var alicePlain = plainAuth("alice@"+domain, password)

func TestCapabilities(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission, MaxMessageBytes: 12345})
	c := dial(t, addr, false)
	caps := c.cmd("EHLO client.test", "250 ")
	for _, want := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "SIZE 12345", "STARTTLS", "AUTH PLAIN LOGIN"} {
		if !strings.Contains(caps, want) {
			t.Errorf("EHLO reply lacks %s:\n%s", want, caps)
		}
	}
	c.run([]step{{"STARTTLS", "220 "}})
	caps = c.cmd("EHLO client.test", "250 ")
	if strings.Contains(caps, "STARTTLS") || !strings.Contains(caps, "AUTH PLAIN LOGIN") {
		t.Errorf("EHLO over TLS:\n%s", caps)
	}
}

// TestNoOpenRelay: an unauthenticated client relays to no other domain on any
// port; an authenticated one may.
func TestNoOpenRelay(t *testing.T) {
	e := newEnv(t)
	mta, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	sub, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission})
	subs, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmissions})

	t.Run("mta", func(t *testing.T) {
		dial(t, mta, false).run([]step{
			{"EHLO client.test", "250 "},
			{"MAIL FROM:<someone@remote.test>", "250 "},
			{"RCPT TO:<x@elsewhere.test>", "554 5.7.1 "},
			{"RCPT TO:<Postmaster@elsewhere.test>", "554 5.7.1 "},
			{"RCPT TO:<x@elsewhere.test> NOTIFY=NEVER", "504 "},
			{"DATA", "502 5.5.1 "}, // nobody accepted
			{"STARTTLS", "220 "},
			{"EHLO client.test", "250 "},
			{"MAIL FROM:<someone@remote.test>", "250 "},
			{"RCPT TO:<x@elsewhere.test>", "554 5.7.1 "},
			{"QUIT", "221 "},
		})
	})
	for name, s := range map[string]struct {
		addr string
		tls  bool
	}{"submission": {sub, false}, "submissions": {subs, true}} {
		t.Run(name, func(t *testing.T) {
			dial(t, s.addr, s.tls).run([]step{
				{"EHLO client.test", "250 "},
				{"MAIL FROM:<alice@example.test>", "530 5.7.0 "},
				{"MAIL FROM:<someone@remote.test>", "530 5.7.0 "},
				{"RCPT TO:<x@elsewhere.test>", "502 5.5.1 "},
				{"DATA", "502 5.5.1 "},
				{"QUIT", "221 "},
			})
		})
	}
	t.Run("submission-after-starttls", func(t *testing.T) {
		dial(t, sub, false).run([]step{
			{"EHLO client.test", "250 "},
			{"STARTTLS", "220 "},
			{"EHLO client.test", "250 "},
			{"MAIL FROM:<alice@example.test>", "530 5.7.0 "},
			{"RCPT TO:<x@elsewhere.test>", "502 5.5.1 "},
		})
	})
	// Authenticated, every port relays (the queue takes it from there).
	for name, s := range map[string]struct {
		addr     string
		tls      bool
		starttls bool
	}{"mta": {mta, false, false}, "submission": {sub, false, true}, "submissions": {subs, true, false}} {
		t.Run(name+"-authenticated", func(t *testing.T) {
			c := dial(t, s.addr, s.tls)
			c.cmd("EHLO client.test", "250 ")
			if s.starttls {
				c.run([]step{{"STARTTLS", "220 "}, {"EHLO client.test", "250 "}})
			}
			c.run([]step{
				{alicePlain, "235 "},
				{"MAIL FROM:<alice@example.test>", "250 "},
				{"RCPT TO:<x@elsewhere.test>", "250 "},
				{"RCPT TO:<bob@example.test>", "250 "},
				{"DATA", "354 "},
				{body("From: alice@example.test\r\nSubject: out", 100), "250 2.0.0 "},
				{"QUIT", "221 "},
			})
		})
	}
	if n := len(e.inbox("bob@" + domain)); n != 3 {
		t.Errorf("bob holds %d messages, want 3 (one per authenticated port)", n)
	}
}

func TestRecipientRefusals(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA, MaxRecipients: 3, MaxMessageBytes: 2000})
	dial(t, addr, false).run([]step{
		{"FOO", "500 5.5.2 "}, // unrecognized, whatever its length (RFC 5321 §4.2.4)
		{"FOOBAR", "500 5.5.2 "},
		{"XYZW arg", "500 5.5.2 "},
		{"MAILFROM:<a@b.test>", "500 5.5.2 "},
		{"MAIL FROM:<someone@remote.test>", "502 5.5.1 "}, // no greeting yet
		{"HELO", "501 "},
		{"EHLO client.test", "250 "},
		{"RCPT TO:<alice@example.test>", "502 5.5.1 "}, // no MAIL yet
		{"MAIL FROM:<a>", "501 5.5.2 "},
		{"MAIL FROM:<x@bad_domain>", "501 5.1.7 "},
		{"MAIL FROM:<someone@remote.test> SIZE=5000", "552 5.3.4 "},
		{"MAIL FROM:<someone@remote.test> SIZE=abc", "501 5.5.4 "},
		{"MAIL FROM:<someone@remote.test> FOO=BAR", "500 5.5.4 "},
		{"MAIL FROM:<someone@remote.test> BODY=8BITMIME SMTPUTF8", "250 "},
		{"RCPT TO:<bad@bad_domain>", "501 5.1.3 "},
		{"RCPT TO:<nobody@example.test>", "550 5.1.1 "},
		{"RCPT TO:<gone@example.test>", "550 5.2.1 "},
		{"RCPT TO:<full@example.test>", "452 4.2.2 "},
		{"RCPT TO:<x@elsewhere.test>", "554 5.7.1 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"RCPT TO:<bob@example.test>", "250 "},
		{"RCPT TO:<team@example.test>", "250 "},
		{"RCPT TO:<dave@example.test>", "452 4.5.3 "},
		{"DATA", "354 "},
		{body("Subject: too big", 2500), "552 5.3.4 "},
		{"NOOP", "250 "}, // the session goes on
		{"VRFY alice", "252 "},
		{"DATA", "502 5.5.1 "}, // the transaction ended with the refusal
		{"MAIL FROM:<>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"RSET", "250 "},
		{"DATA", "502 5.5.1 "},
		{"QUIT", "221 "},
	})
	if n := len(e.inbox("alice@" + domain)); n != 0 {
		t.Errorf("alice holds %d messages after only refusals", n)
	}
}

func TestOverlongLines(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	c := dial(t, addr, false)
	c.cmd("EHLO client.test", "250 ")
	c.cmd("NOOP "+strings.Repeat("x", 3000), "500 5.4.0 ")
	if rep, err := c.readReply(); err == nil {
		t.Fatalf("connection still open after an over-long command line: %q", rep)
	}

	c = dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
	})
	c.send("Subject: long\r\n\r\n" + strings.Repeat("y", 3000) + "\r\n.")
	c.expect("500 5.5.2 ")
	if n := len(e.inbox("alice@" + domain)); n != 0 {
		t.Errorf("a message with an over-long line was stored")
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	dial(t, addr, false).run([]step{
		{"EHLO client.test", "250 "},
		// tight's mailbox is empty, so RCPT passes; the message is then too big.
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<tight@example.test>", "250 "},
		{"DATA", "354 "},
		{body("Subject: big", 1000), "452 4.2.2 "},
		// With another recipient, the others still get it.
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<tight@example.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
		{body("Subject: big", 1000), "250 "},
		// A small one fits.
		{"MAIL FROM:<someone@remote.test> SIZE=200", "250 "},
		{"RCPT TO:<tight@example.test>", "250 "},
		{"DATA", "354 "},
		{"Subject: small\r\n\r\nhi\r\n.", "250 "},
	})
	if n := len(e.inbox("tight@" + domain)); n != 1 {
		t.Errorf("tight holds %d messages, want 1 (the small one)", n)
	}
	if n := len(e.inbox("alice@" + domain)); n != 1 {
		t.Errorf("alice holds %d messages, want 1", n)
	}
}

func TestSenderRules(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission})
	c := dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"STARTTLS", "220 "},
		{"EHLO client.test", "250 "},
		{alicePlain, "235 "},
		{"MAIL FROM:<bob@example.test>", "553 5.7.1 "},
		{"MAIL FROM:<>", "553 5.7.1 "},
		{"MAIL FROM:<team@example.test>", "553 5.7.1 "}, // alice is not in team
		{"MAIL FROM:<someone@remote.test>", "553 5.7.1 "},
		{"MAIL FROM:<x@bad_domain>", "501 5.1.7 "},
		{"MAIL FROM:<Staff@Example.TEST>", "250 "}, // a group alice is in
		{"RCPT TO:<bob@example.test>", "250 "},
		{"DATA", "354 "},
		{body("From: Bob <bob@example.test>\r\nSubject: forged", 10), "553 5.7.1 "},
	})
	refused := []string{
		"From: alice@example.test\r\nFrom: bob@example.test",                // a second From
		"From: Alice <bob@example.test",                                     // unparsable, with an address
		"From: =?utf-8?q?bob=40example.test?=",                              // an address hidden in a word
		"From: alice@example.test,\r\n bob@example.test",                    // folded list
		"Subject: x\r\nFROM : bob@example.test",                             // obsolete spacing
		"From: alice@example.test\r\nbroken line\r\nFrom: bob@example.test", // after a non-field line
	}
	for _, h := range refused {
		c.run([]step{
			{"MAIL FROM:<alice@example.test>", "250 "},
			{"RCPT TO:<bob@example.test>", "250 "},
			{"DATA", "354 "},
			{body(h+"\r\nSubject: forged", 10), "553 5.7.1 "},
		})
	}
	accepted := []string{
		"From: =?utf-8?b?cHl0aG9uIHNtdHBsaWI=?=", // a bare display name, as the seed sends
		"From: \"Staff\" <staff@example.test>",   // a group alice is in
		"From: =?utf-8?q?Al=C3=AFce?= <ALICE@example.test>",
		"Subject: no From at all",
	}
	for _, h := range accepted {
		c.run([]step{
			{"MAIL FROM:<alice@example.test>", "250 "},
			{"RCPT TO:<bob@example.test>", "250 "},
			{"DATA", "354 "},
			{body(h, 10), "250 "},
		})
	}
	if n := len(e.inbox("bob@" + domain)); n != len(accepted) {
		t.Errorf("bob holds %d messages, want %d", n, len(accepted))
	}
}

func TestAuthDialogue(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	c := dial(t, addr, false)
	// At most three failed logins per connection: the third is answered 421
	// and the connection closed.
	c.run([]step{
		{"AUTH PLAIN", "502 5.5.1 "}, // no greeting yet
		{"EHLO client.test", "250 "},
		{plainAuth("alice@"+domain, "wrong password"), "535 5.7.8 "},
		{plainAuth("nobody@"+domain, password), "535 5.7.8 "},
		{plainAuth("gone@"+domain, password), "421 4.7.0 "},
	})
	if rep, err := c.readReply(); !errors.Is(err, io.EOF) {
		t.Errorf("after the third failure: %q %v, want the connection closed", rep, err)
	}
	c = dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"AUTH PLAIN " + b64("bob@example.test\x00alice@example.test\x00"+password), "535 5.7.8 "}, // acting for another
		{"AUTH CRAM-MD5", "504 5.5.4 "},
		{"AUTH PLAIN !!notbase64", "454 4.7.0 "},
		{"AUTH PLAIN " + b64("no separators"), "501 5.5.2 "},
		{"AUTH PLAIN " + b64("\x00alice@"+domain+"\x00"+strings.Repeat("p", 1025)), "421 4.7.0 "}, // oversize: a third failure
	})
	c = dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"AUTH LOGIN", "334 " + b64("Username:")},
		{b64("alice@" + domain), "334 " + b64("Password:")},
		{b64("wrong password"), "535 5.7.8 "},
		{"AUTH LOGIN", "334 "},
		{"*", "501 "},
		{"AUTH PLAIN", "334 "},
		{b64("\x00alice@" + domain + "\x00" + password), "235 "},
		{alicePlain, "503 5.5.1 "},
	})
	c = dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"AUTH LOGIN " + b64("alice@"+domain), "334 " + b64("Password:")},
		{b64(password), "235 "},
		{"MAIL FROM:<alice@example.test>", "250 "},
	})
	if strings.Contains(e.logs.String(), password) || strings.Contains(e.logs.String(), b64(password)) {
		t.Errorf("a password reached the log")
	}
}

// TestAuthNeedsTLS: a remote peer is offered AUTH only over TLS.
func TestAuthNeedsTLS(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission, Policy: wire.Policy{DistrustLoopback: true}})
	c := dial(t, addr, false)
	if caps := c.cmd("EHLO client.test", "250 "); strings.Contains(caps, "AUTH") {
		t.Errorf("AUTH offered in plaintext:\n%s", caps)
	}
	c.run([]step{
		{alicePlain, "538 5.7.11 "},
		{"AUTH LOGIN", "538 5.7.11 "},
		{"STARTTLS", "220 "},
	})
	if caps := c.cmd("EHLO client.test", "250 "); !strings.Contains(caps, "AUTH PLAIN LOGIN") {
		t.Errorf("AUTH not offered over TLS:\n%s", caps)
	}
	c.cmd(alicePlain, "235 ")

	insecure, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission, Policy: wire.Policy{AllowInsecureAuth: true, DistrustLoopback: true}})
	c = dial(t, insecure, false)
	if caps := c.cmd("EHLO client.test", "250 "); !strings.Contains(caps, "AUTH PLAIN LOGIN") {
		t.Errorf("AllowInsecureAuth: AUTH not offered:\n%s", caps)
	}
	c.cmd(alicePlain, "235 ")
}

// TestGroupDelivery: a group and a member in one message give each member one
// copy, all sharing one stored content; Received says "for" only with one
// recipient.
func TestGroupDelivery(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	msg := "From: someone@remote.test\r\nSubject: to the team\r\n\r\nhello team\r\n"
	dial(t, addr, false).run([]step{
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<team@example.test>", "250 "},
		{"RCPT TO:<bob@example.test>", "250 "},
		{"RCPT TO:<Team@Example.test>", "250 "},
		{"DATA", "354 "},
		{msg + ".", "250 2.0.0 OK: queued as "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<carol@example.test>", "250 "},
		{"DATA", "354 "},
		{msg + ".", "250 "},
	})
	bob, carol := e.inbox("bob@"+domain), e.inbox("carol@"+domain)
	if len(bob) != 1 || len(carol) != 2 {
		t.Fatalf("bob holds %d, carol %d messages; want 1 and 2", len(bob), len(carol))
	}
	if bob[0].msg.ContentID != carol[0].msg.ContentID {
		t.Errorf("group copies do not share their content: %d and %d", bob[0].msg.ContentID, carol[0].msg.ContentID)
	}
	for i, s := range []stored{bob[0], carol[1]} {
		rp, rcv, rest := splitTrace(t, s.raw)
		if rp != "Return-Path: <someone@remote.test>" || string(rest) != msg {
			t.Errorf("message %d: %q / %q", i, rp, rest)
		}
		wantFor := i == 1
		if strings.Contains(rcv, "for <carol@example.test>") != wantFor || strings.Contains(rcv, "for <team") {
			t.Errorf("message %d Received: %q", i, rcv)
		}
		if !strings.HasPrefix(rcv, "Received: from client.test ([127.0.0.1])\r\n\tby mx.example.test with ESMTP id ") {
			t.Errorf("message %d Received: %q", i, rcv)
		}
	}
}

func TestReceivedProtocols(t *testing.T) {
	e := newEnv(t)
	sub, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission})
	subs, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmissions})
	c := dial(t, sub, false)
	c.run([]step{{"EHLO client.test", "250 "}, {"STARTTLS", "220 "}, {"EHLO client.test", "250 "}})
	sendOne(c, true)
	c = dial(t, subs, true)
	c.cmd("EHLO client.test", "250 ")
	sendOne(c, true)
	got := e.inbox("bob@" + domain)
	if len(got) != 2 {
		t.Fatalf("bob holds %d messages", len(got))
	}
	for _, s := range got {
		_, rcv, _ := splitTrace(t, s.raw)
		if !strings.Contains(rcv, " with ESMTPSA id ") {
			t.Errorf("Received over TLS with AUTH: %q", rcv)
		}
	}
}

// sendOne authenticates as alice (if auth) and sends one message to bob.
func sendOne(c *client, auth bool) {
	c.t.Helper()
	if auth {
		c.cmd(alicePlain, "235 ")
	}
	c.run([]step{
		{"MAIL FROM:<alice@example.test>", "250 "},
		{"RCPT TO:<bob@example.test>", "250 "},
		{"DATA", "354 "},
		{fmt.Sprintf("From: alice@example.test\r\nSubject: %d\r\n\r\nhi\r\n.", len(c.t.Name())), "250 "},
	})
}

// TestMailAuthParam: MAIL's AUTH= takes the address bare, in angle brackets
// (as curl --mail-auth sends it) or <> (RFC 4954 §5).
func TestMailAuthParam(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission})
	c := dial(t, addr, false)
	c.run([]step{{"EHLO client.test", "250 "}, {alicePlain, "235 "}})
	for _, param := range []string{"AUTH=<alice@example.test>", "AUTH=alice@example.test", "AUTH=<>", "auth=<alice@example.test> SIZE=100"} {
		c.run([]step{
			{"MAIL FROM:<alice@example.test> " + param, "250 "},
			{"RSET", "250 "},
		})
	}
	c.cmd("MAIL FROM:<alice@example.test> AUTH=<no-at-sign>", "500 5.5.4 ")
}

// TestStartTLSResets: STARTTLS is advertised until TLS is on; whatever the
// client pipelined after it in the clear is dropped, and nothing said before
// TLS (greeting, login, transaction) survives it (RFC 3207 §4.2).
func TestStartTLSResets(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission})
	c := dial(t, addr, false)
	if caps := c.cmd("EHLO client.test", "250 "); !strings.Contains(caps, "STARTTLS") {
		t.Fatalf("STARTTLS not offered:\n%s", caps)
	}
	c.cmd(alicePlain, "235 ") // loopback may log in without TLS
	c.cmd("MAIL FROM:<alice@example.test>", "250 ")
	c.cmd("STARTTLS extra", "501 ")
	// STARTTLS and, in the same packet, a command an attacker slipped in.
	c.send("STARTTLS\r\nRSET")
	c.expect("220 ")
	c.startTLS()
	c.run([]step{
		{"MAIL FROM:<alice@example.test>", "502 5.5.1 "}, // no greeting since TLS
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<alice@example.test>", "530 "}, // the login did not survive
		{"STARTTLS", "503 "},
		{alicePlain, "235 "},
	})
	if caps := c.cmd("EHLO client.test", "250 "); strings.Contains(caps, "STARTTLS") {
		t.Errorf("STARTTLS offered under TLS:\n%s", caps)
	}
}

// TestBodyNotFiltered: lines of a message that look like commands reach the
// mailbox as sent, through DATA and BDAT.
func TestBodyNotFiltered(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	c := dial(t, addr, false)
	body := "Subject: commands\r\n\r\nFOOBAR\r\nMAIL FROM:<a@b.test> AUTH=<a@b.test>\r\nSTARTTLS\r\n"
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
		{body + ".", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
	})
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body[:len(body)-2]))
	c.expect("250 ")
	got := e.inbox("alice@" + domain)
	if len(got) != 2 {
		t.Fatalf("alice holds %d messages", len(got))
	}
	for _, m := range got {
		if _, _, rest := splitTrace(t, m.raw); string(rest) != body {
			t.Errorf("stored %q, want %q", rest, body)
		}
	}
}
