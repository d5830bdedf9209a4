package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/handlers"
	"github.com/mailgate/mailgate/models"
)

// waitSignal waits for a change signal, failing after a deadline.
func waitSignal(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no change signal after %s", what)
	}
}

// drain empties a coalescing signal channel.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestChangesReachWatchers(t *testing.T) {
	m := newMailEnv(t)
	ctx := context.Background()
	res := m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "subject": "watch me"})
	_ = res
	bob := m.user("bob")
	inbox, err := m.Mailbox.Get(ctx, bob.ID, models.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	// What an IMAP session in IDLE holds: a watch and the modseq it has seen.
	ch, stop := m.Mailbox.Watch(inbox.ID)
	defer stop()
	seenModseq := inbox.HighestModSeq
	item := m.list("bob", "")[0]

	drain(ch)
	m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"seen": true, "flagged": true}, m.tok["bob"]).Want(200)
	waitSignal(t, ch, "PATCH")
	c, err := m.Mailbox.ChangesSince(ctx, inbox.ID, seenModseq)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Updated) != 1 || uint32(item.UID) != c.Updated[0].UID || !c.Updated[0].Flags.Seen || !c.Updated[0].Flags.Flagged {
		t.Fatalf("changes after PATCH: %+v", c)
	}
	seenModseq = c.HighestModSeq

	// A move is an expunge in the source and a new UID in the destination.
	trash, err := m.Mailbox.BySpecialUse(ctx, bob.ID, models.SpecialTrash)
	if err != nil {
		t.Fatal(err)
	}
	tch, tstop := m.Mailbox.Watch(trash.ID)
	defer tstop()
	drain(ch)
	var s handlers.MessageSummary
	m.Do("POST", "/api/v1/messages/"+item.ID+"/trash", nil, m.tok["bob"]).Want(200).JSON(&s)
	waitSignal(t, ch, "move (source)")
	waitSignal(t, tch, "move (destination)")
	if c, err = m.Mailbox.ChangesSince(ctx, inbox.ID, seenModseq); err != nil {
		t.Fatal(err)
	}
	if len(c.Expunged) != 1 || c.Expunged[0] != uint32(item.UID) || len(c.Updated) != 0 {
		t.Fatalf("source changes after the move: %+v", c)
	}
	tc, err := m.Mailbox.ChangesSince(ctx, trash.ID, trash.HighestModSeq)
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Updated) != 1 || tc.Updated[0].UID != uint32(s.UID) || !tc.Updated[0].Flags.Seen || tc.UIDNext != uint32(s.UID)+1 {
		t.Fatalf("destination changes after the move: %+v (moved as %+v)", tc, s)
	}

	drain(tch)
	m.Do("DELETE", "/api/v1/messages/"+item.ID, nil, m.tok["bob"]).Want(204)
	waitSignal(t, tch, "DELETE")
	if c, err = m.Mailbox.ChangesSince(ctx, trash.ID, tc.HighestModSeq); err != nil {
		t.Fatal(err)
	}
	if len(c.Expunged) != 1 || c.Expunged[0] != uint32(s.UID) {
		t.Fatalf("changes after DELETE: %+v", c)
	}
	m.Do("GET", "/api/v1/messages/"+item.ID, nil, m.tok["bob"]).Want(404)
	m.Do("DELETE", "/api/v1/messages/"+item.ID, nil, m.tok["bob"]).Want(404)
}

