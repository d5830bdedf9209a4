package imap_test

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
)

// binResponse reads one whole server response: its line and, for each
// literal ("{n}" or literal8 "~{n}") that ends a line, the literal's octets
// and the rest of the response after it. CRLFs inside are kept; the final one
// is cut.
func binResponse(r *raw) string {
	r.t.Helper()
	var b strings.Builder
	for {
		r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := r.r.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read: %v (got %q)", err, b.String()+l)
		}
		b.WriteString(l)
		n, ok := binLiteralSize(l)
		if !ok {
			return strings.TrimSuffix(b.String(), "\r\n")
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			r.t.Fatalf("read literal of %d: %v", n, err)
		}
		b.Write(buf)
	}
}

// binLiteralSize tells whether a line ends with a literal's announcement.
func binLiteralSize(l string) (int, bool) {
	s, ok := strings.CutSuffix(l, "}\r\n")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(s[i+1:])
	return n, err == nil
}

// binCmd sends a tagged command and returns its untagged responses, whole,
// and its completion without the tag.
func binCmd(r *raw, line string) (responses []string, status string) {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("b%d", r.n)
	r.send(tag + " " + line)
	for {
		resp := binResponse(r)
		if s, ok := strings.CutPrefix(resp, tag+" "); ok {
			return responses, s
		}
		responses = append(responses, resp)
	}
}

// binExpect runs FETCH commands that must complete OK and compares their
// responses, whole, literal octets included.
func binExpect(t *testing.T, r *raw, cases [][2]string) {
	t.Helper()
	for _, c := range cases {
		got, status := binCmd(r, c[0])
		if !strings.HasPrefix(status, "OK ") {
			t.Errorf("%s: completion %q, want OK", c[0], status)
		}
		if len(got) != 1 || got[0] != c[1] {
			t.Errorf("%s:\n got %q\nwant %q", c[0], got, []string{c[1]})
		}
	}
}

