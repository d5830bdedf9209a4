package handlers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailgate/mailgate/api/apitest"
	"github.com/mailgate/mailgate/handlers"
)

func TestDomainsLifecycle(t *testing.T) {
	e := apitest.New(t)
	tok := e.AdminToken
	var d handlers.Domain
	e.Do("POST", "/api/v1/domains", map[string]any{"name": "Shop.Example.ORG", "description": "shop"}, tok).Want(201).JSON(&d)
	if d.Name != "shop.example.org" || d.Description != "shop" {
		t.Fatalf("created %+v", d)
	}
	if code := e.Do("POST", "/api/v1/domains", map[string]any{"name": "SHOP.example.org"}, tok).Want(409).ErrorCode(); code != "conflict" {
		t.Fatalf("duplicate domain code %q", code)
	}
	e.Do("POST", "/api/v1/domains", map[string]any{"name": "bücher.example"}, tok).Want(201).JSON(&d)
	if d.Name != "xn--bcher-kva.example" {
		t.Fatalf("IDNA name %q", d.Name)
	}
	e.Do("GET", "/api/v1/domains/B%C3%BCcher.example", nil, tok).Want(200)
	e.Do("PATCH", "/api/v1/domains/shop.example.org", map[string]any{"disabled": true}, tok).Want(200).JSON(&d)
	if !d.Disabled || d.Description != "shop" {
		t.Fatalf("patched %+v", d)
	}
	e.Do("POST", "/api/v1/users", map[string]any{"email": "a@shop.example.org", "password": "password-1"}, tok).Want(201)
	r := e.Do("DELETE", "/api/v1/domains/shop.example.org", nil, tok).Want(409)
	if !strings.Contains(string(r.Body), "force=true") {
		t.Fatalf("409 does not explain: %s", r.Body)
	}
	e.Do("DELETE", "/api/v1/domains/shop.example.org?force=maybe", nil, tok).Want(400)
	e.Do("DELETE", "/api/v1/domains/shop.example.org?force=true", nil, tok).Want(204)
	e.Do("GET", "/api/v1/domains/shop.example.org", nil, tok).Want(404)
	e.Do("GET", "/api/v1/users/a@shop.example.org", nil, tok).Want(404)
	e.Do("DELETE", "/api/v1/domains/example.com?force=true", nil, tok).Want(409) // holds the last admin
}

