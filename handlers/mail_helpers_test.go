package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/api/apitest"
	"github.com/mailgate/mailgate/handlers"
	"github.com/mailgate/mailgate/models"
)

// mailEnv is a running API with users alice, bob and carol (tokens by name) and
// the group team@example.com = bob + carol.
type mailEnv struct {
	*apitest.Env
	tok map[string]string
}

func newMailEnv(t testing.TB) *mailEnv {
	return startMailEnv(apitest.Setup(t))
}

func startMailEnv(e *apitest.Env) *mailEnv {
	e.Start()
	m := &mailEnv{Env: e, tok: map[string]string{}}
	for _, u := range []string{"alice", "bob", "carol"} {
		name := strings.ToUpper(u[:1]) + u[1:]
		e.Do("POST", "/api/v1/users", map[string]any{"email": u + "@example.com", "password": u + "-password", "display_name": name + " Example"}, e.AdminToken).Want(201)
		m.tok[u] = e.Login(u+"@example.com", u+"-password")
	}
	e.Do("POST", "/api/v1/groups", map[string]any{"email": "team@example.com", "name": "Team", "members": []string{"bob@example.com", "carol@example.com"}}, e.AdminToken).Want(201)
	return m
}

// send posts a JSON message as user and wants 202.
func (m *mailEnv) send(user string, body map[string]any, headers ...string) handlers.SendResult {
	m.T.Helper()
	var res handlers.SendResult
	m.Do("POST", "/api/v1/messages", body, m.tok[user], headers...).Want(202).JSON(&res)
	return res
}

// list returns the messages of user's mailbox matching query (without paging).
func (m *mailEnv) list(user, query string) []handlers.MessageSummary {
	m.T.Helper()
	var p handlers.MessagePage
	m.Do("GET", "/api/v1/messages?limit=200&"+query, nil, m.tok[user]).Want(200).JSON(&p)
	return p.Items
}

func (m *mailEnv) mailbox(user, name string) handlers.Mailbox {
	m.T.Helper()
	var l handlers.MailboxList
	m.Do("GET", "/api/v1/mailboxes", nil, m.tok[user]).Want(200).JSON(&l)
	for _, mb := range l.Items {
		if mb.Name == name {
			return mb
		}
	}
	m.T.Fatalf("%s has no mailbox %s: %+v", user, name, l.Items)
	return handlers.Mailbox{}
}

// user loads a user from the store.
func (m *mailEnv) user(name string) *models.User {
	m.T.Helper()
	u, err := m.Store.GetUser(context.Background(), name+"@example.com")
	if err != nil {
		m.T.Fatal(err)
	}
	return u
}

// appendRaw stores a raw message in a user's mailbox, as IMAP APPEND does.
func (m *mailEnv) appendRaw(user, mailbox, raw string, date time.Time) *models.Message {
	m.T.Helper()
	msg, err := m.Mailbox.Append(context.Background(), m.user(user).ID, mailbox, strings.NewReader(raw), models.Flags{}, date)
	if err != nil {
		m.T.Fatal(err)
	}
	return msg
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// form builds a multipart/form-data body: fields are name/value pairs; a value
// starting with "@" is a file "@name:content-type:content".
func form(t testing.TB, fields ...string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		name, v := fields[i], fields[i+1]
		if strings.HasPrefix(v, "@") {
			parts := strings.SplitN(v[1:], ":", 3)
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, name, parts[0]))
			h.Set("Content-Type", parts[1])
			pw, err := w.CreatePart(h)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(pw, parts[2])
			continue
		}
		if err := w.WriteField(name, v); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// wantField fails unless r is a 400 envelope naming field, in field and message.
func wantField(t testing.TB, r *apitest.Response, status int, field string) {
	t.Helper()
	r.Want(status)
	var env handlers.ErrorEnvelope
	r.JSON(&env)
	if env.Error.Field != field || !strings.Contains(env.Error.Message, field) {
		t.Errorf("error %+v: want field %q named", env.Error, field)
	}
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}
