package imap_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// Mailbox names, subscriptions, LIST-EXTENDED and LSUB, as RFC 9051 §5.1 and
// §6.3.3-§6.3.9, RFC 3501 §5.1.3 and §6.3.6-§6.3.9 and RFC 5258 prescribe
// them. The expected responses are the RFCs' own (RFC 5258 §5's examples
// where they fit) with these differences, each allowed by the RFCs:
//   - \HasChildren or \HasNoChildren in every LIST response, asked for or
//     not: RFC 5258 §4 lets a server return them unasked (its example 8 A1
//     shows "\Subscribed \HasChildren" without RETURN (CHILDREN)); RFC 5258's
//     examples give INBOX \Marked \NoInferiors, which are the example
//     server's, where this INBOX may have children;
//   - the order of LIST responses, of attributes, and the quoting of
//     astrings, which the RFCs leave free: confExpect compares them so.

// confExpect runs cmd, which must succeed, and compares its untagged
// responses with want, as sets: LIST and LSUB responses with their attributes
// in any order and their astrings quoted or not, other responses exactly.
func confExpect(t *testing.T, r *raw, cmd string, want ...string) {
	t.Helper()
	got := r.expectOK(cmd)
	canonGot, canonWant := canonResponses(got), canonResponses(want)
	if strings.Join(canonGot, "\n") != strings.Join(canonWant, "\n") {
		t.Errorf("%s\n got: %q\nwant: %q", cmd, got, want)
	}
}

// confStatus runs cmd and checks that its tagged status begins with want
// ("OK", "NO [CANNOT]", "BAD"...).
func confStatus(t *testing.T, r *raw, cmd, want string) {
	t.Helper()
	u, st := r.cmd(cmd)
	if !strings.HasPrefix(st, want+" ") {
		t.Errorf("%s: got %q (untagged %q), want %s", cmd, st, u, want)
	}
	if strings.Contains(st, "SERVERBUG") {
		t.Errorf("%s: %s", cmd, st)
	}
}

func canonResponses(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, canonResponse(l))
	}
	sort.Strings(out)
	return out
}

// canonResponse is a LIST or LSUB response with its attributes sorted and in
// lower case (they are case-insensitive), its name unquoted and its extended
// data without quotes (RFC 5258's mbox-list-extended-item-tag is an
// astring); any other response as it is.
func canonResponse(line string) string {
	kind, rest, ok := strings.Cut(line, " (")
	if !ok || (kind != "* LIST" && kind != "* LSUB") {
		return line
	}
	attrText, rest, ok := strings.Cut(rest, ") ")
	if !ok {
		return line
	}
	delimiter, rest, _ := strings.Cut(rest, " ")
	name, ext := astringAt(rest)
	attrs := strings.Fields(strings.ToLower(attrText))
	sort.Strings(attrs)
	ext = strings.ToUpper(strings.ReplaceAll(ext, `"`, ""))
	return fmt.Sprintf("%s (%s) %s [%s]%s", kind, strings.Join(attrs, " "), delimiter, name, ext)
}

