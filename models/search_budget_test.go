package models_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// TestSearchBounds: a search with more text terms, text or keys than the
// bounds is refused as too expensive before any query runs, on IMAP's
// SearchMessages and on the listing's q alike; one within them runs.
func TestSearchBounds(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	if _, err := s.CreateDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	mb := inboxOf(t, s, "alice@example.test")
	if _, err := s.Deliver(ctx, deliveryTo(mb, "hello")); err != nil {
		t.Fatal(err)
	}
	ors := func(n int, value string) *models.SearchKey {
		k := &models.SearchKey{Op: models.SearchOr}
		for i := 0; i < n; i++ {
			k.Keys = append(k.Keys, models.SearchKey{Op: models.SearchBody, Value: fmt.Sprint(value, i)})
		}
		return k
	}
	search := func(k *models.SearchKey) error {
		return s.SearchMessages(ctx, mb.ID, 0, k, func(uint32) error { return nil })
	}
	if err := search(ors(models.MaxSearchTerms, "w")); err != nil {
		t.Errorf("%d terms: %v", models.MaxSearchTerms, err)
	}
	for name, k := range map[string]*models.SearchKey{
		"terms": ors(models.MaxSearchTerms+1, "w"),
		"text":  ors(2, strings.Repeat("x", models.MaxSearchText)),
	} {
		if err := search(k); !errors.Is(err, models.ErrTooExpensive) {
			t.Errorf("too many %s: %v, want ErrTooExpensive", name, err)
		}
	}
	q := strings.TrimSpace(strings.Repeat("词 ", models.MaxSearchTerms+1))
	if _, _, err := s.ListMessages(ctx, models.MessageFilter{MailboxID: mb.ID, Query: q}, nil, 10); !errors.Is(err, models.ErrTooExpensive) {
		t.Errorf("q of %d words: %v, want ErrTooExpensive", models.MaxSearchTerms+1, err)
	}
	if _, _, err := s.ListMessages(ctx, models.MessageFilter{MailboxID: mb.ID, Query: "hello"}, nil, 10); err != nil {
		t.Errorf("a plain q: %v", err)
	}
}
