package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gorm.io/gorm"
)

// MessageFilter selects messages of one mailbox for a listing. Zero fields
// select everything.
type MessageFilter struct {
	MailboxID      int64
	Seen           *bool // false: only unseen messages
	Flagged        *bool
	HasAttachments *bool
	// From, To and Subject match case-insensitive substrings of the listing
	// columns (To is the To field only, not Cc).
	From, To, Subject string
	// Since is inclusive, Before exclusive; both compare the internal date.
	Since, Before *time.Time
	// Query is full text over subject, addresses and text bodies: words must all
	// occur. Words of scripts written without spaces (Han, kana, Hangul, Thai)
	// match as substrings, since neither dialect's tokenizer segments them.
	Query string
}

// ListKey is a message's place in a newest-first listing: internal date, then id
// (ids only grow, so among messages of one second the newer comes first).
type ListKey struct {
	Date time.Time
	ID   int64
}

// String encodes the key for a cursor.
func (k ListKey) String() string {
	return strconv.FormatInt(k.Date.UnixNano(), 36) + "." + strconv.FormatInt(k.ID, 36)
}

// ParseListKey decodes what ListKey.String made.
func ParseListKey(s string) (ListKey, error) {
	d, id, ok := strings.Cut(s, ".")
	ns, err1 := strconv.ParseInt(d, 36, 64)
	n, err2 := strconv.ParseInt(id, 36, 64)
	if !ok || err1 != nil || err2 != nil || n <= 0 {
		return ListKey{}, Invalid("cursor", "is not a cursor this list returned")
	}
	return ListKey{Date: time.Unix(0, ns).UTC(), ID: n}, nil
}

// ListMessages returns up to limit messages of f.MailboxID newest first (by
// internal date, then id), after the key after (nil: from the newest), and the
// key to continue after, or nil on the last page. The position is a key, not an
// offset, so a page costs the same however deep it is, and mail that arrives or
// goes between pages neither repeats nor hides the others. The caller checks that
// the mailbox belongs to its user.
func (s *Store) ListMessages(parent context.Context, f MessageFilter, after *ListKey, limit int) ([]Message, *ListKey, error) {
	if f.Query == "" {
		return s.listMessages(parent, f, after, limit)
	}
	if words := strings.Fields(f.Query); len(words) > MaxSearchTerms || len(f.Query) > MaxSearchText {
		return nil, nil, fmt.Errorf("%w: q has %d words and %d bytes, at most %d and %d: %s",
			ErrTooExpensive, len(words), len(f.Query), MaxSearchTerms, MaxSearchText, searchBudgetReason)
	}
	ctx, cancel := searchContext(parent)
	defer cancel()
	ms, next, err := s.listMessages(ctx, f, after, limit)
	return ms, next, overBudget(parent, ctx, err)
}

func (s *Store) listMessages(ctx context.Context, f MessageFilter, after *ListKey, limit int) ([]Message, *ListKey, error) {
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	where := []string{"m.mailbox_id = ?"}
	args := []any{f.MailboxID}
	boolCond := func(col string, v *bool) {
		if v != nil {
			where = append(where, "m."+col+" = ?")
			args = append(args, *v)
		}
	}
	boolCond("seen", f.Seen)
	boolCond("flagged", f.Flagged)
	boolCond("has_attachments", f.HasAttachments)
	likeCond := func(col, v string) {
		if v != "" {
			where = append(where, "lower(m."+col+") LIKE ? ESCAPE '\\'")
			args = append(args, "%"+escapeLike(strings.ToLower(v))+"%")
		}
	}
	likeCond("from_addr", f.From)
	likeCond("to_addrs", f.To)
	likeCond("subject", f.Subject)
	if f.Since != nil {
		where = append(where, "m.internal_date >= ?")
		args = append(args, f.Since.UTC())
	}
	if f.Before != nil {
		where = append(where, "m.internal_date < ?")
		args = append(args, f.Before.UTC())
	}
	if f.Query != "" {
		if err := s.IndexSearchMailbox(ctx, f.MailboxID); err != nil {
			return nil, nil, err
		}
		cond, qargs, ok := s.searchCond(f.Query)
		if !ok {
			return nil, nil, nil // nothing a word could match
		}
		where = append(where, cond)
		args = append(args, qargs...)
	}
	if after != nil {
		// Row-value comparison: both dialects turn it into a range on
		// messages_mailbox_date, so a deep page starts where the last ended.
		where = append(where, "(m.internal_date, m.id) < (?, ?)")
		args = append(args, after.Date.UTC(), after.ID)
	}
	q := `SELECT m.* FROM messages m WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY m.internal_date DESC, m.id DESC LIMIT ?`
	args = append(args, limit+1)
	var ms []Message
	run := func(db *gorm.DB) error { return db.Raw(q, args...).Scan(&ms).Error }
	if f.Query != "" && s.Dialect() == Postgres && !s.InTx() {
		// Whether to start from the full-text index or from the mailbox's date
		// index depends on how rare the words are: a plan made for the words at
		// hand, not a generic one for a prepared statement (pgx caches them).
		run = func(db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec(`SET LOCAL plan_cache_mode = force_custom_plan`).Error; err != nil {
					return err
				}
				return tx.Raw(q, args...).Scan(&ms).Error
			})
		}
	}
	if err := run(s.conn(ctx)); err != nil {
		return nil, nil, fmt.Errorf("list messages of mailbox %d: %w", f.MailboxID, translate(err))
	}
	if len(ms) <= limit {
		return ms, nil, nil
	}
	ms = ms[:limit]
	last := ms[len(ms)-1]
	return ms, &ListKey{Date: last.InternalDate.UTC(), ID: last.ID}, nil
}

