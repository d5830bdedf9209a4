package handlers

import (
	"time"

	"github.com/mailgate/mailgate/models"
)

// User is a user as the API shows it. The password is never shown.
type User struct {
	Email       string    `json:"email" format:"email" example:"alice@example.com"`
	Domain      string    `json:"domain" example:"example.com"`
	DisplayName string    `json:"display_name" example:"Alice Liddell"`
	Role        string    `json:"role" enums:"user,admin" example:"user"`
	QuotaBytes  int64     `json:"quota_bytes" example:"1073741824"` // 0: no limit
	UsedBytes   int64     `json:"used_bytes" example:"52431"`
	Disabled    bool      `json:"disabled" example:"false"`
	CreatedAt   time.Time `json:"created_at" format:"date-time"`
	UpdatedAt   time.Time `json:"updated_at" format:"date-time"`
} //@name User

// UserPage is one page of users.
type UserPage struct {
	Items []User `json:"items"`
	// Pass as ?cursor= to get the next page; empty on the last page.
	NextCursor string `json:"next_cursor"`
} //@name UserPage

// Domain is a hosted domain.
type Domain struct {
	Name        string    `json:"name" example:"example.com"`
	Description string    `json:"description" example:"Main office"`
	Disabled    bool      `json:"disabled" example:"false"`
	Users       int64     `json:"users" example:"12"`
	Groups      int64     `json:"groups" example:"3"`
	CreatedAt   time.Time `json:"created_at" format:"date-time"`
	UpdatedAt   time.Time `json:"updated_at" format:"date-time"`
} //@name Domain

// DomainPage is one page of domains.
type DomainPage struct {
	Items      []Domain `json:"items"`
	NextCursor string   `json:"next_cursor"`
} //@name DomainPage

// Group is a group address and its members.
type Group struct {
	Email     string    `json:"email" format:"email" example:"team@example.com"`
	Domain    string    `json:"domain" example:"example.com"`
	Name      string    `json:"name" example:"The team"`
	Members   []string  `json:"members" example:"alice@example.com,bob@example.com"`
	CreatedAt time.Time `json:"created_at" format:"date-time"`
	UpdatedAt time.Time `json:"updated_at" format:"date-time"`
} //@name Group

// GroupPage is one page of groups.
type GroupPage struct {
	Items      []Group `json:"items"`
	NextCursor string  `json:"next_cursor"`
} //@name GroupPage

// MemberList lists a group's members.
type MemberList struct {
	Items []string `json:"items" example:"alice@example.com,bob@example.com"`
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
