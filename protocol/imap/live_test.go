package imap_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// Two sessions on one mailbox: each change made through one (or through the
// store, as SMTP and the HTTP API make them) reaches the other as EXISTS,
// EXPUNGE and FETCH, with sequence numbers right for what it was told.
func TestTwoSessionsSeeEachOther(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 5; i++ {
		e.deliver(t, testMessage(i, fmt.Sprint("m", i)))
	}
	var ua, ub updates
	a := e.client(t, ua.handler())
	b := e.client(t, ub.handler())
	if _, err := a.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	// B flags message 2: A hears of it at its next command.
	if _, err := b.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	// go-imap's client runs the FETCH handler in a goroutine of its own.
	eventually(t, 5*time.Second, "FETCH of message 2 at A", func() bool {
		_, _, f := ua.snapshot()
		return slices.ContainsFunc(f, func(s string) bool { return strings.HasPrefix(s, "2 ") && strings.Contains(s, `\Flagged`) })
	})
	// B's own silent STORE is not echoed back to it.
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, _, f := ub.snapshot(); len(f) != 0 {
		t.Errorf("B got its own change back: %v", f)
	}

	// B deletes messages 2 and 4; A, told at NOOP, renumbers.
	if _, err := b.Store(imap.SeqSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	exp, err := b.Expunge().Collect()
	if err != nil || !slices.Equal(exp, []uint32{2, 3}) {
		t.Fatalf("B EXPUNGE = %v, %v (want 2 then 3: the second renumbered)", exp, err)
	}
	// Before its NOOP, A still addresses messages by its own numbers: 5 is UID 5.
	msgs, err := a.Fetch(imap.SeqSetNum(5), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 5 {
		t.Fatalf("A FETCH 5 before hearing of the expunge: %v %+v", err, msgs)
	}
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, x, _ := ua.snapshot(); !slices.Equal(x, []uint32{2, 3}) {
		t.Fatalf("A expunges = %v", x)
	}
	msgs, err = a.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 3 || msgs[0].UID != 1 || msgs[1].UID != 3 || msgs[2].UID != 5 || msgs[2].SeqNum != 3 {
		t.Fatalf("A after expunge: %v %+v", err, msgs)
	}

	// New mail arrives by SMTP: both hear EXISTS 4.
	e.deliver(t, testMessage(6, "m6"))
	if err := a.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]*updates{"A": &ua, "B": &ub} {
		if x, _, _ := u.snapshot(); len(x) == 0 || x[len(x)-1] != 4 {
			t.Errorf("%s EXISTS = %v, want 4 last", name, x)
		}
	}
}

// A message delivered while a session IDLEs shows up as EXISTS within a
// second, and a change made elsewhere as FETCH and EXPUNGE.
func TestIdleSeesDeliveryWithinASecond(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, testMessage(1, "before"))
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	r.send("i1 IDLE")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	start := time.Now()
	e.deliver(t, testMessage(2, "during"))
	if l := r.line(); l != "* 2 EXISTS" {
		t.Fatalf("IDLE got %q", l)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("EXISTS after %v", d)
	}
	if l := r.line(); l != "* 2 RECENT" { // both are recent in this session
		t.Fatalf("IDLE got %q, want RECENT", l)
	}
	ctx := context.Background()
	inbox, _ := e.mbox.Get(ctx, e.user.ID, "INBOX")
	if _, err := e.mbox.SetFlags(ctx, inbox.ID, models.UIDs(1), models.FlagsAdd, models.Flags{Answered: true}); err != nil {
		t.Fatal(err)
	}
	if l := r.line(); !strings.HasPrefix(l, "* 1 FETCH (UID 1 FLAGS (\\Answered") {
		t.Fatalf("IDLE got %q", l)
	}
	if _, err := e.mbox.Expunge(ctx, inbox.ID, models.UIDs(1), false); err != nil {
		t.Fatal(err)
	}
	if l := r.line(); l != "* 1 EXPUNGE" {
		t.Fatalf("IDLE got %q", l)
	}
	r.send("DONE")
	if l := r.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("after DONE: %q", l)
	}
}

// \Recent (IMAP4rev1): the first session to see a message gets it recent,
// no other does, and EXAMINE claims nothing.
func TestRecent(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, testMessage(1, "one"))
	e.deliver(t, testMessage(2, "two"))
	x := dialRaw(t, e.addr)
	x.login()
	if u := x.expectOK("EXAMINE INBOX"); !hasLine(u, "* 2 RECENT") {
		t.Fatalf("EXAMINE: %q", u)
	}
	a := dialRaw(t, e.addr)
	a.login()
	if u := a.expectOK("SELECT INBOX"); !hasLine(u, "* 2 RECENT") {
		t.Fatalf("first SELECT: %q", u)
	}
	if u := a.expectOK("FETCH 1 FLAGS"); !hasLine(u, `\Recent`) {
		t.Fatalf("FETCH in first session: %q", u)
	}
	if u := a.expectOK(`SEARCH RECENT`); !hasLine(u, "* SEARCH 1 2") {
		t.Fatalf("SEARCH RECENT: %q", u)
	}
	b := dialRaw(t, e.addr)
	b.login()
	if u := b.expectOK("SELECT INBOX"); !hasLine(u, "* 0 RECENT") {
		t.Fatalf("second SELECT: %q", u)
	}
	if u := b.expectOK("FETCH 1:* FLAGS"); hasLine(u, `\Recent`) {
		t.Fatalf("second session sees \\Recent: %q", u)
	}
	// A new message goes to whichever session hears of it first.
	e.deliver(t, testMessage(3, "three"))
	if u := b.expectOK("NOOP"); !hasLine(u, "* 3 EXISTS") || !hasLine(u, "* 1 RECENT") {
		t.Fatalf("B NOOP: %q", u)
	}
	if u := a.expectOK("NOOP"); !hasLine(u, "* 3 EXISTS") || !hasLine(u, "* 2 RECENT") {
		t.Fatalf("A NOOP: %q", u)
	}
	if u := x.expectOK("STATUS INBOX (RECENT)"); !hasLine(u, "RECENT 0") {
		t.Fatalf("STATUS RECENT after claims: %q", u)
	}
}

