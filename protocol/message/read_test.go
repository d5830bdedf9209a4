package message

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

func TestDecodeCharsets(t *testing.T) {
	cases := []struct {
		charset string
		enc     encoding.Encoding
		text    string
	}{
		{"utf-8", nil, "Grüße, 你好, привет"},
		{"gbk", simplifiedchinese.GBK, "你好，世界！季度报告"},
		{"gb2312", simplifiedchinese.GBK, "你好世界"},
		{"gb18030", simplifiedchinese.GB18030, "你好，世界 𠀀"},
		{"big5", traditionalchinese.Big5, "你好，世界！報告"},
		{"iso-8859-1", charmap.ISO8859_1, "Grüße aus Köln"},
		{"iso-8859-2", charmap.ISO8859_2, "Zażółć gęślą jaźń"},
		{"iso-8859-15", charmap.ISO8859_15, "Prix: 10 €"},
		{"windows-1252", charmap.Windows1252, "“Quotes” – 10 €"},
		{"windows-1251", charmap.Windows1251, "Привет, мир"},
		{"koi8-r", charmap.KOI8R, "Привет, мир"},
		{"shift_jis", japanese.ShiftJIS, "こんにちは世界"},
		{"euc-jp", japanese.EUCJP, "こんにちは世界"},
		{"iso-2022-jp", japanese.ISO2022JP, "こんにちは世界"},
		{"euc-kr", korean.EUCKR, "안녕하세요 세계"},
	}
	for _, c := range cases {
		raw := []byte(c.text)
		if c.enc != nil {
			var err error
			if raw, err = c.enc.NewEncoder().Bytes(raw); err != nil {
				t.Fatalf("%s: %v", c.charset, err)
			}
		}
		subject := "=?" + c.charset + "?b?" + base64.StdEncoding.EncodeToString(raw) + "?="
		for _, cte := range []string{"base64", "quoted-printable", "8bit"} {
			var body bytes.Buffer
			switch cte {
			case "base64":
				body.WriteString(base64.StdEncoding.EncodeToString(raw))
			case "quoted-printable":
				w := quotedprintable.NewWriter(&body)
				w.Write(raw)
				w.Close()
			default:
				body.Write(raw)
			}
			msg := "From: =?" + c.charset + "?b?" + base64.StdEncoding.EncodeToString(raw) + "?= <a@example.com>\r\n" +
				"Subject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
				"Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: text/plain; charset=" + c.charset + "\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + body.String() + "\r\n" +
				"--b\r\nContent-Type: text/html; charset=\"" + strings.ToUpper(c.charset) + "\"\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + body.String() + "\r\n--b--\r\n"
			d, err := Decode(strings.NewReader(msg))
			if err != nil {
				t.Fatalf("%s/%s: %v", c.charset, cte, err)
			}
			if d.Subject != c.text || d.From[0].Name != c.text || strings.TrimSpace(d.Text) != c.text || strings.TrimSpace(d.HTML) != c.text {
				t.Errorf("%s/%s: subject %q from %q text %q html %q, want %q", c.charset, cte, d.Subject, d.From[0].Name, d.Text, d.HTML, c.text)
			}
		}
	}
}

const nested = "From: a@example.com\r\nTo: b@example.com\r\nSubject: parts\r\nMessage-ID: <m1@example.com>\r\n" +
	"In-Reply-To: <p0@example.com>\r\nReferences: <p-1@example.com> <p0@example.com>\r\nReply-To: Replies <r@example.com>\r\n" +
	"Date: Wed, 01 May 2024 10:00:00 +0200\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
	"--outer\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n" +
	"--rel\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n" +
	"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain body\r\n" +
	"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html <img src=\"cid:img1@x\"></p>\r\n--alt--\r\n" +
	"--rel\r\nContent-Type: image/png\r\nContent-ID: <img1@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--rel--\r\n" +
	"--outer\r\nContent-Type: application/pdf; name=\"=?utf-8?q?R=C3=A9sum=C3=A9.pdf?=\"\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
	"--outer\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment; filename*=iso-8859-1''caf%E9.txt\r\n\r\ncaf\xe9\r\n" +
	"--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@example.com\r\nSubject: inner\r\n\r\ninner body\r\n" +
	"--outer--\r\n"

