package imap

import (
	"sort"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
)

// maxPendingFlags bounds the flag changes a view keeps for a client that does
// not poll; beyond it changes are dropped (the client still sees the new flags
// when it next FETCHes them).
const maxPendingFlags = 10000

// view is one session's window on a shared mailbox state. The client knows
// the messages with UIDs up to clientMax that are in the shared ranges or in
// expunged (gone from the mailbox, not yet reported): its sequence number n is
// the n-th of those. Fields are guarded by st.mu.
type view struct {
	st       *mailboxState
	readOnly bool // immutable
	rev2     bool // immutable: the client enabled IMAP4rev2, which has no \Recent

	clientMax uint32                  // highest UID announced to the client
	expunged  []uint32                // gone but not reported yet, ascending, all <= clientMax
	flags     map[uint32]models.Flags // flag changes not reported yet
	recent    models.UIDSet           // UIDs \Recent in this session
	searchRes models.UIDSet           // the saved SEARCH result ($, RFC 5182)
	wake      chan struct{}           // signalled when something is pending

	deletedByMe bool // this session deleted the mailbox: no BYE for it

	// toldUpTo is the state's modification sequence when the client was
	// last given every pending change: it has been told of (or has read)
	// each message's flags as of then.
	toldUpTo int64
}

// attach creates a view seeing every message of the state.
func (st *mailboxState) attach(readOnly, rev2 bool) *view {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := &view{st: st, readOnly: readOnly, rev2: rev2, clientMax: st.uids.Max(), flags: make(map[uint32]models.Flags),
		wake: make(chan struct{}, 1), toldUpTo: st.applied}
	st.views[v] = struct{}{}
	return v
}

func (st *mailboxState) detach(v *view) {
	st.mu.Lock()
	delete(st.views, v)
	st.mu.Unlock()
}

func (v *view) wakeLocked() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

func (v *view) expungedLocked(removed []uint32) {
	var mine []uint32
	for _, u := range removed {
		if u <= v.clientMax {
			mine = append(mine, u)
			delete(v.flags, u)
		}
	}
	if len(mine) == 0 {
		return
	}
	v.expunged = mergeSorted(v.expunged, mine)
	v.wakeLocked()
}

func (v *view) flagsChangedLocked(uid uint32, f models.Flags) {
	if uid > v.clientMax {
		return
	}
	if _, ok := v.flags[uid]; !ok && len(v.flags) >= maxPendingFlags {
		return
	}
	v.flags[uid] = f
	v.wakeLocked()
}

// countLocked is the number of messages the client knows.
func (v *view) countLocked() uint32 {
	return v.st.uids.Rank(v.clientMax) + uint32(len(v.expunged))
}

// seqLocked is the client's sequence number of uid, 0 if it does not know it.
func (v *view) seqLocked(uid uint32) uint32 {
	if uid == 0 || uid > v.clientMax {
		return 0
	}
	i := sort.Search(len(v.expunged), func(i int) bool { return v.expunged[i] >= uid })
	inE := i < len(v.expunged) && v.expunged[i] == uid
	if !inE && !v.st.uids.Contains(uid) {
		return 0
	}
	seq := v.st.uids.Rank(uid) + uint32(i)
	if inE {
		seq++
	}
	return seq
}

// uidAtLocked is the UID of the client's sequence number seq, 0 if none.
func (v *view) uidAtLocked(seq uint32) uint32 {
	if seq == 0 || seq > v.countLocked() {
		return 0
	}
	j := 0
	for ; j < len(v.expunged); j++ {
		e := v.expunged[j]
		pos := v.st.uids.Rank(e) + uint32(j) + 1
		if pos == seq {
			return e
		}
		if pos > seq {
			break
		}
	}
	return v.st.uids.At(seq - uint32(j))
}

// maxUIDLocked is the highest UID the client knows, 0 if none.
func (v *view) maxUIDLocked() uint32 {
	m := v.st.uids.MaxAtMost(v.clientMax)
	if n := len(v.expunged); n > 0 && v.expunged[n-1] > m {
		m = v.expunged[n-1]
	}
	return m
}

// uidNextLocked is the UIDNEXT to report with the messages the client knows:
// the lowest UID it has not been told of. Messages the state learnt of after
// the view was made (the watcher applies changes while SELECT is being
// answered) are announced later by EXISTS, so UIDNEXT must not pass them:
// every message announced after SELECT has a UID at or above its UIDNEXT
// (RFC 9051 §2.3.1.1), which sync clients rely on to fetch "UIDNEXT:*".
func (v *view) uidNextLocked() uint32 {
	if k := v.st.uids.Rank(v.clientMax); k < v.st.uids.Len() {
		return v.st.uids.At(k + 1)
	}
	return max(v.st.uidNext, v.clientMax+1)
}

