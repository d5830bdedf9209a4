// Package mailbox is the one set of mailbox operations every front end uses
// (IMAP, POP3, the HTTP API and local delivery): folders, storing messages,
// flags, copy, move and expunge with the UID and modification-sequence rules of
// RFC 3501/9051, and the change notices that carry each change to every session
// on every instance.
package mailbox

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// Options tune a Service.
type Options struct {
	// SpoolDir holds temporary files of large incoming messages ("": system default).
	SpoolDir string
	// MaxMessageBytes caps the size of a stored message (0: 25 MiB).
	MaxMessageBytes int64
	Logger          *slog.Logger
}

// Service implements the mailbox operations on a store.
type Service struct {
	store *models.Store
	opt   Options
}

// New returns a Service.
func New(store *models.Store, opt Options) *Service {
	if opt.MaxMessageBytes <= 0 {
		opt.MaxMessageBytes = 25 << 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, opt: opt}
}

// MaxMessageBytes is the size limit of one message.
func (s *Service) MaxMessageBytes() int64 { return s.opt.MaxMessageBytes }

// NewSpool returns a spool for one incoming message, limited to MaxMessageBytes.
func (s *Service) NewSpool() *message.Spool {
	return message.NewSpool(s.opt.SpoolDir, s.opt.MaxMessageBytes)
}

// Prepared is a message hashed and parsed, ready to be stored in a transaction.
type Prepared struct {
	src     message.Source
	content models.Content
	meta    models.MessageMeta
	Parsed  *message.Parsed
}

// Size is the message's size in octets.
func (p *Prepared) Size() int64 { return p.content.Size }

// Put is the message's content as the store takes it in a models.Delivery.
func (p *Prepared) Put() models.ContentPut {
	return models.ContentPut{Content: p.content, Body: p.src.Reader}
}

// Meta is what the message's listing columns hold.
func (p *Prepared) Meta() models.MessageMeta { return p.meta }

// Prepare hashes and parses a message. It does no database work, so it belongs
// before the transaction that stores the message.
func (s *Service) Prepare(src message.Source) (*Prepared, error) {
	h := sha256.New()
	n, err := io.Copy(h, src.Reader())
	if err != nil {
		return nil, fmt.Errorf("hash message: %w", err)
	}
	if n != src.Size() {
		return nil, fmt.Errorf("message is %d bytes, source says %d", n, src.Size())
	}
	p, err := message.Parse(src.Reader())
	if err != nil {
		return nil, fmt.Errorf("parse message: %w", err)
	}
	return &Prepared{
		src: src,
		content: models.Content{
			SHA256: h.Sum(nil), Size: n, HeaderSize: p.HeaderSize,
			Envelope: message.EncodeEnvelope(p.Envelope), BodyStructure: message.EncodeBodyStructure(p.BodyStructure),
			HeaderText: p.HeaderText, SearchText: p.SearchText,
		},
		meta: models.MessageMeta{
			Subject: p.Subject, FromAddr: message.AddressesJSON(p.From), ToAddrs: message.AddressesJSON(p.To),
			CcAddrs: message.AddressesJSON(p.Cc), SentAt: p.Date, MessageID: p.MessageID,
			HasAttachments: p.HasAttachments, Preview: p.Preview,
		},
		Parsed: p,
	}, nil
}

// PutContentTx stores a prepared message's content inside tx and returns its id.
func (s *Service) PutContentTx(ctx context.Context, tx *models.Store, p *Prepared) (int64, error) {
	if p.content.ID != 0 {
		return p.content.ID, nil
	}
	c := p.content
	id, err := tx.PutContent(ctx, &c, p.src.Reader())
	if err != nil {
		return 0, err
	}
	return id, nil
}

// AppendTx stores a prepared message into each target mailbox inside tx. A target
// over quota gets ErrQuota in its result; the others get the message.
func (s *Service) AppendTx(ctx context.Context, tx *models.Store, p *Prepared, targets []models.AppendTarget) ([]models.AppendResult, error) {
	id, err := s.PutContentTx(ctx, tx, p)
	if err != nil {
		return nil, err
	}
	return tx.AppendMessages(ctx, id, p.content.Size, p.meta, targets)
}

