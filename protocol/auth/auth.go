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
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailgate/mailgate/models"
)

// ErrFailed is every failed login: a wrong password, an unknown user and a
// disabled user look the same from outside.
var ErrFailed = errors.New("invalid credentials")

// ErrThrottled is a login refused before its password was looked at: its
// network or its account has used up the failures the login budget allows in
// the window. It is not ErrFailed: the client is told to come back later
// (RetryAfter), in its protocol's words for a temporary refusal.
var ErrThrottled = errors.New("too many failed logins; try again later")

// ThrottledError is ErrThrottled with when to try again.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v (in %v)", ErrThrottled, e.RetryAfter.Round(time.Second))
}

func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// RetryAfter is how long a client refused with ErrThrottled should wait.
func RetryAfter(err error) time.Duration {
	var te *ThrottledError
	if errors.As(err, &te) {
		return te.RetryAfter
	}
	return 0
}

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

// Defaults of the login budget.
const (
	DefaultFailuresPerNetwork = 20
	DefaultFailuresPerAccount = 10
	DefaultBudgetWindow       = 15 * time.Minute
	DefaultKnownNetworkFor    = 30 * 24 * time.Hour
)

// Options tune an Authenticator.
type Options struct {
	// FailuresPerNetwork is how many failed logins one client network (an
	// IPv4 address, an IPv6 /64) may have in Window, over all accounts and
	// front ends (0: DefaultFailuresPerNetwork).
	FailuresPerNetwork int
	// FailuresPerAccount is how many failed logins one account may have in
	// Window from networks it has not logged in from lately (0:
	// DefaultFailuresPerAccount). From a network it has, the account is never
	// held back: an attacker cannot lock its user out.
	FailuresPerAccount int
	// Window is the sliding window failures are counted in (0:
	// DefaultBudgetWindow).
	Window time.Duration
	// KnownNetworkFor is how long a network a user logged in from stays
	// known (0: DefaultKnownNetworkFor).
	KnownNetworkFor time.Duration
	// CacheTTL is how long a verified password is remembered, so that the
	// user's next logins skip bcrypt (0: not at all; see credCache).
	CacheTTL time.Duration
	// CacheEntries bounds the remembered passwords, one per user (0:
	// DefaultCacheEntries).
	CacheEntries int
	Logger       *slog.Logger
}

// Authenticator checks credentials against the store, within the login
// budget.
//
// The budget is kept in the database, so that every front end (HTTP, SMTP,
// IMAP, POP3) and every instance sharing the database draws on the same one:
// an attacker gains nothing by spreading guesses over ports or instances. An
// attempt reserves a failure on its network's and its account's counts before
// the password is looked at, and gives it back if it succeeds; so a guess
// dropped before its answer still counts, parallel guesses cannot share the
// last allowed failure, and a success (on the attacker's own account, say)
// clears nothing but its own reservation. Over budget, an attempt is refused
// at once, with no password work.
type Authenticator struct {
	store *models.Store
	opt   Options
	dummy []byte // a hash to compare against for unknown users, so they take as long
	cache *credCache

	now      func() time.Time // time.Now; tests move it
	compares atomic.Int64     // bcrypt comparisons made, for tests
}

// New returns an Authenticator.
func New(store *models.Store, opt Options) *Authenticator {
	if opt.FailuresPerNetwork <= 0 {
		opt.FailuresPerNetwork = DefaultFailuresPerNetwork
	}
	if opt.FailuresPerAccount <= 0 {
		opt.FailuresPerAccount = DefaultFailuresPerAccount
	}
	if opt.Window <= 0 {
		opt.Window = DefaultBudgetWindow
	}
	if opt.KnownNetworkFor <= 0 {
		opt.KnownNetworkFor = DefaultKnownNetworkFor
	}
	if opt.CacheEntries <= 0 {
		opt.CacheEntries = DefaultCacheEntries
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	dummy, _ := bcrypt.GenerateFromPassword([]byte("not a real password"), bcrypt.DefaultCost)
	return &Authenticator{store: store, opt: opt, dummy: dummy, cache: newCredCache(opt.CacheTTL, opt.CacheEntries), now: time.Now}
}

// Check verifies an address and password for a client at remote (an IP or
// host:port). It returns the user; ErrFailed; a *ThrottledError (ErrThrottled)
// when the login budget refuses the attempt; or an error of the store (which
// the caller reports as a temporary failure). A good and a wrong password take
// the same work to answer.
func (a *Authenticator) Check(ctx context.Context, email, password, remote string) (*models.User, error) {
	if err := CheckCredentialSize(email, password); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFailed, err)
	}
	now := a.now()
	account := accountKey(email)
	network := NetworkOf(remote)
	known, err := a.store.KnownNetwork(ctx, account, network, now.Add(-a.opt.KnownNetworkFor))
	if err != nil {
		return nil, err
	}
	keys := []string{"net:" + network, "acct:" + account}
	minute, err := a.store.ReserveLogin(ctx, []models.BudgetLimit{
		{Key: keys[0], Limit: a.opt.FailuresPerNetwork},
		{Key: keys[1], Limit: a.opt.FailuresPerAccount, Skip: known},
	}, a.opt.Window, now)
	if retry, over := models.IsOverBudget(err); over {
		a.opt.Logger.Warn("login refused: budget used up", "user", email, "remote", remote, "retry_after", retry.Round(time.Second))
		return nil, &ThrottledError{RetryAfter: retry}
	}
	if err != nil {
		return nil, err
	}
	u, err := a.store.GetUser(ctx, email)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return nil, fmt.Errorf("look up %s: %w", email, err)
	}
	match := u != nil && !u.Disabled && a.cache.verified(u.ID, u.PasswordHash, password, now)
	if !match {
		hash := a.dummy
		if u != nil {
			hash = []byte(u.PasswordHash)
		}
		a.compares.Add(1)
		match = bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
		if u != nil && match && !u.Disabled {
			a.cache.remember(u.ID, u.PasswordHash, password, now)
		}
	}
	if u != nil && match && !u.Disabled {
		// Not a failure after all; and the user's network is known from now on.
		// The session can go on if these fail: the worst is a failure counted.
		if err := a.store.ReleaseLogin(ctx, keys, minute); err != nil {
			a.opt.Logger.Warn("give back a login reservation", "err", err)
		}
		if err := a.store.LoginSucceeded(ctx, account, network, now); err != nil {
			a.opt.Logger.Warn("record a login network", "err", err)
		}
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
	return nil, ErrFailed
}

// Prune forgets failures that left the window and networks not used lately.
func (a *Authenticator) Prune(ctx context.Context) error {
	now := a.now()
	return a.store.PruneLogins(ctx, now.Add(-a.opt.Window-time.Minute), now.Add(-a.opt.KnownNetworkFor))
}

// accountKey is the account an attempt is counted against: the normalized
// address, or the name as typed (lower case) when it is no address: unknown
// and malformed names are counted alike, so counting tells nothing.
func accountKey(email string) string {
	if n, err := models.NormalizeEmail(email); err == nil {
		return n
	}
	return strings.ToLower(strings.TrimSpace(email))
}

// NetworkOf is the network a client is counted under: its IPv4 address, or
// the /64 of its IPv6 address (one host usually has a /64 to itself).
func NetworkOf(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return host
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
