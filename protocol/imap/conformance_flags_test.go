package imap_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// Keywords as flags of the mailbox. RFC 9051 §7.3.5 (RFC 3501 §7.2.6): the
// FLAGS response "identifies the flags (at a minimum, the system-defined
// flags) that are applicable for this mailbox", and its update "MUST be
// recorded by the client"; §7.1 PERMANENTFLAGS names those the client can
// change permanently, "\*" saying it may create keywords, and is empty for a
// mailbox opened read-only. So SELECT and EXAMINE list the keywords in use,
// and a client is given a FLAGS response (with the PERMANENTFLAGS that go
// with it) naming a keyword before any FETCH shows it, however the keyword
// came: its own STORE, another session's, on this instance or another, or a
// message brought by APPEND, COPY, MOVE or delivery. \Recent is IMAP4rev1's
// (RFC 3501 §2.3.2: in FETCH FLAGS of a message recent in the session);
// IMAP4rev2 removed it (RFC 9051 Appendix E).

const sysFlags = `\Answered \Flagged \Deleted \Seen \Draft`

// kwFlags is the FLAGS response for the system flags and keywords kws.
func kwFlags(kws ...string) string {
	return "* FLAGS (" + strings.Join(append([]string{sysFlags}, kws...), " ") + ")"
}

// kwPermanent is the PERMANENTFLAGS response code of a read-write mailbox
// with keywords kws (the text after the code is the server's to choose).
func kwPermanent(kws ...string) string {
	return `* OK [PERMANENTFLAGS (` + strings.Join(append(append([]string{sysFlags}, kws...), `\*`), " ") + ")]"
}

// kwNorm makes lines comparable: the flags of every flag list in sorted
// order (a list is a set, RFC 9051 §7.3.5, §7.5.2), and an OK response with
// a code cut after the code.
func kwNorm(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if strings.HasPrefix(l, "* OK [") {
			if j := strings.Index(l, "]"); j >= 0 {
				l = l[:j+1]
			}
		}
		var b strings.Builder
		for {
			k := strings.Index(l, "FLAGS (")
			if k < 0 {
				b.WriteString(l)
				break
			}
			k += len("FLAGS (")
			end := strings.Index(l[k:], ")")
			if end < 0 {
				b.WriteString(l)
				break
			}
			flags := strings.Fields(l[k : k+end])
			sort.Strings(flags)
			b.WriteString(l[:k])
			b.WriteString(strings.Join(flags, " "))
			l = l[k+end:]
		}
		out[i] = b.String()
	}
	return out
}

// kwExpect runs a command that must succeed and compares its untagged
// responses, all of them, in order, with want.
func kwExpect(t *testing.T, r *raw, cmd string, want ...string) {
	t.Helper()
	got := r.expectOK(cmd)
	if g, w := kwNorm(got), kwNorm(want); !slices.Equal(g, w) {
		t.Fatalf("%.60s:\n got  %q\n want %q", cmd, got, want)
	}
}

// kwLines reads n lines the server sends unasked (during IDLE).
func kwLines(t *testing.T, r *raw, want ...string) {
	t.Helper()
	got := make([]string, len(want))
	for i := range got {
		got[i] = r.line()
	}
	if g, w := kwNorm(got), kwNorm(want); !slices.Equal(g, w) {
		t.Fatalf("unsolicited:\n got  %q\n want %q", got, want)
	}
}

// kwSelected picks the FLAGS and PERMANENTFLAGS lines out of a SELECT's
// answer: there must be one of each.
func kwSelected(t *testing.T, lines []string) (flags, permanent string) {
	t.Helper()
	var fs, ps []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "* FLAGS "):
			fs = append(fs, l)
		case strings.HasPrefix(l, "* OK [PERMANENTFLAGS "):
			ps = append(ps, l)
		}
	}
	if len(fs) != 1 || len(ps) != 1 {
		t.Fatalf("want one FLAGS and one PERMANENTFLAGS in %q", lines)
	}
	n := kwNorm([]string{fs[0], ps[0]})
	return n[0], n[1]
}

