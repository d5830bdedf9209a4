package models

import "time"

// Roles a user can have.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// Domain is a virtual mail server: the addresses under it are local.
type Domain struct {
	ID          int64
	Name        string // lower-case ASCII (IDNA A-labels)
	Description string
	Disabled    bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// User is a person or program with a password, an address and mailboxes.
type User struct {
	ID           int64
	Email        string
	DomainID     int64
	PasswordHash string
	DisplayName  string
	Role         string
	QuotaBytes   int64 // 0: no limit
	Disabled     bool
	TokenVersion int64 // bumped to end every token issued before
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// IsAdmin reports whether u administers the server.
func (u *User) IsAdmin() bool { return u.Role == RoleAdmin }

// Group is an address whose mail reaches every member.
type Group struct {
	ID        int64
	Email     string
	DomainID  int64
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Mailbox is a folder of one user.
type Mailbox struct {
	ID            int64
	PublicID      string
	UserID        int64
	Name          string
	SpecialUse    string
	Subscribed    bool `gorm:"->"` // a subscription to its name exists: read from subscriptions, not a column
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq int64  `gorm:"column:highest_modseq"`
	RecentUID     uint32 `gorm:"column:recent_uid"`
	MessagesCount int64
	UnseenCount   int64
	SizeBytes     int64
	CreatedAt     time.Time
}

// Special-use attributes (RFC 6154) of the mailboxes every user gets.
const (
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialJunk    = `\Junk`
	SpecialArchive = `\Archive`
)

// Inbox is the name of the mailbox where mail arrives (case-insensitive in IMAP).
const Inbox = "INBOX"

// DefaultMailboxes are created with every user.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{Inbox, ""},
	{"Sent", SpecialSent},
	{"Drafts", SpecialDrafts},
	{"Trash", SpecialTrash},
	{"Junk", SpecialJunk},
}

// Content is a message's bytes, stored once, with what was learnt from parsing it.
type Content struct {
	ID            int64
	SHA256        []byte `gorm:"column:sha256"`
	Size          int64
	ChunkSize     int
	HeaderSize    int64
	Envelope      string // opaque to the store: written and read by the mail core
	BodyStructure string
	HeaderText    string // decoded header fields, one "Name: value" per line
	SearchText    string // decoded subject, addresses and text parts, for search
	LastUsedAt    time.Time
}

// Message is one message in one mailbox.
type Message struct {
	ID             int64
	PublicID       string
	UserID         int64
	MailboxID      int64
	ContentID      int64
	UID            uint32 `gorm:"column:uid"`
	ModSeq         int64  `gorm:"column:modseq"`
	InternalDate   time.Time
	Size           int64
	Seen           bool
	Answered       bool
	Flagged        bool
	Deleted        bool
	Draft          bool
	Keywords       string // space-separated, case preserved
	Subject        string
	FromAddr       string // JSON list of {name,email}
	ToAddrs        string // JSON list of {name,email}
	CcAddrs        string // JSON list of {name,email}
	SentAt         *time.Time
	MessageID      string `gorm:"column:message_id"`
	HasAttachments bool
	Preview        string
}

// Setting is one shared key/value pair.
type Setting struct {
	Key       string `gorm:"primaryKey"`
	Value     string
	UpdatedAt time.Time
}
