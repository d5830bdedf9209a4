package models

import (
	"context"
	"fmt"
	"time"
)

// The POP3 maildrop (RFC 1939 §8): a snapshot of a mailbox that lists messages
// without loading their bodies, and an exclusive lock held as a lease in the
// maildrop_locks table, so that it holds across every instance sharing the
// database and a crashed instance cannot keep it past the lease.

// ErrMaildropLocked is returned when another session holds a user's maildrop.
var ErrMaildropLocked = &ConflictError{Reason: "maildrop is locked by another session"}

// ErrMaildropLost is returned when a session's lease was taken over by another
// session after it expired: the first session no longer has exclusive access.
var ErrMaildropLost = &NotFoundError{What: "maildrop lease"}

// MaildropMessage is one message of a maildrop snapshot: what a POP3 listing
// needs, and what it takes to stream the content (OpenContent) without
// loading the content's row again.
type MaildropMessage struct {
	ID        int64
	PublicID  string
	UID       uint32
	ContentID int64
	Size      int64
	ChunkSize int
}

// MaildropMessages lists the messages of a mailbox in UID order.
func (s *Store) MaildropMessages(ctx context.Context, mailboxID int64) ([]MaildropMessage, error) {
	rows, err := s.conn(ctx).Raw(`SELECT m.id, m.public_id, m.uid, m.content_id, m.size, c.chunk_size
		FROM messages m JOIN contents c ON c.id = m.content_id WHERE m.mailbox_id = ? ORDER BY m.uid`, mailboxID).Rows()
	if err != nil {
		return nil, fmt.Errorf("list maildrop of mailbox %d: %w", mailboxID, translate(err))
	}
	defer rows.Close()
	var out []MaildropMessage
	for rows.Next() {
		var m MaildropMessage
		var uid int64
		if err := rows.Scan(&m.ID, &m.PublicID, &uid, &m.ContentID, &m.Size, &m.ChunkSize); err != nil {
			return nil, fmt.Errorf("scan maildrop of mailbox %d: %w", mailboxID, translate(err))
		}
		m.UID = uint32(uid)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list maildrop of mailbox %d: %w", mailboxID, translate(err))
	}
	return out, nil
}

// leaseTimes returns SQL for "now" and for "now + ttl" with their arguments. On
// PostgreSQL the database clock decides, so instances with skewed clocks agree
// on when a lease expires; SQLite serves one process, whose clock is the one.
func (s *Store) leaseTimes(ttl time.Duration) (now string, nowArgs []any, until string, untilArgs []any) {
	if s.shared.dialect == Postgres {
		return "now()", nil, "now() + make_interval(secs => ?)", []any{ttl.Seconds()}
	}
	t := time.Now().UTC()
	// The driver writes times in one fixed UTC format, so text comparison in
	// SQLite orders them correctly.
	return "?", []any{t}, "?", []any{t.Add(ttl)}
}

// AcquireMaildrop takes the lease on a user's maildrop for owner, for ttl. A
// lease that expired is taken over; one held by another owner is
// ErrMaildropLocked. Acquiring a lease owner already holds renews it.
func (s *Store) AcquireMaildrop(ctx context.Context, userID int64, owner string, ttl time.Duration) error {
	now, nowArgs, until, untilArgs := s.leaseTimes(ttl)
	args := append([]any{userID, owner}, untilArgs...)
	args = append(args, nowArgs...)
	res := s.conn(ctx).Exec(`INSERT INTO maildrop_locks (user_id, owner, expires_at) VALUES (?, ?, `+until+`)
		ON CONFLICT (user_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE maildrop_locks.expires_at < `+now+` OR maildrop_locks.owner = excluded.owner`, args...)
	if res.Error != nil {
		return fmt.Errorf("lock maildrop of user %d: %w", userID, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("lock maildrop of user %d: %w", userID, ErrMaildropLocked)
	}
	return nil
}

// RefreshMaildrop extends owner's lease by ttl from now. It is ErrMaildropLost
// when the lease is no longer owner's.
func (s *Store) RefreshMaildrop(ctx context.Context, userID int64, owner string, ttl time.Duration) error {
	_, _, until, untilArgs := s.leaseTimes(ttl)
	args := append(untilArgs, userID, owner)
	res := s.conn(ctx).Exec(`UPDATE maildrop_locks SET expires_at = `+until+` WHERE user_id = ? AND owner = ?`, args...)
	if res.Error != nil {
		return fmt.Errorf("refresh maildrop lock of user %d: %w", userID, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("refresh maildrop lock of user %d: %w", userID, ErrMaildropLost)
	}
	return nil
}

// ReleaseMaildrop gives up owner's lease, if it still holds it.
func (s *Store) ReleaseMaildrop(ctx context.Context, userID int64, owner string) error {
	err := s.conn(ctx).Exec(`DELETE FROM maildrop_locks WHERE user_id = ? AND owner = ?`, userID, owner).Error
	if err != nil {
		return fmt.Errorf("unlock maildrop of user %d: %w", userID, translate(err))
	}
	return nil
}
