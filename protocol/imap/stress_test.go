package imap_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailgate/mailgate/models"
	mgimap "github.com/mailgate/mailgate/protocol/imap"
	"github.com/mailgate/mailgate/protocol/wire"
)

// The stress run's knobs: `go test ./protocol/imap -run TestConcurrentClientsKeepState -stress=2m`
// runs it longer; messages with NUL octets are APPENDed too (as literal8, RFC
// 3516; BODY[] must then carry each NUL as 0x80 and BINARY[] the octets),
// unless -stress.nul=false. -stress.trace=40 shows each error with the client's last 40 lines.
var (
	stressFor   = flag.Duration("stress", 30*time.Second, "how long TestConcurrentClientsKeepState runs its clients")
	stressNUL   = flag.Bool("stress.nul", true, "TestConcurrentClientsKeepState also APPENDs messages containing NUL octets (-stress.nul=false: only 8-bit ones)")
	stressTrace = flag.Int("stress.trace", 0, "TestConcurrentClientsKeepState shows this many of the client's last lines with each error")
)

const (
	stressClients = 10
	stressSeed    = 8 // messages in each mailbox at the start
	// stressReplyTimeout bounds the wait for any one response line: a server
	// that stops answering is an error, not a hung test.
	stressReplyTimeout = 30 * time.Second
	// stressPause is the most a client waits between two commands, so that
	// ten clients leave the two cores some room and interleave differently
	// each run (it paces the load; nothing waits on it for ordering).
	stressPause = 4 * time.Millisecond
)

var (
	stressUsers     = []string{testUser, "bob@example.com", "carol@example.com"}
	stressMailboxes = []string{"INBOX", "Work", "Archive"}
)

// TestConcurrentClientsKeepState runs ten raw-socket clients at once, logged
// in as three users (so three or four connections share each user's
// mailboxes and see each other's changes), each doing random SELECT, EXAMINE,
// FETCH, STORE, EXPUNGE, APPEND, COPY, MOVE, NOOP, IDLE, CLOSE and LOGOUT.
// Each client keeps what it has been told (RFC 9051 §7.4: sequence numbers
// and their UIDs from EXISTS, EXPUNGE and FETCH, flags) and checks every later
// response against it; other sessions' changes may arrive at any command, so
// only what no legitimate interleaving explains is counted. When the clients
// stop, every view must agree with a fresh session's.
func TestConcurrentClientsKeepState(t *testing.T) {
	e := newEnvWith(t, envOptions{opt: mgimap.Options{Limits: wire.Limits{MaxConnectionsPerIP: 4 * stressClients}}})
	stressSetup(t, e)
	st := newStressStats()
	w := newStressWorld()
	stressCheckCaps(t, e.addr)

	clients := make([]*stressClient, stressClients)
	deadline := time.Now().Add(*stressFor)
	var wg sync.WaitGroup
	for i := range clients {
		c := newStressClient(i, i%len(stressUsers), e.addr, w, st)
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(deadline)
		}()
	}
	wg.Wait()
	stressConverge(clients, e.addr, w, st, stressStoreUIDs(e))
	st.report(t)
}

// stressSetup creates the users and their mailboxes, with a few messages in
// each.
func stressSetup(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	hash, err := bcrypt.GenerateFromPassword([]byte(testPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range stressUsers {
		u, err := e.store.GetUser(ctx, name)
		if err != nil {
			if u, err = e.store.CreateUser(ctx, models.NewUser{Email: name, PasswordHash: string(hash)}); err != nil {
				t.Fatalf("create user %s: %v", name, err)
			}
		}
		for _, mb := range stressMailboxes[1:] {
			if _, err := e.mbox.Create(ctx, u.ID, mb, ""); err != nil {
				t.Fatalf("create %s of %s: %v", mb, name, err)
			}
		}
		for _, mb := range stressMailboxes {
			for i := 0; i < stressSeed; i++ {
				msg := testMessage(i, "seed "+mb)
				if _, err := e.mbox.Append(ctx, u.ID, mb, strings.NewReader(msg), models.Flags{}, time.Time{}); err != nil {
					t.Fatalf("seed %s of %s: %v", mb, name, err)
				}
			}
		}
	}
}

// stressCheckCaps makes sure the server offers what the clients use.
func stressCheckCaps(t *testing.T, addr string) {
	t.Helper()
	r := dialRaw(t, addr)
	r.login()
	u := r.expectOK("CAPABILITY")
	if len(u) != 1 {
		t.Fatalf("CAPABILITY: %q", u)
	}
	have := strings.Fields(strings.ToUpper(u[0]))
	for _, c := range []string{"IMAP4REV1", "IMAP4REV2", "LITERAL+", "UIDPLUS", "MOVE", "IDLE", "BINARY", "UNSELECT"} {
		if !slices.Contains(have, c) {
			t.Fatalf("CAPABILITY lacks %s: %q", c, u[0])
		}
	}
	r.send("x LOGOUT")
}

// ---- what was found -------------------------------------------------------

// The kinds of error the run counts.
const (
	stressProtocol = "protocol" // BAD, unexpected NO, BYE or drop, malformed or misplaced response
	stressInternal = "internal" // NO [SERVERBUG]
	stressState    = "state"    // a response contradicting what the client was told before
)

// stressMinCommands is how often each command must have completed for the
// run to prove anything; stressMinEvents the same for the cross-session
// changes observed and the checks made.
const (
	stressMinCommands = 10
	stressMinEvents   = 10
)

var stressVerbs = []string{
	"LOGIN", "ENABLE", "SELECT", "EXAMINE", "FETCH", "UID FETCH", "STORE", "UID STORE", "EXPUNGE", "UID EXPUNGE",
	"APPEND", "COPY", "UID COPY", "MOVE", "UID MOVE", "NOOP", "IDLE", "CLOSE", "UNSELECT", "LOGOUT",
}

// The events that show the run exercised what it checks.
const (
	evOthersExists   = "EXISTS for others' messages"
	evOthersExpunge  = "EXPUNGE of others' expunges"
	evOthersFlags    = "FETCH FLAGS of others' changes"
	evOwnKeyword     = "own keyword checked"
	evContent        = "message content checked"
	evBinary         = "BINARY[] checked"
	evConverged      = "view compared at the end"
	evCache          = "flags told compared at the end"
	evUIDOrder       = "UID placed among known ones"
	evExpungeDone    = "EXPUNGE completeness checked"
	evMoveDone       = "MOVE completeness checked"
	evAppendUID      = "APPENDUID checked"
	evCopyUID        = "COPY's COPYUID checked"
	evLiteral8Append = "APPEND with literal8"
	ev8bitAppend     = "APPEND of 8-bit message"
)

var stressRequired = []string{
	evOthersExists, evOthersExpunge, evOthersFlags, evOwnKeyword, evContent, evUIDOrder,
	evExpungeDone, evMoveDone, evAppendUID, evCopyUID, ev8bitAppend, evBinary, evConverged, evCache,
}

type stressStats struct {
	mu      sync.Mutex
	count   map[string]int                        // by kind
	classes map[string]map[string]*stressErrClass // by kind, then by what went wrong
	cmds    map[string]int
	events  map[string]int
}

// stressErrClass is one way of going wrong (an error message's format) with
// its first occurrences.
type stressErrClass struct {
	n        int
	examples []string
}

func newStressStats() *stressStats {
	return &stressStats{count: map[string]int{}, classes: map[string]map[string]*stressErrClass{}, cmds: map[string]int{}, events: map[string]int{}}
}

func (s *stressStats) fail(kind, class, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count[kind]++
	if s.classes[kind] == nil {
		s.classes[kind] = map[string]*stressErrClass{}
	}
	cl := s.classes[kind][class]
	if cl == nil {
		cl = &stressErrClass{}
		s.classes[kind][class] = cl
	}
	cl.n++
	if len(cl.examples) < 3 {
		cl.examples = append(cl.examples, msg)
	}
}

func (s *stressStats) ran(verb string) {
	s.mu.Lock()
	s.cmds[verb]++
	s.mu.Unlock()
}

func (s *stressStats) event(name string) {
	s.mu.Lock()
	s.events[name]++
	s.mu.Unlock()
}

// classesLocked lists a kind's classes of error, most frequent first, each
// with its first examples.
func (s *stressStats) classesLocked(kind string) string {
	var names []string
	for name := range s.classes[kind] {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return s.classes[kind][names[i]].n > s.classes[kind][names[j]].n })
	var b strings.Builder
	for _, name := range names {
		cl := s.classes[kind][name]
		fmt.Fprintf(&b, "\n  %d× %q, first:", cl.n, name)
		for _, ex := range cl.examples {
			b.WriteString("\n    " + ex)
		}
	}
	return b.String()
}

func (s *stressStats) report(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	var verbs []string
	for v, n := range s.cmds {
		total += n
		verbs = append(verbs, fmt.Sprintf("%s=%d", v, n))
	}
	sort.Strings(verbs)
	var events []string
	for ev, n := range s.events {
		events = append(events, fmt.Sprintf("%s=%d", ev, n))
	}
	sort.Strings(events)
	t.Logf("%d commands completed OK in %v by %d clients: %s", total, *stressFor, stressClients, strings.Join(verbs, " "))
	t.Logf("observed: %s", strings.Join(events, "; "))
	for _, kind := range []string{stressProtocol, stressInternal, stressState} {
		if n := s.count[kind]; n > 0 {
			t.Errorf("%d %s errors:%s", n, kind, s.classesLocked(kind))
		}
	}
	for _, v := range stressVerbs {
		if s.cmds[v] < stressMinCommands {
			t.Errorf("%s completed %d times (want at least %d): the run proves little", v, s.cmds[v], stressMinCommands)
		}
	}
	for _, ev := range stressRequired {
		if s.events[ev] < stressMinEvents {
			t.Errorf("%q happened %d times (want at least %d): the run proves little", ev, s.events[ev], stressMinEvents)
		}
	}
	if *stressNUL && s.events[evLiteral8Append] < stressMinEvents {
		t.Errorf("%q happened %d times", evLiteral8Append, s.events[evLiteral8Append])
	}
}

// ---- what every client may rely on ------------------------------------------

// stressKey names a mailbox: its user and name (no mailbox is ever deleted or
// renamed, so UIDVALIDITY must never change).
type stressKey struct {
	user    int
	mailbox string
}

type stressMsgKey struct {
	stressKey
	uid uint32
}

// stressFacts are what a message (a UID of a mailbox) is, learnt from any
// session: it never changes (RFC 9051 §2.3.1.1: a UID names one message).
type stressFacts struct {
	raw     []byte // the octets as appended or as BINARY[] gives them
	content []byte // as BODY[] gives them: raw with NUL as 0x80 (see stressBodyForm)
	size    int64  // -1 unknown
	header  []byte
}

// stressBodyForm is a message as BODY[] may carry it: a literal may not hold
// NUL (RFC 9051 §4.3), so the server sends each as 0x80 (as Dovecot does),
// keeping every size and offset; BINARY[] (RFC 3516) carries the octets.
func stressBodyForm(raw []byte) []byte {
	if bytes.IndexByte(raw, 0) < 0 {
		return raw
	}
	return bytes.ReplaceAll(raw, []byte{0}, []byte{0x80})
}

// stressWorld is what all clients learnt that holds whatever the
// interleaving: UIDVALIDITY, message contents and sizes by UID, and the
// highest UID any response showed (a message that existed then).
type stressWorld struct {
	mu       sync.Mutex
	validity map[stressKey]uint32
	maxUID   map[stressKey]uint32
	facts    map[stressMsgKey]*stressFacts
}

func newStressWorld() *stressWorld {
	return &stressWorld{validity: map[stressKey]uint32{}, maxUID: map[stressKey]uint32{}, facts: map[stressMsgKey]*stressFacts{}}
}

// checkValidity records a mailbox's UIDVALIDITY, or says how it changed.
func (w *stressWorld) checkValidity(k stressKey, v uint32) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.validity[k]; ok && old != v {
		return fmt.Sprintf("UIDVALIDITY of %v changed from %d to %d", k, old, v)
	}
	w.validity[k] = v
	return ""
}

