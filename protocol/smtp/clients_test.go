package smtp_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/protocol/smtp"
	"github.com/mailgate/mailgate/protocol/wire"
)

// seedScript does what the project's seed document does with smtplib
// (/work/shared/seeds): SMTP_SSL, login, a MIMEMultipart with a UTF-8 subject
// through email.header.Header, a text part and a binary attachment, sendmail.
// It also writes the exact bytes smtplib puts on the wire (CRLF line ends, a
// final CRLF), dot-stuffing aside, so the test can compare what was stored.
const seedScript = `
import re, smtplib, sys
from email.header import Header
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart
from email.mime.application import MIMEApplication

host, port, user, password, out = sys.argv[1:6]
receivers = sys.argv[6:]
server = smtplib.SMTP_SSL(host=host, port=int(port), timeout=10)
server.login(user, password)

email = MIMEMultipart()
email["From"] = Header("python smtplib", "utf-8")
email["To"] = Header("Leo", "utf-8")
email["Subject"] = Header("这是一封测试邮件", "utf-8")
email.attach(MIMEText("Python邮件发送测试...\n.\n..leading dots\n", "plain", "utf-8"))
attachment = MIMEApplication(bytes(range(256)) * 64)
attachment.add_header("Content-Disposition", "attachment", filename="1.jpg")
email.attach(attachment)

text = email.as_string()
wire = re.sub(r"(?:\r\n|\n|\r(?!\n))", "\r\n", text).encode("ascii")
if not wire.endswith(b"\r\n"):
    wire += b"\r\n"
with open(out, "wb") as f:
    f.write(wire)
try:
    server.sendmail(user, receivers, text)
finally:
    server.quit()
`

func TestPythonSeed(t *testing.T) {
	python := needTool(t, "python3", "python3")
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmissions})
	host, port, _ := net.SplitHostPort(addr)
	sent := filepath.Join(t.TempDir(), "sent.eml")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", seedScript, host, port, "alice@"+domain, password, sent,
		"dave@"+domain, "team@"+domain)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	want, err := os.ReadFile(sent)
	if err != nil {
		t.Fatal(err)
	}
	var contentID int64
	for _, rcpt := range []string{"dave", "bob", "carol"} {
		got := e.inbox(rcpt + "@" + domain)
		if len(got) != 1 {
			t.Fatalf("%s holds %d messages, want 1", rcpt, len(got))
		}
		rp, rcv, rest := splitTrace(t, got[0].raw)
		if rp != "Return-Path: <alice@example.test>" {
			t.Errorf("%s: %s", rcpt, rp)
		}
		if !strings.Contains(rcv, " with ESMTPSA id ") || strings.Contains(rcv, " for <") {
			t.Errorf("%s: Received: %q", rcpt, rcv)
		}
		if !bytes.Equal(rest, want) {
			t.Errorf("%s: stored message differs from the sent one (%d vs %d bytes)", rcpt, len(rest), len(want))
		}
		if m := got[0].msg; m.Subject != "这是一封测试邮件" || !m.HasAttachments {
			t.Errorf("%s: subject %q, attachments %v", rcpt, m.Subject, m.HasAttachments)
		}
		if contentID == 0 {
			contentID = got[0].msg.ContentID
		} else if got[0].msg.ContentID != contentID {
			t.Errorf("%s: content %d, others %d: not shared", rcpt, got[0].msg.ContentID, contentID)
		}
	}
	if n := len(e.inbox("alice@" + domain)); n != 0 {
		t.Errorf("the sender got %d copies", n)
	}
}

// swaks runs swaks with args and returns its output and exit code.
func swaks(t *testing.T, addr string, args ...string) (string, int) {
	t.Helper()
	bin := needTool(t, "swaks", "swaks")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", host, "--port", port, "--timeout", "20"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("swaks: %v", err)
	}
	return string(out), code
}