// astringAt reads the quoted string or atom that begins s and returns its
// value and what follows it.
func astringAt(s string) (value, rest string) {
	if !strings.HasPrefix(s, `"`) {
		v, r, _ := strings.Cut(s, " ")
		if r != "" {
			r = " " + r
		}
		return v, r
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
			if i < len(s) {
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), ""
}

// confBareAccount leaves the user with INBOX alone, subscribed: the start of
// RFC 5258 §5's examples. The other default mailboxes are deleted and
// unsubscribed.
func confBareAccount(t *testing.T) (*env, *raw) {
	t.Helper()
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	for _, name := range []string{"Sent", "Drafts", "Trash", "Junk"} {
		r.expectOK("DELETE " + name)
		r.expectOK("UNSUBSCRIBE " + name)
	}
	confExpect(t, r, `LIST "" "*"`, `* LIST (\HasNoChildren) "/" INBOX`)
	confExpect(t, r, `LSUB "" "*"`, `* LSUB () "/" INBOX`)
	return e, r
}

// Every legal mailbox name and pattern works, "&" included (RFC 9051 §5.1,
// RFC 3501 §5.1.3); the reported bug was NO [SERVERBUG] for these.
func TestConformanceListNames(t *testing.T) {
	_, r := confBareAccount(t)
	// Every ATOM-CHAR and list-wildcard (RFC 9051 §9: list-char) as one
	// atom: a legal pattern that matches nothing yet.
	const atomPattern = "!#$$&'+,-.0123456789:;<=>?@^_`|[}%*"
	confExpect(t, r, `LIST "" `+atomPattern)
	// A name of those characters (an ASTRING, so "]" too); "&" is not
	// modified UTF-7 here, so the name is taken as it is, and an IMAP4rev1
	// client is shown it with "&" as "&-" (RFC 3501 §5.1.3).
	const atomName = "!#$$&'+,-.0123456789:;<=>?@^_`|[}]"
	const atomWire = "!#$$&-'+,-.0123456789:;<=>?@^_`|[}]"
	confStatus(t, r, "CREATE "+atomName, "OK")
	confExpect(t, r, `LIST "" `+atomPattern, `* LIST (\HasNoChildren) "/" "`+atomWire+`"`)
	confExpect(t, r, `LIST "" "`+atomWire+`"`, `* LIST (\HasNoChildren) "/" "`+atomWire+`"`)
	confStatus(t, r, "DELETE "+atomName, "OK")

	confExpect(t, r, `LIST "" "a&b"`)
	confStatus(t, r, `CREATE "a&b"`, "OK")
	// "a&b" and its modified UTF-7 form "a&-b" are the same name.
	confExpect(t, r, `LIST "" "a&b"`, `* LIST (\HasNoChildren) "/" "a&-b"`)
	confExpect(t, r, `LIST "" "a&-b"`, `* LIST (\HasNoChildren) "/" "a&-b"`)
	confStatus(t, r, `CREATE "a&-b"`, "NO [ALREADYEXISTS]")
	confExpect(t, r, `STATUS "a&b" (MESSAGES)`, `* STATUS "a&-b" (MESSAGES 0)`)
	confStatus(t, r, `SUBSCRIBE a&b`, "OK")
	confExpect(t, r, `LSUB "" a*`, `* LSUB () "/" "a&-b"`)
	confExpect(t, r, `LIST (SUBSCRIBED) "" "a&*"`, `* LIST (\Subscribed \HasNoChildren) "/" "a&-b"`)

	// APPEND, SELECT, COPY, RENAME and DELETE take the name too.
	msg := "Subject: amp\r\n\r\nhello\r\n"
	r.send(fmt.Sprintf(`a1 APPEND "a&b" {%d}`, len(msg)))
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation: %q", l)
	}
	r.send(msg)
	if l := r.line(); !strings.HasPrefix(l, "a1 OK") {
		t.Fatalf("APPEND: %q", l)
	}
	confStatus(t, r, `SELECT "a&b"`, "OK")
	confStatus(t, r, `CREATE "c&d"`, "OK")
	confStatus(t, r, `COPY 1 "c&d"`, "OK")
	confStatus(t, r, `UID COPY 1 "c&d"`, "OK")
	confStatus(t, r, "UNSELECT", "OK")
	confExpect(t, r, `STATUS "c&-d" (MESSAGES)`, `* STATUS "c&-d" (MESSAGES 2)`)
	confStatus(t, r, `RENAME "c&d" "e&f/g&h"`, "OK")
	confExpect(t, r, `LIST "" "e&f/*"`, `* LIST (\HasNoChildren) "/" "e&-f/g&-h"`)
	confStatus(t, r, `DELETE "e&f/g&h"`, "OK")
	confStatus(t, r, `DELETE "a&b"`, "OK")
	// The subscription outlives the mailbox (RFC 9051 §6.3.7).
	confExpect(t, r, `LSUB "" "a&b"`, `* LSUB () "/" "a&-b"`)
	confStatus(t, r, `UNSUBSCRIBE "a&b"`, "OK")
	confExpect(t, r, `LSUB "" "a&b"`)
}

