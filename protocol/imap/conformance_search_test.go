package imap_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/models"
)

// srchMessage is a message with the given header fields (each "Name: value")
// and plain-text body.
func srchMessage(fields []string, body string) string {
	msg := ""
	for _, f := range fields {
		msg += f + "\r\n"
	}
	return msg + "\r\n" + body + "\r\n"
}

// srchExpect runs SEARCH commands and compares the whole untagged SEARCH line
// of each with the one given (RFC 9051 §7.3.5, RFC 3501 §7.2.5: "* SEARCH"
// then the matching sequence numbers in ascending order), and its completion
// with OK.
func srchExpect(t *testing.T, r *raw, cases [][2]string) {
	t.Helper()
	for _, c := range cases {
		untagged, status := r.cmd(c[0])
		if !strings.HasPrefix(status, "OK ") {
			t.Errorf("%s: completion %q, want OK", c[0], status)
			continue
		}
		if len(untagged) != 1 || untagged[0] != c[1] {
			t.Errorf("%s:\n got %q\nwant %q", c[0], untagged, []string{c[1]})
		}
	}
}

// TestConformanceSearchSentDates: SENTBEFORE, SENTON and SENTSINCE compare
// the date of the Date: header field "disregarding time and timezone" (RFC
// 9051 §6.4.4): the calendar date as the field writes it, in its own zone.
// The messages sit around midnight, where that date and the date of the same
// instant in UTC differ; two are far from the dates searched, where SQL alone
// decides. A message without a Date: field has no sent date: no SENT* key
// matches it (so their NOT does).
func TestConformanceSearchSentDates(t *testing.T) {
	e := newEnv(t)
	for _, m := range []string{
		// 1: written 4 December; in UTC, 07:30 on the 5th.
		srchMessage([]string{"From: a@example.com", "Subject: one", "Date: Fri, 04 Dec 2026 23:30:00 -0800"}, "one"),
		// 2: written 5 December; in UTC, 15:30 on the 4th.
		srchMessage([]string{"From: a@example.com", "Subject: two", "Date: Sat, 05 Dec 2026 00:30:00 +0900", "X-Tag: yes"}, "two"),
		// 3: 5 December in UTC too.
		srchMessage([]string{"From: a@example.com", "Subject: three", "Date: Sat, 05 Dec 2026 12:00:00 +0000", "X-Tag: yes"}, "three"),
		// 4: no Date: field.
		srchMessage([]string{"From: a@example.com", "Subject: four"}, "four"),
		// 5: written 3 December; in UTC, 09:59 on the 3rd, 14 hours earlier.
		srchMessage([]string{"From: a@example.com", "Subject: five", "Date: Thu, 03 Dec 2026 23:59:59 +1400"}, "five"),
		// 6 and 7: years away.
		srchMessage([]string{"From: a@example.com", "Subject: six", "Date: Mon, 02 Jan 2006 15:04:05 +0000"}, "six"),
		srchMessage([]string{"From: a@example.com", "Subject: seven", "Date: Wed, 01 Jan 2031 08:00:00 -0500", "X-Tag: yes"}, "seven"),
		// 8: an obsolete zone name (RFC 5322 §4.3), written 4 December.
		srchMessage([]string{"From: a@example.com", "Subject: eight", "Date: 4 Dec 2026 22:00 EST"}, "eight"),
		// 9: written 4 December, a whole day behind UTC (the 6th, 00:00).
		srchMessage([]string{"From: a@example.com", "Subject: nine", "Date: Fri, 04 Dec 2026 23:30:00 -2430"}, "nine"),
	} {
		e.appendMsg(t, "INBOX", m, models.Flags{})
	}
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	srchExpect(t, r, [][2]string{
		{"SEARCH SENTON 4-Dec-2026", "* SEARCH 1 8 9"},
		{"SEARCH SENTON 5-Dec-2026", "* SEARCH 2 3"},
		{"SEARCH SENTON 3-Dec-2026", "* SEARCH 5"},
		{"SEARCH SENTON 6-Dec-2026", "* SEARCH"},
		{"SEARCH SENTSINCE 5-Dec-2026", "* SEARCH 2 3 7"},
		{"SEARCH SENTSINCE 4-Dec-2026", "* SEARCH 1 2 3 7 8 9"},
		{"SEARCH SENTBEFORE 5-Dec-2026", "* SEARCH 1 5 6 8 9"},
		{"SEARCH SENTBEFORE 4-Dec-2026", "* SEARCH 5 6"},
		{"SEARCH SENTSINCE 4-Dec-2026 SENTBEFORE 5-Dec-2026", "* SEARCH 1 8 9"},
		{"SEARCH NOT SENTON 5-Dec-2026", "* SEARCH 1 4 5 6 7 8 9"},
		{"SEARCH NOT SENTBEFORE 4-Dec-2026", "* SEARCH 1 2 3 4 7 8 9"},
		{"SEARCH NOT SENTSINCE 5-Dec-2026", "* SEARCH 1 4 5 6 8 9"},
		{"SEARCH OR SENTON 3-Dec-2026 SENTON 4-Dec-2026", "* SEARCH 1 5 8 9"},
		// With a key decided in Go on every row (a header field other than
		// Subject), the dates are decided the same.
		{"SEARCH HEADER X-Tag yes SENTON 5-Dec-2026", "* SEARCH 2 3"},
		{"SEARCH HEADER X-Tag yes NOT SENTON 5-Dec-2026", "* SEARCH 7"},
		{"UID SEARCH SENTON 4-Dec-2026", "* SEARCH 1 8 9"},
	})
}

