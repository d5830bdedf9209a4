package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/models/modelstest"
)

// needTool skips a test that needs a client missing here (CI installs them all,
// and fails rather than skips there).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (Debian package %s)", name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s)", name, pkg)
	}
	return p
}

// scrape reads /metrics and returns the value of every sample, by its line's
// name and labels.
func scrape(t *testing.T, in *instance) map[string]float64 {
	t.Helper()
	resp, err := http.Get(in.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestFrontEndMetrics: traffic from swaks, curl imap:// and curl pop3:// moves
// the counters each front end exports on /metrics.
func TestFrontEndMetrics(t *testing.T) {
	swaks := needTool(t, "swaks", "swaks")
	curl := needTool(t, "curl", "curl")
	env := map[string]string{"MAILGATE_DATA_DIR": t.TempDir(), "MAILGATE_ADMIN_EMAIL": "admin@example.test",
		"MAILGATE_ADMIN_PASSWORD": "first-password"}
	if os.Getenv(modelstest.EnvURL) != "" {
		env["MAILGATE_DATABASE_URL"] = modelstest.URL(t)
	}
	in := startServe(t, env)
	st, body := call(t, "POST", in.url("/api/v1/auth/login"), "", map[string]string{"email": "admin@example.test", "password": "first-password"})
	if st != 200 {
		t.Fatalf("login: %d %v", st, body)
	}
	tok := body["access_token"].(string)
	if st, body := call(t, "POST", in.url("/api/v1/users"), tok, map[string]string{"email": "bob@example.test", "password": "bob-secret-12"}); st != 201 {
		t.Fatalf("create user: %d %v", st, body)
	}

	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(swaks, "--server", in.addrs["smtp"], "--from", "someone@remote.test", "--to", "bob@example.test",
		"--header", "Subject: metrics", "--body", "counted")
	// A refused recipient: a rejected RCPT, and no message.
	exec.Command(swaks, "--server", in.addrs["smtp"], "--from", "someone@remote.test", "--to", "nobody@example.test").Run() //nolint:errcheck // refused on purpose
	run(swaks, "--server", in.addrs["submission"], "--auth", "PLAIN", "--auth-user", "bob@example.test",
		"--auth-password", "bob-secret-12", "--from", "bob@example.test", "--to", "bob@example.test", "--header", "Subject: sent")
	exec.Command(swaks, "--server", in.addrs["submission"], "--auth", "PLAIN", "--auth-user", "bob@example.test", //nolint:errcheck // a failed login on purpose
		"--auth-password", "wrong-password", "--from", "bob@example.test", "--to", "bob@example.test").Run()
	run(curl, "-s", "imap://"+in.addrs["imap"]+"/INBOX", "-u", "bob@example.test:bob-secret-12", "-X", "STATUS INBOX (MESSAGES)")
	run(curl, "-s", "imap://"+in.addrs["imap"]+"/INBOX;UID=1", "-u", "bob@example.test:bob-secret-12")
	run(curl, "-s", "pop3://"+in.addrs["pop3"]+"/", "-u", "bob@example.test:bob-secret-12")
	run(curl, "-s", "pop3://"+in.addrs["pop3"]+"/1", "-u", "bob@example.test:bob-secret-12")

	m := scrape(t, in)
	atLeast := func(series string, want float64) {
		t.Helper()
		if got := m[series]; got < want {
			t.Errorf("%s = %v, want at least %v", series, got, want)
		}
	}
	sum := func(re string) float64 {
		var n float64
		r := regexp.MustCompile(re)
		for k, v := range m {
			if r.MatchString(k) {
				n += v
			}
		}
		return n
	}
	atLeast("mailgate_smtp_connections_total", 4)
	atLeast(`mailgate_smtp_logins_total{result="ok"}`, 1)
	atLeast(`mailgate_smtp_logins_total{result="failed"}`, 1)
	atLeast(`mailgate_smtp_messages_total{result="accepted"}`, 2)
	atLeast(`mailgate_smtp_commands_total{command="RCPT",result="5xx"}`, 1)
	atLeast(`mailgate_smtp_commands_total{command="MAIL",result="2xx"}`, 3)
	atLeast("mailgate_smtp_received_bytes_total", 100)
	atLeast("mailgate_smtp_sent_bytes_total", 100)
	atLeast("mailgate_imap_connections_total", 2)
	atLeast(`mailgate_imap_logins_total{result="ok"}`, 2)
	if n := sum(`^mailgate_imap_commands_total\{.*result="ok"`); n < 2 {
		t.Errorf("imap commands answered ok: %v", n)
	}
	atLeast("mailgate_imap_sent_bytes_total", 100)
	atLeast("mailgate_pop3_connections_total", 2)
	atLeast(`mailgate_pop3_logins_total{result="ok"}`, 2)
	atLeast(`mailgate_pop3_commands_total{command="RETR",result="ok"}`, 1)
	atLeast("mailgate_pop3_sent_bytes_total", 100)
	if n := sum(`^mailgate_delivery_duration_seconds_count`); n < 2 {
		t.Errorf("delivery latency observations: %v", n)
	}
	if _, ok := m["mailgate_queue_depth"]; !ok {
		t.Errorf("no mailgate_queue_depth")
	}
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		if _, ok := m["mailgate_"+proto+"_connections_open"]; !ok {
			t.Errorf("no mailgate_%s_connections_open", proto)
		}
	}
}