func (w *stressWorld) sawUID(k stressKey, uid uint32) {
	w.mu.Lock()
	w.maxUID[k] = max(w.maxUID[k], uid)
	w.mu.Unlock()
}

func (w *stressWorld) highest(k stressKey) uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxUID[k]
}

func (w *stressWorld) factsLocked(k stressMsgKey) *stressFacts {
	f := w.facts[k]
	if f == nil {
		f = &stressFacts{size: -1}
		w.facts[k] = f
	}
	return f
}

// learn compares what a response said of a message with what is known of it,
// and records what is new. raw, content, header and size may each be unset
// (nil, -1). The answer is the contradiction, if any.
func (w *stressWorld) learn(k stressMsgKey, raw, content, header []byte, size int64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.factsLocked(k)
	if raw != nil {
		if f.raw != nil && !bytes.Equal(f.raw, raw) {
			return fmt.Sprintf("BINARY[] of %v UID %d differs from what was stored (%s vs %s)", k.stressKey, k.uid, stressShort(raw), stressShort(f.raw))
		}
		f.raw = raw
		if content == nil {
			content = stressBodyForm(raw)
		}
	}
	if content != nil {
		if f.content != nil && !bytes.Equal(f.content, content) {
			return fmt.Sprintf("BODY[] of %v UID %d differs from before (%s vs %s)", k.stressKey, k.uid, stressShort(content), stressShort(f.content))
		}
		f.content = content
	}
	if header != nil {
		if f.header != nil && !bytes.Equal(f.header, header) {
			return fmt.Sprintf("BODY[HEADER] of %v UID %d differs from before", k.stressKey, k.uid)
		}
		f.header = header
	}
	if size >= 0 {
		if f.size >= 0 && f.size != size {
			return fmt.Sprintf("RFC822.SIZE of %v UID %d is %d, was %d", k.stressKey, k.uid, size, f.size)
		}
		f.size = size
	}
	if f.content != nil {
		if f.size >= 0 && f.size != int64(len(f.content)) {
			return fmt.Sprintf("RFC822.SIZE of %v UID %d is %d but its BODY[] has %d octets", k.stressKey, k.uid, f.size, len(f.content))
		}
		if f.header != nil && !bytes.Equal(f.header, stressHeaderOf(f.content)) {
			return fmt.Sprintf("BODY[HEADER] of %v UID %d (%s) is not the header of its BODY[]", k.stressKey, k.uid, stressShort(f.header))
		}
	}
	return ""
}

// copied records that dst is a copy of src (COPYUID): same content.
func (w *stressWorld) copied(src, dst stressMsgKey) string {
	w.mu.Lock()
	from := w.facts[src]
	w.mu.Unlock()
	if from == nil {
		return ""
	}
	return w.learn(dst, from.raw, from.content, from.header, from.size)
}

// stressHeaderOf is the header of a message as RFC 9051 §6.4.5 defines
// BODY[HEADER]: up to and including the empty line.
func stressHeaderOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+4]
	}
	return msg
}

