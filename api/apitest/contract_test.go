package apitest

import (
	"net/http"
	"testing"
)

// TestContractCatchesWrongResponses shows the contract check is not a formality:
// responses the document does not describe are caught.
func TestContractCatchesWrongResponses(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}}
	login := []byte(`{"email":"admin@example.com","password":"admin-password-1"}`)
	cases := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"a field missing", "POST", "/api/v1/auth/login", 200, `{"token_type":"Bearer","expires_in":3600}`},
		{"a wrong type", "POST", "/api/v1/auth/login", 200, `{"access_token":1,"token_type":"Bearer","expires_in":3600,"user":{}}`},
		{"an undocumented status", "GET", "/api/v1/me", 418, `{"error":{"code":"teapot","message":"no"}}`},
		{"an error outside the envelope", "GET", "/api/v1/users/x@example.com", 404, `{"message":"not found"}`},
		{"a bad enum value", "GET", "/api/v1/me", 200, `{"email":"a@example.com","domain":"example.com","display_name":"","role":"root","quota_bytes":0,"used_bytes":0,"disabled":false,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`},
	}
	for _, c := range cases {
		r := &Response{t: t, Status: c.status, Header: h, Body: []byte(c.body)}
		var body []byte
		if c.method == "POST" {
			body = login
		}
		if err := CheckContract(t, c.method, c.path, h, body, r); err == nil {
			t.Errorf("%s: the contract check accepted %d %s", c.name, c.status, c.body)
		}
	}
	good := &Response{t: t, Status: 200, Header: h, Body: []byte(`{"email":"a@example.com","domain":"example.com","display_name":"","role":"user","quota_bytes":0,"used_bytes":0,"disabled":false,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`)}
	if err := CheckContract(t, "GET", "/api/v1/me", h, nil, good); err != nil {
		t.Errorf("a correct response was refused: %v", err)
	}
}
