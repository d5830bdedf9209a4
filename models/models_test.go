package models_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

func mustUser(t *testing.T, s *models.Store, email string) *models.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), models.NewUser{Email: email, PasswordHash: "x"})
	if err != nil {
		t.Fatalf("CreateUser(%s) = %v", email, err)
	}
	return u
}

func TestDomainsUsersGroups(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	if _, err := s.CreateDomain(ctx, "Example.COM", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDomain(ctx, "example.com.", ""); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("duplicate domain: got %v, want ErrConflict", err)
	}
	if d, err := s.CreateDomain(ctx, "bücher.example", ""); err != nil || d.Name != "xn--bcher-kva.example" {
		t.Fatalf("IDNA domain = %+v, %v", d, err)
	}
	if _, err := s.CreateDomain(ctx, "bad domain", ""); !errors.Is(err, models.ErrInvalid) {
		t.Fatalf("invalid domain: got %v", err)
	}
	u := mustUser(t, s, "Alice@Example.com")
	if u.Email != "alice@example.com" {
		t.Fatalf("email not normalized: %q", u.Email)
	}
	mbs, err := s.Mailboxes(ctx, u.ID)
	if err != nil || len(mbs) != 5 {
		t.Fatalf("default mailboxes = %d, %v", len(mbs), err)
	}
	if _, err := s.CreateUser(ctx, models.NewUser{Email: "ALICE@example.com", PasswordHash: "x"}); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, err := s.CreateUser(ctx, models.NewUser{Email: "x@nowhere.test", PasswordHash: "x"}); !errors.Is(err, models.ErrInvalid) {
		t.Fatalf("user in unknown domain: %v", err)
	}
	bob := mustUser(t, s, "bob@example.com")
	g, members, err := s.CreateGroup(ctx, "team@example.com", "Team", []string{"alice@example.com", "BOB@example.com"})
	if err != nil || len(members) != 2 {
		t.Fatalf("CreateGroup = %v, %d members", err, len(members))
	}
	if _, _, err := s.CreateGroup(ctx, "alice@example.com", "", nil); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("group with a user's address: %v", err)
	}
	if _, err := s.CreateUser(ctx, models.NewUser{Email: "team@example.com", PasswordHash: "x"}); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("user with a group's address: %v", err)
	}
	r, err := s.ResolveAddress(ctx, "Team@Example.com")
	if err != nil || r.Group == nil || r.Group.ID != g.ID || len(r.Users) != 2 {
		t.Fatalf("ResolveAddress(group) = %+v, %v", r, err)
	}
	if err := s.RemoveMember(ctx, g.Email, bob.Email); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, g.Email, bob.Email); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("remove non-member: %v", err)
	}
	if err := s.DeleteDomain(ctx, "example.com", false); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("delete non-empty domain: %v", err)
	}
	if err := s.DeleteDomain(ctx, "EXAMPLE.com", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, "alice@example.com"); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("user after forced domain delete: %v", err)
	}
	if _, err := s.CreateDomain(ctx, "example.com", ""); err != nil {
		t.Fatalf("re-create domain: %v", err)
	}
	if _, err := s.CreateUser(ctx, models.NewUser{Email: "alice@example.com", PasswordHash: "x"}); err != nil {
		t.Fatalf("address not freed by delete: %v", err)
	}
}

