package models

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// CreateGroup adds a group address with its first members (addresses of users).
func (s *Store) CreateGroup(ctx context.Context, email, name string, members []string) (*Group, []User, error) {
	n, err := NormalizeEmail(email)
	if err != nil {
		return nil, nil, Invalid("email", err.Error())
	}
	var g *Group
	var us []User
	err = s.Tx(ctx, func(tx *Store) error {
		d, err := tx.addAddress(ctx, n, "group")
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		g = &Group{Email: n, DomainID: d.ID, Name: name, CreatedAt: now, UpdatedAt: now}
		if err := tx.conn(ctx).Create(g).Error; err != nil {
			return fmt.Errorf("insert group %s: %w", n, translate(err))
		}
		us, err = tx.setMembers(ctx, g, members)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return g, us, nil
}

// GetGroup finds a group by address.
func (s *Store) GetGroup(ctx context.Context, email string) (*Group, error) {
	n, err := NormalizeEmail(email)
	if err != nil {
		return nil, notFound("group " + email)
	}
	var g Group
	if err := s.conn(ctx).Where("email = ?", n).Take(&g).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("group " + n)
		}
		return nil, fmt.Errorf("get group %s: %w", n, err)
	}
	return &g, nil
}

// ListGroups pages through groups in address order, optionally of one domain.
func (s *Store) ListGroups(ctx context.Context, domain string, p Page) ([]Group, string, error) {
	q := s.conn(ctx).Order("email").Limit(p.limit() + 1)
	if domain != "" {
		d, err := s.GetDomain(ctx, domain)
		if err != nil {
			return nil, "", err
		}
		q = q.Where("domain_id = ?", d.ID)
	}
	if p.After != "" {
		q = q.Where("email > ?", p.After)
	}
	var gs []Group
	if err := q.Find(&gs).Error; err != nil {
		return nil, "", fmt.Errorf("list groups: %w", translate(err))
	}
	gs, next := trim(gs, p.limit(), func(g Group) string { return g.Email })
	return gs, next, nil
}

