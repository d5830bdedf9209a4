package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
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

// ValidateMailboxName checks a mailbox name for the hierarchy rules.
func ValidateMailboxName(name string) error {
	switch {
	case name == "":
		return Invalid("name", "is empty")
	case len(name) > 512:
		return Invalid("name", "is longer than 512 octets")
	case strings.HasPrefix(name, Delimiter) || strings.HasSuffix(name, Delimiter) || strings.Contains(name, Delimiter+Delimiter):
		return Invalid("name", "has an empty hierarchy level")
	case strings.ContainsAny(name, "*%\r\n\x00"):
		return Invalid("name", "contains a wildcard or control character")
	}
	return nil
}

// CreateMailbox adds a mailbox for a user.
func (s *Store) CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (*Mailbox, error) {
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
		mb = &Mailbox{PublicID: NewID(), UserID: userID, Name: name, SpecialUse: specialUse, Subscribed: true,
			UIDValidity: v, UIDNext: 1, HighestModSeq: 1, RecentUID: 1, CreatedAt: time.Now().UTC()}
		res := tx.conn(ctx).Exec(`INSERT INTO mailboxes (public_id, user_id, name, special_use, subscribed, uid_validity, uid_next, highest_modseq, recent_uid, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 1, 1, 1, ?) ON CONFLICT (user_id, name) DO NOTHING`,
			mb.PublicID, userID, name, specialUse, true, v, mb.CreatedAt)
		if res.Error != nil {
			return fmt.Errorf("create mailbox %q: %w", name, translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return &ConflictError{Reason: fmt.Sprintf("mailbox %q already exists", name)}
		}
		got, err := tx.MailboxByName(ctx, userID, name)
		if err != nil {
			return err
		}
		mb = got
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
	if err := s.conn(ctx).Where("user_id = ?", userID).Order("name").Find(&mbs).Error; err != nil {
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

func (s *Store) mailboxWhere(ctx context.Context, what string, where string, args ...any) (*Mailbox, error) {
	var mb Mailbox
	if err := s.conn(ctx).Where(where, args...).Order("id").Take(&mb).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(what)
		}
		return nil, fmt.Errorf("get %s: %w", what, err)
	}
	return &mb, nil
}

// RenameMailbox renames a mailbox and every mailbox below it in the hierarchy.
// The mailboxes keep their ids, UIDs and UIDVALIDITY.
func (s *Store) RenameMailbox(ctx context.Context, userID int64, from, to string) error {
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
		if err := tx.conn(ctx).Where("user_id = ? AND name LIKE ? ESCAPE '\\'", userID, escapeLike(from+Delimiter)+"%").Find(&kids).Error; err != nil {
			return fmt.Errorf("list children of %q: %w", from, translate(err))
		}
		rename := func(id int64, name string) error {
			err := tx.conn(ctx).Exec(`UPDATE mailboxes SET name = ? WHERE id = ?`, name, id).Error
			if err = translate(err); errors.Is(err, ErrConflict) {
				return &ConflictError{Reason: fmt.Sprintf("mailbox %q already exists", name)}
			}
			return err
		}
		if err := rename(mb.ID, to); err != nil {
			return err
		}
		for _, k := range kids {
			if err := rename(k.ID, to+strings.TrimPrefix(k.Name, from)); err != nil {
				return err
			}
		}
		return tx.Notify(ctx, MailboxListTopic(userID))
	})
}

// DeleteMailbox removes a mailbox and its messages. Children keep existing.
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

// SetSubscribed subscribes or unsubscribes a mailbox.
func (s *Store) SetSubscribed(ctx context.Context, userID int64, name string, on bool) error {
	mb, err := s.MailboxByName(ctx, userID, name)
	if err != nil {
		return err
	}
	if err := s.conn(ctx).Exec(`UPDATE mailboxes SET subscribed = ? WHERE id = ?`, on, mb.ID).Error; err != nil {
		return fmt.Errorf("subscribe %q: %w", mb.Name, translate(err))
	}
	return nil
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
