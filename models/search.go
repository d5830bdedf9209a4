package models

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// SearchOp is the kind of one node of a message search.
type SearchOp int

// The nodes of a search (IMAP SEARCH keys, RFC 9051 §6.4.4, in store terms).
const (
	SearchAnd        SearchOp = iota // every key of Keys (none: every message)
	SearchOr                         // any key of Keys
	SearchNot                        // not Keys[0]
	SearchUID                        // UID in UIDs
	SearchFlag                       // has Flag (\Seen, \Answered, \Flagged, \Deleted, \Draft or a keyword)
	SearchSince                      // internal date on or after Time (a UTC midnight)
	SearchBefore                     // internal date before Time
	SearchSentSince                  // Date: header on or after Time
	SearchSentBefore                 // Date: header before Time
	SearchLarger                     // size above Size
	SearchSmaller                    // size below Size
	SearchHeader                     // a header field named Field whose value contains Value
	SearchBody                       // the decoded text contains Value
	SearchText                       // the header fields or the decoded text contain Value
)

// SearchKey is one node of a search. Strings match as case-insensitive
// substrings; the text searched is what the parser kept at delivery
// (contents.header_text and contents.search_text), never the stored body.
type SearchKey struct {
	Op    SearchOp
	UIDs  UIDSet
	Flag  string
	Time  time.Time
	Size  int64
	Field string
	Value string
	Keys  []SearchKey
}

// Bounds on one search, IMAP SEARCH or the HTTP q= alike: a search that
// scans text costs the whole mailbox's text per term, so the terms, their
// text and the time are bounded. Past them the answer is ErrTooExpensive:
// narrow the search.
const (
	MaxSearchTerms     = 32      // text terms (BODY, TEXT, HEADER…, words of q)
	MaxSearchText      = 4 << 10 // bytes of text in those terms
	MaxSearchKeys      = 1000    // keys of any kind, NOT and OR included
	SearchTimeBudget   = 10 * time.Second
	searchBudgetReason = "narrow the search"
)

// checkCost refuses a key over the bounds.
func (k *SearchKey) checkCost() error {
	var keys, terms, text int
	var walk func(k *SearchKey)
	walk = func(k *SearchKey) {
		keys++
		if k.Value != "" {
			terms++
			text += len(k.Value)
		}
		for i := range k.Keys {
			walk(&k.Keys[i])
		}
	}
	walk(k)
	switch {
	case keys > MaxSearchKeys:
		return fmt.Errorf("%w: %d keys, at most %d: %s", ErrTooExpensive, keys, MaxSearchKeys, searchBudgetReason)
	case terms > MaxSearchTerms:
		return fmt.Errorf("%w: %d text terms, at most %d: %s", ErrTooExpensive, terms, MaxSearchTerms, searchBudgetReason)
	case text > MaxSearchText:
		return fmt.Errorf("%w: %d bytes of text, at most %d: %s", ErrTooExpensive, text, MaxSearchText, searchBudgetReason)
	}
	return nil
}

// searchContext bounds a search's time; a search that runs out of it is
// ErrTooExpensive (see overBudget), not a failure of the store.
func searchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, SearchTimeBudget)
}

// overBudget turns the end of a search's own time into ErrTooExpensive.
func overBudget(parent, ctx context.Context, err error) error {
	if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: over %v: %s", ErrTooExpensive, SearchTimeBudget, searchBudgetReason)
	}
	return err
}

// maxSQLRanges is how many ranges of a UID set are written into the SQL of a
// search; a larger set is bounded in SQL and checked exactly in Go.
const maxSQLRanges = 64

// SearchMessages calls fn, in UID order, with the UID of each message of a
// mailbox that matches key and has a UID no higher than maxUID (0: any).
//
// Everything but HEADER and very fragmented UID sets is decided in SQL. Those
// two cannot be (a header field must match within one line of header_text,
// which neither dialect can say portably), so the query selects a superset —
// each such key is widened to a prefilter where it counts positively and to
// FALSE under a NOT — together with the truth of every other key as a column,
// and the exact answer is computed in Go from header_text. Large UID sets in
// key are put in normal form in place.
func (s *Store) SearchMessages(parent context.Context, mailboxID int64, maxUID uint32, key *SearchKey, fn func(uid uint32) error) error {
	if err := key.checkCost(); err != nil {
		return err
	}
	ctx, cancel := searchContext(parent)
	defer cancel()
	return overBudget(parent, ctx, s.searchMessages(ctx, mailboxID, maxUID, key, fn))
}

