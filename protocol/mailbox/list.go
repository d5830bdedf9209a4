package mailbox

import (
	"context"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// The operations below serve clients that page through a mailbox by date (the
// HTTP API) rather than by UID and sequence number (IMAP, POP3).

// List returns a page of a mailbox's messages, newest first, after the key after
// (nil: the first page), and the key of the next page (nil: none). The filter's
// mailbox must be one the caller looked up for its user.
func (s *Service) List(ctx context.Context, f models.MessageFilter, after *models.ListKey, limit int) ([]models.Message, *models.ListKey, error) {
	return s.store.ListMessages(ctx, f, after, limit)
}

// MoveMessage moves one message to another of its user's mailboxes, keeping its
// public id. Every session watching either mailbox is told.
func (s *Service) MoveMessage(ctx context.Context, m *models.Message, toID int64) (*models.Message, error) {
	return s.store.MoveMessage(ctx, m, toID)
}

// NewBuffer returns a buffer for one part of a message being composed (an
// attachment), limited to MaxMessageBytes, spilling to the spool directory.
func (s *Service) NewBuffer() *message.Buffer {
	return message.NewBuffer(s.opt.SpoolDir, s.opt.MaxMessageBytes)
}
