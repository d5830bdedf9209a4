package queue_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/queue"
)

const lifetime = time.Hour

func body(subject, text string) string {
	return "From: Alice <alice@local.test>\r\nTo: bob@remote.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@local.test>\r\n\r\n" + text
}

func TestRelaySuccess(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, nil)
	// A line starting with a dot must survive dot-stuffing; 8-bit text must pass.
	msg := body("hello", "line one\r\n.leading dot\r\nGrüße\r\n..two dots\r\n")
	e.send(t, msg, "bob@remote.test")
	es := e.queued(t)
	if len(es) != 1 {
		t.Fatalf("queued %d entries, want 1", len(es))
	}
	c, err := e.mbox.Content(context.Background(), es[0].ContentID)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(e.mbox.Open(context.Background(), c, 0))
	if err != nil {
		t.Fatal(err)
	}

	e.run(t, options(t, route(t, "remote.test", r.addr)))
	waitFor(t, "the message at the receiver", 10*time.Second, func() bool { return len(r.messages()) == 1 })
	got := r.messages()[0]
	if !bytes.Equal(got.data, stored) || string(stored) != msg {
		t.Fatalf("received %q\nstored %q\nsent %q", got.data, stored, msg)
	}
	if got.from != "alice@local.test" || len(got.rcpts) != 1 || got.rcpts[0] != "bob@remote.test" || got.tls {
		t.Fatalf("envelope = %+v", got)
	}
	waitFor(t, "the entry to leave the queue", 10*time.Second, func() bool { return len(e.queued(t)) == 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.helos {
		if h != ourHost {
			t.Errorf("EHLO %q, want %q", h, ourHost)
		}
	}
}

func TestRelayReceiverDownThenUp(t *testing.T) {
	e := newEnv(t, lifetime)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens: connections are refused
	e.send(t, body("later", "wait for me\r\n"), "bob@remote.test")
	e.run(t, options(t, route(t, "remote.test", addr)))
	waitFor(t, "two failed attempts", 10*time.Second, func() bool {
		es := e.queued(t)
		return len(es) == 1 && es[0].Attempts >= 2 && strings.Contains(es[0].LastError, "connect")
	})
	r := startReceiver(t, addr, nil, nil)
	waitFor(t, "the message after the receiver came back", 10*time.Second, func() bool { return len(r.messages()) == 1 })
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return len(e.queued(t)) == 0 })
	if n := len(e.inbox(t, e.alice)); n != 0 {
		t.Fatalf("alice got %d bounces for a delayed message", n)
	}
}

func TestRelayPermanentFailureBounces(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, func(r *receiver) {
		r.rcptReply = func(string, int) error {
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
		}
	})
	e.send(t, body("doomed", "nobody home\r\n"), "bob@remote.test")
	e.run(t, options(t, route(t, "remote.test", r.addr)))
	var inbox [][]byte
	waitFor(t, "a bounce in alice's INBOX", 10*time.Second, func() bool { inbox = e.inbox(t, e.alice); return len(inbox) > 0 })
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages, want 1 bounce", len(inbox))
	}
	d := parseDSN(t, inbox[0])
	if got := d.header.Get("From"); !strings.Contains(got, "MAILER-DAEMON@"+ourHost) {
		t.Errorf("From = %q", got)
	}
	if got := d.header.Get("Return-Path"); got != "<>" {
		t.Errorf("Return-Path = %q, want <>", got)
	}
	if got := d.header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted = %q", got)
	}
	if got := d.perMessage.Get("Reporting-MTA"); got != "dns; "+ourHost {
		t.Errorf("Reporting-MTA = %q", got)
	}
	if d.perMessage.Get("Arrival-Date") == "" {
		t.Error("no Arrival-Date")
	}
	if len(d.recipients) != 1 {
		t.Fatalf("%d recipient blocks, want 1", len(d.recipients))
	}
	rc := d.recipients[0]
	for field, want := range map[string]string{
		"Final-Recipient": "rfc822; bob@remote.test",
		"Action":          "failed",
		"Status":          "5.1.1",
		"Remote-MTA":      "dns; 127.0.0.1",
		"Diagnostic-Code": "smtp; 550 5.1.1 no such user here",
	} {
		if got := rc.Get(field); got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	if !strings.Contains(d.original, "Subject: doomed") || strings.Contains(d.original, "nobody home") {
		t.Errorf("original headers part = %q", d.original)
	}
	if !strings.Contains(d.human, "bob@remote.test") || !strings.Contains(d.human, "550 5.1.1") {
		t.Errorf("human part = %q", d.human)
	}
	if len(r.messages()) != 0 || len(e.queued(t)) != 0 {
		t.Fatalf("received %d, still queued %d", len(r.messages()), len(e.queued(t)))
	}
}

