package models_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// enqueue stores a content and queues it for rcpts.
func enqueue(t *testing.T, s *models.Store, body string, rcpts ...string) {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(body))
	err := s.Tx(ctx, func(tx *models.Store) error {
		id, err := tx.PutContent(ctx, &models.Content{SHA256: sum[:], Size: int64(len(body))}, strings.NewReader(body))
		if err != nil {
			return err
		}
		es := make([]models.QueueEntry, len(rcpts))
		for i, r := range rcpts {
			_, dom := models.SplitEmail(r)
			es[i] = models.QueueEntry{ContentID: id, Sender: "a@local.test", Recipient: r, Domain: dom,
				ExpiresAt: time.Now().Add(time.Hour)}
		}
		return tx.Enqueue(ctx, es)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestQueueLeaseGroupsAndFences(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	enqueue(t, s, "one", "x1@a.test", "x2@a.test", "y@b.test")
	enqueue(t, s, "two", "z@a.test")
	now := time.Now()

	// One group asked for: every due entry of message one at a.test comes along.
	got, err := s.LeaseQueue(ctx, models.QueueLease{Owner: "w1/1", Now: now, For: time.Minute, Groups: 1, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Recipient != "x1@a.test" || got[1].Recipient != "x2@a.test" {
		t.Fatalf("first lease = %+v, want x1 and x2 at a.test", got)
	}
	for _, e := range got {
		if e.Attempts != 1 || e.LeaseOwner != "w1/1" || e.Status != models.QueueSending || e.LeaseUntil == nil {
			t.Fatalf("leased entry = %+v", e)
		}
	}
	// Leased entries are hidden from the next worker.
	rest, err := s.LeaseQueue(ctx, models.QueueLease{Owner: "w2/1", Now: now, For: time.Minute, Groups: 10, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 2 {
		t.Fatalf("second lease got %d entries, want the 2 others", len(rest))
	}
	// The queue wakes at the earliest lease end.
	at, ok, err := s.NextQueueAttempt(ctx)
	if err != nil || !ok || at.Before(now.Add(59*time.Second)) {
		t.Fatalf("NextQueueAttempt = %v, %v, %v", at, ok, err)
	}
	// Writes under a lost lease change nothing.
	if gone, err := s.FinishQueue(ctx, []models.Leased{{ID: got[0].ID, Owner: "w2/1"}}); err != nil || len(gone) != 0 {
		t.Fatalf("FinishQueue with another's lease = %v, %v", gone, err)
	}
	if ok, err := s.DeferQueue(ctx, "w2/1", got[0].ID, now, "x"); err != nil || ok {
		t.Fatalf("DeferQueue with another's lease = %v, %v", ok, err)
	}
	// Entries of several leases at once; the pair with the wrong owner stays.
	if gone, err := s.FinishQueue(ctx, []models.Leased{{ID: got[0].ID, Owner: "w1/1"}, {ID: rest[0].ID, Owner: "w2/1"}, {ID: rest[1].ID, Owner: "w1/1"}}); err != nil || len(gone) != 2 {
		t.Fatalf("FinishQueue = %v, %v", gone, err)
	}
	if ok, err := s.DeferQueue(ctx, "w1/1", got[1].ID, now.Add(-time.Second), "451 later"); err != nil || !ok {
		t.Fatalf("DeferQueue = %v, %v", ok, err)
	}
	// A deferred entry is due again; so is one whose lease ran out.
	again, err := s.LeaseQueue(ctx, models.QueueLease{Owner: "w3/1", Now: now.Add(2 * time.Minute), For: time.Minute, Groups: 10, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 {
		t.Fatalf("lease after expiry got %d, want 2", len(again))
	}
	for _, e := range again {
		if e.ID == got[1].ID && (e.Attempts != 2 || e.LastError != "451 later") {
			t.Fatalf("re-leased entry = %+v", e)
		}
	}
}

func TestQueueAdmin(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	for i := 0; i < 5; i++ {
		enqueue(t, s, fmt.Sprint("m", i), fmt.Sprintf("r%d@a.test", i))
	}
	var all []models.QueueEntry
	after := ""
	for pages := 0; ; pages++ {
		es, next, err := s.ListQueue(ctx, models.Page{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
		if next == "" {
			if pages != 2 {
				t.Fatalf("pages = %d, want 3", pages+1)
			}
			break
		}
		after = next
	}
	if len(all) != 5 || all[0].Recipient != "r0@a.test" || all[4].Recipient != "r4@a.test" {
		t.Fatalf("listing = %+v", all)
	}
	if _, _, err := s.ListQueue(ctx, models.Page{After: "x"}); !errors.Is(err, models.ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}

	wake, unsubscribe := s.Subscribe(models.QueueTopic)
	defer unsubscribe()
	select { // drain the notices of enqueueing
	case <-wake:
	default:
	}
	id := all[0].PublicID
	if err := s.RetryQueue(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("RetryQueue sent no notice")
	}
	leased, err := s.LeaseQueue(ctx, models.QueueLease{Owner: "w/1", Now: time.Now(), For: time.Minute, Groups: 10, Limit: 10})
	if err != nil || len(leased) != 5 || leased[0].PublicID != id {
		t.Fatalf("lease = %+v, %v", leased, err)
	}
	if err := s.RetryQueue(ctx, id); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("retry while leased: %v, want ErrConflict", err)
	}
	if err := s.RetryQueue(ctx, models.NewID()); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("retry unknown: %v", err)
	}
	if err := s.RetryQueue(ctx, "nonsense"); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("retry malformed id: %v", err)
	}
	if err := s.DeleteQueue(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteQueue(ctx, id); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.GetQueueEntry(ctx, id); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	// The worker whose entry was deleted under it finds nothing to finish.
	if gone, err := s.FinishQueue(ctx, []models.Leased{{ID: leased[0].ID, Owner: "w/1"}}); err != nil || len(gone) != 0 {
		t.Fatalf("finish deleted = %v, %v", gone, err)
	}
}