func (s *Store) searchMessages(ctx context.Context, mailboxID int64, maxUID uint32, key *SearchKey, fn func(uid uint32) error) error {
	c := &searchCompiler{}
	where := c.compile(key, true)
	cols := "m.uid"
	if c.inexact {
		cols += ", c.header_text"
		for _, l := range c.exact {
			cols += ", CASE WHEN " + l.sql + " THEN 1 ELSE 0 END"
		}
	}
	from := "messages m"
	if c.needContent || c.inexact {
		from += " JOIN contents c ON c.id = m.content_id"
	}
	q := "SELECT " + cols + " FROM " + from + " WHERE m.mailbox_id = ?"
	var args []any
	if c.inexact {
		// The column expressions come first in the statement, so do their arguments.
		for _, l := range c.exact {
			args = append(args, l.args...)
		}
	}
	args = append(args, mailboxID)
	if maxUID > 0 {
		q += " AND m.uid <= ?"
		args = append(args, int64(maxUID))
	}
	q += " AND (" + where + ") ORDER BY m.uid"
	args = append(args, c.args...)
	rows, err := s.conn(ctx).Raw(q, args...).Rows()
	if err != nil {
		return fmt.Errorf("search mailbox %d: %w", mailboxID, translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		var uid int64
		if !c.inexact {
			if err := rows.Scan(&uid); err != nil {
				return fmt.Errorf("search mailbox %d: %w", mailboxID, translate(err))
			}
		} else {
			var header string
			truth := make([]int64, len(c.exact))
			dest := []any{&uid, &header}
			for i := range truth {
				dest = append(dest, &truth[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("search mailbox %d: %w", mailboxID, translate(err))
			}
			if !c.eval(key, uint32(uid), header, truth) {
				continue
			}
		}
		if err := fn(uint32(uid)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("search mailbox %d: %w", mailboxID, translate(err))
	}
	return nil
}

type sqlLeaf struct {
	key  *SearchKey
	sql  string
	args []any
}

type searchCompiler struct {
	args        []any     // of the WHERE clause, in order
	exact       []sqlLeaf // keys decided in SQL, in the order compile met them
	inexact     bool      // some key needs checking in Go
	needContent bool
	goUIDs      map[*SearchKey]bool // UID keys checked in Go
}

// compile renders key as a condition that is exact for SQL-decidable keys and,
// for the others, a superset of the matches when pos (an even number of NOTs
// above) and a subset otherwise, so that the whole condition is a superset.
func (c *searchCompiler) compile(k *SearchKey, pos bool) string {
	switch k.Op {
	case SearchAnd, SearchOr:
		if len(k.Keys) == 0 {
			if k.Op == SearchAnd {
				return "1 = 1"
			}
			return "1 = 0"
		}
		sep := " AND "
		if k.Op == SearchOr {
			sep = " OR "
		}
		parts := make([]string, len(k.Keys))
		for i := range k.Keys {
			parts[i] = "(" + c.compile(&k.Keys[i], pos) + ")"
		}
		return strings.Join(parts, sep)
	case SearchNot:
		if len(k.Keys) == 0 {
			return "1 = 0"
		}
		return "NOT (" + c.compile(&k.Keys[0], !pos) + ")"
	case SearchHeader:
		if strings.EqualFold(k.Field, "Subject") && k.Value != "" {
			break // the decoded subject has a column: decided in SQL below
		}
		c.inexact = true
		if !pos {
			return "1 = 0"
		}
		c.args = append(c.args, likeContains(k.Field+":"))
		cond := "lower(c.header_text) LIKE ? ESCAPE '\\'"
		if k.Value != "" {
			c.args = append(c.args, likeContains(k.Value))
			cond += " AND lower(c.header_text) LIKE ? ESCAPE '\\'"
		}
		return cond
	case SearchUID:
		if len(k.UIDs) > maxSQLRanges {
			c.inexact = true
			if c.goUIDs == nil {
				c.goUIDs = make(map[*SearchKey]bool)
			}
			c.goUIDs[k] = true
			k.UIDs = k.UIDs.Normalize() // eval searches it
			if !pos {
				return "1 = 0"
			}
			c.args = append(c.args, int64(k.UIDs[0].Start), int64(k.UIDs[len(k.UIDs)-1].Stop))
			return "m.uid BETWEEN ? AND ?"
		}
	}
	sql, args := c.leaf(k)
	c.exact = append(c.exact, sqlLeaf{key: k, sql: sql, args: args})
	c.args = append(c.args, args...)
	return sql
}

// leaf renders a key SQL decides exactly. Every condition is two-valued (never
// NULL), so that NOT means "does not match".
func (c *searchCompiler) leaf(k *SearchKey) (string, []any) {
	switch k.Op {
	case SearchUID:
		return k.UIDs.Normalize().sql("m.uid")
	case SearchFlag:
		switch strings.ToLower(k.Flag) {
		case `\seen`:
			return "m.seen = TRUE", nil
		case `\answered`:
			return "m.answered = TRUE", nil
		case `\flagged`:
			return "m.flagged = TRUE", nil
		case `\deleted`:
			return "m.deleted = TRUE", nil
		case `\draft`:
			return "m.draft = TRUE", nil
		}
		if strings.HasPrefix(k.Flag, `\`) || k.Flag == "" {
			return "1 = 0", nil // no other system flag is stored
		}
		return "(' ' || lower(m.keywords) || ' ') LIKE ? ESCAPE '\\'", []any{"% " + escapeLike(strings.ToLower(k.Flag)) + " %"}
	case SearchSince:
		return "m.internal_date >= ?", []any{k.Time.UTC()}
	case SearchBefore:
		return "m.internal_date < ?", []any{k.Time.UTC()}
	case SearchSentSince:
		return "(m.sent_at IS NOT NULL AND m.sent_at >= ?)", []any{k.Time.UTC()}
	case SearchSentBefore:
		return "(m.sent_at IS NOT NULL AND m.sent_at < ?)", []any{k.Time.UTC()}
	case SearchLarger:
		return "m.size > ?", []any{k.Size}
	case SearchSmaller:
		return "m.size < ?", []any{k.Size}
	case SearchHeader: // Subject only, see compile
		return "lower(m.subject) LIKE ? ESCAPE '\\'", []any{likeContains(k.Value)}
	case SearchBody:
		c.needContent = true
		return "lower(c.search_text) LIKE ? ESCAPE '\\'", []any{likeContains(k.Value)}
	case SearchText:
		c.needContent = true
		v := likeContains(k.Value)
		return "(lower(c.header_text) LIKE ? ESCAPE '\\' OR lower(c.search_text) LIKE ? ESCAPE '\\')", []any{v, v}
	}
	return "1 = 0", nil
}

// eval decides key exactly for one row of an inexact search: the truth of the
// SQL-decided keys comes from the row's columns, in the order compile met them.
func (c *searchCompiler) eval(k *SearchKey, uid uint32, header string, truth []int64) bool {
	next := 0
	var walk func(k *SearchKey) bool
	walk = func(k *SearchKey) bool {
		switch k.Op {
		case SearchAnd:
			ok := true
			for i := range k.Keys {
				// Walk every child: the columns are consumed in order.
				if !walk(&k.Keys[i]) {
					ok = false
				}
			}
			return ok
		case SearchOr:
			ok := false
			for i := range k.Keys {
				if walk(&k.Keys[i]) {
					ok = true
				}
			}
			return ok
		case SearchNot:
			return len(k.Keys) > 0 && !walk(&k.Keys[0])
		case SearchHeader:
			if !strings.EqualFold(k.Field, "Subject") || k.Value == "" {
				return HeaderContains(header, k.Field, k.Value)
			}
		case SearchUID:
			if c.goUIDs[k] {
				return uidSetContains(k.UIDs, uid)
			}
		}
		v := next < len(truth) && truth[next] != 0
		next++
		return v
	}
	return walk(k)
}

// HeaderContains reports whether header text (one "Name: value" per line, as
// the parser keeps it; a line starting with white space continues the one
// before) has a field named field (any case) whose value contains value (any
// case). An empty value matches any field of that name.
func HeaderContains(header, field, value string) bool {
	field = strings.ToLower(field)
	value = strings.ToLower(value)
	lines := strings.Split(header, "\n")
	for i := 0; i < len(lines); i++ {
		name, v, ok := strings.Cut(lines[i], ":")
		if !ok || strings.ToLower(strings.TrimSpace(name)) != field {
			continue
		}
		for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
			i++
			v += lines[i]
		}
		if strings.Contains(strings.ToLower(v), value) {
			return true
		}
	}
	return false
}

// uidSetContains reports whether a normalized set holds uid.
func uidSetContains(set UIDSet, uid uint32) bool {
	i := sort.Search(len(set), func(i int) bool { return set[i].Stop >= uid })
	return i < len(set) && set[i].Start <= uid
}

// likeContains is a LIKE pattern (with ESCAPE '\') matching s anywhere in a
// lower-cased column.
func likeContains(s string) string {
	return "%" + escapeLike(strings.ToLower(s)) + "%"
}
