package mailbox

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/models"
)

// The operations below serve POP3 (RFC 1939), whose maildrop is the user's
// INBOX: a listing that loads no bodies, and the exclusive maildrop lock held
// as a lease in the store, so that it spans instances.

// MaildropMessages lists a mailbox's messages (id, public id, UID, content,
// size) in UID order without loading their bodies.
func (s *Service) MaildropMessages(ctx context.Context, mailboxID int64) ([]models.MaildropMessage, error) {
	return s.store.MaildropMessages(ctx, mailboxID)
}

// LockMaildrop takes a user's maildrop lease for owner, for ttl. Another
// session's live lease is models.ErrMaildropLocked.
func (s *Service) LockMaildrop(ctx context.Context, userID int64, owner string, ttl time.Duration) error {
	return s.store.AcquireMaildrop(ctx, userID, owner, ttl)
}

// RefreshMaildrop extends owner's lease; models.ErrMaildropLost if it was taken over.
func (s *Service) RefreshMaildrop(ctx context.Context, userID int64, owner string, ttl time.Duration) error {
	return s.store.RefreshMaildrop(ctx, userID, owner, ttl)
}

// UnlockMaildrop releases owner's lease.
func (s *Service) UnlockMaildrop(ctx context.Context, userID int64, owner string) error {
	return s.store.ReleaseMaildrop(ctx, userID, owner)
}
