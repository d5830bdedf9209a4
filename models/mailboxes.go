package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Delimiter separates levels of the mailbox hierarchy.
const Delimiter = "/"

// CanonicalMailboxName returns the stored form of a mailbox name: "INBOX" in any
// case is INBOX (RFC 3501 §5.1), and so is the INBOX prefix of its children.
func CanonicalMailboxName(name string) string {
	if strings.EqualFold(name, Inbox) {
		return Inbox
	}
	if len(name) > len(Inbox) && strings.EqualFold(name[:len(Inbox)], Inbox) && name[len(Inbox):len(Inbox)+1] == Delimiter {
		return Inbox + name[len(Inbox):]
	}
	return name
}

// ValidateMailboxName checks a mailbox name for the hierarchy rules. Names
// are UTF-8 without control characters (RFC 9051 §5.1: Net-Unicode, RFC
// 5198), whatever front end gives them; IMAP's modified UTF-7 is decoded
// before a name gets here.
func ValidateMailboxName(name string) error {
	switch {
	case name == "":
		return Invalid("name", "is empty")
	case len(name) > 512:
		return Invalid("name", "is longer than 512 octets")
	case strings.HasPrefix(name, Delimiter) || strings.HasSuffix(name, Delimiter) || strings.Contains(name, Delimiter+Delimiter):
		return Invalid("name", "has an empty hierarchy level")
	case strings.ContainsAny(name, "*%") || strings.IndexFunc(name, isControl) >= 0:
		return Invalid("name", "contains a wildcard or control character")
	case !utf8.ValidString(name):
		return Invalid("name", "is not UTF-8")
	}
	return nil
}

// isControl reports whether r is a C0 or C1 control character, or DEL.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

// CreateMailbox adds a mailbox for a user and subscribes the user to its
// name, as a new account's default mailboxes are (and the HTTP API's new
// mailboxes).
func (s *Store) CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (*Mailbox, error) {
	return s.createMailbox(ctx, userID, name, specialUse, true)
}

// CreateMailboxUnsubscribed adds a mailbox and leaves the subscriptions as
// they are: IMAP's CREATE does not subscribe (SUBSCRIBE does), so the name
// is subscribed only if a subscription to it outlived an earlier mailbox.
func (s *Store) CreateMailboxUnsubscribed(ctx context.Context, userID int64, name, specialUse string) (*Mailbox, error) {
	return s.createMailbox(ctx, userID, name, specialUse, false)
}

func (s *Store) createMailbox(ctx context.Context, userID int64, name, specialUse string, subscribe bool) (*Mailbox, error) {
	name = CanonicalMailboxName(name)
	if err := ValidateMailboxName(name); err != nil {
		return nil, err
	}
	var mb *Mailbox
	err := s.Tx(ctx, func(tx *Store) error {
		v, err := tx.nextUIDValidity(ctx)
		if err != nil {
			return err
		}
		res := tx.conn(ctx).Exec(`INSERT INTO mailboxes (public_id, user_id, name, special_use, uid_validity, uid_next, highest_modseq, recent_uid, created_at)
			VALUES (?, ?, ?, ?, ?, 1, 1, 1, ?) ON CONFLICT (user_id, name) DO NOTHING`,
			NewID(), userID, name, specialUse, v, time.Now().UTC())
		if res.Error != nil {
			return fmt.Errorf("create mailbox %q: %w", name, translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return &ConflictError{Reason: fmt.Sprintf("mailbox %q already exists", name)}
		}
		if subscribe {
			if err := tx.subscribe(ctx, userID, name); err != nil {
				return err
			}
		}
		if mb, err = tx.MailboxByName(ctx, userID, name); err != nil {
			return err
		}
		return tx.Notify(ctx, MailboxListTopic(userID))
	})
	if err != nil {
		return nil, err
	}
	return mb, nil
}

// Mailboxes lists a user's mailboxes in name order.
func (s *Store) Mailboxes(ctx context.Context, userID int64) ([]Mailbox, error) {
	var mbs []Mailbox
	if err := s.conn(ctx).Select(mailboxColumns).Where("user_id = ?", userID).Order("name").Find(&mbs).Error; err != nil {
		return nil, fmt.Errorf("list mailboxes of user %d: %w", userID, translate(err))
	}
	return mbs, nil
}

// MailboxByName finds a user's mailbox.
func (s *Store) MailboxByName(ctx context.Context, userID int64, name string) (*Mailbox, error) {
	name = CanonicalMailboxName(name)
	return s.mailboxWhere(ctx, "mailbox "+name, "user_id = ? AND name = ?", userID, name)
}

// MailboxByPublicID finds a user's mailbox by its public id.
func (s *Store) MailboxByPublicID(ctx context.Context, userID int64, publicID string) (*Mailbox, error) {
	if !ValidID(publicID) {
		return nil, notFound("mailbox " + publicID)
	}
	return s.mailboxWhere(ctx, "mailbox "+publicID, "user_id = ? AND public_id = ?", userID, publicID)
}

// MailboxByID finds a mailbox by id.
func (s *Store) MailboxByID(ctx context.Context, id int64) (*Mailbox, error) {
	return s.mailboxWhere(ctx, fmt.Sprintf("mailbox %d", id), "id = ?", id)
}

// MailboxBySpecialUse finds the user's mailbox with a special-use attribute.
func (s *Store) MailboxBySpecialUse(ctx context.Context, userID int64, use string) (*Mailbox, error) {
	return s.mailboxWhere(ctx, "mailbox "+use, "user_id = ? AND special_use = ?", userID, use)
}

// mailboxColumns are a mailbox row and whether its name is subscribed
// (Mailbox.Subscribed).
const mailboxColumns = `mailboxes.*, EXISTS (SELECT 1 FROM subscriptions s
	WHERE s.user_id = mailboxes.user_id AND s.name = mailboxes.name) AS subscribed`

func (s *Store) mailboxWhere(ctx context.Context, what string, where string, args ...any) (*Mailbox, error) {
	var mb Mailbox
	if err := s.conn(ctx).Select(mailboxColumns).Where(where, args...).Order("id").Take(&mb).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(what)
		}
		return nil, fmt.Errorf("get %s: %w", what, err)
	}
	return &mb, nil
}