// Append stores one message into one of the user's mailboxes (IMAP APPEND, the
// copy of sent mail). r is read to the end; a message over the size limit is
// ErrTooLarge (from package message) and nothing is stored.
func (s *Service) Append(ctx context.Context, userID int64, mailbox string, r io.Reader, flags models.Flags, date time.Time) (*models.Message, error) {
	mb, err := s.store.MailboxByName(ctx, userID, mailbox)
	if err != nil {
		return nil, err
	}
	sp := s.NewSpool()
	defer sp.Close()
	if _, err := io.Copy(sp, r); err != nil {
		return nil, fmt.Errorf("receive message: %w", err)
	}
	if err := sp.Finish(); err != nil {
		return nil, err
	}
	return s.AppendSource(ctx, mb, sp, flags, date)
}

// AppendSource stores a message from src into mailbox mb.
func (s *Service) AppendSource(ctx context.Context, mb *models.Mailbox, src message.Source, flags models.Flags, date time.Time) (*models.Message, error) {
	p, err := s.Prepare(src)
	if err != nil {
		return nil, err
	}
	var msg *models.Message
	err = s.store.Tx(ctx, func(tx *models.Store) error {
		res, err := s.AppendTx(ctx, tx, p, []models.AppendTarget{{MailboxID: mb.ID, UserID: mb.UserID, Flags: flags, InternalDate: date}})
		if err != nil {
			return err
		}
		msg = res[0].Message
		return res[0].Err
	})
	if err != nil {
		return nil, fmt.Errorf("append to %q: %w", mb.Name, err)
	}
	return msg, nil
}

// Mailboxes lists a user's mailboxes.
func (s *Service) Mailboxes(ctx context.Context, userID int64) ([]models.Mailbox, error) {
	return s.store.Mailboxes(ctx, userID)
}

// Get finds a user's mailbox by name.
func (s *Service) Get(ctx context.Context, userID int64, name string) (*models.Mailbox, error) {
	return s.store.MailboxByName(ctx, userID, name)
}

// GetByPublicID finds a user's mailbox by its public id.
func (s *Service) GetByPublicID(ctx context.Context, userID int64, id string) (*models.Mailbox, error) {
	return s.store.MailboxByPublicID(ctx, userID, id)
}

// GetByID reloads a mailbox (its counters, UIDNEXT, HIGHESTMODSEQ).
func (s *Service) GetByID(ctx context.Context, id int64) (*models.Mailbox, error) {
	return s.store.MailboxByID(ctx, id)
}

// BySpecialUse finds the user's mailbox with a special-use attribute (\Sent…).
func (s *Service) BySpecialUse(ctx context.Context, userID int64, use string) (*models.Mailbox, error) {
	return s.store.MailboxBySpecialUse(ctx, userID, use)
}

// Create makes a mailbox, and any missing parents in its hierarchy (RFC 3501
// §6.3.3), subscribing to none of them: IMAP's CREATE, after which a client
// subscribes with SUBSCRIBE if it wants to. An existing mailbox is
// ErrConflict.
func (s *Service) Create(ctx context.Context, userID int64, name, specialUse string) (*models.Mailbox, error) {
	return s.create(ctx, userID, name, specialUse, false)
}

// CreateSubscribed is Create that also subscribes to each mailbox it makes:
// the HTTP API's, where a new mailbox is subscribed so that mail clients
// showing only subscribed mailboxes show it.
func (s *Service) CreateSubscribed(ctx context.Context, userID int64, name, specialUse string) (*models.Mailbox, error) {
	return s.create(ctx, userID, name, specialUse, true)
}

