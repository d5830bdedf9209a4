package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mailgate/mailgate/models"
)

// ErrBadToken is any token that must not be accepted: malformed, badly signed,
// of another algorithm, expired, or issued before the user's password changed or
// the user was disabled.
var ErrBadToken = errors.New("invalid or expired token")

// Tokens issues and verifies the HS256 JWTs of the HTTP API.
type Tokens struct {
	store  *models.Store
	secret []byte
	ttl    time.Duration
}

// NewTokens returns a token service signing with secret.
func NewTokens(store *models.Store, secret []byte, ttl time.Duration) *Tokens {
	return &Tokens{store: store, secret: secret, ttl: ttl}
}

type claims struct {
	Role    string `json:"role"`
	Version int64  `json:"ver"`
	jwt.RegisteredClaims
}

// Issue makes a token for u and tells how long it lives.
func (t *Tokens) Issue(u *models.User) (string, time.Duration, error) {
	now := time.Now()
	c := claims{Role: u.Role, Version: u.TokenVersion, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(u.ID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", 0, fmt.Errorf("sign token: %w", err)
	}
	return s, t.ttl, nil
}

// Verify checks a token and returns its user as the store has it now.
func (t *Tokens) Verify(ctx context.Context, token string) (*models.User, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, ErrBadToken
	}
	id, err := strconv.ParseInt(c.Subject, 10, 64)
	if err != nil || c.IssuedAt == nil {
		return nil, ErrBadToken
	}
	u, err := t.store.GetUserByID(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled || u.TokenVersion != c.Version {
		return nil, ErrBadToken
	}
	return u, nil
}
