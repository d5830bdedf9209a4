package models

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// BudgetLimit is one key of a login attempt and the failures it may have in
// the window.
type BudgetLimit struct {
	Key   string
	Limit int  // failures allowed in the window
	Skip  bool // count the attempt, but do not hold it back
}

// ErrOverBudget is a login attempt refused before any password work, because
// a key of it has used up its failures in the window.
type ErrOverBudget struct {
	Key        string
	RetryAfter time.Duration // when an attempt could be allowed again
}

func (e *ErrOverBudget) Error() string {
	return fmt.Sprintf("login budget of %s used up; retry after %v", e.Key, e.RetryAfter.Round(time.Second))
}

// minuteOf is the bucket a time falls in.
func minuteOf(t time.Time) int64 { return t.Unix() / 60 }

// ReserveLogin counts one failure for every key of an attempt, before the
// password is checked, and refuses the attempt (*ErrOverBudget, nothing
// counted) when a key would go over its limit in the window. Reserving first
// is what makes parallel attempts unable to share one remaining failure: the
// increments of one key are serialized by its bucket row. A success gives its
// reservation back with ReleaseLogin. The returned minute names the buckets
// for ReleaseLogin.
func (s *Store) ReserveLogin(ctx context.Context, limits []BudgetLimit, window time.Duration, now time.Time) (int64, error) {
	minute := minuteOf(now)
	first := minuteOf(now.Add(-window)) + 1
	// One order for every transaction, so that two attempts never wait on
	// each other's rows in opposite orders.
	sorted := append([]BudgetLimit(nil), limits...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	err := s.Tx(ctx, func(tx *Store) error {
		for _, l := range sorted {
			if err := tx.conn(ctx).Exec(`INSERT INTO login_failures (key, minute, count) VALUES (?, ?, 1)
				ON CONFLICT (key, minute) DO UPDATE SET count = login_failures.count + 1`, l.Key, minute).Error; err != nil {
				return fmt.Errorf("count login attempt: %w", translate(err))
			}
			if l.Skip {
				continue
			}
			var buckets []struct {
				Minute int64
				Count  int
			}
			if err := tx.scan(ctx, &buckets, `SELECT minute, count FROM login_failures
				WHERE key = ? AND minute >= ? ORDER BY minute`, l.Key, first); err != nil {
				return fmt.Errorf("read login budget: %w", translate(err))
			}
			total := 0
			for _, b := range buckets {
				total += b.Count
			}
			if total <= l.Limit {
				continue
			}
			// Over: the attempt may come again once enough of the oldest
			// failures have left the window.
			retry := window
			for _, b := range buckets {
				total -= b.Count
				if total < l.Limit {
					retry = time.Unix((b.Minute+1)*60, 0).Add(window).Sub(now)
					break
				}
			}
			return &ErrOverBudget{Key: l.Key, RetryAfter: max(retry, time.Second)}
		}
		return nil
	})
	return minute, err
}

// ReleaseLogin gives back a reservation of ReserveLogin: the attempt
// succeeded, so it was no failure. Only this attempt's own counts go: the
// failures of other attempts stay.
func (s *Store) ReleaseLogin(ctx context.Context, keys []string, minute int64) error {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	return s.Tx(ctx, func(tx *Store) error {
		for _, k := range sorted {
			if err := tx.conn(ctx).Exec(`UPDATE login_failures SET count = count - 1
				WHERE key = ? AND minute = ? AND count > 0`, k, minute).Error; err != nil {
				return fmt.Errorf("release login attempt: %w", translate(err))
			}
		}
		return nil
	})
}

// KnownNetwork reports whether account logged in from network since since.
func (s *Store) KnownNetwork(ctx context.Context, account, network string, since time.Time) (bool, error) {
	var n int64
	err := s.conn(ctx).Raw(`SELECT count(*) FROM login_networks WHERE account = ? AND network = ? AND last_ok >= ?`,
		account, network, since.Unix()).Scan(&n).Error
	if err != nil {
		return false, fmt.Errorf("look up known network: %w", translate(err))
	}
	return n > 0, nil
}

// LoginSucceeded records that account logged in from network at now.
func (s *Store) LoginSucceeded(ctx context.Context, account, network string, now time.Time) error {
	err := s.conn(ctx).Exec(`INSERT INTO login_networks (account, network, last_ok) VALUES (?, ?, ?)
		ON CONFLICT (account, network) DO UPDATE SET last_ok = excluded.last_ok`, account, network, now.Unix()).Error
	if err != nil {
		return fmt.Errorf("record login network: %w", translate(err))
	}
	return nil
}

// PruneLogins forgets failure counts older than failuresBefore and known
// networks not used since networksBefore.
func (s *Store) PruneLogins(ctx context.Context, failuresBefore, networksBefore time.Time) error {
	err := s.conn(ctx).Exec(`DELETE FROM login_failures WHERE minute < ?`, minuteOf(failuresBefore)).Error
	if err == nil {
		err = s.conn(ctx).Exec(`DELETE FROM login_networks WHERE last_ok < ?`, networksBefore.Unix()).Error
	}
	if err != nil {
		return fmt.Errorf("prune login budget: %w", translate(err))
	}
	return nil
}

// IsOverBudget reports whether err is a refusal of the login budget, and
// when to try again.
func IsOverBudget(err error) (time.Duration, bool) {
	var ob *ErrOverBudget
	if errors.As(err, &ob) {
		return ob.RetryAfter, true
	}
	return 0, false
}