func TestRelayExpiryBounces(t *testing.T) {
	e := newEnv(t, 2*time.Second) // time for many attempts even on a busy machine
	r := startReceiver(t, "", nil, func(r *receiver) {
		r.rcptReply = func(string, int) error {
			return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
	})
	e.send(t, body("slow", "never accepted\r\n"), "bob@remote.test")
	e.run(t, options(t, route(t, "remote.test", r.addr)))
	var inbox [][]byte
	waitFor(t, "a bounce after expiry", 10*time.Second, func() bool { inbox = e.inbox(t, e.alice); return len(inbox) > 0 })
	d := parseDSN(t, inbox[0])
	rc := d.recipients[0]
	if rc.Get("Action") != "failed" || rc.Get("Status") != "4.3.0" || rc.Get("Diagnostic-Code") != "smtp; 451 4.3.0 try again later" {
		t.Errorf("recipient fields = %v", rc)
	}
	if !strings.Contains(d.human, "gave up") {
		t.Errorf("human part = %q", d.human)
	}
	r.mu.Lock()
	tries := r.tries["bob@remote.test"]
	r.mu.Unlock()
	if tries < 2 {
		t.Errorf("%d attempts before expiry, want several", tries)
	}
	if len(e.queued(t)) != 0 {
		t.Fatal("expired entry still queued")
	}
}

func TestRelayMixedRecipientsOneTransaction(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, func(r *receiver) {
		r.rcptReply = func(rcpt string, try int) error {
			switch {
			case strings.HasPrefix(rcpt, "bad@"):
				return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "unknown"}
			case strings.HasPrefix(rcpt, "busy@") && try == 1:
				return &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "mailbox full for now"}
			}
			return nil
		}
	})
	e.send(t, body("mixed", "three of you\r\n"), "ok@remote.test", "bad@remote.test", "busy@remote.test")
	e.run(t, options(t, route(t, "remote.test", r.addr)))
	waitFor(t, "both good recipients served", 10*time.Second, func() bool {
		c := r.count()
		return c["ok@remote.test"] == 1 && c["busy@remote.test"] == 1
	})
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return len(e.queued(t)) == 0 })
	msgs := r.messages()
	if len(msgs) != 2 || len(msgs[0].rcpts) != 1 || msgs[0].rcpts[0] != "ok@remote.test" {
		t.Fatalf("messages = %+v", msgs)
	}
	r.mu.Lock()
	first := r.txns[0]
	r.mu.Unlock()
	if len(first) != 3 {
		t.Fatalf("first transaction tried %v, want all three recipients", first)
	}
	inbox := e.inbox(t, e.alice)
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages, want 1 bounce", len(inbox))
	}
	d := parseDSN(t, inbox[0])
	if len(d.recipients) != 1 || d.recipients[0].Get("Final-Recipient") != "rfc822; bad@remote.test" {
		t.Fatalf("bounce recipients = %v", d.recipients)
	}
}

// Two instances (two Stores on one database) race over the same 200 entries;
// the receiver must get each exactly once.
func TestRelayTwoInstancesSendOnce(t *testing.T) {
	url := modelstest.URL(t)
	a := setup(t, newInstance(t, url, lifetime))
	b := newInstance(t, url, lifetime)
	r := startReceiver(t, "", nil, nil)
	for i := 0; i < 40; i++ {
		rcpts := make([]string, 5)
		for k := range rcpts {
			rcpts[k] = fmt.Sprintf("r%d-%d@remote.test", i, k)
		}
		a.send(t, body(fmt.Sprint("race", i), "contended\r\n"), rcpts...)
	}
	if n := len(a.queued(t)); n != 200 {
		t.Fatalf("queued %d, want 200", n)
	}
	opt := options(t, route(t, "remote.test", r.addr))
	opt.MaxRecipients = 3 // more, smaller transactions: more contention
	optA, optB := opt, opt
	optA.InstanceID, optB.InstanceID = "a", "b"
	stopA := a.run(t, optA)
	stopB := b.run(t, optB)
	waitFor(t, "200 deliveries", 60*time.Second, func() bool {
		n := 0
		for _, c := range r.count() {
			n += c
		}
		return n >= 200
	})
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return len(a.queued(t)) == 0 })
	stopA()
	stopB() // every delivery under way has finished now
	c := r.count()
	if len(c) != 200 {
		t.Errorf("%d distinct recipients got mail, want 200", len(c))
	}
	for rcpt, n := range c {
		if n != 1 {
			t.Errorf("%s got %d copies", rcpt, n)
		}
	}
}

