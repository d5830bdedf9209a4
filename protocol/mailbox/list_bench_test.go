package mailbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// benchMailbox is a user's INBOX seeded with n messages.
type benchMailbox struct {
	store *models.Store
	svc   *mailbox.Service
	inbox *models.Mailbox
}

// seedMailbox stores one real message, then inserts n-1 more rows that reuse
// its content with a bulk INSERT: the listing reads only message rows, so this
// is what a mailbox of n messages looks like to it, made in seconds.
func seedMailbox(b *testing.B, n int) *benchMailbox {
	b.Helper()
	ctx := context.Background()
	s := modelstest.New(b)
	if _, err := s.CreateDomain(ctx, "example.com", ""); err != nil {
		b.Fatal(err)
	}
	u, err := s.CreateUser(ctx, models.NewUser{Email: "bench@example.com", PasswordHash: "x"})
	if err != nil {
		b.Fatal(err)
	}
	svc := mailbox.New(s, mailbox.Options{SpoolDir: b.TempDir()})
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	msg := "From: Alice <alice@example.com>\r\nTo: bench@example.com\r\nSubject: seed\r\n\r\nhello\r\n"
	first, err := svc.Append(ctx, u.ID, models.Inbox, strings.NewReader(msg), models.Flags{}, base)
	if err != nil {
		b.Fatal(err)
	}
	cols := []string{"public_id", "user_id", "mailbox_id", "content_id", "uid", "modseq", "internal_date", "size", "seen", "flagged",
		"subject", "from_addr", "to_addrs", "cc_addrs", "message_id", "preview"}
	bulkInsert(b, s, "messages", cols, n-1, func(i int) []any {
		return []any{models.NewID(), u.ID, first.MailboxID, first.ContentID, i + 2, 1, base.Add(time.Duration(i+1) * time.Second), first.Size,
			i%3 == 0, i%50 == 0, fmt.Sprintf("message %d", i), first.FromAddr, first.ToAddrs, first.CcAddrs, "", first.Preview}
	})
	exec(b, s, `UPDATE mailboxes SET uid_next = ?, messages_count = ? WHERE id = ?`, n+1, n, first.MailboxID)
	inbox, err := svc.GetByID(ctx, first.MailboxID)
	if err != nil {
		b.Fatal(err)
	}
	return &benchMailbox{store: s, svc: svc, inbox: inbox}
}

// bulkInsert adds n rows to table in multi-row statements inside transactions.
func bulkInsert(b *testing.B, s *models.Store, table string, cols []string, n int, row func(i int) []any) {
	b.Helper()
	const batch = 500
	db := s.DB()
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		var sb strings.Builder
		args := make([]any, 0, (end-start)*len(cols))
		for i := start; i < end; i++ {
			if i > start {
				sb.WriteString(", ")
			}
			sb.WriteString("(")
			for c := range cols {
				if c > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString(placeholder(s, len(args)+1))
				args = append(args, row(i)[c])
			}
			sb.WriteString(")")
		}
		q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + sb.String()
		if _, err := db.Exec(q, args...); err != nil {
			b.Fatalf("seed %s: %v", table, err)
		}
	}
}

func placeholder(s *models.Store, i int) string {
	if s.Dialect() == models.Postgres {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

func exec(b *testing.B, s *models.Store, q string, args ...any) sql.Result {
	b.Helper()
	if s.Dialect() == models.Postgres {
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	res, err := s.DB().Exec(q, args...)
	if err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	return res
}

// BenchmarkListPage lists a page of 50 from mailboxes of 1k, 10k and 100k
// messages: the first page, a page halfway down (by cursor), and the first page
// of unseen messages. Time per page must not grow with the mailbox.
func BenchmarkListPage(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 10_000, 100_000} {
		mb := seedMailbox(b, n)
		f := models.MessageFilter{MailboxID: mb.inbox.ID}
		// The key of the message halfway down the listing.
		mid := &models.ListKey{Date: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n/2) * time.Second), ID: 1 << 62}
		unseen := false
		for _, c := range []struct {
			name  string
			f     models.MessageFilter
			after *models.ListKey
		}{
			{"first", f, nil},
			{"middle", f, mid},
			{"unseen", models.MessageFilter{MailboxID: mb.inbox.ID, Seen: &unseen}, nil},
		} {
			b.Run(fmt.Sprintf("%s/%dk", c.name, n/1000), func(b *testing.B) {
				for b.Loop() {
					ms, next, err := mb.svc.List(ctx, c.f, c.after, 50)
					if err != nil || len(ms) != 50 || next == nil {
						b.Fatalf("List = %d, %v, %v", len(ms), next, err)
					}
				}
			})
		}
	}
}

// BenchmarkSearch runs full-text queries over a mailbox of 10,000 messages with
// distinct contents: a rare word (in 1% of them), a common one (in half of them,
// so the page fills at once), two words together, and Chinese text, which is
// matched as a substring (a scan of the mailbox's texts, not an index lookup).
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	const n = 10_000
	mb := seedMailbox(b, 1)
	s := mb.store
	var firstID int64
	row := s.DB().QueryRow(`SELECT coalesce(max(id), 0) FROM contents`)
	if err := row.Scan(&firstID); err != nil {
		b.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	texts := make([]string, n)
	for i := range texts {
		words := make([]string, 0, 80)
		for w := 0; w < 78; w++ {
			words = append(words, fmt.Sprintf("w%04d", rng.IntN(5000)))
		}
		if i%2 == 0 {
			words = append(words, "quarterly")
		}
		if i%100 == 0 {
			words = append(words, "zeppelin", "关于季度报告的通知")
		}
		texts[i] = "Subject line " + strings.Join(words, " ")
	}
	bulkInsert(b, s, "contents", []string{"sha256", "size", "chunk_size", "search_text"}, n, func(i int) []any {
		sum := make([]byte, 32)
		rand.Read(sum)
		return []any{sum, 100, models.ChunkSize, texts[i]}
	})
	base := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	bulkInsert(b, s, "messages", []string{"public_id", "user_id", "mailbox_id", "content_id", "uid", "modseq", "internal_date", "size", "subject"}, n, func(i int) []any {
		return []any{models.NewID(), mb.inbox.UserID, mb.inbox.ID, firstID + int64(i) + 1, i + 2, 1, base.Add(time.Duration(i) * time.Second), 100, fmt.Sprintf("m%d", i)}
	})
	if s.Dialect() == models.Postgres {
		exec(b, s, `ANALYZE contents`)
		exec(b, s, `ANALYZE messages`)
	}
	for _, c := range []struct {
		q    string
		want int
	}{{"zeppelin", 50}, {"quarterly", 50}, {"zeppelin quarterly", 50}, {"w0042", 50}, {"季度报告", 50}} {
		b.Run(strings.ReplaceAll(c.q, " ", "+"), func(b *testing.B) {
			for b.Loop() {
				ms, _, err := mb.svc.List(ctx, models.MessageFilter{MailboxID: mb.inbox.ID, Query: c.q}, nil, 50)
				if err != nil || len(ms) < min(c.want, 50) && c.q != "w0042" {
					b.Fatalf("search %q: %d, %v", c.q, len(ms), err)
				}
			}
		})
	}
}