// RenameMailbox renames a mailbox and every mailbox below it in the hierarchy.
// The mailboxes keep their ids, UIDs and UIDVALIDITY. Subscriptions are names
// and stay as they are, as IMAP's RENAME leaves them in Dovecot: the client
// subscribes to the new names if it wants them.
func (s *Store) RenameMailbox(ctx context.Context, userID int64, from, to string) error {
	return s.renameMailbox(ctx, userID, from, to, false)
}

// RenameMailboxAndSubscriptions renames like RenameMailbox and moves the
// subscription of each renamed mailbox to its new name: for the HTTP API,
// where being subscribed is shown as a property of the mailbox.
func (s *Store) RenameMailboxAndSubscriptions(ctx context.Context, userID int64, from, to string) error {
	return s.renameMailbox(ctx, userID, from, to, true)
}

func (s *Store) renameMailbox(ctx context.Context, userID int64, from, to string, moveSubscriptions bool) error {
	from, to = CanonicalMailboxName(from), CanonicalMailboxName(to)
	if err := ValidateMailboxName(to); err != nil {
		return err
	}
	if from == to {
		return nil
	}
	if strings.HasPrefix(to, from+Delimiter) {
		return Invalid("name", "cannot move a mailbox below itself")
	}
	return s.Tx(ctx, func(tx *Store) error {
		mb, err := tx.MailboxByName(ctx, userID, from)
		if err != nil {
			return err
		}
		if _, err := tx.MailboxByName(ctx, userID, to); err == nil {
			return &ConflictError{Reason: fmt.Sprintf("mailbox %q already exists", to)}
		}
		var kids []Mailbox
		if err := tx.conn(ctx).Select(mailboxColumns).Where("user_id = ? AND name LIKE ? ESCAPE '\\'", userID, escapeLike(from+Delimiter)+"%").Find(&kids).Error; err != nil {
			return fmt.Errorf("list children of %q: %w", from, translate(err))
		}
		rename := func(m *Mailbox, name string) error {
			err := tx.conn(ctx).Exec(`UPDATE mailboxes SET name = ? WHERE id = ?`, name, m.ID).Error
			if err = translate(err); errors.Is(err, ErrConflict) {
				return &ConflictError{Reason: fmt.Sprintf("mailbox %q already exists", name)}
			}
			if err != nil || !moveSubscriptions || !m.Subscribed {
				return err
			}
			return tx.moveSubscription(ctx, userID, m.Name, name)
		}
		if err := rename(mb, to); err != nil {
			return err
		}
		for i := range kids {
			if err := rename(&kids[i], to+strings.TrimPrefix(kids[i].Name, from)); err != nil {
				return err
			}
		}
		return tx.Notify(ctx, MailboxListTopic(userID))
	})
}

// DeleteMailbox removes a mailbox and its messages. Children keep existing,
// and so does a subscription to its name (RFC 9051 §6.3.7: the server MUST
// NOT remove it).
func (s *Store) DeleteMailbox(ctx context.Context, userID int64, name string) error {
	return s.Tx(ctx, func(tx *Store) error {
		mb, err := tx.MailboxByName(ctx, userID, name)
		if err != nil {
			return err
		}
		if err := tx.conn(ctx).Exec(`DELETE FROM mailboxes WHERE id = ?`, mb.ID).Error; err != nil {
			return fmt.Errorf("delete mailbox %q: %w", mb.Name, translate(err))
		}
		if err := tx.Notify(ctx, MailboxTopic(mb.ID)); err != nil {
			return err
		}
		return tx.Notify(ctx, MailboxListTopic(userID))
	})
}

// UsedBytes is the size of all of a user's mail.
func (s *Store) UsedBytes(ctx context.Context, userID int64) (int64, error) {
	var n int64
	if err := s.conn(ctx).Raw(`SELECT coalesce(sum(size_bytes), 0) FROM mailboxes WHERE user_id = ?`, userID).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("usage of user %d: %w", userID, translate(err))
	}
	return n, nil
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// Inboxes returns the INBOX of each user, by user id.
func (s *Store) Inboxes(ctx context.Context, userIDs []int64) (map[int64]Mailbox, error) {
	out := make(map[int64]Mailbox, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	var mbs []Mailbox
	if err := s.conn(ctx).Where("user_id IN ? AND name = ?", userIDs, Inbox).Find(&mbs).Error; err != nil {
		return nil, fmt.Errorf("inboxes of %d users: %w", len(userIDs), translate(err))
	}
	for _, mb := range mbs {
		out[mb.UserID] = mb
	}
	return out, nil
}