// Modified UTF-7 (RFC 3501 §5.1.3) and UTF-8 (RFC 9051 §5.1) names, and
// strings that are no names.
func TestConformanceListInternationalNames(t *testing.T) {
	e, r := confBareAccount(t)
	// RFC 3501 §5.1.3's example, "which mixes English, Chinese, and Japanese
	// text": 台北 and 日本語.
	confStatus(t, r, "CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-", "OK")
	confExpect(t, r, `LIST "" "~peter/mail/*"`,
		`* LIST (\HasChildren) "/" "~peter/mail/&U,BTFw-"`,
		`* LIST (\HasNoChildren) "/" "~peter/mail/&U,BTFw-/&ZeVnLIqe-"`)
	// An IMAP4rev2 client sees and sends the same names in UTF-8.
	rev2 := dialRaw(t, e.addr)
	rev2.login()
	confExpect(t, rev2, "ENABLE IMAP4rev2", "* ENABLED IMAP4rev2")
	confExpect(t, rev2, `LIST "" "~peter/mail/*"`,
		`* LIST (\HasChildren) "/" "~peter/mail/台北"`,
		`* LIST (\HasNoChildren) "/" "~peter/mail/台北/日本語"`)
	confStatus(t, rev2, `CREATE "Ärger"`, "OK")
	confExpect(t, rev2, `LIST "" "Ä*"`, `* LIST (\HasNoChildren) "/" "Ärger"`)
	// Ä is U+00C4: UTF-16 00 C4, modified BASE64 "AMQ".
	confExpect(t, r, `LIST "" "&AMQ-*"`, `* LIST (\HasNoChildren) "/" "&AMQ-rger"`)
	confStatus(t, r, `DELETE "&AMQ-rger"`, "OK")

	// RFC 3501 §5.1.3's invalid examples: "&Jjo!" has no shift back to
	// US-ASCII, "&U,BTFw-&ZeVnLIqe-" a superfluous shift. Neither is modified
	// UTF-7, so each is taken as it is (and shown with "&" as "&-").
	confStatus(t, r, `CREATE "&Jjo!"`, "OK")
	confExpect(t, r, `LIST "" "&-Jjo*"`, `* LIST (\HasNoChildren) "/" "&-Jjo!"`)
	confStatus(t, r, `CREATE "&U,BTFw-&ZeVnLIqe-"`, "OK")
	confExpect(t, r, `LIST "" "&-U*"`, `* LIST (\HasNoChildren) "/" "&-U,BTFw-&-ZeVnLIqe-"`)

	// Strings that are no names: a control character, raw or encoded
	// (&AAA- is U+0000), and octets that are not UTF-8.
	confStatus(t, r, "CREATE \"a\x01b\"", "NO [CANNOT]")
	confStatus(t, r, `CREATE "&AAA-"`, "NO [CANNOT]")
	confStatus(t, r, "LIST \"\" \"a\x7f*\"", "NO [CANNOT]")
	confStatus(t, r, "CREATE \"a\xffb\"", "BAD")
	confStatus(t, r, "SUBSCRIBE \"a\xffb\"", "BAD")
	confStatus(t, r, `CREATE "a*b"`, "NO [CANNOT]")
	// The session goes on.
	confExpect(t, r, `LIST "" "INBOX"`, `* LIST (\HasNoChildren) "/" INBOX`)
}

