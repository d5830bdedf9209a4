package models

import (
	"context"
	"fmt"
	"time"
)

// Full-text indexing is deferred: storing a message does not compute its
// search index (the largest single cost of ingest); IndexSearch does, in the
// background, and IndexSearchMailbox does before a search, so a search never
// misses a message.

// IndexSearch indexes up to limit stored contents that are not indexed yet and
// returns how many it indexed.
func (s *Store) IndexSearch(ctx context.Context, limit int) (int, error) {
	return s.indexSearch(ctx, 0, limit)
}

// IndexSearchMailbox indexes every not yet indexed content of a mailbox's messages.
func (s *Store) IndexSearchMailbox(ctx context.Context, mailboxID int64) error {
	for {
		n, err := s.indexSearch(ctx, mailboxID, 1000)
		if err != nil || n < 1000 {
			return err
		}
	}
}

func (s *Store) indexSearch(ctx context.Context, mailboxID int64, limit int) (int, error) {
	ofUser, args := "", []any{}
	if mailboxID != 0 {
		ofUser = " AND EXISTS (SELECT 1 FROM messages m WHERE m.content_id = contents.id AND m.mailbox_id = ?)"
		args = append(args, mailboxID)
	}
	args = append(args, limit)
	if s.Dialect() == Postgres {
		res := s.conn(ctx).Exec(`UPDATE contents SET search_vector = to_tsvector('simple', search_text)
			WHERE id IN (SELECT id FROM contents WHERE search_vector IS NULL`+ofUser+` ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)`, args...)
		if res.Error != nil {
			return 0, fmt.Errorf("index contents for search: %w", translate(res.Error))
		}
		return int(res.RowsAffected), nil
	}
	var ids []int64
	if err := s.scan(ctx, &ids, `SELECT id FROM contents WHERE indexed = FALSE`+ofUser+` ORDER BY id LIMIT ?`, args...); err != nil {
		return 0, fmt.Errorf("find contents to index: %w", translate(err))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	in := marks(len(ids))
	idArgs := make([]any, len(ids))
	for i, id := range ids {
		idArgs[i] = id
	}
	err := s.Tx(ctx, func(tx *Store) error {
		// indexed = FALSE again inside the write transaction: another indexer may
		// have taken some of these since they were read.
		res := tx.conn(ctx).Exec(`INSERT INTO contents_fts (rowid, search_text) SELECT id, search_text FROM contents
			WHERE indexed = FALSE AND id IN (`+in+`)`, idArgs...)
		if res.Error != nil {
			return fmt.Errorf("index contents for search: %w", translate(res.Error))
		}
		return tx.conn(ctx).Exec(`UPDATE contents SET indexed = TRUE WHERE id IN (`+in+`)`, idArgs...).Error
	})
	if err != nil {
		return 0, err
	}
	return len(ids), nil
}

// LastDelivery is when this process last committed a delivery.
func (s *Store) LastDelivery() time.Time {
	return time.Unix(0, s.shared.lastDelivery.Load())
}

// PendingSearchIndex tells how many stored contents wait for indexing.
func (s *Store) PendingSearchIndex(ctx context.Context) (int64, error) {
	q := `SELECT count(*) FROM contents WHERE indexed = FALSE`
	if s.Dialect() == Postgres {
		q = `SELECT count(*) FROM contents WHERE search_vector IS NULL`
	}
	var n int64
	if err := s.scan(ctx, &n, q); err != nil {
		return 0, fmt.Errorf("count contents to index: %w", translate(err))
	}
	return n, nil
}
