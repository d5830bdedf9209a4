package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
)

// jwtSecret is the configured secret, or one generated once and kept in the
// database so that every instance on it signs and checks tokens alike.
func jwtSecret(ctx context.Context, store *models.Store, cfg *Config) ([]byte, error) {
	if cfg.JWTSecret != "" {
		if len(cfg.JWTSecret) < 32 {
			return nil, fmt.Errorf("MAILGATE_JWT_SECRET must be at least 32 characters")
		}
		return []byte(cfg.JWTSecret), nil
	}
	v, err := store.EnsureSetting(ctx, "jwt_secret", randomString(48))
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}

// bootstrapAdmin makes sure an enabled admin exists: on a database without one it
// creates MAILGATE_ADMIN_EMAIL (and its domain) with MAILGATE_ADMIN_PASSWORD, or
// with a generated password that is printed once.
func bootstrapAdmin(ctx context.Context, store *models.Store, cfg *Config, log *slog.Logger) error {
	n, err := store.CountAdmins(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	email := cfg.AdminEmail
	if email == "" {
		email = "admin@" + cfg.Hostname
	}
	email, err = models.NormalizeEmail(email)
	if err != nil {
		return fmt.Errorf("MAILGATE_ADMIN_EMAIL: %w", err)
	}
	_, domain := models.SplitEmail(email)
	if _, err := store.CreateDomain(ctx, domain, "created for the first admin"); err != nil && !errors.Is(err, models.ErrConflict) {
		return fmt.Errorf("create admin domain %s: %w", domain, err)
	}
	pw, generated := cfg.AdminPassword, false
	if pw == "" {
		pw, generated = randomString(18), true
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("MAILGATE_ADMIN_PASSWORD: %w", err)
	}
	_, err = store.CreateUser(ctx, models.NewUser{Email: email, PasswordHash: hash, DisplayName: "Administrator", Role: models.RoleAdmin})
	if errors.Is(err, models.ErrConflict) {
		if n, err := store.CountAdmins(ctx); err != nil || n > 0 {
			return err // another instance starting at the same time made the admin
		}
		// The address exists but no enabled admin does: make it the admin again.
		role, disabled := models.RoleAdmin, false
		_, err = store.UpdateUser(ctx, email, models.UserPatch{Role: &role, Disabled: &disabled, PasswordHash: &hash})
	}
	if err != nil {
		return fmt.Errorf("create admin %s: %w", email, err)
	}
	if generated {
		// Printed once, on this first start; it is not kept anywhere in clear.
		log.Warn("created the first admin with a generated password; it is shown only this once", "email", email, "password", pw)
	} else {
		log.Info("created the first admin", "email", email)
	}
	return nil
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
