package models

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// NewUser is what CreateUser needs; the password is already hashed.
type NewUser struct {
	Email        string
	PasswordHash string
	DisplayName  string
	Role         string
	QuotaBytes   int64
}

// UserPatch lists the fields of a user to change; nil leaves a field alone.
// Changing the password or disabling the user ends every token issued before.
type UserPatch struct {
	PasswordHash *string
	DisplayName  *string
	Role         *string
	QuotaBytes   *int64
	Disabled     *bool
}

// CreateUser adds a user in an existing domain, with the default mailboxes.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	email, err := NormalizeEmail(nu.Email)
	if err != nil {
		return nil, Invalid("email", err.Error())
	}
	if nu.Role == "" {
		nu.Role = RoleUser
	}
	if nu.Role != RoleUser && nu.Role != RoleAdmin {
		return nil, Invalid("role", `must be "user" or "admin"`)
	}
	if nu.QuotaBytes < 0 {
		return nil, Invalid("quota_bytes", "must not be negative")
	}
	var u *User
	err = s.Tx(ctx, func(tx *Store) error {
		d, err := tx.addAddress(ctx, email, "user")
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		u = &User{Email: email, DomainID: d.ID, PasswordHash: nu.PasswordHash, DisplayName: nu.DisplayName,
			Role: nu.Role, QuotaBytes: nu.QuotaBytes, CreatedAt: now, UpdatedAt: now}
		if err := tx.conn(ctx).Create(u).Error; err != nil {
			return fmt.Errorf("insert user %s: %w", email, translate(err))
		}
		for _, m := range DefaultMailboxes {
			if _, err := tx.CreateMailbox(ctx, u.ID, m.Name, m.SpecialUse); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// addAddress claims a local address for a user or group. The domain must be
// hosted here and the address free of both users and groups.
func (s *Store) addAddress(ctx context.Context, email, kind string) (*Domain, error) {
	_, domain := SplitEmail(email)
	d, err := s.GetDomain(ctx, domain)
	if errors.Is(err, ErrNotFound) {
		return nil, Invalid("email", fmt.Sprintf("domain %s is not hosted here; create it first", domain))
	}
	if err != nil {
		return nil, err
	}
	res := s.conn(ctx).Exec(`INSERT INTO addresses (address, kind, domain_id) VALUES (?, ?, ?) ON CONFLICT (address) DO NOTHING`, email, kind, d.ID)
	if res.Error != nil {
		return nil, fmt.Errorf("claim address %s: %w", email, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		var owner string
		s.conn(ctx).Raw(`SELECT kind FROM addresses WHERE address = ?`, email).Scan(&owner)
		return nil, &ConflictError{Reason: fmt.Sprintf("address %s is already taken by a %s", email, owner)}
	}
	return d, nil
}

// GetUser finds a user by address (any case or IDNA form).
func (s *Store) GetUser(ctx context.Context, email string) (*User, error) {
	n, err := NormalizeEmail(email)
	if err != nil {
		return nil, notFound("user " + email)
	}
	var u User
	if err := s.conn(ctx).Where("email = ?", n).Take(&u).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("user " + n)
		}
		return nil, fmt.Errorf("get user %s: %w", n, err)
	}
	return &u, nil
}

// GetUserByID finds a user by id.
func (s *Store) GetUserByID(ctx context.Context, id int64) (*User, error) {
	var u User
	if err := s.conn(ctx).Where("id = ?", id).Take(&u).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(fmt.Sprintf("user %d", id))
		}
		return nil, fmt.Errorf("get user %d: %w", id, err)
	}
	return &u, nil
}

// ListUsers pages through users in address order, optionally of one domain.
func (s *Store) ListUsers(ctx context.Context, domain string, p Page) ([]User, string, error) {
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
	var us []User
	if err := q.Find(&us).Error; err != nil {
		return nil, "", fmt.Errorf("list users: %w", translate(err))
	}
	us, next := trim(us, p.limit(), func(u User) string { return u.Email })
	return us, next, nil
}