func TestUsersAndSelfService(t *testing.T) {
	e := apitest.New(t)
	tok := e.AdminToken
	var u handlers.User
	e.Do("POST", "/api/v1/users", map[string]any{"email": "Alice@Example.com", "password": "alice-pass-1", "display_name": "Alice", "quota_bytes": 1000}, tok).Want(201).JSON(&u)
	if u.Email != "alice@example.com" || u.Role != "user" || u.QuotaBytes != 1000 || u.Domain != "example.com" {
		t.Fatalf("created %+v", u)
	}
	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]any{"password": "alice-pass-1"}, "email"},
		{map[string]any{"email": "not-an-address", "password": "alice-pass-1"}, "email"},
		{map[string]any{"email": "b@example.com"}, "password"},
		{map[string]any{"email": "b@example.com", "password": "short"}, "password"},
		{map[string]any{"email": "b@example.com", "password": "long-enough", "role": "root"}, "role"},
		{map[string]any{"email": "b@example.com", "password": "long-enough", "quota_bytes": -1}, "quota_bytes"},
		{map[string]any{"email": "b@nowhere.example", "password": "long-enough"}, "email"},
		{map[string]any{"email": "b@example.com", "password": "long-enough", "extra": 1}, "extra"},
		{map[string]any{"email": 42, "password": "long-enough"}, "email"},
	} {
		r := e.Do("POST", "/api/v1/users", c.body, tok).Want(400)
		var env handlers.ErrorEnvelope
		r.JSON(&env)
		if env.Error.Field != c.field || !strings.Contains(env.Error.Message, c.field) {
			t.Errorf("body %v: error %+v, want field %q named", c.body, env.Error, c.field)
		}
	}
	for _, raw := range []string{"", "{", `{"email":"x@example.com"} {}`, "[]"} {
		e.Do("POST", "/api/v1/users", raw, tok).Want(400)
	}
	e.Do("POST", "/api/v1/users", "email=x", tok, "Content-Type", "application/x-www-form-urlencoded").Want(415)
	e.Do("POST", "/api/v1/users", map[string]any{"email": "ALICE@example.com", "password": "alice-pass-1"}, tok).Want(409)

	alice := e.Login("alice@example.com", "alice-pass-1")
	e.Do("GET", "/api/v1/me", nil, alice).Want(200).JSON(&u)
	if u.Email != "alice@example.com" {
		t.Fatalf("me = %+v", u)
	}
	e.Do("GET", "/api/v1/users/alice@example.com", nil, alice).Want(200)
	e.Do("GET", "/api/v1/users/admin@example.com", nil, alice).Want(403)
	e.Do("GET", "/api/v1/users", nil, alice).Want(403)
	e.Do("PATCH", "/api/v1/users/alice@example.com", map[string]any{"display_name": "Al"}, alice).Want(200)
	e.Do("PATCH", "/api/v1/users/alice@example.com", map[string]any{"role": "admin"}, alice).Want(403)
	e.Do("PATCH", "/api/v1/users/alice@example.com", map[string]any{"password": "new-pass-123"}, alice).Want(400)
	e.Do("PATCH", "/api/v1/users/alice@example.com", map[string]any{"password": "new-pass-123", "current_password": "wrong-one-1"}, alice).Want(400)
	e.Do("PATCH", "/api/v1/users/alice@example.com", map[string]any{"password": "new-pass-123", "current_password": "alice-pass-1"}, alice).Want(200)
	// The password change ended the earlier token.
	e.Do("GET", "/api/v1/me", nil, alice).Want(401)
	alice = e.Login("alice@example.com", "new-pass-123")
	e.Do("PATCH", "/api/v1/users/alice@example.com", map[string]any{"disabled": true}, tok).Want(200)
	e.Do("GET", "/api/v1/me", nil, alice).Want(401)
	e.Do("POST", "/api/v1/auth/login", map[string]string{"email": "alice@example.com", "password": "new-pass-123"}, "").Want(401)
	e.Do("PATCH", "/api/v1/users/admin@example.com", map[string]any{"role": "user"}, tok).Want(409)
	e.Do("DELETE", "/api/v1/users/admin@example.com", nil, tok).Want(409)
	e.Do("DELETE", "/api/v1/users/alice@example.com", nil, tok).Want(204)
	e.Do("DELETE", "/api/v1/users/alice@example.com", nil, tok).Want(404)
}

func TestUserPagination(t *testing.T) {
	e := apitest.New(t)
	tok := e.AdminToken
	for i := 0; i < 7; i++ {
		e.Do("POST", "/api/v1/users", map[string]any{"email": fmt.Sprintf("u%d@example.com", i), "password": "password-1"}, tok).Want(201)
	}
	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		var p handlers.UserPage
		e.Do("GET", "/api/v1/users?limit=3&domain=example.com&cursor="+cursor, nil, tok).Want(200).JSON(&p)
		for _, u := range p.Items {
			all = append(all, u.Email)
		}
		if p.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = p.NextCursor
	}
	if len(all) != 8 || all[0] != "admin@example.com" || all[7] != "u6@example.com" {
		t.Fatalf("paged users = %v", all)
	}
	// A cursor that was tampered with, or made for another list, is a 400.
	var p handlers.UserPage
	e.Do("GET", "/api/v1/users?limit=3", nil, tok).Want(200).JSON(&p)
	raw, _ := base64.RawURLEncoding.DecodeString(p.NextCursor)
	forged := base64.RawURLEncoding.EncodeToString(append(raw[:16:16], "u4@example.com"...))
	for _, c := range []string{forged, "garbage", p.NextCursor + "x"} {
		if code := e.Do("GET", "/api/v1/users?cursor="+c, nil, tok).Want(400).ErrorCode(); code != "invalid_request" {
			t.Fatalf("tampered cursor code %q", code)
		}
	}
	e.Do("GET", "/api/v1/groups?cursor="+p.NextCursor, nil, tok).Want(400)
	for _, l := range []string{"0", "201", "x", "-1"} {
		e.Do("GET", "/api/v1/users?limit="+l, nil, tok).Want(400)
	}
}

