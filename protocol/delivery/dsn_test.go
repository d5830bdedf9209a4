package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	gomessage "github.com/emersion/go-message"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/message"
)

func TestReadHeader(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"stops at the blank line", "A: 1\r\nB: 2\r\n\r\nbody\r\n", 100, "A: 1\r\nB: 2\r\n"},
		{"bare LF", "A: 1\nB: 2\n\nbody\n", 100, "A: 1\r\nB: 2\r\n"},
		{"folded field kept", "A: 1\r\n\tmore\r\n\r\n", 100, "A: 1\r\n\tmore\r\n"},
		{"no body", "A: 1\r\nB: 2", 100, "A: 1\r\nB: 2\r\n"},
		{"cut at a line end", "A: 1\r\nB: 22222\r\nC: 3\r\n\r\n", 10, "A: 1\r\n"},
		{"exactly full", "A: 1\r\nB: 2\r\n\r\n", 12, "A: 1\r\nB: 2\r\n"},
		{"empty", "", 100, ""},
	} {
		got, err := delivery.ReadHeader(iotest.OneByteReader(strings.NewReader(tc.in)), tc.max)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: ReadHeader = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := delivery.ReadHeader(iotest.ErrReader(errors.New("disk on fire")), 100); err == nil {
		t.Error("read error not reported")
	}
}

type setup struct {
	store *models.Store
	dlv   *delivery.Deliverer
	mbox  *mailbox.Service
	alice *models.User
	bob   *models.User
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	ctx := context.Background()
	s := modelstest.New(t)
	mb := mailbox.New(s, mailbox.Options{})
	if _, err := s.CreateDomain(ctx, "local.test", ""); err != nil {
		t.Fatal(err)
	}
	alice, err := s.CreateUser(ctx, models.NewUser{Email: "alice@local.test", PasswordHash: "x", QuotaBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.CreateUser(ctx, models.NewUser{Email: "bob@local.test", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, models.NewUser{Email: "carol@local.test", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	return &setup{store: s, mbox: mb, alice: alice, bob: bob,
		dlv: delivery.New(s, mb, delivery.Options{Hostname: "mx.local.test"})}
}

func (s *setup) inbox(t *testing.T, u *models.User) [][]byte {
	t.Helper()
	ctx := context.Background()
	mb, err := s.store.MailboxByName(ctx, u.ID, models.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	err = s.store.MessagesByUID(ctx, mb.ID, models.All, func(m *models.Message) error {
		r, err := s.mbox.OpenMessage(ctx, m)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(r)
		out = append(out, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deliverToFullBob resolves bob and carol while bob has room, then fills
// bob's quota before the message is stored, as a concurrent delivery would.
func (s *setup) deliverToFullBob(t *testing.T, from string, user *models.User) *delivery.Result {
	t.Helper()
	ctx := context.Background()
	msg := "From: " + from + "\r\nSubject: for bob\r\nMessage-ID: <q@local.test>\r\n\r\nhello\r\n"
	env := &delivery.Envelope{From: from, User: user}
	for _, a := range []string{"bob@local.test", "carol@local.test"} {
		r, err := s.dlv.Resolve(ctx, a, user, int64(len(msg)))
		if err != nil {
			t.Fatal(err)
		}
		env.Recipients = append(env.Recipients, r)
	}
	quota := int64(10)
	if _, err := s.store.UpdateUser(ctx, s.bob.Email, models.UserPatch{QuotaBytes: &quota}); err != nil {
		t.Fatal(err)
	}
	res, err := s.dlv.Deliver(ctx, env, message.Bytes(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Address != "bob@local.test" || len(res.Delivered) != 1 {
		t.Fatalf("result = %+v", res)
	}
	return res
}

func TestDeliverBouncesOverQuotaRecipients(t *testing.T) {
	s := newSetup(t)
	s.deliverToFullBob(t, "alice@local.test", s.alice)
	// alice's own quota (1 byte) is full too: the bounce must reach her anyway.
	inbox := s.inbox(t, s.alice)
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages, want 1 bounce", len(inbox))
	}
	ent, err := gomessage.Read(bytes.NewReader(inbox[0]))
	if err != nil {
		t.Fatal(err)
	}
	if typ, params, _ := ent.Header.ContentType(); typ != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type = %s %v", typ, params)
	}
	if ent.Header.Get("Return-Path") != "<>" || !strings.Contains(ent.Header.Get("From"), "MAILER-DAEMON@mx.local.test") {
		t.Fatalf("header = %v", ent.Header)
	}
	raw := string(inbox[0])
	for _, want := range []string{
		"Reporting-MTA: dns; mx.local.test\r\n",
		"Final-Recipient: rfc822; bob@local.test\r\nAction: failed\r\nStatus: 5.2.2\r\n",
		"Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@local.test\r\nSubject: for bob\r\n",
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("bounce lacks %q:\n%s", want, raw)
		}
	}
	if strings.Contains(raw, "carol@local.test") || strings.Contains(raw, "hello") {
		t.Errorf("bounce mentions the delivered recipient or quotes the body:\n%s", raw)
	}
}

func TestNoBounceForNullOrRemoteSender(t *testing.T) {
	s := newSetup(t)
	// A bounce is never bounced; a remote sender is not ours to notify.
	s.deliverToFullBob(t, "", nil)
	s.store.UpdateUser(context.Background(), s.bob.Email, models.UserPatch{QuotaBytes: new(int64)}) //nolint:errcheck // checked below
	s.deliverToFullBob(t, "someone@remote.test", nil)
	for _, u := range []*models.User{s.alice, s.bob} {
		if n := len(s.inbox(t, u)); n != 0 {
			t.Errorf("%s got %d messages", u.Email, n)
		}
	}
}

func TestBounceToGroupAndUnknownSender(t *testing.T) {
	s := newSetup(t)
	ctx := context.Background()
	if _, _, err := s.store.CreateGroup(ctx, "team@local.test", "", []string{"alice@local.test", "bob@local.test"}); err != nil {
		t.Fatal(err)
	}
	dsn := &delivery.DSN{Sender: "team@local.test", Header: []byte("Subject: x\r\n"),
		Recipients: []delivery.DSNRecipient{{Address: "z@remote.test", Action: delivery.ActionFailed, Status: "5.1.1",
			Diagnostic: "550 5.1.1 unknown\r\nsecond line", Reason: "no such user"}}}
	if ok, err := s.dlv.Bounce(ctx, dsn); err != nil || !ok {
		t.Fatalf("Bounce to a group = %v, %v", ok, err)
	}
	for _, u := range []*models.User{s.alice, s.bob} {
		in := s.inbox(t, u)
		if len(in) != 1 || !strings.Contains(string(in[0]), "Diagnostic-Code: smtp; 550 5.1.1 unknown second line\r\n") {
			t.Fatalf("%s inbox = %q", u.Email, in)
		}
	}
	for _, sender := range []string{"nobody@local.test", "x@remote.test", "not an address", ""} {
		dsn.Sender = sender
		if ok, err := s.dlv.Bounce(ctx, dsn); err != nil || ok {
			t.Errorf("Bounce to %q = %v, %v; want nothing stored", sender, ok, err)
		}
	}
}
