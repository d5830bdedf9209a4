package imap

import (
	"slices"
	"testing"

	"github.com/mailgate/mailgate/models"
)

// checkAgainst compares every query of l with a plain sorted slice.
func checkAgainst(t *testing.T, l *rangeList, want []uint32) {
	t.Helper()
	if l.Len() != uint32(len(want)) {
		t.Fatalf("Len = %d, want %d (%v)", l.Len(), len(want), l.r)
	}
	var max uint32
	if len(want) > 0 {
		max = want[len(want)-1]
	}
	if l.Max() != max {
		t.Fatalf("Max = %d, want %d", l.Max(), max)
	}
	for i, u := range want {
		if got := l.At(uint32(i + 1)); got != u {
			t.Fatalf("At(%d) = %d, want %d (%v)", i+1, got, u, l.r)
		}
		if got := l.Rank(u); got != uint32(i+1) {
			t.Fatalf("Rank(%d) = %d, want %d", u, got, i+1)
		}
		if !l.Contains(u) {
			t.Fatalf("Contains(%d) = false", u)
		}
	}
	if l.At(0) != 0 || l.At(uint32(len(want)+1)) != 0 {
		t.Fatal("At out of range is not 0")
	}
	rank, atMost, k := uint32(0), uint32(0), 0
	for probe := uint32(0); probe <= max+2; probe++ {
		in := k < len(want) && want[k] == probe
		if in {
			rank++
			atMost = probe
			k++
		}
		if got := l.Rank(probe); got != rank {
			t.Fatalf("Rank(%d) = %d, want %d", probe, got, rank)
		}
		if got := l.MaxAtMost(probe); got != atMost {
			t.Fatalf("MaxAtMost(%d) = %d, want %d", probe, got, atMost)
		}
		if in != l.Contains(probe) {
			t.Fatalf("Contains(%d) = %v", probe, !in)
		}
	}
	for i := 1; i < len(l.r); i++ {
		if l.r[i].Start <= l.r[i-1].Stop+1 {
			t.Fatalf("ranges not disjoint and apart: %v", l.r)
		}
	}
}

func TestRangeList(t *testing.T) {
	l := newRangeList(models.UIDSet{{Start: 5, Stop: 7}, {Start: 1, Stop: 2}, {Start: 3, Stop: 3}, {Start: 10, Stop: 10}})
	checkAgainst(t, l, []uint32{1, 2, 3, 5, 6, 7, 10})
	if l.Append(10) || l.Append(4) {
		t.Fatal("Append accepted a UID not above Max")
	}
	l.Append(11)
	l.Append(13)
	checkAgainst(t, l, []uint32{1, 2, 3, 5, 6, 7, 10, 11, 13})
	got := l.Remove([]uint32{1, 4, 6, 6, 11, 13, 20})
	if !slices.Equal(got, []uint32{1, 6, 11, 13}) {
		t.Fatalf("Remove returned %v", got)
	}
	checkAgainst(t, l, []uint32{2, 3, 5, 7, 10})
	if len(l.r) != 4 {
		t.Fatalf("ranges %v", l.r)
	}
	other := newRangeList(models.UIDSet{{Start: 3, Stop: 7}})
	if m := l.Minus(other); !slices.Equal(m, []uint32{2, 10}) {
		t.Fatalf("Minus = %v", m)
	}
	empty := newRangeList(nil)
	checkAgainst(t, empty, nil)
	if empty.Remove([]uint32{1}) != nil || !empty.Append(1) {
		t.Fatal("empty list")
	}
}

// FuzzRangeList applies random appends and removals to a list and to a plain
// slice and compares every query after each step.
func FuzzRangeList(f *testing.F) {
	f.Add([]byte{1, 3, 0, 2, 5, 1, 9, 0, 1, 0})
	f.Add([]byte{0, 1, 0, 2, 0, 3, 1, 2, 1, 1, 1, 3})
	f.Add([]byte{2, 200, 2, 1, 0, 7, 1, 150})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400] // longer inputs test nothing new, only slowly
		}
		var want []uint32
		var initial models.UIDSet
		for len(ops) >= 2 && ops[0] == 2 { // seed ranges
			lo := uint32(ops[1])
			initial = append(initial, models.UIDRange{Start: lo, Stop: lo + uint32(ops[1]%7)})
			ops = ops[2:]
		}
		l := newRangeList(initial)
		for _, r := range initial {
			for u := max(r.Start, 1); u <= r.Stop; u++ {
				if _, in := slices.BinarySearch(want, u); !in {
					want = append(want, u)
					slices.Sort(want)
				}
			}
		}
		checkAgainst(t, l, want)
		for len(ops) >= 2 {
			op, arg := ops[0]%2, uint32(ops[1])
			ops = ops[2:]
			switch op {
			case 0: // append arg above the current maximum
				u := l.Max() + 1 + arg%5
				if !l.Append(u) {
					t.Fatalf("Append(%d) refused", u)
				}
				want = append(want, u)
			case 1: // remove a few UIDs around arg
				var rm []uint32
				for d := uint32(0); d < 3; d++ {
					rm = append(rm, arg+d*2)
				}
				got := l.Remove(rm)
				var exp []uint32
				kept := want[:0:0]
				for _, u := range want {
					if slices.Contains(rm, u) {
						exp = append(exp, u)
					} else {
						kept = append(kept, u)
					}
				}
				want = kept
				if !slices.Equal(got, exp) {
					t.Fatalf("Remove(%v) = %v, want %v", rm, got, exp)
				}
			}
			checkAgainst(t, l, want)
		}
	})
}