func TestFlagMoveTrash(t *testing.T) {
	m := newMailEnv(t)
	m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "subject": "to file", "text": "x"})
	item := m.list("bob", "")[0]
	var s handlers.MessageSummary
	m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"seen": true, "answered": true}, m.tok["bob"]).Want(200).JSON(&s)
	if !s.Seen || !s.Answered || s.Flagged || strings.Join(s.Flags, " ") != `\Seen \Answered` {
		t.Fatalf("after PATCH: %+v", s)
	}
	if m.mailbox("bob", "INBOX").Unseen != 0 {
		t.Fatal("unseen count not kept")
	}
	m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"seen": false}, m.tok["bob"]).Want(200).JSON(&s)
	if s.Seen || !s.Answered {
		t.Fatalf("after unseen: %+v", s)
	}

	var archive handlers.Mailbox
	m.Do("POST", "/api/v1/mailboxes", map[string]any{"name": "Archive/2024", "special_use": "Archive"}, m.tok["bob"]).Want(201).JSON(&archive)
	m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"mailbox": "Archive/2024", "flagged": true}, m.tok["bob"]).Want(200).JSON(&s)
	if s.ID != item.ID || s.Mailbox != "Archive/2024" || s.MailboxID != archive.ID || !s.Flagged || s.Seen {
		t.Fatalf("after move: %+v", s)
	}
	if m.mailbox("bob", "INBOX").Total != 0 || m.mailbox("bob", "Archive/2024").Total != 1 {
		t.Fatal("counters after move")
	}
	// A bad move changes nothing, the flags included.
	wantField(t, m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"mailbox": "Nowhere", "flagged": false}, m.tok["bob"]), 400, "mailbox")
	wantField(t, m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"seen": "yes"}, m.tok["bob"]), 400, "seen")
	wantField(t, m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"deleted": true}, m.tok["bob"]), 400, "deleted")
	m.Do("GET", "/api/v1/messages/"+item.ID, nil, m.tok["bob"]).Want(200).JSON(&s)
	if !s.Flagged {
		t.Fatal("a refused PATCH changed the flags")
	}

	m.Do("POST", "/api/v1/messages/"+item.ID+"/trash", nil, m.tok["bob"]).Want(200).JSON(&s)
	if s.ID != item.ID || s.Mailbox != "Trash" {
		t.Fatalf("after trash: %+v", s)
	}
	m.Do("POST", "/api/v1/messages/"+item.ID+"/trash", nil, m.tok["bob"]).Want(200) // already there
	// Without a \Trash mailbox, one is made.
	trash := m.mailbox("bob", "Trash")
	m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"mailbox": "INBOX"}, m.tok["bob"]).Want(200)
	m.Do("DELETE", "/api/v1/mailboxes/"+trash.ID, nil, m.tok["bob"]).Want(204)
	m.Do("POST", "/api/v1/messages/"+item.ID+"/trash", nil, m.tok["bob"]).Want(200).JSON(&s)
	if s.Mailbox != "Trash" || s.MailboxID == trash.ID {
		t.Fatalf("trash without a Trash mailbox: %+v", s)
	}
	// At its quota, a user can still move mail around and throw it away.
	m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"mailbox": "INBOX"}, m.tok["bob"]).Want(200)
	var u handlers.User
	m.Do("GET", "/api/v1/users/bob@example.com", nil, m.AdminToken).Want(200).JSON(&u)
	m.Do("PATCH", "/api/v1/users/bob@example.com", map[string]any{"quota_bytes": u.UsedBytes}, m.AdminToken).Want(200)
	m.Do("POST", "/api/v1/messages/"+item.ID+"/trash", nil, m.tok["bob"]).Want(200)
	m.Do("PATCH", "/api/v1/messages/"+item.ID, map[string]any{"mailbox": archive.ID}, m.tok["bob"]).Want(200)
	m.Do("DELETE", "/api/v1/messages/"+item.ID, nil, m.tok["bob"]).Want(204)
	if m.mailbox("bob", "Archive/2024").Total != 0 || m.mailbox("bob", "Trash").Total != 0 {
		t.Fatal("deleted message still counted")
	}
}

func TestOtherUsersMessagesAreNotFound(t *testing.T) {
	m := newMailEnv(t)
	m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "subject": "private",
		"attachments": []map[string]any{{"filename": "a.txt", "content": b64([]byte("secret"))}}})
	id := m.list("bob", "")[0].ID
	missing := models.NewID()
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/messages/%s"},
		{"GET", "/api/v1/messages/%s/raw"},
		{"GET", "/api/v1/messages/%s/attachments/0"},
		{"PATCH", "/api/v1/messages/%s"},
		{"DELETE", "/api/v1/messages/%s"},
		{"POST", "/api/v1/messages/%s/trash"},
	} {
		var body any
		if r.method == "PATCH" {
			body = map[string]any{"seen": true}
		}
		other := m.Do(r.method, strings.Replace(r.path, "%s", id, 1), body, m.tok["carol"]).Want(404)
		none := m.Do(r.method, strings.Replace(r.path, "%s", missing, 1), body, m.tok["carol"]).Want(404)
		if strings.ReplaceAll(string(other.Body), id, "ID") != strings.ReplaceAll(string(none.Body), missing, "ID") {
			t.Errorf("%s %s: another user's message %s, a missing one %s", r.method, r.path, other.Body, none.Body)
		}
	}
	m.Do("GET", "/api/v1/messages/not-a-uuid", nil, m.tok["carol"]).Want(404)
	// Bob's message is untouched.
	var d handlers.MessageDetail
	m.Do("GET", "/api/v1/messages/"+id, nil, m.tok["bob"]).Want(200).JSON(&d)
	if d.Seen {
		t.Fatal("another user's PATCH reached the message")
	}
	// Mailboxes too.
	inbox := m.mailbox("bob", "INBOX")
	m.Do("DELETE", "/api/v1/mailboxes/"+inbox.ID, nil, m.tok["carol"]).Want(404)
	m.Do("PATCH", "/api/v1/mailboxes/"+m.mailbox("bob", "Junk").ID, map[string]any{"name": "Mine"}, m.tok["carol"]).Want(404)
}

