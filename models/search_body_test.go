package models_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// TestSearchBodyListingColumns: BODY finds where the body begins in
// search_text from the message's listing columns, whatever they hold: JSON
// lists of addresses as delivery writes them, or the empty default of rows
// written without them (no addresses then).
func TestSearchBodyListingColumns(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	mb := inboxOf(t, s, "alice@example.test")
	for i, m := range []struct {
		subject, from, to, text string
	}{
		// 1: no address columns; the word in the subject only.
		{"needle here", "", "", "needle here\nplain\n\n\n"},
		// 2: no address columns; the word in the body only.
		{"two", "", "", "two\nthe needle\n\n\n"},
		// 3: JSON columns; the word in a name and the body.
		{"three", `[{"name":"Needle","email":"n@example.test"}]`, "[]", "three\nNeedle n@example.test\nneedle\n\n\n"},
		// 4: JSON columns; the word in an address only.
		{"four", `[{"email":"x@example.test"}]`, `[{"name":"A","email":"needle@example.test"}]`, "four\n x@example.test\nA needle@example.test\nbody\n\n\n"},
	} {
		raw := fmt.Sprintf("Subject: %s\r\n\r\n%d\r\n", m.subject, i)
		sum := sha256.Sum256([]byte(raw))
		put := models.ContentPut{Content: models.Content{SHA256: sum[:], Size: int64(len(raw)), SearchText: m.text},
			Body: func() io.Reader { return strings.NewReader(raw) }}
		d := &models.Delivery{Contents: []models.ContentPut{put}, Appends: []models.AppendSpec{{Content: 0,
			Meta:    models.MessageMeta{Subject: m.subject, FromAddr: m.from, ToAddrs: m.to},
			Targets: []models.AppendTarget{{MailboxID: mb.ID, UserID: mb.UserID, SkipQuota: true}}}}}
		if _, err := s.Deliver(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		key  models.SearchKey
		want string
	}{
		{models.SearchKey{Op: models.SearchBody, Value: "needle"}, "[2 3]"},
		{models.SearchKey{Op: models.SearchNot, Keys: []models.SearchKey{{Op: models.SearchBody, Value: "needle"}}}, "[1 4]"},
		{models.SearchKey{Op: models.SearchText, Value: "needle"}, "[1 2 3 4]"},
		// A value with a line break: in the body, or across the break that
		// ends the subject's line (not in the body then).
		{models.SearchKey{Op: models.SearchBody, Value: "needle\n"}, "[2 3]"},
		{models.SearchKey{Op: models.SearchBody, Value: "here\nplain"}, "[]"},
		{models.SearchKey{Op: models.SearchText, Value: "here\nplain"}, "[1]"},
	} {
		var got []uint32
		if err := s.SearchMessages(ctx, mb.ID, 0, &c.key, func(uid uint32) error { got = append(got, uid); return nil }); err != nil {
			t.Fatalf("%+v: %v", c.key, err)
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("%+v: %v, want %s", c.key, got, c.want)
		}
	}
}