func (s *Service) create(ctx context.Context, userID int64, name, specialUse string, subscribe bool) (*models.Mailbox, error) {
	name = models.CanonicalMailboxName(name)
	if err := models.ValidateMailboxName(name); err != nil {
		return nil, err
	}
	if err := s.createParents(ctx, userID, name, subscribe); err != nil {
		return nil, err
	}
	return s.createOne(ctx, userID, name, specialUse, subscribe)
}

func (s *Service) createOne(ctx context.Context, userID int64, name, specialUse string, subscribe bool) (*models.Mailbox, error) {
	if subscribe {
		return s.store.CreateMailbox(ctx, userID, name, specialUse)
	}
	return s.store.CreateMailboxUnsubscribed(ctx, userID, name, specialUse)
}

// Rename renames a mailbox with its children: IMAP's RENAME. Renaming INBOX
// moves its messages to a new mailbox and leaves INBOX empty (RFC 3501
// §6.3.5). Subscriptions are names and stay as they are, as Dovecot leaves
// them (RFC 9051 leaves it to the server); a client subscribes to the new
// names itself.
func (s *Service) Rename(ctx context.Context, userID int64, from, to string) error {
	return s.rename(ctx, userID, from, to, false)
}

// RenameWithSubscriptions renames like Rename, and each renamed mailbox keeps
// its subscription under its new name: the HTTP API's, which shows being
// subscribed as a property of the mailbox.
func (s *Service) RenameWithSubscriptions(ctx context.Context, userID int64, from, to string) error {
	return s.rename(ctx, userID, from, to, true)
}

func (s *Service) rename(ctx context.Context, userID int64, from, to string, subscriptions bool) error {
	from, to = models.CanonicalMailboxName(from), models.CanonicalMailboxName(to)
	if to == models.Inbox {
		return &models.ConflictError{Reason: "INBOX already exists"}
	}
	if from != models.Inbox {
		if err := s.createParents(ctx, userID, to, subscriptions); err != nil {
			return err
		}
		if subscriptions {
			return s.store.RenameMailboxAndSubscriptions(ctx, userID, from, to)
		}
		return s.store.RenameMailbox(ctx, userID, from, to)
	}
	inbox, err := s.store.MailboxByName(ctx, userID, models.Inbox)
	if err != nil {
		return err
	}
	dest, err := s.create(ctx, userID, to, "", subscriptions)
	if err != nil {
		return err
	}
	_, err = s.store.MoveMessages(ctx, inbox.ID, models.All, dest.ID)
	return err
}

func (s *Service) createParents(ctx context.Context, userID int64, name string, subscribe bool) error {
	levels := strings.Split(name, models.Delimiter)
	for i := 1; i < len(levels); i++ {
		parent := strings.Join(levels[:i], models.Delimiter)
		if _, err := s.createOne(ctx, userID, parent, "", subscribe); err != nil && !errors.Is(err, models.ErrConflict) {
			return err
		}
	}
	return nil
}

// Delete removes a mailbox and its messages. INBOX cannot be deleted. A
// subscription to its name stays: RFC 9051 §6.3.7 forbids the server to
// remove it.
func (s *Service) Delete(ctx context.Context, userID int64, name string) error {
	if models.CanonicalMailboxName(name) == models.Inbox {
		return fmt.Errorf("delete INBOX: %w", models.ErrForbidden)
	}
	return s.store.DeleteMailbox(ctx, userID, name)
}

// SetSubscribed subscribes the user to a mailbox name, or ends the
// subscription (RFC 9051 §6.3.7, §6.3.8). The name need not be a mailbox's;
// unsubscribing a name that is not subscribed succeeds.
func (s *Service) SetSubscribed(ctx context.Context, userID int64, name string, on bool) error {
	return s.store.SetSubscribed(ctx, userID, name, on)
}

// Subscriptions lists the names the user is subscribed to, in name order,
// whether or not mailboxes have them.
func (s *Service) Subscriptions(ctx context.Context, userID int64) ([]string, error) {
	return s.store.Subscriptions(ctx, userID)
}