// kwAppend is an APPEND of msg with flags, as a LITERAL+ literal.
func kwAppend(mailbox, flags, msg string) string {
	return fmt.Sprintf("APPEND %s (%s) {%d+}\r\n%s", mailbox, flags, len(msg), msg)
}

// SELECT and EXAMINE list the keywords of the mailbox's messages with the
// system flags; PERMANENTFLAGS adds \* after SELECT and is empty after
// EXAMINE. A mailbox without keywords lists the system flags alone.
func TestConformanceFlagsSelectListsKeywords(t *testing.T) {
	e := newEnv(t)
	e.appendMsg(t, "INBOX", testMessage(1, "one"), models.Flags{Keywords: []string{"$Label1"}})
	e.appendMsg(t, "INBOX", testMessage(2, "two"), models.Flags{Keywords: []string{"Junk", "$Forwarded"}})
	e.appendMsg(t, "INBOX", testMessage(3, "three"), models.Flags{Seen: true})
	r := dialRaw(t, e.addr)
	r.login()
	kws := []string{"$Forwarded", "$Label1", "Junk"}
	f, p := kwSelected(t, r.expectOK("SELECT INBOX"))
	if w := kwNorm([]string{kwFlags(kws...), kwPermanent(kws...)}); f != w[0] || p != w[1] {
		t.Errorf("SELECT:\n got  %q\n      %q\n want %q", f, p, w)
	}
	f, p = kwSelected(t, r.expectOK("EXAMINE INBOX"))
	if w := kwNorm([]string{kwFlags(kws...), "* OK [PERMANENTFLAGS ()]"}); f != w[0] || p != w[1] {
		t.Errorf("EXAMINE:\n got  %q\n      %q\n want %q", f, p, w)
	}
	f, p = kwSelected(t, r.expectOK("SELECT Sent"))
	if w := kwNorm([]string{kwFlags(), kwPermanent()}); f != w[0] || p != w[1] {
		t.Errorf("SELECT of a mailbox without keywords:\n got  %q\n      %q\n want %q", f, p, w)
	}
}

// The session's own STORE (IMAP4rev1): the first FETCH showing a new keyword
// comes after FLAGS and PERMANENTFLAGS naming it, a keyword already given
// (in any case: flags are not case-sensitive) brings no FLAGS again, and one
// set by a silent STORE is announced before the FETCH that first shows it.
// The message, recent in this session, shows \Recent.
func TestConformanceFlagsOwnStoreRev1(t *testing.T) {
	e := newEnv(t)
	e.appendMsg(t, "INBOX", testMessage(1, "one"), models.Flags{})
	r := dialRaw(t, e.addr)
	r.login()
	f, _ := kwSelected(t, r.expectOK("SELECT INBOX"))
	if w := kwNorm([]string{kwFlags()}); f != w[0] {
		t.Fatalf("SELECT: %q, want %q", f, w[0])
	}
	kwExpect(t, r, "STORE 1 +FLAGS ($kw1)",
		kwFlags("$kw1"), kwPermanent("$kw1"), `* 1 FETCH (FLAGS ($kw1 \Recent))`)
	kwExpect(t, r, "STORE 1 +FLAGS ($KW1 \\Flagged)", `* 1 FETCH (FLAGS (\Flagged $kw1 \Recent))`)
	kwExpect(t, r, "STORE 1 +FLAGS.SILENT ($kw2)")
	kwExpect(t, r, "FETCH 1 (FLAGS)",
		kwFlags("$kw1", "$kw2"), kwPermanent("$kw1", "$kw2"), `* 1 FETCH (FLAGS (\Flagged $kw1 $kw2 \Recent))`)
	// A keyword gone from every message stays a flag of the mailbox.
	kwExpect(t, r, "UID STORE 1 -FLAGS ($kw1)", `* 1 FETCH (UID 1 FLAGS (\Flagged $kw2 \Recent))`)
	kwExpect(t, r, "UID STORE 1 FLAGS ($kw3)",
		kwFlags("$kw1", "$kw2", "$kw3"), kwPermanent("$kw1", "$kw2", "$kw3"), `* 1 FETCH (UID 1 FLAGS ($kw3 \Recent))`)
	// Selected again, the mailbox lists every keyword it has known.
	f, _ = kwSelected(t, r.expectOK("SELECT INBOX"))
	if w := kwNorm([]string{kwFlags("$kw1", "$kw2", "$kw3")}); f != w[0] {
		t.Fatalf("SELECT again: %q, want %q", f, w[0])
	}
}

