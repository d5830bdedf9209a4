package models

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// EnsureSetting stores value under key unless the key already has one, and
// returns the value in force. Instances racing to set it all get the same answer.
func (s *Store) EnsureSetting(ctx context.Context, key, value string) (string, error) {
	err := s.conn(ctx).Exec(`INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		key, value, time.Now().UTC()).Error
	if err != nil {
		return "", fmt.Errorf("ensure setting %s: %w", key, translate(err))
	}
	var v string
	if err := s.scan(ctx, &v, `SELECT value FROM settings WHERE key = ?`, key); err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, translate(err))
	}
	return v, nil
}

// nextUIDValidity hands out UIDVALIDITY values: the current Unix time, or one more
// than the last value given if that is larger, so a mailbox re-created under an
// old name never repeats a value, even within the same second or after the
// database is rebuilt (clients cache by this number).
func (s *Store) nextUIDValidity(ctx context.Context) (uint32, error) {
	now := strconv.FormatInt(time.Now().Unix(), 10)
	var v string
	q := `INSERT INTO settings (key, value, updated_at) VALUES ('uidvalidity', ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = CAST(max(CAST(settings.value AS INTEGER) + 1, CAST(excluded.value AS INTEGER)) AS TEXT)
		RETURNING value`
	if s.Dialect() == Postgres {
		q = `INSERT INTO settings (key, value, updated_at) VALUES ('uidvalidity', ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = greatest(settings.value::bigint + 1, excluded.value::bigint)::text
		RETURNING value`
	}
	if err := s.scan(ctx, &v, q, now, time.Now().UTC()); err != nil {
		return 0, fmt.Errorf("allocate uidvalidity: %w", translate(err))
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("uidvalidity %q: %w", v, err)
	}
	return uint32(n), nil
}
