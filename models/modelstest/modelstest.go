// Package modelstest gives each test a fresh, migrated store of its own: an
// SQLite file by default, or a new PostgreSQL schema when
// MAILGATE_TEST_DATABASE_URL is set (dropped when the test ends).
package modelstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/migrations"
	"github.com/mailgate/mailgate/models"
)

// EnvURL names the variable that points tests at PostgreSQL.
const EnvURL = "MAILGATE_TEST_DATABASE_URL"

// URL returns a database URL for a new, empty database of the test's own: the
// caller may open it any number of times (several "instances"). It is removed
// when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		return "sqlite:" + filepath.Join(t.TempDir(), "mailgate.db")
	}
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	schema := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens (and migrates) the database at rawURL and runs the store as the
// server does (Store.Run: group commit, the PostgreSQL listener). When the test
// ends, Run is stopped and waited for, then the store is closed; the test may
// close it earlier.
func Open(t testing.TB, rawURL string) *models.Store {
	t.Helper()
	s := OpenIdle(t, rawURL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Registered after OpenIdle's Close, so it runs before it: Run shuts down
	// (draining deliveries) on its own before the store closes.
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("store Run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Errorf("store Run still running a minute after its context ended")
		}
	})
	return s
}

// OpenIdle is Open without Run, like a CLI command's store: deliveries commit
// inline and Subscribe starts the listener itself. The test may call Run. The
// store is closed when the test ends.
func OpenIdle(t testing.TB, rawURL string) *models.Store {
	t.Helper()
	ctx := context.Background()
	s, err := models.Open(ctx, rawURL, models.Options{MaxConns: 10})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	d := migrations.SQLite
	if s.Dialect() == models.Postgres {
		d = migrations.Postgres
	}
	r, err := migrations.New(s.DB(), d, nil)
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	if _, err := r.Up(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// New returns a fresh, migrated store for one test.
func New(t testing.TB) *models.Store {
	t.Helper()
	return Open(t, URL(t))
}