// The message operations below act on a mailbox the caller has already looked up
// for its user (Get, GetByPublicID): they trust mailboxID.

// SetFlags changes flags of messages of a mailbox and returns those that changed.
func (s *Service) SetFlags(ctx context.Context, mailboxID int64, uids models.UIDSet, op models.FlagOp, flags models.Flags) ([]models.FlagChange, error) {
	return s.store.SetFlags(ctx, mailboxID, uids, op, flags)
}

// Expunge removes messages of a mailbox (only \Deleted ones when onlyDeleted).
func (s *Service) Expunge(ctx context.Context, mailboxID int64, uids models.UIDSet, onlyDeleted bool) ([]uint32, error) {
	return s.store.Expunge(ctx, mailboxID, uids, onlyDeleted)
}

// Copy copies messages to another mailbox of the same user.
func (s *Service) Copy(ctx context.Context, fromID int64, uids models.UIDSet, toID int64) (*models.CopyResult, error) {
	return s.store.CopyMessages(ctx, fromID, uids, toID)
}

// Move moves messages to another mailbox of the same user.
func (s *Service) Move(ctx context.Context, fromID int64, uids models.UIDSet, toID int64) (*models.CopyResult, error) {
	return s.store.MoveMessages(ctx, fromID, uids, toID)
}

// Message finds a user's message by its public id.
func (s *Service) Message(ctx context.Context, userID int64, publicID string) (*models.Message, error) {
	return s.store.MessageByPublicID(ctx, userID, publicID)
}

// MessageByUID finds one message of a mailbox.
func (s *Service) MessageByUID(ctx context.Context, mailboxID int64, uid uint32) (*models.Message, error) {
	return s.store.MessageByUID(ctx, mailboxID, uid)
}

// Messages calls fn for each message of a mailbox with a UID in uids, in order.
func (s *Service) Messages(ctx context.Context, mailboxID int64, uids models.UIDSet, fn func(*models.Message) error) error {
	return s.store.MessagesByUID(ctx, mailboxID, uids, fn)
}

// Content loads what was learnt about a message's content at delivery.
func (s *Service) Content(ctx context.Context, contentID int64) (*models.Content, error) {
	return s.store.GetContent(ctx, contentID)
}

// Open streams a message's bytes from offset on.
func (s *Service) Open(ctx context.Context, c *models.Content, offset int64) io.Reader {
	return s.store.OpenContent(ctx, c.ID, c.Size, c.ChunkSize, offset)
}

// OpenMessage streams a whole message.
func (s *Service) OpenMessage(ctx context.Context, m *models.Message) (io.Reader, error) {
	c, err := s.store.GetContent(ctx, m.ContentID)
	if err != nil {
		return nil, err
	}
	return s.Open(ctx, c, 0), nil
}

// ChangesSince reports what changed in a mailbox after a modification sequence.
func (s *Service) ChangesSince(ctx context.Context, mailboxID, modseq int64) (*models.Changes, error) {
	return s.store.ChangesSince(ctx, mailboxID, modseq)
}

// UIDRanges returns the UIDs of a mailbox as ranges and the modseq they reflect.
func (s *Service) UIDRanges(ctx context.Context, mailboxID int64) (models.UIDSet, int64, error) {
	return s.store.UIDRanges(ctx, mailboxID)
}

// Watch signals after each change to a mailbox, from any front end or instance.
// Signals carry no data and coalesce: read ChangesSince after one.
func (s *Service) Watch(mailboxID int64) (<-chan struct{}, func()) {
	return s.store.Subscribe(models.MailboxTopic(mailboxID))
}

// WatchList signals after a user's mailboxes are created, renamed or deleted.
func (s *Service) WatchList(userID int64) (<-chan struct{}, func()) {
	return s.store.Subscribe(models.MailboxListTopic(userID))
}

// Sweep removes message content no longer referenced, last used before olderThan.
func (s *Service) Sweep(ctx context.Context, olderThan time.Time) (int64, error) {
	return s.store.SweepContents(ctx, olderThan)
}