func stressShort(b []byte) string {
	if len(b) > 60 {
		return fmt.Sprintf("%q… (%d octets)", b[:60], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// ---- reading responses --------------------------------------------------------

// stressResp is one server response: its lines, with the literals between
// them (lits[i] follows text[i]).
type stressResp struct {
	text []string
	lits [][]byte
	lit8 []bool
}

func (r *stressResp) String() string {
	var b strings.Builder
	for i, s := range r.text {
		b.WriteString(s)
		if i < len(r.lits) {
			fmt.Fprintf(&b, "{%d}", len(r.lits[i]))
		}
		if b.Len() > 300 {
			return b.String()[:300] + "…"
		}
	}
	return b.String()
}

// stressLitRe is a literal's announcement at the end of a line: {n}, or ~{n}
// for a literal8 (RFC 3516).
var stressLitRe = regexp.MustCompile(`(~?)\{(\d+)\}$`)

// stressAtom is an atom (including NIL, numbers, flags and BODY[...]); a
// string (quoted or literal) is []byte, a list []any.
type stressAtom string

type stressString struct {
	data []byte
	lit8 bool
}

// stressParser reads the values of a response.
type stressParser struct {
	r   *stressResp
	seg int
	pos int
}

var errStressSyntax = errors.New("malformed response")

func (p *stressParser) cur() string { return p.r.text[p.seg] }

func (p *stressParser) skipSP() {
	for p.pos < len(p.cur()) && p.cur()[p.pos] == ' ' {
		p.pos++
	}
}

// value reads the next value.
func (p *stressParser) value() (any, error) {
	p.skipSP()
	s := p.cur()
	if p.pos == len(s) {
		if p.seg >= len(p.r.lits) {
			return nil, fmt.Errorf("%w: value missing", errStressSyntax)
		}
		v := stressString{data: p.r.lits[p.seg], lit8: p.r.lit8[p.seg]}
		p.seg++
		p.pos = 0
		return v, nil
	}
	switch s[p.pos] {
	case '(':
		p.pos++
		list := []any{}
		for {
			p.skipSP()
			if p.pos < len(p.cur()) && p.cur()[p.pos] == ')' {
				p.pos++
				return list, nil
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	case ')':
		return nil, fmt.Errorf("%w: unexpected ')'", errStressSyntax)
	case '"':
		return p.quoted()
	}
	start, depth := p.pos, 0
	for ; p.pos < len(s); p.pos++ {
		ch := s[p.pos]
		if ch == '[' {
			depth++
		} else if ch == ']' {
			depth--
		} else if depth == 0 && (ch == ' ' || ch == '(' || ch == ')') {
			break
		}
	}
	return stressAtom(s[start:p.pos]), nil
}

func (p *stressParser) quoted() (any, error) {
	s := p.cur()
	var b []byte
	for p.pos++; p.pos < len(s); p.pos++ {
		switch s[p.pos] {
		case '\\':
			p.pos++
			if p.pos == len(s) {
				return nil, fmt.Errorf("%w: quoted string ends in \\", errStressSyntax)
			}
			b = append(b, s[p.pos])
		case '"':
			p.pos++
			return stressString{data: b}, nil
		default:
			b = append(b, s[p.pos])
		}
	}
	return nil, fmt.Errorf("%w: unterminated quoted string", errStressSyntax)
}

func (p *stressParser) atom() (string, error) {
	v, err := p.value()
	if err != nil {
		return "", err
	}
	a, ok := v.(stressAtom)
	if !ok {
		return "", fmt.Errorf("%w: want an atom, got %T", errStressSyntax, v)
	}
	return string(a), nil
}

// rest is the remaining text of the first line (status response text).
func (p *stressParser) rest() string {
	p.skipSP()
	return p.cur()[p.pos:]
}

// stressCode splits a status text into its response code (without brackets)
// and the rest.
func stressCode(text string) (code, rest string) {
	if !strings.HasPrefix(text, "[") {
		return "", text
	}
	i := strings.IndexByte(text, ']')
	if i < 0 {
		return "", text
	}
	return text[1:i], strings.TrimSpace(text[i+1:])
}

// ---- one client ---------------------------------------------------------------

// stressMsg is a message as the client knows it, by sequence number.
type stressMsg struct {
	id  int    // the client's own name for the entry, unique
	uid uint32 // 0 until a FETCH tells it
	old bool   // counted in the SELECT's EXISTS: its UID is below that UIDNEXT
	del bool   // seen or set \Deleted (no client ever removes it)
	// flags are the message's flags as last reported, with this client's
	// own .SILENT changes applied (lower case, without \Recent); nil when
	// unknown. RFC 9051 §6.4.6: others' changes are reported even around a
	// .SILENT STORE, so this must end up right.
	flags map[string]bool
}

// stressView is the selected mailbox as the client was told of it.
type stressView struct {
	key         stressKey
	readOnly    bool
	msgs        []stressMsg
	uidNext     uint32
	validity    uint32
	gotExists   bool
	maxBefore   uint32 // the highest UID any client saw before the SELECT
	uidNextSeen bool
}

// stressCmd is a command in progress and what its responses told.
type stressCmd struct {
	verb   string
	line   string
	tag    string
	lit    []byte
	sync   bool // synchronizing literal: wait for "+" before sending it
	idle   time.Duration
	byUID  bool
	silent bool

	noExpunge bool // FETCH, STORE, SEARCH: RFC 9051 §7.5.1
	selecting *stressView
	switched  bool // the SELECT's responses now describe the new mailbox
	logout    bool
	dest      stressKey // APPEND, COPY, MOVE
	destMax   uint32    // the highest UID of dest seen before sending

	named     map[uint32]bool // known UIDs the command names: a FETCH is due for each
	flight    map[uint32]bool // STORE of the own keyword: the value it sets, by UID
	flightSeq map[int]bool    // the same by index, for STORE by sequence number
	addDel    bool            // STORE +FLAGS (\Deleted)
	seqs      [2]int          // STORE by sequence number: the indexes [from, to) it names
	answered  map[int]bool    // entries (by id) a FETCH with FLAGS described
	lastOwn   map[uint32]bool // the own keyword in the last FETCH of each UID
	responded map[uint32]bool
	expunged  map[uint32]bool
	grew      bool         // an EXISTS raised the count
	copyUID   string       // the COPYUID code, from the untagged OK (MOVE) or the tagged one
	doomed    map[int]bool // EXPUNGE: the entries known \Deleted when it was sent
	appended  []byte
	ownFlag   bool // APPEND with the own keyword
	code      string
}

type stressClient struct {
	id   int
	user int
	addr string
	w    *stressWorld
	st   *stressStats
	rng  *rand.Rand
	rev2 bool
	kw   string // the keyword only this client sets or clears

	conn  net.Conn
	br    *bufio.Reader
	wmu   sync.Mutex // the IDLE timer writes DONE
	tags  int
	v     *stressView
	cmd   *stressCmd
	bye   bool // the server said BYE
	nmsgs int
	ids   int // entries of views made

	refFlags map[uint32][]string // the reference session's FLAGS by UID
	trace    []string            // the last lines sent and received, with -stress.trace

	known   map[stressKey]map[uint32]bool   // own keyword per UID, as this client last set or saw it
	why     map[stressKey]map[uint32]string // what set known: the command or response
	gone    map[stressKey]map[uint32]bool   // UIDs this client was told were expunged
	missing map[stressKey]map[uint32]string // UIDs a FETCH or STORE left out: they must be gone
}

func newStressClient(id, user int, addr string, w *stressWorld, st *stressStats) *stressClient {
	return &stressClient{
		id: id, user: user, addr: addr, w: w, st: st,
		rng:   rand.New(rand.NewSource(time.Now().UnixNano() + int64(id)*7919)),
		rev2:  id%2 == 1,
		kw:    fmt.Sprintf("Own%d", id),
		known: map[stressKey]map[uint32]bool{}, why: map[stressKey]map[uint32]string{}, gone: map[stressKey]map[uint32]bool{},
		missing: map[stressKey]map[uint32]string{},
	}
}

func stressSub[V any](m map[stressKey]map[uint32]V, k stressKey) map[uint32]V {
	s := m[k]
	if s == nil {
		s = map[uint32]V{}
		m[k] = s
	}
	return s
}

func (c *stressClient) fail(kind, format string, args ...any) {
	where := ""
	if c.cmd != nil {
		where = fmt.Sprintf(" [%s %s]", c.cmd.tag, stressTrim(c.cmd.line))
	}
	if c.v != nil {
		where += fmt.Sprintf(" in %s", c.v.key.mailbox)
	}
	msg := fmt.Sprintf("client %d (%s)%s: %s", c.id, stressUsers[c.user], where, fmt.Sprintf(format, args...))
	if len(c.trace) > 0 {
		msg += "\n      | " + strings.Join(c.trace, "\n      | ")
	}
	c.st.fail(kind, format, msg)
}

// traced keeps a line of the conversation for -stress.trace.
func (c *stressClient) traced(line string) {
	if *stressTrace <= 0 {
		return
	}
	if len(c.trace) >= *stressTrace {
		c.trace = c.trace[1:]
	}
	c.trace = append(c.trace, stressTrim(line))
}

func stressTrim(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// run works until the deadline, reconnecting after LOGOUT or a failure.
func (c *stressClient) run(deadline time.Time) {
	for time.Now().Before(deadline) {
		if c.conn == nil && !c.connect() {
			continue
		}
		c.step()
		time.Sleep(time.Duration(c.rng.Int63n(int64(stressPause))))
	}
}

func (c *stressClient) connect() bool {
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		c.fail(stressProtocol, "dial: %v", err)
		return false
	}
	c.conn, c.br, c.bye, c.v = conn, bufio.NewReader(conn), false, nil
	r, err := c.readResp()
	if err != nil || !strings.HasPrefix(r.text[0], "* OK") {
		c.fail(stressProtocol, "greeting: %v %v", r, err)
		c.close()
		return false
	}
	if !c.exec(&stressCmd{verb: "LOGIN", line: fmt.Sprintf("LOGIN %s %q", stressUsers[c.user], testPass)}) {
		c.close()
		return false
	}
	if c.rev2 && !c.exec(&stressCmd{verb: "ENABLE", line: "ENABLE IMAP4rev2"}) {
		c.close()
		return false
	}
	return true
}

func (c *stressClient) close() {
	if c.conn != nil {
		c.conn.Close()
	}
	c.conn, c.v = nil, nil
}

func (c *stressClient) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(stressReplyTimeout))
	_, err := io.WriteString(c.conn, s)
	return err
}

func (c *stressClient) readResp() (*stressResp, error) {
	r := &stressResp{}
	for {
		c.conn.SetReadDeadline(time.Now().Add(stressReplyTimeout))
		line, err := c.br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("read: %w (after %q)", err, line)
		}
		if !strings.HasSuffix(line, "\r\n") {
			return nil, fmt.Errorf("line not ended by CRLF: %q", line)
		}
		line = line[:len(line)-2]
		m := stressLitRe.FindStringSubmatchIndex(line)
		if m == nil {
			r.text = append(r.text, line)
			c.traced("S: " + r.String())
			return r, nil
		}
		n, err := strconv.Atoi(line[m[4]:m[5]])
		if err != nil || n > 8<<20 {
			return nil, fmt.Errorf("literal size in %q", line)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			return nil, fmt.Errorf("read literal of %d octets: %w", n, err)
		}
		r.text = append(r.text, line[:m[0]])
		r.lits = append(r.lits, buf)
		r.lit8 = append(r.lit8, m[3] > m[2])
	}
}

// exec runs one command to its tagged response and reports whether it was OK.
func (c *stressClient) exec(cmd *stressCmd) bool {
	if c.conn == nil {
		return false
	}
	c.cmd = cmd
	defer func() { c.cmd = nil }()
	c.tags++
	cmd.tag = fmt.Sprintf("c%d.%d", c.id, c.tags)
	cmd.responded, cmd.expunged, cmd.lastOwn = map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}
	out := cmd.tag + " " + cmd.line + "\r\n"
	if cmd.lit != nil && !cmd.sync {
		out += string(cmd.lit) + "\r\n"
	}
	c.traced("C: " + cmd.tag + " " + cmd.line)
	if err := c.write(out); err != nil {
		return c.dropped(err)
	}
	waitCont := cmd.sync || cmd.idle > 0
	var stopIdle func()
	defer func() {
		if stopIdle != nil {
			stopIdle()
		}
	}()
	for {
		r, err := c.readResp()
		if err != nil {
			return c.dropped(err)
		}
		line := r.text[0]
		switch {
		case strings.HasPrefix(line, cmd.tag+" "):
			return c.tagged(cmd, r)
		case strings.HasPrefix(line, "+"):
			if !waitCont {
				c.fail(stressProtocol, "unexpected continuation request %q", line)
				continue
			}
			waitCont = false
			if cmd.sync {
				if err := c.write(string(cmd.lit) + "\r\n"); err != nil {
					return c.dropped(err)
				}
			} else {
				stopIdle = c.doneAfter(cmd.idle)
			}
		case strings.HasPrefix(line, "* "):
			c.untagged(r)
		default:
			c.fail(stressProtocol, "response neither tagged, untagged nor continuation: %s", r)
		}
	}
}

// doneAfter ends IDLE after d, from a timer: the client keeps reading what
// the server reports meanwhile. The returned func waits for the timer to be
// stopped or done, so that DONE is never written after the next command.
func (c *stressClient) doneAfter(d time.Duration) func() {
	fired := make(chan struct{})
	timer := time.AfterFunc(d, func() {
		defer close(fired)
		c.write("DONE\r\n") //nolint:errcheck // a failed write shows as a failed read
	})
	return func() {
		if !timer.Stop() {
			<-fired
		}
	}
}

// dropped records a connection that ended under a command.
func (c *stressClient) dropped(err error) bool {
	if !c.bye && (c.cmd == nil || !c.cmd.logout) {
		c.fail(stressProtocol, "connection dropped: %v", err)
	}
	c.close()
	return false
}

func (c *stressClient) tagged(cmd *stressCmd, r *stressResp) bool {
	text := strings.TrimPrefix(r.text[0], cmd.tag+" ")
	status, rest, _ := strings.Cut(text, " ")
	cmd.code, _ = stressCode(rest)
	switch strings.ToUpper(status) {
	case "OK":
		c.st.ran(cmd.verb)
		c.finishOK(cmd)
		return true
	case "NO":
		switch {
		case strings.HasPrefix(cmd.code, "SERVERBUG"):
			c.fail(stressInternal, "%s", r)
		case strings.HasPrefix(cmd.code, "EXPUNGEISSUED"):
			// RFC 5530: the command named messages another session expunged.
		default:
			c.fail(stressProtocol, "unexpected NO: %s", r)
		}
	case "BAD":
		c.fail(stressProtocol, "BAD to a well-formed command: %s", r)
	default:
		c.fail(stressProtocol, "malformed tagged response: %s", r)
	}
	c.finishFailed(cmd)
	return false
}

// ---- untagged responses -------------------------------------------------------

func (c *stressClient) untagged(r *stressResp) {
	p := &stressParser{r: r, pos: 2}
	first, err := p.atom()
	if err != nil {
		c.fail(stressProtocol, "%v: %s", err, r)
		return
	}
	if n, err := strconv.ParseUint(first, 10, 32); err == nil {
		kind, err := p.atom()
		if err != nil {
			c.fail(stressProtocol, "%v: %s", err, r)
			return
		}
		switch strings.ToUpper(kind) {
		case "EXISTS":
			c.onExists(uint32(n), r)
		case "EXPUNGE":
			c.onExpunge(uint32(n), r)
		case "RECENT":
			c.onRecent(uint32(n), r)
		case "FETCH":
			v, err := p.value()
			items, ok := v.([]any)
			if err != nil || !ok || len(items)%2 != 0 {
				c.fail(stressProtocol, "malformed FETCH (%v): %s", err, r)
				return
			}
			c.onFetch(uint32(n), items, r)
		default:
			c.fail(stressProtocol, "unknown untagged response: %s", r)
		}
		return
	}
	switch strings.ToUpper(first) {
	case "OK", "NO", "BAD", "BYE":
		c.onStatus(strings.ToUpper(first), p.rest(), r)
	case "CAPABILITY", "FLAGS", "LIST", "ENABLED", "SEARCH", "ESEARCH", "STATUS", "NAMESPACE":
	default:
		c.fail(stressProtocol, "unknown untagged response: %s", r)
	}
}

func (c *stressClient) onStatus(status, text string, r *stressResp) {
	code, _ := stressCode(text)
	switch status {
	case "BYE":
		if c.cmd == nil || !c.cmd.logout {
			c.fail(stressProtocol, "BYE not asked for: %s", r)
		}
		c.bye = true
		return
	case "BAD":
		c.fail(stressProtocol, "untagged BAD: %s", r)
		return
	case "NO":
		if strings.HasPrefix(code, "SERVERBUG") {
			c.fail(stressInternal, "%s", r)
		} else {
			c.fail(stressProtocol, "untagged NO: %s", r)
		}
		return
	}
	f := strings.Fields(code)
	if len(f) == 0 {
		return
	}
	num := func(i int) uint32 {
		if i >= len(f) {
			return 0
		}
		n, _ := strconv.ParseUint(f[i], 10, 32)
		return uint32(n)
	}
	sel := c.cmd != nil && c.cmd.selecting != nil
	switch strings.ToUpper(f[0]) {
	case "CLOSED":
		if !sel || c.cmd.switched {
			c.fail(stressProtocol, "CLOSED outside a SELECT that closes a mailbox: %s", r)
			return
		}
		c.cmd.switched = true // CLOSED: what follows is the new mailbox's
		c.v = c.cmd.selecting
	case "UIDVALIDITY":
		if !sel {
			c.fail(stressProtocol, "UIDVALIDITY outside SELECT: %s", r)
			return
		}
		c.switchView()
		c.v.validity = num(1)
		if msg := c.w.checkValidity(c.v.key, num(1)); msg != "" {
			c.fail(stressState, "%s", msg)
		}
	case "UIDNEXT":
		if !sel {
			c.fail(stressProtocol, "UIDNEXT outside SELECT: %s", r)
			return
		}
		c.switchView()
		c.v.uidNext, c.v.uidNextSeen = num(1), true
		if c.v.uidNext <= c.v.maxBefore {
			c.fail(stressState, "UIDNEXT %d, yet UID %d existed before the SELECT", c.v.uidNext, c.v.maxBefore)
		}
		for i, m := range c.v.msgs {
			if m.uid != 0 {
				c.fail(stressState, "UIDNEXT after a FETCH of message %d", i+1)
			}
		}
	case "UNSEEN":
		if c.v == nil || num(1) == 0 || int(num(1)) > len(c.v.msgs) {
			c.fail(stressState, "UNSEEN %d with %d messages", num(1), c.viewLen())
		}
	case "COPYUID":
		if c.cmd == nil || !strings.Contains(c.cmd.verb, "MOVE") {
			c.fail(stressProtocol, "untagged COPYUID outside MOVE: %s", r)
			return
		}
		c.cmd.copyUID = code
	}
}

func (c *stressClient) viewLen() int {
	if c.v == nil {
		return -1
	}
	return len(c.v.msgs)
}

// switchView makes the SELECT's new mailbox the one the responses describe:
// after CLOSED, or at its first data when no mailbox was selected before.
func (c *stressClient) switchView() {
	if c.cmd.switched {
		return
	}
	if c.v != nil && c.rev2 {
		// RFC 9051 §7.1: CLOSED separates the old mailbox's responses
		// from the new one's.
		c.fail(stressProtocol, "SELECT while %s was selected sent no CLOSED", c.v.key.mailbox)
	}
	c.cmd.switched = true
	c.v = c.cmd.selecting
}

// selectedView is the view an EXISTS, EXPUNGE or FETCH describes, nil (with
// the error counted) when there is none.
func (c *stressClient) selectedView(what string, r *stressResp) *stressView {
	if c.cmd != nil && c.cmd.selecting != nil && !c.cmd.switched {
		if what == "EXISTS" && c.v == nil {
			c.switchView()
			return c.v
		}
		if what == "EXISTS" {
			c.switchView() // counted as no CLOSED
			return c.v
		}
	}
	if c.v == nil {
		c.fail(stressProtocol, "%s with no mailbox selected: %s", what, r)
		return nil
	}
	if !c.v.gotExists && what != "EXISTS" {
		c.fail(stressProtocol, "%s before the SELECT's EXISTS: %s", what, r)
		return nil
	}
	return c.v
}

func (c *stressClient) onExists(n uint32, r *stressResp) {
	v := c.selectedView("EXISTS", r)
	if v == nil {
		return
	}
	if !v.gotExists {
		v.gotExists = true
		v.msgs = c.newEntries(int(n))
		for i := range v.msgs {
			v.msgs[i].old = true
		}
		return
	}
	if int(n) < len(v.msgs) {
		// RFC 9051 §7.4.1: only EXPUNGE may lower the count.
		c.fail(stressState, "EXISTS %d lowers the count of %d without EXPUNGE", n, len(v.msgs))
		v.msgs = v.msgs[:n]
		return
	}
	if int(n) > len(v.msgs) {
		v.msgs = append(v.msgs, c.newEntries(int(n)-len(v.msgs))...)
		c.cmd.grew = true
		if !c.cmd.mayAdd(v.key) {
			c.st.event(evOthersExists)
		}
	}
}

func (c *stressClient) newEntries(n int) []stressMsg {
	out := make([]stressMsg, n)
	for i := range out {
		c.ids++
		out[i].id = c.ids
	}
	return out
}

// mayAdd tells whether the command itself adds messages to mailbox k.
func (cmd *stressCmd) mayAdd(k stressKey) bool {
	return (cmd.verb == "APPEND" || strings.HasSuffix(cmd.verb, "COPY")) && cmd.dest == k
}

func (c *stressClient) onExpunge(n uint32, r *stressResp) {
	v := c.selectedView("EXPUNGE", r)
	if v == nil {
		return
	}
	if c.cmd.noExpunge {
		c.fail(stressProtocol, "EXPUNGE %d while answering %s (RFC 9051 §7.5.1 forbids it)", n, c.cmd.verb)
	}
	if n == 0 || int(n) > len(v.msgs) {
		c.fail(stressState, "EXPUNGE %d with %d messages", n, len(v.msgs))
		return
	}
	m := v.msgs[n-1]
	v.msgs = slices.Delete(v.msgs, int(n-1), int(n))
	switch c.cmd.verb {
	case "EXPUNGE", "UID EXPUNGE", "MOVE", "UID MOVE":
	default:
		c.st.event(evOthersExpunge)
	}
	if m.uid == 0 {
		return
	}
	stressSub(c.gone, v.key)[m.uid] = true
	delete(stressSub(c.known, v.key), m.uid)
	delete(stressSub(c.missing, v.key), m.uid)
	c.cmd.expunged[m.uid] = true
}

func (c *stressClient) onRecent(n uint32, r *stressResp) {
	if c.rev2 {
		c.fail(stressProtocol, "RECENT sent to an IMAP4rev2 client: %s", r)
	}
	if c.v != nil && int(n) > len(c.v.msgs) {
		c.fail(stressState, "RECENT %d with %d messages", n, len(c.v.msgs))
	}
}

// stressFetch is one FETCH response's items.
type stressFetch struct {
	uid          uint32
	flags        []string
	hasFlags     bool
	size         int64
	body, header *stressString
	binary       *stressString
}

// solicited tells whether the response carries data read from the message
// itself, which only a FETCH (or STORE) of it returns.
func (f *stressFetch) solicited() bool {
	return f.size >= 0 || f.body != nil || f.header != nil || f.binary != nil
}

func (c *stressClient) parseFetch(items []any) (*stressFetch, error) {
	f := &stressFetch{size: -1}
	for i := 0; i < len(items); i += 2 {
		name, ok := items[i].(stressAtom)
		if !ok {
			return nil, fmt.Errorf("item name %v", items[i])
		}
		val := items[i+1]
		switch strings.ToUpper(string(name)) {
		case "UID":
			a, _ := val.(stressAtom)
			n, err := strconv.ParseUint(string(a), 10, 32)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("UID %v", val)
			}
			f.uid = uint32(n)
		case "RFC822.SIZE":
			a, _ := val.(stressAtom)
			n, err := strconv.ParseInt(string(a), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("RFC822.SIZE %v", val)
			}
			f.size = n
		case "FLAGS":
			list, ok := val.([]any)
			if !ok {
				return nil, fmt.Errorf("FLAGS %v", val)
			}
			f.hasFlags = true
			for _, x := range list {
				a, ok := x.(stressAtom)
				if !ok {
					return nil, fmt.Errorf("flag %v", x)
				}
				f.flags = append(f.flags, string(a))
			}
		case "BODY[]", "BODY[HEADER]", "BINARY[]":
			s, ok := val.(stressString)
			if !ok {
				return nil, fmt.Errorf("%s is %v, not a string", name, val)
			}
			switch strings.ToUpper(string(name)) {
			case "BODY[]":
				f.body = &s
			case "BINARY[]":
				f.binary = &s
			default:
				f.header = &s
			}
		}
	}
	return f, nil
}

