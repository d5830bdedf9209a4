package auth

import (
	"context"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// TestWatchUser: a change that must end sessions calls revoked once, with
// its reason; one that need not (display name, quota) does not.
func TestWatchUser(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	a := New(s, Options{})
	watch := func(email string) (*models.User, <-chan string) {
		u, err := s.GetUser(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 2)
		wctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		a.WatchUser(wctx, u, func(reason string) { got <- reason })
		return u, got
	}
	expect := func(got <-chan string, want string) {
		t.Helper()
		select {
		case r := <-got:
			if r != want {
				t.Errorf("revoked for %q, want %q", r, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("not revoked (want %q)", want)
		}
	}
	quiet := func(got <-chan string) {
		t.Helper()
		select {
		case r := <-got:
			t.Errorf("revoked for %q after a harmless change", r)
		case <-time.After(300 * time.Millisecond): // a bounded wait for what must not happen
		}
	}

	newUser(t, s, "alice@example.com", "alice-password")
	_, got := watch("alice@example.com")
	name, quota := "Alice", int64(1<<20)
	s.UpdateUser(ctx, "alice@example.com", models.UserPatch{DisplayName: &name, QuotaBytes: &quota})
	quiet(got)
	hash, _ := HashPassword("another-password")
	s.UpdateUser(ctx, "alice@example.com", models.UserPatch{PasswordHash: &hash})
	expect(got, RevokedChanged)

	newUser(t, s, "bob@example.com", "bob-password")
	_, got = watch("bob@example.com")
	dis := true
	s.UpdateUser(ctx, "bob@example.com", models.UserPatch{Disabled: &dis})
	expect(got, RevokedDisabled)

	newUser(t, s, "carol@example.com", "carol-password")
	_, got = watch("carol@example.com")
	if err := s.DeleteUser(ctx, "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	expect(got, RevokedDeleted)

	// A change between the login and the watch is caught by the first check.
	newUser(t, s, "dave@example.com", "dave-password")
	u, err := s.GetUser(ctx, "dave@example.com")
	if err != nil {
		t.Fatal(err)
	}
	s.UpdateUser(ctx, "dave@example.com", models.UserPatch{Disabled: &dis})
	late := make(chan string, 1)
	a.WatchUser(ctx, u, func(r string) { late <- r })
	expect(late, RevokedDisabled)

	// Users of a domain deleted with force go too.
	s.CreateDomain(ctx, "gone.example", "")
	newUser(t, s, "erin@gone.example", "erin-password")
	_, got = watch("erin@gone.example")
	if err := s.DeleteDomain(ctx, "gone.example", true); err != nil {
		t.Fatal(err)
	}
	expect(got, RevokedDeleted)
}
