package handlers

import (
	"time"

	"github.com/mailgate/mailgate/models"
)

// User is a user as the API shows it. The password is never shown.
type User struct {
	Email       string    `json:"email" format:"email" example:"alice@example.com" binding:"required"`
	Domain      string    `json:"domain" example:"example.com" binding:"required"`
	DisplayName string    `json:"display_name" example:"Alice Liddell" binding:"required"`
	Role        string    `json:"role" enums:"user,admin" example:"user" binding:"required"`
	QuotaBytes  int64     `json:"quota_bytes" example:"1073741824" binding:"required"` // 0: no limit
	UsedBytes   int64     `json:"used_bytes" example:"52431" binding:"required"`
	Disabled    bool      `json:"disabled" example:"false" binding:"required"`
	CreatedAt   time.Time `json:"created_at" format:"date-time" binding:"required"`
	UpdatedAt   time.Time `json:"updated_at" format:"date-time" binding:"required"`
} //@name User

// UserPage is one page of users.
type UserPage struct {
	Items []User `json:"items" binding:"required"`
	// Pass as ?cursor= to get the next page; empty on the last page.
	NextCursor string `json:"next_cursor" binding:"required"`
} //@name UserPage

// Domain is a hosted domain.
type Domain struct {
	Name        string    `json:"name" example:"example.com" binding:"required"`
	Description string    `json:"description" example:"Main office" binding:"required"`
	Disabled    bool      `json:"disabled" example:"false" binding:"required"`
	Users       int64     `json:"users" example:"12" binding:"required"`
	Groups      int64     `json:"groups" example:"3" binding:"required"`
	CreatedAt   time.Time `json:"created_at" format:"date-time" binding:"required"`
	UpdatedAt   time.Time `json:"updated_at" format:"date-time" binding:"required"`
} //@name Domain

// DomainPage is one page of domains.
type DomainPage struct {
	Items      []Domain `json:"items" binding:"required"`
	NextCursor string   `json:"next_cursor" binding:"required"`
} //@name DomainPage

// Group is a group address and its members.
type Group struct {
	Email     string    `json:"email" format:"email" example:"team@example.com" binding:"required"`
	Domain    string    `json:"domain" example:"example.com" binding:"required"`
	Name      string    `json:"name" example:"The team" binding:"required"`
	Members   []string  `json:"members" example:"alice@example.com,bob@example.com" binding:"required"`
	CreatedAt time.Time `json:"created_at" format:"date-time" binding:"required"`
	UpdatedAt time.Time `json:"updated_at" format:"date-time" binding:"required"`
} //@name Group

// GroupPage is one page of groups.
type GroupPage struct {
	Items      []Group `json:"items" binding:"required"`
	NextCursor string  `json:"next_cursor" binding:"required"`
} //@name GroupPage

// MemberList lists a group's members.
type MemberList struct {
	Items []string `json:"items" example:"alice@example.com,bob@example.com" binding:"required"`
} //@name MemberList

func userDTO(u *models.User, used int64) User {
	_, dom := models.SplitEmail(u.Email)
	return User{Email: u.Email, Domain: dom, DisplayName: u.DisplayName, Role: u.Role, QuotaBytes: u.QuotaBytes,
		UsedBytes: used, Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC()}
}

func domainDTO(d *models.Domain, c models.DomainCounts) Domain {
	return Domain{Name: d.Name, Description: d.Description, Disabled: d.Disabled, Users: c.Users, Groups: c.Groups,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
}

func groupDTO(g *models.Group, members []string) Group {
	if members == nil {
		members = []string{}
	}
	_, dom := models.SplitEmail(g.Email)
	return Group{Email: g.Email, Domain: dom, Name: g.Name, Members: members, CreatedAt: g.CreatedAt.UTC(), UpdatedAt: g.UpdatedAt.UTC()}
}