func (c *stressClient) onFetch(n uint32, items []any, r *stressResp) {
	v := c.selectedView("FETCH", r)
	if v == nil {
		return
	}
	if n == 0 || int(n) > len(v.msgs) {
		c.fail(stressState, "FETCH of message %d with %d messages: %s", n, len(v.msgs), r)
		return
	}
	f, err := c.parseFetch(items)
	if err != nil {
		c.fail(stressProtocol, "malformed FETCH (%v): %s", err, r)
		return
	}
	idx := int(n - 1)
	if f.uid != 0 && !c.learnUID(idx, f.uid, r) {
		return
	}
	uid := v.msgs[idx].uid
	if c.cmd.byUID && f.solicited() && f.uid == 0 {
		c.fail(stressProtocol, "FETCH answering %s without UID (RFC 9051 §6.4.9): %s", c.cmd.verb, r)
	}
	if f.hasFlags {
		if c.refFlags != nil && uid != 0 {
			c.refFlags[uid] = f.flags
		}
		c.checkFlags(idx, uid, f.flags, r)
		if !f.solicited() && (c.cmd.verb == "NOOP" || c.cmd.verb == "IDLE") {
			c.st.event(evOthersFlags)
		}
	}
	if uid == 0 {
		return
	}
	c.cmd.responded[uid] = true
	if f.solicited() {
		if ex, ok := stressSub(c.missing, v.key)[uid]; ok {
			c.fail(stressState, "UID %d was left out of %s, yet it still exists: %s", uid, ex, r)
			delete(c.missing[v.key], uid)
		}
	}
	c.checkContent(uid, f, r)
}

// learnUID records that message idx has uid, checking it against what the
// client knows: a sequence number's UID never changes, UIDs ascend with
// sequence numbers, an expunged UID never comes back, and UIDNEXT separates
// the messages the SELECT counted from those announced later.
func (c *stressClient) learnUID(idx int, uid uint32, r *stressResp) bool {
	v := c.v
	m := &v.msgs[idx]
	if m.uid != 0 {
		if m.uid != uid {
			c.fail(stressState, "message %d was UID %d, now UID %d: %s", idx+1, m.uid, uid, r)
			return false
		}
		return true
	}
	if stressSub(c.gone, v.key)[uid] {
		c.fail(stressState, "UID %d was expunged, yet message %d has it: %s", uid, idx+1, r)
		return false
	}
	for j := idx - 1; j >= 0; j-- {
		if u := v.msgs[j].uid; u != 0 {
			if u >= uid {
				c.fail(stressState, "message %d is UID %d, message %d UID %d: UIDs must ascend: %s", j+1, u, idx+1, uid, r)
				return false
			}
			break
		}
	}
	for j := idx + 1; j < len(v.msgs); j++ {
		if u := v.msgs[j].uid; u != 0 {
			if u <= uid {
				c.fail(stressState, "message %d is UID %d, message %d UID %d: UIDs must ascend: %s", idx+1, uid, j+1, u, r)
				return false
			}
			break
		}
	}
	if v.uidNextSeen {
		if m.old && uid >= v.uidNext {
			c.fail(stressState, "message %d, counted by SELECT, has UID %d, not below its UIDNEXT %d", idx+1, uid, v.uidNext)
		}
		if !m.old && uid < v.uidNext {
			c.fail(stressState, "message %d, announced after SELECT, has UID %d, below its UIDNEXT %d", idx+1, uid, v.uidNext)
		}
	}
	m.uid = uid
	c.w.sawUID(v.key, uid)
	c.st.event(evUIDOrder)
	return true
}

// checkFlags checks a FLAGS item: well formed, \Deleted never lost (no
// client removes it), and the own keyword as the client itself last set it
// (no other client touches it).
func (c *stressClient) checkFlags(idx int, uid uint32, flags []string, r *stressResp) {
	m := &c.v.msgs[idx]
	seen := map[string]bool{}
	del, own := false, false
	for _, fl := range flags {
		lf := strings.ToLower(fl)
		if seen[lf] {
			c.fail(stressProtocol, "flag %s twice: %s", fl, r)
		}
		seen[lf] = true
		switch {
		case lf == `\deleted`:
			del = true
		case lf == `\recent` && c.rev2:
			c.fail(stressProtocol, `\Recent sent to an IMAP4rev2 client: %s`, r)
		case lf == strings.ToLower(c.kw):
			own = true
		}
	}
	if m.del && !del {
		c.fail(stressState, `message %d (UID %d) lost \Deleted, which no client removes: %s`, idx+1, uid, r)
	}
	m.del = m.del || del
	m.flags = map[string]bool{}
	for f := range seen {
		if f != `\recent` {
			m.flags[f] = true
		}
	}
	if c.cmd.answered == nil {
		c.cmd.answered = map[int]bool{}
	}
	c.cmd.answered[m.id] = true
	if _, ok := c.cmd.flightSeq[idx]; ok && !c.cmd.byUID {
		if uid != 0 {
			c.cmd.lastOwn[uid] = own
		}
		return
	}
	if uid == 0 {
		return
	}
	if _, ok := c.cmd.flight[uid]; ok {
		c.cmd.lastOwn[uid] = own
		return
	}
	known := stressSub(c.known, c.v.key)
	if k, ok := known[uid]; ok {
		c.st.event(evOwnKeyword)
		if k != own {
			c.fail(stressState, "UID %d shows %s %s, but this client, the only one to touch it, left it %s (%s): %s",
				uid, c.kw, stressOnOff(own), stressOnOff(k), c.why[c.v.key][uid], r)
		}
	}
	c.setKnown(c.v.key, uid, own, "seen in "+r.String())
}

