package message

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

func spoolOf(t testing.TB, chunks ...string) *Spool {
	t.Helper()
	s := NewSpool(t.TempDir(), 0)
	for _, c := range chunks {
		if _, err := s.WriteString(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSpoolNormalizesLineEndings(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"a\r\nb\r\n"}, "a\r\nb\r\n"},
		{[]string{"a\nb\n"}, "a\r\nb\r\n"},
		{[]string{"a\rb\r"}, "a\r\nb\r\n"},
		{[]string{"a\r", "\nb"}, "a\r\nb"}, // CRLF split across writes
		{[]string{"a\r", "b"}, "a\r\nb"},
		{[]string{"\r\n.\n.\r\n"}, "\r\n.\r\n.\r\n"},
	}
	for _, c := range cases {
		s := spoolOf(t, c.in...)
		got, _ := io.ReadAll(s.Reader())
		if string(got) != c.want || s.Size() != int64(len(c.want)) {
			t.Errorf("spool(%q) = %q (size %d), want %q", c.in, got, s.Size(), c.want)
		}
	}
}

func TestSpoolSpillsToDiskAndLimits(t *testing.T) {
	big := strings.Repeat("x", memLimit) + "\r\n" + strings.Repeat("y", 1000)
	s := spoolOf(t, big)
	if s.file == nil {
		t.Fatal("large message stayed in memory")
	}
	got, _ := io.ReadAll(s.Reader())
	if string(got) != big {
		t.Fatalf("read back %d bytes, want %d", len(got), len(big))
	}
	l := NewSpool("", 10)
	if _, err := l.WriteString("01234567890"); err != ErrTooLarge {
		t.Fatalf("over limit: %v", err)
	}
}

const multipart = "From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\n" +
	"To: a@example.com, \"Bob\" <b@example.com>\r\n" +
	"Subject: =?gbk?b?1eLKx9K7t+Ky4srU08q8/g==?=\r\n" +
	"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\n" +
	"Message-ID: <abc@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=gbk\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"xOO6w6OsysC956Oh\r\n" +
	"--b1\r\n" +
	"Content-Type: application/pdf; name=\"a.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"a.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--b1\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"\r\n" +
	"Subject: inner\r\n" +
	"\r\n" +
	"inner body\r\n" +
	"--b1--\r\n"

func TestParse(t *testing.T) {
	p, err := Parse(strings.NewReader(multipart))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "这是一封测试邮件" {
		t.Errorf("Subject = %q", p.Subject)
	}
	if len(p.From) != 1 || p.From[0].Name != "Jürgen" || len(p.To) != 2 || p.To[1].Email != "b@example.com" {
		t.Errorf("addresses = %+v %+v", p.From, p.To)
	}
	if p.MessageID != "abc@example.com" || p.Date == nil || !p.HasAttachments {
		t.Errorf("MessageID %q, Date %v, attachments %v", p.MessageID, p.Date, p.HasAttachments)
	}
	if p.Preview != "你好，世界！" || !strings.Contains(p.SearchText, "你好") {
		t.Errorf("Preview = %q", p.Preview)
	}
	if want := int64(strings.Index(multipart, "\r\n\r\n") + 4); p.HeaderSize != want {
		t.Errorf("HeaderSize = %d, want %d", p.HeaderSize, want)
	}
	// On well-formed mail the structure must match go-imap's own extraction.
	want := imapserver.ExtractBodyStructure(strings.NewReader(multipart))
	defaultEncoding(want)
	if !reflect.DeepEqual(p.BodyStructure, want) {
		t.Errorf("BodyStructure differs from go-imap's:\n got %s\nwant %s", EncodeBodyStructure(p.BodyStructure), EncodeBodyStructure(want))
	}
	round, err := DecodeBodyStructure(EncodeBodyStructure(p.BodyStructure))
	if err != nil || EncodeBodyStructure(round) != EncodeBodyStructure(p.BodyStructure) {
		t.Errorf("body structure round trip: %v", err)
	}
	env, err := DecodeEnvelope(EncodeEnvelope(p.Envelope))
	if err != nil || env.Subject != p.Envelope.Subject || len(env.To) != 2 {
		t.Errorf("envelope round trip: %+v %v", env, err)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, m := range []string{
		"",
		"no header at all",
		"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nbroken",
		"Content-Type: text/plain; charset=x-unknown\r\nContent-Transfer-Encoding: x-weird\r\n\r\nbody\r\n",
		"Subject: =?bogus?q?x?=\r\nFrom: not an address\r\n\r\n",
	} {
		p, err := Parse(strings.NewReader(m))
		if err != nil || p.BodyStructure == nil || p.Envelope == nil {
			t.Errorf("Parse(%q) = %+v, %v", m, p, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(multipart)
	f.Add("Subject: x\r\n\r\nbody")
	f.Add(nulMessage)
	f.Add("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n\r\n--a--")
	f.Add("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\r\n--b--\r\n--a\r\n\r\n--a--")
	f.Fuzz(func(t *testing.T, m string) {
		p, err := Parse(bytes.NewReader([]byte(m)))
		if err != nil {
			t.Fatal(err)
		}
		enc := EncodeBodyStructure(p.BodyStructure)
		if _, err := DecodeBodyStructure(enc); err != nil {
			t.Fatal(err)
		}
		if len(enc) > MaxStructureSize {
			t.Fatalf("structure of %d octets", len(enc))
		}
		// The part limits, made small enough for the fuzzer's messages to pass.
		checkLimited(t, m, p)
		if bad := uncleanStrings(reflect.ValueOf(p), "Parsed"); len(bad) > 0 {
			t.Fatalf("derived strings that are not clean text: %q", bad)
		}
	})
}

// defaultEncoding sets "7bit" where go-imap leaves the encoding empty (it writes
// "7bit" for an empty one), including inside attached messages.
func defaultEncoding(bs imap.BodyStructure) {
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for _, c := range b.Children {
			defaultEncoding(c)
		}
	case *imap.BodyStructureSinglePart:
		if b.Encoding == "" {
			b.Encoding = "7bit"
		}
		if b.MessageRFC822 != nil {
			defaultEncoding(b.MessageRFC822.BodyStructure)
		}
	}
}
