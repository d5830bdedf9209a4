package models

import (
	"context"
	"fmt"
)

// Subscriptions are names, kept apart from mailboxes (RFC 9051 §6.3.7 and
// §6.3.8, RFC 3501 §6.3.6): a name may be subscribed while no mailbox has it,
// DELETE and RENAME leave subscriptions alone, and only UNSUBSCRIBE (or the
// user's deletion) ends one.

// SetSubscribed subscribes the user to a mailbox name, or ends the
// subscription. The mailbox need not exist; subscribing twice, or
// unsubscribing a name that is not subscribed, changes nothing.
func (s *Store) SetSubscribed(ctx context.Context, userID int64, name string, on bool) error {
	name = CanonicalMailboxName(name)
	if err := ValidateMailboxName(name); err != nil {
		return err
	}
	if on {
		return s.subscribe(ctx, userID, name)
	}
	return s.unsubscribe(ctx, userID, name)
}

// Subscriptions lists the names a user is subscribed to, in name order.
func (s *Store) Subscriptions(ctx context.Context, userID int64) ([]string, error) {
	var names []string
	err := s.conn(ctx).Raw(`SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name`, userID).Scan(&names).Error
	if err != nil {
		return nil, fmt.Errorf("subscriptions of user %d: %w", userID, translate(err))
	}
	return names, nil
}

func (s *Store) subscribe(ctx context.Context, userID int64, name string) error {
	err := s.conn(ctx).Exec(`INSERT INTO subscriptions (user_id, name) VALUES (?, ?) ON CONFLICT (user_id, name) DO NOTHING`,
		userID, name).Error
	if err != nil {
		return fmt.Errorf("subscribe to %q: %w", name, translate(err))
	}
	return nil
}

func (s *Store) unsubscribe(ctx context.Context, userID int64, name string) error {
	if err := s.conn(ctx).Exec(`DELETE FROM subscriptions WHERE user_id = ? AND name = ?`, userID, name).Error; err != nil {
		return fmt.Errorf("unsubscribe from %q: %w", name, translate(err))
	}
	return nil
}

// moveSubscription ends the subscription to from and subscribes to to.
func (s *Store) moveSubscription(ctx context.Context, userID int64, from, to string) error {
	if err := s.unsubscribe(ctx, userID, from); err != nil {
		return err
	}
	return s.subscribe(ctx, userID, to)
}
