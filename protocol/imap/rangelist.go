package imap

import (
	"sort"

	"github.com/mailgate/mailgate/models"
)

// rangeList is a set of UIDs kept as ascending, disjoint, non-adjacent ranges
// with the count of UIDs before each range, so that its memory grows with the
// number of gaps between UIDs, not with the number of messages, and both
// directions of the sequence-number mapping (rank of a UID, UID at a rank) are
// a binary search. It is not safe for concurrent use.
type rangeList struct {
	r   []models.UIDRange
	cum []uint32 // cum[i]: UIDs in r[:i]
	n   uint32
}

// newRangeList builds a list from any set of ranges.
func newRangeList(set models.UIDSet) *rangeList {
	l := &rangeList{}
	for _, r := range set.Normalize() {
		if r.Start == 0 { // UID 0 does not exist
			if r.Stop == 0 {
				continue
			}
			r.Start = 1
		}
		l.r = append(l.r, r)
	}
	l.reindex()
	return l
}

func (l *rangeList) reindex() {
	l.cum = l.cum[:0]
	var n uint32
	for _, r := range l.r {
		l.cum = append(l.cum, n)
		n += r.Stop - r.Start + 1
	}
	l.n = n
}

// Len is the number of UIDs.
func (l *rangeList) Len() uint32 { return l.n }

// Max is the highest UID, 0 when empty.
func (l *rangeList) Max() uint32 {
	if len(l.r) == 0 {
		return 0
	}
	return l.r[len(l.r)-1].Stop
}

// search returns the index of the first range ending at or after uid.
func (l *rangeList) search(uid uint32) int {
	return sort.Search(len(l.r), func(i int) bool { return l.r[i].Stop >= uid })
}

// Contains reports whether uid is in the list.
func (l *rangeList) Contains(uid uint32) bool {
	i := l.search(uid)
	return i < len(l.r) && l.r[i].Start <= uid
}

// Rank is the number of UIDs less than or equal to uid: the sequence number of
// uid when it is in the list.
func (l *rangeList) Rank(uid uint32) uint32 {
	i := l.search(uid)
	if i == len(l.r) {
		return l.n
	}
	if uid < l.r[i].Start {
		return l.cum[i]
	}
	return l.cum[i] + uid - l.r[i].Start + 1
}

// At returns the k-th UID (k from 1), 0 when k is out of range.
func (l *rangeList) At(k uint32) uint32 {
	if k == 0 || k > l.n {
		return 0
	}
	i := sort.Search(len(l.r), func(i int) bool { return l.cum[i]+(l.r[i].Stop-l.r[i].Start+1) >= k })
	return l.r[i].Start + (k - l.cum[i] - 1)
}

// MaxAtMost returns the highest UID not above uid, 0 when there is none.
func (l *rangeList) MaxAtMost(uid uint32) uint32 {
	i := l.search(uid)
	if i < len(l.r) && l.r[i].Start <= uid {
		return uid
	}
	if i == 0 {
		return 0
	}
	return l.r[i-1].Stop
}

// Append adds a UID above every UID in the list. It reports false, adding
// nothing, for a UID not above Max: UIDs only ever grow (RFC 9051 §2.3.1.1).
func (l *rangeList) Append(uid uint32) bool {
	if uid == 0 || uid <= l.Max() {
		return false
	}
	if n := len(l.r); n > 0 && l.r[n-1].Stop+1 == uid {
		l.r[n-1].Stop = uid
	} else {
		l.cum = append(l.cum, l.n)
		l.r = append(l.r, models.UIDRange{Start: uid, Stop: uid})
	}
	l.n++
	return true
}

// Remove takes out the given UIDs (ascending) and returns those that were in
// the list, in order. It costs one pass over the ranges.
func (l *rangeList) Remove(uids []uint32) []uint32 {
	var removed []uint32
	if len(uids) == 0 || l.n == 0 {
		return nil
	}
	out := make([]models.UIDRange, 0, len(l.r)+len(uids))
	k := 0
	for _, r := range l.r {
		for k < len(uids) && uids[k] < r.Start {
			k++
		}
		start := r.Start
		for k < len(uids) && uids[k] <= r.Stop {
			u := uids[k]
			k++
			if u < start {
				continue // a repeated UID
			}
			removed = append(removed, u)
			if u > start {
				out = append(out, models.UIDRange{Start: start, Stop: u - 1})
			}
			if u == r.Stop {
				start = 0
				break
			}
			start = u + 1
		}
		if start != 0 {
			out = append(out, models.UIDRange{Start: start, Stop: r.Stop})
		}
	}
	if len(removed) > 0 {
		l.r = out
		l.reindex()
	}
	return removed
}

// Ranges returns the list as a UID set (shared: do not modify it).
func (l *rangeList) Ranges() models.UIDSet { return l.r }

// Minus returns the UIDs of the list that are not in other, in order.
func (l *rangeList) Minus(other *rangeList) []uint32 {
	var out []uint32
	for _, r := range l.r {
		for u := r.Start; ; u++ {
			if !other.Contains(u) {
				out = append(out, u)
			}
			if u == r.Stop {
				break
			}
		}
	}
	return out
}
