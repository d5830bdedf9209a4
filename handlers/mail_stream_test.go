package handlers_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/mailgate/mailgate/models"
)

// TestDownloadCutShort shows that a download whose stored bytes fail to read
// half-way is cut off for the client to see, never ended as if it were whole.
func TestDownloadCutShort(t *testing.T) {
	m := newMailEnv(t)
	file := bytes.Repeat([]byte("0123456789abcdef"), 60<<10) // ~1 MB: several stored chunks
	m.send("alice", map[string]any{"to": []string{"bob@example.com"}, "attachments": []map[string]any{{"filename": "big.bin", "content": b64(file)}}})
	item := m.list("bob", "")[0]
	get := func(path string) ([]byte, error) {
		req, _ := http.NewRequest("GET", m.Server.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+m.tok["bob"])
		resp, err := m.Server.Client().Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return io.ReadAll(resp.Body)
	}
	for _, p := range []string{"/raw", "/attachments/0"} {
		if b, err := get("/api/v1/messages/" + item.ID + p); err != nil || len(b) < len(file) {
			t.Fatalf("%s before the damage: %d bytes, %v", p, len(b), err)
		}
	}
	msg, err := m.Mailbox.Message(context.Background(), m.user("bob").ID, item.ID)
	if err != nil {
		t.Fatal(err)
	}
	q := `DELETE FROM content_chunks WHERE content_id = ? AND seq = 2`
	if m.Store.Dialect() == models.Postgres {
		q = `DELETE FROM content_chunks WHERE content_id = $1 AND seq = 2`
	}
	if _, err := m.Store.DB().Exec(q, msg.ContentID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/raw", "/attachments/0"} {
		b, err := get("/api/v1/messages/" + item.ID + p)
		if err == nil {
			t.Errorf("%s: a download that failed half-way ended cleanly after %d bytes", p, len(b))
		}
	}
}
