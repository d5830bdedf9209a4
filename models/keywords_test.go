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

// TestKeywordBounds: a message holds at most MaxKeywords keywords of at most
// MaxKeywordLen bytes, whether they come with the message or are added later;
// many repeats of the same keyword are one keyword.
func TestKeywordBounds(t *testing.T) {
	ctx := context.Background()
	s := modelstest.New(t)
	if _, err := s.CreateDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	mb := inboxOf(t, s, "alice@example.test")
	if _, err := s.Deliver(ctx, deliveryTo(mb, "first")); err != nil {
		t.Fatal(err)
	}
	all := models.All
	many := func(n int) []string {
		ks := make([]string, n)
		for i := range ks {
			ks[i] = fmt.Sprintf("$K%d", i)
		}
		return ks
	}
	if _, err := s.SetFlags(ctx, mb.ID, all, models.FlagsAdd, models.Flags{Keywords: many(models.MaxKeywords)}); err != nil {
		t.Fatalf("%d keywords: %v", models.MaxKeywords, err)
	}
	if _, err := s.SetFlags(ctx, mb.ID, all, models.FlagsAdd, models.Flags{Keywords: []string{"$OneMore"}}); !errors.Is(err, models.ErrInvalid) {
		t.Errorf("one past the bound: %v, want ErrInvalid", err)
	}
	if _, err := s.SetFlags(ctx, mb.ID, all, models.FlagsReplace, models.Flags{Keywords: many(models.MaxKeywords + 1)}); !errors.Is(err, models.ErrInvalid) {
		t.Errorf("replace with too many: %v, want ErrInvalid", err)
	}
	if _, err := s.SetFlags(ctx, mb.ID, all, models.FlagsReplace, models.Flags{Keywords: []string{strings.Repeat("k", models.MaxKeywordLen+1)}}); !errors.Is(err, models.ErrInvalid) {
		t.Errorf("a keyword too long: %v, want ErrInvalid", err)
	}
	// 100,000 repeats of one keyword (any case) are one keyword, quickly.
	rep := make([]string, 100000)
	for i := range rep {
		rep[i] = []string{"$Same", "$SAME", "$same"}[i%3]
	}
	if _, err := s.SetFlags(ctx, mb.ID, all, models.FlagsReplace, models.Flags{Keywords: rep}); err != nil {
		t.Fatalf("repeats: %v", err)
	}
	d := deliveryTo(mb, "second")
	d.Appends[0].Targets[0].Flags.Keywords = many(models.MaxKeywords + 1)
	if _, err := s.Deliver(ctx, d); !errors.Is(err, models.ErrInvalid) {
		t.Errorf("append with too many keywords: %v, want ErrInvalid", err)
	}
}