// Subscriptions are names (RFC 9051 §6.3.4-§6.3.8, RFC 3501 §6.3.6-§6.3.7).
func TestConformanceListSubscriptions(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	// A new account's mailboxes are subscribed. LSUB has RFC 3501's
	// attributes only: no \Sent, \HasNoChildren or \Subscribed.
	confExpect(t, r, `LSUB "" "*"`,
		`* LSUB () "/" INBOX`, `* LSUB () "/" "Sent"`, `* LSUB () "/" "Drafts"`,
		`* LSUB () "/" "Trash"`, `* LSUB () "/" "Junk"`)

	// CREATE does not subscribe, not even the parents it makes.
	confStatus(t, r, "CREATE Box/Inner", "OK")
	confExpect(t, r, `LIST (SUBSCRIBED) "" "Box*"`)
	confExpect(t, r, `LIST "" "Box*" RETURN (SUBSCRIBED)`,
		`* LIST (\HasChildren) "/" "Box"`, `* LIST (\HasNoChildren) "/" "Box/Inner"`)
	confStatus(t, r, "SUBSCRIBE Box", "OK")
	confExpect(t, r, `LIST "" "Box*" RETURN (SUBSCRIBED)`,
		`* LIST (\HasChildren \Subscribed) "/" "Box"`, `* LIST (\HasNoChildren) "/" "Box/Inner"`)

	// DELETE leaves the subscription: LIST (SUBSCRIBED) shows the name
	// \NonExistent (RFC 5258 §3.1), LSUB shows it too.
	confStatus(t, r, "DELETE Box", "OK")
	confExpect(t, r, `LIST (SUBSCRIBED) "" "*"`,
		`* LIST (\Subscribed \HasNoChildren) "/" INBOX`,
		`* LIST (\Subscribed \HasNoChildren \Sent) "/" "Sent"`,
		`* LIST (\Subscribed \HasNoChildren \Drafts) "/" "Drafts"`,
		`* LIST (\Subscribed \HasNoChildren \Trash) "/" "Trash"`,
		`* LIST (\Subscribed \HasNoChildren \Junk) "/" "Junk"`,
		`* LIST (\Subscribed \NonExistent \HasChildren) "/" "Box"`)
	confExpect(t, r, `LSUB "" "Box"`, `* LSUB () "/" "Box"`)
	// RETURN (SUBSCRIBED) lists mailboxes, not subscriptions (RFC 5258 §5:
	// no response for the non-existent Fruit/Peach); Box is listed only as a
	// level above Box/Inner that "%" stops at.
	confExpect(t, r, `LIST "" "Box" RETURN (SUBSCRIBED)`)
	confExpect(t, r, `LIST "" "B%" RETURN (SUBSCRIBED)`, `* LIST (\NonExistent \HasChildren \Subscribed) "/" "Box"`)

	// UNSUBSCRIBE of a name whose mailbox is gone succeeds, and so does
	// that of a name not subscribed (RFC 9051 §6.3.8).
	confStatus(t, r, "UNSUBSCRIBE Box", "OK")
	confExpect(t, r, `LIST (SUBSCRIBED) "" "Box"`)
	confExpect(t, r, `LSUB "" "Box"`)
	confStatus(t, r, "UNSUBSCRIBE Box", "OK")
	confStatus(t, r, "UNSUBSCRIBE Never/Was", "OK")

	// A name without a mailbox may be subscribed, and stays subscribed when
	// a mailbox takes the name.
	confStatus(t, r, "SUBSCRIBE Later", "OK")
	confExpect(t, r, `LIST (SUBSCRIBED) "" "Later"`, `* LIST (\Subscribed \NonExistent \HasNoChildren) "/" "Later"`)
	confStatus(t, r, "CREATE Later", "OK")
	confExpect(t, r, `LIST (SUBSCRIBED) "" "Later"`, `* LIST (\Subscribed \HasNoChildren) "/" "Later"`)
	confStatus(t, r, "SUBSCRIBE Later", "OK") // twice is once
	confExpect(t, r, `LSUB "" "Later"`, `* LSUB () "/" "Later"`)

	// RENAME leaves subscriptions with the names, as Dovecot does: the old
	// name stays subscribed (now \NonExistent), the new one is not.
	confStatus(t, r, "CREATE Old/Kid", "OK")
	confStatus(t, r, "SUBSCRIBE Old/Kid", "OK")
	confStatus(t, r, "RENAME Old New", "OK")
	confExpect(t, r, `LIST (SUBSCRIBED) "" "Old*"`, `* LIST (\Subscribed \NonExistent \HasNoChildren) "/" "Old/Kid"`)
	confExpect(t, r, `LIST (SUBSCRIBED) "" "New*"`)
	confExpect(t, r, `LIST "" "New*" RETURN (SUBSCRIBED)`,
		`* LIST (\HasChildren) "/" "New"`, `* LIST (\HasNoChildren) "/" "New/Kid"`)

	// Names that cannot be names are refused with a reason.
	confStatus(t, r, `SUBSCRIBE ""`, "NO [CANNOT]")
	confStatus(t, r, `SUBSCRIBE "a//b"`, "NO [CANNOT]")
	confStatus(t, r, `SUBSCRIBE "a%"`, "NO [CANNOT]")
}