func TestSwaks(t *testing.T) {
	e := newEnv(t)
	mta, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	sub, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission, Policy: wire.Policy{DistrustLoopback: true}})
	subs, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmissions})
	login := []string{"--auth-user", "alice@" + domain, "--auth-password", password, "--from", "alice@" + domain}

	accepted := []struct {
		name, addr string
		args       []string
	}{
		{"starttls-plain", sub, append([]string{"--tls", "--auth", "PLAIN", "--to", "bob@" + domain}, login...)},
		{"starttls-login", sub, append([]string{"--tls", "--auth", "LOGIN", "--to", "bob@" + domain}, login...)},
		{"starttls-pipeline", sub, append([]string{"--tls", "--auth", "PLAIN", "--pipeline", "--to", "bob@" + domain + ",team@" + domain}, login...)},
		{"implicit-tls", subs, append([]string{"--tls-on-connect", "--auth", "LOGIN", "--to", "bob@" + domain}, login...)},
		{"mta-pipeline", mta, []string{"--pipeline", "--from", "someone@remote.test", "--to", "bob@" + domain + ",nobody@" + domain}},
	}
	for _, c := range accepted {
		out, code := swaks(t, c.addr, c.args...)
		if code != 0 || !strings.Contains(out, "250 2.0.0 OK: queued as ") {
			t.Errorf("%s: exit %d\n%s", c.name, code, out)
		}
	}
	if n := len(e.inbox("bob@" + domain)); n != len(accepted) {
		t.Errorf("bob holds %d messages, want %d", n, len(accepted))
	}
	if n := len(e.inbox("carol@" + domain)); n != 1 {
		t.Errorf("carol holds %d messages, want 1 (through team)", n)
	}

	refused := []struct {
		name, addr string
		args       []string
		reply      string
	}{
		{"mta-relay", mta, []string{"--from", "someone@remote.test", "--to", "x@elsewhere.test"}, "554 5.7.1"},
		{"mta-relay-pipeline", mta, []string{"--pipeline", "--from", "someone@remote.test", "--to", "x@elsewhere.test"}, "554 5.7.1"},
		{"submission-no-auth", sub, []string{"--tls", "--from", "alice@" + domain, "--to", "x@elsewhere.test"}, "530 5.7.0"},
		{"submissions-no-auth", subs, []string{"--tls-on-connect", "--from", "alice@" + domain, "--to", "x@elsewhere.test"}, "530 5.7.0"},
		{"plaintext-auth", sub, append([]string{"--auth", "PLAIN", "--to", "bob@" + domain}, login...), "did not advertise authentication"},
		{"bad-password", sub, []string{"--tls", "--auth", "LOGIN", "--auth-user", "alice@" + domain, "--auth-password", "nope nope nope", "--to", "bob@" + domain}, "535 5.7.8"},
		{"forged-sender", sub, append([]string{"--tls", "--auth", "PLAIN", "--to", "bob@" + domain, "--from", "bob@" + domain}, login[:4]...), "553 5.7.1"},
		{"forged-from-header", sub, append([]string{"--tls", "--auth", "PLAIN", "--to", "bob@" + domain, "--h-From", "bob@" + domain}, login...), "553 5.7.1"},
		{"unknown-user", mta, []string{"--from", "someone@remote.test", "--to", "nobody@" + domain}, "550 5.1.1"},
		{"disabled-user", mta, []string{"--from", "someone@remote.test", "--to", "gone@" + domain}, "550 5.2.1"},
		{"over-quota", mta, []string{"--from", "someone@remote.test", "--to", "full@" + domain}, "452 4.2.2"},
	}
	for _, c := range refused {
		out, code := swaks(t, c.addr, c.args...)
		if code == 0 || !strings.Contains(out, c.reply) {
			t.Errorf("%s: exit %d, want a failure with %q\n%s", c.name, code, c.reply, out)
		}
	}
	if n := len(e.inbox("bob@" + domain)); n != len(accepted) {
		t.Errorf("bob holds %d messages after refusals, want %d", n, len(accepted))
	}
}

func TestCurl(t *testing.T) {
	curl := needTool(t, "curl", "curl")
	e := newEnv(t)
	sub, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission})
	subs, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmissions})
	mta, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	msg := "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: curl\r\n\r\nsent by curl\r\n.leading dot\r\n"
	file := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(url string, extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := append([]string{"-sS", "--insecure", "--url", url, "--mail-from", "alice@" + domain,
			"--mail-rcpt", "bob@" + domain, "--upload-file", file}, extra...)
		out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
		return string(out), err
	}
	userpw := "alice@" + domain + ":" + password
	if out, err := run("smtp://"+sub, "--ssl-reqd", "--user", userpw); err != nil {
		t.Fatalf("curl smtp:// --ssl-reqd: %v\n%s", err, out)
	}
	if out, err := run("smtps://"+subs, "--user", userpw); err != nil {
		t.Fatalf("curl smtps://: %v\n%s", err, out)
	}
	// --mail-auth sends MAIL FROM:<…> AUTH=<…>: the address in angle brackets.
	if out, err := run("smtp://"+sub, "--ssl-reqd", "--user", userpw, "--mail-auth", "alice@"+domain); err != nil {
		t.Fatalf("curl --mail-auth: %v\n%s", err, out)
	}
	if out, err := run("smtp://" + sub); err == nil || !strings.Contains(out, "530") {
		t.Errorf("curl without login on submission: %v\n%s", err, out)
	}
	got := e.inbox("bob@" + domain)
	if len(got) != 3 {
		t.Fatalf("bob holds %d messages, want 3", len(got))
	}
	for _, s := range got {
		if _, _, rest := splitTrace(t, s.raw); string(rest) != msg {
			t.Errorf("stored %q, want %q", rest, msg)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--url", "smtp://"+mta, "--mail-from", "someone@remote.test",
		"--mail-rcpt", "x@elsewhere.test", "--upload-file", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "554") {
		t.Errorf("curl relaying through the MTA port: %v\n%s", err, out)
	}
}