// IMAP4rev2 has no \Recent: the same STORE shows the keyword alone, after
// the FLAGS update; SELECT reports no RECENT.
func TestConformanceFlagsOwnStoreRev2(t *testing.T) {
	e := newEnv(t)
	e.appendMsg(t, "INBOX", testMessage(1, "one"), models.Flags{})
	r := dialRaw(t, e.addr)
	r.login()
	kwExpect(t, r, "ENABLE IMAP4rev2", "* ENABLED IMAP4rev2")
	for _, l := range r.expectOK("SELECT INBOX") {
		if strings.Contains(l, "RECENT") || strings.Contains(l, `\Recent`) {
			t.Fatalf("IMAP4rev2 SELECT: %q", l)
		}
	}
	kwExpect(t, r, "STORE 1 +FLAGS ($kw1)",
		kwFlags("$kw1"), kwPermanent("$kw1"), `* 1 FETCH (FLAGS ($kw1))`)
	kwExpect(t, r, "FETCH 1 (FLAGS)", `* 1 FETCH (FLAGS ($kw1))`)
}

// Two sessions on one mailbox of one instance: what one does reaches the
// other at its next command, or at once while it IDLEs, with the FLAGS
// update first; in an EXAMINE session the update comes without
// PERMANENTFLAGS, which stay empty. Messages brought by delivery, APPEND,
// MOVE and COPY with keywords are announced before the first FETCH showing
// them.
func TestConformanceFlagsOtherSession(t *testing.T) {
	e := newEnv(t)
	e.appendMsg(t, "INBOX", testMessage(1, "one"), models.Flags{})
	a := dialRaw(t, e.addr)
	a.login()
	a.expectOK("SELECT INBOX") // message 1 is recent here
	b := dialRaw(t, e.addr)
	b.login()
	// IMAP4rev2 here: b takes no \Recent from a (rev1, which shows it).
	kwExpect(t, b, "ENABLE IMAP4rev2", "* ENABLED IMAP4rev2")
	b.expectOK("SELECT INBOX")
	ro := dialRaw(t, e.addr)
	ro.login()
	ro.expectOK("EXAMINE INBOX")

	kwExpect(t, b, "STORE 1 +FLAGS ($new)", kwFlags("$new"), kwPermanent("$new"), `* 1 FETCH (FLAGS ($new))`)
	kwExpect(t, a, "NOOP", kwFlags("$new"), kwPermanent("$new"), `* 1 FETCH (UID 1 FLAGS ($new \Recent))`)
	kwExpect(t, ro, "NOOP", kwFlags("$new"), `* 1 FETCH (UID 1 FLAGS ($new))`)

	a.send("i1 IDLE")
	if l := a.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	kwExpect(t, b, "STORE 1 +FLAGS.SILENT ($idle)")
	kwLines(t, a, kwFlags("$idle", "$new"), kwPermanent("$idle", "$new"), `* 1 FETCH (UID 1 FLAGS ($idle $new \Recent))`)
	a.send("DONE")
	if l := a.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("DONE: %q", l)
	}
	all := []string{"$idle", "$new"}

	// Delivered with a keyword (through the store, as the other front ends
	// store mail): EXISTS at the next command, FLAGS before the FETCH.
	e.appendMsg(t, "INBOX", testMessage(2, "two"), models.Flags{Keywords: []string{"$delivered"}})
	kwExpect(t, a, "NOOP", "* 2 EXISTS", "* 2 RECENT")
	all = append(all, "$delivered")
	kwExpect(t, a, "FETCH 2 (FLAGS)", kwFlags(all...), kwPermanent(all...), `* 2 FETCH (FLAGS ($delivered \Recent))`)

	// APPENDed by another session.
	msg := testMessage(3, "three")
	kwExpect(t, b, kwAppend("INBOX", "$appended", msg), "* 3 EXISTS")
	kwExpect(t, a, "NOOP", "* 3 EXISTS", "* 3 RECENT")
	all = append(all, "$appended")
	kwExpect(t, a, "FETCH 3 (FLAGS)", kwFlags(all...), kwPermanent(all...), `* 3 FETCH (FLAGS ($appended \Recent))`)

	// MOVEd and COPied in from another mailbox.
	b.expectOK("CREATE Other")
	b.expectOK(kwAppend("Other", `\Seen $moved`, testMessage(4, "four")))
	b.expectOK(kwAppend("Other", "$copied", testMessage(5, "five")))
	b.expectOK("SELECT Other")
	b.expectOK("MOVE 1 INBOX")
	kwExpect(t, a, "NOOP", "* 4 EXISTS", "* 4 RECENT")
	all = append(all, "$moved")
	kwExpect(t, a, "FETCH 4 (FLAGS)", kwFlags(all...), kwPermanent(all...), `* 4 FETCH (FLAGS (\Seen $moved \Recent))`)
	b.expectOK("COPY 1 INBOX")
	kwExpect(t, a, "NOOP", "* 5 EXISTS", "* 5 RECENT")
	all = append(all, "$copied")
	kwExpect(t, a, "FETCH 5 (FLAGS)", kwFlags(all...), kwPermanent(all...), `* 5 FETCH (FLAGS ($copied \Recent))`)
	// The EXAMINE session, behind, gets one update naming all of them
	// before the change of message 1 it has not heard of, and none after.
	kwExpect(t, ro, "NOOP", "* 5 EXISTS", "* 0 RECENT", kwFlags(all...), `* 1 FETCH (UID 1 FLAGS ($idle $new))`)
	kwExpect(t, ro, "FETCH 1:* (FLAGS)", `* 1 FETCH (FLAGS ($idle $new))`, `* 2 FETCH (FLAGS ($delivered))`,
		`* 3 FETCH (FLAGS ($appended))`, `* 4 FETCH (FLAGS (\Seen $moved))`, `* 5 FETCH (FLAGS ($copied))`)
}