// RFC 5258 §5's examples over its hierarchy (Fruit, Tofu, Vegetable),
// without the remote mailboxes, which this server has none of: REMOTE
// selects nothing more.
func TestConformanceListExtendedRFC5258(t *testing.T) {
	_, r := confBareAccount(t)
	for _, name := range []string{"Fruit", "Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable", "Vegetable/Broccoli", "Vegetable/Corn"} {
		r.expectOK("CREATE " + name)
	}
	for _, name := range []string{"Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"} {
		r.expectOK("SUBSCRIBE " + name)
	}
	// Example 1: the hierarchy.
	confExpect(t, r, `LIST "" "*"`,
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasChildren) "/" "Fruit"`,
		`* LIST (\HasNoChildren) "/" "Fruit/Apple"`,
		`* LIST (\HasNoChildren) "/" "Fruit/Banana"`,
		`* LIST (\HasNoChildren) "/" "Tofu"`,
		`* LIST (\HasChildren) "/" "Vegetable"`,
		`* LIST (\HasNoChildren) "/" "Vegetable/Broccoli"`,
		`* LIST (\HasNoChildren) "/" "Vegetable/Corn"`)
	// Example 2: the subscriptions; Fruit/Peach is subscribed but does not
	// exist.
	example2 := []string{
		`* LIST (\Subscribed \HasNoChildren) "/" "INBOX"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Fruit/Banana"`,
		`* LIST (\Subscribed \NonExistent \HasNoChildren) "/" "Fruit/Peach"`,
		`* LIST (\Subscribed \HasChildren) "/" "Vegetable"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Vegetable/Broccoli"`,
	}
	confExpect(t, r, `LIST (SUBSCRIBED) "" "*"`, example2...)
	// With REMOTE, the same.
	confExpect(t, r, `LIST (REMOTE SUBSCRIBED) "" "*"`, example2...)
	// Example 3: children.
	confExpect(t, r, `LIST () "" "%" RETURN (CHILDREN)`,
		`* LIST (\HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasChildren) "/" "Fruit"`,
		`* LIST (\HasNoChildren) "/" "Tofu"`,
		`* LIST (\HasChildren) "/" "Vegetable"`)
	// The top level with the subscription state of each mailbox.
	confExpect(t, r, `LIST (REMOTE) "" "%" RETURN (SUBSCRIBED)`,
		`* LIST (\Subscribed \HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasChildren) "/" "Fruit"`,
		`* LIST (\HasNoChildren) "/" "Tofu"`,
		`* LIST (\Subscribed \HasChildren) "/" "Vegetable"`)
	// Every mailbox with its subscription state, and no response for the
	// non-existent Fruit/Peach (RFC 5258 §5 notes it).
	confExpect(t, r, `LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)`,
		`* LIST (\Subscribed \HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasChildren) "/" "Fruit"`,
		`* LIST (\HasNoChildren) "/" "Fruit/Apple"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Fruit/Banana"`,
		`* LIST (\HasNoChildren) "/" "Tofu"`,
		`* LIST (\Subscribed \HasChildren) "/" "Vegetable"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Vegetable/Broccoli"`,
		`* LIST (\HasNoChildren) "/" "Vegetable/Corn"`)
	// RETURN (SUBSCRIBED CHILDREN) together.
	confExpect(t, r, `LIST "" "Vegetable/%" RETURN (SUBSCRIBED CHILDREN)`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Vegetable/Broccoli"`,
		`* LIST (\HasNoChildren) "/" "Vegetable/Corn"`)
	// RECURSIVEMATCH over the same hierarchy (§3.5): Fruit is not
	// subscribed but has subscribed children "%" does not reach; Vegetable
	// is subscribed and has one too.
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "INBOX"`,
		`* LIST (\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\Subscribed \HasChildren) "/" "Vegetable" ("CHILDINFO" ("SUBSCRIBED"))`)
	// LIST-STATUS (RFC 5819): STATUS for the listed mailboxes that exist.
	confExpect(t, r, `LIST (SUBSCRIBED) "" "Fruit/*" RETURN (STATUS (MESSAGES))`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Fruit/Banana"`,
		`* STATUS "Fruit/Banana" (MESSAGES 0)`,
		`* LIST (\Subscribed \NonExistent \HasNoChildren) "/" "Fruit/Peach"`)
	// RECURSIVEMATCH alone is a syntax error (RFC 5258 §3.1).
	confStatus(t, r, `LIST (RECURSIVEMATCH) "" "%"`, "BAD")
}

