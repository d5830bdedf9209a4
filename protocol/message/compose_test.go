package message

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

func compose(t *testing.T, d *Draft) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Compose(&buf, d); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// shape renders a message's MIME tree: type(child,child…).
func shape(t *testing.T, raw []byte) string {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return entityShape(t, e)
}

func entityShape(t *testing.T, e *gomessage.Entity) string {
	mt, _, _ := e.Header.ContentType()
	mr := e.MultipartReader()
	if mr == nil {
		io.Copy(io.Discard, e.Body)
		return mt
	}
	var kids []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, entityShape(t, p))
	}
	return mt + "(" + strings.Join(kids, ",") + ")"
}

func TestComposeStructure(t *testing.T) {
	file := Attachment{Filename: "a.pdf", Body: Bytes("%PDF")}
	img := Attachment{Filename: "logo.png", Inline: true, ContentID: "logo", Body: Bytes("PNG")}
	cases := []struct {
		d    Draft
		want string
	}{
		{Draft{Text: "t"}, "text/plain"},
		{Draft{}, "text/plain"},
		{Draft{HTML: "<p>h</p>"}, "text/html"},
		{Draft{Text: "t", HTML: "<p>h</p>"}, "multipart/alternative(text/plain,text/html)"},
		{Draft{Text: "t", Attachments: []Attachment{file}}, "multipart/mixed(text/plain,application/pdf)"},
		{Draft{Text: "t", HTML: "h", Attachments: []Attachment{file, img}},
			"multipart/mixed(multipart/related(multipart/alternative(text/plain,text/html),image/png),application/pdf)"},
		{Draft{HTML: "h", Attachments: []Attachment{img}}, "multipart/related(text/html,image/png)"},
		// An inline image with nothing to show it in is an attachment shown inline.
		{Draft{Text: "t", Attachments: []Attachment{img}}, "multipart/mixed(text/plain,image/png)"},
	}
	for _, c := range cases {
		c.d.From = Address{Email: "a@example.com"}
		c.d.To = []Address{{Email: "b@example.com"}}
		if got := shape(t, compose(t, &c.d)); got != c.want {
			t.Errorf("got %s, want %s", got, c.want)
		}
	}
	raw := compose(t, &Draft{From: Address{Email: "a@example.com"}, HTML: "h", Attachments: []Attachment{img}})
	if !bytes.Contains(raw, []byte(`multipart/related; type="text/html"`)) {
		t.Errorf("multipart/related without its root's type:\n%s", raw)
	}
}

func TestComposeHeadersAndEncodings(t *testing.T) {
	long := strings.Repeat("Jahresabschluss Übersicht 年度报告 ", 4) + ".pdf"
	body := bytes.Repeat([]byte{0, 1, 2, 250, 255, '\n', '\r'}, 500)
	d := &Draft{
		From:    Address{Name: "Jürgen Groß", Email: "j@example.com"},
		To:      []Address{{Name: "张三", Email: "z@example.com"}, {Email: "b@example.com"}},
		Cc:      []Address{{Name: `Quote "Me", Please`, Email: "c@example.com"}},
		ReplyTo: []Address{{Email: "r@example.com"}},
		Subject: "Grüße ✓ " + strings.Repeat("lang ", 30), Text: "line one\nline two with ü and = and a very long line " + strings.Repeat("x", 200),
		Attachments: []Attachment{{Filename: long, ContentType: "application/pdf", Body: Bytes(body)},
			{Filename: `plain "quoted" name.txt`, ContentType: "text/plain; charset=iso-8859-1", Body: Bytes("caf\xe9")}},
		Headers:  []HeaderField{{"X-Mailer", "mailgate"}, {"X-Note", "héllo"}},
		Date:     time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
		Hostname: "mail.example.com",
	}
	var buf bytes.Buffer
	id, err := Compose(&buf, d)
	if err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	if !strings.HasSuffix(id, "@mail.example.com") {
		t.Errorf("Message-ID %q", id)
	}
	for i, line := range strings.Split(string(raw), "\r\n") {
		if strings.Contains(line, "\n") || strings.Contains(line, "\r") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, line)
		}
		// Longer only where nothing can break: a field name and one encoded-word.
		rest := strings.TrimPrefix(line, " ")
		if k := strings.Index(line, ": "); k > 0 && !strings.HasPrefix(line, " ") {
			rest = line[k+2:]
		}
		if len(line) > 78 && (strings.Contains(rest, " ") || len(line) > 998) {
			t.Errorf("line %d is %d octets: %q", i, len(line), line)
		}
	}
	for _, b := range raw {
		if b >= 0x80 {
			t.Fatal("the message is not 7-bit")
		}
	}

	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := mr.Header
	subj, _ := h.Subject()
	from, _ := h.AddressList("From")
	to, _ := h.AddressList("To")
	cc, _ := h.AddressList("Cc")
	date, _ := h.Date()
	gotID, _ := h.MessageID()
	if subj != d.Subject || from[0].Name != "Jürgen Groß" || to[0].Name != "张三" || cc[0].Name != `Quote "Me", Please` ||
		!date.Equal(d.Date) || gotID != id || h.Get("X-Mailer") != "mailgate" {
		t.Fatalf("header read back: %q %v %v %v %v %q", subj, from, to, cc, date, gotID)
	}
	if note, _ := h.Text("X-Note"); note != "héllo" {
		t.Errorf("X-Note %q", note)
	}
	if h.Has("Bcc") {
		t.Error("Bcc field written")
	}
	var files []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			b, _ := io.ReadAll(p.Body)
			if !strings.HasPrefix(string(b), "line one\r\nline two with ü") {
				t.Errorf("text %q", b)
			}
		case *mail.AttachmentHeader:
			name, err := ph.Filename()
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, name)
			b, _ := io.ReadAll(p.Body)
			if name == long && !bytes.Equal(b, body) {
				t.Error("binary attachment changed")
			}
			if ct := ph.Get("Content-Type"); name != long && !strings.Contains(ct, "charset=iso-8859-1") {
				t.Errorf("text attachment lost its charset: %q", ct)
			}
		}
	}
	if len(files) != 2 || files[0] != long || files[1] != `plain "quoted" name.txt` {
		t.Fatalf("file names read back: %q", files)
	}
	if !bytes.Contains(raw, []byte("filename*0*=utf-8''Jahresabschluss%20%C3%9Cbersicht")) {
		t.Errorf("non-ASCII file name not in RFC 2231 form:\n%s", raw)
	}
}

