package models

import (
	"context"
	"fmt"
	"strings"
)

// uidAlloc is what one mailbox's counters gave an appended message.
type uidAlloc struct {
	ID            int64
	UIDNext       int64
	HighestModseq int64
}

// allocBatch allocates a UID and modification sequence in several distinct
// mailboxes with one statement (two on PostgreSQL, which first locks the rows in
// id order so concurrent deliveries cannot deadlock), instead of one per mailbox:
// a delivery to a group of 50 made 50 round trips here. unseen is 0 or 1 for
// every target. Mailboxes that no longer exist are missing from the result.
func (s *Store) allocBatch(ctx context.Context, mailboxIDs []int64, unseen int, size int64) (map[int64]uidAlloc, error) {
	if s.shared.dialect == Postgres {
		var locked []int64
		if err := s.conn(ctx).Raw(`SELECT id FROM mailboxes WHERE id IN ? ORDER BY id FOR UPDATE`, mailboxIDs).Scan(&locked).Error; err != nil {
			return nil, fmt.Errorf("lock %d mailboxes: %w", len(mailboxIDs), translate(err))
		}
	}
	var rows []uidAlloc
	err := s.conn(ctx).Raw(`UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1,
		messages_count = messages_count + 1, unseen_count = unseen_count + ?, size_bytes = size_bytes + ?
		WHERE id IN ? RETURNING id, uid_next, highest_modseq`, unseen, size, mailboxIDs).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("allocate uids in %d mailboxes: %w", len(mailboxIDs), translate(err))
	}
	out := make(map[int64]uidAlloc, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// notifyTopics is Notify for several topics; on PostgreSQL in one statement.
func (s *Store) notifyTopics(ctx context.Context, topics []string) error {
	if s.shared.dialect != Postgres || len(topics) == 1 {
		for _, t := range topics {
			if err := s.Notify(ctx, t); err != nil {
				return err
			}
		}
		return nil
	}
	for len(topics) > 0 {
		n := min(len(topics), 100)
		calls := strings.TrimSuffix(strings.Repeat("pg_notify(?, ?), ", n), ", ")
		args := make([]any, 0, 2*n)
		for _, t := range topics[:n] {
			args = append(args, notifyChannel, t)
		}
		if err := s.conn(ctx).Exec("SELECT "+calls, args...).Error; err != nil {
			return fmt.Errorf("notify %d topics: %w", n, translate(err))
		}
		topics = topics[n:]
	}
	return nil
}