// Two instances on one database: a keyword set through instance B is
// announced to a session of instance A before the FETCH that shows it,
// whether A's FETCH reads it before A's state has heard of the change or a
// NOOP reports the change; a third instance loads the mailbox's keywords
// from the store at SELECT.
func TestConformanceFlagsOtherInstance(t *testing.T) {
	url := modelstest.URL(t)
	ea := newEnvWith(t, envOptions{url: url})
	eb := newEnvWith(t, envOptions{url: url})
	ea.appendMsg(t, "INBOX", testMessage(1, "one"), models.Flags{})
	a := dialRaw(t, ea.addr)
	a.login()
	a.expectOK("SELECT INBOX") // message 1 is recent here
	b := dialRaw(t, eb.addr)
	b.login()
	b.expectOK("SELECT INBOX")

	kwExpect(t, b, "STORE 1 +FLAGS.SILENT ($far)")
	// The FETCH shows the keyword, then the poll ending it reports the
	// change (whenever A's state applied it): the update comes first.
	kwExpect(t, a, "FETCH 1 (FLAGS)", kwFlags("$far"), kwPermanent("$far"),
		`* 1 FETCH (FLAGS ($far \Recent))`, `* 1 FETCH (UID 1 FLAGS ($far \Recent))`)
	kwExpect(t, b, "STORE 1 +FLAGS.SILENT ($far2)")
	kwExpect(t, a, "NOOP", kwFlags("$far", "$far2"), kwPermanent("$far", "$far2"), `* 1 FETCH (UID 1 FLAGS ($far $far2 \Recent))`)

	ec := newEnvWith(t, envOptions{url: url})
	c := dialRaw(t, ec.addr)
	c.login()
	f, p := kwSelected(t, c.expectOK("SELECT INBOX"))
	if w := kwNorm([]string{kwFlags("$far", "$far2"), kwPermanent("$far", "$far2")}); f != w[0] || p != w[1] {
		t.Errorf("SELECT on a third instance:\n got  %q\n      %q\n want %q", f, p, w)
	}
}