// UpdateGroup renames a group and, when members is not nil, replaces its members.
func (s *Store) UpdateGroup(ctx context.Context, email string, name *string, members []string) (*Group, []User, error) {
	var g *Group
	var us []User
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		g, err = tx.GetGroup(ctx, email)
		if err != nil {
			return err
		}
		set := map[string]any{"updated_at": time.Now().UTC()}
		if name != nil {
			set["name"], g.Name = *name, *name
		}
		if err := tx.conn(ctx).Model(&Group{}).Where("id = ?", g.ID).Updates(set).Error; err != nil {
			return fmt.Errorf("update group %s: %w", g.Email, translate(err))
		}
		g.UpdatedAt = set["updated_at"].(time.Time)
		if members != nil {
			us, err = tx.setMembers(ctx, g, members)
			return err
		}
		us, err = tx.GroupMembers(ctx, g.ID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return g, us, nil
}

// DeleteGroup removes a group; its members keep their mail.
func (s *Store) DeleteGroup(ctx context.Context, email string) error {
	return s.Tx(ctx, func(tx *Store) error {
		g, err := tx.GetGroup(ctx, email)
		if err != nil {
			return err
		}
		if err := tx.conn(ctx).Exec("DELETE FROM addresses WHERE address = ?", g.Email).Error; err != nil {
			return fmt.Errorf("delete group %s: %w", g.Email, translate(err))
		}
		return nil
	})
}

// GroupMembers lists a group's members in address order.
func (s *Store) GroupMembers(ctx context.Context, groupID int64) ([]User, error) {
	var us []User
	err := s.conn(ctx).Raw(`SELECT u.* FROM users u JOIN group_members m ON m.user_id = u.id
		WHERE m.group_id = ? ORDER BY u.email`, groupID).Scan(&us).Error
	if err != nil {
		return nil, fmt.Errorf("members of group %d: %w", groupID, translate(err))
	}
	return us, nil
}

// AddMember makes a user a member of a group; adding a member twice is no error.
func (s *Store) AddMember(ctx context.Context, groupEmail, userEmail string) error {
	return s.Tx(ctx, func(tx *Store) error {
		g, err := tx.GetGroup(ctx, groupEmail)
		if err != nil {
			return err
		}
		u, err := tx.GetUser(ctx, userEmail)
		if err != nil {
			return err
		}
		err = tx.conn(ctx).Exec(`INSERT INTO group_members (group_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, g.ID, u.ID).Error
		if err != nil {
			return fmt.Errorf("add %s to %s: %w", u.Email, g.Email, translate(err))
		}
		return nil
	})
}

// RemoveMember takes a user out of a group; a user who is no member is ErrNotFound.
func (s *Store) RemoveMember(ctx context.Context, groupEmail, userEmail string) error {
	return s.Tx(ctx, func(tx *Store) error {
		g, err := tx.GetGroup(ctx, groupEmail)
		if err != nil {
			return err
		}
		u, err := tx.GetUser(ctx, userEmail)
		if err != nil {
			return err
		}
		res := tx.conn(ctx).Exec(`DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, g.ID, u.ID)
		if res.Error != nil {
			return fmt.Errorf("remove %s from %s: %w", u.Email, g.Email, translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return notFound(fmt.Sprintf("member %s of group %s", u.Email, g.Email))
		}
		return nil
	})
}

// GroupsOf lists the groups a user belongs to.
func (s *Store) GroupsOf(ctx context.Context, userID int64) ([]Group, error) {
	var gs []Group
	err := s.conn(ctx).Raw(`SELECT g.* FROM groups g JOIN group_members m ON m.group_id = g.id
		WHERE m.user_id = ? ORDER BY g.email`, userID).Scan(&gs).Error
	if err != nil {
		return nil, fmt.Errorf("groups of user %d: %w", userID, translate(err))
	}
	return gs, nil
}

func (s *Store) setMembers(ctx context.Context, g *Group, members []string) ([]User, error) {
	seen := map[string]bool{}
	var us []User
	for _, m := range members {
		u, err := s.GetUser(ctx, m)
		if errors.Is(err, ErrNotFound) {
			return nil, Invalid("members", fmt.Sprintf("%s is not a user of this server", m))
		}
		if err != nil {
			return nil, err
		}
		if !seen[u.Email] {
			seen[u.Email] = true
			us = append(us, *u)
		}
	}
	if err := s.conn(ctx).Exec(`DELETE FROM group_members WHERE group_id = ?`, g.ID).Error; err != nil {
		return nil, fmt.Errorf("clear members of %s: %w", g.Email, translate(err))
	}
	for _, u := range us {
		if err := s.conn(ctx).Exec(`INSERT INTO group_members (group_id, user_id) VALUES (?, ?)`, g.ID, u.ID).Error; err != nil {
			return nil, fmt.Errorf("add %s to %s: %w", u.Email, g.Email, translate(err))
		}
	}
	sort.Slice(us, func(i, j int) bool { return us[i].Email < us[j].Email })
	return us, nil
}

// Recipient is what a local address resolves to.
type Recipient struct {
	Address string // the normalized address asked for
	Group   *Group // set when the address is a group
	Users   []User // the user, or the group's members
	// Inboxes maps user id to INBOX id, when the lookup read them.
	Inboxes map[int64]int64
}

// ResolveAddress looks a local address up. An address in no hosted domain, or
// unknown in a hosted one, is ErrNotFound.
func (s *Store) ResolveAddress(ctx context.Context, email string) (*Recipient, error) {
	n, err := NormalizeEmail(email)
	if err != nil {
		return nil, Invalid("address", err.Error())
	}
	var kind string
	if err := s.conn(ctx).Raw(`SELECT kind FROM addresses WHERE address = ?`, n).Scan(&kind).Error; err != nil {
		return nil, fmt.Errorf("resolve %s: %w", n, translate(err))
	}
	r := &Recipient{Address: n}
	switch kind {
	case "user":
		u, err := s.GetUser(ctx, n)
		if err != nil {
			return nil, err
		}
		r.Users = []User{*u}
	case "group":
		g, err := s.GetGroup(ctx, n)
		if err != nil {
			return nil, err
		}
		r.Group = g
		if r.Users, err = s.GroupMembers(ctx, g.ID); err != nil {
			return nil, err
		}
	default:
		return nil, notFound("address " + n)
	}
	return r, nil
}

// Lookup is what the recipient check needs to know about one address, read in
// one query on the hot path of every RCPT.
type Lookup struct {
	DomainFound    bool
	DomainDisabled bool
	Recipient      *Recipient // nil when the address is unknown in the domain
}

// LookupRecipient resolves a normalized address with its domain, and each
// user's INBOX, in one query (two for a group).
func (s *Store) LookupRecipient(ctx context.Context, email string) (*Lookup, error) {
	_, domain := SplitEmail(email)
	var rows []struct {
		DomainDisabled bool
		AddrKind       *string
		User
		InboxID *int64
	}
	err := s.scan(ctx, &rows, `SELECT d.disabled AS domain_disabled, a.kind AS addr_kind, u.*, mb.id AS inbox_id
		FROM domains d
		LEFT JOIN addresses a ON a.address = ? AND a.domain_id = d.id
		LEFT JOIN users u ON u.email = a.address AND a.kind = 'user'
		LEFT JOIN mailboxes mb ON mb.user_id = u.id AND mb.name = ?
		WHERE d.name = ?`, email, Inbox, domain)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", email, translate(err))
	}
	l := &Lookup{}
	if len(rows) == 0 {
		return l, nil
	}
	r := rows[0]
	l.DomainFound, l.DomainDisabled = true, r.DomainDisabled
	if r.AddrKind == nil {
		return l, nil
	}
	rc := &Recipient{Address: email, Inboxes: map[int64]int64{}}
	switch *r.AddrKind {
	case "user":
		rc.Users = []User{r.User}
		if r.InboxID != nil {
			rc.Inboxes[r.User.ID] = *r.InboxID
		}
	case "group":
		g, err := s.GetGroup(ctx, email)
		if err != nil {
			return nil, err
		}
		rc.Group = g
		var ms []struct {
			User
			InboxID *int64
		}
		err = s.scan(ctx, &ms, `SELECT u.*, mb.id AS inbox_id FROM group_members m JOIN users u ON u.id = m.user_id
			LEFT JOIN mailboxes mb ON mb.user_id = u.id AND mb.name = ?
			WHERE m.group_id = ? ORDER BY u.email`, Inbox, g.ID)
		if err != nil {
			return nil, fmt.Errorf("members of %s: %w", email, translate(err))
		}
		for _, m := range ms {
			rc.Users = append(rc.Users, m.User)
			if m.InboxID != nil {
				rc.Inboxes[m.User.ID] = *m.InboxID
			}
		}
	}
	l.Recipient = rc
	return l, nil
}
