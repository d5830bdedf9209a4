package handlers_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/api/apitest"
	"github.com/mailgate/mailgate/handlers"
	"github.com/mailgate/mailgate/models"
)

func TestQueueAdmin(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	body := "Subject: hi\r\n\r\nhello\r\n"
	sum := sha256.Sum256([]byte(body))
	err := e.Store.Tx(ctx, func(tx *models.Store) error {
		id, err := tx.PutContent(ctx, &models.Content{SHA256: sum[:], Size: int64(len(body))}, strings.NewReader(body))
		if err != nil {
			return err
		}
		var es []models.QueueEntry
		for i := 0; i < 3; i++ {
			es = append(es, models.QueueEntry{ContentID: id, Sender: "admin@example.com", Recipient: fmt.Sprintf("r%d@remote.example", i),
				Domain: "remote.example", NextAttemptAt: time.Now().Add(time.Hour), ExpiresAt: time.Now().Add(24 * time.Hour)})
		}
		return tx.Enqueue(ctx, es)
	})
	if err != nil {
		t.Fatal(err)
	}
	var p handlers.QueuePage
	e.Do("GET", "/api/v1/queue?limit=2", nil, e.AdminToken).Want(200).JSON(&p)
	if len(p.Items) != 2 || p.NextCursor == "" || p.Items[0].Status != "queued" {
		t.Fatalf("first page %+v", p)
	}
	var p2 handlers.QueuePage
	e.Do("GET", "/api/v1/queue?cursor="+p.NextCursor, nil, e.AdminToken).Want(200).JSON(&p2)
	if len(p2.Items) != 1 || p2.NextCursor != "" || p2.Items[0].Recipient != "r2@remote.example" {
		t.Fatalf("second page %+v", p2)
	}
	var qe handlers.QueueEntry
	e.Do("POST", "/api/v1/queue/"+p.Items[0].ID+"/retry", nil, e.AdminToken).Want(200).JSON(&qe)
	if !qe.NextAttemptAt.Before(time.Now().Add(time.Minute)) {
		t.Fatalf("retry did not make it due: %+v", qe)
	}
	e.Do("DELETE", "/api/v1/queue/"+p.Items[1].ID, nil, e.AdminToken).Want(204)
	e.Do("DELETE", "/api/v1/queue/"+p.Items[1].ID, nil, e.AdminToken).Want(404)
	e.Do("POST", "/api/v1/queue/not-an-id/retry", nil, e.AdminToken).Want(404)
	e.Do("GET", "/api/v1/queue?cursor=bogus", nil, e.AdminToken).Want(400)
	e.Do("POST", "/api/v1/users", map[string]any{"email": "u@example.com", "password": "password-1"}, e.AdminToken).Want(201)
	e.Do("GET", "/api/v1/queue", nil, e.Login("u@example.com", "password-1")).Want(403)
}
