// Package auth is mailgate's one credential check, used by the HTTP login, SMTP
// AUTH, IMAP LOGIN/AUTHENTICATE and POP3 USER/PASS/AUTH alike, and the JWT
// tokens of the HTTP API.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailgate/mailgate/models"
)

// ErrFailed is every failed login: a wrong password, an unknown user and a
// disabled user look the same from outside.
var ErrFailed = errors.New("invalid credentials")

// ErrThrottled is a failed login that was answered only after a delay, the
// client having failed too often; it is also ErrFailed.
var ErrThrottled = fmt.Errorf("%w (slowed down after repeated failures)", ErrFailed)

// Password rules.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72 // bcrypt reads no further
)

// HashPassword checks a new password against the rules and hashes it.
func HashPassword(pw string) (string, error) {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLen:
		return "", models.Invalid("password", fmt.Sprintf("must be at least %d characters", MinPasswordLen))
	case len(pw) > MaxPasswordLen:
		return "", models.Invalid("password", fmt.Sprintf("must be at most %d bytes", MaxPasswordLen))
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Options tune an Authenticator.
type Options struct {
	// FreeFailures is how many failures a client may make before each further
	// one is answered only after a delay (0: 3).
	FreeFailures int
	// MaxDelay caps that delay (0: 5s). The delay doubles from 250ms.
	MaxDelay time.Duration
	Logger   *slog.Logger
}

// Authenticator checks credentials against the store and slows down clients
// that keep failing.
type Authenticator struct {
	store *models.Store
	opt   Options
	dummy []byte // a hash to compare against for unknown users, so they take as long

	now func() time.Time // time.Now; tests move it

	// Failures by client IP, in two generations so that forgetting the old
	// ones costs O(1), never a scan under the lock: once per forgetAfter the
	// previous generation is dropped (every failure in it is at least
	// forgetAfter old, so it counts for nothing any more) and the current one
	// becomes the previous. Memory holds the clients that failed in the last
	// two periods at most.
	mu       sync.Mutex
	failures map[string]*failure // the current generation: failures at or after rotated
	older    map[string]*failure // the previous one: failures before rotated
	rotated  time.Time
}

type failure struct {
	n    int
	last time.Time
}

// New returns an Authenticator.
func New(store *models.Store, opt Options) *Authenticator {
	if opt.FreeFailures <= 0 {
		opt.FreeFailures = 3
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	dummy, _ := bcrypt.GenerateFromPassword([]byte("not a real password"), bcrypt.DefaultCost)
	return &Authenticator{store: store, opt: opt, dummy: dummy, now: time.Now}
}

// Check verifies an address and password for a client at remote (an IP or
// host:port). It returns the user, ErrFailed, or an error of the store (which the
// caller reports as a temporary failure). A failure past the free ones is
// returned only after a delay that grows with each further failure.
func (a *Authenticator) Check(ctx context.Context, email, password, remote string) (*models.User, error) {
	if err := CheckCredentialSize(email, password); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFailed, err)
	}
	u, err := a.store.GetUser(ctx, email)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return nil, fmt.Errorf("look up %s: %w", email, err)
	}
	hash := a.dummy
	if u != nil {
		hash = []byte(u.PasswordHash)
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if u != nil && match && !u.Disabled {
		a.succeeded(remote)
		return u, nil
	}
	reason := "wrong password"
	switch {
	case u == nil:
		reason = "unknown user"
	case match:
		reason = "user disabled"
	}
	a.opt.Logger.Info("login failed", "user", email, "remote", remote, "reason", reason)
	if d := a.failed(remote); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return nil, ErrThrottled
	}
	return nil, ErrFailed
}

// Failures tells how many recent failures a client has.
func (a *Authenticator) Failures(remote string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.age(now)
	if f := a.lookup(clientKey(remote)); f != nil && now.Sub(f.last) < forgetAfter {
		return f.n
	}
	return 0
}

const forgetAfter = 15 * time.Minute

// age starts a new generation of failures once the current one is forgetAfter
// old, dropping the previous one. Called with a.mu held.
func (a *Authenticator) age(now time.Time) {
	switch since := now.Sub(a.rotated); {
	case a.failures == nil || since >= 2*forgetAfter:
		// Nothing failed for a whole period since the last rotation: every
		// failure kept is past forgetAfter.
		a.failures, a.older, a.rotated = map[string]*failure{}, nil, now
	case since >= forgetAfter:
		a.failures, a.older, a.rotated = map[string]*failure{}, a.failures, now
	}
}

// lookup finds a client's failures in either generation. Called with a.mu held.
func (a *Authenticator) lookup(k string) *failure {
	if f := a.failures[k]; f != nil {
		return f
	}
	return a.older[k]
}

// tracked is how many clients the Authenticator keeps failures of.
func (a *Authenticator) tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.failures) + len(a.older)
}

func (a *Authenticator) failed(remote string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.age(now)
	k := clientKey(remote)
	f := a.lookup(k)
	if f == nil || now.Sub(f.last) > forgetAfter {
		f = &failure{}
	}
	// A failure now belongs to the current generation.
	delete(a.older, k)
	a.failures[k] = f
	f.n++
	f.last = now
	over := f.n - a.opt.FreeFailures
	if over <= 0 {
		return 0
	}
	d := 250 * time.Millisecond << min(over-1, 10)
	return min(d, a.opt.MaxDelay)
}

func (a *Authenticator) succeeded(remote string) {
	a.mu.Lock()
	k := clientKey(remote)
	delete(a.failures, k)
	delete(a.older, k)
	a.mu.Unlock()
}

// clientKey reduces host:port to the host.
func clientKey(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
