package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// idleWatcher is Python's imaplib IDLE-ing on a mailbox, through the raw
// protocol; every untagged response it reads arrives on lines.
const idleWatcher = `
import imaplib, ssl, sys, threading
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
M = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
M.login(sys.argv[2], sys.argv[3])
M.select("INBOX")
tag = M._new_tag().decode()
M.send(("%s IDLE\r\n" % tag).encode())
if not M.readline().startswith(b"+"):
    sys.exit("IDLE refused")
print("READY", flush=True)
def reader():
    while True:
        line = M.readline()
        if not line:
            return
        print(line.decode("utf-8", "replace").strip(), flush=True)
threading.Thread(target=reader, daemon=True).start()
sys.stdin.read()  # until the test closes stdin
M.send(b"DONE\r\n")
`

type watcher struct {
	t     *testing.T
	lines chan string
	stdin io.WriteCloser
	cmd   *exec.Cmd
}

func watchIMAP(t *testing.T, s *Server, user, pass string) *watcher {
	t.Helper()
	py := requireTool(t, "python3", "python3")
	cmd := exec.Command(py, "-c", idleWatcher, s.Addr["imaps"], user, pass)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watcher{t: t, lines: make(chan string, 100), stdin: stdin, cmd: cmd}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
	}()
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	select {
	case l, ok := <-w.lines:
		if !ok || l != "READY" {
			t.Fatalf("IMAP watcher did not start: %q %s", l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("IMAP watcher did not start")
	}
	return w
}

// expect waits for an untagged response containing want and fails after limit;
// it returns how long it took.
func (w *watcher) expect(want string, limit time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	timer := time.After(limit)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				w.t.Fatalf("IMAP watcher ended while waiting for %q", want)
			}
			if strings.Contains(l, want) {
				return time.Since(start)
			}
		case <-timer:
			w.t.Fatalf("no %q from IMAP IDLE within %v", want, limit)
		}
	}
}

func apiDo(t *testing.T, s *Server, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL(path), strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestChangesReachIMAPLive: mail sent with smtplib shows up in an IDLE-ing
// imaplib session within a second; marking it seen and deleting it over HTTP,
// and a POP3 delete, reach the same session as FETCH and EXPUNGE.
func TestChangesReachIMAPLive(t *testing.T) {
	s := Start(t, nil)
	setupMail(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := watchIMAP(t, s, "bob@example.com", "bob-secret-12")

	python(t, ctx, seedSend, s.Addr["submissions"], "bob@example.com")
	if d := w.expect("EXISTS", time.Second); d > time.Second {
		t.Errorf("EXISTS after %v", d)
	}

	bob := login(t, s, "bob@example.com", "bob-secret-12")
	st, body := apiDo(t, s, "GET", "/api/v1/messages?mailbox=INBOX", bob, "")
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &page); st != 200 || err != nil || len(page.Items) != 1 {
		t.Fatalf("list: %d %s", st, body)
	}
	id := page.Items[0].ID
	if st, b := apiDo(t, s, "PATCH", "/api/v1/messages/"+id, bob, `{"seen":true,"flagged":true}`); st != 200 {
		t.Fatalf("PATCH: %d %s", st, b)
	}
	w.expect(`\Seen`, time.Second)
	if st, b := apiDo(t, s, "DELETE", "/api/v1/messages/"+id, bob, ""); st != 204 {
		t.Fatalf("DELETE: %d %s", st, b)
	}
	w.expect("EXPUNGE", time.Second)

	python(t, ctx, seedSend, s.Addr["submissions"], "bob@example.com")
	w.expect("EXISTS", time.Second)
	python(t, ctx, seedFetch, s.Addr["pop3s"], "bob@example.com", "bob-secret-12", "dele")
	w.expect("EXPUNGE", time.Second)
	if st, b := apiDo(t, s, "GET", "/api/v1/messages?mailbox=INBOX", bob, ""); st != 200 || strings.Contains(string(b), `"id"`) {
		t.Fatalf("message deleted over POP3 still listed over HTTP: %s", b)
	}
}

// TestHTTPMailRoundTrip: a web app sends an HTML message with a PDF to a user and
// a group over HTTP; the user lists, searches, reads and downloads it (the PDF
// byte-identical), marks it seen and deletes it, and an IMAP session sees it
// arrive, turn \Seen and go.
func TestHTTPMailRoundTrip(t *testing.T) {
	s := Start(t, nil)
	setupMail(t, s)
	w := watchIMAP(t, s, "bob@example.com", "bob-secret-12")
	alice := login(t, s, "alice@example.com", "alice-secret-1")
	pdf := "%PDF-1.4\n% binary \x00\x01\x02\xff\n%%EOF\n"
	body, _ := json.Marshal(map[string]any{
		"to": []string{"bob@example.com", "team@example.com"}, "subject": "Quarterly report 季度",
		"html": `<p>Hello <b>Bob</b></p><script>alert(1)</script>`, "text": "Hello Bob",
		"attachments": []map[string]any{{"filename": "report.pdf", "content_type": "application/pdf", "content": []byte(pdf)}},
	})
	st, b := apiDo(t, s, "POST", "/api/v1/messages", alice, string(body))
	if st != 202 {
		t.Fatalf("send: %d %s", st, b)
	}
	w.expect("EXISTS", time.Second)

	bob := login(t, s, "bob@example.com", "bob-secret-12")
	st, b = apiDo(t, s, "GET", "/api/v1/messages?q=quarterly", bob, "")
	var page struct {
		Items []struct {
			ID             string `json:"id"`
			HasAttachments bool   `json:"has_attachments"`
		} `json:"items"`
	}
	if json.Unmarshal(b, &page); st != 200 || len(page.Items) != 1 || !page.Items[0].HasAttachments {
		t.Fatalf("search: %d %s", st, b)
	}
	id := page.Items[0].ID
	st, b = apiDo(t, s, "GET", "/api/v1/messages/"+id, bob, "")
	var msg struct {
		Subject       string `json:"subject"`
		HTMLSanitized string `json:"html_sanitized"`
		Attachments   []struct {
			Index    int    `json:"index"`
			Filename string `json:"filename"`
		} `json:"attachments"`
	}
	if json.Unmarshal(b, &msg); st != 200 || msg.Subject != "Quarterly report 季度" || strings.Contains(msg.HTMLSanitized, "script") ||
		len(msg.Attachments) != 1 || msg.Attachments[0].Filename != "report.pdf" {
		t.Fatalf("read: %d %s", st, b)
	}
	st, b = apiDo(t, s, "GET", "/api/v1/messages/"+id+"/attachments/0", bob, "")
	if st != 200 || string(b) != pdf {
		t.Fatalf("download: %d, %q", st, b)
	}
	if st, b := apiDo(t, s, "PATCH", "/api/v1/messages/"+id, bob, `{"seen":true}`); st != 200 {
		t.Fatalf("PATCH: %d %s", st, b)
	}
	w.expect(`\Seen`, time.Second)
	if st, b := apiDo(t, s, "DELETE", "/api/v1/messages/"+id, bob, ""); st != 204 {
		t.Fatalf("DELETE: %d %s", st, b)
	}
	w.expect("EXPUNGE", time.Second)
}
