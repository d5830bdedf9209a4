package imap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// Why not imapserver.MailboxTracker: its SessionTracker hides how many
// messages the client has been told of (needed for "*" in sequence sets), its
// EncodeSeqNum does not handle an EXISTS that grows by more than one message
// (a TODO in beta.8), and it queues one entry per flag change per session. The
// view below keeps, per session, only what the session has not been told yet,
// keyed by UID, and maps sequence numbers exactly from the shared ranges.

// How long and how many unselected mailbox states stay loaded, so that
// re-selecting a large mailbox costs a catch-up of its changes, not a reload.
const (
	idleStateTTL  = 5 * time.Minute
	maxIdleStates = 128
	// resyncEvery bounds how often a state compares its count of messages with
	// the database's, the check that notices lost changes.
	resyncEvery = time.Minute
)

// registry holds the process's shared states, one per mailbox in use.
type registry struct {
	mbox *mailbox.Service
	log  *slog.Logger
	ctx  context.Context // the server's lifetime: watchers stop with it

	mu     sync.Mutex
	states map[int64]*mailboxState
}

func newRegistry(ctx context.Context, mbox *mailbox.Service, log *slog.Logger) *registry {
	return &registry{mbox: mbox, log: log, ctx: ctx, states: make(map[int64]*mailboxState)}
}

// mailboxState is the process's view of one mailbox, shared by every session
// that has it selected.
type mailboxState struct {
	id  int64     // immutable
	reg *registry // immutable

	// Guarded by reg.mu.
	refs      int
	idleSince time.Time
	stopWatch func()

	applyMu sync.Mutex // serializes reads of the database into the state

	mu         sync.Mutex // guards what follows and every view's pending updates
	uids       *rangeList // nil until loaded
	applied    int64      // highest modification sequence reflected in uids
	uidNext    uint32
	gone       bool // the mailbox was deleted
	views      map[*view]struct{}
	lastResync time.Time
	// keywords are the keywords used in the mailbox, by lower case, as first
	// seen: the store's list when loaded, then those of every change applied
	// (RFC 9051 §7.3.5: SELECT's FLAGS lists them).
	keywords map[string]string
}

// acquire returns the loaded, up-to-date state of a mailbox, with a
// reference the caller gives back with release.
func (r *registry) acquire(ctx context.Context, id int64) (*mailboxState, error) {
	r.mu.Lock()
	st := r.states[id]
	if st == nil || st.isGone() {
		st = &mailboxState{id: id, reg: r, views: make(map[*view]struct{})}
		r.states[id] = st
	}
	st.refs++
	if st.refs == 1 {
		st.startWatch() // before loading, so no change after the load goes unsignalled
	}
	r.evictLocked(time.Now())
	r.mu.Unlock()
	if err := st.load(ctx); err != nil {
		r.release(st)
		return nil, err
	}
	if err := st.apply(ctx); err != nil {
		r.release(st)
		return nil, err
	}
	if st.isGone() {
		r.release(st)
		return nil, &models.NotFoundError{What: fmt.Sprintf("mailbox %d", id)}
	}
	return st, nil
}

func (r *registry) release(st *mailboxState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st.refs--
	if st.refs > 0 {
		return
	}
	if st.stopWatch != nil {
		st.stopWatch()
		st.stopWatch = nil
	}
	st.idleSince = time.Now()
	if st.isGone() && r.states[st.id] == st {
		delete(r.states, st.id)
	}
	r.evictLocked(st.idleSince)
}

// evictLocked drops states unused for a while, and the oldest unused ones
// beyond maxIdleStates.
func (r *registry) evictLocked(now time.Time) {
	var idle []*mailboxState
	for id, st := range r.states {
		if st.refs > 0 {
			continue
		}
		if now.Sub(st.idleSince) > idleStateTTL {
			delete(r.states, id)
			continue
		}
		idle = append(idle, st)
	}
	for len(idle) > maxIdleStates {
		oldest := 0
		for i, st := range idle {
			if st.idleSince.Before(idle[oldest].idleSince) {
				oldest = i
			}
		}
		delete(r.states, idle[oldest].id)
		idle = append(idle[:oldest], idle[oldest+1:]...)
	}
}

// startWatch runs, while the state is referenced, a goroutine that applies
// the mailbox's changes as their signals arrive, so IDLE sessions hear of
// them without sending a command. Called with r.mu held.
func (st *mailboxState) startWatch() {
	sig, unsubscribe := st.reg.mbox.Watch(st.id)
	stop := make(chan struct{})
	st.stopWatch = func() { close(stop); unsubscribe() }
	go func() {
		var retry <-chan time.Time
		for {
			select {
			case <-stop:
				return
			case <-st.reg.ctx.Done():
				return
			case <-sig:
			case <-retry:
			}
			retry = nil
			ctx, cancel := context.WithTimeout(st.reg.ctx, 30*time.Second)
			err := st.apply(ctx)
			cancel()
			if err != nil && st.reg.ctx.Err() == nil {
				st.reg.log.Warn("apply mailbox changes; retrying", "mailbox", st.id, "err", err)
				retry = time.After(time.Second)
			}
		}
	}()
}

func (st *mailboxState) isGone() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.gone
}