// setKnown records the own keyword of a message and why the client believes it.
func (c *stressClient) setKnown(k stressKey, uid uint32, on bool, why string) {
	stressSub(c.known, k)[uid] = on
	stressSub(c.why, k)[uid] = fmt.Sprintf("%s %s", c.cmd.tag, stressTrim(why))
}

func stressOnOff(b bool) string {
	if b {
		return "set"
	}
	return "unset"
}

// checkContent compares body sections and sizes with what any session was
// told of the same UID.
func (c *stressClient) checkContent(uid uint32, f *stressFetch, r *stressResp) {
	var raw, body, header []byte
	// RFC 9051 §4.3: a literal is CHAR8, NUL excluded; only a literal8
	// (RFC 3516), which answers BINARY, may carry NUL.
	for name, s := range map[string]*stressString{"BODY[]": f.body, "BODY[HEADER]": f.header, "BINARY[]": f.binary} {
		if s != nil && !s.lit8 && bytes.IndexByte(s.data, 0) >= 0 {
			c.fail(stressProtocol, "%s of a message carries NUL outside a literal8: %s", name, r)
		}
	}
	if f.body != nil {
		body = f.body.data
	}
	if f.header != nil {
		header = f.header.data
	}
	if f.binary != nil {
		raw = f.binary.data
		c.st.event(evBinary)
	}
	if body == nil && header == nil && raw == nil && f.size < 0 {
		return
	}
	c.st.event(evContent)
	if msg := c.w.learn(stressMsgKey{c.v.key, uid}, raw, body, header, f.size); msg != "" {
		c.fail(stressState, "%s: %s", msg, r)
	}
}

// ---- completing commands ------------------------------------------------------

func (c *stressClient) finishOK(cmd *stressCmd) {
	switch {
	case cmd.selecting != nil:
		c.finishSelect(cmd)
	case cmd.logout:
		if !c.bye {
			c.fail(stressProtocol, "LOGOUT without BYE (RFC 9051 §6.1.3)")
		}
		c.close()
	case cmd.verb == "CLOSE" || cmd.verb == "UNSELECT":
		c.v = nil
	case strings.HasSuffix(cmd.verb, "STORE"):
		c.finishStore(cmd)
	case strings.HasSuffix(cmd.verb, "FETCH"):
		c.noteMissing(cmd)
	case strings.HasSuffix(cmd.verb, "EXPUNGE"):
		c.finishExpunge(cmd)
	case cmd.verb == "APPEND":
		c.finishAppend(cmd)
	case strings.HasSuffix(cmd.verb, "COPY"), strings.HasSuffix(cmd.verb, "MOVE"):
		c.finishCopy(cmd)
	}
}

func (c *stressClient) finishFailed(cmd *stressCmd) {
	switch {
	case cmd.selecting != nil:
		// RFC 9051 §6.3.2: a failed SELECT leaves no mailbox selected.
		c.v = nil
	case cmd.verb == "LOGIN" || cmd.verb == "ENABLE":
		c.close()
	case strings.HasSuffix(cmd.verb, "STORE") && c.v != nil:
		known := stressSub(c.known, c.v.key)
		for uid := range cmd.flight {
			delete(known, uid)
		}
		for idx := range cmd.flightSeq {
			if idx < len(c.v.msgs) {
				delete(known, c.v.msgs[idx].uid)
			}
		}
	}
}

func (c *stressClient) finishSelect(cmd *stressCmd) {
	if !cmd.switched || !c.v.gotExists {
		c.fail(stressProtocol, "SELECT completed without EXISTS")
		c.v = nil
		return
	}
	if c.v.validity == 0 || !c.v.uidNextSeen {
		c.fail(stressProtocol, "SELECT completed without UIDVALIDITY and UIDNEXT (RFC 9051 §6.3.2)")
	}
	want := "READ-WRITE"
	if c.v.readOnly {
		want = "READ-ONLY"
	}
	if cmd.code != want {
		c.fail(stressProtocol, "tagged OK of %s has code [%s], want [%s]", cmd.verb, cmd.code, want)
	}
}

// finishStore records the own keyword as the STORE left it. Without .SILENT
// the last FETCH of each message in the command must show it so: no other
// client changes it, and any response after the change reports the state
// after it.
func (c *stressClient) finishStore(cmd *stressCmd) {
	set := func(uid uint32, target bool) {
		if uid == 0 || cmd.expunged[uid] {
			return
		}
		if got, ok := cmd.lastOwn[uid]; ok && !cmd.silent {
			c.st.event(evOwnKeyword)
			if got != target {
				c.fail(stressState, "STORE left UID %d with %s %s, its FETCH said %s", uid, c.kw, stressOnOff(target), stressOnOff(got))
			}
		}
		c.setKnown(c.v.key, uid, target, cmd.line)
	}
	for uid, target := range cmd.flight {
		set(uid, target)
	}
	unplaced := false
	for idx, target := range cmd.flightSeq {
		set(c.v.msgs[idx].uid, target)
		unplaced = unplaced || c.v.msgs[idx].uid == 0
	}
	if unplaced {
		c.forgetUnplaced()
	}
	add, flags := stressParseStore(cmd.line)
	for i := range c.v.msgs {
		m := &c.v.msgs[i]
		if cmd.byUID && (m.uid == 0 || !cmd.named[m.uid]) || !cmd.byUID && (i < cmd.seqs[0] || i >= cmd.seqs[1]) {
			continue
		}
		m.del = m.del || cmd.addDel
		switch {
		case cmd.silent && m.flags != nil:
			for _, f := range flags {
				if add {
					m.flags[f] = true
				} else {
					delete(m.flags, f)
				}
			}
		case !cmd.silent && !cmd.answered[m.id]:
			m.flags = nil // not answered for: expunged meanwhile, as noteMissing checks
		}
	}
	if !cmd.silent {
		c.noteMissing(cmd)
	}
}

// stressParseStore reads the operation of a STORE command line: whether it
// adds, and the flags (lower case).
func stressParseStore(line string) (add bool, flags []string) {
	op, list, _ := strings.Cut(line, "FLAGS")
	add = strings.HasSuffix(op, "+")
	list = list[strings.IndexByte(list, '(')+1 : strings.IndexByte(list, ')')]
	for _, f := range strings.Fields(list) {
		flags = append(flags, strings.ToLower(f))
	}
	return add, flags
}

// forgetUnplaced drops what the client believed of the own keyword on every
// UID it cannot place in its view: a STORE by sequence number changed
// messages whose UIDs it had not learnt, and those could be any of them.
func (c *stressClient) forgetUnplaced() {
	placed := map[uint32]bool{}
	for _, m := range c.v.msgs {
		placed[m.uid] = true
	}
	for uid := range c.known[c.v.key] {
		if !placed[uid] {
			delete(c.known[c.v.key], uid)
		}
	}
}

// noteMissing remembers the named messages a FETCH or STORE answered
// nothing for: another session must have expunged them, so no later FETCH
// may find them.
func (c *stressClient) noteMissing(cmd *stressCmd) {
	if c.v == nil {
		return
	}
	missing := stressSub(c.missing, c.v.key)
	for uid := range cmd.named {
		if !cmd.responded[uid] && !cmd.expunged[uid] {
			missing[uid] = cmd.tag + " " + stressTrim(cmd.line)
		}
	}
}

// finishExpunge checks that every message the client knows to be \Deleted
// (and named, for UID EXPUNGE) is gone: RFC 9051 §6.4.3 and RFC 4315 §2.1
// report each removal before the OK, and no client removes \Deleted.
func (c *stressClient) finishExpunge(cmd *stressCmd) {
	c.st.event(evExpungeDone)
	for i, m := range c.v.msgs {
		if !cmd.doomed[m.id] {
			continue
		}
		c.fail(stressState, `%s completed but message %d (UID %d), \Deleted, is still there`, cmd.verb, i+1, m.uid)
	}
}

func (c *stressClient) finishAppend(cmd *stressCmd) {
	f := strings.Fields(cmd.code)
	if len(f) != 3 || !strings.EqualFold(f[0], "APPENDUID") {
		c.fail(stressProtocol, "APPEND OK without APPENDUID (RFC 4315): [%s]", cmd.code)
		return
	}
	validity, err1 := strconv.ParseUint(f[1], 10, 32)
	uid, err2 := strconv.ParseUint(f[2], 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		c.fail(stressProtocol, "malformed APPENDUID [%s]", cmd.code)
		return
	}
	c.st.event(evAppendUID)
	if msg := c.w.checkValidity(cmd.dest, uint32(validity)); msg != "" {
		c.fail(stressState, "APPENDUID: %s", msg)
	}
	if uint32(uid) <= cmd.destMax {
		c.fail(stressState, "APPENDUID %d, yet UID %d existed before the APPEND", uid, cmd.destMax)
	}
	key := stressMsgKey{cmd.dest, uint32(uid)}
	c.w.sawUID(cmd.dest, uint32(uid))
	if msg := c.w.learn(key, cmd.appended, nil, nil, int64(len(cmd.appended))); msg != "" {
		c.fail(stressState, "APPENDUID %d: %s", uid, msg)
	}
	c.setKnown(cmd.dest, uint32(uid), cmd.ownFlag, cmd.line+" "+cmd.code)
	if c.v != nil && c.v.key == cmd.dest && !cmd.grew {
		// RFC 9051 §6.3.12: the server SHOULD send EXISTS at once.
		c.fail(stressProtocol, "APPEND to the selected mailbox sent no EXISTS")
	}
}

// finishCopy checks COPYUID (RFC 4315 §3): source UIDs among those named, as
// many destination UIDs, each new; the copies are the same messages with the
// same own keyword. After MOVE every moved message must be expunged from the
// view (RFC 6851 §3.3).
func (c *stressClient) finishCopy(cmd *stressCmd) {
	if cmd.copyUID == "" && strings.HasPrefix(strings.ToUpper(cmd.code), "COPYUID ") {
		cmd.copyUID = cmd.code // COPY's is in the tagged OK, MOVE's untagged
	}
	if cmd.copyUID == "" {
		return // nothing named existed any more
	}
	f := strings.Fields(cmd.copyUID)
	if len(f) != 4 || !strings.EqualFold(f[0], "COPYUID") {
		c.fail(stressProtocol, "malformed COPYUID [%s]", cmd.copyUID)
		return
	}
	validity, err := strconv.ParseUint(f[1], 10, 32)
	src, err1 := stressParseUIDs(f[2])
	dst, err2 := stressParseUIDs(f[3])
	if err != nil || err1 != nil || err2 != nil || len(src) != len(dst) || len(src) == 0 {
		c.fail(stressProtocol, "malformed COPYUID [%s]", cmd.copyUID)
		return
	}
	if strings.HasSuffix(cmd.verb, "MOVE") {
		c.st.event(evMoveDone)
	} else {
		c.st.event(evCopyUID)
	}
	if msg := c.w.checkValidity(cmd.dest, uint32(validity)); msg != "" {
		c.fail(stressState, "COPYUID: %s", msg)
	}
	known := stressSub(c.known, c.v.key)
	for i := range src {
		if cmd.named != nil && !cmd.named[src[i]] {
			c.fail(stressState, "COPYUID names source UID %d, which the command did not name", src[i])
		}
		if dst[i] <= cmd.destMax {
			c.fail(stressState, "COPYUID gives UID %d, yet UID %d existed before", dst[i], cmd.destMax)
		}
		if i > 0 && dst[i] <= dst[i-1] {
			c.fail(stressState, "COPYUID destination UIDs do not ascend: [%s]", cmd.copyUID)
		}
		c.w.sawUID(cmd.dest, dst[i])
		if msg := c.w.copied(stressMsgKey{c.v.key, src[i]}, stressMsgKey{cmd.dest, dst[i]}); msg != "" {
			c.fail(stressState, "copy %d→%d: %s", src[i], dst[i], msg)
		}
		if k, ok := known[src[i]]; ok {
			c.setKnown(cmd.dest, dst[i], k, fmt.Sprintf("%s [%s] from %s", cmd.line, cmd.copyUID, c.why[c.v.key][src[i]]))
		}
	}
	if !strings.HasSuffix(cmd.verb, "MOVE") {
		return
	}
	for i, m := range c.v.msgs {
		if m.uid != 0 && slices.Contains(src, m.uid) {
			c.fail(stressState, "%s completed but moved UID %d is still message %d", cmd.verb, m.uid, i+1)
		}
	}
}

