package handlers_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/mailgate/mailgate/api/apitest"
)

// BenchmarkSend sends a message with a 1 MB attachment to 10 recipients over
// HTTP, through the whole pipeline: JSON decoding with base64 streamed into a
// buffer, MIME composition into a spool, hashing and parsing, and one delivery
// transaction (10 local INBOX copies of one stored content plus the Sent copy,
// or 10 queue entries).
func BenchmarkSend(b *testing.B) {
	e := apitest.New(b)
	var local, remote []string
	for i := 0; i < 10; i++ {
		u := fmt.Sprintf("user%d@example.com", i)
		e.Do("POST", "/api/v1/users", map[string]any{"email": u, "password": "password-1"}, e.AdminToken).Want(201)
		local = append(local, u)
		remote = append(remote, fmt.Sprintf("someone%d@remote.example", i))
	}
	tok := e.Login("user0@example.com", "password-1")
	file := make([]byte, 1<<20)
	rand.Read(file)
	for _, c := range []struct {
		name string
		to   []string
	}{{"10local", local}, {"10remote", remote}} {
		body, err := json.Marshal(map[string]any{"to": c.to, "subject": "report", "text": "see attached",
			"attachments": []map[string]any{{"filename": "report.bin", "content": b64(file)}}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(file)))
			for b.Loop() {
				req, _ := http.NewRequest("POST", e.Server.URL+"/api/v1/messages", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := e.Server.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Fatalf("%d %s", resp.StatusCode, out)
				}
			}
		})
	}
}
