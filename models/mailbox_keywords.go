package models

import (
	"context"
	"fmt"
	"strings"
)

// MailboxKeywords returns the keywords used in a mailbox, sorted without case:
// those of its messages, and those of messages that have left it since the
// list was last brought up to date (IMAP lists them all as flags of the
// mailbox, RFC 9051 §7.3.5, so a stale one costs nothing).
//
// The list is kept in mailbox_keywords with the modification sequence it is
// complete up to. Each call adds the keywords of the messages changed since
// (an index range on messages_mailbox_modseq), so that a large mailbox is
// read whole once, the first time, and then only as far as it changed. Any
// front end may have set the keywords: none of them needs to know of the list.
func (s *Store) MailboxKeywords(ctx context.Context, mailboxID int64) ([]string, error) {
	var high []int64
	if err := s.scan(ctx, &high, `SELECT highest_modseq FROM mailboxes WHERE id = ?`, mailboxID); err != nil {
		return nil, fmt.Errorf("read mailbox %d: %w", mailboxID, translate(err))
	}
	if len(high) == 0 {
		return nil, notFound(fmt.Sprintf("mailbox %d", mailboxID))
	}
	var kept []struct {
		Keywords string
		Modseq   int64
	}
	err := s.scan(ctx, &kept, `SELECT keywords, modseq FROM mailbox_keywords WHERE mailbox_id = ?`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("read keywords of mailbox %d: %w", mailboxID, translate(err))
	}
	var list []string
	var upTo int64
	if len(kept) > 0 {
		list, upTo = strings.Fields(kept[0].Keywords), kept[0].Modseq
	}
	if upTo >= high[0] {
		return list, nil
	}
	// Messages are committed with their modification sequence under the
	// mailbox's lock, so every message up to high[0] is visible now.
	var sets []string
	err = s.scan(ctx, &sets, `SELECT DISTINCT keywords FROM messages
		WHERE mailbox_id = ? AND modseq > ? AND modseq <= ? AND keywords <> ''`, mailboxID, upTo, high[0])
	if err != nil {
		return nil, fmt.Errorf("keywords of changed messages of mailbox %d: %w", mailboxID, translate(err))
	}
	for _, set := range sets {
		list = append(list, strings.Fields(set)...)
	}
	list = dedupKeywords(list)
	if err := s.keepMailboxKeywords(ctx, mailboxID, list, high[0]); err != nil {
		return nil, err
	}
	return list, nil
}

// keepMailboxKeywords stores a mailbox's keyword list as complete up to
// modseq, unless another caller has stored one complete further: lists only
// grow, so the later one holds every keyword this one does.
func (s *Store) keepMailboxKeywords(ctx context.Context, mailboxID int64, list []string, modseq int64) error {
	err := s.Tx(ctx, func(tx *Store) error {
		return tx.conn(ctx).Exec(`INSERT INTO mailbox_keywords (mailbox_id, keywords, modseq) VALUES (?, ?, ?)
			ON CONFLICT (mailbox_id) DO UPDATE SET keywords = excluded.keywords, modseq = excluded.modseq
			WHERE mailbox_keywords.modseq < excluded.modseq`, mailboxID, strings.Join(list, " "), modseq).Error
	})
	if err != nil {
		return fmt.Errorf("keep keywords of mailbox %d: %w", mailboxID, translate(err))
	}
	return nil
}
