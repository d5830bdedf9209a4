package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/mailgate/mailgate/protocol/message"
)

// FuzzHeaderFields: never a panic, values are unfolded (no line breaks), and a
// From field in the header is always found, however it is spaced or cased.
func FuzzHeaderFields(f *testing.F) {
	f.Add([]byte("From: a@b.test\r\nSubject: x\r\n\r\nFrom: body@b.test\r\n"))
	f.Add([]byte("Subject: x\nfrom : a@b.test\n folded@c.test\n\nbody"))
	f.Add([]byte("broken\r\nFROM:\t<a@b.test>\r\n"))
	f.Add([]byte(" leading continuation\r\nFrom: x\r\r\n"))
	f.Add([]byte(""))
	headerFrom := regexp.MustCompile(`(?im)^from[ \t]*:`)
	f.Fuzz(func(t *testing.T, msg []byte) {
		vals, err := headerFields(bytes.NewReader(msg), "From")
		if err != nil {
			return // over the limits: the caller refuses the message
		}
		for _, v := range vals {
			if strings.ContainsAny(v, "\r\n") {
				t.Fatalf("value not unfolded: %q", v)
			}
		}
		// The header is what comes before the first empty line, once line ends
		// are normalized as the spool does.
		sp := message.NewSpool("", 0)
		sp.Write(msg)
		sp.Finish()
		norm, _ := io.ReadAll(sp.Reader())
		header := string(norm)
		if i := strings.Index(header, "\r\n\r\n"); i >= 0 {
			header = header[:i+2]
		}
		if strings.HasPrefix(header, "\r\n") {
			header = ""
		}
		if headerFrom.MatchString(header) && len(vals) == 0 {
			t.Fatalf("a From field in %q was missed", header)
		}
	})
}

// FuzzFromAddresses: never a panic; "nobody named" is only said of a value
// without any "@", raw or decoded.
func FuzzFromAddresses(f *testing.F) {
	for _, s := range []string{
		" alice@example.test", ` "A, B" <a@b.test>, c@d.test`, " =?utf-8?b?cHl0aG9uIHNtdHBsaWI=?=",
		" =?utf-8?q?bob=40example.test?=", " undisclosed-recipients:;", " <broken@", "", " (comment) a@b.test",
		" =?x-unknown?q?abc?= <a@b.test>", " Grüße <ü@b.test>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		addrs, ok := fromAddresses(v)
		if !ok {
			return
		}
		if len(addrs) == 0 && strings.Contains(v, "@") {
			if _, err := wordDecoder.DecodeHeader(v); err != nil {
				t.Fatalf("%q: accepted as naming nobody", v)
			}
			// It parsed as a list without addresses (a group): fine.
		}
		for _, a := range addrs {
			if !strings.Contains(a, "@") {
				t.Fatalf("%q: address %q", v, a)
			}
		}
	})
}

// FuzzReceived: whatever the client's HELO or the recipient, the trace field
// is one well-formed header field that a parser reads back as exactly one
// Received field, with the client's text confined to its tokens.
func FuzzReceived(f *testing.F) {
	f.Add("client.example", "bob@example.test", "ESMTPSA", false)
	f.Add("evil\r\nBcc: x@y", "a>;b@c", "ESMTP", true)
	f.Add("[127.0.0.1]", "", "ESMTPS", false)
	f.Add(strings.Repeat("h", 400), strings.Repeat("r", 400)+"@x.test", "", true)
	f.Add("(x);by", "ü@bücher.example", "ESMTP", false)
	f.Fuzz(func(t *testing.T, helo, rcpt, proto string, v6 bool) {
		ip := net.IPv4(192, 0, 2, 7)
		if v6 {
			ip = net.ParseIP("2001:db8::7")
		}
		h := receivedHeader(traceInfo{helo: helo, remote: &net.TCPAddr{IP: ip, Port: 25}, host: "mx.example.test",
			proto: proto, id: "id-1", rcpt: rcpt, at: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)})
		if !strings.HasPrefix(h, "Received: from ") || !strings.HasSuffix(h, "\r\n") {
			t.Fatalf("malformed: %q", h)
		}
		lines := strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")
		for i, l := range lines {
			if strings.ContainsAny(l, "\r\n") || len(l) > 998 {
				t.Fatalf("line %d: %q", i, l)
			}
			if i > 0 && !strings.HasPrefix(l, "\t") {
				t.Fatalf("line %d does not continue the field: %q", i, l)
			}
		}
		if strings.Count(h, ";") != 1 || strings.Count(h, "(") != 1 || strings.Count(h, ")") != 1 {
			t.Fatalf("client text forged structure: %q", h)
		}
		hdr, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(h + "\r\n")))
		if err != nil {
			t.Fatalf("parse %q: %v", h, err)
		}
		if hdr.Len() != 1 || !hdr.Has("Received") {
			t.Fatalf("parsed into %d fields: %q", hdr.Len(), h)
		}
	})
}
