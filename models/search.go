package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"
	"unicode"
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
	SearchSentSince                  // Date: header's own calendar date on or after Time (see sentDate)
	SearchSentBefore                 // Date: header's own calendar date before Time
	SearchLarger                     // size above Size
	SearchSmaller                    // size below Size
	SearchHeader                     // a header field named Field whose value contains Value
	SearchBody                       // the decoded text of the body (not the header) contains Value
	SearchText                       // the header fields or the decoded text contain Value
	SearchAddress                    // the envelope's Field (From, To, Cc or Bcc) contains Value (see addressText)
)

// SearchKey is one node of a search. Strings match as case-insensitive
// substrings; the text searched is what the parser kept at delivery
// (contents.header_text and contents.search_text, and the envelope for
// SearchAddress), never the stored body.
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
	c := &searchCompiler{pg: s.Dialect() == Postgres}
	where := c.compile(key, true)
	inGo := c.inexact || c.dated
	cols := "m.uid"
	var colArgs []any // the column expressions come first in the statement, so do their arguments
	if inGo {
		hdr, hargs := c.headerColumn()
		cols += ", " + hdr
		colArgs = append(colArgs, hargs...)
		if c.envelope {
			cols += ", c.envelope"
		}
		for _, l := range c.exact {
			col, largs := l.column()
			cols += ", " + col
			colArgs = append(colArgs, largs...)
		}
	}
	from := "messages m"
	if c.needContent || c.inexact { // dates alone read header_text in a subquery (headerColumn)
		from += " JOIN contents c ON c.id = m.content_id"
	}
	q := "SELECT " + cols + " FROM " + from + " WHERE m.mailbox_id = ?"
	args := append(colArgs, mailboxID)
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
		if !inGo {
			if err := rows.Scan(&uid); err != nil {
				return fmt.Errorf("search mailbox %d: %w", mailboxID, translate(err))
			}
		} else {
			var header string
			env := &rowEnvelope{}
			truth := make([]int64, len(c.exact))
			dest := []any{&uid, &header}
			if c.envelope {
				dest = append(dest, &env.raw)
			}
			for i := range truth {
				dest = append(dest, &truth[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("search mailbox %d: %w", mailboxID, translate(err))
			}
			if !c.eval(key, uint32(uid), header, env, truth) {
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
	// band, when set, holds the rows where sql is false but the key may still
	// match: Go decides those (SENTSINCE and SENTBEFORE, see sentDate).
	band     string
	bandArgs []any
}

// column renders the leaf's truth for an inexact search: 1 true, 0 false, and
// 2 for a row in the leaf's band, which eval decides.
func (l sqlLeaf) column() (string, []any) {
	if l.band == "" {
		return "CASE WHEN " + l.sql + " THEN 1 ELSE 0 END", l.args
	}
	args := append(append([]any{}, l.args...), l.bandArgs...)
	return "CASE WHEN " + l.sql + " THEN 1 WHEN " + l.band + " THEN 2 ELSE 0 END", args
}

type searchCompiler struct {
	args        []any     // of the WHERE clause, in order
	exact       []sqlLeaf // keys decided in SQL, in the order compile met them
	inexact     bool      // some key needs checking in Go
	needContent bool
	goUIDs      map[*SearchKey]bool // UID keys checked in Go
	envelope    bool                // some key reads the stored envelope (SearchAddress)
	pg          bool                // PostgreSQL's SQL, else SQLite's
	// dated: some SENTSINCE/SENTBEFORE key has a band decided in Go from the
	// Date field of header_text. Unlike inexact, it needs the header text of
	// the rows in a band only.
	dated bool
}

// headerColumn is the header text an inexact search reads: whole for the keys
// that need it on every row, else only on the rows in some date band.
func (c *searchCompiler) headerColumn() (string, []any) {
	if c.inexact {
		return "c.header_text", nil
	}
	var bands []string
	var args []any
	for _, l := range c.exact {
		if l.band != "" {
			// In the band and not decided by SQL: the rows eval reads.
			bands = append(bands, "("+l.band+" AND NOT "+l.sql+")")
			args = append(append(args, l.bandArgs...), l.args...)
		}
	}
	// A subquery, not the join: the rows outside every band never touch contents.
	return "CASE WHEN " + strings.Join(bands, " OR ") +
		" THEN (SELECT h.header_text FROM contents h WHERE h.id = m.content_id) ELSE '' END", args
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
	case SearchSentSince, SearchSentBefore:
		return c.sentDate(k, pos)
	case SearchAddress:
		c.inexact, c.envelope = true, true
		if !pos {
			return "1 = 0"
		}
		cond, args := addressPrefilter(k)
		c.args = append(c.args, args...)
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
	case SearchLarger:
		return "m.size > ?", []any{k.Size}
	case SearchSmaller:
		return "m.size < ?", []any{k.Size}
	case SearchHeader: // Subject only, see compile
		return "lower(m.subject) LIKE ? ESCAPE '\\'", []any{likeContains(k.Value)}
	case SearchBody:
		c.needContent = true
		return c.bodyContains(k.Value)
	case SearchText:
		c.needContent = true
		v := likeContains(k.Value)
		return "(lower(c.header_text) LIKE ? ESCAPE '\\' OR lower(c.search_text) LIKE ? ESCAPE '\\')", []any{v, v}
	}
	return "1 = 0", nil
}

// eval decides key exactly for one row of an inexact search: the truth of the
// SQL-decided keys comes from the row's columns, in the order compile met them.
// env is the row's envelope when some key reads it (SearchAddress).
func (c *searchCompiler) eval(k *SearchKey, uid uint32, header string, env *rowEnvelope, truth []int64) bool {
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
		case SearchSentSince, SearchSentBefore:
			v := next < len(truth) && truth[next] == 1
			inBand := next < len(truth) && truth[next] == 2
			next++
			if inBand {
				return sentDateMatches(header, k)
			}
			return v
		case SearchHeader:
			if !strings.EqualFold(k.Field, "Subject") || k.Value == "" {
				return HeaderContains(header, k.Field, k.Value)
			}
		case SearchAddress:
			return env.contains(k.Field, k.Value)
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

// sentDateSlack bounds how far the calendar date a Date: field shows can lie
// from the date of its instant in UTC (messages.sent_at): the field's zone
// offset, which net/mail accepts up to ±24:59 (a larger one is no date at all).
const sentDateSlack = 26 * time.Hour

// sentDate renders SENTSINCE and SENTBEFORE (RFC 9051 §6.4.4): they compare
// the date of the Date: field as written, in the field's own zone, time
// disregarded ("Fri, 04 Dec 2026 23:30:00 -0800" is on 4 December, though
// sent_at, its instant in UTC, is on the 5th). SQL decides from the indexed
// sent_at the rows more than sentDateSlack away from the day; the rows within
// it form a band, where eval reads the Date field of header_text. The band
// holds the messages of about two days per key, so a search over a large
// mailbox reads few header texts.
//
// A message with no Date: field, or none net/mail can parse (sent_at NULL),
// has no date to compare: no SENTSINCE, SENTBEFORE or SENTON matches it, and
// so their NOT does. RFC 9051 names the Date: field only; servers that fall
// back to the internal date (as RFC 5256 does for SORT) would make SENTBEFORE
// match a dateless message by when it arrived.
func (c *searchCompiler) sentDate(k *SearchKey, pos bool) string {
	c.dated = true
	day := calendarDay(k.Time)
	sure, band := "m.sent_at >= ?", "m.sent_at >= ?"
	sureArg, bandArg := day.Add(sentDateSlack), day.Add(-sentDateSlack)
	if k.Op == SearchSentBefore {
		sure, band = "m.sent_at < ?", "m.sent_at < ?"
		sureArg, bandArg = day.Add(-sentDateSlack), day.Add(sentDateSlack)
	}
	sure = "(m.sent_at IS NOT NULL AND " + sure + ")"
	band = "(m.sent_at IS NOT NULL AND " + band + ")"
	c.exact = append(c.exact, sqlLeaf{key: k, sql: sure, args: []any{sureArg}, band: band, bandArgs: []any{bandArg}})
	if pos {
		// A superset: the key's matches are all in the band or past it.
		c.args = append(c.args, bandArg)
		return band
	}
	// Under NOT, a subset: the rows SQL knows to match.
	c.args = append(c.args, sureArg)
	return sure
}

// calendarDay is the date t names, as a UTC midnight.
func calendarDay(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// sentDateMatches decides a SENTSINCE or SENTBEFORE key from header text (as
// the parser keeps it: one "Name: value" per line). The first Date field
// counts, as it did for sent_at at delivery; where the kept text has none
// that parses (a header longer than what is kept), the message has no date.
func sentDateMatches(header string, k *SearchKey) bool {
	v, ok := headerField(header, "Date")
	if !ok {
		return false
	}
	t, err := mail.ParseDate(strings.TrimSpace(v))
	if err != nil || t.IsZero() {
		return false
	}
	// t is in the field's own zone: its Date is the date as written.
	written := calendarDay(t)
	if k.Op == SearchSentSince {
		return !written.Before(calendarDay(k.Time))
	}
	return written.Before(calendarDay(k.Time))
}

// headerField returns the value of the first field named name (any case) in
// header text, continuation lines joined.
func headerField(header, name string) (string, bool) {
	lines := strings.Split(header, "\n")
	for i := 0; i < len(lines); i++ {
		n, v, ok := strings.Cut(lines[i], ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(n), name) {
			continue
		}
		for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
			i++
			v += lines[i]
		}
		return v, true
	}
	return "", false
}

// bodyContains is BODY's condition: search_text holds value past where the
// body begins (bodyStart). Most rows are decided at the cost of the
// condition on the whole text that BODY used to be: a row without value
// anywhere is false before the body's start is worked out, and one without it
// in the short text before the body (subject and addresses: a leading slice,
// which neither dialect reads past) is true. Only a row that holds value
// there too has its body cut out and searched. A value with a line break
// could span the break that ends what precedes the body, so it is searched in
// the body alone.
func (c *searchCompiler) bodyContains(value string) (string, []any) {
	v := likeContains(value)
	start := c.bodyStart()
	inBody := "lower(substr(c.search_text, " + start + ")) LIKE ? ESCAPE '\\'"
	if strings.Contains(value, "\n") {
		return inBody, []any{v}
	}
	return "(lower(c.search_text) LIKE ? ESCAPE '\\' AND" +
		" CASE WHEN lower(substr(c.search_text, 1, " + start + " - 1)) NOT LIKE ? ESCAPE '\\' THEN TRUE" +
		" ELSE " + inBody + " END)", []any{v, v, v}
}

// bodyStart is an SQL expression for where the body's text begins in
// contents.search_text (1-based, in characters as substr counts them).
//
// BODY (RFC 9051 §6.4.4) searches the body only, but search_text, made for the
// HTTP API's q= (subject, addresses and text alike), starts with the decoded
// subject, then a line "name email" per From, To and Cc address, then a line
// break, and only then the text of the body (protocol/message.parse). The
// message's own columns hold that subject and those addresses (the listing
// columns, JSON lists of {name, email}), so the length of what precedes the
// body is computed from them, for every message already stored too. An
// address whose text was not valid UTF-8 is stored in JSON with U+FFFD, which
// can shift the start by a few characters (SQLite only: PostgreSQL stores no
// invalid UTF-8).
func (c *searchCompiler) bodyStart() string {
	parts := []string{"length(m.subject)"}
	for _, col := range []string{"m.from_addr", "m.to_addrs", "m.cc_addrs"} {
		parts = append(parts, c.addressLineChars(col))
	}
	// The subject line's and the last line's line breaks, and 1-based; an
	// integer, as PostgreSQL's substr takes (sum gives a bigint).
	return "CAST(" + strings.Join(parts, " + ") + " + 2 AS INTEGER)"
}

// addressLineChars is an SQL expression for the characters the addresses of
// one listing column take in search_text: "\n" name " " email each. A column
// that is not a JSON list (the empty default) counts none.
func (c *searchCompiler) addressLineChars(col string) string {
	if c.pg {
		return "(CASE WHEN " + col + " LIKE '[%' THEN (SELECT coalesce(sum(length(coalesce(a->>'name', '')) + length(coalesce(a->>'email', '')) + 2), 0)" +
			" FROM jsonb_array_elements(" + col + "::jsonb) a) ELSE 0 END)"
	}
	return "(SELECT coalesce(sum(length(coalesce(json_extract(a.value, '$.name'), '')) + length(coalesce(json_extract(a.value, '$.email'), '')) + 2), 0)" +
		" FROM json_each(CASE WHEN " + col + " LIKE '[%' THEN " + col + " ELSE '[]' END) a)"
}

// SEARCH FROM, TO, CC and BCC (RFC 9051 §6.4.4) match "the envelope
// structure's" field, not the header text: what a client is shown by FETCH
// ENVELOPE, whatever form the header used (comments, groups, quoting, encoded
// words). The mail core stores each content's envelope as the JSON of go-imap's
// imap.Envelope with every string decoded (protocol/message/codec.go); a search
// reads its address lists from there. SQL selects the rows whose envelope has
// the field and holds every word of the value (addressPrefilter, a superset);
// Go then decides on the field's text (addressText).

// maxAddressWords bounds the LIKE conditions one address key adds: its longest
// words are enough to narrow the rows, and fewer only widen the superset.
const maxAddressWords = 8

// addressPrefilter is a condition that holds for every row whose envelope's
// k.Field could contain k.Value: the field is present as a list, and each word
// of the value (addressWords) appears in the envelope's JSON.
func addressPrefilter(k *SearchKey) (string, []any) {
	conds := []string{"lower(c.envelope) LIKE ? ESCAPE '\\'"}
	args := []any{likeContains(`"` + addressField(k.Field) + `":[`)}
	for _, w := range addressWords(k.Value) {
		conds = append(conds, "lower(c.envelope) LIKE ? ESCAPE '\\'")
		args = append(args, likeContains(w))
	}
	return strings.Join(conds, " AND "), args
}

// addressField is the envelope's JSON key for an address field name.
func addressField(field string) string {
	switch strings.ToLower(field) {
	case "to":
		return "To"
	case "cc":
		return "Cc"
	case "bcc":
		return "Bcc"
	}
	return "From"
}

// addressWords are the longest runs of the value, lower-cased, that any row
// whose field contains the value has verbatim in its envelope's JSON, whatever
// the database's lower() does: runs of ASCII letters and digits, and of
// caseless letters and digits (CJK, say). JSON escapes neither, and the field's
// text (addressText) is its strings joined by punctuation and spaces, so a run
// never spans two strings. A letter with case outside ASCII ends a run: SQLite's
// lower() leaves it as it is.
func addressWords(value string) []string {
	isWord := func(r rune) bool {
		if r < 0x80 {
			return 'a' <= r && r <= 'z' || '0' <= r && r <= '9'
		}
		return (unicode.IsLetter(r) || unicode.IsDigit(r)) && unicode.SimpleFold(r) == r
	}
	seen := map[string]bool{}
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(value), func(r rune) bool { return !isWord(r) }) {
		if !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	sort.SliceStable(words, func(i, j int) bool { return len(words[i]) > len(words[j]) })
	if len(words) > maxAddressWords {
		words = words[:maxAddressWords]
	}
	return words
}

// envelopeAddress is one address of a stored envelope: a mailbox, or a group's
// start (Host empty, Mailbox its name) or end (all empty), as RFC 9051 §7.5.2
// marks groups.
type envelopeAddress struct {
	Name, Mailbox, Host string
}

// rowEnvelope is a row's stored envelope, decoded on first use.
type rowEnvelope struct {
	raw     string
	decoded bool
	fields  struct{ From, To, Cc, Bcc []envelopeAddress }
}

// contains reports whether the text of field (addressText) contains value, in
// any case. An empty value matches a field with an address or group. An
// envelope that cannot be read has no addresses.
func (e *rowEnvelope) contains(field, value string) bool {
	if !e.decoded {
		e.decoded = true
		if json.Unmarshal([]byte(e.raw), &e.fields) != nil {
			e.fields.From, e.fields.To, e.fields.Cc, e.fields.Bcc = nil, nil, nil, nil
		}
	}
	var list []envelopeAddress
	switch addressField(field) {
	case "From":
		list = e.fields.From
	case "To":
		list = e.fields.To
	case "Cc":
		list = e.fields.Cc
	case "Bcc":
		list = e.fields.Bcc
	}
	if len(list) == 0 {
		return false
	}
	return strings.Contains(strings.ToLower(addressText(list)), strings.ToLower(value))
}

// addressText renders an envelope's address list as RFC 5322 writes one, with
// nothing but what the envelope holds (no comments; names decoded; no quoting
// beyond a local part's own): "Name <mailbox@host>" or "mailbox@host", joined
// by ", ", a group as "name: members;".
func addressText(list []envelopeAddress) string {
	var b strings.Builder
	sep := false
	for _, a := range list {
		switch {
		case a.Host == "" && a.Mailbox == "": // group end
			b.WriteString(";")
			sep = true
			continue
		case sep:
			b.WriteString(", ")
		}
		switch {
		case a.Host == "": // group start
			b.WriteString(a.Mailbox + ": ")
			sep = false
			continue
		case a.Name != "":
			b.WriteString(a.Name + " <" + a.Mailbox + "@" + a.Host + ">")
		default:
			b.WriteString(a.Mailbox + "@" + a.Host)
		}
		sep = true
	}
	return b.String()
}