func appendOne(t *testing.T, s *models.Store, mb *models.Mailbox, body string) *models.Message {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(body))
	var msg *models.Message
	err := s.Tx(ctx, func(tx *models.Store) error {
		id, err := tx.PutContent(ctx, &models.Content{SHA256: sum[:], Size: int64(len(body))}, strings.NewReader(body))
		if err != nil {
			return err
		}
		res, err := tx.AppendMessages(ctx, id, int64(len(body)), models.MessageMeta{Subject: "s"}, []models.AppendTarget{{MailboxID: mb.ID, UserID: mb.UserID}})
		if err != nil {
			return err
		}
		msg = res[0].Message
		return res[0].Err
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return msg
}

func TestMessagesLifecycle(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	u := mustUser(t, s, "alice@example.com")
	inbox, _ := s.MailboxByName(ctx, u.ID, "inbox")
	trash, _ := s.MailboxByName(ctx, u.ID, "Trash")

	sub, stop := s.Subscribe(models.MailboxTopic(inbox.ID))
	defer stop()
	big := strings.Repeat("0123456789abcdef", models.ChunkSize/16*2+100) // three chunks
	m1 := appendOne(t, s, inbox, "Subject: one\r\n\r\nhello\r\n")
	m2 := appendOne(t, s, inbox, big)
	m3 := appendOne(t, s, inbox, "Subject: one\r\n\r\nhello\r\n") // same content again
	if m1.UID != 1 || m2.UID != 2 || m3.UID != 3 || m1.ContentID != m3.ContentID {
		t.Fatalf("uids %d %d %d, contents %d %d", m1.UID, m2.UID, m3.UID, m1.ContentID, m3.ContentID)
	}
	<-sub // a notice arrived

	// Reading back a multi-chunk content, whole and from an offset.
	c, err := s.GetContent(ctx, m2.ContentID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s.OpenContent(ctx, c.ID, c.Size, c.ChunkSize, 0))
	if err != nil || !bytes.Equal(got, []byte(big)) {
		t.Fatalf("content read back: %d bytes, %v", len(got), err)
	}
	tail, _ := io.ReadAll(s.OpenContent(ctx, c.ID, c.Size, c.ChunkSize, c.Size-10))
	if string(tail) != big[len(big)-10:] {
		t.Fatalf("tail = %q", tail)
	}

	ch, err := s.SetFlags(ctx, inbox.ID, models.All, models.FlagsAdd, models.Flags{Seen: true, Keywords: []string{"$Label1"}})
	if err != nil || len(ch) != 3 || ch[0].Flags.Keywords[0] != "$Label1" {
		t.Fatalf("SetFlags = %+v, %v", ch, err)
	}
	ch, _ = s.SetFlags(ctx, inbox.ID, models.All, models.FlagsAdd, models.Flags{Seen: true})
	if len(ch) != 0 {
		t.Fatalf("no-op SetFlags changed %d", len(ch))
	}
	mb, _ := s.MailboxByID(ctx, inbox.ID)
	if mb.MessagesCount != 3 || mb.UnseenCount != 0 {
		t.Fatalf("counts = %d/%d", mb.MessagesCount, mb.UnseenCount)
	}
	before := mb.HighestModSeq

	mv, err := s.MoveMessages(ctx, inbox.ID, models.UIDs(2), trash.ID)
	if err != nil || len(mv.DestUIDs) != 1 || mv.DestUIDs[0] != 1 {
		t.Fatalf("Move = %+v, %v", mv, err)
	}
	s.SetFlags(ctx, inbox.ID, models.UIDs(1), models.FlagsAdd, models.Flags{Deleted: true})
	gone, err := s.Expunge(ctx, inbox.ID, models.All, true)
	if err != nil || len(gone) != 1 || gone[0] != 1 {
		t.Fatalf("Expunge = %v, %v", gone, err)
	}
	chg, err := s.ChangesSince(ctx, inbox.ID, before)
	if err != nil || len(chg.Expunged) != 2 || len(chg.Updated) != 0 {
		t.Fatalf("ChangesSince = %+v, %v", chg, err)
	}
	m4 := appendOne(t, s, inbox, "x\r\n")
	if m4.UID != 4 {
		t.Fatalf("uid after expunge = %d, want 4 (never reused)", m4.UID)
	}
	rs, _, err := s.UIDRanges(ctx, inbox.ID)
	if err != nil || len(rs) != 1 || rs[0] != (models.UIDRange{Start: 3, Stop: 4}) {
		t.Fatalf("UIDRanges = %v, %v", rs, err)
	}
	mb, _ = s.MailboxByID(ctx, inbox.ID)
	if mb.MessagesCount != 2 || mb.UnseenCount != 1 || mb.SizeBytes != m3.Size+m4.Size {
		t.Fatalf("counts after changes = %+v", mb)
	}
	if _, err := s.MessageByPublicID(ctx, u.ID+1, m4.PublicID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("other user's message: %v", err)
	}
}

func TestQuota(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	u, _ := s.CreateUser(ctx, models.NewUser{Email: "q@example.com", PasswordHash: "x", QuotaBytes: 10})
	inbox, _ := s.MailboxByName(ctx, u.ID, models.Inbox)
	body := "0123456789abcdef"
	sum := sha256.Sum256([]byte(body))
	err := s.Tx(ctx, func(tx *models.Store) error {
		id, err := tx.PutContent(ctx, &models.Content{SHA256: sum[:], Size: int64(len(body))}, strings.NewReader(body))
		if err != nil {
			return err
		}
		res, err := tx.AppendMessages(ctx, id, int64(len(body)), models.MessageMeta{}, []models.AppendTarget{{MailboxID: inbox.ID, UserID: u.ID}})
		if err != nil {
			return err
		}
		if !errors.Is(res[0].Err, models.ErrQuota) {
			t.Errorf("over quota: got %v", res[0].Err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMailboxRenameAndUIDValidity(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	u := mustUser(t, s, "a@example.com")
	a, err := s.CreateMailbox(ctx, u.ID, "Work", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctx, u.ID, "Work/2026", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctx, u.ID, "Work", ""); !errors.Is(err, models.ErrConflict) {
		t.Fatalf("duplicate mailbox: %v", err)
	}
	if err := s.RenameMailbox(ctx, u.ID, "Work", "Jobs"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MailboxByName(ctx, u.ID, "Jobs/2026"); err != nil {
		t.Fatalf("child not renamed: %v", err)
	}
	if err := s.DeleteMailbox(ctx, u.ID, "Jobs"); err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateMailbox(ctx, u.ID, "Jobs", "")
	if err != nil {
		t.Fatal(err)
	}
	if b.UIDValidity <= a.UIDValidity {
		t.Fatalf("UIDVALIDITY of re-created mailbox %d, not above %d", b.UIDValidity, a.UIDValidity)
	}
}

func TestLookupRecipient(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	a := mustUser(t, s, "a@example.com")
	b := mustUser(t, s, "b@example.com")
	s.CreateGroup(ctx, "g@example.com", "", []string{"a@example.com", "b@example.com"})
	inboxA, _ := s.MailboxByName(ctx, a.ID, models.Inbox)
	inboxB, _ := s.MailboxByName(ctx, b.ID, models.Inbox)

	l, err := s.LookupRecipient(ctx, "a@example.com")
	if err != nil || !l.DomainFound || l.Recipient == nil || l.Recipient.Group != nil || l.Recipient.Users[0].ID != a.ID || l.Recipient.Inboxes[a.ID] != inboxA.ID {
		t.Fatalf("user: %+v %v", l, err)
	}
	l, err = s.LookupRecipient(ctx, "g@example.com")
	if err != nil || l.Recipient == nil || l.Recipient.Group == nil || len(l.Recipient.Users) != 2 || l.Recipient.Inboxes[b.ID] != inboxB.ID {
		t.Fatalf("group: %+v %v", l, err)
	}
	if l, err := s.LookupRecipient(ctx, "nobody@example.com"); err != nil || !l.DomainFound || l.Recipient != nil {
		t.Fatalf("unknown: %+v %v", l, err)
	}
	if l, err := s.LookupRecipient(ctx, "x@elsewhere.example"); err != nil || l.DomainFound {
		t.Fatalf("remote: %+v %v", l, err)
	}
	dis := true
	s.UpdateDomain(ctx, "example.com", models.DomainPatch{Disabled: &dis})
	if l, err := s.LookupRecipient(ctx, "a@example.com"); err != nil || !l.DomainDisabled {
		t.Fatalf("disabled domain: %+v %v", l, err)
	}
}

func TestDeferredSearchIndex(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	u := mustUser(t, s, "a@example.com")
	inbox, _ := s.MailboxByName(ctx, u.ID, models.Inbox)
	body := "Subject: zebra\r\n\r\nquokka\r\n"
	sum := sha256.Sum256([]byte(body))
	put := models.ContentPut{Content: models.Content{SHA256: sum[:], Size: int64(len(body)), SearchText: "zebra quokka"},
		Body: func() io.Reader { return strings.NewReader(body) }}
	res, err := s.Deliver(ctx, &models.Delivery{Contents: []models.ContentPut{put},
		Appends: []models.AppendSpec{{Content: 0, Targets: []models.AppendTarget{{MailboxID: inbox.ID, UserID: u.ID}}}}})
	if err != nil || res.Appends[0][0].Err != nil {
		t.Fatalf("Deliver: %v %+v", err, res)
	}
	// A search finds the message before the background indexer ran.
	ms, _, err := s.ListMessages(ctx, models.MessageFilter{MailboxID: inbox.ID, Query: "quokka"}, nil, 10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("search before indexing: %d, %v", len(ms), err)
	}
	if n, err := s.IndexSearch(ctx, 100); err != nil || n != 0 {
		t.Fatalf("IndexSearch after the search indexed it: %d, %v", n, err)
	}
	// Deleting indexed content leaves the index consistent.
	if _, err := s.Expunge(ctx, inbox.ID, models.All, false); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SweepContents(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	ms, _, err = s.ListMessages(ctx, models.MessageFilter{MailboxID: inbox.ID, Query: "quokka"}, nil, 10)
	if err != nil || len(ms) != 0 {
		t.Fatalf("search after delete: %d, %v", len(ms), err)
	}
}