func TestFormatParams(t *testing.T) {
	for _, name := range []string{"a.pdf", `with "quotes" and \ .txt`, "März.pdf", strings.Repeat("中", 60) + ".pdf", strings.Repeat("é", 100), strings.Repeat("a", 70)} {
		v := FormatParams("attachment", [][2]string{{"filename", name}})
		_, params, err := mime.ParseMediaType(v)
		if err != nil {
			t.Fatalf("%q → %q: %v", name, v, err)
		}
		if params["filename"] != name {
			t.Errorf("%q → %q → %q", name, v, params["filename"])
		}
	}
}

func TestCheckHeaderField(t *testing.T) {
	for _, c := range []struct {
		name, value string
		ok          bool
	}{
		{"X-Campaign", "q3", true},
		{"In-Reply-To", "<a@b>", true},
		{"List-Unsubscribe", "<mailto:u@example.com>", true},
		{"X-Unicode", "héllo", true},
		{"Received", "from evil", false},
		{"RECEIVED", "x", false},
		{"Return-Path", "<a@b>", false},
		{"Content-Type", "text/html", false},
		{"content-transfer-encoding", "8bit", false},
		{"MIME-Version", "1.0", false},
		{"From", "x@y", false},
		{"Sender", "x@y", false},
		{"Bcc", "x@y", false},
		{"Message-ID", "<x@y>", false},
		{"Date", "now", false},
		{"Resent-From", "x@y", false},
		{"DKIM-Signature", "v=1", false},
		{"ARC-Seal", "i=1", false},
		{"Authentication-Results", "pass", false},
		{"X-Ok", "a\r\nBcc: x@y", false},
		{"X-Ok", "a\nb", false},
		{"X-Ok", "nul\x00", false},
		{"Bad Name", "x", false},
		{"Bad:Name", "x", false},
		{"", "x", false},
		{"X-Ü", "x", false},
		{"X-Long", strings.Repeat("v", 4001), false},
	} {
		err := CheckHeaderField(c.name, c.value)
		if (err == nil) != c.ok {
			t.Errorf("CheckHeaderField(%q, %q) = %v", c.name, c.value, err)
		}
	}
}

func TestBuffer(t *testing.T) {
	b := NewBuffer(t.TempDir(), 3<<20)
	defer b.Close()
	chunk := bytes.Repeat([]byte("0123456789"), 100<<10)
	for i := 0; i < 2; i++ {
		if _, err := b.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if b.file == nil || b.mem.Len() != 0 {
		t.Fatal("2 MB stayed in memory")
	}
	got, _ := io.ReadAll(b.Reader())
	if !bytes.Equal(got, append(append([]byte{}, chunk...), chunk...)) || b.Size() != int64(2*len(chunk)) {
		t.Fatal("read back differs")
	}
	if _, err := b.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(chunk); err != ErrTooLarge {
		t.Fatalf("over the limit: %v", err)
	}
}