// The longest keyword list a message may have (models.MaxKeywords keywords
// of models.MaxKeywordLen octets): the FETCH that shows it is longer than one
// write of the server's, and still comes whole, after the FLAGS update, to
// the session that set it and to another one.
func TestConformanceFlagsLongKeywordList(t *testing.T) {
	e := newEnv(t)
	e.appendMsg(t, "INBOX", testMessage(1, "one"), models.Flags{})
	a := dialRaw(t, e.addr)
	a.login()
	kwExpect(t, a, "ENABLE IMAP4rev2", "* ENABLED IMAP4rev2")
	a.expectOK("SELECT INBOX")
	b := dialRaw(t, e.addr)
	b.login()
	kwExpect(t, b, "ENABLE IMAP4rev2", "* ENABLED IMAP4rev2")
	b.expectOK("SELECT INBOX")
	kws := make([]string, models.MaxKeywords)
	for i := range kws {
		kws[i] = fmt.Sprintf("$K%02d", i) + strings.Repeat("x", models.MaxKeywordLen-4)
	}
	list := strings.Join(kws, " ")
	kwExpect(t, a, "STORE 1 +FLAGS ("+list+")", kwFlags(kws...), kwPermanent(kws...), "* 1 FETCH (FLAGS ("+list+"))")
	kwExpect(t, b, "NOOP", kwFlags(kws...), kwPermanent(kws...), "* 1 FETCH (UID 1 FLAGS ("+list+"))")
	kwExpect(t, b, "FETCH 1 (UID FLAGS)", "* 1 FETCH (UID 1 FLAGS ("+list+"))")
}

// However the FETCH names its items, the FLAGS update comes before the
// response that shows the new keyword (the order of the items in a FETCH
// response is the server's, RFC 9051 §7.5.2).
func TestConformanceFlagsFetchItemOrder(t *testing.T) {
	e := newEnv(t)
	msg := testMessage(1, "one")
	e.appendMsg(t, "INBOX", msg, models.Flags{})
	a := dialRaw(t, e.addr)
	a.login()
	kwExpect(t, a, "ENABLE IMAP4rev2", "* ENABLED IMAP4rev2")
	a.expectOK("SELECT INBOX")
	b := dialRaw(t, e.addr)
	b.login()
	b.expectOK("SELECT INBOX")
	kwExpect(t, b, "STORE 1 +FLAGS.SILENT ($late)")
	got := a.expectOK("FETCH 1 (RFC822.SIZE FLAGS UID)")
	if len(got) != 4 || !slices.Equal(kwNorm(got[:2]), kwNorm([]string{kwFlags("$late"), kwPermanent("$late")})) {
		t.Fatalf("FETCH: %q, want FLAGS and PERMANENTFLAGS, the FETCH, then the change", got)
	}
	items, ok := strings.CutPrefix(got[2], "* 1 FETCH (")
	items, closed := strings.CutSuffix(items, ")")
	size := fmt.Sprintf("RFC822.SIZE %d", len(msg))
	if !ok || !closed || !strings.Contains(items, "FLAGS ($late)") || !strings.Contains(items, "UID 1") || !strings.Contains(items, size) {
		t.Fatalf("FETCH response %q, want UID 1, FLAGS ($late) and %s", got[2], size)
	}
	if got[3] != "* 1 FETCH (UID 1 FLAGS ($late))" {
		t.Fatalf("then %q, want the change reported", got[3])
	}
}
