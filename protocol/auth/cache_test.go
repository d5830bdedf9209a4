package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// TestCacheSkipsBcryptForAVerifiedPassword: the second login with the same
// password costs no bcrypt comparison; a wrong password always does, and is
// refused, cached right password or not.
func TestCacheSkipsBcryptForAVerifiedPassword(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	newUser(t, s, "alice@example.com", "alice-password")
	a := New(s, Options{CacheTTL: time.Minute})
	for i := 0; i < 3; i++ {
		if _, err := a.Check(ctx, "alice@example.com", "alice-password", "192.0.2.1"); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	if n := a.compares.Load(); n != 1 {
		t.Fatalf("%d bcrypt comparisons for 3 logins with one password, want 1", n)
	}
	for _, pw := range []string{"alice-passworD", "alice-password ", ""} {
		if _, err := a.Check(ctx, "alice@example.com", pw, "192.0.2.1"); !errors.Is(err, ErrFailed) {
			t.Fatalf("wrong password %q: %v, want ErrFailed", pw, err)
		}
	}
	if n := a.compares.Load(); n != 4 {
		t.Fatalf("%d bcrypt comparisons after 3 wrong passwords, want 4: a wrong one must always be compared", n)
	}
	// A wrong password's failure is not cached either: the right one still works from the cache.
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", "192.0.2.1"); err != nil || a.compares.Load() != 4 {
		t.Fatalf("right password after wrong ones: %v, %d comparisons", err, a.compares.Load())
	}
	// Past the TTL, bcrypt again.
	a.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", "192.0.2.1"); err != nil || a.compares.Load() != 5 {
		t.Fatalf("login past the TTL: %v, %d comparisons, want 5", err, a.compares.Load())
	}
}

// TestCacheOff: with no TTL every login is compared.
func TestCacheOff(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	newUser(t, s, "alice@example.com", "alice-password")
	a := New(s, Options{})
	for i := 0; i < 2; i++ {
		if _, err := a.Check(ctx, "alice@example.com", "alice-password", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.compares.Load(); n != 2 {
		t.Fatalf("%d comparisons with the cache off, want 2", n)
	}
}

// TestCacheFollowsTheStoreOnEveryInstance: two instances share a database and
// have both verified alice's password. A password change, a disable or a
// delete made through one refuses the old password on the other at its next
// login, with nothing sent between them.
func TestCacheFollowsTheStoreOnEveryInstance(t *testing.T) {
	ctx := context.Background()
	url := modelstest.URL(t)
	storeA, storeB := modelstest.Open(t, url), modelstest.Open(t, url)
	if _, err := storeA.CreateDomain(ctx, "example.com", ""); err != nil {
		t.Fatal(err)
	}
	a := New(storeA, Options{CacheTTL: time.Hour})
	b := New(storeB, Options{CacheTTL: time.Hour})
	login := func(au *Authenticator, email, pw string) error {
		_, err := au.Check(ctx, email, pw, "192.0.2.1")
		return err
	}
	for _, change := range []struct {
		name  string
		apply func(email string) error
	}{
		{"password change", func(email string) error {
			hash, err := HashPassword("a-new-password")
			if err != nil {
				return err
			}
			_, err = storeA.UpdateUser(ctx, email, models.UserPatch{PasswordHash: &hash})
			return err
		}},
		{"disable", func(email string) error {
			disabled := true
			_, err := storeA.UpdateUser(ctx, email, models.UserPatch{Disabled: &disabled})
			return err
		}},
		{"delete", func(email string) error { return storeA.DeleteUser(ctx, email) }},
	} {
		email := fmt.Sprintf("u%d@example.com", len(change.name))
		newUser(t, storeA, email, "the-old-password")
		for _, au := range []*Authenticator{a, b, a, b} {
			if err := login(au, email, "the-old-password"); err != nil {
				t.Fatalf("%s: login before: %v", change.name, err)
			}
		}
		before := b.compares.Load()
		if err := change.apply(email); err != nil {
			t.Fatalf("%s: %v", change.name, err)
		}
		for name, au := range map[string]*Authenticator{"A": a, "B": b} {
			if err := login(au, email, "the-old-password"); !errors.Is(err, ErrFailed) {
				t.Errorf("%s: old password on instance %s: %v, want ErrFailed", change.name, name, err)
			}
		}
		if change.name == "password change" {
			if b.compares.Load() == before {
				t.Errorf("instance B refused the old password without comparing: the cache answered")
			}
			if err := login(b, email, "a-new-password"); err != nil {
				t.Errorf("new password on instance B: %v", err)
			}
		}
	}
}

// TestCacheIsBounded: more users than entries keeps the entry count at the
// bound, and every login still succeeds.
func TestCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	a := New(s, Options{CacheTTL: time.Hour, CacheEntries: 3})
	for i := 0; i < 8; i++ {
		email := fmt.Sprintf("user%d@example.com", i)
		newUser(t, s, email, "password-of-user")
		if _, err := a.Check(ctx, email, "password-of-user", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if n := a.cache.len(); n > 3 {
			t.Fatalf("%d entries after %d users, want at most 3", n, i+1)
		}
	}
	if a.cache.len() != 3 {
		t.Fatalf("%d entries, want 3", a.cache.len())
	}
}