func TestGroups(t *testing.T) {
	e := apitest.New(t)
	tok := e.AdminToken
	for _, u := range []string{"a", "b", "c"} {
		e.Do("POST", "/api/v1/users", map[string]any{"email": u + "@example.com", "password": "password-1"}, tok).Want(201)
	}
	var g handlers.Group
	e.Do("POST", "/api/v1/groups", map[string]any{"email": "Team@example.com", "name": "Team", "members": []string{"B@example.com", "a@example.com"}}, tok).Want(201).JSON(&g)
	if g.Email != "team@example.com" || strings.Join(g.Members, ",") != "a@example.com,b@example.com" {
		t.Fatalf("group %+v", g)
	}
	e.Do("POST", "/api/v1/groups", map[string]any{"email": "a@example.com"}, tok).Want(409)
	e.Do("POST", "/api/v1/users", map[string]any{"email": "team@example.com", "password": "password-1"}, tok).Want(409)
	e.Do("POST", "/api/v1/groups", map[string]any{"email": "x@example.com", "members": []string{"ghost@example.com"}}, tok).Want(400)
	var ml handlers.MemberList
	e.Do("PUT", "/api/v1/groups/team@example.com/members/c@example.com", nil, tok).Want(200).JSON(&ml)
	e.Do("PUT", "/api/v1/groups/team@example.com/members/c@example.com", nil, tok).Want(200)
	if len(ml.Items) != 3 {
		t.Fatalf("members %v", ml.Items)
	}
	e.Do("PUT", "/api/v1/groups/team@example.com/members/ghost@example.com", nil, tok).Want(404)
	e.Do("DELETE", "/api/v1/groups/team@example.com/members/a@example.com", nil, tok).Want(204)
	e.Do("DELETE", "/api/v1/groups/team@example.com/members/a@example.com", nil, tok).Want(404)
	e.Do("PATCH", "/api/v1/groups/team@example.com", map[string]any{"name": "T", "members": []string{"c@example.com"}}, tok).Want(200).JSON(&g)
	if g.Name != "T" || len(g.Members) != 1 {
		t.Fatalf("patched %+v", g)
	}
	var gp handlers.GroupPage
	e.Do("GET", "/api/v1/groups?domain=example.com", nil, tok).Want(200).JSON(&gp)
	if len(gp.Items) != 1 || gp.Items[0].Members[0] != "c@example.com" {
		t.Fatalf("list %+v", gp)
	}
	e.Do("GET", "/api/v1/groups/team@example.com/members", nil, tok).Want(200)
	e.Do("DELETE", "/api/v1/users/c@example.com", nil, tok).Want(204)
	e.Do("GET", "/api/v1/groups/team@example.com", nil, tok).Want(200).JSON(&g)
	if len(g.Members) != 0 {
		t.Fatalf("deleted user still a member: %v", g.Members)
	}
	e.Do("DELETE", "/api/v1/groups/team@example.com", nil, tok).Want(204)
	e.Do("GET", "/api/v1/groups/team@example.com", nil, tok).Want(404)
}

