package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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
	a := New(s, Options{})
	if u, err := a.Check(ctx, "ALICE@example.com", "alice-password", "192.0.2.1:1234"); err != nil || u.Email != "alice@example.com" {
		t.Fatalf("good login: %v, %v", u, err)
	}
	for _, c := range []struct{ email, pw string }{
		{"alice@example.com", "wrong-password"},
		{"nobody@example.com", "alice-password"},
		{"not an address", "x"},
		{"alice@example.com", strings.Repeat("x", MaxCredentialLen+1)},
	} {
		if _, err := a.Check(ctx, c.email, c.pw, "192.0.2.1:1234"); !errors.Is(err, ErrFailed) {
			t.Errorf("Check(%s) = %v, want ErrFailed", c.email, err)
		}
	}
	dis := true
	s.UpdateUser(ctx, "alice@example.com", models.UserPatch{Disabled: &dis})
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", "192.0.2.3"); !errors.Is(err, ErrFailed) {
		t.Fatalf("disabled user: %v", err)
	}
}

// budgetEnv is a store with users and an Authenticator whose budget is small.
func budgetEnv(t *testing.T, opt Options) (*Authenticator, *models.Store) {
	t.Helper()
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	for _, u := range []string{"alice", "bob", "mallory"} {
		hash, err := bcryptCheap(u + "-password")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, models.NewUser{Email: u + "@example.com", PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	return New(s, opt), s
}

// bcryptCheap hashes at the lowest cost: the budget, not bcrypt, is tested.
func bcryptCheap(pw string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	return string(h), err
}

// TestBudgetPerNetwork: a network gets its failures' worth of guesses in the
// window, over every account, however they are spread; then it is refused at
// once, with when to come back, even with the right password; a success on
// the attacker's own account clears nothing; and the window slides.
func TestBudgetPerNetwork(t *testing.T) {
	ctx := context.Background()
	a, _ := budgetEnv(t, Options{FailuresPerNetwork: 5, FailuresPerAccount: 100, Window: 10 * time.Minute})
	now := time.Unix(1_800_000_000, 0)
	a.now = func() time.Time { return now }
	attacker := "203.0.113.9:4000"
	for i := 0; i < 5; i++ {
		victim := []string{"alice", "bob"}[i%2] + "@example.com"
		if _, err := a.Check(ctx, victim, "guess", attacker); !errors.Is(err, ErrFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
		if i == 2 {
			// The reset trick: a good login of the attacker's own forgets nothing.
			if _, err := a.Check(ctx, "mallory@example.com", "mallory-password", attacker); err != nil {
				t.Fatalf("own login: %v", err)
			}
		}
	}
	_, err := a.Check(ctx, "alice@example.com", "alice-password", attacker)
	if !errors.Is(err, ErrThrottled) || errors.Is(err, ErrFailed) {
		t.Fatalf("sixth attempt: %v, want ErrThrottled (and not a verdict on the password)", err)
	}
	if r := RetryAfter(err); r <= 0 || r > 11*time.Minute { // the window, and a minute of bucket
		t.Errorf("retry after %v", r)
	}
	// Another address of the same IPv4 client is another network; one of the
	// same IPv6 /64 is the same one.
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", "203.0.113.10:1"); err != nil {
		t.Errorf("a neighbour: %v", err)
	}
	for i := 0; i < 5; i++ {
		a.Check(ctx, "bob@example.com", "guess", fmt.Sprintf("[2001:db8:1:2::%x]:5", i+1)) //nolint:errcheck // failures on purpose
	}
	if _, err := a.Check(ctx, "bob@example.com", "bob-password", "[2001:db8:1:2:ffff::1]:5"); !errors.Is(err, ErrThrottled) {
		t.Errorf("same /64: %v, want ErrThrottled", err)
	}
	now = now.Add(11 * time.Minute) // the window slides past the failures
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", attacker); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// TestBudgetPerAccount: guesses at one account from many networks stop at
// the account's budget, but the user still logs in from a network it used
// before: an attacker cannot lock it out.
func TestBudgetPerAccount(t *testing.T) {
	ctx := context.Background()
	a, _ := budgetEnv(t, Options{FailuresPerNetwork: 100, FailuresPerAccount: 4, Window: 10 * time.Minute})
	home := "198.51.100.20:1"
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", home); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := a.Check(ctx, "alice@example.com", "guess", fmt.Sprintf("192.0.2.%d:1", i+1)); !errors.Is(err, ErrFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := a.Check(ctx, "Alice@Example.com", "alice-password", "192.0.2.77:1"); !errors.Is(err, ErrThrottled) {
		t.Errorf("a new network after the account's budget: %v, want ErrThrottled", err)
	}
	if _, err := a.Check(ctx, "alice@example.com", "alice-password", home); err != nil {
		t.Errorf("the user's own network: %v", err)
	}
	// Other accounts are not held back by alice's budget.
	if _, err := a.Check(ctx, "bob@example.com", "bob-password", "192.0.2.78:1"); err != nil {
		t.Errorf("another account: %v", err)
	}
}

// TestBudgetParallel: guesses sent all at once cannot share the last allowed
// failure: exactly the budget's worth get a verdict.
func TestBudgetParallel(t *testing.T) {
	ctx := context.Background()
	a, _ := budgetEnv(t, Options{FailuresPerNetwork: 6, FailuresPerAccount: 100, Window: 10 * time.Minute})
	const n = 30
	var wg sync.WaitGroup
	var verdicts, throttled atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Check(ctx, "alice@example.com", fmt.Sprintf("guess-%d", i), "203.0.113.50:9")
			switch {
			case errors.Is(err, ErrFailed):
				verdicts.Add(1)
			case errors.Is(err, ErrThrottled):
				throttled.Add(1)
			default:
				t.Errorf("attempt %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if verdicts.Load() != 6 || throttled.Load() != n-6 {
		t.Errorf("%d guesses checked, %d refused; want 6 and %d", verdicts.Load(), throttled.Load(), n-6)
	}
}

func TestNetworkOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:25":              "192.0.2.1",
		"192.0.2.1":                 "192.0.2.1",
		"[::ffff:192.0.2.1]:25":     "192.0.2.1",
		"[2001:db8:a:b:c:d:e:f]:25": "2001:db8:a:b::/64",
		"2001:db8:a:b::1":           "2001:db8:a:b::/64",
		"@":                         "@",
	} {
		if got := NetworkOf(in); got != want {
			t.Errorf("NetworkOf(%q) = %q, want %q", in, got, want)
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
