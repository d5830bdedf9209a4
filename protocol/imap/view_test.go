package imap

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
)

// buildView makes a state and a view from fuzz bytes: UIDs appended, a
// client that knows some of them, then expunges and appends it has not been
// told yet. It returns the client's list of UIDs, computed plainly.
func buildView(in []byte) (*view, []uint32) {
	next := func() uint32 {
		if len(in) == 0 {
			return 0
		}
		c := in[0]
		in = in[1:]
		return uint32(c)
	}
	st := &mailboxState{uids: newRangeList(nil), views: map[*view]struct{}{}}
	var all []uint32
	u := uint32(0)
	for n := 1 + next()%40; n > 0; n-- {
		u += 1 + next()%3
		st.uids.Append(u)
		all = append(all, u)
	}
	v := st.attach(false, false)
	v.clientMax = st.uids.Max()
	client := append([]uint32(nil), all...)
	// Unreported expunges (the client still has them) ...
	var gone []uint32
	for _, x := range all {
		if next()%4 == 0 {
			gone = append(gone, x)
		}
	}
	st.mu.Lock()
	st.applyLocked(gone, nil)
	// ... and unreported new messages (the client does not have them).
	for n := next() % 4; n > 0; n-- {
		u += 1 + next()%2
		st.applyLocked(nil, []models.FlagChange{{UID: u}})
	}
	st.mu.Unlock()
	return v, client
}

func checkView(t *testing.T, v *view, client []uint32) {
	t.Helper()
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	if got := v.countLocked(); got != uint32(len(client)) {
		t.Fatalf("count = %d, want %d", got, len(client))
	}
	for i, u := range client {
		if got := v.uidAtLocked(uint32(i + 1)); got != u {
			t.Fatalf("uidAt(%d) = %d, want %d", i+1, got, u)
		}
		if got := v.seqLocked(u); got != uint32(i+1) {
			t.Fatalf("seq(%d) = %d, want %d", u, got, i+1)
		}
	}
	if v.uidAtLocked(uint32(len(client)+1)) != 0 {
		t.Fatal("uidAt past the end")
	}
	for u := uint32(0); u < v.st.uids.Max()+3; u++ {
		if !slices.Contains(client, u) && v.seqLocked(u) != 0 {
			t.Fatalf("seq(%d) of a message the client does not know", u)
		}
	}
	last := uint32(0)
	if len(client) > 0 {
		last = client[len(client)-1]
	}
	if got := v.maxUIDLocked(); got != last {
		t.Fatalf("maxUID = %d, want %d", got, last)
	}
	// Sequence set "2:*" and UID set "3:*" resolve to the client's UIDs.
	got := v.resolveLocked(imap.SeqSet{{Start: 2, Stop: 0}})
	var want []uint32
	if len(client) > 1 {
		want = client[1:]
	}
	if !sameUIDs(got, want) {
		t.Fatalf("resolve 2:* = %v, want %v", got, want)
	}
	got = v.resolveLocked(imap.UIDSet{{Start: 3, Stop: 0}})
	want = nil
	for _, u := range client {
		if u >= 3 || u == last {
			want = append(want, u)
		}
	}
	if !sameUIDs(got, want) {
		t.Fatalf("resolve UID 3:* = %v, want %v", got, want)
	}
}

// sameUIDs compares a resolved set, restricted to UIDs that exist for the
// client, with a list (a resolved set may span UIDs that exist nowhere).
func sameUIDs(set models.UIDSet, want []uint32) bool {
	var got []uint32
	for _, r := range set {
		for u := r.Start; u <= r.Stop; u++ {
			got = append(got, u)
		}
	}
	var in []uint32
	for _, u := range got {
		if slices.Contains(want, u) {
			in = append(in, u)
		}
	}
	return slices.Equal(in, want)
}

func TestViewNumbering(t *testing.T) {
	v, client := buildView([]byte{10, 0, 1, 2, 0, 1, 2, 0, 0, 0, 1, 1, 1, 3, 0, 1, 0, 0, 0, 0, 4, 1, 0, 2, 1, 1})
	checkView(t, v, client)
}

// FuzzViewNumbering checks the client's sequence numbers against a plain
// list, with unreported expunges and new messages in between.
func FuzzViewNumbering(f *testing.F) {
	f.Add([]byte{5, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 2, 1, 1})
	f.Add([]byte{39, 2, 2, 2, 1, 1, 0, 0, 0, 4, 4, 4, 0, 0, 3})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, client := buildView(in)
		checkView(t, v, client)
		// After reporting the expunges, the client's list drops them in order.
		v.st.mu.Lock()
		var remain []uint32
		for _, u := range client {
			if v.st.uids.Contains(u) {
				remain = append(remain, u)
			}
		}
		v.st.mu.Unlock()
		p := v.collect(true)
		for _, seq := range p.expunges {
			// seq is the position, in the list as it stands, of a gone UID.
			pos := int(seq) - 1
			if pos < 0 || pos >= len(client) || slices.Contains(remain, client[pos]) {
				t.Fatalf("EXPUNGE %d names %v in %v", seq, client, remain)
			}
			client = slices.Delete(client, pos, pos+1)
		}
		if !slices.Equal(client, remain) {
			t.Fatalf("after expunges %v, want %v", client, remain)
		}
		v.st.mu.Lock()
		all := v.st.uids.Len()
		v.st.mu.Unlock()
		if p.exists != 0 && p.exists != all {
			t.Fatalf("EXISTS %d, want %d", p.exists, all)
		}
		client = nil
		v.st.mu.Lock()
		for k := uint32(1); k <= v.st.uids.Len(); k++ {
			client = append(client, v.st.uids.At(k))
		}
		v.st.mu.Unlock()
		checkView(t, v, client)
	})
}
