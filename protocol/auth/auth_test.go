package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

func newUser(t *testing.T, s *models.Store, email, pw string) *models.User {
	t.Helper()
	hash, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(context.Background(), models.NewUser{Email: email, PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestHashPassword(t *testing.T) {
	for _, bad := range []string{"", "short", "1234567", strings.Repeat("x", 73)} {
		if _, err := HashPassword(bad); !errors.Is(err, models.ErrInvalid) {
			t.Errorf("HashPassword(%d chars) = %v, want ErrInvalid", len(bad), err)
		}
	}
	h, err := HashPassword("correct horse")
	if err != nil || !strings.HasPrefix(h, "$2") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash %q, %v", h, err)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	newUser(t, s, "alice@example.com", "alice-password")
	a := New(s, Options{FreeFailures: 2, MaxDelay: time.Millisecond})
	if u, err := a.Check(ctx, "ALICE@example.com", "alice-password", "192.0.2.1:1234"); err != nil || u.Email != "alice@example.com" {
		t.Fatalf("good login: %v, %v", u, err)
	}
	for _, c := range []struct{ email, pw string }{
		{"alice@example.com", "wrong-password"},
		{"nobody@example.com", "alice-password"},
		{"not an address", "x"},
	} {
		if _, err := a.Check(ctx, c.email, c.pw, "192.0.2.1:1234"); !errors.Is(err, ErrFailed) {
			t.Errorf("Check(%s) = %v, want ErrFailed", c.email, err)
		}
	}
	if n := a.Failures("192.0.2.1:999"); n != 3 {
		t.Fatalf("failures counted per client IP: %d, want 3", n)
	}
	if n := a.Failures("192.0.2.2"); n != 0 {
		t.Fatalf("another client has %d failures", n)
	}
	dis := true
	s.UpdateUser(ctx, "alice@example.com", models.UserPatch{Disabled: &dis})
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", "192.0.2.3"); !errors.Is(err, ErrFailed) {
		t.Fatalf("disabled user: %v", err)
	}
	// A success forgets the client's failures.
	dis = false
	s.UpdateUser(ctx, "alice@example.com", models.UserPatch{Disabled: &dis})
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if n := a.Failures("192.0.2.1"); n != 0 {
		t.Fatalf("failures after success: %d", n)
	}
}

func TestFailureDelayGrows(t *testing.T) {
	a := New(nil, Options{FreeFailures: 2, MaxDelay: 2 * time.Second})
	var got []time.Duration
	for i := 0; i < 7; i++ {
		got = append(got, a.failed("198.51.100.7"))
	}
	want := []time.Duration{0, 0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	u := newUser(t, s, "alice@example.com", "alice-password")
	tk := NewTokens(s, []byte("0123456789abcdef0123456789abcdef"), time.Hour)
	tok, ttl, err := tk.Issue(u)
	if err != nil || ttl != time.Hour {
		t.Fatal(err)
	}
	if got, err := tk.Verify(ctx, tok); err != nil || got.ID != u.ID {
		t.Fatalf("Verify = %v, %v", got, err)
	}
	other := NewTokens(s, []byte("another secret, also 32 bytes..."), time.Hour)
	if _, err := other.Verify(ctx, tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token of another secret: %v", err)
	}
	pw, _ := HashPassword("new-password")
	s.UpdateUser(ctx, u.Email, models.UserPatch{PasswordHash: &pw})
	if _, err := tk.Verify(ctx, tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token after password change: %v", err)
	}
	expired := NewTokens(s, []byte("0123456789abcdef0123456789abcdef"), -time.Minute)
	u, _ = s.GetUser(ctx, u.Email)
	old, _, _ := expired.Issue(u)
	if _, err := tk.Verify(ctx, old); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token: %v", err)
	}
	s.DeleteUser(ctx, u.Email)
	fresh, _, _ := tk.Issue(u)
	if _, err := tk.Verify(ctx, fresh); !errors.Is(err, ErrBadToken) {
		t.Fatalf("token of a deleted user: %v", err)
	}
}
