package mailbox

import (
	"context"
	"io"

	"github.com/mailgate/mailgate/models"
)

// What IMAP needs beyond the operations every front end shares: FETCH of many
// messages without their bodies, SEARCH in SQL, \Recent and the counts of
// SELECT and STATUS. Like the message operations above, these trust mailboxID.

// FetchPage returns up to limit messages with UIDs in uids above after, in UID
// order, with what was learnt of their content at delivery and their header
// bytes as what asks.
func (s *Service) FetchPage(ctx context.Context, mailboxID int64, uids models.UIDSet, after uint32, limit int, what models.FetchWhat) ([]models.FetchRow, error) {
	return s.store.FetchPage(ctx, mailboxID, uids, after, limit, what)
}

// Search calls fn in UID order with each message of a mailbox matching key
// with a UID up to maxUID (0: any). It never reads message bodies.
func (s *Service) Search(ctx context.Context, mailboxID int64, maxUID uint32, key *models.SearchKey, fn func(uid uint32) error) error {
	return s.store.SearchMessages(ctx, mailboxID, maxUID, key, fn)
}

// ClaimRecent takes the messages that arrived since the last claim: UIDs in
// [from, to), \Recent for the claiming session only (RFC 3501 §2.3.2).
func (s *Service) ClaimRecent(ctx context.Context, mailboxID int64) (from, to uint32, err error) {
	return s.store.ClaimRecent(ctx, mailboxID)
}

// CountRecent counts the messages no session has claimed as recent.
func (s *Service) CountRecent(ctx context.Context, mailboxID int64) (int64, error) {
	return s.store.CountRecent(ctx, mailboxID)
}

// CountDeleted counts the messages flagged \Deleted.
func (s *Service) CountDeleted(ctx context.Context, mailboxID int64) (int64, error) {
	return s.store.CountDeleted(ctx, mailboxID)
}

// FirstUnseenUID returns the lowest UID without \Seen, or 0.
func (s *Service) FirstUnseenUID(ctx context.Context, mailboxID int64) (uint32, error) {
	return s.store.FirstUnseenUID(ctx, mailboxID)
}

// OpenRange streams n bytes of a content from offset on, reading only those
// bytes from the store (a message's header costs its size, not a chunk's).
func (s *Service) OpenRange(ctx context.Context, c *models.Content, offset, n int64) io.Reader {
	return s.store.OpenContentRange(ctx, c.ID, c.Size, c.ChunkSize, offset, n)
}

// Keywords returns the keywords used in a mailbox, for IMAP's FLAGS response
// (RFC 9051 7.3.5): kept in the store as they are first used, so that a large
// mailbox is read whole only once.
func (s *Service) Keywords(ctx context.Context, mailboxID int64) ([]string, error) {
	return s.store.MailboxKeywords(ctx, mailboxID)
}
