package imap_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models/modelstest"
)

// Two mailgate instances on one PostgreSQL database: a session IDLE on
// instance A hears, within a second, of mail delivered through instance B and
// of flag changes and expunges made in an IMAP session on B. The notices
// travel through the database (LISTEN/NOTIFY); nothing is shared in memory.
func TestTwoInstancesLiveUpdates(t *testing.T) {
	if os.Getenv(modelstest.EnvURL) == "" {
		t.Skip("two instances share a database only on PostgreSQL: set " + modelstest.EnvURL)
	}
	url := modelstest.URL(t)
	a := newEnvWith(t, envOptions{url: url})
	b := newEnvWith(t, envOptions{url: url})
	b.deliver(t, testMessage(1, "first"))

	idle := dialRaw(t, a.addr)
	idle.login()
	if u := idle.expectOK("SELECT INBOX"); !hasLine(u, "* 1 EXISTS") {
		t.Fatalf("SELECT on A: %q", u)
	}
	idle.send("i1 IDLE")
	if l := idle.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	within := func(what string, do func(), want string) {
		t.Helper()
		start := time.Now()
		do()
		if l := idle.line(); !strings.HasPrefix(l, want) {
			t.Fatalf("%s: A got %q, want %q", what, l, want)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%s reached A after %v", what, d)
		}
	}
	within("delivery through B", func() { b.deliver(t, testMessage(2, "second")) }, "* 2 EXISTS")
	if l := idle.line(); l != "* 2 RECENT" {
		t.Fatalf("A got %q", l)
	}

	other := dialRaw(t, b.addr)
	other.login()
	other.expectOK("SELECT INBOX")
	within("STORE on B", func() { other.expectOK(`STORE 1 +FLAGS.SILENT (\Flagged)`) }, `* 1 FETCH (UID 1 FLAGS (\Flagged \Recent))`)
	within("EXPUNGE on B", func() {
		other.expectOK(`STORE 1 +FLAGS.SILENT (\Deleted)`)
		other.expectOK("EXPUNGE")
	}, "* 1 FETCH")
	if l := idle.line(); l != "* 1 EXPUNGE" {
		t.Fatalf("A got %q, want the EXPUNGE", l)
	}
	idle.send("DONE")
	if l := idle.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("DONE: %q", l)
	}
	if u := idle.expectOK("FETCH 1:* UID"); len(u) != 1 || !strings.Contains(u[0], "UID 2") {
		t.Fatalf("A after the changes: %q", u)
	}
}