func TestMailboxes(t *testing.T) {
	m := newMailEnv(t)
	var l handlers.MailboxList
	m.Do("GET", "/api/v1/mailboxes", nil, m.tok["bob"]).Want(200).JSON(&l)
	var names []string
	uses := map[string]string{}
	for _, mb := range l.Items {
		names = append(names, mb.Name)
		uses[mb.Name] = mb.SpecialUse
	}
	if strings.Join(names, ",") != "Drafts,INBOX,Junk,Sent,Trash" || uses["Sent"] != `\Sent` || uses["Trash"] != `\Trash` || uses["INBOX"] != "" {
		t.Fatalf("mailboxes %v %v", names, uses)
	}
	m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "text": strings.Repeat("x", 1000)})
	m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "text": "y"})
	inbox := m.mailbox("bob", "INBOX")
	if inbox.Total != 2 || inbox.Unseen != 2 || inbox.Size < 1000 || !inbox.Subscribed {
		t.Fatalf("INBOX counters %+v", inbox)
	}

	var mb handlers.Mailbox
	r := m.Do("POST", "/api/v1/mailboxes", map[string]any{"name": "Projects/2024"}, m.tok["bob"]).Want(201)
	r.JSON(&mb)
	if mb.Name != "Projects/2024" || mb.Total != 0 || r.Header.Get("Location") != "/api/v1/mailboxes/"+mb.ID {
		t.Fatalf("created %+v", mb)
	}
	m.mailbox("bob", "Projects") // the parent was made
	m.Do("POST", "/api/v1/mailboxes", map[string]any{"name": "Projects/2024"}, m.tok["bob"]).Want(409)
	m.Do("POST", "/api/v1/mailboxes", map[string]any{"name": "Other Sent", "special_use": `\Sent`}, m.tok["bob"]).Want(409)
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": ""}, "name"},
		{map[string]any{"name": "a//b"}, "name"},
		{map[string]any{"name": "x*"}, "name"},
		{map[string]any{"name": "ok", "special_use": "Important"}, "special_use"},
		{map[string]any{"name": "ok", "colour": "red"}, "colour"},
	} {
		wantField(t, m.Do("POST", "/api/v1/mailboxes", c.body, m.tok["bob"]), 400, c.field)
	}

	m.Do("PATCH", "/api/v1/mailboxes/"+mb.ID, map[string]any{"name": "Projects/2025", "subscribed": false}, m.tok["bob"]).Want(200).JSON(&mb)
	if mb.Name != "Projects/2025" || mb.Subscribed {
		t.Fatalf("renamed %+v", mb)
	}
	m.Do("PATCH", "/api/v1/mailboxes/"+mb.ID, map[string]any{"name": "Sent"}, m.tok["bob"]).Want(409)
	wantField(t, m.Do("PATCH", "/api/v1/mailboxes/"+mb.ID, map[string]any{"name": "/bad"}, m.tok["bob"]), 400, "name")
	r = m.Do("PATCH", "/api/v1/mailboxes/"+inbox.ID, map[string]any{"name": "Old"}, m.tok["bob"]).Want(403)
	if !strings.Contains(string(r.Body), "INBOX cannot be renamed") {
		t.Fatalf("rename INBOX: %s", r.Body)
	}
	r = m.Do("DELETE", "/api/v1/mailboxes/"+inbox.ID, nil, m.tok["bob"]).Want(403)
	if !strings.Contains(string(r.Body), "INBOX cannot be deleted") {
		t.Fatalf("delete INBOX: %s", r.Body)
	}
	m.Do("DELETE", "/api/v1/mailboxes/"+mb.ID, nil, m.tok["bob"]).Want(204)
	m.Do("DELETE", "/api/v1/mailboxes/"+mb.ID, nil, m.tok["bob"]).Want(404)
	m.Do("PATCH", "/api/v1/mailboxes/"+models.NewID(), map[string]any{"name": "x"}, m.tok["bob"]).Want(404)
}