// resolve turns a client's message set into the UIDs it names among the
// messages the client knows ("*" is the last of them, "$" the saved search
// result). Sequence numbers beyond the last are ignored, as are UIDs the
// client has not been told of: no FETCH may describe a message before its
// EXISTS.
func (v *view) resolve(numSet imap.NumSet) models.UIDSet {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	return v.resolveLocked(numSet)
}

func (v *view) resolveLocked(numSet imap.NumSet) models.UIDSet {
	var out models.UIDSet
	if imap.IsSearchRes(numSet) {
		for _, r := range v.searchRes {
			if r.Start <= v.clientMax {
				out = append(out, models.UIDRange{Start: r.Start, Stop: min(r.Stop, v.clientMax)})
			}
		}
		return out
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		count := v.countLocked()
		if count == 0 {
			return nil
		}
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = count
			}
			if stop == 0 {
				stop = count
			}
			if start > stop {
				start, stop = stop, start
			}
			if start > count {
				continue
			}
			stop = min(stop, count)
			out = append(out, models.UIDRange{Start: v.uidAtLocked(start), Stop: v.uidAtLocked(stop)})
		}
	case imap.UIDSet:
		last := v.maxUIDLocked()
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = last
			}
			if stop == 0 {
				stop = last
			}
			if start > stop {
				start, stop = stop, start
			}
			start = max(start, 1)
			stop = min(stop, v.clientMax)
			if start <= stop {
				out = append(out, models.UIDRange{Start: start, Stop: stop})
			}
		}
	}
	return out.Normalize()
}

// pending is what a poll reports, in order.
type pending struct {
	bye      bool
	expunges []uint32 // sequence numbers, each valid after the ones before
	exists   uint32   // new message count, 0 for none
	newFrom  uint32   // first UID announced by this exists
	flags    []flagUpdate
}

type flagUpdate struct {
	seq, uid uint32
	flags    []imap.Flag
}

// collect takes what the client has not been told yet. Expunges are held back
// when they may not be sent (during FETCH, STORE and SEARCH, RFC 9051 §7.5.1).
func (v *view) collect(allowExpunge bool) pending {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	var p pending
	if v.st.gone && !v.deletedByMe {
		p.bye = true
		return p
	}
	if allowExpunge && len(v.expunged) > 0 {
		// Lowest first: each removal renumbers only what follows it, and the
		// ones not yet removed all follow.
		for _, e := range v.expunged {
			p.expunges = append(p.expunges, v.st.uids.Rank(e)+1)
		}
		v.expunged = v.expunged[:0]
	}
	if top := v.st.uids.Max(); top > v.clientMax && !v.deletedByMe {
		p.newFrom = v.clientMax + 1
		v.clientMax = top
		p.exists = v.countLocked()
	}
	for uid, f := range v.flags {
		if seq := v.seqLocked(uid); seq != 0 {
			p.flags = append(p.flags, flagUpdate{seq: seq, uid: uid, flags: v.imapFlagsLocked(uid, f)})
		}
		delete(v.flags, uid)
	}
	sort.Slice(p.flags, func(i, j int) bool { return p.flags[i].seq < p.flags[j].seq })
	v.toldUpTo = v.st.applied
	return p
}

// claimed records UIDs [from, to) as \Recent in this session and returns how
// many messages the client knows are recent.
func (v *view) claimed(from, to uint32) uint32 {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	if to > from {
		v.recent = append(v.recent, models.UIDRange{Start: from, Stop: to - 1}).Normalize()
	}
	var n uint32
	for _, r := range v.recent {
		if r.Start > v.clientMax {
			break
		}
		hi := min(r.Stop, v.clientMax)
		n += v.st.uids.Rank(hi) - v.st.uids.Rank(r.Start-1)
		for _, e := range v.expunged {
			if e >= r.Start && e <= hi {
				n++
			}
		}
	}
	return n
}

// dropEcho forgets pending flag changes that are only the session's own
// change (its STORE, or the \Seen of its FETCH), so they are not sent back.
// A pending change merely equal to the session's result is not enough: the
// state keeps each message's latest flags only, so another session's change
// made before the session's own (RFC 9051 §6.4.6: reported even around a
// .SILENT STORE) looks the same. It is the session's alone when the message
// had not changed since the session was last told of everything.
func (v *view) dropEcho(changes []models.FlagChange) {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	for _, c := range changes {
		if f, ok := v.flags[c.UID]; ok && f.Equal(c.Flags) && c.OldModSeq <= v.toldUpTo {
			delete(v.flags, c.UID)
		}
	}
}

// imapFlagsLocked renders flags for the client, with \Recent when the message
// is recent in this session.
func (v *view) imapFlagsLocked(uid uint32, f models.Flags) []imap.Flag {
	out := toIMAPFlags(f)
	if !v.rev2 && v.recent.Contains(uid) {
		out = append(out, imap.Flag(`\Recent`))
	}
	return out
}

func mergeSorted(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default: // equal
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
