package models

import (
	"fmt"
	"strings"
)

// UIDRange is the closed interval [Start, Stop] of UIDs.
type UIDRange struct{ Start, Stop uint32 }

// UIDSet is a list of ranges. An empty set matches nothing.
type UIDSet []UIDRange

// UIDs is a set of single UIDs.
func UIDs(uids ...uint32) UIDSet {
	s := make(UIDSet, 0, len(uids))
	for _, u := range uids {
		s = append(s, UIDRange{u, u})
	}
	return s
}

// All is every UID.
var All = UIDSet{{1, 1<<32 - 1}}

// Contains reports whether uid is in the set.
func (s UIDSet) Contains(uid uint32) bool {
	for _, r := range s {
		if uid >= r.Start && uid <= r.Stop {
			return true
		}
	}
	return false
}

// batches splits a set into sets small enough for one SQL statement each.
func (s UIDSet) batches() []UIDSet {
	const max = 400
	var out []UIDSet
	for len(s) > max {
		out = append(out, s[:max])
		s = s[max:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}

// sql renders the set as a condition on column col, with its arguments.
func (s UIDSet) sql(col string) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 2*len(s))
	var singles []any
	b.WriteByte('(')
	n := 0
	for _, r := range s {
		if r.Start == r.Stop {
			singles = append(singles, int64(r.Start))
			continue
		}
		if n > 0 {
			b.WriteString(" OR ")
		}
		fmt.Fprintf(&b, "%s BETWEEN ? AND ?", col)
		args = append(args, int64(r.Start), int64(r.Stop))
		n++
	}
	if len(singles) > 0 {
		if n > 0 {
			b.WriteString(" OR ")
		}
		fmt.Fprintf(&b, "%s IN (?%s)", col, strings.Repeat(", ?", len(singles)-1))
		args = append(args, singles...)
		n++
	}
	if n == 0 {
		b.WriteString("1 = 0")
	}
	b.WriteByte(')')
	return b.String(), args
}

// marks returns n comma-separated placeholders: "?, ?, ?".
func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// valueRows returns rows groups of cols placeholders, for a multi-row VALUES:
// "(?, ?), (?, ?)".
func valueRows(rows, cols int) string {
	row := "(" + marks(cols) + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}
