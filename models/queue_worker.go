package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The outbound queue is worked by leases. A worker leases due entries by writing
// its lease token into lease_owner and moving next_attempt_at to the lease's end:
// an entry is due when next_attempt_at has passed, so a lease hides the entry
// from every other worker until it ends, and the entry of a worker that crashed
// simply becomes due again when its lease runs out. Every write that finishes an
// attempt names the lease token, so a worker whose lease was taken over (or
// whose entry an administrator deleted) changes nothing.

// QueueLease asks LeaseQueue for due entries.
type QueueLease struct {
	Owner string        // lease token; unique per call (instance id + counter)
	Now   time.Time     // entries with next_attempt_at <= Now are due
	For   time.Duration // how long the lease lasts
	// Groups bounds how many (content, domain) groups are leased; every due entry
	// of a chosen group comes along, up to Limit entries in all, so that one
	// message's recipients at one domain can share an SMTP transaction.
	Groups int
	Limit  int
}

// LeaseQueue leases due entries for one worker, oldest first. On PostgreSQL rows
// are claimed with FOR UPDATE SKIP LOCKED, so workers of several instances
// sharing the database never lease one entry twice and never wait on each other;
// SQLite serialises writers, which gives the same guarantee in one process. Each
// leased entry has its Attempts counter raised: the attempt counts from the
// moment it may have started.
func (s *Store) LeaseQueue(ctx context.Context, l QueueLease) ([]QueueEntry, error) {
	if l.Owner == "" || l.For <= 0 || l.Groups <= 0 || l.Limit <= 0 {
		return nil, errors.New("lease queue: owner, duration, groups and limit are required")
	}
	lock := ""
	if s.shared.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	now := l.Now.UTC()
	until := now.Add(l.For)
	// seeds: the oldest due entries nobody else holds; picked: every due entry
	// of the seeds' (content, domain) groups. Rows this transaction locked as
	// seeds are not skipped when picked again.
	q := `WITH seeds AS (
		SELECT content_id, domain FROM queue WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?` + lock + `
	), picked AS (
		SELECT id FROM queue WHERE next_attempt_at <= ? AND (content_id, domain) IN (SELECT content_id, domain FROM seeds)
		ORDER BY id LIMIT ?` + lock + `
	)
	UPDATE queue SET lease_owner = ?, lease_until = ?, next_attempt_at = ?, status = ?, attempts = attempts + 1, updated_at = ?
	WHERE id IN (SELECT id FROM picked) RETURNING id`
	var out []QueueEntry
	err := s.Tx(ctx, func(tx *Store) error {
		var ids []int64
		err := tx.conn(ctx).Raw(q, now, l.Groups, now, l.Limit, l.Owner, until, until, QueueSending, now).Scan(&ids).Error
		if err != nil {
			return fmt.Errorf("lease queue entries: %w", translate(err))
		}
		out = nil
		if len(ids) == 0 {
			return nil
		}
		if err := tx.conn(ctx).Where("id IN ?", ids).Order("id").Find(&out).Error; err != nil {
			return fmt.Errorf("load leased queue entries: %w", translate(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NextQueueAttempt tells when the earliest entry becomes due (an entry under
// lease becomes due when its lease ends). ok is false when the queue is empty.
func (s *Store) NextQueueAttempt(ctx context.Context) (at time.Time, ok bool, err error) {
	var e []QueueEntry
	if err := s.conn(ctx).Select("id", "next_attempt_at").Order("next_attempt_at").Limit(1).Find(&e).Error; err != nil {
		return time.Time{}, false, fmt.Errorf("next queue attempt: %w", translate(err))
	}
	if len(e) == 0 {
		return time.Time{}, false, nil
	}
	return e[0].NextAttemptAt, true, nil
}

// Leased names an entry under one lease.
type Leased struct {
	ID    int64
	Owner string
}

// FinishQueue removes entries their lease owners are done with (delivered, or
// failed for good and bounced) and returns the ids it removed: an entry whose
// lease was lost or that was deleted meanwhile is not among them. Entries of
// several leases may be finished at once. To store a bounce exactly once, run
// it in the transaction that stores the bounce.
func (s *Store) FinishQueue(ctx context.Context, done []Leased) ([]int64, error) {
	if len(done) == 0 {
		return nil, nil
	}
	pairs := make([][]any, len(done))
	for i, d := range done {
		pairs[i] = []any{d.ID, d.Owner}
	}
	var gone []int64
	err := s.conn(ctx).Raw(`DELETE FROM queue WHERE (id, lease_owner) IN ? RETURNING id`, pairs).Scan(&gone).Error
	if err != nil {
		return nil, fmt.Errorf("remove %d queue entries: %w", len(done), translate(err))
	}
	return gone, nil
}

// DeferQueue ends the lease on an entry that failed temporarily: it becomes due
// again at next, remembering why it failed. It reports false when the lease was
// lost or the entry is gone.
func (s *Store) DeferQueue(ctx context.Context, owner string, id int64, next time.Time, lastError string) (bool, error) {
	lastError = cleanText(lastError, 1000)
	now := time.Now().UTC()
	res := s.conn(ctx).Exec(`UPDATE queue SET status = ?, lease_owner = '', lease_until = NULL, next_attempt_at = ?,
		last_error = ?, updated_at = ? WHERE id = ? AND lease_owner = ?`,
		QueueDeferred, next.UTC(), lastError, now, id, owner)
	if res.Error != nil {
		return false, fmt.Errorf("defer queue entry %d: %w", id, translate(res.Error))
	}
	return res.RowsAffected == 1, nil
}

// ContentLayout loads what streaming a content needs (ID, Size, ChunkSize,
// HeaderSize) and none of the parsed metadata, which the relay never reads.
func (s *Store) ContentLayout(ctx context.Context, id int64) (*Content, error) {
	var c Content
	err := s.conn(ctx).Select("id", "size", "chunk_size", "header_size").Where("id = ?", id).Take(&c).Error
	if err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(fmt.Sprintf("content %d", id))
		}
		return nil, fmt.Errorf("get content %d: %w", id, err)
	}
	return &c, nil
}

// The functions below serve the admin API (GET /api/v1/queue,
// POST /api/v1/queue/{id}/retry, DELETE /api/v1/queue/{id}); {id} is the
// entry's PublicID.

// ListQueue pages through the queue in id order (oldest first). The cursor is
// opaque to callers: pass the returned next cursor as Page.After; "" means the
// last page was reached. A malformed cursor is ErrInvalid (field "cursor").
func (s *Store) ListQueue(ctx context.Context, p Page) ([]QueueEntry, string, error) {
	q := s.conn(ctx).Order("id").Limit(p.limit() + 1)
	if p.After != "" {
		after, err := strconv.ParseInt(p.After, 10, 64)
		if err != nil || after < 0 {
			return nil, "", Invalid("cursor", "malformed cursor")
		}
		q = q.Where("id > ?", after)
	}
	var es []QueueEntry
	if err := q.Find(&es).Error; err != nil {
		return nil, "", fmt.Errorf("list queue: %w", translate(err))
	}
	es, next := trim(es, p.limit(), func(e QueueEntry) string { return strconv.FormatInt(e.ID, 10) })
	return es, next, nil
}

// GetQueueEntry finds an entry by its public id (ErrNotFound if none).
func (s *Store) GetQueueEntry(ctx context.Context, publicID string) (*QueueEntry, error) {
	if !ValidID(publicID) {
		return nil, notFound("queue entry " + publicID)
	}
	var e QueueEntry
	if err := s.conn(ctx).Where("public_id = ?", publicID).Take(&e).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("queue entry " + publicID)
		}
		return nil, fmt.Errorf("get queue entry %s: %w", publicID, err)
	}
	return &e, nil
}

// RetryQueue makes an entry due now and wakes the workers of every instance.
// An entry under a live lease is being delivered at this moment and is left
// alone: that is a ConflictError (HTTP 409), since ending the lease could send
// the message twice. An unknown id is ErrNotFound.
func (s *Store) RetryQueue(ctx context.Context, publicID string) error {
	if !ValidID(publicID) {
		return notFound("queue entry " + publicID)
	}
	now := time.Now().UTC()
	return s.Tx(ctx, func(tx *Store) error {
		res := tx.conn(ctx).Exec(`UPDATE queue SET next_attempt_at = ?, lease_owner = '', lease_until = NULL, status = ?, updated_at = ?
			WHERE public_id = ? AND (lease_until IS NULL OR lease_until <= ?)`, now, QueueQueued, now, publicID, now)
		if res.Error != nil {
			return fmt.Errorf("retry queue entry %s: %w", publicID, translate(res.Error))
		}
		if res.RowsAffected == 0 {
			if _, err := tx.GetQueueEntry(ctx, publicID); err != nil {
				return err
			}
			return &ConflictError{Reason: "queue entry " + publicID + " is being delivered right now"}
		}
		return tx.Notify(ctx, QueueTopic)
	})
}

// DeleteQueue removes an entry without a bounce (ErrNotFound if there is none).
// An attempt already under way may still deliver the message; it will not be
// retried or bounced afterwards.
func (s *Store) DeleteQueue(ctx context.Context, publicID string) error {
	if !ValidID(publicID) {
		return notFound("queue entry " + publicID)
	}
	res := s.conn(ctx).Exec(`DELETE FROM queue WHERE public_id = ?`, publicID)
	if res.Error != nil {
		return fmt.Errorf("delete queue entry %s: %w", publicID, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return notFound("queue entry " + publicID)
	}
	return nil
}

// cleanText makes text from the network storable in a TEXT column of either
// database (PostgreSQL refuses NUL and invalid UTF-8) and cuts it to at most
// max bytes without splitting a character.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// QueueDepth counts the recipients waiting in the outbound queue.
func (s *Store) QueueDepth(ctx context.Context) (int64, error) {
	var n int64
	if err := s.conn(ctx).Raw(`SELECT count(*) FROM queue`).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count queue: %w", translate(err))
	}
	return n, nil
}
