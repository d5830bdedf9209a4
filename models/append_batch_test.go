package models_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// appendTo stores body once and appends it to targets in one transaction.
func appendTo(ctx context.Context, s *models.Store, body string, targets []models.AppendTarget) ([]models.AppendResult, error) {
	sum := sha256.Sum256([]byte(body))
	var res []models.AppendResult
	err := s.Tx(ctx, func(tx *models.Store) error {
		id, err := tx.PutContent(ctx, &models.Content{SHA256: sum[:], Size: int64(len(body))}, strings.NewReader(body))
		if err != nil {
			return err
		}
		res, err = tx.AppendMessages(ctx, id, int64(len(body)), models.MessageMeta{}, targets)
		return err
	})
	return res, err
}

// TestAppendManyMailboxes: several mailboxes in one append (the batched path)
// and a mix the batch cannot take (the one-by-one path) give the same UIDs and
// counters; concurrent appends to overlapping sets in opposite orders finish
// without deadlock.
func TestAppendManyMailboxes(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	var inboxes []*models.Mailbox
	for i := 0; i < 6; i++ {
		u := mustUser(t, s, fmt.Sprintf("u%d@example.com", i))
		mb, err := s.MailboxByName(ctx, u.ID, models.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		inboxes = append(inboxes, mb)
	}
	target := func(mb *models.Mailbox, seen bool) models.AppendTarget {
		return models.AppendTarget{MailboxID: mb.ID, UserID: mb.UserID, Flags: models.Flags{Seen: seen}, SkipQuota: true}
	}
	var all []models.AppendTarget
	for i := len(inboxes) - 1; i >= 0; i-- { // not in id order
		all = append(all, target(inboxes[i], false))
	}
	for n := 1; n <= 2; n++ {
		res, err := appendTo(ctx, s, fmt.Sprintf("Subject: %d\r\n\r\nbatch\r\n", n), all)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil || r.Message == nil || r.Message.UID != uint32(n) || r.Message.MailboxID != all[i].MailboxID {
				t.Fatalf("append %d, target %d: %+v", n, i, r)
			}
		}
	}
	// Mixed flags: one at a time.
	res, err := appendTo(ctx, s, "Subject: mixed\r\n\r\n", []models.AppendTarget{target(inboxes[0], true), target(inboxes[1], false)})
	if err != nil || res[0].Message.UID != 3 || res[1].Message.UID != 3 {
		t.Fatalf("mixed append: %+v, %v", res, err)
	}
	for i, mb := range inboxes {
		got, err := s.MailboxByID(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantCount, wantUnseen := int64(2), int64(2)
		if i < 2 {
			wantCount = 3
			if i == 1 {
				wantUnseen = 3
			}
		}
		if got.MessagesCount != wantCount || got.UnseenCount != wantUnseen || got.UIDNext != uint32(wantCount)+1 {
			t.Errorf("mailbox %d: count %d unseen %d uidnext %d", i, got.MessagesCount, got.UnseenCount, got.UIDNext)
		}
	}

	// Overlapping sets, opposite orders, at the same time.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := append([]models.AppendTarget(nil), all...)
			if g%2 == 1 {
				for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
					ts[i], ts[j] = ts[j], ts[i]
				}
			}
			_, err := appendTo(ctx, s, fmt.Sprintf("Subject: race %d\r\n\r\n", g), ts)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent append: %v", err)
		}
	}
	for _, mb := range inboxes {
		uids, _, err := s.UIDRanges(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.MailboxByID(ctx, mb.ID)
		if len(uids) != 1 || uids[0].Start != 1 || int64(uids[0].Stop) != got.MessagesCount {
			t.Errorf("mailbox %d: uids %v for %d messages", mb.ID, uids, got.MessagesCount)
		}
	}
}
