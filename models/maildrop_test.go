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
	// A short lease expires and is taken over; its old owner learns it lost it.
	if err := s2.AcquireMaildrop(ctx, u.ID, "b", 200*time.Millisecond); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if err := s1.AcquireMaildrop(ctx, u.ID, "a", time.Minute); !errors.Is(err, models.ErrMaildropLocked) {
		t.Fatalf("acquire before expiry = %v", err)
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
}

func TestMaildropMessages(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	if _, err := s.CreateDomain(ctx, "example.com", ""); err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s, "alice@example.com")
	inbox, err := s.MailboxByName(ctx, u.ID, models.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.MaildropMessages(ctx, inbox.ID); err != nil || len(got) != 0 {
		t.Fatalf("empty maildrop = %v, %v", got, err)
	}
	var want []*models.Message
	for _, body := range []string{"Subject: a\r\n\r\na\r\n", "Subject: bb\r\n\r\nbb\r\n"} {
		want = append(want, appendOne(t, s, inbox, body))
	}
	got, err := s.MaildropMessages(ctx, inbox.ID)
	if err != nil || len(got) != 2 {
		t.Fatalf("MaildropMessages = %v, %v", got, err)
	}
	for i, m := range want {
		g := got[i]
		if g.ID != m.ID || g.PublicID != m.PublicID || g.UID != m.UID || g.ContentID != m.ContentID || g.Size != m.Size {
			t.Errorf("entry %d = %+v, want %+v", i, g, m)
		}
	}
}