func stressParseUIDs(s string) ([]uint32, error) {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, err
			}
		}
		if a > b {
			a, b = b, a
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}

// ---- the workload -------------------------------------------------------------

// step runs one random command (two for delete-then-expunge).
func (c *stressClient) step() {
	if c.v == nil {
		if c.rng.Intn(10) == 0 {
			c.appendMsg()
			return
		}
		c.selectMailbox()
		return
	}
	n := len(c.v.msgs)
	// Mailboxes drift towards 20-40 messages: more deletions when larger.
	delWeight := 6 + max(0, n-25)
	appendWeight := 10
	if n > 50 {
		appendWeight = 2
	}
	ro := c.v.readOnly
	choices := []struct {
		w  int
		fn func()
	}{
		{6, c.selectMailbox},
		{24, c.fetch},
		{stressIf(!ro, 18), c.store},
		{stressIf(!ro, delWeight), c.deleteAndExpunge},
		{appendWeight, c.appendMsg},
		{6, c.copyMessages},
		{stressIf(!ro, 5), c.moveMessages},
		{6, c.noop},
		{4, c.idle},
		{2, c.closeMailbox},
		{1, c.logout},
	}
	total := 0
	for _, ch := range choices {
		total += ch.w
	}
	k := c.rng.Intn(total)
	for _, ch := range choices {
		if k < ch.w {
			ch.fn()
			return
		}
		k -= ch.w
	}
}

func stressIf(ok bool, w int) int {
	if ok {
		return w
	}
	return 0
}

func (c *stressClient) randomMailbox() stressKey {
	return stressKey{c.user, stressMailboxes[c.rng.Intn(len(stressMailboxes))]}
}

func (c *stressClient) selectMailbox() { c.open(c.randomMailbox(), c.rng.Intn(4) == 0) }

// open SELECTs or EXAMINEs mailbox k.
func (c *stressClient) open(k stressKey, readOnly bool) bool {
	verb := "SELECT"
	if readOnly {
		verb = "EXAMINE"
	}
	nv := &stressView{key: k, readOnly: readOnly, maxBefore: c.w.highest(k)}
	cmd := &stressCmd{verb: verb, line: fmt.Sprintf("%s %s", verb, k.mailbox), selecting: nv}
	if c.v == nil {
		cmd.switched = true
		c.v = nv
	}
	return c.exec(cmd) && c.v != nil
}

// seqRange picks a range of sequence numbers, sometimes ending in "*".
func (c *stressClient) seqRange() (set string, from, to int) {
	n := len(c.v.msgs)
	from = 1 + c.rng.Intn(n)
	to = min(n, from+c.rng.Intn(6))
	switch c.rng.Intn(5) {
	case 0:
		return fmt.Sprintf("%d:*", from), from, n
	case 1:
		return strconv.Itoa(from), from, from
	}
	return fmt.Sprintf("%d:%d", from, to), from, to
}

// knownUIDs picks some UIDs the client knows, and sometimes one it was told
// is expunged (which must then not be answered for).
func (c *stressClient) knownUIDs(most int) []uint32 {
	var all []uint32
	for _, m := range c.v.msgs {
		if m.uid != 0 {
			all = append(all, m.uid)
		}
	}
	c.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	all = all[:min(len(all), 1+c.rng.Intn(most))]
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return all
}

