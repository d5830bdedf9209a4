package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
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
	// Header holds the message's header bytes when FetchPage was asked for
	// them and they fit in the first chunk (nil otherwise).
	Header []byte
}

// FetchWhat says what FetchPage reads beyond the message rows.
type FetchWhat int

const (
	FetchContent FetchWhat = 1 << iota // what the parser stored (Content)
	FetchHeader                        // the header bytes too (implies FetchContent)
)

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
func (s *Store) FetchPage(ctx context.Context, mailboxID int64, uids UIDSet, after uint32, limit int, what FetchWhat) ([]FetchRow, error) {
	if limit <= 0 {
		limit = 500
	}
	if what&FetchHeader != 0 {
		what |= FetchContent
	}
	cols := `m.uid, m.modseq, m.seen, m.answered, m.flagged, m.deleted, m.draft, m.keywords, m.internal_date, m.size, m.content_id`
	from := `messages m`
	if what&FetchContent != 0 {
		cols += `, c.size, c.chunk_size, c.header_size, c.envelope, c.body_structure`
		from += ` JOIN contents c ON c.id = m.content_id`
	}
	if what&FetchHeader != 0 {
		// One query for a page of headers instead of one per message.
		cols += `, substr(h.data, 1, CAST(c.header_size AS INTEGER))`
		from += ` LEFT JOIN content_chunks h ON h.content_id = m.content_id AND h.seq = 0`
	}
	// The page starts above after by cutting the set there, not by a second
	// condition on uid: SQLite would keep the set's own lower bound for the
	// index range and walk from the start of the mailbox for every page.
	var rest UIDSet
	for _, r := range uids.Normalize() {
		if r.Stop <= after {
			continue
		}
		r.Start = max(r.Start, after+1)
		rest = append(rest, r)
	}
	var out []FetchRow
	for _, b := range rest.batches() {
		cond, args := b.sql("m.uid")
		q := `SELECT ` + cols + ` FROM ` + from + ` WHERE m.mailbox_id = ? AND ` + cond + ` ORDER BY m.uid LIMIT ?`
		args = append(append([]any{mailboxID}, args...), limit-len(out))
		if err := s.scanFetchRows(ctx, q, args, what, &out); err != nil {
			return nil, fmt.Errorf("fetch messages of mailbox %d: %w", mailboxID, err)
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

func (s *Store) scanFetchRows(ctx context.Context, q string, args []any, what FetchWhat, out *[]FetchRow) error {
	withContent := what&FetchContent != 0
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
		var header []byte
		if withContent {
			dest = append(dest, &c.Size, &c.ChunkSize, &c.HeaderSize, &c.Envelope, &c.BodyStructure)
		}
		if what&FetchHeader != 0 {
			dest = append(dest, &header)
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
		if int64(len(header)) == c.HeaderSize && c.HeaderSize <= int64(c.ChunkSize) {
			r.Header = header
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

// OpenContentRange returns a reader of n bytes of a content from offset on,
// reading from each chunk only the bytes asked for (substr works on BLOB in
// SQLite and on bytea in PostgreSQL alike), so that the header of a large
// message costs its own size, not a whole chunk.
func (s *Store) OpenContentRange(ctx context.Context, id int64, size int64, chunkSize int, offset, n int64) io.Reader {
	offset = min(max(offset, 0), size)
	n = min(max(n, 0), size-offset)
	return &rangeReader{ctx: ctx, s: s, id: id, chunk: int64(chunkSize), pos: offset, end: offset + n}
}

type rangeReader struct {
	ctx      context.Context
	s        *Store
	id       int64
	chunk    int64
	pos, end int64
	buf      []byte // bytes from pos on, not yet returned
}

// fill loads the bytes from pos to the end of its chunk (or of the range).
func (r *rangeReader) fill() error {
	if r.pos >= r.end {
		return io.EOF
	}
	seq := r.pos / r.chunk
	from := r.pos - seq*r.chunk
	want := min(r.chunk-from, r.end-r.pos)
	var data []byte
	err := r.s.conn(r.ctx).Raw(`SELECT substr(data, ?, ?) FROM content_chunks WHERE content_id = ? AND seq = ?`,
		from+1, want, r.id, seq).Row().Scan(&data)
	if err != nil {
		return fmt.Errorf("read chunk %d of content %d: %w", seq, r.id, translate(err))
	}
	if int64(len(data)) != want {
		return fmt.Errorf("chunk %d of content %d: got %d bytes, want %d", seq, r.id, len(data), want)
	}
	r.buf = data
	return nil
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.pos += int64(n)
	return n, nil
}

// WriteTo hands each chunk straight to w, with no copy in between.
func (r *rangeReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.buf) == 0 {
			if err := r.fill(); errors.Is(err, io.EOF) {
				return total, nil
			} else if err != nil {
				return total, err
			}
		}
		n, err := w.Write(r.buf)
		total += int64(n)
		r.pos += int64(n)
		r.buf = r.buf[n:]
		if err != nil {
			return total, err
		}
	}
}
