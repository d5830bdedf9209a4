package imap_test

import (
	"bufio"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	mgimap "github.com/mailgate/mailgate/protocol/imap"
)

// RFC 2971 (ID). The server advertises ID (§2) and, to an ID command in any
// state, whatever its parameter list (§3.1: NIL, or field-value pairs whose
// strings may be quoted or literals), answers an untagged ID response with
// its own parameter list and a tagged OK (§3.2, as the example of §3.1):
//
//	C: a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")
//	S: * ID ("name" "Cyrus" "version" "1.5" ...)
//	S: a023 OK ID completed
//
// §3.3 bounds what a client may send: at most 30 pairs, fields of at most 30
// octets, each sent once, values of at most 1024 octets; a command beyond
// them, or outside the syntax of §4, is answered BAD (RFC 9051 §7.1.3).

// idDial connects and returns the session and its greeting.
func idDial(t *testing.T, addr string) (*raw, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, conn: c, r: bufio.NewReader(c)}
	return r, r.line()
}

// idCaps is the capability list of a CAPABILITY response or of a
// CAPABILITY response code.
func idCaps(t *testing.T, line string) []string {
	t.Helper()
	if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
		return strings.Fields(rest)
	}
	_, rest, ok := strings.Cut(line, "[CAPABILITY ")
	list, _, closed := strings.Cut(rest, "]")
	if !ok || !closed {
		t.Fatalf("no capability list in %q", line)
	}
	return strings.Fields(list)
}

// idExchange runs an ID command and checks the whole answer: the one
// untagged ID response, then OK.
func idExchange(t *testing.T, r *raw, args, wantID string) {
	t.Helper()
	u, st := r.cmd("ID " + args)
	if !slices.Equal(u, []string{wantID}) || !strings.HasPrefix(st, "OK ") {
		t.Fatalf("ID %s: untagged %q, status %q; want [%q] and OK", args, u, st, wantID)
	}
}

// idBad runs an ID command that must be refused with BAD, alone.
func idBad(t *testing.T, r *raw, args string) {
	t.Helper()
	u, st := r.cmd("ID " + args)
	if len(u) != 0 || !strings.HasPrefix(st, "BAD ") {
		t.Fatalf("ID %.80s: untagged %q, status %q; want BAD alone", args, u, st)
	}
}

const mailgateID = `* ID ("name" "mailgate")`

// ID is advertised before and after login, in the greeting's capability
// code as in CAPABILITY, and answered in the not-authenticated,
// authenticated and selected states.
func TestConformanceIDEveryState(t *testing.T) {
	e := newEnv(t)
	r, greeting := idDial(t, e.addr)
	if !slices.Contains(idCaps(t, greeting), "ID") {
		t.Errorf("greeting %q: no ID capability", greeting)
	}
	u := r.expectOK("CAPABILITY")
	if len(u) != 1 || !slices.Contains(idCaps(t, u[0]), "ID") {
		t.Errorf("CAPABILITY before login: %q", u)
	}
	idExchange(t, r, `("name" "Thunderbird" "version" "115.0")`, mailgateID)
	idExchange(t, r, "NIL", mailgateID)
	r.login()
	u = r.expectOK("CAPABILITY")
	if len(u) != 1 || !slices.Contains(idCaps(t, u[0]), "ID") {
		t.Errorf("CAPABILITY after login: %q", u)
	}
	idExchange(t, r, `("name" "Mac OS X Mail" "version" "16.0 (3731.500.231)" "os" "Mac OS X" "os-version" "13.4 (22F66)")`, mailgateID)
	r.expectOK("SELECT INBOX")
	idExchange(t, r, `("name" NIL)`, mailgateID)
	idExchange(t, r, "()", mailgateID) // #(...) allows an empty list
	r.expectOK("NOOP")                 // still selected, still in step
}

// The server's own parameter list: its name and the version it was given,
// nothing else.
func TestConformanceIDVersion(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Version: "1.4.2", Hostname: "mx.example.com"}})
	r := dialRaw(t, e.addr)
	idExchange(t, r, "NIL", `* ID ("name" "mailgate" "version" "1.4.2")`)
}