func stressUIDSet(uids []uint32) string {
	parts := make([]string, len(uids))
	for i, u := range uids {
		parts[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(parts, ",")
}

// namedBySeq lists the known UIDs of messages from..to.
func (c *stressClient) namedBySeq(from, to int) map[uint32]bool {
	named := map[uint32]bool{}
	for i := from; i <= to; i++ {
		if u := c.v.msgs[i-1].uid; u != 0 {
			named[u] = true
		}
	}
	return named
}

func stressNamed(uids []uint32) map[uint32]bool {
	named := map[uint32]bool{}
	for _, u := range uids {
		named[u] = true
	}
	return named
}

var stressFetchItems = []string{
	"(UID FLAGS)",
	"(FLAGS RFC822.SIZE BODY.PEEK[HEADER])",
	"(UID FLAGS RFC822.SIZE BODY.PEEK[])",
	"(BODY.PEEK[] UID)",
	"(UID RFC822.SIZE)",
	"(UID BINARY.PEEK[])",
}

func (c *stressClient) fetch() {
	if len(c.v.msgs) == 0 {
		c.noop()
		return
	}
	items := stressFetchItems[c.rng.Intn(len(stressFetchItems))]
	switch c.rng.Intn(4) {
	case 0:
		c.exec(&stressCmd{verb: "FETCH", line: "FETCH 1:* (UID FLAGS)", noExpunge: true, named: c.namedBySeq(1, len(c.v.msgs))})
	case 1:
		set, from, to := c.seqRange()
		c.exec(&stressCmd{verb: "FETCH", line: "FETCH " + set + " " + items, noExpunge: true, named: c.namedBySeq(from, to)})
	default:
		uids := c.knownUIDs(5)
		if len(uids) == 0 {
			c.exec(&stressCmd{verb: "FETCH", line: "FETCH 1:* (UID)", noExpunge: true})
			return
		}
		named := stressNamed(uids)
		set := stressUIDSet(uids)
		if gone := c.someGone(); gone != 0 {
			set += "," + strconv.FormatUint(uint64(gone), 10)
		}
		if c.rng.Intn(4) == 0 {
			set += fmt.Sprintf(",%d:*", uids[len(uids)-1])
		}
		c.exec(&stressCmd{verb: "UID FETCH", line: "UID FETCH " + set + " " + items, byUID: true, named: named})
	}
}

// someGone is a UID the client was told is expunged from the selected
// mailbox, or 0.
func (c *stressClient) someGone() uint32 {
	for u := range c.gone[c.v.key] {
		return u
	}
	return 0
}

// storeFlags picks flags for a STORE: the own keyword often, shared system
// flags and keywords that anyone may change; never \Deleted (see
// deleteAndExpunge).
func (c *stressClient) storeFlags() (flags []string, own bool) {
	own = c.rng.Intn(3) != 0
	if own {
		flags = append(flags, c.kw)
	}
	for _, f := range []string{`\Seen`, `\Flagged`, `\Answered`, `\Draft`, "Shared", "$Label1"} {
		if c.rng.Intn(4) == 0 {
			flags = append(flags, f)
		}
	}
	if len(flags) == 0 {
		flags = append(flags, `\Flagged`)
	}
	return flags, own
}

func (c *stressClient) store() {
	if len(c.v.msgs) == 0 {
		c.noop()
		return
	}
	flags, own := c.storeFlags()
	add := c.rng.Intn(2) == 0
	op := "-FLAGS"
	if add {
		op = "+FLAGS"
	}
	silent := c.rng.Intn(3) == 0
	if silent {
		op += ".SILENT"
	}
	list := "(" + strings.Join(flags, " ") + ")"
	if c.rng.Intn(2) == 0 {
		set, from, to := c.seqRange()
		cmd := &stressCmd{verb: "STORE", line: fmt.Sprintf("STORE %s %s %s", set, op, list), noExpunge: true, silent: silent,
			named: c.namedBySeq(from, to), flightSeq: map[int]bool{}, seqs: [2]int{from - 1, to}}
		if own {
			for i := from - 1; i < to; i++ {
				cmd.flightSeq[i] = add
			}
		}
		c.exec(cmd)
		return
	}
	uids := c.knownUIDs(4)
	if len(uids) == 0 {
		return
	}
	cmd := &stressCmd{verb: "UID STORE", line: fmt.Sprintf("UID STORE %s %s %s", stressUIDSet(uids), op, list), byUID: true,
		silent: silent, named: stressNamed(uids), flight: map[uint32]bool{}}
	if own {
		for _, u := range uids {
			cmd.flight[u] = add
		}
	}
	c.exec(cmd)
}

// deleteAndExpunge flags some messages \Deleted, then (mostly) expunges,
// all of them or by UID.
func (c *stressClient) deleteAndExpunge() {
	if len(c.v.msgs) == 0 {
		c.noop()
		return
	}
	if c.rng.Intn(2) == 0 {
		set, from, to := c.seqRange()
		if !c.exec(&stressCmd{verb: "STORE", line: "STORE " + set + ` +FLAGS.SILENT (\Deleted)`, noExpunge: true, silent: true,
			addDel: true, named: c.namedBySeq(from, to), seqs: [2]int{from - 1, to}}) {
			return
		}
		if c.v != nil && c.rng.Intn(4) != 0 {
			c.exec(&stressCmd{verb: "EXPUNGE", line: "EXPUNGE", doomed: c.doomed(nil)})
		}
		return
	}
	uids := c.knownUIDs(3)
	if len(uids) == 0 {
		return
	}
	set := stressUIDSet(uids)
	if !c.exec(&stressCmd{verb: "UID STORE", line: "UID STORE " + set + ` +FLAGS (\Deleted)`, byUID: true, addDel: true, named: stressNamed(uids)}) {
		return
	}
	if c.v != nil {
		c.exec(&stressCmd{verb: "UID EXPUNGE", line: "UID EXPUNGE " + set, byUID: true, doomed: c.doomed(uids)})
	}
}

// doomed lists the entries known \Deleted now (among uids, unless nil):
// those an EXPUNGE sent now must remove. Any other may have become \Deleted
// only after the server removed what it did.
func (c *stressClient) doomed(uids []uint32) map[int]bool {
	out := map[int]bool{}
	for _, m := range c.v.msgs {
		if m.del && (uids == nil || slices.Contains(uids, m.uid)) {
			out[m.id] = true
		}
	}
	return out
}

func (c *stressClient) otherMailbox() stressKey {
	for {
		k := c.randomMailbox()
		if k != c.v.key {
			return k
		}
	}
}

func (c *stressClient) copyMessages() { c.transfer("COPY", c.randomMailbox()) }

func (c *stressClient) moveMessages() { c.transfer("MOVE", c.otherMailbox()) }

func (c *stressClient) transfer(verb string, dest stressKey) {
	if len(c.v.msgs) == 0 {
		c.noop()
		return
	}
	cmd := &stressCmd{verb: verb, dest: dest, destMax: c.w.highest(dest)}
	if c.rng.Intn(2) == 0 {
		set, from, to := c.seqRange()
		cmd.line = fmt.Sprintf("%s %s %s", verb, set, dest.mailbox)
		cmd.named = c.namedBySeq(from, to)
		for i := from; i <= to; i++ {
			if c.v.msgs[i-1].uid == 0 {
				cmd.named = nil // some UIDs unknown: the COPYUID source set cannot be checked
				break
			}
		}
	} else {
		uids := c.knownUIDs(3)
		if len(uids) == 0 {
			return
		}
		cmd.verb, cmd.byUID = "UID "+verb, true
		cmd.line = fmt.Sprintf("UID %s %s %s", verb, stressUIDSet(uids), dest.mailbox)
		cmd.named = stressNamed(uids)
	}
	c.exec(cmd)
}

func (c *stressClient) appendMsg() {
	dest := c.randomMailbox()
	if c.v != nil && c.rng.Intn(2) == 0 {
		dest = c.v.key
	}
	msg, nul := c.newMessage()
	var flags []string
	own := c.rng.Intn(2) == 0
	if own {
		flags = append(flags, c.kw)
	}
	if c.rng.Intn(3) == 0 {
		flags = append(flags, `\Seen`)
	}
	if c.rng.Intn(8) == 0 {
		flags = append(flags, `\Flagged`, "Shared")
	}
	line := "APPEND " + dest.mailbox
	if len(flags) > 0 || c.rng.Intn(2) == 0 {
		line += " (" + strings.Join(flags, " ") + ")"
	}
	if c.rng.Intn(3) == 0 {
		line += ` "02-Jan-2006 15:04:05 +0000"`
	}
	sync := c.rng.Intn(2) == 0
	lit := fmt.Sprintf("{%d", len(msg))
	if nul {
		lit = "~" + lit // RFC 3516 §4.4: only a literal8 may carry NUL
		c.st.event(evLiteral8Append)
	}
	if !sync {
		lit += "+"
	}
	line += " " + lit + "}"
	c.exec(&stressCmd{verb: "APPEND", line: line, lit: msg, sync: sync, dest: dest, destMax: c.w.highest(dest), appended: msg, ownFlag: own})
}

// newMessage makes a message unique to this client: plain ASCII, with 8-bit
// octets (raw UTF-8 and Latin-1), or, with -stress.nul, with NUL octets.
func (c *stressClient) newMessage() (msg []byte, nul bool) {
	c.nmsgs++
	kind := c.rng.Intn(3)
	nul = *stressNUL && kind == 2
	eight := kind == 1 || (kind == 2 && !nul)
	var b bytes.Buffer
	subject := fmt.Sprintf("stress %d-%d", c.id, c.nmsgs)
	if eight {
		subject += " caf\xc3\xa9 \xe2\x82\xac"
		c.st.event(ev8bitAppend)
	}
	nulText := nul && c.rng.Intn(2) == 0 // NUL in a text part, where the store indexes words
	if nulText && c.rng.Intn(2) == 0 {
		subject += " nul\x00here" // in a header the store keeps in a column too
	}
	fmt.Fprintf(&b, "From: Client %d <c%d@example.com>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%d.%d@stress.example>\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMIME-Version: 1.0\r\n", c.id, c.id, stressUsers[c.user], subject, c.id, c.nmsgs)
	switch {
	case nulText:
		if c.rng.Intn(2) == 0 {
			b.WriteString("X-Junk: a\x00b\r\n")
		}
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
	case nul:
		b.WriteString("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n")
	case eight:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
	}
	b.WriteString("\r\n")
	lines := 1 + c.rng.Intn(40)
	if c.rng.Intn(40) == 0 {
		lines = 3000 // larger than a stored chunk
	}
	for i := 0; i < lines; i++ {
		n := 10 + c.rng.Intn(60)
		for j := 0; j < n; j++ {
			b.WriteByte(byte('a' + c.rng.Intn(26)))
		}
		switch {
		case nul && i%3 == 0:
			b.WriteString("\x00\x01\x00")
		case eight && i%2 == 0:
			b.WriteString(" \xe9t\xe9 \xc3\xbc\xff")
		}
		b.WriteString("\r\n")
	}
	return b.Bytes(), nul
}

func (c *stressClient) noop() { c.exec(&stressCmd{verb: "NOOP", line: "NOOP"}) }

func (c *stressClient) idle() {
	d := time.Duration(20+c.rng.Intn(130)) * time.Millisecond
	c.exec(&stressCmd{verb: "IDLE", line: "IDLE", idle: d})
}

func (c *stressClient) closeMailbox() {
	if c.rng.Intn(2) == 0 {
		c.exec(&stressCmd{verb: "UNSELECT", line: "UNSELECT"})
		return
	}
	c.exec(&stressCmd{verb: "CLOSE", line: "CLOSE"})
}

func (c *stressClient) logout() {
	c.exec(&stressCmd{verb: "LOGOUT", line: "LOGOUT", logout: true})
	c.close()
}

// ---- the end: every view agrees ---------------------------------------------

// stressDBUIDs reads the UIDs of a user's mailbox from the store itself.
type stressDBUIDs func(k stressKey) ([]uint32, error)

func stressStoreUIDs(e *env) stressDBUIDs {
	return func(k stressKey) ([]uint32, error) {
		ctx := context.Background()
		u, err := e.store.GetUser(ctx, stressUsers[k.user])
		if err != nil {
			return nil, err
		}
		mb, err := e.mbox.Get(ctx, u.ID, k.mailbox)
		if err != nil {
			return nil, err
		}
		set, _, err := e.mbox.UIDRanges(ctx, mb.ID)
		if err != nil {
			return nil, err
		}
		var out []uint32
		for _, r := range set {
			for uid := r.Start; uid <= r.Stop; uid++ {
				out = append(out, uid)
			}
		}
		return out, nil
	}
}

// stressRef is a mailbox as a fresh session sees it.
type stressRef struct {
	uids  []uint32
	flags map[uint32][]string
}

// stressConverge runs once the clients have stopped. Each client (connected
// again and selecting a mailbox if need be) hears of the last changes
// (NOOP), after which the flags it was told must be every message's flags;
// then it learns every UID, and its view and own keywords must be those a
// fresh session sees, which must be the store's.
func stressConverge(clients []*stressClient, addr string, w *stressWorld, st *stressStats, db stressDBUIDs) {
	for _, c := range clients {
		if c.conn == nil && !c.connect() {
			continue
		}
		if c.v == nil && !c.open(c.randomMailbox(), false) {
			continue
		}
		c.noop()
	}
	refs := map[stressKey]*stressRef{}
	for u := range stressUsers {
		for _, name := range stressMailboxes {
			k := stressKey{u, name}
			ref := newStressClient(100+u, u, addr, w, st)
			ref.kw = "Reference" // set by nobody
			if !ref.connect() {
				continue
			}
			if uids, ok := stressReference(ref, k); ok {
				refs[k] = &stressRef{uids: uids, flags: ref.refFlags}
				stressCheckStore(k, uids, db, st)
			}
			ref.logout()
		}
	}
	for _, c := range clients {
		if c.v == nil || refs[c.v.key] == nil {
			continue
		}
		c.checkCache(refs[c.v.key])
		if len(c.v.msgs) > 0 {
			c.exec(&stressCmd{verb: "FETCH", line: "FETCH 1:* (UID FLAGS)", noExpunge: true, named: c.namedBySeq(1, len(c.v.msgs))})
		}
	}
	for k, ref := range refs {
		stressCompare(ref.uids, ref.flags, clients, k, st)
	}
}

// checkCache compares the flags the client was told (and set itself with
// .SILENT) with the messages' flags.
func (c *stressClient) checkCache(ref *stressRef) {
	for i, m := range c.v.msgs {
		f, ok := ref.flags[m.uid]
		if m.uid == 0 || m.flags == nil || !ok {
			continue
		}
		c.st.event(evCache)
		want := map[string]bool{}
		for _, fl := range f {
			if lf := strings.ToLower(fl); lf != `\recent` {
				want[lf] = true
			}
		}
		if !maps.Equal(want, m.flags) {
			c.fail(stressState, "after NOOP, message %d (UID %d) has flags %v, but this client was told %v: a change went unreported",
				i+1, m.uid, stressFlagList(want), stressFlagList(m.flags))
		}
	}
}

func stressFlagList(set map[string]bool) []string {
	out := slices.Collect(maps.Keys(set))
	sort.Strings(out)
	return out
}

// stressCheckStore compares a fresh session's UIDs of k with the store's.
func stressCheckStore(k stressKey, uids []uint32, db stressDBUIDs, st *stressStats) {
	stored, err := db(k)
	if err != nil {
		st.fail(stressInternal, "read the store: %v", fmt.Sprintf("read the store: %v", err))
	} else if !slices.Equal(stored, uids) {
		const format = "a fresh session's view of %v has UIDs %v, the store %v"
		st.fail(stressState, format, fmt.Sprintf(format, k, uids, stored))
	}
}

// stressReference lists mailbox k in a fresh read-only session: its UIDs, and
// the flags of each in ref.refFlags.
func stressReference(ref *stressClient, k stressKey) ([]uint32, bool) {
	if !ref.open(k, true) {
		return nil, false
	}
	ref.refFlags = map[uint32][]string{}
	if len(ref.v.msgs) > 0 && !ref.exec(&stressCmd{verb: "FETCH", line: "FETCH 1:* (UID FLAGS)", noExpunge: true}) {
		return nil, false
	}
	uids := []uint32{}
	for _, m := range ref.v.msgs {
		uids = append(uids, m.uid)
	}
	return uids, true
}

// stressCompare compares each client's view of k and own keyword on every
// message with what a fresh session sees.
func stressCompare(uids []uint32, flags map[uint32][]string, clients []*stressClient, k stressKey, st *stressStats) {
	for _, c := range clients {
		if c.user != k.user {
			continue
		}
		if c.v != nil && c.v.key == k {
			st.event(evConverged)
			mine := []uint32{}
			for _, m := range c.v.msgs {
				mine = append(mine, m.uid)
			}
			if !slices.Equal(mine, uids) {
				const format = "client %d's view of %s did not converge: UIDs %v, a fresh session sees %v"
				st.fail(stressState, format, fmt.Sprintf(format, c.id, k.mailbox, mine, uids))
			}
		}
		for uid, own := range c.known[k] {
			f, ok := flags[uid]
			if !ok {
				continue // expunged since; the client need not have been told
			}
			st.event(evOwnKeyword)
			if has := slices.ContainsFunc(f, func(s string) bool { return strings.EqualFold(s, c.kw) }); has != own {
				const format = "client %d left %s %s on %s UID %d, a fresh session sees it %s"
				st.fail(stressState, format, fmt.Sprintf(format, c.id, c.kw, stressOnOff(own), k.mailbox, uid, stressOnOff(has)))
			}
		}
	}
}

// ---- the checks themselves --------------------------------------------------

// stressCase is one scripted violation: the selected view (UIDs by sequence
// number, 0 for unknown), what the client believes beyond it, its commands,
// and for each the lines the peer answers ("TAG" is the command's tag; nil
// closes the connection).
type stressCase struct {
	name   string
	uids   []uint32
	prep   func(c *stressClient)
	cmds   []func(c *stressClient) *stressCmd
	script [][]string
	kind   string
	want   string // part of the error's class
}

func stressNoop(*stressClient) *stressCmd { return &stressCmd{verb: "NOOP", line: "NOOP"} }

func stressFetchAll(*stressClient) *stressCmd {
	return &stressCmd{verb: "FETCH", line: "FETCH 1:* (UID FLAGS)", noExpunge: true}
}

func stressUIDCmd(verb, line string, uid uint32) func(*stressClient) *stressCmd {
	return func(*stressClient) *stressCmd {
		return &stressCmd{verb: verb, line: line, byUID: true, named: map[uint32]bool{uid: true}}
	}
}

var stressWork = stressKey{0, "Work"}

var stressCases = []stressCase{
	{name: "EXISTS shrinks", uids: []uint32{1, 2, 3}, cmds: []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"* 2 EXISTS", "TAG OK done"}}, kind: stressState, want: "lowers the count"},
	{name: "EXPUNGE beyond the count", uids: []uint32{1, 2, 3}, cmds: []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"* 4 EXPUNGE", "TAG OK done"}}, kind: stressState, want: "EXPUNGE %d with %d messages"},
	{name: "FETCH beyond the count", uids: []uint32{1, 2, 3}, cmds: []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"* 4 FETCH (FLAGS ())", "TAG OK done"}}, kind: stressState, want: "FETCH of message"},
	{name: "UID of a sequence number changes", uids: []uint32{1, 2, 3}, cmds: []func(*stressClient) *stressCmd{stressFetchAll},
		script: [][]string{{"* 2 FETCH (UID 7 FLAGS ())", "TAG OK done"}}, kind: stressState, want: "was UID"},
	{name: "UIDs out of order", uids: []uint32{1, 0, 3}, cmds: []func(*stressClient) *stressCmd{stressFetchAll},
		script: [][]string{{"* 2 FETCH (UID 5)", "TAG OK done"}}, kind: stressState, want: "must ascend"},
	{name: "expunged UID comes back", uids: []uint32{1, 0, 3},
		prep:   func(c *stressClient) { stressSub(c.gone, c.v.key)[2] = true },
		cmds:   []func(*stressClient) *stressCmd{stressFetchAll},
		script: [][]string{{"* 2 FETCH (UID 2)", "TAG OK done"}}, kind: stressState, want: "was expunged"},
	{name: "UID below UIDNEXT announced after SELECT", uids: []uint32{1, 2, 0},
		prep: func(c *stressClient) {
			c.v.uidNext, c.v.uidNextSeen, c.v.msgs[0].old, c.v.msgs[1].old = 10, true, true, true
		},
		cmds:   []func(*stressClient) *stressCmd{stressFetchAll},
		script: [][]string{{"* 3 FETCH (UID 9)", "TAG OK done"}}, kind: stressState, want: "below its UIDNEXT"},
	{name: "EXPUNGE while answering FETCH", uids: []uint32{1, 2}, cmds: []func(*stressClient) *stressCmd{stressFetchAll},
		script: [][]string{{"* 1 EXPUNGE", "TAG OK done"}}, kind: stressProtocol, want: "§7.5.1"},
	{name: "own keyword changed by nobody", uids: []uint32{1, 2},
		prep:   func(c *stressClient) { c.setKnown(c.v.key, 2, false, "test") },
		cmds:   []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"* 2 FETCH (UID 2 FLAGS (Own0))", "TAG OK done"}}, kind: stressState, want: "the only one to touch it"},
	{name: "STORE answer contradicts the STORE", uids: []uint32{1, 2},
		cmds: []func(*stressClient) *stressCmd{func(*stressClient) *stressCmd {
			return &stressCmd{verb: "UID STORE", line: "UID STORE 2 +FLAGS (Own0)", byUID: true,
				named: map[uint32]bool{2: true}, flight: map[uint32]bool{2: true}}
		}},
		script: [][]string{{"* 2 FETCH (UID 2 FLAGS ())", "TAG OK done"}}, kind: stressState, want: "STORE left UID"},
	{name: `\Deleted lost`, uids: []uint32{1, 2},
		prep:   func(c *stressClient) { c.v.msgs[1].del = true },
		cmds:   []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"* 2 FETCH (FLAGS ())", "TAG OK done"}}, kind: stressState, want: `lost \Deleted`},
	{name: `EXPUNGE leaves a \Deleted message`, uids: []uint32{1, 2},
		prep: func(c *stressClient) { c.v.msgs[1].del = true },
		cmds: []func(*stressClient) *stressCmd{func(c *stressClient) *stressCmd {
			return &stressCmd{verb: "EXPUNGE", line: "EXPUNGE", doomed: c.doomed(nil)}
		}},
		script: [][]string{{"TAG OK done"}}, kind: stressState, want: "is still there"},
	{name: "MOVE leaves a moved message", uids: []uint32{1, 2},
		cmds: []func(*stressClient) *stressCmd{func(*stressClient) *stressCmd {
			return &stressCmd{verb: "UID MOVE", line: "UID MOVE 2 Work", byUID: true, dest: stressWork, named: map[uint32]bool{2: true}}
		}},
		script: [][]string{{"* OK [COPYUID 9 2 100] moved", "TAG OK done"}}, kind: stressState, want: "moved UID"},
	{name: "COPYUID gives an old UID", uids: []uint32{1, 2},
		cmds: []func(*stressClient) *stressCmd{func(*stressClient) *stressCmd {
			return &stressCmd{verb: "UID COPY", line: "UID COPY 2 Work", byUID: true, dest: stressWork, destMax: 50, named: map[uint32]bool{2: true}}
		}},
		script: [][]string{{"TAG OK [COPYUID 9 2 40] done"}}, kind: stressState, want: "existed before"},
	{name: "APPEND to the selected mailbox without EXISTS", uids: []uint32{1},
		cmds: []func(*stressClient) *stressCmd{func(c *stressClient) *stressCmd {
			return &stressCmd{verb: "APPEND", line: "APPEND INBOX {3+}", lit: []byte("a\r\n"), dest: c.v.key, appended: []byte("a\r\n")}
		}},
		script: [][]string{{"TAG OK [APPENDUID 9 5] done"}}, kind: stressProtocol, want: "sent no EXISTS"},
	{name: "another content under a UID", uids: []uint32{1, 2},
		prep:   func(c *stressClient) { c.w.learn(stressMsgKey{c.v.key, 2}, []byte("a\r\n"), nil, nil, -1) },
		cmds:   []func(*stressClient) *stressCmd{stressUIDCmd("UID FETCH", "UID FETCH 2 (BODY.PEEK[])", 2)},
		script: [][]string{{"* 2 FETCH (UID 2 BODY[] {3}\r\nb\r\n)", "TAG OK done"}}, kind: stressState, want: "%s: %s"},
	{name: "FETCH left out a message that exists", uids: []uint32{1, 2},
		cmds: []func(*stressClient) *stressCmd{stressUIDCmd("UID FETCH", "UID FETCH 2 (RFC822.SIZE)", 2),
			stressUIDCmd("UID FETCH", "UID FETCH 2 (RFC822.SIZE)", 2)},
		script: [][]string{{"TAG OK done"}, {"* 2 FETCH (UID 2 RFC822.SIZE 3)", "TAG OK done"}}, kind: stressState, want: "left out"},
	{name: "NUL in a plain literal", uids: []uint32{1},
		cmds:   []func(*stressClient) *stressCmd{stressUIDCmd("UID FETCH", "UID FETCH 1 (BODY.PEEK[])", 1)},
		script: [][]string{{"* 1 FETCH (UID 1 BODY[] {3}\r\na\x00b)", "TAG OK done"}}, kind: stressProtocol, want: "NUL"},
	{name: "RECENT to IMAP4rev2", uids: []uint32{1}, prep: func(c *stressClient) { c.rev2 = true },
		cmds:   []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"* 1 RECENT", "TAG OK done"}}, kind: stressProtocol, want: "RECENT"},
	{name: "SERVERBUG", uids: []uint32{1}, cmds: []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"TAG NO [SERVERBUG] oops"}}, kind: stressInternal, want: "%s"},
	{name: "BAD", uids: []uint32{1}, cmds: []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"TAG BAD what"}}, kind: stressProtocol, want: "BAD to a well-formed command"},
	{name: "BYE", uids: []uint32{1}, cmds: []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{{"* BYE going"}}, kind: stressProtocol, want: "BYE not asked for"},
	{name: "dropped connection", uids: []uint32{1}, cmds: []func(*stressClient) *stressCmd{stressNoop},
		script: [][]string{nil}, kind: stressProtocol, want: "dropped"},
}

