package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Queries for the IMAP views of a mailbox: lean rows for FETCH, \Recent
// claiming (RFC 3501 §2.3.2) and the counts SELECT and STATUS report. None of
// them reads a message body.

// FetchRow is what FETCH needs of one message, without its body.
type FetchRow struct {
	UID          uint32
	ModSeq       int64
	Flags        Flags
	InternalDate time.Time
	Size         int64
	// Content is set when FetchPage was asked for it: ID, Size, ChunkSize,
	// HeaderSize, Envelope and BodyStructure (not the search columns).
	Content *Content
}

// Normalize returns the set sorted by start with overlapping and adjacent
// ranges merged (a range given backwards is turned round).
func (s UIDSet) Normalize() UIDSet {
	out := make(UIDSet, 0, len(s))
	for _, r := range s {
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && (r.Start <= merged[n-1].Stop || r.Start-1 == merged[n-1].Stop) {
			if r.Stop > merged[n-1].Stop {
				merged[n-1].Stop = r.Stop
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// FetchPage returns up to limit messages of a mailbox with UIDs in uids and
// above after, in UID order. Callers page through a large set by passing the
// last UID they got, so that no query holds a connection while they write to
// a slow client.
func (s *Store) FetchPage(ctx context.Context, mailboxID int64, uids UIDSet, after uint32, limit int, withContent bool) ([]FetchRow, error) {
	if limit <= 0 {
		limit = 500
	}
	cols := `m.uid, m.modseq, m.seen, m.answered, m.flagged, m.deleted, m.draft, m.keywords, m.internal_date, m.size, m.content_id`
	from := `messages m`
	if withContent {
		cols += `, c.size, c.chunk_size, c.header_size, c.envelope, c.body_structure`
		from += ` JOIN contents c ON c.id = m.content_id`
	}
	var out []FetchRow
	for _, b := range uids.Normalize().batches() {
		if b[len(b)-1].Stop <= after {
			continue
		}
		cond, args := b.sql("m.uid")
		q := `SELECT ` + cols + ` FROM ` + from + ` WHERE m.mailbox_id = ? AND ` + cond + ` AND m.uid > ? ORDER BY m.uid LIMIT ?`
		args = append(append([]any{mailboxID}, args...), int64(after), limit-len(out))
		if err := s.scanFetchRows(ctx, q, args, withContent, &out); err != nil {
			return nil, fmt.Errorf("fetch messages of mailbox %d: %w", mailboxID, err)
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

func (s *Store) scanFetchRows(ctx context.Context, q string, args []any, withContent bool, out *[]FetchRow) error {
	rows, err := s.conn(ctx).Raw(q, args...).Rows()
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r         FetchRow
			uid       int64
			keywords  string
			contentID int64
		)
		dest := []any{&uid, &r.ModSeq, &r.Flags.Seen, &r.Flags.Answered, &r.Flags.Flagged, &r.Flags.Deleted, &r.Flags.Draft,
			&keywords, &r.InternalDate, &r.Size, &contentID}
		var c Content
		if withContent {
			dest = append(dest, &c.Size, &c.ChunkSize, &c.HeaderSize, &c.Envelope, &c.BodyStructure)
		}
		if err := rows.Scan(dest...); err != nil {
			return translate(err)
		}
		r.UID = uint32(uid)
		if keywords != "" {
			r.Flags.Keywords = strings.Fields(keywords)
		}
		if withContent {
			c.ID = contentID
			r.Content = &c
		}
		*out = append(*out, r)
	}
	return translate(rows.Err())
}

// ClaimRecent hands the caller the messages that arrived in a mailbox since
// the last claim: UIDs in [from, to). IMAP4rev1 shows them as \Recent in the
// one session that claimed them and in no other. from == to when there were
// none; then nothing is written.
func (s *Store) ClaimRecent(ctx context.Context, mailboxID int64) (from, to uint32, err error) {
	var cur []struct {
		RecentUID int64
		UIDNext   int64
	}
	read := `SELECT recent_uid, uid_next FROM mailboxes WHERE id = ?`
	if err := s.conn(ctx).Raw(read, mailboxID).Scan(&cur).Error; err != nil {
		return 0, 0, fmt.Errorf("read recent of mailbox %d: %w", mailboxID, translate(err))
	}
	if len(cur) == 0 {
		return 0, 0, notFound(fmt.Sprintf("mailbox %d", mailboxID))
	}
	if cur[0].RecentUID >= cur[0].UIDNext {
		return 0, 0, nil // the common case costs no write
	}
	err = s.Tx(ctx, func(tx *Store) error {
		from, to = 0, 0
		q := read
		if tx.Dialect() == Postgres {
			q += ` FOR UPDATE`
		}
		cur = cur[:0]
		if err := tx.conn(ctx).Raw(q, mailboxID).Scan(&cur).Error; err != nil {
			return fmt.Errorf("lock recent of mailbox %d: %w", mailboxID, translate(err))
		}
		if len(cur) == 0 {
			return notFound(fmt.Sprintf("mailbox %d", mailboxID))
		}
		if cur[0].RecentUID >= cur[0].UIDNext {
			return nil
		}
		if err := tx.conn(ctx).Exec(`UPDATE mailboxes SET recent_uid = ? WHERE id = ?`, cur[0].UIDNext, mailboxID).Error; err != nil {
			return fmt.Errorf("claim recent of mailbox %d: %w", mailboxID, translate(err))
		}
		from, to = uint32(cur[0].RecentUID), uint32(cur[0].UIDNext)
		return nil
	})
	return from, to, err
}

// CountRecent counts the messages of a mailbox no session has claimed yet.
func (s *Store) CountRecent(ctx context.Context, mailboxID int64) (int64, error) {
	var n int64
	err := s.conn(ctx).Raw(`SELECT count(*) FROM messages WHERE mailbox_id = ?
		AND uid >= (SELECT recent_uid FROM mailboxes WHERE id = ?)`, mailboxID, mailboxID).Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count recent in mailbox %d: %w", mailboxID, translate(err))
	}
	return n, nil
}

// CountDeleted counts the messages of a mailbox flagged \Deleted.
func (s *Store) CountDeleted(ctx context.Context, mailboxID int64) (int64, error) {
	var n int64
	// The literal TRUE (not a parameter) lets SQLite use the partial index.
	err := s.conn(ctx).Raw(`SELECT count(*) FROM messages WHERE mailbox_id = ? AND deleted = TRUE`, mailboxID).Scan(&n).Error
	if err != nil {
		return 0, fmt.Errorf("count deleted in mailbox %d: %w", mailboxID, translate(err))
	}
	return n, nil
}

// FirstUnseenUID returns the lowest UID of a mailbox without \Seen, or 0.
func (s *Store) FirstUnseenUID(ctx context.Context, mailboxID int64) (uint32, error) {
	var uid sql.NullInt64
	err := s.conn(ctx).Raw(`SELECT min(uid) FROM messages WHERE mailbox_id = ? AND seen = FALSE`, mailboxID).Row().Scan(&uid)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("first unseen in mailbox %d: %w", mailboxID, translate(err))
	}
	return uint32(uid.Int64), nil
}
