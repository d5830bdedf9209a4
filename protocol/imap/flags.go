package imap

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
)

// systemFlags are the flags every mailbox offers (RFC 9051 §2.3.2). FLAGS and
// PERMANENTFLAGS add the keywords in use in the mailbox (see keywordNews), and
// \* in PERMANENTFLAGS offers new ones: any may be created, and their case is
// kept as first given (the reference server lower-cases them; clients do not
// expect that).
var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// maxKeywordLen bounds one keyword; longer ones are refused.
const maxKeywordLen = 100

func toIMAPFlags(f models.Flags) []imap.Flag {
	out := make([]imap.Flag, 0, 2+len(f.Keywords))
	if f.Seen {
		out = append(out, imap.FlagSeen)
	}
	if f.Answered {
		out = append(out, imap.FlagAnswered)
	}
	if f.Flagged {
		out = append(out, imap.FlagFlagged)
	}
	if f.Deleted {
		out = append(out, imap.FlagDeleted)
	}
	if f.Draft {
		out = append(out, imap.FlagDraft)
	}
	for _, k := range f.Keywords {
		out = append(out, imap.Flag(k))
	}
	return out
}

// fromIMAPFlags converts flags a client gave. \Recent cannot be set by a client
// (RFC 3501 §2.3.2) and other unknown system flags are not stored: both are
// ignored. A keyword that is too long is ErrInvalid.
func fromIMAPFlags(flags []imap.Flag) (models.Flags, error) {
	var f models.Flags
	for _, fl := range flags {
		switch strings.ToLower(string(fl)) {
		case `\seen`:
			f.Seen = true
		case `\answered`:
			f.Answered = true
		case `\flagged`:
			f.Flagged = true
		case `\deleted`:
			f.Deleted = true
		case `\draft`:
			f.Draft = true
		default:
			if strings.HasPrefix(string(fl), `\`) {
				continue
			}
			if len(fl) > maxKeywordLen {
				return f, models.Invalid("flags", "keyword too long")
			}
			f.Keywords = append(f.Keywords, string(fl))
		}
	}
	return f, nil
}

// Keywords (RFC 9051 §2.3.2) are listed in the FLAGS response as flags of the
// mailbox, and a client is told of a new one in a FLAGS response before any
// FETCH shows it (RFC 9051 §7.3.5, RFC 3501 §7.2.6): the mailbox state keeps
// the keywords in use, SELECT lists them, and every FETCH response passes
// through cmdConn, which has the session put the FLAGS update (and, in a
// read-write session, the PERMANENTFLAGS that go with it) before one that
// shows a keyword the client has not been given. Looking at what is sent,
// rather than at the changes, covers every way a keyword reaches a client:
// its own STORE, a FETCH that reads one another session has just set, and
// the updates of a poll or IDLE.

// loadKeywords reads the keywords used in the mailbox.
func (st *mailboxState) loadKeywords(ctx context.Context) ([]string, error) {
	kws, err := st.reg.mbox.Keywords(ctx, st.id)
	if err != nil {
		return nil, fmt.Errorf("keywords of mailbox %d: %w", st.id, err)
	}
	return kws, nil
}

// learnKeywordsLocked adds keywords to the mailbox's list. Under st.mu.
func (st *mailboxState) learnKeywordsLocked(kws []string) {
	if st.keywords == nil && len(kws) > 0 {
		st.keywords = make(map[string]string)
	}
	for _, k := range kws {
		lk := strings.ToLower(k)
		if _, ok := st.keywords[lk]; !ok && validKeyword(k) {
			st.keywords[lk] = k
		}
	}
}

// keywordListLocked is the mailbox's list of keywords, sorted without case.
// Under st.mu.
func (st *mailboxState) keywordListLocked() []string {
	out := make([]string, 0, len(st.keywords))
	for _, k := range st.keywords {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

// validKeyword reports whether k can be sent as a keyword: an atom (RFC
// 9051's flag-keyword). Keywords come from clients as atoms; one that is not
// is left out of FLAGS rather than make the response fail.
func validKeyword(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isAtomChar(k[i]) {
			return false
		}
	}
	return true
}

// mailboxFlags is the FLAGS list of a mailbox with keywords kws.
func mailboxFlags(kws []string) []imap.Flag {
	out := append(make([]imap.Flag, 0, len(systemFlags)+len(kws)), systemFlags...)
	for _, k := range kws {
		out = append(out, imap.Flag(k))
	}
	return out
}

// permanentFlags is the PERMANENTFLAGS list of a read-write mailbox with
// keywords kws: every flag, and \* since clients may create keywords.
func permanentFlags(kws []string) []imap.Flag {
	return append(mailboxFlags(kws), imap.FlagWildcard)
}

// toldKeywords are the keywords a session's client has been given in FLAGS
// responses for the selected mailbox, by lower case, as given. Set by the
// command goroutine at SELECT; read and grown by whichever goroutine writes
// a FETCH response (the command's, or IDLE's).
type toldKeywords struct {
	mu  sync.Mutex
	set map[string]string // guarded by mu; nil while no mailbox is selected
}

// tell records that the client was given kws (nil: no mailbox selected).
func (t *toldKeywords) tell(kws []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if kws == nil {
		t.set = nil
		return
	}
	t.set = make(map[string]string, len(kws))
	for _, k := range kws {
		t.set[strings.ToLower(k)] = k
	}
}

// keywordNews is what must come before a FETCH response showing keywords
// kws: nothing if the client has been given them all, otherwise a FLAGS
// response with every keyword of the mailbox, and, unless the mailbox was
// opened read-only (its PERMANENTFLAGS stay empty), the PERMANENTFLAGS that
// let them all be kept. Called by cmdConn from inside the library's write.
func (s *session) keywordNews(kws []string) []byte {
	v := s.current()
	if v == nil {
		return nil
	}
	s.told.mu.Lock()
	defer s.told.mu.Unlock()
	if s.told.set == nil {
		return nil
	}
	var fresh []string
	for _, k := range kws {
		if _, ok := s.told.set[strings.ToLower(k)]; !ok && validKeyword(k) {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	// The update replaces the client's list, so it names every keyword the
	// client was given: they are all in the state's list, which only grows.
	// A keyword set after the state's last apply is learnt here first.
	v.st.mu.Lock()
	v.st.learnKeywordsLocked(fresh)
	all := v.st.keywordListLocked()
	v.st.mu.Unlock()
	for _, k := range all {
		s.told.set[strings.ToLower(k)] = k
	}
	s.log.Debug("imap: new keywords announced", "keywords", fresh)
	return flagsUpdate(all, v.readOnly)
}

// flagsUpdate renders the FLAGS response for keywords kws and, for a
// read-write mailbox, the PERMANENTFLAGS response code that goes with it.
func flagsUpdate(kws []string, readOnly bool) []byte {
	var b bytes.Buffer
	b.WriteString("* FLAGS ")
	writeFlagList(&b, mailboxFlags(kws))
	b.WriteString("\r\n")
	if !readOnly {
		b.WriteString("* OK [PERMANENTFLAGS ")
		writeFlagList(&b, permanentFlags(kws))
		b.WriteString("] Permanent flags\r\n")
	}
	return b.Bytes()
}

func writeFlagList(b *bytes.Buffer, flags []imap.Flag) {
	b.WriteByte('(')
	for i, f := range flags {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(f))
	}
	b.WriteByte(')')
}

// fetchKeywords reads the keywords of the FLAGS item a FETCH response starts
// with, after its UID if any (the order fetchOne and the library's
// UpdateWriter.WriteMessageFlags write them in). done is false while p ends
// before that is known; a response that is not a FETCH, or a FETCH whose
// first items are not UID and FLAGS, has none.
func fetchKeywords(p []byte) (kws []string, done bool) {
	sc := respScanner{p: p}
	if r := sc.expect("* "); r != matched {
		return nil, r == mismatch
	}
	if r := sc.number(); r != matched {
		return nil, r == mismatch
	}
	if r := sc.expect(" FETCH ("); r != matched {
		return nil, r == mismatch
	}
	switch sc.expect("UID ") {
	case short:
		return nil, false
	case matched:
		if r := sc.number(); r != matched {
			return nil, r == mismatch
		}
		if r := sc.expect(" "); r != matched {
			return nil, r == mismatch
		}
	}
	if r := sc.expect("FLAGS ("); r != matched {
		return nil, r == mismatch
	}
	end := bytes.IndexByte(p[sc.i:], ')')
	if end < 0 {
		return nil, bytes.IndexByte(p[sc.i:], '\n') >= 0
	}
	for _, f := range strings.Fields(string(p[sc.i : sc.i+end])) {
		if !strings.HasPrefix(f, `\`) {
			kws = append(kws, f)
		}
	}
	return kws, true
}

// respScanner matches the start of a response.
type respScanner struct {
	p []byte
	i int
}

type scanResult uint8

const (
	matched  scanResult = iota
	short               // p ends first
	mismatch            // something else
)

func (sc *respScanner) expect(s string) scanResult {
	for j := 0; j < len(s); j++ {
		switch {
		case sc.i+j == len(sc.p):
			return short
		case sc.p[sc.i+j] != s[j]:
			return mismatch
		}
	}
	sc.i += len(s)
	return matched
}

func (sc *respScanner) number() scanResult {
	start := sc.i
	for sc.i < len(sc.p) && sc.p[sc.i] >= '0' && sc.p[sc.i] <= '9' {
		sc.i++
	}
	switch {
	case sc.i == len(sc.p):
		return short
	case sc.i == start:
		return mismatch
	}
	return matched
}