// UpdateUser changes a user.
func (s *Store) UpdateUser(ctx context.Context, email string, p UserPatch) (*User, error) {
	var out *User
	err := s.Tx(ctx, func(tx *Store) error {
		u, err := tx.GetUser(ctx, email)
		if err != nil {
			return err
		}
		wasAdmin := u.IsAdmin() && !u.Disabled
		set := map[string]any{"updated_at": time.Now().UTC()}
		endTokens := false
		if p.PasswordHash != nil {
			set["password_hash"], u.PasswordHash = *p.PasswordHash, *p.PasswordHash
			endTokens = true
		}
		if p.DisplayName != nil {
			set["display_name"], u.DisplayName = *p.DisplayName, *p.DisplayName
		}
		if p.Role != nil {
			if *p.Role != RoleUser && *p.Role != RoleAdmin {
				return Invalid("role", `must be "user" or "admin"`)
			}
			set["role"], u.Role = *p.Role, *p.Role
		}
		if p.QuotaBytes != nil {
			if *p.QuotaBytes < 0 {
				return Invalid("quota_bytes", "must not be negative")
			}
			set["quota_bytes"], u.QuotaBytes = *p.QuotaBytes, *p.QuotaBytes
		}
		if p.Disabled != nil {
			if *p.Disabled && !u.Disabled {
				endTokens = true
			}
			set["disabled"], u.Disabled = *p.Disabled, *p.Disabled
		}
		if wasAdmin && (!u.IsAdmin() || u.Disabled) {
			if err := tx.keepAnAdmin(ctx); err != nil {
				return err
			}
		}
		if endTokens {
			u.TokenVersion++
			set["token_version"] = u.TokenVersion
		}
		if err := tx.conn(ctx).Model(&User{}).Where("id = ?", u.ID).Updates(set).Error; err != nil {
			return fmt.Errorf("update user %s: %w", u.Email, translate(err))
		}
		if endTokens {
			// Open sessions of the user (any front end, any instance) check again.
			if err := tx.Notify(ctx, UserTopic(u.ID)); err != nil {
				return err
			}
		}
		u.UpdatedAt = set["updated_at"].(time.Time)
		out = u
		return nil
	})
	return out, err
}

// DeleteUser removes a user with all its mailboxes and mail.
func (s *Store) DeleteUser(ctx context.Context, email string) error {
	return s.Tx(ctx, func(tx *Store) error {
		u, err := tx.GetUser(ctx, email)
		if err != nil {
			return err
		}
		if u.IsAdmin() && !u.Disabled {
			if err := tx.keepAnAdmin(ctx); err != nil {
				return err
			}
		}
		// The user row hangs off its address: removing the address removes it.
		if err := tx.conn(ctx).Exec("DELETE FROM addresses WHERE address = ?", u.Email).Error; err != nil {
			return fmt.Errorf("delete user %s: %w", u.Email, translate(err))
		}
		return tx.Notify(ctx, UserTopic(u.ID))
	})
}

// CountAdmins tells how many enabled admins exist.
func (s *Store) CountAdmins(ctx context.Context) (int64, error) {
	var n int64
	if err := s.conn(ctx).Model(&User{}).Where("role = ? AND disabled = ?", RoleAdmin, false).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count admins: %w", translate(err))
	}
	return n, nil
}

// ListAdmins lists enabled admins in address order (at most MaxPageSize).
func (s *Store) ListAdmins(ctx context.Context) ([]User, error) {
	var us []User
	if err := s.conn(ctx).Where("role = ? AND disabled = ?", RoleAdmin, false).Order("email").Limit(MaxPageSize).Find(&us).Error; err != nil {
		return nil, fmt.Errorf("list admins: %w", translate(err))
	}
	return us, nil
}

// keepAnAdmin refuses a change that would leave the server without an enabled
// admin (called before demoting, disabling or deleting one).
func (s *Store) keepAnAdmin(ctx context.Context) error {
	n, err := s.CountAdmins(ctx)
	if err != nil {
		return err
	}
	if n <= 1 {
		return &ConflictError{Reason: "this is the last enabled admin; make another admin first"}
	}
	return nil
}
