package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models/modelstest"
)

// TestConfigHTTPSAddr: the HTTPS API is on by default on :8443, and an empty
// MAILGATE_HTTPS_ADDR turns it off.
func TestConfigHTTPSAddr(t *testing.T) {
	c, err := loadConfig("serve", nil, io.Discard, env(nil), nil)
	if err != nil || c.HTTPSAddr != ":8443" {
		t.Fatalf("default: %q, %v", c.HTTPSAddr, err)
	}
	c, err = loadConfig("serve", []string{"--https-addr", "127.0.0.1:9443"}, io.Discard, env(nil), nil)
	if err != nil || c.HTTPSAddr != "127.0.0.1:9443" {
		t.Fatalf("flag: %q, %v", c.HTTPSAddr, err)
	}
	c, err = loadConfig("serve", nil, io.Discard, env(map[string]string{"MAILGATE_HTTPS_ADDR": ""}), nil)
	if err != nil || c.HTTPSAddr != "" || !c.explicit["MAILGATE_HTTPS_ADDR"] {
		t.Fatalf("off: %q, %v", c.HTTPSAddr, err)
	}
	lns, err := bindAll(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lns {
		l.ln.Close()
		if l.name == "https" {
			t.Errorf("MAILGATE_HTTPS_ADDR= still bound %s", l.ln.Addr())
		}
	}
}

// TestServeHTTPS: the API answers over TLS with the mail ports' certificate
// (the self-signed one in the data dir, trusted here as a client would pin it):
// log in, then GET /api/v1/me, with the same headers as over HTTP. Both
// listeners are one server, which stops cleanly.
func TestServeHTTPS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // made by mailgate
	env := map[string]string{"MAILGATE_DATA_DIR": dir, "MAILGATE_ADMIN_EMAIL": "admin@example.test",
		"MAILGATE_ADMIN_PASSWORD": "admin-password-1"}
	if os.Getenv(modelstest.EnvURL) != "" {
		env["MAILGATE_DATABASE_URL"] = modelstest.URL(t)
	}
	in := startServe(t, env)
	addr := in.addrs["https"]
	if addr == "" || addr == in.addrs["http"] {
		t.Fatalf("no https address in the listening line: %v\n%s", in.addrs, in.log)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in cert.pem")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	do := func(method, path, token, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s https://%s%s: %v", method, addr, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, string(raw)
	}
	resp, body := do("POST", "/api/v1/auth/login", "", `{"email":"admin@example.test","password":"admin-password-1"}`)
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("login over https: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("login answer may be cached or sniffed: %v", resp.Header)
	}
	tok := between(body, `"access_token":"`, `"`)
	if tok == "" {
		t.Fatalf("no token in %s", body)
	}
	resp, body = do("GET", "/api/v1/me", tok, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"email":"admin@example.test"`) {
		t.Fatalf("me over https: %d %s", resp.StatusCode, body)
	}
	if p := resp.Proto; p != "HTTP/2.0" {
		t.Errorf("protocol %s, want HTTP/2.0 (offered over TLS)", p)
	}
	// The token works on the plain listener too: one API, two doors.
	if st, _ := call(t, "GET", in.url("/api/v1/me"), tok, nil); st != 200 {
		t.Errorf("the token from https on http: %d", st)
	}
	// Plain HTTP to the TLS port is refused, not answered in the clear.
	if r, err := http.Get("http://" + addr + "/api/v1/me"); err == nil {
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the https port: %d", r.StatusCode)
		}
	}
	// An untrusting client fails the handshake.
	if _, err := http.Get("https://" + addr + "/healthz"); err == nil {
		t.Error("a client without the certificate trusted it")
	}

	// The data dir mailgate made and the SQLite database in it are the owner's only.
	if os.Getenv(modelstest.EnvURL) == "" {
		for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "mailgate.db"): 0o600,
			filepath.Join(dir, "mailgate.db-wal"): 0o600, filepath.Join(dir, "mailgate.db-shm"): 0o600} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode().Perm(), err, want)
			}
		}
	}
	in.stop() // fails the test unless serve exits 0 in time: one shutdown for both listeners
	if strings.Contains(in.log.String(), "shut down http") {
		t.Errorf("shutdown error:\n%s", in.log)
	}
}

// TestServeHTTPSOff: with MAILGATE_HTTPS_ADDR empty, only plain HTTP listens.
func TestServeHTTPSOff(t *testing.T) {
	env := map[string]string{"MAILGATE_DATA_DIR": t.TempDir(), "MAILGATE_HTTPS_ADDR": ""}
	if os.Getenv(modelstest.EnvURL) != "" {
		env["MAILGATE_DATABASE_URL"] = modelstest.URL(t)
	}
	in := startServe(t, env)
	if a, ok := in.addrs["https"]; ok {
		t.Fatalf("https listens on %s though turned off", a)
	}
	if st, _ := call(t, "GET", in.url("/healthz"), "", nil); st != 200 {
		t.Fatalf("healthz over http: %d", st)
	}
}

// between returns the text of s between the first after and the next before.
func between(s, after, before string) string {
	_, rest, ok := strings.Cut(s, after)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, before)
	return v
}
