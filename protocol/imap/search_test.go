package imap_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
)

type searchMsg struct {
	from, subject, date, extra, body string
	flags                            models.Flags
	internal                         time.Time
}

var searchMsgs = []searchMsg{
	{from: "Bob <bob@remote.example>", subject: "Invoice 2024", date: "Wed, 10 Jan 2024 09:00:00 +0000",
		body: "Please pay.", flags: models.Flags{Seen: true}, internal: time.Date(2024, 1, 11, 8, 0, 0, 0, time.UTC)},
	{from: "Carol <carol@remote.example>", subject: "Re: lunch", date: "Mon, 05 Feb 2024 12:00:00 +0000",
		body: "Pizza at noon?", flags: models.Flags{Flagged: true, Keywords: []string{"$Work"}}, internal: time.Date(2024, 2, 6, 8, 0, 0, 0, time.UTC)},
	{from: "Spammer <win@spam.example>", subject: "Win money", date: "Fri, 01 Mar 2024 00:00:00 +0000", extra: "X-Spam-Flag: YES\r\n",
		body: strings.Repeat("money ", 500), flags: models.Flags{Deleted: true}, internal: time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)},
	{from: "List <news@lists.example>", subject: "Newsletter", date: "Sat, 02 Mar 2024 00:00:00 +0000", extra: "X-Spam-Flag: NO\r\n",
		body: "yes we can", internal: time.Date(2024, 3, 2, 8, 0, 0, 0, time.UTC)},
	{from: "Dave <dave@remote.example>", subject: "Recipe", date: "Sun, 03 Mar 2024 00:00:00 +0000",
		body: "Éclair with 100% cocoa_butter", internal: time.Date(2024, 3, 3, 8, 0, 0, 0, time.UTC)},
}