func TestDecodeStructure(t *testing.T) {
	d, err := Decode(strings.NewReader(nested))
	if err != nil {
		t.Fatal(err)
	}
	if d.Text != "plain body" || !strings.Contains(d.HTML, "cid:img1@x") || d.MessageID != "m1@example.com" ||
		strings.Join(d.InReplyTo, ",") != "p0@example.com" || strings.Join(d.References, ",") != "p-1@example.com,p0@example.com" ||
		d.ReplyTo[0].Name != "Replies" || d.Date == nil || d.Date.Hour() != 8 {
		t.Fatalf("decoded %+v", d)
	}
	want := []AttachmentInfo{
		{Index: 0, Filename: "", ContentType: "image/png", Size: 8, ContentID: "img1@x", Inline: true},
		{Index: 1, Filename: "Résumé.pdf", ContentType: "application/pdf", Size: 9},
		{Index: 2, Filename: "café.txt", ContentType: "text/plain; charset=iso-8859-1", Size: 4},
		{Index: 3, Filename: "", ContentType: "message/rfc822", Size: int64(len("From: c@example.com\r\nSubject: inner\r\n\r\ninner body"))},
	}
	if len(d.Attachments) != len(want) {
		t.Fatalf("attachments %+v", d.Attachments)
	}
	for i := range want {
		if d.Attachments[i] != want[i] {
			t.Errorf("attachment %d: %+v, want %+v", i, d.Attachments[i], want[i])
		}
	}
	if d.Headers[2].Name != "Subject" || d.Headers[2].Value != "parts" {
		t.Errorf("headers %+v", d.Headers[:3])
	}
	// Each attachment streams decoded, found by the same walk.
	for i, body := range []string{"\x89PNG\r\n\x1a\n", "%PDF-1.4\n", "caf\xe9"} {
		var got bytes.Buffer
		err := StreamAttachment(strings.NewReader(nested), i, func(a *AttachmentInfo) (io.Writer, error) {
			if a.Index != i {
				t.Errorf("open called for %d, asked %d", a.Index, i)
			}
			return &got, nil
		})
		if err != nil || got.String() != body {
			t.Errorf("attachment %d: %q, %v", i, got.String(), err)
		}
	}
	called := false
	err = StreamAttachment(strings.NewReader(nested), 4, func(*AttachmentInfo) (io.Writer, error) { called = true; return io.Discard, nil })
	if !errors.Is(err, ErrNoAttachment) || called {
		t.Fatalf("index past the end: %v (open called: %v)", err, called)
	}
}

func TestDecodeMalformed(t *testing.T) {
	for name, msg := range map[string]string{
		"no header":        "just text\r\n",
		"empty":            "",
		"no end boundary":  "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n",
		"unknown charset":  "Content-Type: text/plain; charset=x-klingon\r\n\r\nhello\r\n",
		"unknown encoding": "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nhello\r\n",
		"bad base64":       "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nhe!!o====\r\n",
		"invalid utf-8":    "Content-Type: text/plain; charset=utf-8\r\n\r\nbad \xff\xfe bytes\r\n",
		"bad content-type": "Content-Type: ;;;\r\n\r\nhello\r\n",
		"deep":             strings.Repeat("Content-Type: multipart/mixed; boundary=d\r\n\r\n--d\r\n", 40) + "\r\nhello\r\n",
	} {
		d, err := Decode(strings.NewReader(msg))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.Contains(msg, "hello") && !strings.Contains(d.Text, "hello") && len(d.Attachments) == 0 && name != "bad base64" {
			t.Errorf("%s: text %q lost", name, d.Text)
		}
	}
	// An HTML part without a declared charset may name one in <meta>.
	html, _ := charmap.Windows1252.NewEncoder().Bytes([]byte(`<html><head><meta charset="windows-1252"></head><body>“café”</body></html>`))
	d, err := Decode(strings.NewReader("Content-Type: text/html\r\n\r\n" + string(html)))
	if err != nil || !strings.Contains(d.HTML, "“café”") {
		t.Fatalf("meta charset: %q %v", d.HTML, err)
	}
}

