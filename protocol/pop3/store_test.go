package pop3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// The interfaces POP3 declares are met by the real services (STYLE C2).
var (
	_ Maildrop      = (*mailbox.Service)(nil)
	_ Authenticator = (*auth.Authenticator)(nil)
)

func withURL(u string) envOption { return func(c *envConfig) { c.url = u } }

func TestInUseAcrossInstances(t *testing.T) {
	url := modelstest.URL(t)
	a := newEnv(t, withURL(url))
	b := newEnv(t, onURL(url)) // a second instance: its own store handle and server
	a.deliver(testMessage(1))

	ca := dial(t, a.addr)
	mustPrefix(t, "login on A", ca.login(testUser, testPassword), "+OK Maildrop has 1 messages")
	cb := dial(t, b.addr)
	mustPrefix(t, "login on B", cb.login(testUser, testPassword), "-ERR [IN-USE]")
	cb2 := dial(t, a.addr)
	mustPrefix(t, "second login on A", cb2.login(testUser, testPassword), "-ERR [IN-USE]")
	mustPrefix(t, "B still in AUTHORIZATION", cb.cmd("STAT"), "-ERR STAT is not valid in the AUTHORIZATION state")

	mustPrefix(t, "QUIT on A", ca.cmd("QUIT"), "+OK")
	mustPrefix(t, "login on B after QUIT", cb.login(testUser, testPassword), "+OK Maildrop has 1 messages")
	mustPrefix(t, "QUIT on B", cb.cmd("QUIT"), "+OK")
}

func TestCrashedInstanceLeaseExpires(t *testing.T) {
	e := newEnv(t)
	// An instance took the lock and died: nobody renews its lease.
	if err := e.mbox.LockMaildrop(context.Background(), e.user.ID, "dead-instance/1", time.Hour); err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.addr)
	mustPrefix(t, "while the dead lease lives", c.login(testUser, testPassword), "-ERR [IN-USE]")
	// Its hour passes (models' own test lets a short lease run out for real).
	if _, err := e.store.DB().Exec(setExpiry(e.store), time.Now().Add(-time.Second).UTC()); err != nil {
		t.Fatal(err)
	}
	mustPrefix(t, "once it expired", c.login(testUser, testPassword), "+OK")
}

func TestLeaseRenewedAndLost(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.LockTTL = time.Second }))
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK")
	// Renewal keeps the lease alive well past its TTL.
	renewedUntil := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(renewedUntil) {
		err := e.mbox.LockMaildrop(context.Background(), e.user.ID, "intruder", time.Minute)
		if !errors.Is(err, models.ErrMaildropLocked) {
			t.Fatalf("lease of a live session taken: %v", err)
		}
		mustPrefix(t, "NOOP", c.cmd("NOOP"), "+OK")
	}
	// Another session takes the lease over (as if this one had stalled past
	// it): this session no longer has exclusive access and is closed.
	if _, err := e.store.DB().Exec(`UPDATE maildrop_locks SET owner = 'intruder'`); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
}

func TestDeleteReachesWatchersAndChanges(t *testing.T) {
	e := newEnv(t)
	m1, _ := e.deliver(testMessage(1))
	m2, _ := e.deliver(testMessage(2))
	inbox := e.inbox()
	signals, stop := e.mbox.Watch(inbox.ID) // what an IMAP IDLE session listens to
	defer stop()
	// The store's listener ran before Watch: the notices of the deliveries
	// above may still be on their way. A notice sent now arrives after them
	// (PostgreSQL delivers them in commit order), so once it is in, they are.
	barrier, unsubscribe := e.store.Subscribe("test-barrier")
	defer unsubscribe()
	if err := e.store.Notify(context.Background(), "test-barrier"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-barrier:
	case <-time.After(10 * time.Second):
		t.Fatal("the barrier notice did not arrive")
	}
	select {
	case <-signals: // the deliveries', late
	default:
	}

	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK")
	mustPrefix(t, "RETR 2", c.cmd("RETR 2"), "+OK")
	c.body()
	mustPrefix(t, "DELE 1", c.cmd("DELE 1"), "+OK")
	select {
	case <-signals:
		t.Fatal("a mailbox change before QUIT")
	default:
	}
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
	select {
	case <-signals:
	case <-time.After(10 * time.Second):
		t.Fatal("no change signal after a POP3 deletion")
	}
	ch, err := e.mbox.ChangesSince(context.Background(), inbox.ID, inbox.HighestModSeq)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Expunged, []uint32{m1.UID}) {
		t.Errorf("Expunged = %v, want [%d]", ch.Expunged, m1.UID)
	}
	if _, err := e.mbox.Message(context.Background(), e.user.ID, m1.PublicID); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("deleted message still found by its public id: %v", err)
	}
	got, err := e.mbox.Message(context.Background(), e.user.ID, m2.PublicID)
	if err != nil || !got.Seen {
		t.Errorf("retrieved message = %+v, %v; want it kept and \\Seen", got, err)
	}
}