// Strings of ID may be literals (§4 uses string, RFC 9051's quoted or
// literal): a synchronizing one gets its continuation request, a
// non-synchronizing one (RFC 7888) is read as it comes.
func TestConformanceIDLiterals(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.send(`l1 ID ("name" {11}`)
	if l := r.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("synchronizing literal: %q, want a continuation request", l)
	}
	r.send(`Thunderbird "version" {5+}`)
	r.send(`115.0 "os" "Linux")`)
	if l := r.line(); l != mailgateID {
		t.Fatalf("got %q, want %q", l, mailgateID)
	}
	if l := r.line(); !strings.HasPrefix(l, "l1 OK ") {
		t.Fatalf("got %q, want l1 OK", l)
	}
	// A literal may hold what a quoted string cannot.
	r.send("l2 ID (\"x-note\" {7+}\r\na\"b\r\nc\\ \"name\" \"y\")")
	if l := r.line(); l != mailgateID {
		t.Fatalf("got %q, want %q", l, mailgateID)
	}
	if l := r.line(); !strings.HasPrefix(l, "l2 OK ") {
		t.Fatalf("got %q, want l2 OK", l)
	}
	// Pipelined behind the ID, a command is answered after it, in order.
	r.send("l3 ID NIL\r\nl4 NOOP")
	for _, want := range []string{mailgateID, "l3 OK ", "l4 OK "} {
		if l := r.line(); !strings.HasPrefix(l, want) {
			t.Fatalf("pipelined: got %q, want %q", l, want)
		}
	}
}

// What §3.3 and §4 forbid is refused with BAD, and the session goes on; the
// bounds themselves are accepted.
func TestConformanceIDLimits(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	pairs := func(n int) string {
		var b strings.Builder
		b.WriteString("(")
		for i := range n {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(`"x-field-` + itoa(i) + `" "v"`)
		}
		return b.String() + ")"
	}
	idExchange(t, r, pairs(30), mailgateID)
	idBad(t, r, pairs(31))
	field30 := "x-" + strings.Repeat("f", 28)
	idExchange(t, r, `("`+field30+`" "v")`, mailgateID)
	idBad(t, r, `("`+field30+`g" "v")`)
	value1024 := strings.Repeat("v", 1024)
	idExchange(t, r, `("name" "`+value1024+`")`, mailgateID)
	idBad(t, r, `("name" "`+value1024+`v")`)
	idBad(t, r, `("name" "a" "NAME" "b")`) // the same field twice: strings are not case-sensitive
	for _, malformed := range []string{
		"",                      // no argument
		"nil nil",               // two
		"FOO",                   // an atom but NIL
		`"name"`,                // a string alone
		`("name")`,              // a field without a value
		`("name" "a" )`,         // a space before ")"
		`( "name" "a")`,         // one after "("
		`("name"  "a")`,         // two between
		`(NIL "a")`,             // a NIL field
		`("name" "a"`,           // not closed
		`("name" "a") "extra"`,  // something after the list
		`(("name" "a"))`,        // nested
		`("name" "a\q")`,        // an escape quoted strings do not have
		`("name" "a")("b" "c")`, // two lists
	} {
		idBad(t, r, malformed)
	}
	// A literal longer than any ID string: a synchronizing one is refused
	// instead of the continuation request, and never sent.
	r.send(`b1 ID ("name" {1025}`)
	if l := r.line(); !strings.HasPrefix(l, "b1 BAD ") {
		t.Fatalf("1025-octet synchronizing literal: %q, want b1 BAD", l)
	}
	// A non-synchronizing one is sent anyway: refused, and its octets are
	// not taken for commands.
	r.send(`b2 ID ("name" {2000+}`)
	r.send(strings.Repeat("b3 NOOP\r\n", 222) + "ab)")
	if l := r.line(); !strings.HasPrefix(l, "b2 BAD ") {
		t.Fatalf("2000-octet literal: %q, want b2 BAD", l)
	}
	// Strings within their bound, but more of them than a command may
	// hold: the literal past the bound is refused and skipped, with what
	// follows it; none of their octets is taken for a command.
	var long strings.Builder
	long.WriteString(`b4 ID (`)
	filler := strings.Repeat("b5 LOGOUT\r\n", 90) + strings.Repeat("x", 10) // 1000 octets
	for i := range 60 {
		long.WriteString(`"x-f` + itoa(i) + `" {1000+}` + "\r\n" + filler + " ")
	}
	r.send(long.String() + `"name" "x")`)
	if l := r.line(); !strings.HasPrefix(l, "b4 BAD ") {
		t.Fatalf("ID of 60,000 octets: %q, want b4 BAD", l)
	}
	// Not authenticated, a refused ID did not end the session.
	u := r.expectOK("CAPABILITY")
	if len(u) != 1 || !slices.Contains(idCaps(t, u[0]), "ID") {
		t.Fatalf("CAPABILITY after the refusals: %q", u)
	}
	r.login()
}
