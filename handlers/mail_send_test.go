package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/api/apitest"
	"github.com/mailgate/mailgate/handlers"
)

// pdf is a small file with every byte value, to prove downloads byte-identical.
func pdf() []byte {
	b := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	for i := 0; i < 3000; i++ {
		b = append(b, byte(i*7))
	}
	return append(b, "\n%%EOF\n"...)
}

func TestSendReadDownload(t *testing.T) {
	m := newMailEnv(t)
	file := pdf()
	res := m.send("alice", map[string]any{
		"to":      []any{"bob@example.com", map[string]string{"name": "Das Team", "email": "team@example.com"}, "nobody@example.com"},
		"cc":      []string{"Remote Person <someone@remote.example>"},
		"bcc":     []string{"carol@example.com"},
		"subject": "Quartalsbericht März ✓",
		"text":    "Hallo Bob,\nanbei der Bericht.",
		"html":    `<p onclick="steal()">Hallo <b>Bob</b></p><script>alert(1)</script><img src="https://tracker.example/p.gif"><img src="cid:chart">`,
		"attachments": []map[string]any{
			{"filename": "Rechnung März 中文.pdf", "content_type": "application/pdf", "content": b64(file)},
			{"filename": "chart.png", "content_type": "image/png", "content": b64([]byte("\x89PNG fake")), "inline": true, "content_id": "chart"},
		},
		"headers": map[string]string{"X-Campaign": "q3", "In-Reply-To": "<earlier@example.com>"},
	})
	if len(res.Accepted) != 3 || res.Accepted[0] != "bob@example.com" || res.Accepted[1] != "team@example.com" || res.Accepted[2] != "carol@example.com" {
		t.Errorf("accepted %v", res.Accepted)
	}
	if len(res.Queued) != 1 || res.Queued[0] != "someone@remote.example" {
		t.Errorf("queued %v", res.Queued)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Address != "nobody@example.com" || res.Rejected[0].Reason != "no such user here" {
		t.Errorf("rejected %v", res.Rejected)
	}
	if res.ID == "" || !strings.HasSuffix(res.MessageID, "@"+apitest.Hostname) {
		t.Fatalf("result %+v", res)
	}

	// Bob is in to and in the group: one copy. Carol got it by the group and bcc: one copy.
	for _, u := range []string{"bob", "carol"} {
		items := m.list(u, "")
		if len(items) != 1 || items[0].Subject != "Quartalsbericht März ✓" || !items[0].HasAttachments || items[0].Seen {
			t.Fatalf("%s's INBOX: %+v", u, items)
		}
	}
	sent := m.list("alice", q("mailbox", "Sent"))
	if len(sent) != 1 || sent[0].ID != res.ID || !sent[0].Seen {
		t.Fatalf("alice's Sent: %+v", sent)
	}
	if m.mailbox("alice", "INBOX").Total != 0 {
		t.Fatal("the sender got a copy in its INBOX")
	}

	item := m.list("bob", "")[0]
	var d handlers.MessageDetail
	m.Do("GET", "/api/v1/messages/"+item.ID, nil, m.tok["bob"]).Want(200).JSON(&d)
	if d.Subject != "Quartalsbericht März ✓" || d.Text != "Hallo Bob,\r\nanbei der Bericht." && d.Text != "Hallo Bob,\nanbei der Bericht." {
		t.Errorf("subject %q text %q", d.Subject, d.Text)
	}
	if len(d.From) != 1 || d.From[0].Email != "alice@example.com" || d.From[0].Name != "Alice Example" {
		t.Errorf("from %+v", d.From)
	}
	if len(d.To) != 3 || d.To[1].Name != "Das Team" || len(d.Cc) != 1 || d.Cc[0].Email != "someone@remote.example" {
		t.Errorf("to %+v cc %+v", d.To, d.Cc)
	}
	if d.MessageIDHeader != res.MessageID || len(d.InReplyTo) != 1 || d.InReplyTo[0] != "earlier@example.com" {
		t.Errorf("message_id %q in_reply_to %v", d.MessageIDHeader, d.InReplyTo)
	}
	for _, h := range d.Headers {
		if strings.EqualFold(h.Name, "Bcc") || strings.Contains(h.Value, "carol") {
			t.Errorf("the Bcc recipient shows in %s: %s", h.Name, h.Value)
		}
	}
	if !strings.Contains(d.HTML, "<script>") || strings.Contains(d.HTMLSanitized, "script") || strings.Contains(d.HTMLSanitized, "onclick") ||
		strings.Contains(d.HTMLSanitized, "tracker.example") || !strings.Contains(d.HTMLSanitized, `src="cid:chart"`) || !strings.Contains(d.HTMLSanitized, "<b>Bob</b>") {
		t.Errorf("html_sanitized %q", d.HTMLSanitized)
	}
	if len(d.Attachments) != 2 {
		t.Fatalf("attachments %+v", d.Attachments)
	}
	var pdfAtt, png handlers.Attachment
	for _, a := range d.Attachments {
		if a.ContentID == "chart" {
			png = a
		} else {
			pdfAtt = a
		}
	}
	if pdfAtt.Filename != "Rechnung März 中文.pdf" || pdfAtt.ContentType != "application/pdf" || pdfAtt.Size != int64(len(file)) || pdfAtt.Inline {
		t.Errorf("pdf attachment %+v", pdfAtt)
	}
	if !png.Inline || png.Filename != "chart.png" {
		t.Errorf("inline image %+v", png)
	}

	r := m.Do("GET", "/api/v1/messages/"+item.ID+"/attachments/"+strconv.Itoa(pdfAtt.Index), nil, m.tok["bob"]).Want(200)
	if !bytes.Equal(r.Body, file) {
		t.Fatalf("downloaded %d bytes, not the %d sent", len(r.Body), len(file))
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/pdf" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.Contains(cd, `filename*=UTF-8''Rechnung%20M%C3%A4rz%20%E4%B8%AD%E6%96%87.pdf`) || !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("Content-Disposition %q", cd)
	}
	m.Do("GET", "/api/v1/messages/"+item.ID+"/attachments/7", nil, m.tok["bob"]).Want(404)
	wantField(t, m.Do("GET", "/api/v1/messages/"+item.ID+"/attachments/x", nil, m.tok["bob"]), 400, "index")

	raw := m.Do("GET", "/api/v1/messages/"+item.ID+"/raw", nil, m.tok["bob"]).Want(200)
	if raw.Header.Get("Content-Type") != "message/rfc822" || int64(len(raw.Body)) != item.Size {
		t.Fatalf("raw: %q, %d bytes, size %d", raw.Header.Get("Content-Type"), len(raw.Body), item.Size)
	}
	stored, err := m.Mailbox.Message(context.Background(), m.user("bob").ID, item.ID)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := m.Mailbox.OpenMessage(context.Background(), stored)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	want.ReadFrom(rd)
	if !bytes.Equal(raw.Body, want.Bytes()) || !bytes.HasPrefix(raw.Body, []byte("Return-Path: <alice@example.com>\r\n")) {
		t.Fatalf("raw differs from the stored bytes")
	}
	// The wire form: RFC 2047 subject, RFC 2231 file name, no Bcc.
	for _, want := range []string{"Subject: =?utf-8?q?Quartalsbericht_M=C3=A4rz_=E2=9C=93?=", "filename*0*=utf-8''Rechnung%20M%C3%A4rz%20", "multipart/related", "multipart/alternative", "X-Campaign: q3"} {
		if !bytes.Contains(raw.Body, []byte(want)) {
			t.Errorf("raw message lacks %q", want)
		}
	}
	if bytes.Contains(bytes.ToLower(raw.Body), []byte("\r\nbcc:")) {
		t.Error("raw message has a Bcc field")
	}
}

func TestSendForm(t *testing.T) {
	m := newMailEnv(t)
	file := pdf()
	body, ct := form(t,
		"to", "bob@example.com, Team <team@example.com>",
		"cc", "carol@example.com",
		"subject", "Form ✓",
		"text", "plain body",
		"html", `<p>see <img src="cid:logo.png"></p>`,
		"headers", "X-Source: browser",
		"attachments", "@Bericht 2024 — März.pdf:application/octet-stream:"+string(file),
		"inline", "@logo.png:image/png:PNGDATA",
	)
	var res handlers.SendResult
	m.Do("POST", "/api/v1/messages", body, m.tok["alice"], "Content-Type", ct).Want(202).JSON(&res)
	if len(res.Accepted) != 3 || len(res.Rejected) != 0 {
		t.Fatalf("result %+v", res)
	}
	items := m.list("carol", "")
	if len(items) != 1 {
		t.Fatalf("carol has %d messages", len(items))
	}
	var d handlers.MessageDetail
	m.Do("GET", "/api/v1/messages/"+items[0].ID, nil, m.tok["carol"]).Want(200).JSON(&d)
	if d.Subject != "Form ✓" || len(d.Attachments) != 2 {
		t.Fatalf("detail %+v", d)
	}
	for _, a := range d.Attachments {
		switch a.Filename {
		case "Bericht 2024 — März.pdf":
			if a.ContentType != "application/pdf" { // guessed from the name: the form said octet-stream
				t.Errorf("pdf type %q", a.ContentType)
			}
			r := m.Do("GET", "/api/v1/messages/"+items[0].ID+"/attachments/"+strconv.Itoa(a.Index), nil, m.tok["carol"]).Want(200)
			if !bytes.Equal(r.Body, file) {
				t.Error("form attachment not byte-identical")
			}
		case "logo.png":
			if !a.Inline || a.ContentID != "logo.png" {
				t.Errorf("inline %+v", a)
			}
		default:
			t.Errorf("unexpected attachment %+v", a)
		}
	}
	found := false
	for _, h := range d.Headers {
		found = found || h.Name == "X-Source" && h.Value == "browser"
	}
	if !found {
		t.Error("form header lost")
	}

	// Form mistakes are named like JSON ones.
	for _, c := range []struct {
		fields []string
		field  string
	}{
		{[]string{"subject", "no recipient"}, "to"},
		{[]string{"to", "not an address"}, "to[0]"},
		{[]string{"to", "bob@example.com", "colour", "blue"}, "colour"},
		{[]string{"to", "bob@example.com", "subject", "a", "subject", "b"}, "subject"},
		{[]string{"to", "bob@example.com", "headers", "no colon"}, "headers[0]"},
		{[]string{"to", "bob@example.com", "headers", "Received: forged"}, "headers.Received"},
		{[]string{"to", "bob@example.com", "attachments", "@x.bin:text/html; charset:<>"}, "attachments[0].content_type"},
	} {
		body, ct := form(t, c.fields...)
		wantField(t, m.Do("POST", "/api/v1/messages", body, m.tok["alice"], "Content-Type", ct), 400, c.field)
	}
	m.Do("POST", "/api/v1/messages", "to=bob@example.com", m.tok["alice"], "Content-Type", "application/x-www-form-urlencoded").Want(415)
}

func TestSendRejectsBadInput(t *testing.T) {
	m := newMailEnv(t)
	ok := map[string]any{"to": []string{"bob@example.com"}, "subject": "s", "text": "t"}
	with := func(k string, v any) map[string]any {
		out := map[string]any{}
		for k, v := range ok {
			out[k] = v
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	att := func(a map[string]any) []map[string]any {
		base := map[string]any{"filename": "a.txt", "content": b64([]byte("hello"))}
		for k, v := range a {
			base[k] = v
		}
		return []map[string]any{base}
	}
	for _, c := range []struct {
		body  any
		field string
	}{
		{with("to", nil), "to"},
		{with("to", []string{}), "to"},
		{with("to", []string{"not-an-address"}), "to[0]"},
		{with("to", []string{"bob@example.com", "x@@y"}), "to[1]"},
		{with("to", []any{map[string]string{"name": "Bob"}}), "to[0]"},
		{with("cc", []string{"Bob <bob@>"}), "cc[0]"},
		{with("bcc", "bob@example.com"), "bcc"},
		{with("from", "nobody at all"), "from"},
		{with("subject", "two\nlines"), "subject"},
		{with("colour", "blue"), "colour"},
		{with("attachments", att(map[string]any{"content": "not base64!"})), "attachments[0].content"},
		{with("attachments", att(map[string]any{"content": "aGVsbG8"})), "attachments[0].content"},
		{with("attachments", att(map[string]any{"content": 42})), "attachments[0].content"},
		{with("attachments", att(map[string]any{"size": 5})), "attachments[0].size"},
		{with("attachments", att(map[string]any{"content_type": "pdf"})), "attachments[0].content_type"},
		{with("attachments", att(map[string]any{"content_type": "multipart/mixed"})), "attachments[0].content_type"},
		{with("attachments", att(map[string]any{"filename": "a\r\nb.txt"})), "attachments[0].filename"},
		{with("attachments", att(map[string]any{"content_id": "a b"})), "attachments[0].content_id"},
		{with("headers", map[string]string{"Received": "from evil"}), "headers.Received"},
		{with("headers", map[string]string{"Content-Type": "text/html"}), "headers.Content-Type"},
		{with("headers", map[string]string{"Return-Path": "<x@y>"}), "headers.Return-Path"},
		{with("headers", map[string]string{"From": "ceo@example.com"}), "headers.From"},
		{with("headers", map[string]string{"X-Ok": "a\r\nBcc: x@y"}), "headers.X-Ok"},
		{with("headers", map[string]string{"Bad Name": "x"}), "headers.Bad Name"},
	} {
		wantField(t, m.Do("POST", "/api/v1/messages", c.body, m.tok["alice"]), 400, c.field)
	}
	for _, raw := range []string{"", "{", "[]", `{"to":["bob@example.com"]} {}`} {
		m.Do("POST", "/api/v1/messages", raw, m.tok["alice"]).Want(400)
	}
	wantField(t, m.Do("POST", "/api/v1/messages", ok, m.tok["alice"], "Idempotency-Key", strings.Repeat("k", 300)), 400, "Idempotency-Key")
	// A sender the user does not own is 403, naming from; a group it belongs to is fine.
	wantField(t, m.Do("POST", "/api/v1/messages", with("from", "team@example.com"), m.tok["alice"]), 403, "from")
	wantField(t, m.Do("POST", "/api/v1/messages", with("from", "admin@example.com"), m.tok["alice"]), 403, "from")
	// No recipient that can get it: 422 with the reasons, and nothing stored.
	r := m.Do("POST", "/api/v1/messages", with("to", []string{"ghost@example.com", "ghost2@example.com"}), m.tok["alice"]).Want(422)
	if r.ErrorCode() != handlers.CodeNoRecipients || !strings.Contains(string(r.Body), "ghost2@example.com: no such user here") {
		t.Fatalf("422 body %s", r.Body)
	}
	for _, u := range []string{"alice", "bob"} {
		for _, mb := range []string{"INBOX", "Sent"} {
			if n := m.mailbox(u, mb).Total; n != 0 {
				t.Errorf("%s's %s holds %d messages after refused sends", u, mb, n)
			}
		}
	}
	// A group sender works and bob (a member) sees the group in From.
	res := m.send("bob", with("from", "Team <team@example.com>"))
	var d handlers.MessageDetail
	m.Do("GET", "/api/v1/messages/"+m.list("bob", "")[0].ID, nil, m.tok["bob"]).Want(200).JSON(&d)
	if d.From[0].Email != "team@example.com" || d.From[0].Name != "Team" || res.ID == "" {
		t.Fatalf("group sender: from %+v", d.From)
	}
}

func TestSendTooLarge(t *testing.T) {
	e := apitest.Setup(t)
	e.MaxMessageBytes = 64 << 10
	m := startMailEnv(e)
	big := b64(bytes.Repeat([]byte("x"), 70<<10))
	body := map[string]any{"to": []string{"bob@example.com"}, "attachments": []map[string]any{{"filename": "big.bin", "content": big}}}
	if code := m.Do("POST", "/api/v1/messages", body, m.tok["alice"]).Want(413).ErrorCode(); code != "payload_too_large" {
		t.Fatalf("code %q", code)
	}
	// Without Content-Length the limit stops the upload as it streams.
	req, _ := http.NewRequest("POST", m.Server.URL+"/api/v1/messages", strings.NewReader(`{"to":["bob@example.com"],"text":"`+strings.Repeat("y", 80<<10)+`"}`))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+m.tok["alice"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked upload over the limit: %d", resp.StatusCode)
	}
	// A form under the request limit whose message (base64 grows it by a
	// third) would pass the limit.
	fb, ct := form(t, "to", "bob@example.com", "attachments", "@f.bin:application/octet-stream:"+strings.Repeat("z", 55<<10))
	m.Do("POST", "/api/v1/messages", fb, m.tok["alice"], "Content-Type", ct).Want(413)
	if n := m.mailbox("bob", "INBOX").Total + m.mailbox("alice", "Sent").Total; n != 0 {
		t.Fatalf("%d messages stored after 413s", n)
	}
	m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "text": "small is fine"})
}

func TestSendIdempotency(t *testing.T) {
	m := newMailEnv(t)
	body := map[string]any{"to": []string{"bob@example.com"}, "subject": "once", "attachments": []map[string]any{{"filename": "a.txt", "content": b64([]byte("A"))}}}
	r1 := m.Do("POST", "/api/v1/messages", body, m.tok["alice"], "Idempotency-Key", "key-1").Want(202)
	r2 := m.Do("POST", "/api/v1/messages", body, m.tok["alice"], "Idempotency-Key", "key-1").Want(202)
	if !bytes.Equal(r1.Body, r2.Body) || r2.Header.Get("Idempotent-Replayed") != "true" || r1.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("replay: %s / %s (%q)", r1.Body, r2.Body, r2.Header.Get("Idempotent-Replayed"))
	}
	if n := len(m.list("bob", "")); n != 1 {
		t.Fatalf("bob got %d messages for one idempotent send", n)
	}
	// The same key for another message is refused; another user's key is its own.
	changed := map[string]any{"to": []string{"bob@example.com"}, "subject": "twice?"}
	if code := m.Do("POST", "/api/v1/messages", changed, m.tok["alice"], "Idempotency-Key", "key-1").Want(422).ErrorCode(); code != handlers.CodeIdempotencyMismatch {
		t.Fatalf("code %q", code)
	}
	m.Do("POST", "/api/v1/messages", changed, m.tok["carol"], "Idempotency-Key", "key-1").Want(202)
	// A refused send leaves the key free: the corrected retry goes through.
	bad := map[string]any{"to": []string{"ghost@example.com"}, "subject": "k2"}
	m.Do("POST", "/api/v1/messages", bad, m.tok["alice"], "Idempotency-Key", "key-2").Want(422)
	var k2 handlers.SendResult
	m.Do("POST", "/api/v1/messages", map[string]any{"to": []string{"ghost@example.com", "bob@example.com"}, "subject": "k2"}, m.tok["alice"], "Idempotency-Key", "key-2").Want(202).JSON(&k2)
	if len(k2.Accepted) != 1 || len(k2.Rejected) != 1 {
		t.Fatalf("retry after a refused send: %+v", k2)
	}

	// The same form twice (new boundary each time) is the same request.
	fb1, ct1 := form(t, "to", "carol@example.com", "subject", "form once", "attachments", "@f.txt:text/plain:F")
	fb2, ct2 := form(t, "to", "carol@example.com", "subject", "form once", "attachments", "@f.txt:text/plain:F")
	m.Do("POST", "/api/v1/messages", fb1, m.tok["alice"], "Content-Type", ct1, "Idempotency-Key", "form-1").Want(202)
	m.Do("POST", "/api/v1/messages", fb2, m.tok["alice"], "Content-Type", ct2, "Idempotency-Key", "form-1").Want(202)

	// Racing retries: exactly one message, every answer 202 (first or replay) or 409 (still running).
	race := map[string]any{"to": []string{"carol@example.com"}, "subject": "race"}
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = m.Do("POST", "/api/v1/messages", race, m.tok["alice"], "Idempotency-Key", "race-1").Status
		}()
	}
	wg.Wait()
	for _, c := range codes {
		if c != 202 && c != 409 {
			t.Fatalf("racing retries answered %v", codes)
		}
	}
	n := 0
	for _, it := range m.list("carol", "") {
		if it.Subject == "race" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("racing retries delivered %d copies", n)
	}
}

