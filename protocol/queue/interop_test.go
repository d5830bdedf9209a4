package queue_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pyReceiver is an SMTP server we did not write: Python's smtpd (up to
// Python 3.11) or aiosmtpd. It prints one JSON line per message and refuses,
// after DATA, messages whose subject is "reject-me".
const pyReceiver = `
import sys, json, base64, warnings
warnings.simplefilter("ignore")
port = int(sys.argv[1])
def record(mailfrom, rcpts, data):
    print(json.dumps({"from": mailfrom, "rcpts": rcpts, "data": base64.b64encode(data).decode()}), flush=True)
    if b"Subject: reject-me" in data:
        return "554 5.6.0 content rejected"
    return None
try:
    import smtpd, asyncore
    class Server(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kw):
            return record(mailfrom, rcpttos, data)
    Server(("127.0.0.1", port), None, decode_data=False)
    print("READY", flush=True)
    asyncore.loop()
except ImportError:
    import threading
    from aiosmtpd.controller import Controller
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return record(envelope.mail_from, envelope.rcpt_tos, envelope.original_content) or "250 OK"
    Controller(Handler(), hostname="127.0.0.1", port=port).start()
    print("READY", flush=True)
    threading.Event().wait()
`

type pyMessage struct {
	From  string   `json:"from"`
	Rcpts []string `json:"rcpts"`
	Data  string   `json:"data"`
}

// startPython runs the Python receiver; missing Python fails in CI and skips
// elsewhere, naming the Debian package.
func startPython(t *testing.T) (addr string, msgs <-chan pyMessage) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is missing: install the Debian package python3")
		}
		t.Skip("python3 is missing: install the Debian package python3")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "-c", pyReceiver, port)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() }) //nolint:errcheck // killed
	ready := make(chan struct{})
	ch := make(chan pyMessage, 16)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if sc.Text() == "READY" {
				close(ready)
				continue
			}
			var m pyMessage
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				ch <- m
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		if strings.Contains(stderr.String(), "No module named 'aiosmtpd'") {
			if os.Getenv("CI") != "" {
				t.Fatalf("Python has neither smtpd nor aiosmtpd: install the Debian package python3-aiosmtpd")
			}
			t.Skip("Python has neither smtpd nor aiosmtpd: install the Debian package python3-aiosmtpd")
		}
		t.Fatalf("Python receiver did not start: %s", stderr.String())
	}
	return addr, ch
}

func TestRelayToPythonSMTPServer(t *testing.T) {
	addr, msgs := startPython(t)
	e := newEnv(t, lifetime)
	ok := body("interop", "to a server we did not write\r\n.dot line\r\n")
	e.send(t, ok, "bob@remote.test")
	e.send(t, body("reject-me", "refused after DATA\r\n"), "carol@remote.test")
	e.run(t, options(t, route(t, "remote.test", addr)))

	got := map[string]pyMessage{}
	for len(got) < 2 {
		select {
		case m := <-msgs:
			got[m.Rcpts[0]] = m
		case <-time.After(20 * time.Second):
			t.Fatalf("got %d of 2 messages", len(got))
		}
	}
	m := got["bob@remote.test"]
	data, err := base64.StdEncoding.DecodeString(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	// smtpd hands the message over with LF line ends and without the last one.
	lf := func(s string) string { return strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n") }
	if m.From != "alice@local.test" || lf(string(data)) != lf(ok) {
		t.Fatalf("received from %q: %q\nwant %q", m.From, data, ok)
	}
	var inbox [][]byte
	waitFor(t, "the bounce for the refused message", 10*time.Second, func() bool { inbox = e.inbox(t, e.alice); return len(inbox) == 1 })
	d := parseDSN(t, inbox[0])
	rc := d.recipients[0]
	if rc.Get("Final-Recipient") != "rfc822; carol@remote.test" || rc.Get("Status") != "5.6.0" ||
		rc.Get("Diagnostic-Code") != "smtp; 554 5.6.0 content rejected" {
		t.Fatalf("bounce fields = %v", rc)
	}
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return len(e.queued(t)) == 0 })
}