// TestStressClientCatchesViolations shows that each check of
// TestConcurrentClientsKeepState fires: a scripted peer on a loopback socket
// answers the client's commands in ways RFC 9051 forbids, and each must be
// counted as the error it is.
func TestStressClientCatchesViolations(t *testing.T) {
	for _, tc := range stressCases {
		t.Run(tc.name, func(t *testing.T) {
			st := newStressStats()
			c := newStressClient(0, 0, "", newStressWorld(), st)
			c.conn = stressScripted(t, tc.script)
			c.br = bufio.NewReader(c.conn)
			c.v = &stressView{key: stressKey{0, "INBOX"}, gotExists: true, msgs: c.newEntries(len(tc.uids))}
			for i, u := range tc.uids {
				c.v.msgs[i].uid = u
			}
			c.cmd = &stressCmd{tag: "prep"}
			if tc.prep != nil {
				tc.prep(c)
			}
			c.cmd = nil
			for _, cmd := range tc.cmds {
				c.exec(cmd(c))
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			found := false
			for class := range st.classes[tc.kind] {
				found = found || strings.Contains(class, tc.want)
			}
			if !found {
				t.Errorf("no %s error like %q; counted: %s%s%s", tc.kind, tc.want,
					st.classesLocked(stressProtocol), st.classesLocked(stressInternal), st.classesLocked(stressState))
			}
		})
	}
}

// stressLitPlusRe is a LITERAL+ announcement ending a command line.
var stressLitPlusRe = regexp.MustCompile(`\{(\d+)\+\}\r\n$`)

// stressScripted is the client's end of a loopback connection to a peer
// that answers the i-th command with script[i] (nil: it hangs up).
func stressScripted(t *testing.T, script [][]string) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for _, answer := range script {
			line, err := br.ReadString('\n')
			if err != nil || answer == nil {
				return
			}
			if m := stressLitPlusRe.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				if _, err := io.CopyN(io.Discard, br, int64(n)+2); err != nil {
					return
				}
			}
			tag, _, _ := strings.Cut(line, " ")
			for _, a := range answer {
				if _, err := io.WriteString(conn, strings.ReplaceAll(a, "TAG", tag)+"\r\n"); err != nil {
					return
				}
			}
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); <-done })
	return conn
}

// ---- what the stress run led to ---------------------------------------------

// TestSilentStoreStillReportsOthersChanges: RFC 9051 §6.4.6 says
// "Regardless of whether or not the ".SILENT" suffix was used, the server
// SHOULD send an untagged FETCH response if a change to a message's flags
// from an external source is observed." Session A must hear of B's \Seen by
// the end of its NOOP, although A's own silent STORE rewrote the same
// message after B's change.
func TestSilentStoreStillReportsOthersChanges(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, testMessage(1, "one"))
	a := dialRaw(t, e.addr)
	a.login()
	a.expectOK("ENABLE IMAP4rev2") // no \Recent in the flags
	a.expectOK("SELECT INBOX")
	b := dialRaw(t, e.addr)
	b.login()
	b.expectOK("SELECT INBOX")
	b.expectOK(`STORE 1 +FLAGS.SILENT (\Seen)`)
	told := a.expectOK(`STORE 1 +FLAGS.SILENT (\Flagged)`)
	told = append(told, a.expectOK("NOOP")...)
	// The FETCH may carry the UID; the flags may come in either order.
	want := []string{
		`* 1 FETCH (FLAGS (\Seen \Flagged))`, `* 1 FETCH (FLAGS (\Flagged \Seen))`,
		`* 1 FETCH (UID 1 FLAGS (\Seen \Flagged))`, `* 1 FETCH (UID 1 FLAGS (\Flagged \Seen))`,
	}
	if !slices.ContainsFunc(told, func(l string) bool { return slices.Contains(want, l) }) {
		t.Errorf("A was never told of B's \\Seen: untagged responses %q", told)
	}
}