// searchCond turns a user's query into a condition on the message's content,
// never into query syntax: PostgreSQL gets it through plainto_tsquery, SQLite as
// FTS5 string literals. ok is false when the query holds no word at all.
func (s *Store) searchCond(query string) (cond string, args []any, ok bool) {
	var words, unsegmented []string
	for _, w := range strings.Fields(query) {
		switch {
		case !hasWordRune(w):
			// Punctuation alone: the tokenizers index nothing it could match.
		case unsegmentedScript(w):
			unsegmented = append(unsegmented, strings.ToLower(w))
		default:
			words = append(words, w)
		}
	}
	if len(words) == 0 && len(unsegmented) == 0 {
		return "", nil, false
	}
	var conds []string
	if len(words) > 0 {
		if s.Dialect() == Postgres {
			conds = append(conds, `m.content_id IN (SELECT id FROM contents WHERE search_vector @@ plainto_tsquery('simple', ?))`)
			args = append(args, strings.Join(words, " "))
		} else {
			quoted := make([]string, len(words))
			for i, w := range words {
				quoted[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
			}
			conds = append(conds, `m.content_id IN (SELECT rowid FROM contents_fts WHERE contents_fts MATCH ?)`)
			args = append(args, strings.Join(quoted, " "))
		}
	}
	for _, w := range unsegmented {
		fn := "instr(lower(c.search_text), ?)"
		if s.Dialect() == Postgres {
			fn = "strpos(lower(c.search_text), ?)"
		}
		conds = append(conds, `EXISTS (SELECT 1 FROM contents c WHERE c.id = m.content_id AND `+fn+` > 0)`)
		args = append(args, w)
	}
	return strings.Join(conds, " AND "), args, true
}

func hasWordRune(w string) bool {
	for _, r := range w {
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			return true
		}
	}
	return false
}

// unsegmentedScript reports whether w holds letters of a script written without
// spaces between words, where a token would be a whole run of text.
func unsegmentedScript(w string) bool {
	for _, r := range w {
		if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul, unicode.Thai) {
			return true
		}
	}
	return false
}

// MoveMessage moves one message to another mailbox of the same user. The row
// itself moves, keeping its public id, so that a web client's reference stays
// valid, and nothing is copied, so that moving (to Trash, say) never counts
// against the quota. IMAP sessions see what a MOVE shows them (RFC 6851): an
// expunge in the source, a new UID in the destination, each at a new
// modification sequence.
func (s *Store) MoveMessage(ctx context.Context, m *Message, toID int64) (*Message, error) {
	if m.MailboxID == toID {
		return m, nil
	}
	var moved Message
	err := s.Tx(ctx, func(tx *Store) error {
		dest, err := tx.MailboxByID(ctx, toID)
		if err != nil {
			return err
		}
		if dest.UserID != m.UserID {
			return notFound(fmt.Sprintf("mailbox %d", toID))
		}
		// Lock the two mailboxes in id order, as AppendMessages does.
		var srcModseq int64
		var alloc struct {
			UIDNext       int64
			HighestModseq int64
		}
		lockDest := func() error {
			err := tx.conn(ctx).Raw(`UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1
				WHERE id = ? RETURNING uid_next, highest_modseq`, toID).Scan(&alloc).Error
			if err != nil {
				return fmt.Errorf("allocate uid in mailbox %d: %w", toID, translate(err))
			}
			return nil
		}
		lockSrc := func() (err error) { srcModseq, err = tx.lockMailbox(ctx, m.MailboxID); return err }
		first, second := lockSrc, lockDest
		if toID < m.MailboxID {
			first, second = lockDest, lockSrc
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		if err := tx.conn(ctx).Where("id = ? AND mailbox_id = ?", m.ID, m.MailboxID).Take(&moved).Error; err != nil {
			if err = translate(err); errors.Is(err, ErrNotFound) {
				return notFound("message " + m.PublicID) // moved or expunged meanwhile
			}
			return fmt.Errorf("read message %s: %w", m.PublicID, err)
		}
		unseen := int64(0)
		if !moved.Seen {
			unseen = 1
		}
		oldUID := moved.UID
		moved.MailboxID, moved.UID, moved.ModSeq = toID, uint32(alloc.UIDNext-1), alloc.HighestModseq
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ? WHERE id = ?`, []any{toID, int64(moved.UID), moved.ModSeq, moved.ID}},
			{`UPDATE mailboxes SET messages_count = messages_count + 1, unseen_count = unseen_count + ?, size_bytes = size_bytes + ? WHERE id = ?`, []any{unseen, moved.Size, toID}},
			{`UPDATE mailboxes SET messages_count = messages_count - 1, unseen_count = unseen_count - ?, size_bytes = size_bytes - ? WHERE id = ?`, []any{unseen, moved.Size, m.MailboxID}},
			{`INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)`, []any{m.MailboxID, int64(oldUID), srcModseq}},
		} {
			if err := tx.conn(ctx).Exec(st.q, st.args...).Error; err != nil {
				return fmt.Errorf("move message %s: %w", m.PublicID, translate(err))
			}
		}
		if err := tx.Notify(ctx, MailboxTopic(m.MailboxID)); err != nil {
			return err
		}
		return tx.Notify(ctx, MailboxTopic(toID))
	})
	if err != nil {
		return nil, err
	}
	return &moved, nil
}