// A selected mailbox deleted by another session: that session is told BYE
// (RFC 2180 §3.3); the deleting session itself gets NO [NONEXISTENT] for
// commands on it until it selects another.
func TestSelectedMailboxDeleted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.mbox.Create(ctx, e.user.ID, "Box", ""); err != nil {
		t.Fatal(err)
	}
	e.appendMsg(t, "Box", testMessage(1, "x"), models.Flags{})
	a := dialRaw(t, e.addr)
	a.login()
	a.expectOK("SELECT Box")
	b := dialRaw(t, e.addr)
	b.login()
	b.expectOK("SELECT Box")
	b.expectOK("DELETE Box")
	if _, st := b.cmd("FETCH 1 FLAGS"); !strings.HasPrefix(st, "NO [NONEXISTENT]") {
		t.Fatalf("FETCH in own deleted mailbox: %s", st)
	}
	b.expectOK("SELECT INBOX")
	// A learns at its next command.
	a.send("a1 NOOP")
	a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := readAll(a)
	if !strings.Contains(rest, "* BYE Selected mailbox was deleted") {
		t.Fatalf("A: %q", rest)
	}
	// Re-created, the name has a new UIDVALIDITY.
	r := dialRaw(t, e.addr)
	r.login()
	if _, st := r.cmd("SELECT Box"); !strings.HasPrefix(st, "NO [NONEXISTENT]") {
		t.Fatalf("SELECT deleted: %s", st)
	}
}

// A renamed selected mailbox stays selected under its new name.
func TestSelectedMailboxRenamed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.mbox.Create(ctx, e.user.ID, "Old", ""); err != nil {
		t.Fatal(err)
	}
	e.appendMsg(t, "Old", testMessage(1, "x"), models.Flags{})
	a := dialRaw(t, e.addr)
	a.login()
	u := a.expectOK("SELECT Old")
	b := dialRaw(t, e.addr)
	b.login()
	b.expectOK("RENAME Old New")
	e.appendMsg(t, "New", testMessage(2, "y"), models.Flags{})
	if u2 := a.expectOK("NOOP"); !hasLine(u2, "* 2 EXISTS") {
		t.Fatalf("after rename: %q (select %q)", u2, u)
	}
	if u2 := a.expectOK("UID FETCH 1:* FLAGS"); !hasLine(u2, "UID 2") {
		t.Fatalf("after rename: %q", u2)
	}
}

// A session's own STORE is answered once, not again at its next poll; another
// session's change to the same message is.
func TestOwnStoreNotEchoed(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, testMessage(1, "x"))
	a := dialRaw(t, e.addr)
	a.login()
	a.expectOK("SELECT INBOX")
	b := dialRaw(t, e.addr)
	b.login()
	b.expectOK("SELECT INBOX")
	if u := a.expectOK(`STORE 1 +FLAGS (\Flagged)`); len(u) != 1 || !hasLine(u, `* 1 FETCH (FLAGS (\Flagged \Recent))`) {
		t.Fatalf("STORE: %q", u)
	}
	if u := a.expectOK("NOOP"); len(u) != 0 {
		t.Fatalf("own change echoed: %q", u)
	}
	b.expectOK(`STORE 1 +FLAGS.SILENT (\Seen)`)
	if u := a.expectOK("NOOP"); !hasLine(u, `* 1 FETCH (UID 1 FLAGS (\Seen \Flagged \Recent))`) {
		t.Fatalf("other session's change: %q", u)
	}
}

// Changes whose record is lost (here: an expunge whose tombstone is gone, as
// if pruned, made through another store that signals nobody) are still found:
// the state notices its count is off and reloads the UIDs.
func TestResyncAfterLostChanges(t *testing.T) {
	url := modelstest.URL(t)
	e := newEnvWith(t, envOptions{url: url})
	for i := 1; i <= 4; i++ {
		e.deliver(t, testMessage(i, "x"))
	}
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")

	other := modelstest.Open(t, url) // another instance's store
	ctx := context.Background()
	inbox, _ := e.mbox.Get(ctx, e.user.ID, "INBOX")
	if _, err := other.Expunge(ctx, inbox.ID, models.UIDs(2, 3), false); err != nil {
		t.Fatal(err)
	}
	if _, err := other.DB().ExecContext(ctx, "DELETE FROM expunged"); err != nil {
		t.Fatal(err)
	}
	u := r.expectOK("NOOP")
	if len(u) != 2 || u[0] != "* 2 EXPUNGE" || u[1] != "* 2 EXPUNGE" {
		t.Fatalf("NOOP after lost expunges: %q", u)
	}
	if u := r.expectOK("FETCH 1:* UID"); len(u) != 2 || !hasLine(u, "* 2 FETCH (UID 4)") {
		t.Fatalf("after resync: %q", u)
	}
}
