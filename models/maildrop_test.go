package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

func TestMaildropLease(t *testing.T) {
	ctx := context.Background()
	url := modelstest.URL(t)
	s1 := modelstest.Open(t, url)
	s2 := modelstest.Open(t, url) // another instance on the same database
	if _, err := s1.CreateDomain(ctx, "example.com", ""); err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s1, "alice@example.com")

	if err := s1.AcquireMaildrop(ctx, u.ID, "a", time.Minute); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if err := s1.AcquireMaildrop(ctx, u.ID, "a", time.Minute); err != nil {
		t.Fatalf("re-acquire by the owner: %v", err)
	}
	if err := s2.AcquireMaildrop(ctx, u.ID, "b", time.Minute); !errors.Is(err, models.ErrMaildropLocked) {
		t.Fatalf("acquire of a live lease from another instance = %v, want ErrMaildropLocked", err)
	}
	if err := s2.RefreshMaildrop(ctx, u.ID, "b", time.Minute); !errors.Is(err, models.ErrMaildropLost) {
		t.Fatalf("refresh by a non-owner = %v, want ErrMaildropLost", err)
	}
	if err := s1.RefreshMaildrop(ctx, u.ID, "a", time.Minute); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if err := s2.ReleaseMaildrop(ctx, u.ID, "b"); err != nil { // not b's: a no-op
		t.Fatal(err)
	}
	if err := s2.AcquireMaildrop(ctx, u.ID, "b", time.Minute); !errors.Is(err, models.ErrMaildropLocked) {
		t.Fatalf("a non-owner released the lease: %v", err)
	}
	if err := s1.ReleaseMaildrop(ctx, u.ID, "a"); err != nil {
		t.Fatal(err)
	}
	// A short lease runs out and is taken over; its old owner learns it lost it.
	if err := s2.AcquireMaildrop(ctx, u.ID, "b", 300*time.Millisecond); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s1.AcquireMaildrop(ctx, u.ID, "a", time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, models.ErrMaildropLocked) || time.Now().After(deadline) {
			t.Fatalf("take over an expired lease: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	if err := s2.RefreshMaildrop(ctx, u.ID, "b", time.Minute); !errors.Is(err, models.ErrMaildropLost) {
		t.Fatalf("refresh after takeover = %v, want ErrMaildropLost", err)
	}
	// A lease that is not yet over is not taken, to the second: age a's lease
	// to just before and just after its end.
	for _, tc := range []struct {
		left time.Duration
		want error
	}{{2 * time.Second, models.ErrMaildropLocked}, {-time.Second, nil}} {
		if _, err := s1.DB().Exec(setExpiry(s1), time.Now().Add(tc.left).UTC()); err != nil {
			t.Fatal(err)
		}
		if err := s2.AcquireMaildrop(ctx, u.ID, "b", time.Minute); !errors.Is(err, tc.want) {
			t.Fatalf("acquire with %v left on the lease = %v, want %v", tc.left, err, tc.want)
		}
	}
}

// setExpiry is SQL that moves every maildrop lease's end, in the store's dialect.
func setExpiry(s *models.Store) string {
	if s.Dialect() == models.Postgres {
		return `UPDATE maildrop_locks SET expires_at = $1`
	}
	return `UPDATE maildrop_locks SET expires_at = ?`
}
