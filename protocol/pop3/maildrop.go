package pop3

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/mailgate/mailgate/models"
)

// Authenticator checks a login; *auth.Authenticator fits.
type Authenticator interface {
	Check(ctx context.Context, email, password, remote string) (*models.User, error)
	WatchUser(ctx context.Context, u *models.User, revoked func(reason string))
}

// Maildrop is what POP3 needs of the mailbox service; *mailbox.Service fits.
type Maildrop interface {
	Get(ctx context.Context, userID int64, name string) (*models.Mailbox, error)
	MaildropMessages(ctx context.Context, mailboxID int64) ([]models.MaildropMessage, error)
	Content(ctx context.Context, contentID int64) (*models.Content, error)
	Open(ctx context.Context, c *models.Content, offset int64) io.Reader
	SetFlags(ctx context.Context, mailboxID int64, uids models.UIDSet, op models.FlagOp, flags models.Flags) ([]models.FlagChange, error)
	Expunge(ctx context.Context, mailboxID int64, uids models.UIDSet, onlyDeleted bool) ([]uint32, error)
	LockMaildrop(ctx context.Context, userID int64, owner string, ttl time.Duration) error
	RefreshMaildrop(ctx context.Context, userID int64, owner string, ttl time.Duration) error
	UnlockMaildrop(ctx context.Context, userID int64, owner string) error
}

// snapshot is the maildrop as the session sees it: fixed at login (RFC 1939
// §8), with the session's marks.
type snapshot struct {
	mailboxID int64
	msgs      []models.MaildropMessage
	deleted   []bool
	retrieved []bool
	count     int   // messages not marked deleted
	size      int64 // their octets
}

func newSnapshot(mailboxID int64, msgs []models.MaildropMessage) *snapshot {
	d := &snapshot{mailboxID: mailboxID, msgs: msgs, deleted: make([]bool, len(msgs)), retrieved: make([]bool, len(msgs))}
	d.reset()
	return d
}

// reset unmarks every message (RSET).
func (d *snapshot) reset() {
	d.count, d.size = len(d.msgs), 0
	for i := range d.msgs {
		d.deleted[i] = false
		d.size += d.msgs[i].Size
	}
}

// lookup finds a message by its number, as given by the client.
func (d *snapshot) lookup(arg string) (int, error) {
	n, ok := parseNumber(arg)
	if !ok || n < 1 || n > len(d.msgs) {
		return 0, errNoSuchMessage
	}
	if d.deleted[n-1] {
		return 0, errDeleted
	}
	return n - 1, nil
}

func (d *snapshot) markDeleted(i int) {
	d.deleted[i] = true
	d.count--
	d.size -= d.msgs[i].Size
}

// marked returns the UIDs of the messages marked deleted, and of those
// retrieved and kept.
func (d *snapshot) marked() (deleted, retrieved []uint32) {
	for i, m := range d.msgs {
		switch {
		case d.deleted[i]:
			deleted = append(deleted, m.UID)
		case d.retrieved[i]:
			retrieved = append(retrieved, m.UID)
		}
	}
	return deleted, retrieved
}

// lease is a session's hold on a maildrop lock, renewed in the background.
type lease struct {
	userID int64
	owner  string
	stop   context.CancelFunc
	done   chan struct{}
}

// keep renews the lease every ttl/3 until ctx ends. If another session took
// the lease over (this one stalled past its expiry), exclusive access is gone
// and lost is called to end the session. A failure to reach the store is only
// logged: the lease outlives two missed renewals.
func (l *lease) keep(ctx context.Context, m Maildrop, ttl time.Duration, log *slog.Logger, lost func()) {
	defer close(l.done)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, ttl/3)
		err := m.RefreshMaildrop(rctx, l.userID, l.owner, ttl)
		cancel()
		switch {
		case errors.Is(err, models.ErrMaildropLost):
			log.Warn("maildrop lock lost to another session; closing", "owner", l.owner)
			lost()
			return
		case err != nil && ctx.Err() == nil:
			log.Warn("renew maildrop lock", "err", err)
		}
	}
}
