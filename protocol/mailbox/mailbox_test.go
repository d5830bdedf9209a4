package mailbox_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/message"
)

func setup(t *testing.T) (*models.Store, *mailbox.Service, *models.User) {
	t.Helper()
	ctx := context.Background()
	s := modelstest.New(t)
	if _, err := s.CreateDomain(ctx, "example.com", ""); err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(ctx, models.NewUser{Email: "a@example.com", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return s, mailbox.New(s, mailbox.Options{SpoolDir: t.TempDir(), MaxMessageBytes: 1 << 20}), u
}

func TestMailboxHierarchy(t *testing.T) {
	ctx := context.Background()
	_, mb, u := setup(t)
	if _, err := mb.Create(ctx, u.ID, "Projects/2026/Q4", ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Projects", "Projects/2026", "Projects/2026/Q4"} {
		if _, err := mb.Get(ctx, u.ID, name); err != nil {
			t.Errorf("%s not created: %v", name, err)
		}
	}
	if _, err := mb.Create(ctx, u.ID, "Projects", ""); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := mb.Delete(ctx, u.ID, "inbox"); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("delete INBOX: %v", err)
	}
	if err := mb.Rename(ctx, u.ID, "Projects", "Archive/Old projects"); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Get(ctx, u.ID, "Archive/Old projects/2026/Q4"); err != nil {
		t.Fatalf("children not renamed: %v", err)
	}
	if err := mb.Rename(ctx, u.ID, "Archive", "INBOX"); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("rename onto INBOX: %v", err)
	}
}

func TestAppendOpenAndRenameInbox(t *testing.T) {
	ctx := context.Background()
	_, mb, u := setup(t)
	raw := "From: b@example.org\nSubject: hi\n\nline one\nline two\n"
	m, err := mb.Append(ctx, u.ID, "INBOX", strings.NewReader(raw), models.Flags{Flagged: true}, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if m.UID != 1 || !m.Flagged || m.Subject != "hi" || !m.InternalDate.Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("appended %+v", m)
	}
	r, err := mb.OpenMessage(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if want := strings.ReplaceAll(raw, "\n", "\r\n"); string(got) != want || m.Size != int64(len(want)) {
		t.Fatalf("stored %q (size %d), want CRLF form", got, m.Size)
	}
	if _, err := mb.Append(ctx, u.ID, "INBOX", strings.NewReader(strings.Repeat("x", 2<<20)), models.Flags{}, time.Time{}); !errors.Is(err, message.ErrTooLarge) {
		t.Fatalf("oversized append: %v", err)
	}
	// Renaming INBOX moves its messages to the new mailbox and leaves INBOX empty.
	if err := mb.Rename(ctx, u.ID, "INBOX", "Old mail"); err != nil {
		t.Fatal(err)
	}
	inbox, _ := mb.Get(ctx, u.ID, "INBOX")
	old, _ := mb.Get(ctx, u.ID, "Old mail")
	if inbox.MessagesCount != 0 || old.MessagesCount != 1 {
		t.Fatalf("after renaming INBOX: inbox %d, old %d", inbox.MessagesCount, old.MessagesCount)
	}
}

func TestWatchSeesChanges(t *testing.T) {
	ctx := context.Background()
	_, mb, u := setup(t)
	inbox, _ := mb.Get(ctx, u.ID, "INBOX")
	sig, stop := mb.Watch(inbox.ID)
	defer stop()
	m, err := mb.Append(ctx, u.ID, "INBOX", strings.NewReader("Subject: x\r\n\r\nx\r\n"), models.Flags{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sig:
	case <-time.After(5 * time.Second):
		t.Fatal("no change signal after an append")
	}
	before := m.ModSeq
	if _, err := mb.SetFlags(ctx, inbox.ID, models.UIDs(m.UID), models.FlagsAdd, models.Flags{Seen: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sig:
	case <-time.After(5 * time.Second):
		t.Fatal("no change signal after a flag change")
	}
	ch, err := mb.ChangesSince(ctx, inbox.ID, before)
	if err != nil || len(ch.Updated) != 1 || !ch.Updated[0].Flags.Seen {
		t.Fatalf("changes %+v, %v", ch, err)
	}
}

func TestIndexerIndexesWhenIdle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, mb, u := setup(t)
	for i := 0; i < 3; i++ {
		if _, err := mb.Append(ctx, u.ID, "INBOX", strings.NewReader("Subject: wombat\r\n\r\nbody "+strings.Repeat("x", i)+"\r\n"), models.Flags{}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PendingSearchIndex(ctx); err != nil || n != 3 {
		t.Fatalf("pending before the indexer ran: %d, %v", n, err)
	}
	go mb.RunIndexer(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := s.PendingSearchIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d contents still unindexed after 10s", n)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
}