// TestSendSentCopyQuota: the sender's copy in Sent counts against its quota:
// a send that cannot keep it fails whole with 422 quota_exceeded, and no
// recipient, local or remote, gets anything.
func TestSendSentCopyQuota(t *testing.T) {
	m := newMailEnv(t)
	admin := m.AdminToken
	m.Do("PATCH", "/api/v1/users/alice@example.com", map[string]any{"quota_bytes": 2000}, admin).Want(200)
	text := strings.Repeat("quota ", 150) // about 900 bytes with the headers: two fit, not three
	var sent int64
	for i := 0; i < 3; i++ {
		r := m.Do("POST", "/api/v1/messages", map[string]any{"to": []string{"bob@example.com", "x@remote.example"},
			"subject": "filling", "text": text}, m.tok["alice"])
		if r.Status == 202 {
			sent++
			continue
		}
		r.Want(422)
		if code := r.ErrorCode(); code != "quota_exceeded" {
			t.Fatalf("send %d: code %q", i, code)
		}
		break
	}
	if sent == 0 || sent == 3 {
		t.Fatalf("%d sends kept; want the ones whose Sent copy fits (1 or 2)", sent)
	}
	var queue struct{ Items []map[string]any }
	m.Do("GET", "/api/v1/queue", nil, admin).Want(200).JSON(&queue)
	if int64(len(queue.Items)) != sent {
		t.Errorf("the queue holds %d entries for %d sends: a refused send was queued", len(queue.Items), sent)
	}
	if got := m.mailbox("alice", "Sent").Total; got != sent {
		t.Errorf("Sent holds %d, want %d", got, sent)
	}
	if got := m.mailbox("bob", "INBOX").Total; got != sent {
		t.Errorf("bob got %d, want %d: a refused send reached him", got, sent)
	}
	if used := m.mailbox("alice", "Sent").Size; used > 2000 {
		t.Errorf("alice holds %d bytes over a 2000-byte quota", used)
	}
}