func TestLoginAndTokens(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	bad := e.Do("POST", "/api/v1/auth/login", map[string]string{"email": apitest.AdminEmail, "password": "wrong-password"}, "").Want(401)
	unknown := e.Do("POST", "/api/v1/auth/login", map[string]string{"email": "nobody@example.com", "password": "wrong-password"}, "").Want(401)
	if string(bad.Body) != string(unknown.Body) {
		t.Fatalf("wrong password %s differs from unknown user %s", bad.Body, unknown.Body)
	}
	e.Do("POST", "/api/v1/auth/login", map[string]string{"email": apitest.AdminEmail}, "").Want(400)

	admin, err := e.Store.GetUser(ctx, apitest.AdminEmail)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	good := jwt.MapClaims{"sub": fmt.Sprint(admin.ID), "role": "admin", "ver": 0, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	e.Do("GET", "/api/v1/me", nil, sign(jwt.SigningMethodHS256, secret, good)).Want(200)
	expired := jwt.MapClaims{"sub": fmt.Sprint(admin.ID), "role": "admin", "ver": 0, "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}
	noExp := jwt.MapClaims{"sub": fmt.Sprint(admin.ID), "role": "admin", "ver": 0, "iat": now.Unix()}
	none := sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
	for name, tok := range map[string]string{
		"expired":        sign(jwt.SigningMethodHS256, secret, expired),
		"no exp":         sign(jwt.SigningMethodHS256, secret, noExp),
		"alg none":       none,
		"HS512":          sign(jwt.SigningMethodHS512, secret, good),
		"other secret":   sign(jwt.SigningMethodHS256, []byte("another secret of 32 bytes......"), good),
		"garbage":        "abc.def.ghi",
		"tampered claim": tamper(sign(jwt.SigningMethodHS256, secret, good)),
	} {
		if code := e.Do("GET", "/api/v1/me", nil, tok).Want(401).ErrorCode(); code != "unauthorized" {
			t.Errorf("%s: code %q", name, code)
		}
	}
	r := e.Do("GET", "/api/v1/me", nil, "")
	r.Want(401)
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

// tamper rewrites the payload (role) without re-signing.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	json.Unmarshal(raw, &m)
	m["sub"] = "999"
	raw, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func TestLimitsAndEnvelope(t *testing.T) {
	e := apitest.Setup(t)
	e.Options.MaxBodyBytes = 256
	e.Options.LoginPerMinute = 3 // a burst of 3, then one more every 20 s
	e.Start()
	big := map[string]string{"name": strings.Repeat("a", 300) + ".example"}
	if code := e.Do("POST", "/api/v1/domains", big, e.AdminToken).Want(413).ErrorCode(); code != "payload_too_large" {
		t.Fatalf("413 code %q", code)
	}
	r := e.Do("GET", "/api/v1/nothing-here", nil, e.AdminToken).Want(404)
	if r.ErrorCode() != "not_found" {
		t.Fatal("unknown route not in envelope")
	}
	// Logins beyond the per-minute budget are 429 with Retry-After.
	var got429 *apitest.Response
	for i := 0; i < 6 && got429 == nil; i++ {
		r := e.Do("POST", "/api/v1/auth/login", map[string]string{"email": "x@example.com", "password": "wrong-password"}, "")
		if r.Status == http.StatusTooManyRequests {
			got429 = r
		}
	}
	if got429 == nil {
		t.Fatal("no 429 after 6 quick logins")
	}
	if got429.Header.Get("Retry-After") == "" || got429.ErrorCode() != "rate_limited" {
		t.Fatalf("429 without Retry-After or envelope: %v %s", got429.Header, got429.Body)
	}
	r = e.Do("GET", "/healthz", nil, "", "X-Request-ID", "trace-123")
	if r.Header.Get("X-Request-ID") != "trace-123" {
		t.Fatalf("X-Request-ID not echoed: %q", r.Header.Get("X-Request-ID"))
	}
	e.Do("GET", "/readyz", nil, "").Want(200)
}
