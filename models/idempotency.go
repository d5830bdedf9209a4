package models

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Idempotency keys let a client retry a request that changes something (sending
// mail) without the change happening twice. The first request with a key claims
// it with a pending row; the answer is stored in the same transaction as the
// change itself, so that either both are committed or neither is. A pending row
// therefore never hides a change that happened: once it is old enough that its
// request cannot still be running, a retry may take it over.

// ErrIdempotencyMismatch is a key used again with a different request.
var ErrIdempotencyMismatch = errors.New("idempotency key was used with a different request")

// IdempotencyRetention is how long answers are kept for replay.
const IdempotencyRetention = 24 * time.Hour

// IdempotentAnswer is the stored answer of a request.
type IdempotentAnswer struct {
	Status   int
	Response string
}

// pendingStatus marks a claimed key whose request has not finished.
const pendingStatus = 0

// ClaimIdempotencyKey claims key for a request of userID whose content hashes to
// hash. It returns nil when the caller holds the claim and must run the request
// (then FinishIdempotencyKey inside its transaction, or ReleaseIdempotencyKey if
// it fails), the stored answer when the request already ran, ErrIdempotencyMismatch
// when the key came with another request, and a ConflictError while another
// request with the key runs. A claim older than staleAfter is taken over.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, userID int64, key, hash string, staleAfter time.Duration) (*IdempotentAnswer, error) {
	now := time.Now().UTC()
	if err := s.conn(ctx).Exec(`DELETE FROM idempotency_keys WHERE user_id = ? AND created_at < ?`,
		userID, now.Add(-IdempotencyRetention)).Error; err != nil {
		return nil, fmt.Errorf("expire idempotency keys: %w", translate(err))
	}
	res := s.conn(ctx).Exec(`INSERT INTO idempotency_keys (user_id, key, request_hash, status, response, created_at)
		VALUES (?, ?, ?, ?, '', ?) ON CONFLICT (user_id, key) DO NOTHING`, userID, key, hash, pendingStatus, now)
	if res.Error != nil {
		return nil, fmt.Errorf("claim idempotency key: %w", translate(res.Error))
	}
	if res.RowsAffected == 1 {
		return nil, nil
	}
	var row struct {
		RequestHash string
		Status      int
		Response    string
		CreatedAt   time.Time
	}
	err := s.conn(ctx).Raw(`SELECT request_hash, status, response, created_at FROM idempotency_keys WHERE user_id = ? AND key = ?`,
		userID, key).Scan(&row).Error
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", translate(err))
	}
	switch {
	case row.RequestHash == "":
		// Finished and expired between the insert and the read: a fresh claim.
		return s.ClaimIdempotencyKey(ctx, userID, key, hash, staleAfter)
	case row.RequestHash != hash:
		return nil, ErrIdempotencyMismatch
	case row.Status != pendingStatus:
		return &IdempotentAnswer{Status: row.Status, Response: row.Response}, nil
	case row.CreatedAt.After(now.Add(-staleAfter)):
		return nil, &ConflictError{Reason: "a request with this Idempotency-Key is still running; retry later"}
	}
	// A stale claim: its request died before committing anything. Take it over,
	// unless another retry just did.
	res = s.conn(ctx).Exec(`UPDATE idempotency_keys SET created_at = ? WHERE user_id = ? AND key = ? AND status = ? AND created_at < ?`,
		now, userID, key, pendingStatus, now.Add(-staleAfter))
	if res.Error != nil {
		return nil, fmt.Errorf("take over idempotency key: %w", translate(res.Error))
	}
	if res.RowsAffected != 1 {
		return nil, &ConflictError{Reason: "a request with this Idempotency-Key is still running; retry later"}
	}
	return nil, nil
}

// FinishIdempotencyKey stores the answer of a claimed key. It must run inside the
// transaction that commits the request's change.
func (s *Store) FinishIdempotencyKey(ctx context.Context, userID int64, key string, status int, response string) error {
	if !s.InTx() {
		return errors.New("FinishIdempotencyKey must run inside the request's transaction")
	}
	res := s.conn(ctx).Exec(`UPDATE idempotency_keys SET status = ?, response = ? WHERE user_id = ? AND key = ? AND status = ?`,
		status, response, userID, key, pendingStatus)
	if res.Error != nil {
		return fmt.Errorf("store idempotent answer: %w", translate(res.Error))
	}
	if res.RowsAffected != 1 {
		return &ConflictError{Reason: "the Idempotency-Key claim was lost"}
	}
	return nil
}

// ReleaseIdempotencyKey gives up a claim whose request changed nothing, so that
// a retry runs it again.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, userID int64, key string) error {
	err := s.conn(ctx).Exec(`DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND status = ?`, userID, key, pendingStatus).Error
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", translate(err))
	}
	return nil
}
