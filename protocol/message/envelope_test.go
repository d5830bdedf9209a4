package message

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// groupStart and groupEnd are the markers RFC 9051 §7.5.2 prescribes around a
// group's members.
func groupStart(name string) imap.Address { return imap.Address{Mailbox: name} }

var groupEnd = imap.Address{}

func addr(name, mailbox, host string) imap.Address {
	return imap.Address{Name: name, Mailbox: mailbox, Host: host}
}

func TestEnvelopeAddresses(t *testing.T) {
	cases := []struct {
		field string
		want  []imap.Address
	}{
		// Groups: empty, with members, several in one field, left open, unnamed.
		{`undisclosed: ;`, []imap.Address{groupStart("undisclosed"), groupEnd}},
		{`undisclosed-recipients:;`, []imap.Address{groupStart("undisclosed-recipients"), groupEnd}},
		{`g1: a@b.c, c@d.e;`, []imap.Address{groupStart("g1"), addr("", "a", "b.c"), addr("", "c", "d.e"), groupEnd}},
		{`g1: a@b.c;, x@y.z, "Group Two": ; , Ann <ann@q.r>`, []imap.Address{
			groupStart("g1"), addr("", "a", "b.c"), groupEnd, addr("", "x", "y.z"),
			groupStart("Group Two"), groupEnd, addr("Ann", "ann", "q.r")}},
		{`open: a@b.c`, []imap.Address{groupStart("open"), addr("", "a", "b.c"), groupEnd}},
		{`: a@b.c;`, []imap.Address{addr("", "a", "b.c")}},
		// Comments anywhere; one after a bare addr-spec names it (legacy form).
		{`<user (c)@ (c) domain.org>`, []imap.Address{addr("", "user", "domain.org")}},
		{`user (c)@ (c) domain.org`, []imap.Address{addr("", "user", "domain.org")}},
		{`a@b.c (Name)`, []imap.Address{addr("Name", "a", "b.c")}},
		{`a@b.c (=?utf-8?q?J=C3=B6rg?=)`, []imap.Address{addr("Jörg", "a", "b.c")}},
		{`(Name) a@b.c`, []imap.Address{addr("", "a", "b.c")}},
		{`John <jdoe@one.test> (my dear friend)`, []imap.Address{addr("John", "jdoe", "one.test")}},
		{`Pete(A nice \) chap) <pete(his account)@silly.test(his host)>`, []imap.Address{addr("Pete", "pete", "silly.test")}},
		// RFC 5322 appendix A.5, unfolded as the header reader leaves it.
		{"A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
			[]imap.Address{groupStart("A Group"), addr("Chris Jones", "c", "public.example"), addr("", "joe", "example.org"),
				addr("John", "jdoe", "one.test"), groupEnd}},
		{`(Empty list)(start)Hidden recips  :(nobody(that I know))  ;`, []imap.Address{groupStart("Hidden recips"), groupEnd}},
		// Quoted strings: local parts keep the quoting they need and no more.
		{`"john doe"@example.com`, []imap.Address{addr("", `"john doe"`, "example.com")}},
		{`"john"@example.com`, []imap.Address{addr("", "john", "example.com")}},
		{`"a\"b"@x.y`, []imap.Address{addr("", `"a\"b"`, "x.y")}},
		{`"Giant; \"Big\" Box" <sysservices@example.net>`, []imap.Address{addr(`Giant; "Big" Box`, "sysservices", "example.net")}},
		{`x@[192.0.2.1]`, []imap.Address{addr("", "x", "[192.0.2.1]")}},
		// Encoded words, in display names and group names.
		{`=?utf-8?q?J=C3=B6rg?= <j@x.de>`, []imap.Address{addr("Jörg", "j", "x.de")}},
		{`=?utf-8?q?a?= =?utf-8?q?b?= c <x@y.z>`, []imap.Address{addr("ab c", "x", "y.z")}},
		{`=?ISO-8859-1?Q?Gr=FCppe?=: =?utf-8?b?w5xiZXI=?= <u@v.w>;`, []imap.Address{groupStart("Grüppe"), addr("Über", "u", "v.w"), groupEnd}},
		{`"=?utf-8?q?J=C3=B6rg?=" <j@x.de>`, []imap.Address{addr("=?utf-8?q?J=C3=B6rg?=", "j", "x.de")}}, // RFC 2047 §5: text in quotes
		{`=?x-unknown?q?abc?= <j@x.de>`, []imap.Address{addr("=?x-unknown?q?abc?=", "j", "x.de")}},
		// Obsolete forms (RFC 5322 §4.4, appendix A.6.1; RFC 822).
		{`Joe Q. Public <john.q.public@example.com>`, []imap.Address{addr("Joe Q. Public", "john.q.public", "example.com")}},
		{`Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example`, []imap.Address{addr("Mary Smith", "mary", "example.net"), addr("", "jdoe", "test.example")}},
		{`<@a.test,@b.test:x@y.test>`, []imap.Address{addr("", "x", "y.test")}},
		{`"Joe & J. Harvey" <ddd @Org>, JJV @ BBN`, []imap.Address{addr("Joe & J. Harvey", "ddd", "Org"), addr("", "JJV", "BBN")}},
		{`"john". "q" @ example.com`, []imap.Address{addr("", "john.q", "example.com")}},
		// What holds no address is left out; the rest of the field stays.
		{`foo, a@b.c`, []imap.Address{addr("", "a", "b.c")}},
		{`Name <a@b.c`, []imap.Address{addr("Name", "a", "b.c")}},
		{`a@, @b, a@b.c`, []imap.Address{addr("", "a", "b.c")}},
		{`foo`, nil},
		{`(just a comment)`, nil},
		{``, nil},
	}
	for _, c := range cases {
		if got := envelopeAddresses(c.field); !reflect.DeepEqual(got, c.want) {
			t.Errorf("envelopeAddresses(%q)\n got %+v\nwant %+v", c.field, got, c.want)
		}
	}
}