func TestRelaySTARTTLS(t *testing.T) {
	e := newEnv(t, lifetime)
	cfg, _ := selfSigned(t)
	r := startReceiver(t, "", cfg, nil)
	e.send(t, body("secret", "over TLS\r\n"), "bob@remote.test")
	e.run(t, options(t, route(t, "remote.test", r.addr)))
	waitFor(t, "the message", 10*time.Second, func() bool { return len(r.messages()) == 1 })
	if !r.messages()[0].tls {
		t.Fatal("message was not received over TLS")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// One session before STARTTLS and one after, both greeted with our name.
	if len(r.helos) != 2 || r.helos[0] != ourHost || r.helos[1] != ourHost {
		t.Fatalf("EHLO names = %q, want %q twice", r.helos, ourHost)
	}
}

func TestRelayHostWithAuth(t *testing.T) {
	cfg, pool := selfSigned(t)
	t.Run("tls", func(t *testing.T) {
		e := newEnv(t, lifetime)
		r := startReceiver(t, "", cfg, func(r *receiver) { r.username, r.password = "relayuser", "s3cret" })
		e.send(t, body("via relay", "smarthost\r\n"), "bob@elsewhere.test")
		opt := options(t, nil)
		opt.RelayHost, opt.RelayUsername, opt.RelayPassword = r.addr, "relayuser", "s3cret"
		opt.RelayTLSConfig = &tls.Config{RootCAs: pool}
		e.run(t, opt)
		waitFor(t, "the message at the relay", 10*time.Second, func() bool { return len(r.messages()) == 1 })
		m := r.messages()[0]
		if !m.tls || m.rcpts[0] != "bob@elsewhere.test" {
			t.Fatalf("received %+v", m)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.auths) != 1 || r.auths[0] != "relayuser" {
			t.Fatalf("authentications = %v", r.auths)
		}
	})
	t.Run("no credentials in clear text", func(t *testing.T) {
		e := newEnv(t, lifetime)
		r := startReceiver(t, "", nil, func(r *receiver) { r.username, r.password = "relayuser", "s3cret" })
		e.send(t, body("kept", "not without TLS\r\n"), "bob@elsewhere.test")
		opt := options(t, nil)
		opt.RelayHost, opt.RelayUsername, opt.RelayPassword = r.addr, "relayuser", "s3cret"
		e.run(t, opt)
		waitFor(t, "a deferred attempt", 10*time.Second, func() bool {
			es := e.queued(t)
			return len(es) == 1 && es[0].Attempts >= 1 && strings.Contains(es[0].LastError, "STARTTLS")
		})
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.auths) != 0 || len(r.msgs) != 0 {
			t.Fatalf("relay got auths %v, messages %d", r.auths, len(r.msgs))
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		e := newEnv(t, lifetime)
		r := startReceiver(t, "", cfg, func(r *receiver) { r.username, r.password = "relayuser", "s3cret" })
		e.send(t, body("kept2", "not to an impostor\r\n"), "bob@elsewhere.test")
		opt := options(t, nil)
		opt.RelayHost, opt.RelayUsername, opt.RelayPassword = r.addr, "relayuser", "s3cret"
		e.run(t, opt) // system roots: the self-signed certificate is not trusted
		waitFor(t, "a deferred attempt", 10*time.Second, func() bool {
			es := e.queued(t)
			return len(es) == 1 && es[0].Attempts >= 1 && strings.Contains(es[0].LastError, "TLS handshake")
		})
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.auths) != 0 || len(r.msgs) != 0 {
			t.Fatalf("relay got auths %v, messages %d", r.auths, len(r.msgs))
		}
	})
}

func TestNewRejectsBadRelayHost(t *testing.T) {
	e := newEnv(t, lifetime)
	for _, h := range []string{"host:0", "host:http", "bad host:25", ":25"} {
		if _, err := queue.New(e.store, e.mbox, e.dlv, queue.Options{RelayHost: h}); err == nil {
			t.Errorf("RelayHost %q accepted", h)
		}
	}
}

// A server's reply is arbitrary bytes; it must neither break the record of the
// attempt nor the bounce (PostgreSQL refuses NUL and invalid UTF-8 in text).
func TestRelayGarbageReplies(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, func(r *receiver) {
		r.rcptReply = func(_ string, try int) error {
			if try == 1 {
				return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 0, 0}, Message: "bad\xff\x00\x01bytes"}
			}
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 0, 0}, Message: "worse\xfe\x00bytes"}
		}
	})
	e.send(t, body("garbage", "x\r\n"), "bob@remote.test")
	opt := options(t, route(t, "remote.test", r.addr))
	opt.BackoffBase, opt.BackoffMax = time.Second, time.Second // time to look at the first record
	e.run(t, opt)
	waitFor(t, "the first attempt recorded", 10*time.Second, func() bool {
		es := e.queued(t)
		return len(es) == 1 && strings.Contains(es[0].LastError, "451 4.0.0 bad\uFFFD")
	})
	var inbox [][]byte
	waitFor(t, "the bounce", 10*time.Second, func() bool { inbox = e.inbox(t, e.alice); return len(inbox) == 1 })
	d := parseDSN(t, inbox[0])
	if got := d.recipients[0].Get("Diagnostic-Code"); got != "smtp; 550 5.0.0 worse\uFFFD bytes" {
		t.Fatalf("Diagnostic-Code = %q", got)
	}
}