// TestConformanceSearchBody: BODY searches "the body of the message" only,
// TEXT "the header or body" (RFC 9051 §6.4.4). The HTTP API's q= searches
// subject, addresses and text on purpose (models.MessageFilter.Query), and
// keeps doing so.
func TestConformanceSearchBody(t *testing.T) {
	e := newEnv(t)
	var inbox int64
	for _, m := range []string{
		// 1: the word in the subject only.
		srchMessage([]string{"From: a@example.com", "Subject: a needle in the subject"}, "plain body"),
		// 2: in a display name only.
		srchMessage([]string{`From: "Needle Person" <p@example.com>`, "Subject: two"}, "nothing here"),
		// 3: in the body only, as its very first word.
		srchMessage([]string{"From: a@example.com", "Subject: three"}, "needle first"),
		// 4: in the subject and the body.
		srchMessage([]string{"From: a@example.com", "Subject: needle", "To: b@example.com"}, "and a NEEDLE below"),
		// 5: in an HTML body.
		"From: a@example.com\r\nSubject: five\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>the <b>needle</b></p>\r\n",
		// 6: in a header field that is not an address or the subject.
		srchMessage([]string{"From: a@example.com", "Subject: six", "X-Note: needle"}, "six"),
		// 7: in an address only.
		srchMessage([]string{"From: a@example.com", "Subject: seven", "To: needle@example.com"}, "seven"),
		// 8: a subject and names of several bytes per character, and names
		// JSON escapes, before a body that starts with the word.
		srchMessage([]string{`From: "Ä <&> \"Ö\"" <x@example.com>`, "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_=E2=82=AC?=",
			`To: "Ünïcödé" <u@example.com>, v@example.com`, "Cc: w@example.com"}, "needle after a long header"),
		// 9: the last address ends with what is searched; the body does not
		// hold it.
		srchMessage([]string{"From: a@example.com", "Subject: nine", "Cc: someone@hostqj"}, "body"),
	} {
		inbox = e.appendMsg(t, "INBOX", m, models.Flags{}).MailboxID
	}
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	srchExpect(t, r, [][2]string{
		{"SEARCH BODY needle", "* SEARCH 3 4 5 8"},
		{"SEARCH BODY NEEDLE", "* SEARCH 3 4 5 8"},
		{"SEARCH NOT BODY needle", "* SEARCH 1 2 6 7 9"},
		{"SEARCH TEXT needle", "* SEARCH 1 2 3 4 5 6 7 8"},
		{"SEARCH OR BODY needle SUBJECT needle", "* SEARCH 1 3 4 5 8"},
		{"SEARCH BODY person", "* SEARCH"},
		{"SEARCH BODY example.com", "* SEARCH"},
		{"SEARCH BODY qj", "* SEARCH"},
		{"SEARCH BODY \"needle first\"", "* SEARCH 3"},
		{"SEARCH BODY needle HEADER X-Note needle", "* SEARCH"},
		{"SEARCH BODY six HEADER X-Note needle", "* SEARCH 6"},
	})

	// q= of the HTTP API: every message whose subject, addresses or text
	// holds the word, header fields other than those not. (Message 7 is left
	// out: PostgreSQL's parser keeps "needle@example.com" one token, where
	// SQLite's splits it.)
	ms, _, err := e.store.ListMessages(context.Background(), models.MessageFilter{MailboxID: inbox, Query: "needle"}, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		if m.Subject != "seven" {
			got = append(got, m.Subject)
		}
	}
	sort.Strings(got)
	want := []string{"Grüße €", "a needle in the subject", "five", "needle", "three", "two"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("q=needle: subjects %q, want %q", got, want)
	}
}
