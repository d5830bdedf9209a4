package pop3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Interoperability with clients we did not write. A missing client fails the
// test in CI and skips it elsewhere, naming the Debian package to install.

func requireClient(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (%v); CI must install Debian package %s", name, err, debianPackage)
	}
	t.Skipf("%s not found; install Debian package %s", name, debianPackage)
	return ""
}

// run runs a client with a deadline and returns its stdout; stderr goes to the log.
func run(t *testing.T, env []string, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", filepath.Base(name), stderr.String())
	}
	return stdout.Bytes(), err
}

// seedMessage builds a message the way the seed document does with Python's
// email package: multipart, a UTF-8 encoded subject, a text part and a
// binary attachment.
const seedMessage = `
import sys
from email.header import Header
from email.mime.text import MIMEText
from email.mime.multipart import MIMEMultipart
from email.mime.application import MIMEApplication
email = MIMEMultipart()
email["From"] = Header("python smtplib", "utf-8")
email["To"] = Header("Leo", "utf-8")
email["Subject"] = Header("这是一封测试邮件", "utf-8")
email.attach(MIMEText("Python邮件发送测试...\n.a line with a leading dot\n", "plain", "utf-8"))
attachment = MIMEApplication(bytes(range(256)) * 40)
attachment.add_header("Content-Disposition", "attachment", filename="1.jpg")
email.attach(attachment)
sys.stdout.write(email.as_string())
`

// seedPoplib does exactly the seed's poplib calls, over implicit TLS, and
// reports what it got as JSON.
const seedPoplib = `
import base64, json, poplib, ssl, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
server = poplib.POP3_SSL(host=host, port=port, timeout=3, context=ctx)
server.user(user)
server.pass_(password)
res, _list, octets = server.list()
out = {"list": [l.decode() for l in _list], "retr": []}
for entry in _list:
    i = int(entry.split()[0])
    res, raw_data, octets = server.retr(i)
    out["retr"].append({"res": res.decode(), "octets": octets,
                        "data": base64.b64encode(b"".join(l + b"\r\n" for l in raw_data)).decode()})
for entry in _list:
    server.dele(int(entry.split()[0]))
out["quit"] = server.quit().decode()
print(json.dumps(out))
`

