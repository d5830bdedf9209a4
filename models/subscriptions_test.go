package models_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/migrations"
	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

func subscriptionsOf(t *testing.T, s *models.Store, userID int64) []string {
	t.Helper()
	names, err := s.Subscriptions(context.Background(), userID)
	if err != nil {
		t.Fatalf("Subscriptions: %v", err)
	}
	return names
}

func wantSubscriptions(t *testing.T, s *models.Store, userID int64, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := subscriptionsOf(t, s, userID); !slices.Equal(got, want) {
		t.Fatalf("subscriptions = %q, want %q", got, want)
	}
}

// Subscriptions are names: they outlive mailboxes, survive renames, and are
// made only on request (RFC 9051 §6.3.4-§6.3.8).
func TestSubscriptionsAreNames(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	s.CreateDomain(ctx, "example.com", "")
	u := mustUser(t, s, "a@example.com")
	// A new account's default mailboxes are subscribed.
	wantSubscriptions(t, s, u.ID, "INBOX", "Sent", "Drafts", "Trash", "Junk")

	if _, err := s.CreateMailboxUnsubscribed(ctx, u.ID, "Plain", ""); err != nil {
		t.Fatal(err)
	}
	if mb, err := s.MailboxByName(ctx, u.ID, "Plain"); err != nil || mb.Subscribed {
		t.Fatalf("CreateMailboxUnsubscribed: %+v, %v", mb, err)
	}
	if mb, err := s.CreateMailbox(ctx, u.ID, "Shown", ""); err != nil || !mb.Subscribed {
		t.Fatalf("CreateMailbox: %+v, %v", mb, err)
	}
	// A name without a mailbox may be subscribed; twice is once.
	for range 2 {
		if err := s.SetSubscribed(ctx, u.ID, "Nowhere/Box", true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSubscribed(ctx, u.ID, "inbox", true); err != nil { // INBOX in any case
		t.Fatal(err)
	}
	wantSubscriptions(t, s, u.ID, "INBOX", "Sent", "Drafts", "Trash", "Junk", "Shown", "Nowhere/Box")

	// DELETE leaves the subscription; a mailbox made later with the name is
	// subscribed.
	if err := s.DeleteMailbox(ctx, u.ID, "Shown"); err != nil {
		t.Fatal(err)
	}
	wantSubscriptions(t, s, u.ID, "INBOX", "Sent", "Drafts", "Trash", "Junk", "Shown", "Nowhere/Box")
	if mb, err := s.CreateMailboxUnsubscribed(ctx, u.ID, "Shown", ""); err != nil || !mb.Subscribed {
		t.Fatalf("re-created mailbox: %+v, %v", mb, err)
	}

	// RenameMailbox leaves the names subscribed; the HTTP API's rename moves
	// the subscriptions of the mailboxes it renames.
	if _, err := s.CreateMailbox(ctx, u.ID, "Shown/Kid", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, u.ID, "Shown", "Moved"); err != nil {
		t.Fatal(err)
	}
	wantSubscriptions(t, s, u.ID, "INBOX", "Sent", "Drafts", "Trash", "Junk", "Shown", "Shown/Kid", "Nowhere/Box")
	if err := s.SetSubscribed(ctx, u.ID, "Moved/Kid", true); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailboxAndSubscriptions(ctx, u.ID, "Moved", "Again"); err != nil {
		t.Fatal(err)
	}
	wantSubscriptions(t, s, u.ID, "INBOX", "Sent", "Drafts", "Trash", "Junk", "Shown", "Shown/Kid", "Again/Kid", "Nowhere/Box")
	mbs, err := s.Mailboxes(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range mbs {
		if want := slices.Contains(subscriptionsOf(t, s, u.ID), mb.Name); mb.Subscribed != want {
			t.Errorf("Mailboxes: %s subscribed %v, want %v", mb.Name, mb.Subscribed, want)
		}
	}

	// Unsubscribing a name that is not subscribed changes nothing.
	for _, name := range []string{"Shown", "Shown", "Never"} {
		if err := s.SetSubscribed(ctx, u.ID, name, false); err != nil {
			t.Fatal(err)
		}
	}
	wantSubscriptions(t, s, u.ID, "INBOX", "Sent", "Drafts", "Trash", "Junk", "Shown/Kid", "Again/Kid", "Nowhere/Box")
	for _, bad := range []string{"", "a//b", "a%", "a*", "a\x00b", "a\x7fb", "a\xffb"} {
		if err := s.SetSubscribed(ctx, u.ID, bad, true); !errors.Is(err, models.ErrInvalid) {
			t.Errorf("SetSubscribed(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	// Another user's subscriptions are their own.
	b := mustUser(t, s, "b@example.com")
	wantSubscriptions(t, s, b.ID, "INBOX", "Sent", "Drafts", "Trash", "Junk")
}

// Migration 00060 moves the subscribed column of mailboxes into the
// subscriptions table and back.
func TestSubscriptionsMigration(t *testing.T) {
	ctx := context.Background()
	s := modelstest.OpenIdle(t, modelstest.URL(t))
	s.CreateDomain(ctx, "example.com", "")
	u := mustUser(t, s, "a@example.com")
	if err := s.SetSubscribed(ctx, u.ID, "Junk", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, u.ID, "Gone", true); err != nil {
		t.Fatal(err)
	}
	d := migrations.SQLite
	if s.Dialect() == models.Postgres {
		d = migrations.Postgres
	}
	r, err := migrations.New(s.DB(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		v, err := r.Down(ctx)
		if err != nil {
			t.Fatalf("migrate down: %v", err)
		}
		if v == 60 {
			break
		}
		if v < 60 {
			t.Fatalf("rolled back %d without meeting 60", v)
		}
	}
	// Back in the column: subscribed mailboxes only (Gone had no row).
	// database/sql placeholders: $n for PostgreSQL, ? for SQLite.
	ph := func(q string) string {
		if d == migrations.Postgres {
			return q
		}
		return strings.NewReplacer("$1", "?", "$2", "?", "$3", "?").Replace(q)
	}
	rows, err := s.DB().QueryContext(ctx, ph(`SELECT name FROM mailboxes WHERE user_id = $1 AND subscribed ORDER BY name`), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var column []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		column = append(column, n)
	}
	rows.Close()
	if want := []string{"Drafts", "INBOX", "Sent", "Trash"}; !slices.Equal(column, want) {
		t.Fatalf("subscribed column after down = %q, want %q", column, want)
	}
	// And forward again: the column's subscriptions are kept.
	if _, err := s.DB().ExecContext(ctx, ph(`UPDATE mailboxes SET subscribed = $1 WHERE user_id = $2 AND name = $3`), false, u.ID, "Trash"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Up(ctx); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	wantSubscriptions(t, s, u.ID, "INBOX", "Sent", "Drafts")
}
