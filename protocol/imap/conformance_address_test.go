package imap_test

import (
	"fmt"
	"strings"
	"testing"
)

// Address fields in the forms RFC 5322 allows (groups, comments anywhere,
// quoted local parts, encoded words, the obsolete syntax of its §4.4), as
// FETCH ENVELOPE shows them (RFC 9051 §7.5.2) and SEARCH FROM, TO, CC and BCC
// find them (RFC 9051 §6.4.4: the string is contained in the envelope
// structure's field).

// addrConfMsgs are appended in order: message n is sequence number n.
var addrConfMsgs = []string{
	// 1: groups, empty and not (RFC 5322 §3.4).
	"Date: Tue, 01 Jul 2003 10:52:37 +0200\r\n" +
		"From: Ann Example <ann@example.com>\r\n" +
		"Subject: groups\r\n" +
		"To: undisclosed: ;\r\n" +
		"Cc: g1: a@b.c, c@d.e;\r\n" +
		"Message-ID: <m1@example.com>\r\n" +
		"\r\nbody\r\n",
	// 2: white space, comments and a group with comments (RFC 5322
	// appendix A.5), comments inside an address, and the legacy
	// "addr-spec (Name)" form.
	"From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n" +
		"To:A Group(Some people)\r\n" +
		"     :Chris Jones <c@(Chris's host.)public.example>,\r\n" +
		"         joe@example.org,\r\n" +
		"  John <jdoe@one.test> (my dear friend); (the end of the group)\r\n" +
		"Cc:(Empty list)(start)Hidden recips  :(nobody(that I know))  ;\r\n" +
		"Bcc: <user (c)@ (c) domain.org>, a@b.c (Name)\r\n" +
		"Date: Thu, 13 Feb 1969 23:32:00 -0330\r\n" +
		"Message-ID:              <testabcd.1234@silly.test>\r\n" +
		"\r\nTesting.\r\n",
	// 3: encoded words (RFC 2047) in a display name, a group name and the
	// subject; quoted local parts; a quoted display name with specials.
	"From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\r\n" +
		"To: =?ISO-8859-1?Q?Gr=FCppe?=: \"john doe\"@example.com, \"jane\"@example.com;\r\n" +
		"Cc: \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\r\n" +
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" +
		"Date: Wed, 02 Jul 2003 08:00:00 +0000\r\n" +
		"Message-ID: <m3@example.com>\r\n" +
		"\r\nbody\r\n",
	// 4: obsolete forms (RFC 5322 appendix A.6.1: a phrase with a dot, a
	// route, an empty list element, white space around the dots of a domain;
	// RFC 822's white space around "@"), and an element with no address.
	"From: Joe Q. Public <john.q.public@example.com>\r\n" +
		"To: Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example\r\n" +
		"Cc: foo, \"Joe & J. Harvey\" <ddd @Org>, JJV @ BBN\r\n" +
		"Subject: obsolete\r\n" +
		"Date: Thu, 03 Jul 2003 08:00:00 +0000\r\n" +
		"Message-ID: <m4@example.com>\r\n" +
		"In-Reply-To: <m1@example.com> <testabcd.1234@silly.test>\r\n" +
		"\r\nbody\r\n",
}

// addrConfEnvelopes are the ENVELOPEs of addrConfMsgs, written from RFC 9051
// §7.5.2 and its grammar (§9): date, subject, from, sender, reply-to, to, cc,
// bcc, in-reply-to, message-id; sender and reply-to are from when absent; an
// address list is "(" 1*address ")" with no space between the addresses; a
// group is (NIL NIL "name" NIL), its members, then (NIL NIL NIL NIL). Strings
// other than ASCII go out as RFC 2047 encoded words (the connection has not
// enabled UTF8=ACCEPT).
var addrConfEnvelopes = []string{
	`("Tue, 01 Jul 2003 10:52:37 +0200" "groups" ` +
		`(("Ann Example" NIL "ann" "example.com")) (("Ann Example" NIL "ann" "example.com")) (("Ann Example" NIL "ann" "example.com")) ` +
		`((NIL NIL "undisclosed" NIL)(NIL NIL NIL NIL)) ` +
		`((NIL NIL "g1" NIL)(NIL NIL "a" "b.c")(NIL NIL "c" "d.e")(NIL NIL NIL NIL)) ` +
		`NIL NIL "<m1@example.com>")`,
	`("Thu, 13 Feb 1969 23:32:00 -0330" NIL ` +
		`(("Pete" NIL "pete" "silly.test")) (("Pete" NIL "pete" "silly.test")) (("Pete" NIL "pete" "silly.test")) ` +
		`((NIL NIL "A Group" NIL)("Chris Jones" NIL "c" "public.example")(NIL NIL "joe" "example.org")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)) ` +
		`((NIL NIL "Hidden recips" NIL)(NIL NIL NIL NIL)) ` +
		`((NIL NIL "user" "domain.org")("Name" NIL "a" "b.c")) ` +
		`NIL "<testabcd.1234@silly.test>")`,
	`("Wed, 02 Jul 2003 08:00:00 +0000" "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" ` +
		`(("=?utf-8?q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.de")) ` +
		`(("=?utf-8?q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.de")) ` +
		`(("=?utf-8?q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.de")) ` +
		`((NIL NIL "=?utf-8?q?Gr=C3=BCppe?=" NIL)(NIL NIL "\"john doe\"" "example.com")(NIL NIL "jane" "example.com")(NIL NIL NIL NIL)) ` +
		`(("Giant; \"Big\" Box" NIL "sysservices" "example.net")) ` +
		`NIL NIL "<m3@example.com>")`,
	`("Thu, 03 Jul 2003 08:00:00 +0000" "obsolete" ` +
		`(("Joe Q. Public" NIL "john.q.public" "example.com")) (("Joe Q. Public" NIL "john.q.public" "example.com")) (("Joe Q. Public" NIL "john.q.public" "example.com")) ` +
		`(("Mary Smith" NIL "mary" "example.net")(NIL NIL "jdoe" "test.example")) ` +
		`(("Joe & J. Harvey" NIL "ddd" "Org")(NIL NIL "JJV" "BBN")) ` +
		`NIL "<m1@example.com> <testabcd.1234@silly.test>" "<m4@example.com>")`,
}

