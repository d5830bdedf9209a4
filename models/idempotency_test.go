package models_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

func TestIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	if _, err := s.CreateDomain(ctx, "example.com", ""); err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s, "alice@example.com")
	other := mustUser(t, s, "bob@example.com")
	const stale = time.Hour

	if a, err := s.ClaimIdempotencyKey(ctx, u.ID, "k1", "h1", stale); a != nil || err != nil {
		t.Fatalf("first claim: %v, %v", a, err)
	}
	var ce *models.ConflictError
	if _, err := s.ClaimIdempotencyKey(ctx, u.ID, "k1", "h1", stale); !errors.As(err, &ce) {
		t.Fatalf("claim while running: %v", err)
	}
	if _, err := s.ClaimIdempotencyKey(ctx, u.ID, "k1", "h2", stale); !errors.Is(err, models.ErrIdempotencyMismatch) {
		t.Fatalf("claim with another request: %v", err)
	}
	if a, err := s.ClaimIdempotencyKey(ctx, other.ID, "k1", "h2", stale); a != nil || err != nil {
		t.Fatalf("another user's key: %v, %v", a, err)
	}
	if err := s.FinishIdempotencyKey(ctx, u.ID, "k1", 202, `{"ok":1}`); err == nil {
		t.Fatal("FinishIdempotencyKey outside a transaction")
	}
	// A rolled-back finish leaves the claim pending.
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx *models.Store) error {
		if err := tx.FinishIdempotencyKey(ctx, u.ID, "k1", 202, `{"ok":1}`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := s.ClaimIdempotencyKey(ctx, u.ID, "k1", "h1", stale); !errors.As(err, &ce) {
		t.Fatalf("claim after a rolled-back finish: %v", err)
	}
	err = s.Tx(ctx, func(tx *models.Store) error { return tx.FinishIdempotencyKey(ctx, u.ID, "k1", 202, `{"ok":1}`) })
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.ClaimIdempotencyKey(ctx, u.ID, "k1", "h1", stale)
	if err != nil || a == nil || a.Status != 202 || a.Response != `{"ok":1}` {
		t.Fatalf("replay: %+v, %v", a, err)
	}
	// A finished key is not released.
	if err := s.ReleaseIdempotencyKey(ctx, u.ID, "k1"); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.ClaimIdempotencyKey(ctx, u.ID, "k1", "h1", stale); a == nil {
		t.Fatal("release removed a finished key")
	}
	// A released claim can be claimed again; a stale one is taken over.
	if _, err := s.ClaimIdempotencyKey(ctx, u.ID, "k2", "h", stale); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, u.ID, "k2"); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ClaimIdempotencyKey(ctx, u.ID, "k2", "h", stale); a != nil || err != nil {
		t.Fatalf("claim after release: %v, %v", a, err)
	}
	if a, err := s.ClaimIdempotencyKey(ctx, u.ID, "k2", "h", -time.Second); a != nil || err != nil {
		t.Fatalf("take over a stale claim: %v, %v", a, err)
	}

	// Racing claims: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan struct{}, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.ClaimIdempotencyKey(ctx, u.ID, "race", "h", stale)
			if a == nil && err == nil {
				wins <- struct{}{}
			} else if !errors.As(err, new(*models.ConflictError)) {
				t.Errorf("racing claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d racing claims won", len(wins))
	}
}

func TestListKey(t *testing.T) {
	k := models.ListKey{Date: time.Date(2024, 5, 1, 10, 0, 0, 123, time.UTC), ID: 98765}
	got, err := models.ParseListKey(k.String())
	if err != nil || !got.Date.Equal(k.Date) || got.ID != k.ID {
		t.Fatalf("round trip %v: %v, %v", k, got, err)
	}
	for _, bad := range []string{"", ".", "!.1", "1.!", "1", "1.0", "1.-5", "zzzzzzzzzzzzzzzzzz.1"} {
		if _, err := models.ParseListKey(bad); !errors.Is(err, models.ErrInvalid) {
			t.Errorf("ParseListKey(%q) = %v", bad, err)
		}
	}
}