// load reads the mailbox's UIDs the first time the state is used.
func (st *mailboxState) load(ctx context.Context) error {
	st.applyMu.Lock()
	defer st.applyMu.Unlock()
	st.mu.Lock()
	loaded := st.uids != nil
	st.mu.Unlock()
	if loaded {
		return nil
	}
	mb, err := st.reg.mbox.GetByID(ctx, st.id)
	if err != nil {
		return err
	}
	set, modseq, err := st.reg.mbox.UIDRanges(ctx, st.id)
	if err != nil {
		return err
	}
	// After the UIDs: the list is then complete up to at least st.applied,
	// and apply brings the keywords of every later change.
	kws, err := st.loadKeywords(ctx)
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.uids = newRangeList(set)
	st.applied = modseq
	st.uidNext = max(mb.UIDNext, st.uids.Max()+1)
	st.lastResync = time.Now()
	st.learnKeywordsLocked(kws)
	st.mu.Unlock()
	return nil
}

// apply brings the state up to date with the database and hands every view the
// changes it has not seen: expunges first (a UID is never reused, so a UID
// both added and removed since the last apply is simply never shown), then
// new messages (always above every known UID: UIDs are allocated and
// committed in order under the mailbox's lock), then flag changes.
func (st *mailboxState) apply(ctx context.Context) error {
	st.applyMu.Lock()
	defer st.applyMu.Unlock()
	st.mu.Lock()
	from, gone := st.applied, st.gone
	st.mu.Unlock()
	if gone {
		return nil
	}
	ch, err := st.reg.mbox.ChangesSince(ctx, st.id, from)
	if errors.Is(err, models.ErrNotFound) {
		st.markGone()
		return nil
	}
	if err != nil {
		return fmt.Errorf("changes of mailbox %d: %w", st.id, err)
	}
	// A modification sequence that moved with nothing to show for it is
	// usually a no-op write, but could be a lost change: check at once.
	suspicious := ch.HighestModSeq > from && len(ch.Expunged) == 0 && len(ch.Updated) == 0
	if ch.HighestModSeq > from {
		st.mu.Lock()
		st.applyLocked(ch.Expunged, ch.Updated)
		st.applied = ch.HighestModSeq
		st.uidNext = max(st.uidNext, ch.UIDNext, st.uids.Max()+1)
		st.mu.Unlock()
	}
	return st.checkCount(ctx, suspicious)
}

func (st *mailboxState) applyLocked(expunged []uint32, updated []models.FlagChange) {
	if removed := st.uids.Remove(expunged); len(removed) > 0 {
		for v := range st.views {
			v.expungedLocked(removed)
		}
	}
	added := false
	for i := range updated {
		u := &updated[i]
		// Before any view hears of the change: a session reporting it finds
		// its keywords in the mailbox's list.
		st.learnKeywordsLocked(u.Flags.Keywords)
		switch {
		case u.UID > st.uids.Max():
			st.uids.Append(u.UID)
			added = true
		case st.uids.Contains(u.UID):
			for v := range st.views {
				v.flagsChangedLocked(u.UID, u.Flags)
			}
		default:
			// Below the highest known UID and not known: cannot happen while
			// UIDs are committed in order; showing it would renumber what
			// clients already hold, so leave it to the count check.
			st.reg.log.Debug("ignoring unknown old UID in changes", "mailbox", st.id, "uid", u.UID)
		}
	}
	if added {
		for v := range st.views {
			v.wakeLocked()
		}
	}
}

// checkCount compares, at most once per resyncEvery unless now, the number of
// messages with the database's; a difference means changes were lost
// (tombstones pruned, say), and the state then reloads its UIDs and diffs
// them in.
func (st *mailboxState) checkCount(ctx context.Context, now bool) error {
	st.mu.Lock()
	due := now || time.Since(st.lastResync) >= resyncEvery
	st.mu.Unlock()
	if !due {
		return nil
	}
	mb, err := st.reg.mbox.GetByID(ctx, st.id)
	if errors.Is(err, models.ErrNotFound) {
		st.markGone()
		return nil
	}
	if err != nil {
		return err
	}
	st.mu.Lock()
	comparable := mb.HighestModSeq == st.applied
	same := int64(st.uids.Len()) == mb.MessagesCount
	if comparable {
		st.lastResync = time.Now()
	}
	st.mu.Unlock()
	if !comparable || same {
		return nil // consistent, or moved on since the last apply: checked next time
	}
	return st.resync(ctx)
}

// resync reloads the mailbox's UIDs and turns the difference with the state
// into expunges and new messages. Called with applyMu held.
func (st *mailboxState) resync(ctx context.Context) error {
	set, modseq, err := st.reg.mbox.UIDRanges(ctx, st.id)
	if err != nil {
		return err
	}
	fresh := newRangeList(set)
	st.mu.Lock()
	defer st.mu.Unlock()
	gone := st.uids.Minus(fresh)
	var added []models.FlagChange
	top := st.uids.Max()
	for _, r := range fresh.Ranges() {
		if r.Stop <= top {
			continue
		}
		for u := max(r.Start, top+1); ; u++ {
			added = append(added, models.FlagChange{UID: u})
			if u == r.Stop {
				break
			}
		}
	}
	st.reg.log.Warn("mailbox state out of step with the database; resynchronized",
		"mailbox", st.id, "expunged", len(gone), "added", len(added))
	st.applyLocked(gone, added)
	st.applied = max(st.applied, modseq)
	return nil
}

func (st *mailboxState) markGone() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.gone = true
	for v := range st.views {
		v.wakeLocked()
	}
}
