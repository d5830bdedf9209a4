package handlers_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/mailgate/mailgate/handlers"
)

func gbk(t testing.TB, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawMessage(from, to, subject, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
}

func TestListFiltersAndSearch(t *testing.T) {
	m := newMailEnv(t)
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	m.appendRaw("bob", "INBOX", rawMessage("Carol <carol@example.com>", "bob@example.com", "Lunch on Friday", "Shall we try the new ramen place?"), base)
	m.appendRaw("bob", "INBOX", rawMessage("Dave <dave@remote.example>", "bob@example.com, team@example.com", "Invoice 2024-17", "Please find the invoice for the blue widgets."), base.Add(time.Hour))
	m.appendRaw("bob", "INBOX", rawMessage("alice@example.com", "team@example.com", "Blue widgets", "Widgets shipped; tracking attached."), base.Add(2*time.Hour))
	// A message in GBK, as Chinese mail often still is: subject in RFC 2047, body base64.
	gbkBody := base64.StdEncoding.EncodeToString(gbk(t, "你好，世界！这是一封测试邮件，关于季度报告。"))
	m.appendRaw("bob", "INBOX", "From: =?gbk?b?"+base64.StdEncoding.EncodeToString(gbk(t, "张三"))+"?= <zhang@remote.example>\r\n"+
		"To: bob@example.com\r\nSubject: =?gbk?b?"+base64.StdEncoding.EncodeToString(gbk(t, "季度报告"))+"?=\r\n"+
		"Date: Tue, 07 May 2024 09:00:00 +0800\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=gbk\r\nContent-Transfer-Encoding: base64\r\n\r\n"+gbkBody+"\r\n", base.Add(3*time.Hour))
	m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "subject": "With a file",
		"attachments": []map[string]any{{"filename": "notes.txt", "content": b64([]byte("notes"))}}})

	subjects := func(items []handlers.MessageSummary) string {
		var s []string
		for _, it := range items {
			s = append(s, it.Subject)
		}
		return strings.Join(s, "|")
	}
	if got := subjects(m.list("bob", "")); got != "With a file|季度报告|Blue widgets|Invoice 2024-17|Lunch on Friday" {
		t.Fatalf("newest first: %s", got)
	}
	cases := []struct{ query, want string }{
		{q("from", "CAROL"), "Lunch on Friday"},
		{q("from", "remote.example"), "季度报告|Invoice 2024-17"},
		{q("to", "team@"), "Blue widgets|Invoice 2024-17"},
		{q("subject", "widgets"), "Blue widgets"},
		{q("subject", "100%_"), ""},
		{q("has_attachments", "true"), "With a file"},
		{q("since", "2024-05-01T13:00:00Z", "before", "2024-05-01T15:00:00Z"), "Blue widgets|Invoice 2024-17"},
		{q("before", "2024-05-01"), ""},
		{q("q", "widgets"), "Blue widgets|Invoice 2024-17"},
		{q("q", "blue invoice"), "Invoice 2024-17"},
		{q("q", "ramen"), "Lunch on Friday"},
		{q("q", "dave@remote.example"), "Invoice 2024-17"},
		{q("q", "世界"), "季度报告"},
		{q("q", "季度报告"), "季度报告"},
		{q("q", "张三"), "季度报告"},
		{q("q", "报告 widgets"), ""},
		{q("q", "file"), "With a file"},
		{q("q", "notes"), ""}, // attachments are not text bodies
		{q("q", "widgets", "from", "alice"), "Blue widgets"},
	}
	for _, c := range cases {
		if got := subjects(m.list("bob", c.query)); got != c.want {
			t.Errorf("%s: %q, want %q", c.query, got, c.want)
		}
	}
	// Whatever the user types is words, never query syntax, on either database.
	for _, s := range []string{`"`, `"unbalanced`, `a AND (`, `*`, `NEAR(a b)`, `-x`, `col:val`, `'`, `\`, `a OR`, `!!!`, `^`, `{}`, "%", "_"} {
		m.Do("GET", "/api/v1/messages?"+q("q", s), nil, m.tok["bob"]).Want(200)
	}
	// Unseen and flagged follow the flags.
	all := m.list("bob", "")
	m.Do("PATCH", "/api/v1/messages/"+all[1].ID, map[string]any{"seen": true, "flagged": true}, m.tok["bob"]).Want(200)
	if got := subjects(m.list("bob", q("unseen", "false"))); got != "季度报告" {
		t.Errorf("seen: %s", got)
	}
	if got := len(m.list("bob", q("unseen", "true"))); got != 4 {
		t.Errorf("unseen: %d", got)
	}
	if got := subjects(m.list("bob", q("flagged", "true"))); got != "季度报告" {
		t.Errorf("flagged: %s", got)
	}

	// The GBK message reads back as UTF-8.
	var d handlers.MessageDetail
	m.Do("GET", "/api/v1/messages/"+all[1].ID, nil, m.tok["bob"]).Want(200).JSON(&d)
	if d.Subject != "季度报告" || !strings.Contains(d.Text, "你好，世界！这是一封测试邮件") || d.From[0].Name != "张三" {
		t.Fatalf("GBK message read as subject %q, text %q, from %+v", d.Subject, d.Text, d.From)
	}

	// Bad parameters name themselves.
	for _, c := range []struct{ query, field string }{
		{q("mailbox", "Nope"), "mailbox"},
		{q("unseen", "maybe"), "unseen"},
		{q("flagged", "2"), "flagged"},
		{q("has_attachments", "yes please"), "has_attachments"},
		{q("since", "yesterday"), "since"},
		{q("before", "2024-13-01"), "before"},
		{q("limit", "0"), "limit"},
		{q("limit", "201"), "limit"},
		{q("cursor", "forged"), "cursor"},
	} {
		wantField(t, m.Do("GET", "/api/v1/messages?"+c.query, nil, m.tok["bob"]), 400, c.field)
	}
	// Mailboxes by name or id; another user's mailbox id is just unknown.
	sent := m.mailbox("alice", "Sent")
	if len(m.list("alice", q("mailbox", sent.ID))) != 1 || len(m.list("alice", q("mailbox", "Sent"))) != 1 || len(m.list("alice", q("mailbox", "inbox"))) != 0 {
		t.Error("mailbox by id or name")
	}
	wantField(t, m.Do("GET", "/api/v1/messages?"+q("mailbox", "sent"), nil, m.tok["alice"]), 400, "mailbox") // names other than INBOX are exact
	wantField(t, m.Do("GET", "/api/v1/messages?"+q("mailbox", sent.ID), nil, m.tok["bob"]), 400, "mailbox")
}

func TestListPagesWhileMailArrives(t *testing.T) {
	m := newMailEnv(t)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 9; i++ {
		// Two messages per second: the id orders messages of the same second.
		m.appendRaw("bob", "INBOX", rawMessage("x@example.com", "bob@example.com", fmt.Sprintf("m%d", i), "."), base.Add(time.Duration(i/2)*time.Second))
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		var p handlers.MessagePage
		m.Do("GET", "/api/v1/messages?"+q("limit", "2", "cursor", cursor, "q", ""), nil, m.tok["bob"]).Want(200).JSON(&p)
		for _, it := range p.Items {
			seen = append(seen, it.Subject)
		}
		if page == 1 {
			// Mail arrives (newer, and one dated in the past, as IMAP APPEND may)
			// and an already listed message goes: the rest of the listing is unmoved.
			m.appendRaw("bob", "INBOX", rawMessage("x@example.com", "bob@example.com", "new", "."), time.Now())
			m.appendRaw("bob", "INBOX", rawMessage("x@example.com", "bob@example.com", "old", "."), base.Add(-time.Hour))
			m.Do("DELETE", "/api/v1/messages/"+p.Items[0].ID, nil, m.tok["bob"]).Want(204)
		}
		if p.NextCursor == "" {
			break
		}
		if page > 10 {
			t.Fatal("paging does not end")
		}
		cursor = p.NextCursor
	}
	if got := strings.Join(seen, ","); got != "m8,m7,m6,m5,m4,m3,m2,m1,m0,old" {
		t.Fatalf("pages: %s", got)
	}
	// A cursor works only with the filters it was made for.
	var p handlers.MessagePage
	m.Do("GET", "/api/v1/messages?limit=2", nil, m.tok["bob"]).Want(200).JSON(&p)
	wantField(t, m.Do("GET", "/api/v1/messages?"+q("limit", "2", "cursor", p.NextCursor, "subject", "m"), nil, m.tok["bob"]), 400, "cursor")
	wantField(t, m.Do("GET", "/api/v1/messages?"+q("cursor", p.NextCursor), nil, m.tok["alice"]), 400, "cursor")
	m.Do("GET", "/api/v1/messages?"+q("limit", "5", "cursor", p.NextCursor), nil, m.tok["bob"]).Want(200)
}