// RFC 5258 §5, example 8: \HasChildren against CHILDINFO, cases A to C.
func TestConformanceListChildInfo(t *testing.T) {
	_, r := confBareAccount(t)
	r.expectOK("UNSUBSCRIBE INBOX") // example 8 A: "Inbox" is not subscribed
	for _, name := range []string{"Foo", "Foo/Bar", "Foo/Baz", "Moo"} {
		r.expectOK("CREATE " + name)
	}
	confExpect(t, r, `LIST "" "*"`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasChildren) "/" "Foo"`,
		`* LIST (\HasNoChildren) "/" "Foo/Bar"`,
		`* LIST (\HasNoChildren) "/" "Foo/Baz"`,
		`* LIST (\HasNoChildren) "/" "Moo"`)
	confExpect(t, r, `LIST "" "%" RETURN (CHILDREN)`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasChildren) "/" "Foo"`,
		`* LIST (\HasNoChildren) "/" "Moo"`)

	// A: Foo/Baz is the only subscribed mailbox.
	r.expectOK("SUBSCRIBE Foo/Baz")
	confExpect(t, r, `LIST (SUBSCRIBED) "" "*"`, `* LIST (\Subscribed \HasNoChildren) "/" "Foo/Baz"`)
	confExpect(t, r, `LIST (SUBSCRIBED) "" "%"`)
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))`)
	// A1: Foo is subscribed too.
	r.expectOK("SUBSCRIBE Foo")
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\Subscribed \HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))`)
	// A2: Foo is neither a mailbox nor subscribed.
	r.expectOK("UNSUBSCRIBE Foo")
	r.expectOK("DELETE Foo")
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\NonExistent \HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))`)
	r.expectOK("CREATE Foo")
	// B: nothing is subscribed.
	r.expectOK("UNSUBSCRIBE Foo/Baz")
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`)
	// C: only Foo and Moo are subscribed.
	r.expectOK("SUBSCRIBE Foo")
	r.expectOK("SUBSCRIBE Moo")
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)`,
		`* LIST (\HasChildren \Subscribed) "/" "Foo"`,
		`* LIST (\HasNoChildren \Subscribed) "/" "Moo"`)
	// A subscribed name that a second pattern matches is listed itself, so
	// no CHILDINFO points at it.
	r.expectOK("SUBSCRIBE Foo/Bar")
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Foo" "Foo/Bar")`,
		`* LIST (\Subscribed \HasChildren) "/" "Foo"`,
		`* LIST (\Subscribed \HasNoChildren) "/" "Foo/Bar"`)
}

