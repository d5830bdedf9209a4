package models_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// TestRequiredTargetOverQuota: a Required target over its owner's quota fails
// the whole delivery, storing and queueing nothing; with room, it is stored.
func TestRequiredTargetOverQuota(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	if _, err := s.CreateDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	sender := inboxOf(t, s, "sender@example.test")
	rcpt := inboxOf(t, s, "rcpt@example.test")
	quota := int64(100)
	if _, err := s.UpdateUser(ctx, "sender@example.test", models.UserPatch{QuotaBytes: &quota}); err != nil {
		t.Fatal(err)
	}
	send := func(subject string) error {
		d := deliveryTo(rcpt, subject)
		d.Appends = append(d.Appends, models.AppendSpec{Content: 0, Meta: models.MessageMeta{Subject: subject},
			Targets: []models.AppendTarget{{MailboxID: sender.ID, UserID: sender.UserID, Required: true}}})
		d.Queue = []models.QueueEntry{{Sender: "sender@example.test", Recipient: "x@remote.test", Domain: "remote.test"}}
		_, err := s.Deliver(ctx, d)
		return err
	}
	if err := send("fits"); err != nil { // about 30 bytes: within 100
		t.Fatalf("a copy that fits: %v", err)
	}
	refused := 0
	for i := 0; i < 10; i++ { // 24-byte copies against a 100-byte quota
		err := send("over")
		switch {
		case err == nil && refused > 0:
			t.Fatalf("send %d stored after an earlier one was refused", i)
		case err != nil && !errors.Is(err, models.ErrQuota):
			t.Fatalf("send %d: %v, want ErrQuota", i, err)
		case err != nil:
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no send was refused although the sender's copies fill its quota")
	}
	if rc, sc := countIn(t, s, rcpt.ID), countIn(t, s, sender.ID); rc != sc {
		t.Errorf("recipient holds %d, sender's copies %d: a refused delivery stored something", rc, sc)
	}
	n, err := s.QueueDepth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc := countIn(t, s, sender.ID); n != int64(sc) {
		t.Errorf("queue holds %d entries for %d sent copies", n, sc)
	}
}

func countIn(t *testing.T, s *models.Store, mailboxID int64) int {
	t.Helper()
	n := 0
	if err := s.MessagesByUID(context.Background(), mailboxID, models.All, func(*models.Message) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