// TestConformanceBinaryPartial: a partial FETCH answers with the origin
// octet (RFC 9051 §7.5.2: "BINARY[<section-binary>]<<number>>", the offset
// within the decoded data; RFC 3516 §4.3 and its erratum 8217; and
// "BODY[<section>]<<origin octet>>"). Data without NUL comes as a string, not
// a literal8 (RFC 9051 §7.5.2: SHOULD). An origin past the end gives an empty
// string (RFC 9051 §6.4.5).
func TestConformanceBinaryPartial(t *testing.T) {
	e := newEnv(t)
	e.appendMsg(t, "INBOX", "From: a@example.com\r\nSubject: partial\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		"SGVsbG8sIGJpbmFyeSB3b3JsZA==\r\n", models.Flags{}) // "Hello, binary world"
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	binExpect(t, r, [][2]string{
		{"FETCH 1 (BINARY.PEEK[1]<0.7>)", "* 1 FETCH (BINARY[1]<0> {7}\r\nHello, )"},
		{"FETCH 1 (BINARY.PEEK[1]<7.6>)", "* 1 FETCH (BINARY[1]<7> {6}\r\nbinary)"},
		{"FETCH 1 (BINARY.PEEK[1]<14.100>)", "* 1 FETCH (BINARY[1]<14> {5}\r\nworld)"},
		{"FETCH 1 (BINARY.PEEK[1]<100.5>)", "* 1 FETCH (BINARY[1]<100> {0}\r\n)"},
		{"FETCH 1 (BINARY.PEEK[1])", "* 1 FETCH (BINARY[1] {19}\r\nHello, binary world)"},
		{"FETCH 1 (BODY.PEEK[1]<0.7>)", "* 1 FETCH (BODY[1]<0> {7}\r\nSGVsbG8)"},
		{"FETCH 1 (BODY.PEEK[1]<4.4>)", "* 1 FETCH (BODY[1]<4> {4}\r\nbG8s)"},
		{"FETCH 1 (BINARY.SIZE[1])", "* 1 FETCH (BINARY.SIZE[1] 19)"},
		{"UID FETCH 1 (BINARY.PEEK[1]<0.5> BINARY.PEEK[1]<7.6>)",
			"* 1 FETCH (UID 1 BINARY[1]<0> {5}\r\nHello BINARY[1]<7> {6}\r\nbinary)"},
	})
	// No .PEEK: the message is now \Seen, and FLAGS says so (RFC 3501
	// §6.4.5; this IMAP4rev1 session is the first to see the message, so it
	// is \Recent too, §2.3.2).
	binExpect(t, r, [][2]string{
		{"FETCH 1 (BINARY[1]<0.5>)", "* 1 FETCH (FLAGS (\\Seen \\Recent) BINARY[1]<0> {5}\r\nHello)"},
	})
}

// The parts of the message TestConformanceBinaryAppend appends, as they
// stand between their header and the next delimiter.
const (
	binPart1 = "\x01\x02\xfe\xff 8-bit \x80\x81\r\nsecond line" // binary
	binPart2 = "AAECAwD/"                                       // base64 of 00 01 02 03 00 ff
	binPart3 = "caf=E9 soft=\r\nbreak\r\n=3D end"               // quoted-printable
	binPart5 = "begin 644 a\r\n#86)C\r\n`\r\nend"               // x-uuencode
	binDec2  = "\x00\x01\x02\x03\x00\xff"                       // binPart2 decoded
	binDec3  = "caf\xe9 softbreak\r\n= end"                     // binPart3 decoded, still ISO-8859-1
	binMsg   = "From: a@example.com\r\nTo: b@example.com\r\nSubject: binary parts\r\n" +
		"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n" +
		"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + binPart1 + "\r\n" +
		"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + binPart2 + "\r\n" +
		"--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + binPart3 + "\r\n" +
		"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\r\n" + // part 4: empty
		"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n" + binPart5 + "\r\n" +
		"--XX--\r\n"
)

// TestConformanceBinaryAppend: a message APPENDed as a literal8 (RFC 3516
// §4.4) comes back as RFC 3516 §4.2-4.3 (RFC 9051 §6.4.5, §7.5.2) say: BODY[n]
// as stored, in its transfer encoding; BINARY[n] with the transfer encoding
// removed and nothing else changed (no charset conversion); a literal8 exactly
// when the decoded data holds NUL; BINARY.SIZE[n] the size BINARY[n] gives; an
// empty part an empty string; and NO [UNKNOWN-CTE] for an encoding the server
// cannot decode. The stored message holds no NUL (PostgreSQL does not store
// one yet): the NUL comes from decoding base64.
func TestConformanceBinaryAppend(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()

	// APPEND with a synchronizing literal8: the server asks for the octets.
	r.n++
	tag := fmt.Sprintf("b%d", r.n)
	r.send(fmt.Sprintf("%s APPEND INBOX ~{%d}", tag, len(binMsg)))
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND literal8: %q, want a continuation request", l)
	}
	r.send(binMsg)
	if l := r.line(); !strings.HasPrefix(l, tag+" OK ") {
		t.Fatalf("APPEND literal8: %q, want OK", l)
	}

	r.expectOK("SELECT INBOX")
	lit := func(b string) string { return fmt.Sprintf("{%d}\r\n%s", len(b), b) }
	binExpect(t, r, [][2]string{
		{"FETCH 1 (BODY.PEEK[1])", "* 1 FETCH (BODY[1] " + lit(binPart1) + ")"},
		{"FETCH 1 (BINARY.PEEK[1])", "* 1 FETCH (BINARY[1] " + lit(binPart1) + ")"},
		{"FETCH 1 (BINARY.SIZE[1])", fmt.Sprintf("* 1 FETCH (BINARY.SIZE[1] %d)", len(binPart1))},

		{"FETCH 1 (BODY.PEEK[2])", "* 1 FETCH (BODY[2] " + lit(binPart2) + ")"},
		{"FETCH 1 (BINARY.PEEK[2])", "* 1 FETCH (BINARY[2] ~" + lit(binDec2) + ")"},
		{"FETCH 1 (BINARY.SIZE[2])", fmt.Sprintf("* 1 FETCH (BINARY.SIZE[2] %d)", len(binDec2))},
		{"FETCH 1 (BINARY.PEEK[2]<4.2>)", "* 1 FETCH (BINARY[2]<4> ~{2}\r\n\x00\xff)"},
		{"FETCH 1 (BINARY.PEEK[2]<1.3>)", "* 1 FETCH (BINARY[2]<1> {3}\r\n\x01\x02\x03)"},

		{"FETCH 1 (BODY.PEEK[3])", "* 1 FETCH (BODY[3] " + lit(binPart3) + ")"},
		{"FETCH 1 (BINARY.PEEK[3])", "* 1 FETCH (BINARY[3] " + lit(binDec3) + ")"},
		{"FETCH 1 (BINARY.SIZE[3])", fmt.Sprintf("* 1 FETCH (BINARY.SIZE[3] %d)", len(binDec3))},

		{"FETCH 1 (BODY.PEEK[4])", "* 1 FETCH (BODY[4] {0}\r\n)"},
		{"FETCH 1 (BINARY.PEEK[4])", "* 1 FETCH (BINARY[4] {0}\r\n)"},
		{"FETCH 1 (BINARY.SIZE[4])", "* 1 FETCH (BINARY.SIZE[4] 0)"},

		{"FETCH 1 (BODY.PEEK[5])", "* 1 FETCH (BODY[5] " + lit(binPart5) + ")"},
		{"FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])",
			fmt.Sprintf("* 1 FETCH (BINARY.SIZE[2] %d BINARY[2] ~%s)", len(binDec2), lit(binDec2))},
	})

	// An encoding the server cannot remove fails the request (RFC 3516 §4.2,
	// RFC 9051 §7.5.2), BINARY.SIZE as BINARY: no FETCH response, NO with the
	// UNKNOWN-CTE code.
	for _, c := range []string{"FETCH 1 (BINARY.PEEK[5])", "FETCH 1 (BINARY.SIZE[5])", "FETCH 1 (BINARY.PEEK[5]<0.3>)"} {
		got, status := binCmd(r, c)
		if len(got) != 0 || !strings.HasPrefix(status, "NO [UNKNOWN-CTE] ") {
			t.Errorf("%s: %q then %q, want nothing then NO [UNKNOWN-CTE]", c, got, status)
		}
	}
	// The session goes on.
	binExpect(t, r, [][2]string{{"FETCH 1 (BINARY.SIZE[2])", "* 1 FETCH (BINARY.SIZE[2] 6)"}})
}
