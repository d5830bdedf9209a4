package models

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DomainPatch lists the fields of a domain to change; nil leaves a field alone.
type DomainPatch struct {
	Description *string
	Disabled    *bool
}

// DomainCounts tells how many users and groups a domain holds.
type DomainCounts struct {
	Users  int64
	Groups int64
}

// CreateDomain adds a hosted domain. The name is normalized; a name that differs
// only in case (or in IDNA form) from an existing one is a conflict.
func (s *Store) CreateDomain(ctx context.Context, name, description string) (*Domain, error) {
	n, err := NormalizeDomain(name)
	if err != nil {
		return nil, Invalid("name", err.Error())
	}
	now := time.Now().UTC()
	d := &Domain{Name: n, Description: description, CreatedAt: now, UpdatedAt: now}
	if err := s.conn(ctx).Create(d).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrConflict) {
			return nil, &ConflictError{Reason: fmt.Sprintf("domain %s already exists", n)}
		}
		return nil, fmt.Errorf("create domain %s: %w", n, err)
	}
	return d, nil
}

// GetDomain finds a domain by name (any case or IDNA form).
func (s *Store) GetDomain(ctx context.Context, name string) (*Domain, error) {
	n, err := NormalizeDomain(name)
	if err != nil {
		return nil, notFound("domain " + name)
	}
	var d Domain
	if err := s.conn(ctx).Where("name = ?", n).Take(&d).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("domain " + n)
		}
		return nil, fmt.Errorf("get domain %s: %w", n, err)
	}
	return &d, nil
}

// ListDomains pages through domains in name order.
func (s *Store) ListDomains(ctx context.Context, p Page) ([]Domain, string, error) {
	var ds []Domain
	q := s.conn(ctx).Order("name").Limit(p.limit() + 1)
	if p.After != "" {
		q = q.Where("name > ?", p.After)
	}
	if err := q.Find(&ds).Error; err != nil {
		return nil, "", fmt.Errorf("list domains: %w", translate(err))
	}
	ds, next := trim(ds, p.limit(), func(d Domain) string { return d.Name })
	return ds, next, nil
}

// CountDomain tells how many users and groups a domain holds.
func (s *Store) CountDomain(ctx context.Context, domainID int64) (DomainCounts, error) {
	var c DomainCounts
	err := s.conn(ctx).Raw(`SELECT
		(SELECT count(*) FROM users WHERE domain_id = ?) AS users,
		(SELECT count(*) FROM groups WHERE domain_id = ?) AS groups`, domainID, domainID).Scan(&c).Error
	if err != nil {
		return c, fmt.Errorf("count domain %d: %w", domainID, translate(err))
	}
	return c, nil
}

// UpdateDomain changes a domain's description or disabled state.
func (s *Store) UpdateDomain(ctx context.Context, name string, p DomainPatch) (*Domain, error) {
	var out *Domain
	err := s.Tx(ctx, func(tx *Store) error {
		d, err := tx.GetDomain(ctx, name)
		if err != nil {
			return err
		}
		set := map[string]any{"updated_at": time.Now().UTC()}
		if p.Description != nil {
			set["description"] = *p.Description
			d.Description = *p.Description
		}
		if p.Disabled != nil {
			set["disabled"] = *p.Disabled
			d.Disabled = *p.Disabled
		}
		if err := tx.conn(ctx).Model(&Domain{}).Where("id = ?", d.ID).Updates(set).Error; err != nil {
			return fmt.Errorf("update domain %s: %w", d.Name, translate(err))
		}
		d.UpdatedAt = set["updated_at"].(time.Time)
		out = d
		return nil
	})
	return out, err
}

// DeleteDomain removes a domain. One that still holds users or groups is a
// conflict unless force is set; then they go with it, with all their mail.
func (s *Store) DeleteDomain(ctx context.Context, name string, force bool) error {
	return s.Tx(ctx, func(tx *Store) error {
		d, err := tx.GetDomain(ctx, name)
		if err != nil {
			return err
		}
		if !force {
			c, err := tx.CountDomain(ctx, d.ID)
			if err != nil {
				return err
			}
			if c.Users > 0 || c.Groups > 0 {
				return &ConflictError{Reason: fmt.Sprintf("domain %s still has %d users and %d groups; delete them first or use force=true", d.Name, c.Users, c.Groups)}
			}
		}
		var others, inside int64
		err = tx.conn(ctx).Raw(`SELECT
			(SELECT count(*) FROM users WHERE role = 'admin' AND disabled = ? AND domain_id <> ?),
			(SELECT count(*) FROM users WHERE role = 'admin' AND disabled = ? AND domain_id = ?)`, false, d.ID, false, d.ID).Row().Scan(&others, &inside)
		if err != nil {
			return fmt.Errorf("count admins: %w", translate(err))
		}
		if inside > 0 && others == 0 {
			return &ConflictError{Reason: fmt.Sprintf("domain %s holds the last enabled admin; make an admin in another domain first", d.Name)}
		}
		var users []int64
		if err := tx.conn(ctx).Raw("SELECT id FROM users WHERE domain_id = ?", d.ID).Scan(&users).Error; err != nil {
			return fmt.Errorf("list users of %s: %w", d.Name, translate(err))
		}
		if err := tx.conn(ctx).Exec("DELETE FROM domains WHERE id = ?", d.ID).Error; err != nil {
			return fmt.Errorf("delete domain %s: %w", d.Name, translate(err))
		}
		topics := make([]string, len(users))
		for i, id := range users {
			topics[i] = UserTopic(id)
		}
		return tx.notifyTopics(ctx, topics)
	})
}

// DomainHosted reports whether mail for domain (any case or IDNA form) is local.
// A disabled domain is still local: its addresses refuse mail rather than relay it.
func (s *Store) DomainHosted(ctx context.Context, name string) (bool, error) {
	d, err := s.GetDomain(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d != nil, nil
}