// RFC 5258 §5, examples 10 and 11: CHILDINFO without \HasChildren, and a
// level of the hierarchy without a mailbox.
func TestConformanceListMissingLevels(t *testing.T) {
	_, r := confBareAccount(t)
	// Example 10: foo exists; foo/bar is subscribed and does not.
	r.expectOK("CREATE foo")
	r.expectOK("SUBSCRIBE foo/bar")
	confExpect(t, r, `LIST "" ("foo" "foo/*")`, `* LIST (\HasNoChildren) "/" "foo"`)
	confExpect(t, r, `LIST (SUBSCRIBED) "" "foo/*"`, `* LIST (\Subscribed \NonExistent \HasNoChildren) "/" "foo/bar"`)
	confExpect(t, r, `LIST (SUBSCRIBED RECURSIVEMATCH) "" foo RETURN (CHILDREN)`,
		`* LIST (\HasNoChildren) "/" "foo" ("CHILDINFO" ("SUBSCRIBED"))`)

	// Example 11: music/rock is the only mailbox under music, which is none.
	r.expectOK("CREATE music/rock")
	r.expectOK("DELETE music")
	confExpect(t, r, `LIST "" "m%" RETURN (CHILDREN)`, `* LIST (\NonExistent \HasChildren) "/" "music"`)
	// A basic LIST says \Noselect (RFC 3501 §6.3.8), which IMAP4rev1
	// clients know.
	confExpect(t, r, `LIST "" "m%"`, `* LIST (\Noselect \HasChildren) "/" "music"`)
	// Example 11 a3.1: a pattern lists music/rock itself, so music need not
	// be listed.
	confExpect(t, r, `LIST "" ("m%" "music/rock")`, `* LIST (\HasNoChildren) "/" "music/rock"`)
	// Only a pattern's trailing "%" lists a level without a mailbox (RFC
	// 5258 §3: otherwise names that do not exist are not returned).
	confExpect(t, r, `LIST "" "music"`)
	confExpect(t, r, `LIST "" "mu*"`, `* LIST (\HasNoChildren) "/" "music/rock"`)
	confStatus(t, r, "SELECT music", "NO [NONEXISTENT]")
}

// LSUB (RFC 3501 §6.3.9): an unsubscribed name above subscribed ones is
// listed \Noselect where the pattern's "%" stops at it.
func TestConformanceListLSUB(t *testing.T) {
	_, r := confBareAccount(t)
	for _, name := range []string{"m/test", "m/test2/test", "m/test3/test3"} {
		r.expectOK("CREATE " + name)
		r.expectOK("SUBSCRIBE " + name)
	}
	confExpect(t, r, `LSUB "" "m/%"`,
		`* LSUB () "/" "m/test"`,
		`* LSUB (\Noselect) "/" "m/test2"`,
		`* LSUB (\Noselect) "/" "m/test3"`)
	confExpect(t, r, `LSUB "" "%"`, `* LSUB () "/" INBOX`, `* LSUB (\Noselect) "/" "m"`)
	confExpect(t, r, `LSUB "" "*test"`, `* LSUB () "/" "m/test"`, `* LSUB () "/" "m/test2/test"`)
	confExpect(t, r, `LSUB "m/" "%"`,
		`* LSUB () "/" "m/test"`,
		`* LSUB (\Noselect) "/" "m/test2"`,
		`* LSUB (\Noselect) "/" "m/test3"`)
	// A subscribed parent is listed as it is.
	r.expectOK("SUBSCRIBE m/test2")
	confExpect(t, r, `LSUB "" "m/test2*"`, `* LSUB () "/" "m/test2"`, `* LSUB () "/" "m/test2/test"`)
	confExpect(t, r, `LSUB "" "m/%"`,
		`* LSUB () "/" "m/test"`,
		`* LSUB () "/" "m/test2"`,
		`* LSUB (\Noselect) "/" "m/test3"`)
	// Unsubscribing hides a name; deleting a mailbox does not.
	r.expectOK("UNSUBSCRIBE m/test")
	r.expectOK("DELETE m/test3/test3")
	confExpect(t, r, `LSUB "" "m/*"`,
		`* LSUB () "/" "m/test2"`,
		`* LSUB () "/" "m/test2/test"`,
		`* LSUB () "/" "m/test3/test3"`)
	r.expectOK("UNSUBSCRIBE m/test3/test3")
	confExpect(t, r, `LSUB "" "m/%"`, `* LSUB () "/" "m/test2"`)
}
