// Package e2e drives the mailgate binary as a user would: it builds it, runs
// `mailgate serve` with listeners on loopback ports, and talks to it only over
// the network, with clients we did not write or that were generated from
// openapi.yaml.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models/modelstest"
)

var binary string // the mailgate binary built for this run

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mailgate")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mailgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Server is one running `mailgate serve`.
type Server struct {
	t     testing.TB
	Addr  map[string]string // "http", "smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps"
	Admin string            // the admin's address
	Pass  string            // the admin's password
	Dir   string            // data dir
	Env   map[string]string
	cmd   *exec.Cmd
	logMu sync.Mutex
	log   strings.Builder
	done  chan struct{}
}

// Log is what the server wrote so far.
func (s *Server) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

var (
	listeningRE = regexp.MustCompile(`msg="mailgate listening"(.*)`)
	kvRE        = regexp.MustCompile(`(\w+)=(\S+)`)
)

// DatabaseURL is a fresh database for one test: SQLite by default, a fresh
// PostgreSQL schema when MAILGATE_TEST_DATABASE_URL is set.
func DatabaseURL(t testing.TB) string { return modelstest.URL(t) }

// Start runs `mailgate serve` on a fresh database (unless env names one), every
// listener on 127.0.0.1:0, the admin admin@example.test with a known password.
func Start(t testing.TB, env map[string]string) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir(), Addr: map[string]string{}, done: make(chan struct{}),
		Admin: "admin@example.test", Pass: "admin-password-e2e"}
	s.Env = map[string]string{
		"MAILGATE_DATA_DIR": s.Dir, "MAILGATE_HOSTNAME": "mx.example.test",
		"MAILGATE_HTTP_ADDR": "127.0.0.1:0", "MAILGATE_SMTP_ADDR": "127.0.0.1:0", "MAILGATE_SUBMISSION_ADDR": "127.0.0.1:0",
		"MAILGATE_SUBMISSIONS_ADDR": "127.0.0.1:0", "MAILGATE_POP3_ADDR": "127.0.0.1:0", "MAILGATE_POP3S_ADDR": "127.0.0.1:0",
		"MAILGATE_IMAP_ADDR": "127.0.0.1:0", "MAILGATE_IMAPS_ADDR": "127.0.0.1:0", "MAILGATE_HTTPS_ADDR": "127.0.0.1:0",
		"MAILGATE_ADMIN_EMAIL": s.Admin, "MAILGATE_ADMIN_PASSWORD": s.Pass, "MAILGATE_LOG_LEVEL": "debug",
	}
	for k, v := range env {
		s.Env[k] = v
	}
	if _, ok := s.Env["MAILGATE_DATABASE_URL"]; !ok {
		s.Env["MAILGATE_DATABASE_URL"] = DatabaseURL(t)
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	s.done = make(chan struct{})
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = os.Environ()
	for k, v := range s.Env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan map[string]string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.log.WriteString(line + "\n")
			s.logMu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addrs := map[string]string{}
				for _, kv := range kvRE.FindAllStringSubmatch(m[1], -1) {
					addrs[kv[1]] = kv[2]
				}
				ready <- addrs
			}
		}
		io.Copy(io.Discard, stderr)
		s.cmd.Wait()
	}()
	select {
	case a := <-ready:
		s.Addr = a
	case <-s.done:
		t.Fatalf("mailgate exited before listening:\n%s", s.Log())
	case <-time.After(90 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("mailgate not listening after 90s:\n%s", s.Log())
	}
}

// Stop ends the server with SIGTERM, as an init system would, and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("mailgate did not stop within 30s of SIGINT")
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.Log())
	}
}

// Restart stops the server and starts it again on the same data and database.
func (s *Server) Restart() {
	s.Stop()
	s.start()
}

// URL is an address on the HTTP front end.
func (s *Server) URL(path string) string { return "http://" + s.Addr["http"] + path }

// requireTool finds an external client: missing in CI fails, elsewhere skips.
func requireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: install the Debian package %s", name, pkg)
		}
		t.Skipf("%s is missing: install the Debian package %s", name, pkg)
	}
	return p
}

// python runs a Python 3 script with arguments and returns its stdout.
func python(t testing.TB, ctx context.Context, script string, args ...string) string {
	t.Helper()
	py := requireTool(t, "python3", "python3")
	cmd := exec.CommandContext(ctx, py, append([]string{"-c", script}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return out.String()
}

// run runs a command and returns its combined output; a non-zero exit is fine
// (refusals are what some tests look for).
func run(t testing.TB, ctx context.Context, name string, args ...string) string {
	t.Helper()
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out)
}

// postJSON sends a JSON body with a token and returns the status.
func postJSON(t testing.TB, s *Server, path, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL(path), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