func seedSearch(t *testing.T, e *env) {
	t.Helper()
	for _, m := range searchMsgs {
		raw := "From: " + m.from + "\r\nTo: alice@example.com\r\nSubject: " + m.subject + "\r\nDate: " + m.date + "\r\n" + m.extra +
			"Content-Type: text/plain; charset=utf-8\r\n\r\n" + m.body + "\r\n"
		if _, err := e.mbox.Append(context.Background(), e.user.ID, "INBOX", strings.NewReader(raw), m.flags, m.internal); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSearch(t *testing.T) {
	e := newEnv(t)
	seedSearch(t, e)
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	cases := []struct{ q, want string }{
		{"ALL", "* SEARCH 1 2 3 4 5"},
		{"SEEN", "* SEARCH 1"},
		{"UNSEEN", "* SEARCH 2 3 4 5"},
		{"FLAGGED KEYWORD $Work", "* SEARCH 2"},
		{"KEYWORD $WORK", "* SEARCH 2"},
		{"UNKEYWORD $Work", "* SEARCH 1 3 4 5"},
		{"DELETED", "* SEARCH 3"},
		{"UNDELETED UNSEEN", "* SEARCH 2 4 5"},
		{"FROM carol", "* SEARCH 2"},
		{"SUBJECT INVOICE", "* SEARCH 1"},
		{"TO alice", "* SEARCH 1 2 3 4 5"},
		{"HEADER X-Spam-Flag YES", "* SEARCH 3"},
		{`HEADER X-Spam-Flag ""`, "* SEARCH 3 4"},
		{"NOT HEADER X-Spam-Flag YES", "* SEARCH 1 2 4 5"},
		{"OR HEADER X-Spam-Flag YES FROM bob", "* SEARCH 1 3"},
		{"BODY pizza", "* SEARCH 2"},
		{`BODY "100% cocoa_butter"`, "* SEARCH 5"},
		{`BODY "100% cocoa butter"`, "* SEARCH"},
		{"TEXT carol", "* SEARCH 2"},
		{"TEXT nothing-like-this", "* SEARCH"},
		{"LARGER 2000", "* SEARCH 3"},
		{"SMALLER 2000", "* SEARCH 1 2 4 5"},
		{"SINCE 1-Mar-2024", "* SEARCH 3 4 5"},
		{"BEFORE 6-Feb-2024", "* SEARCH 1"},
		{"ON 6-Feb-2024", "* SEARCH 2"},
		{"SENTON 5-Feb-2024", "* SEARCH 2"},
		{"SENTSINCE 2-Mar-2024", "* SEARCH 4 5"},
		{"SENTBEFORE 1-Mar-2024", "* SEARCH 1 2"},
		{"OR FROM bob FROM carol", "* SEARCH 1 2"},
		{"NOT OR FROM bob FROM carol", "* SEARCH 3 4 5"},
		{"2:4", "* SEARCH 2 3 4"},
		{"2,4:*", "* SEARCH 2 4 5"},
		{"UID 3:*", "* SEARCH 3 4 5"},
		{"NOT UID 1,3", "* SEARCH 2 4 5"},
		{"NEW", "* SEARCH 2 3 4 5"},
		{"OLD", "* SEARCH"},
		{"RECENT SEEN", "* SEARCH 1"},
		{"CHARSET UTF-8 SUBJECT recipe", "* SEARCH 5"},
		{"(OR SEEN FLAGGED) (NOT 1)", "* SEARCH 2"},
	}
	for _, c := range cases {
		u := r.expectOK("SEARCH " + c.q)
		if len(u) != 1 || u[0] != c.want {
			t.Errorf("SEARCH %s = %q, want %q", c.q, u, c.want)
		}
	}
	if u := r.expectOK("UID SEARCH SUBJECT lunch"); len(u) != 1 || u[0] != "* SEARCH 2" {
		t.Errorf("UID SEARCH = %q", u)
	}
	if u := r.expectOK("SEARCH RETURN (MIN MAX COUNT) UNSEEN"); len(u) != 1 || !strings.HasSuffix(u[0], "MIN 2 MAX 5 COUNT 4") {
		t.Errorf("ESEARCH = %q", u)
	}
	if u := r.expectOK("UID SEARCH RETURN (ALL) 1:*"); len(u) != 1 || !strings.HasSuffix(u[0], "UID ALL 1:5") {
		t.Errorf("ESEARCH ALL = %q", u)
	}
	if u := r.expectOK("SEARCH RETURN (COUNT) FROM nobody"); len(u) != 1 || !strings.HasSuffix(u[0], "COUNT 0") {
		t.Errorf("ESEARCH none = %q", u)
	}
	// SEARCHRES: save the flagged messages, then use "$".
	r.expectOK("SEARCH RETURN (SAVE) OR FLAGGED DELETED")
	if u := r.expectOK("FETCH $ (UID)"); len(u) != 2 || !hasLine(u, "UID 2") || !hasLine(u, "UID 3") {
		t.Errorf("FETCH $ = %q", u)
	}
	if u := r.expectOK("SEARCH $ SUBJECT win"); len(u) != 1 || u[0] != "* SEARCH 3" {
		t.Errorf("SEARCH $ = %q", u)
	}
	// Sequence numbers follow expunges.
	r.expectOK("EXPUNGE")
	if u := r.expectOK("SEARCH FROM dave"); len(u) != 1 || u[0] != "* SEARCH 4" {
		t.Errorf("after EXPUNGE: %q", u)
	}
	if _, st := r.cmd("SEARCH CHARSET KOI8-R ALL"); !strings.HasPrefix(st, "NO [BADCHARSET]") {
		t.Errorf("unknown charset: %s", st)
	}
}

// TestSearchTooExpensive: a SEARCH with more text terms than the store's
// bound is answered NO [LIMIT] and the session goes on.
func TestSearchTooExpensive(t *testing.T) {
	e := newEnv(t)
	seedSearch(t, e)
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	q := "BODY w0"
	for i := 1; i <= models.MaxSearchTerms; i++ { // one term past the bound, OR'd
		q = fmt.Sprintf("OR %s BODY w%d", q, i)
	}
	if _, status := r.cmd("SEARCH " + q); !strings.Contains(status, "NO [LIMIT]") {
		t.Errorf("SEARCH of %d terms: %q, want NO [LIMIT]", models.MaxSearchTerms+1, status)
	}
	r.expectOK("SEARCH BODY pizza")
}