func envelopeHeader(t *testing.T, s string) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestExtractEnvelope(t *testing.T) {
	h := envelopeHeader(t, "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"+
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"+
		"From: Ann <ann@example.com>\r\n"+
		"Reply-To: list: ann@example.com;\r\n"+
		"To: undisclosed: ;\r\n"+
		"Cc: g1: a@b.c, c@d.e;\r\n"+
		"Message-ID: <id1@example.com>\r\n"+
		"In-Reply-To: <p1@example.com> <p2@example.com>\r\n\r\n")
	want := &imap.Envelope{
		Date:      time.Date(2003, 7, 1, 10, 52, 37, 0, time.FixedZone("", 2*3600)),
		Subject:   "Grüße",
		From:      []imap.Address{addr("Ann", "ann", "example.com")},
		ReplyTo:   []imap.Address{groupStart("list"), addr("", "ann", "example.com"), groupEnd},
		To:        []imap.Address{groupStart("undisclosed"), groupEnd},
		Cc:        []imap.Address{groupStart("g1"), addr("", "a", "b.c"), addr("", "c", "d.e"), groupEnd},
		InReplyTo: []string{"p1@example.com", "p2@example.com"},
		MessageID: "id1@example.com",
	}
	got := ExtractEnvelope(h)
	if !got.Date.Equal(want.Date) {
		t.Errorf("date %v, want %v", got.Date, want.Date)
	}
	got.Date = want.Date
	if !reflect.DeepEqual(got, want) {
		t.Errorf("envelope\n got %+v\nwant %+v", got, want)
	}
}

// TestEnvelopeCodecGroupNames: the store keeps group names decoded (SEARCH reads
// them); what FETCH gets has them encoded as go-imap encodes display names.
func TestEnvelopeCodecGroupNames(t *testing.T) {
	env := &imap.Envelope{To: []imap.Address{groupStart("Grüppe"), addr("Über", "u", "v.w"), groupEnd, groupStart("plain"), groupEnd}}
	stored := EncodeEnvelope(env)
	if !strings.Contains(stored, `"Mailbox":"Grüppe"`) {
		t.Errorf("stored %s: group name not kept decoded", stored)
	}
	got, err := DecodeEnvelope(stored)
	if err != nil {
		t.Fatal(err)
	}
	want := []imap.Address{groupStart("=?utf-8?q?Gr=C3=BCppe?="), addr("Über", "u", "v.w"), groupEnd, groupStart("plain"), groupEnd}
	if !reflect.DeepEqual(got.To, want) {
		t.Errorf("decoded %+v, want %+v", got.To, want)
	}
}

// TestAttachedMessageEnvelope: the envelope in the BODYSTRUCTURE of an attached
// message is built the same way, and read back encoded for the wire.
func TestAttachedMessageEnvelope(t *testing.T) {
	msg := "From: a@b.c\r\nContent-Type: message/rfc822\r\n\r\n" +
		"From: x@y.z\r\nTo: =?utf-8?q?Gr=C3=BCppe?=: u@v.w;\r\nSubject: inner\r\n\r\nbody\r\n"
	p, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := DecodeBodyStructure(EncodeBodyStructure(p.BodyStructure))
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := bs.(*imap.BodyStructureSinglePart)
	if !ok || sp.MessageRFC822 == nil {
		t.Fatalf("body structure %+v: no attached message", bs)
	}
	want := []imap.Address{groupStart("=?utf-8?q?Gr=C3=BCppe?="), addr("", "u", "v.w"), groupEnd}
	if got := sp.MessageRFC822.Envelope.To; !reflect.DeepEqual(got, want) {
		t.Errorf("attached To %+v, want %+v", got, want)
	}
}

// TestEnvelopeAddressesLimit: a field past maxFieldTokens keeps the addresses
// before the limit, not the one it cuts, and closes a group it leaves open.
func TestEnvelopeAddressesLimit(t *testing.T) {
	field := strings.Repeat("a@b.c, ", maxFieldTokens) // 4 tokens an address
	got := envelopeAddresses(field)
	if len(got) != maxFieldTokens/4 || got[len(got)-1] != addr("", "a", "b.c") {
		t.Errorf("%d addresses (last %+v), want %d", len(got), got[len(got)-1], maxFieldTokens/4)
	}
	got = envelopeAddresses("g: " + field)
	// "g" and ":" take two tokens: the address after the last whole one is cut.
	want := maxFieldTokens/4 - 1
	if len(got) != want+2 || got[0] != groupStart("g") || got[len(got)-1] != groupEnd || got[len(got)-2] != addr("", "a", "b.c") {
		t.Errorf("%d entries (first %+v, last %+v), want a group of %d", len(got), got[0], got[len(got)-1], want)
	}
}