func TestDecodeTruncatesHugeText(t *testing.T) {
	big := strings.Repeat("ä", MaxDisplayText/2+10)
	d, err := Decode(strings.NewReader("Content-Type: text/plain; charset=utf-8\r\n\r\n" + big))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Truncated || len(d.Text) > MaxDisplayText || !strings.HasSuffix(d.Text, "ä") {
		t.Fatalf("truncated=%v len=%d", d.Truncated, len(d.Text))
	}
}

func TestSanitizeHTML(t *testing.T) {
	for _, c := range []struct{ in, keep, drop string }{
		{`<p onclick="x()">hi</p>`, "<p>hi</p>", "onclick"},
		{`<script>alert(1)</script>ok`, "ok", "alert"},
		{`<img src="https://tracker.example/p.gif" alt="t">`, "", "tracker"},
		{`<img src="//tracker.example/p.gif">`, "", "tracker"},
		{`<img src="/relative.gif">`, "", "relative"},
		{`<img src="cid:part1@x">`, `src="cid:part1@x"`, ""},
		{`<img src="data:image/png;base64,iVBORw0KGgo=">`, "data:image/png", ""},
		{`<div style="background-image:url(https://t.example/x)">x</div>`, "x", "t.example"},
		{`<p style="color: red; position: fixed">x</p>`, "color: red", "position"},
		{`<a href="javascript:alert(1)">x</a>`, "x", "javascript"},
		{`<a href="https://example.com/">x</a>`, `rel="nofollow noreferrer noopener"`, ""},
		{`<iframe src="https://e.example"></iframe><object data="x"></object><form action="y"><input></form>`, "", "e.example"},
		{`<link rel="stylesheet" href="https://css.example/a.css"><style>@import url(https://css.example/b.css)</style>`, "", "css.example"},
		{`<table bgcolor="#ffffff" width="100%"><tr><td align="center">cell</td></tr></table>`, `bgcolor="#ffffff"`, ""},
		{`<svg onload="x()"><use href="https://e.example/s.svg"/></svg>`, "", "e.example"},
	} {
		got := SanitizeHTML(c.in)
		if c.keep != "" && !strings.Contains(got, c.keep) || c.drop != "" && strings.Contains(got, c.drop) {
			t.Errorf("SanitizeHTML(%q) = %q", c.in, got)
		}
	}
}

// FuzzDecode feeds Decode and StreamAttachment arbitrary messages: they must not
// fail on anything a sender can write, and must agree on the attachments.
func FuzzDecode(f *testing.F) {
	f.Add(nested)
	f.Add(multipart)
	f.Add("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n--x--")
	f.Add("Subject: =?utf-8?q?=FF?=\r\nContent-Type: text/html; charset=gbk\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C4=E3=\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		// Also with a part limit small enough for the fuzzer's messages to pass.
		for _, maxParts := range []int{MaxParts, 1, 2} {
			d, err := decode(strings.NewReader(msg), maxParts)
			if err != nil {
				t.Fatalf("Decode: %v", err) // only a failing reader may fail it
			}
			for _, a := range d.Attachments[:min(len(d.Attachments), 8)] { // each one re-reads the message
				n := int64(0)
				err := streamAttachment(strings.NewReader(msg), a.Index, func(*AttachmentInfo) (io.Writer, error) {
					return writerFunc(func(p []byte) (int, error) { n += int64(len(p)); return len(p), nil }), nil
				}, maxParts)
				if err != nil || n != a.Size {
					t.Fatalf("attachment %d: streamed %d of %d bytes: %v", a.Index, n, a.Size, err)
				}
			}
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
