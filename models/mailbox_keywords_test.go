package models_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// TestMailboxKeywords: a mailbox's keyword list holds every keyword its
// messages were given, by any way in (a flag change, a copy), once whatever
// the case, sorted without case; it is kept in the store up to the mailbox's
// modification sequence, and keeps a keyword whose last message has gone.
func TestMailboxKeywords(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	mb := inboxOf(t, s, "alice@example.test")
	want := func(id int64, exp ...string) {
		t.Helper()
		got, err := s.MailboxKeywords(ctx, id)
		if err != nil {
			t.Fatalf("MailboxKeywords: %v", err)
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("MailboxKeywords = %q, want %q", got, exp)
		}
	}
	want(mb.ID)
	for _, subject := range []string{"one", "two"} {
		if _, err := s.Deliver(ctx, deliveryTo(mb, subject)); err != nil {
			t.Fatal(err)
		}
	}
	want(mb.ID)
	set := func(uid uint32, kws ...string) {
		t.Helper()
		if _, err := s.SetFlags(ctx, mb.ID, models.UIDSet{{Start: uid, Stop: uid}}, models.FlagsAdd, models.Flags{Keywords: kws}); err != nil {
			t.Fatal(err)
		}
	}
	set(1, "$Kw1")
	want(mb.ID, "$Kw1")
	set(2, "junk", "$kw2")
	want(mb.ID, "$Kw1", "$kw2", "junk")

	// Kept in the store, complete up to the mailbox's modification sequence.
	arg := "?"
	if s.Dialect() == models.Postgres {
		arg = "$1"
	}
	var kept string
	var upTo, high int64
	if err := s.DB().QueryRowContext(ctx, `SELECT keywords, modseq FROM mailbox_keywords WHERE mailbox_id = `+arg, mb.ID).Scan(&kept, &upTo); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().QueryRowContext(ctx, `SELECT highest_modseq FROM mailboxes WHERE id = `+arg, mb.ID).Scan(&high); err != nil {
		t.Fatal(err)
	}
	if kept != "$Kw1 $kw2 junk" || upTo != high {
		t.Fatalf("kept %q up to %d, want %q up to %d", kept, upTo, "$Kw1 $kw2 junk", high)
	}

	set(2, "$KW1") // the same keyword in another case
	want(mb.ID, "$Kw1", "$kw2", "junk")
	if _, err := s.Expunge(ctx, mb.ID, models.UIDSet{{Start: 1, Stop: 1}}, false); err != nil {
		t.Fatal(err)
	}
	set(2, "Later")
	want(mb.ID, "$Kw1", "$kw2", "junk", "Later")

	// A copy brings its keywords to the other mailbox.
	other, err := s.CreateMailbox(ctx, mb.UserID, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	want(other.ID)
	if _, err := s.CopyMessages(ctx, mb.ID, models.All, other.ID); err != nil {
		t.Fatal(err)
	}
	want(other.ID, "$KW1", "$kw2", "junk", "Later")

	if err := s.DeleteMailbox(ctx, mb.UserID, "Other"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MailboxKeywords(ctx, other.ID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("deleted mailbox: %v, want ErrNotFound", err)
	}
}