// addrConfAppend stores the messages with APPEND (a LITERAL+ literal each).
func addrConfAppend(t *testing.T, r *raw) {
	t.Helper()
	for i, m := range addrConfMsgs {
		_, st := r.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(m), m))
		if !strings.HasPrefix(st, "OK [APPENDUID ") || !strings.HasSuffix(st, fmt.Sprintf(" %d] APPEND completed", i+1)) {
			t.Fatalf("APPEND message %d: %s", i+1, st)
		}
	}
}

func TestConformanceAddressEnvelope(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	addrConfAppend(t, r)
	r.expectOK("SELECT INBOX")
	for i, want := range addrConfEnvelopes {
		n := i + 1
		u := r.expectOK(fmt.Sprintf("FETCH %d (ENVELOPE)", n))
		line := fmt.Sprintf("* %d FETCH (ENVELOPE %s)", n, want)
		if len(u) != 1 || u[0] != line {
			t.Errorf("FETCH %d (ENVELOPE):\n got %q\nwant %q", n, u, line)
		}
	}
}

func TestConformanceAddressSearch(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	addrConfAppend(t, r)
	r.expectOK("SELECT INBOX")
	cases := []struct{ q, want string }{
		// Group names, and members of groups.
		{`TO undisclosed`, "1"},
		{`CC G1`, "1"},
		{`CC "a@b.c"`, "1"},
		{`CC "c@d.e"`, "1"},
		{`TO "A Group"`, "2"},
		{`CC "hidden RECIPS"`, "2"},
		{`TO "joe@example.org"`, "2"},
		// Comments are not part of the envelope; the address is, whole.
		{`FROM "pete@silly.test"`, "2"},
		{`FROM "Pete <pete@silly.test>"`, "2"},
		{`FROM "his account"`, ""},
		{`TO "c@public.example"`, "2"},
		{`TO "friend"`, ""},
		{`BCC "user@domain.org"`, "2"},
		{`BCC "(c)"`, ""},
		{`BCC "Name"`, "2"}, // the legacy form's comment is the display name
		// Encoded words are matched decoded, in any case; the encoded form is not there.
		{"CHARSET UTF-8 FROM {7+}\r\nMÜLLER", "3"},
		{"CHARSET UTF-8 TO {7+}\r\ngrüppe", "3"},
		{`FROM "=?utf-8?"`, ""},
		{`TO "Gr=FCppe"`, ""},
		// Quoted strings: the local part keeps the quotes it needs.
		{`TO "\"john doe\"@example.com"`, "3"},
		{`TO "jane@example.com"`, "3"},
		{`CC "Giant; \"Big\" Box"`, "3"},
		// Obsolete forms: the route is ignored, the white space dropped.
		{`TO "mary@example.net"`, "4"},
		{`TO "node.test"`, ""},
		{`TO "jdoe@test.example"`, "4"},
		{`CC "ddd@org"`, "4"},
		{`CC "jjv@bbn"`, "4"},
		{`FROM "Joe Q. Public"`, "4"},
		// Each key searches its own field only.
		{`FROM "a@b.c"`, ""},
		{`TO "a@b.c"`, ""},
		{`BCC "a@b.c"`, "2"},
		{`CC "ann@example.com"`, ""},
		// Empty strings, NOT and OR.
		{`FROM ""`, "1 2 3 4"},
		{`BCC ""`, "2"},
		{`NOT FROM "example"`, "2"},
		{`OR FROM pete TO mary`, "2 4"},
		{`NOT OR CC "d.e" BCC domain.org`, "3 4"},
		// HEADER still searches the field's text, comments included.
		{`HEADER FROM "his account"`, "2"},
	}
	for _, c := range cases {
		u := r.expectOK("SEARCH " + c.q)
		want := strings.TrimSpace("* SEARCH " + c.want)
		if len(u) != 1 || u[0] != want {
			t.Errorf("SEARCH %s: got %q, want %q", c.q, u, want)
		}
	}
}
