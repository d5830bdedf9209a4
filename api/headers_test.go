package api_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/api/apitest"
)

// TestResponsesNotCachedNorSniffed: every answer of the API, success or error,
// public or not, says nosniff and no-store (tokens and mail must stay out of
// caches); the Swagger UI's static files say nosniff and may be cached.
func TestResponsesNotCachedNorSniffed(t *testing.T) {
	e := apitest.New(t)
	cases := []struct {
		method, path, token string
		body                any
		status              int
	}{
		{"POST", "/api/v1/auth/login", "", map[string]string{"email": apitest.AdminEmail, "password": apitest.AdminPassword}, 200},
		{"POST", "/api/v1/auth/login", "", map[string]string{"email": apitest.AdminEmail, "password": "wrong-password"}, 401},
		{"GET", "/api/v1/me", e.AdminToken, nil, 200},
		{"GET", "/api/v1/me", "", nil, 401},
		{"GET", "/api/v1/domains", e.AdminToken, nil, 200},
		{"GET", "/api/v1/users/nobody@example.com", e.AdminToken, nil, 404},
		{"POST", "/api/v1/domains", e.AdminToken, "{not json", 400},
		{"GET", "/api/v1/no-such-route", "", nil, 404},
		{"PUT", "/api/v1/me", e.AdminToken, nil, 405},
		{"GET", "/healthz", "", nil, 200},
		{"GET", "/readyz", "", nil, 200},
		{"GET", "/metrics", "", nil, 200},
	}
	for _, c := range cases {
		r := e.Do(c.method, c.path, c.body, c.token).Want(c.status)
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s → %d: X-Content-Type-Options %q", c.method, c.path, r.Status, got)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s → %d: Cache-Control %q", c.method, c.path, r.Status, got)
		}
	}
	// The documents (the contract check cannot read openapi.yaml as the string
	// it is documented as) and the Swagger UI, whose page and scripts carry
	// nothing private.
	for path, noStore := range map[string]bool{"/openapi.yaml": true, "/swagger/doc.json": true, "/swagger/index.html": false, "/swagger/swagger-ui.css": false} {
		resp, err := e.Server.Client().Get(e.Server.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d, nosniff %q", path, resp.StatusCode, resp.Header.Get("X-Content-Type-Options"))
		}
		if got := resp.Header.Get("Cache-Control") == "no-store"; got != noStore {
			t.Errorf("GET %s: Cache-Control %q", path, resp.Header.Get("Cache-Control"))
		}
	}
}

// TestNotFoundDoesNotEchoThePath: the 404 of an unknown route is a fixed text,
// whatever the path holds (markup, script, a lure for the reader).
func TestNotFoundDoesNotEchoThePath(t *testing.T) {
	e := apitest.New(t)
	var first string
	for _, p := range []string{
		"/api/v1/nope",
		"/api/v1/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
		"/%3Cimg%20src=x%20onerror=alert(1)%3E",
		"/api/v1/\"><svg onload=alert(1)>",
		"/api/v1/visit-evil.example-to-reset-your-password",
	} {
		r := e.Do("GET", p, nil, e.AdminToken).Want(404)
		if code := r.ErrorCode(); code != "not_found" {
			t.Errorf("GET %s: code %q", p, code)
		}
		body := string(r.Body)
		for _, bad := range []string{"<", ">", "script", "svg", "img", "%3C", "evil", "nope", "\\u003c"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: the answer repeats the path (%q): %s", p, bad, body)
			}
		}
		if first == "" {
			first = body
		} else if body != first {
			t.Errorf("GET %s: the answer depends on the path:\n%s\n%s", p, first, body)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
	}

	// The same with the raw bytes on the wire, not escaped by a client.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(e.Server.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a test
	if _, err := conn.Write([]byte("GET /<script>alert(1)</script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&sb) //nolint:errcheck // a test
	if resp.StatusCode != 404 || sb.String() != first {
		t.Errorf("raw GET /<script>…: %d %s", resp.StatusCode, sb.String())
	}
}
