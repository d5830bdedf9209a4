package models

import (
	"context"
	"fmt"
	"time"
)

// QueueEntry is one message waiting to go to one remote recipient.
type QueueEntry struct {
	ID            int64
	PublicID      string
	ContentID     int64
	UserID        *int64
	Sender        string // the reverse-path; "" for bounces
	Recipient     string
	Domain        string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	ExpiresAt     time.Time
	LeaseOwner    string
	LeaseUntil    *time.Time
	LastError     string
	EnvelopeID    string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TableName is the queue table.
func (QueueEntry) TableName() string { return "queue" }

// Queue statuses.
const (
	QueueQueued   = "queued"
	QueueDeferred = "deferred"
	QueueSending  = "sending"
)

// Enqueue adds entries (content stored already, in the same transaction) and
// wakes the queue workers of every instance when the transaction commits.
func (s *Store) Enqueue(ctx context.Context, entries []QueueEntry) error {
	if len(entries) == 0 {
		return nil
	}
	now := time.Now().UTC()
	for i := range entries {
		e := &entries[i]
		if e.PublicID == "" {
			e.PublicID = NewID()
		}
		if e.Status == "" {
			e.Status = QueueQueued
		}
		if e.NextAttemptAt.IsZero() {
			e.NextAttemptAt = now
		}
		e.NextAttemptAt = e.NextAttemptAt.UTC()
		e.ExpiresAt = e.ExpiresAt.UTC()
		e.CreatedAt, e.UpdatedAt = now, now
	}
	if err := s.conn(ctx).Create(&entries).Error; err != nil {
		return fmt.Errorf("enqueue %d entries: %w", len(entries), translate(err))
	}
	return s.Notify(ctx, QueueTopic)
}