func TestPythonPoplibSeed(t *testing.T) {
	py := requireClient(t, "python3", "python3")
	e := newEnv(t)
	built, err := run(t, nil, py, "-c", seedMessage)
	if err != nil {
		t.Fatalf("build the seed's message: %v", err)
	}
	sent := []string{string(built), testMessage(2), "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 40000)}
	var stored [][]byte
	for _, m := range sent {
		_, raw := e.deliver(m)
		stored = append(stored, raw)
	}
	_, port, _ := net.SplitHostPort(e.tlsAddr)
	out, err := run(t, nil, py, "-c", seedPoplib, "127.0.0.1", port, testUser, testPassword)
	if err != nil {
		t.Fatalf("poplib: %v", err)
	}
	var got struct {
		List []string
		Retr []struct {
			Res    string
			Octets int
			Data   string
		}
		Quit string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("poplib output %q: %v", out, err)
	}
	if len(got.List) != len(sent) || len(got.Retr) != len(sent) {
		t.Fatalf("poplib listed %d and retrieved %d messages, want %d", len(got.List), len(got.Retr), len(sent))
	}
	for i, raw := range stored {
		if want := fmt.Sprintf("%d %d", i+1, len(raw)); got.List[i] != want {
			t.Errorf("list()[%d] = %q, want %q", i, got.List[i], want)
		}
		data, err := base64.StdEncoding.DecodeString(got.Retr[i].Data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, raw) {
			t.Errorf("retr(%d) returned %d bytes that differ from the %d stored", i+1, len(data), len(raw))
		}
		// What was sent arrives intact, after the Return-Path delivery adds
		// (with line endings made CRLF).
		if !bytes.HasSuffix(data, []byte(strings.ReplaceAll(strings.ReplaceAll(sent[i], "\r\n", "\n"), "\n", "\r\n"))) {
			t.Errorf("retr(%d) does not end with the message sent", i+1)
		}
		if got.Retr[i].Octets != len(raw) {
			t.Errorf("retr(%d) octets = %d, want %d", i+1, got.Retr[i].Octets, len(raw))
		}
	}
	if !strings.HasPrefix(got.Quit, "+OK") {
		t.Errorf("quit() = %q", got.Quit)
	}
	e.waitIdle()
	if n := e.inboxCount(); n != 0 {
		t.Errorf("%d messages left after dele+quit, want 0", n)
	}
}

// fetchmail runs one poll over STLS (the test certificate is self-signed,
// hence no sslcertck) with UIDL tracking in idfile, delivering to mbox. It
// returns fetchmail's exit status: 0 mail fetched, 1 no mail.
func fetchmail(t *testing.T, bin, addr, dir string, keep bool) int {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	keepOpt := "nokeep"
	if keep {
		keepOpt = "keep"
	}
	rc := fmt.Sprintf(`set no syslog
poll %s with proto POP3 port %s uidl
  user '%s' there with password '%s'
  sslproto 'tls1.2+' no sslcertck
  options %s
  mda 'cat >> %s'
`, host, port, testUser, testPassword, keepOpt, filepath.Join(dir, "mbox"))
	rcPath := filepath.Join(dir, "fetchmailrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, []string{"FETCHMAILHOME=" + dir, "HOME=" + dir}, bin,
		"-f", rcPath, "--idfile", filepath.Join(dir, "fetchids"), "--nosyslog", "-v")
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("fetchmail: %v", err)
	return -1
}

func countMarkers(t *testing.T, mbox string, n int) []int {
	t.Helper()
	b, err := os.ReadFile(mbox)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	counts := make([]int, n+1)
	for i := 1; i <= n; i++ {
		counts[i] = bytes.Count(b, []byte(fmt.Sprintf("Hello number %d.", i)))
	}
	return counts[1:]
}

func TestFetchmail(t *testing.T) {
	bin := requireClient(t, "fetchmail", "fetchmail")
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver(testMessage(i))
	}

	t.Run("keep", func(t *testing.T) {
		dir := t.TempDir()
		mbox := filepath.Join(dir, "mbox")
		if rc := fetchmail(t, bin, e.addr, dir, true); rc != 0 {
			t.Fatalf("first run exit %d, want 0", rc)
		}
		e.waitIdle()
		if got := countMarkers(t, mbox, 3); fmt.Sprint(got) != "[1 1 1]" {
			t.Fatalf("first run delivered %v of messages 1-3", got)
		}
		if n := e.inboxCount(); n != 3 {
			t.Fatalf("keep left %d messages, want 3", n)
		}
		// Second run: UIDL says everything was seen; nothing is fetched again.
		if rc := fetchmail(t, bin, e.addr, dir, true); rc != 1 {
			t.Fatalf("second run exit %d, want 1 (no mail)", rc)
		}
		e.waitIdle()
		if got := countMarkers(t, mbox, 3); fmt.Sprint(got) != "[1 1 1]" {
			t.Fatalf("second run fetched again: %v", got)
		}
		// New mail: only it is fetched.
		e.deliver(testMessage(4))
		if rc := fetchmail(t, bin, e.addr, dir, true); rc != 0 {
			t.Fatalf("third run exit %d, want 0", rc)
		}
		e.waitIdle()
		if got := countMarkers(t, mbox, 4); fmt.Sprint(got) != "[1 1 1 1]" {
			t.Fatalf("after new mail, fetched %v of messages 1-4", got)
		}
	})

	t.Run("nokeep", func(t *testing.T) {
		dir := t.TempDir()
		mbox := filepath.Join(dir, "mbox")
		if rc := fetchmail(t, bin, e.addr, dir, false); rc != 0 {
			t.Fatalf("first run exit %d, want 0", rc)
		}
		e.waitIdle()
		if got := countMarkers(t, mbox, 4); fmt.Sprint(got) != "[1 1 1 1]" {
			t.Fatalf("fetched %v of messages 1-4", got)
		}
		if n := e.inboxCount(); n != 0 {
			t.Fatalf("%d messages left on the server, want 0", n)
		}
		if rc := fetchmail(t, bin, e.addr, dir, false); rc != 1 {
			t.Fatalf("second run exit %d, want 1 (no mail)", rc)
		}
		if got := countMarkers(t, mbox, 4); fmt.Sprint(got) != "[1 1 1 1]" {
			t.Fatalf("second run fetched %v", got)
		}
	})
}

func TestCurl(t *testing.T) {
	bin := requireClient(t, "curl", "curl")
	e := newEnv(t)
	m1, raw1 := e.deliver(testMessage(1))
	m2, raw2 := e.deliver(testMessage(2))
	base := "pop3://" + e.addr + "/"
	curl := func(args ...string) []byte {
		t.Helper()
		out, err := run(t, nil, bin, append([]string{"-sS", "--max-time", "30", "-u", testUser + ":" + testPassword}, args...)...)
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		e.waitIdle()
		return out
	}
	if got, want := string(curl(base)), fmt.Sprintf("1 %d\r\n2 %d\r\n", m1.Size, m2.Size); got != want {
		t.Errorf("curl LIST = %q, want %q", got, want)
	}
	if got := curl(base + "1"); !bytes.Equal(got, raw1) {
		t.Errorf("curl RETR 1 = %q, want %q", got, raw1)
	}
	if got, want := string(curl("-X", "UIDL", base)), fmt.Sprintf("1 %s\r\n2 %s\r\n", m1.PublicID, m2.PublicID); got != want {
		t.Errorf("curl UIDL = %q, want %q", got, want)
	}
	// Over STLS, as curl does when told TLS is required.
	if got := curl("--ssl-reqd", "-k", base+"2"); !bytes.Equal(got, raw2) {
		t.Errorf("curl RETR 2 over STLS = %q, want %q", got, raw2)
	}
	// Over implicit TLS.
	if got := curl("-k", "pop3s://"+e.tlsAddr+"/1"); !bytes.Equal(got, raw1) {
		t.Errorf("curl RETR 1 over pop3s = %q, want %q", got, raw1)
	}
}