func TestDroppedConnectionDeletesNothing(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver(testMessage(i))
	}
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK Maildrop has 3 messages")
	for i := 1; i <= 3; i++ {
		mustPrefix(t, "DELE", c.cmd(fmt.Sprintf("DELE %d", i)), "+OK")
	}
	c.nc.Close()
	e.waitIdle()
	if n := e.inboxCount(); n != 3 {
		t.Fatalf("INBOX has %d messages after a dropped session, want 3", n)
	}
	c = dial(t, e.addr) // the lock went with the session
	mustPrefix(t, "login again", c.login(testUser, testPassword), "+OK Maildrop has 3 messages")
}

func TestUpdateFailureDeletesNothing(t *testing.T) {
	url := modelstest.URL(t)
	e := newEnv(t, withURL(url))
	for i := 1; i <= 2; i++ {
		e.deliver(testMessage(i))
	}
	other := modelstest.Open(t, url) // another handle, to look at the database afterwards
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK")
	mustPrefix(t, "DELE 1", c.cmd("DELE 1"), "+OK")
	mustPrefix(t, "DELE 2", c.cmd("DELE 2"), "+OK")
	e.store.Close() // the server's database goes away before QUIT
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "-ERR [SYS/TEMP]")
	c.expectClosed()
	msgs, err := other.MaildropMessages(context.Background(), e.inbox2(other).ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages left after a failed UPDATE, want 2", len(msgs))
	}
}

func (e *env) inbox2(s *models.Store) *models.Mailbox {
	mb, err := s.MailboxByName(context.Background(), e.user.ID, models.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	return mb
}

func TestSnapshotFixedForSession(t *testing.T) {
	e := newEnv(t)
	m1, _ := e.deliver(testMessage(1))
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK Maildrop has 1 messages")
	e.deliver(testMessage(2)) // arrives during the session
	mustPrefix(t, "STAT", c.cmd("STAT"), fmt.Sprintf("+OK 1 %d", m1.Size))
	mustPrefix(t, "LIST 2", c.cmd("LIST 2"), "-ERR No such message")
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
	c = dial(t, e.addr)
	mustPrefix(t, "next session", c.login(testUser, testPassword), "+OK Maildrop has 2 messages")
}

func TestMessageGoneSinceSnapshot(t *testing.T) {
	e := newEnv(t)
	m1, _ := e.deliver(testMessage(1))
	e.deliver(testMessage(2))
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK Maildrop has 2 messages")
	// IMAP expunges message 1 and its content is swept meanwhile.
	if _, err := e.mbox.Expunge(context.Background(), m1.MailboxID, models.UIDs(m1.UID), false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.mbox.Sweep(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustPrefix(t, "RETR 1", c.cmd("RETR 1"), "-ERR No such message")
	mustPrefix(t, "DELE 1", c.cmd("DELE 1"), "+OK")
	mustPrefix(t, "RETR 2", c.cmd("RETR 2"), "+OK")
	c.body()
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
	if n := e.inboxCount(); n != 1 {
		t.Fatalf("INBOX has %d messages, want 1", n)
	}
}

func TestIdleTimeouts(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.Limits.IdleTimeout = 2 * time.Second }))
	e.deliver(testMessage(1))
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK")
	// Commands keep the session alive well past one IdleTimeout.
	for range 3 {
		time.Sleep(time.Second)
		mustPrefix(t, "NOOP", c.cmd("NOOP"), "+OK")
	}
	start := time.Now()
	mustPrefix(t, "DELE", c.cmd("DELE 1"), "+OK")
	mustPrefix(t, "authenticated", c.line(), "-ERR Idle for too long; closing")
	if d := time.Since(start); d < 1900*time.Millisecond || d > 5*time.Second {
		t.Errorf("an authenticated session was closed after %v; want IdleTimeout", d)
	}
	c.expectClosed()
	e.waitIdle()
	if n := e.inboxCount(); n != 1 {
		t.Fatalf("a timed-out session deleted mail: %d left", n)
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t)
	e.deliver(testMessage(1))
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK")
	mustPrefix(t, "DELE", c.cmd("DELE 1"), "+OK")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mustPrefix(t, "after Shutdown", c.line(), "-ERR [SYS/TEMP] Server shutting down")
	c.expectClosed()
	for range 2 {
		if err := <-e.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	}
	if n := e.inboxCount(); n != 1 {
		t.Fatalf("Shutdown deleted mail: %d left", n)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

// setExpiry is SQL that moves every maildrop lease's end, in the store's dialect.
func setExpiry(s *models.Store) string {
	if s.Dialect() == models.Postgres {
		return `UPDATE maildrop_locks SET expires_at = $1`
	}
	return `UPDATE maildrop_locks SET expires_at = ?`
}
