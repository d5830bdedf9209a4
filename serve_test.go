package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models/modelstest"
)

// syncBuffer collects a server's log while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is one `mailgate serve` running in process.
type instance struct {
	log   *syncBuffer
	addrs map[string]string // front end name → address
	stop  func()
}

var listeningRE = regexp.MustCompile(`msg="mailgate listening"(.*)`)

// startServe runs `mailgate serve` with the given environment (every listener
// on 127.0.0.1:0 unless set) and waits until it listens.
func startServe(t *testing.T, env map[string]string) *instance {
	t.Helper()
	full := map[string]string{"MAILGATE_HTTP_ADDR": "127.0.0.1:0", "MAILGATE_HTTPS_ADDR": "127.0.0.1:0", "MAILGATE_SMTP_ADDR": "127.0.0.1:0",
		"MAILGATE_SUBMISSION_ADDR": "127.0.0.1:0", "MAILGATE_SUBMISSIONS_ADDR": "127.0.0.1:0", "MAILGATE_POP3_ADDR": "127.0.0.1:0",
		"MAILGATE_POP3S_ADDR": "127.0.0.1:0", "MAILGATE_IMAP_ADDR": "127.0.0.1:0", "MAILGATE_IMAPS_ADDR": "127.0.0.1:0",
		"MAILGATE_HOSTNAME": "mail.example.test"}
	for k, v := range env {
		full[k] = v
	}
	inst := &instance{log: &syncBuffer{}, addrs: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve"}, nil, io.Discard, inst.log, func(k string) (string, bool) { v, ok := full[k]; return v, ok })
	}()
	inst.stop = func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d:\n%s", code, inst.log)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30s")
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(inst.log.String()); m != nil {
			for _, kv := range regexp.MustCompile(`(\w+)=(\S+)`).FindAllStringSubmatch(m[1], -1) {
				inst.addrs[kv[1]] = kv[2]
			}
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before listening:\n%s", code, inst.log)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve not listening after 60s:\n%s", inst.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			inst.stop()
		}
	})
	return inst
}

func (in *instance) url(path string) string { return "http://" + in.addrs["http"] + path }

func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

var passwordRE = regexp.MustCompile(`generated password.* email=(\S+) password=(\S+)`)

// TestServeBootstrapAndRestart is the quick start as a new user tries it: the
// first start prints the admin's password once; a restart keeps the data and
// the JWT secret (an old token still works) and prints nothing secret.
func TestServeBootstrapAndRestart(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"MAILGATE_DATA_DIR": dir}
	if os.Getenv(modelstest.EnvURL) != "" {
		env["MAILGATE_DATABASE_URL"] = modelstest.URL(t)
	}
	a := startServe(t, env)
	m := passwordRE.FindStringSubmatch(a.log.String())
	if m == nil {
		t.Fatalf("no bootstrap password in the log:\n%s", a.log)
	}
	if m[1] != "admin@mail.example.test" {
		t.Fatalf("admin %q", m[1])
	}
	st, body := call(t, "POST", a.url("/api/v1/auth/login"), "", map[string]string{"email": m[1], "password": m[2]})
	if st != 200 {
		t.Fatalf("login: %d %v", st, body)
	}
	tok := body["access_token"].(string)
	if st, body := call(t, "POST", a.url("/api/v1/domains"), tok, map[string]string{"name": "example.org"}); st != 201 {
		t.Fatalf("create domain: %d %v", st, body)
	}
	a.stop()

	b := startServe(t, env)
	if strings.Contains(b.log.String(), "password=") {
		t.Fatalf("restart printed a password:\n%s", b.log)
	}
	if st, body := call(t, "GET", b.url("/api/v1/domains/example.org"), tok, nil); st != 200 {
		t.Fatalf("old token or data lost after restart: %d %v", st, body)
	}
	if st, _ := call(t, "GET", b.url("/readyz"), "", nil); st != 200 {
		t.Fatalf("readyz %d", st)
	}
	resp, err := http.Get(b.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `mailgate_http_requests_total{method="GET",route="/api/v1/domains/:domain",status="200"}`) {
		t.Fatalf("metrics lack the request count:\n%.2000s", raw)
	}
	for _, p := range []string{"/openapi.yaml", "/swagger/index.html", "/swagger/doc.json"} {
		if st, _ := call(t, "GET", b.url(p), "", nil); st != 200 {
			t.Errorf("GET %s: %d", p, st)
		}
	}
}

// TestMigrateAndPasswd: migrate status/down/up work on the configured database,
// and passwd sets a password read from stdin (recovery for a locked-out admin).
func TestMigrateAndPasswd(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"MAILGATE_DATA_DIR": dir, "MAILGATE_ADMIN_EMAIL": "admin@example.test", "MAILGATE_ADMIN_PASSWORD": "first-password"}
	if os.Getenv(modelstest.EnvURL) != "" {
		env["MAILGATE_DATABASE_URL"] = modelstest.URL(t)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cmd := func(stdin string, args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(stdin), &out, &out, lookup)
		return code, out.String()
	}
	if code, out := cmd("", "migrate", "up"); code != 0 || !strings.Contains(out, "applied 00001") {
		t.Fatalf("migrate up: %d %s", code, out)
	}
	if code, out := cmd("", "migrate", "status"); code != 0 || strings.Contains(out, "pending") || !strings.Contains(out, "00001  applied") {
		t.Fatalf("migrate status: %d %s", code, out)
	}
	code, out := cmd("", "migrate", "down")
	if code != 0 || !strings.Contains(out, "rolled back") {
		t.Fatalf("migrate down: %d %s", code, out)
	}
	if code, out := cmd("", "migrate", "status"); code != 0 || !strings.Contains(out, "pending") {
		t.Fatalf("status after down: %d %s", code, out)
	}
	if code, out := cmd("", "migrate", "sideways"); code == 0 {
		t.Fatalf("unknown migrate command accepted: %s", out)
	}

	a := startServe(t, env) // migrates up again and makes the admin
	a.stop()
	if code, out := cmd("short\n", "passwd", "admin@example.test"); code == 0 {
		t.Fatalf("a too short password was accepted: %s", out)
	}
	if code, out := cmd("recovered-password\n", "passwd", "nobody@example.test"); code == 0 {
		t.Fatalf("passwd for an unknown user: %s", out)
	}
	if code, out := cmd("recovered-password\n", "passwd", "admin@example.test"); code != 0 {
		t.Fatalf("passwd: %d %s", code, out)
	}
	b := startServe(t, env)
	if st, _ := call(t, "POST", b.url("/api/v1/auth/login"), "", map[string]string{"email": "admin@example.test", "password": "recovered-password"}); st != 200 {
		t.Fatalf("login with the recovered password: %d", st)
	}
	if st, _ := call(t, "POST", b.url("/api/v1/auth/login"), "", map[string]string{"email": "admin@example.test", "password": "first-password"}); st != 401 {
		t.Fatalf("the old password still works: %d", st)
	}
	var out2 bytes.Buffer
	if run(context.Background(), []string{"version"}, nil, &out2, &out2, lookup) != 0 || !strings.HasPrefix(out2.String(), "mailgate ") {
		t.Fatalf("version: %q", out2.String())
	}
}
