package imap

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/protocol/wire"
)

// cmdConn is what go-imap's imapserver reads from and writes to: the
// connection (the wire.Conn, or TLS over it), seen above TLS. It reads every
// client line before the library does, and watches the library's responses,
// so that mailgate, not the library, decides:
//   - STARTTLS (RFC 9051 §6.2.1): cmdConn runs the handshake itself and hands
//     the encrypted connection to the library as a new one, so that nothing
//     the client sent in the clear after STARTTLS is read;
//   - literals: the library refuses some literals without reading them (a
//     LITERAL+ one over its limits, or one in a command it finds malformed)
//     and would then parse their bytes as commands. cmdConn knows where
//     every literal is, refuses the ones the library would not read (BYE),
//     and discards the bytes of any literal whose command the library
//     answered without reading it;
//   - APPENDLIMIT (RFC 7889): a synchronizing literal over the limit is
//     refused before the continuation request, and the capability carries
//     its number (go-imap beta.8 advertises a bare APPENDLIMIT).
//
// The library reads a command through a bufio.Reader and asks for more bytes
// only when it has parsed everything before them; cmdConn hands it one line,
// or one chunk of a literal, per Read, so that what the library writes in
// between (a continuation request, a command's completion) is seen before the
// bytes it governs are parsed.
type cmdConn struct {
	inner net.Conn      // immutable: the wire.Conn, or TLS over it
	wc    *wire.Conn    // immutable
	r     *bufio.Reader // immutable: over inner
	srv   *Server       // immutable
	tls   bool          // immutable: inner runs TLS (implicit, or since STARTTLS)

	after atomic.Pointer[func()]  // run once after the library's next write
	sess  atomic.Pointer[session] // set by newSession
	// fetchFix rewrites the items of the FETCH response being written that
	// the library writes wrong (fetch.go), while one is armed.
	fetchFix atomic.Pointer[fetchFilter]

	// By the reading goroutine (the library's command goroutine) only.
	out  []byte // what the library reads next: a line or part of one
	line []byte // the line being read (out may alias it)

	// wmu serializes writes to inner, the library's and cmdConn's own, and
	// is held from noting what a write carries (trackOut) to writing it, so
	// that under it the stream state is that of the bytes sent. cmdConn's
	// own lines wait on wcond for the end of the response being written.
	wmu     sync.Mutex
	wcond   *sync.Cond // on wmu: signalled after each write
	wbroken bool       // guarded by wmu: a write failed or the connection closed; nobody waits
	held    []byte     // guarded by wmu: the start of a FETCH response kept back (see Write)

	mu    sync.Mutex
	mode  readMode  // guarded by mu
	lit   int64     // guarded by mu: literal bytes still to pass (modeLiteral) or skip (modeSkipLit)
	cmd   command   // guarded by mu: the command the library is reading or answering
	state connState // guarded by mu
	// The server→client stream, to know where responses begin.
	outLit  int64  // guarded by mu: literal bytes of a response still to come
	outMid  bool   // guarded by mu: inside a response
	outTail []byte // guarded by mu: the end of the response line so far
	// swallowGreeting: after STARTTLS, the library greets the connection it
	// takes for new; the client, in the middle of STARTTLS, expects nothing.
	swallowGreeting bool // guarded by mu
}

type readMode uint8

const (
	modeCommand  readMode = iota // the next line starts a command
	modeCont                     // the next line continues the command after a literal
	modeSync                     // a synchronizing literal announced: the library's reply decides
	modeLiteral                  // literal bytes, passed raw
	modeRawLine                  // one line that is not a command: a SASL response, IDLE's DONE
	modeSkipLit                  // literal bytes of a command the library answered: discarded
	modeSkipLine                 // the rest of such a command's line: discarded
)

type connState uint8

const (
	stateOpen      connState = iota
	stateSwitching           // STARTTLS handshake running: the library must not write
	stateHandedOff           // inner belongs to the connection after STARTTLS
	stateClosed              // cmdConn said BYE and closed inner
)

// command is what cmdConn knows of the command being read.
type command struct {
	tag     string
	verb    string // upper case; "UID FETCH" and the like
	open    bool   // handed to the library and not yet answered
	append  bool
	msgLit  int      // APPEND: the index of the message literal
	lits    int      // literals so far
	size    int      // bytes outside literals so far
	pending int64    // modeSync: the announced size
	names   nameArgs // its mailbox names, rewritten for the library (mailboxes.go)
}

// Limits of what the library reads (imapserver's maxCommandSize,
// checkBufferedLiteral and the bufio.Reader its AUTHENTICATE and IDLE read
// lines from).
const (
	maxCommandBytes  = 50 * 1024 // outside literals; the library fails past it
	maxBufferedLit   = 4096      // any literal but APPEND's message
	maxRawLine       = 4096      // a SASL response or DONE, line end included
	maxTagLen        = 64        // a longer "tag" is answered untagged
	keepLineCapacity = 8192      // a longer line buffer is dropped once used
)

func newCmdConn(srv *Server, wc *wire.Conn, inner net.Conn, overTLS bool) *cmdConn {
	c := &cmdConn{
		inner: inner, wc: wc, r: bufio.NewReaderSize(inner, 4096), srv: srv, tls: overTLS,
		outTail: make([]byte, 0, 32),
	}
	c.wcond = sync.NewCond(&c.wmu)
	return c
}

// NetConn is the connection below, for wire.ConnOf.
func (c *cmdConn) NetConn() net.Conn { return c.inner }

// Read hands the library the next line, or part of a literal.
func (c *cmdConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(c.out) == 0 {
		c.mu.Lock()
		mode, lit, st := c.mode, c.lit, c.state
		c.mu.Unlock()
		if st != stateOpen {
			return 0, net.ErrClosed
		}
		if mode == modeLiteral {
			n, err := c.r.Read(p[:min(int64(len(p)), lit)])
			if n > 0 {
				c.mu.Lock()
				if c.lit -= int64(n); c.lit <= 0 {
					c.mode = modeCont
				}
				c.mu.Unlock()
				return n, nil
			}
			return 0, err
		}
		if err := c.next(mode); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// next makes the next bytes for the library ready in out, or reads past
// bytes it must not see. out may stay empty: Read then calls again.
func (c *cmdConn) next(mode readMode) error {
	if cap(c.line) > keepLineCapacity {
		c.line = nil
	}
	switch mode {
	case modeSkipLit:
		c.mu.Lock()
		n := c.lit
		c.mu.Unlock()
		if _, err := c.r.Discard(int(min(n, int64(c.r.Size())))); err != nil {
			return err
		}
		c.mu.Lock()
		if c.lit -= min(n, int64(c.r.Size())); c.lit <= 0 {
			c.mode = modeSkipLine
		}
		c.mu.Unlock()
		return nil
	case modeSkipLine:
		tail, err := c.skipLine()
		if err != nil {
			return err
		}
		return c.skipped(tail)
	case modeRawLine:
		// The library reads it with a 4096-byte bufio.Reader: a longer line
		// would be refused in parts, the rest taken for a command.
		line, long, err := c.readLine(maxRawLine)
		if long {
			return c.byeClose("", tooBig, "Line too long; closing")
		}
		if err != nil {
			return err // a line cut by the end of the stream is not passed
		}
		c.mu.Lock()
		c.mode = modeCommand
		c.mu.Unlock()
		c.out = line
		return nil
	case modeCont:
		return c.commandLine(false)
	default: // modeCommand, or modeSync if the library reads on without answering
		return c.commandLine(true)
	}
}

// readLine reads a line, its end included, into c.line. long: it went over
// limit bytes without ending (the rest is unread). At the end of the stream
// the line may lack its end, and err says why.
func (c *cmdConn) readLine(limit int) (line []byte, long bool, err error) {
	c.line = c.line[:0]
	for {
		b, err := c.r.ReadSlice('\n')
		c.line = append(c.line, b...)
		if len(c.line) > limit {
			return c.line, true, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return c.line, false, err
		}
	}
}

// skipLine discards the rest of a line and returns its last bytes.
func (c *cmdConn) skipLine() ([]byte, error) {
	var tail []byte
	for {
		b, err := c.r.ReadSlice('\n')
		tail = append(tail, b...)
		if len(tail) > 64 {
			tail = append(tail[:0], tail[len(tail)-32:]...)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if err != nil {
				return nil, err
			}
			return tail, nil
		}
	}
}

// skipped goes on after a discarded line: its literal, if non-synchronizing,
// is discarded too (a synchronizing one is never sent: its command was
// answered).
func (c *cmdConn) skipped(line []byte) error {
	n, nonSync, ok := literalAt(line)
	switch {
	case ok && nonSync && n > libraryAppendLimit:
		return c.byeClose("", tooBig, "Literal too large; closing")
	case ok && nonSync && n > 0:
		c.setMode(modeSkipLit, n)
	case ok && nonSync:
		c.setMode(modeSkipLine, 0)
	default:
		c.setMode(modeCommand, 0)
	}
	return nil
}

func (c *cmdConn) setMode(m readMode, lit int64) {
	c.mu.Lock()
	c.mode, c.lit = m, lit
	c.mu.Unlock()
}

// commandLine reads the first line of a command (first) or a line that
// continues one after a literal, and decides what becomes of it.
func (c *cmdConn) commandLine(first bool) error {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if first {
		cmd = command{}
	}
	line, long, err := c.readLine(maxCommandBytes - cmd.size)
	if err != nil {
		return err // a command cut by the end of the stream is not run
	}
	if first {
		cmd = parseCommand(line)
		if !validTag(cmd.tag) {
			// The library would close the connection, or, for a tag with a
			// "+", answer with what looks like a continuation request.
			return c.byeClose("", clientBug, "Invalid tag; closing")
		}
	}
	if long {
		// The library fails past maxCommandBytes and parses the rest of the
		// line as a command.
		if first {
			// Not handed to the library: answer it, then discard the rest.
			c.refuse(cmd, "BAD [TOOBIG] Command line too long")
			if line[len(line)-1] == '\n' { // read to its end already
				return c.skipped(line)
			}
			c.setMode(modeSkipLine, 0)
			return nil
		}
		return c.byeClose(cmd.verb, tooBig, "Command line too long; closing")
	}
	cmd.size += len(line)
	if first && c.startTLSLine(line) {
		return c.startTLS(cmd.tag)
	}
	if !wellFormed(line) {
		// A bare CR, or a quoted string the line end cuts: the library would
		// take part of the line for the next command.
		if !first {
			return c.byeClose(cmd.verb, clientBug, "Malformed command line; closing")
		}
		c.refuse(cmd, "BAD [CLIENTBUG] Malformed command line")
		return c.skipped(line)
	}
	if first && cmd.verb == "ID" {
		return c.runID(cmd, line)
	}
	line, refusal := cmd.names.rewrite(line, first)
	if refusal != "" {
		// A string that is no mailbox name, which the library would answer
		// NO [SERVERBUG].
		c.refuse(cmd, refusal)
		return c.skipped(line)
	}
	n, nonSync, isLit := literalAt(line)
	if !isLit {
		cmd.open = true
		c.mu.Lock()
		c.cmd, c.mode = cmd, modeCommand
		c.mu.Unlock()
		c.out = line
		return nil
	}
	idx := cmd.lits
	cmd.lits++
	msg := cmd.append && idx == cmd.msgLit
	switch {
	case cmd.append && idx > cmd.msgLit:
		// MULTIAPPEND (RFC 3502), which the library does not know: it would
		// store the first message and parse the next literal as commands.
		return c.byeClose(cmd.verb, clientBug, "Only one message per APPEND; closing")
	case msg && nonSync && n > libraryAppendLimit:
		return c.byeClose(cmd.verb, tooBig, "Literal too large; closing")
	case !msg && nonSync && n > maxBufferedLit:
		return c.byeClose(cmd.verb, tooBig, "Literal too large; closing")
	case msg && !nonSync && n > int64(c.srv.appendLimit()):
		if first {
			// RFC 7889: refused before the client sends it.
			c.srv.metrics().Message(false)
			c.refuse(cmd, fmt.Sprintf("NO [TOOBIG] Message too large (APPENDLIMIT=%d)", c.srv.appendLimit()))
			c.setMode(modeCommand, 0)
			return nil
		}
		// The mailbox came as a literal: the library is inside the command.
		// Announced over its own limit, the literal is refused by it before
		// the continuation request.
		line = setLiteralSize(line, libraryAppendLimit+1)
		n = libraryAppendLimit + 1
	}
	cmd.open = true
	c.mu.Lock()
	c.cmd = cmd
	switch {
	case !nonSync:
		c.mode, c.cmd.pending = modeSync, n
	case n == 0:
		c.mode = modeCont
	default:
		c.mode, c.lit = modeLiteral, n
	}
	c.mu.Unlock()
	c.out = line
	return nil
}

// parseCommand reads the tag and verb of a command's first line.
func parseCommand(line []byte) command {
	text := strings.TrimRight(string(line), "\r\n")
	tag, rest, _ := strings.Cut(text, " ")
	verb, args, _ := strings.Cut(rest, " ")
	verb = strings.ToUpper(verb)
	if verb == "UID" {
		sub, _, _ := strings.Cut(args, " ")
		verb += " " + strings.ToUpper(sub)
	}
	cmd := command{tag: tag, verb: verb}
	if verb == "APPEND" && strings.HasPrefix(args, "{") {
		cmd.msgLit = 1 // the mailbox is a literal, the message the next one
	}
	cmd.append = verb == "APPEND"
	return cmd
}

// validTag reports whether tag is a tag the library reads as one: atom
// characters but "+" (RFC 9051's tag).
func validTag(tag string) bool {
	if tag == "" {
		return false
	}
	for i := 0; i < len(tag); i++ {
		switch b := tag[i]; b {
		case '(', ')', '{', ' ', '%', '*', '"', '\\', ']', '+':
			return false
		default:
			if b < 0x20 || b == 0x7f || b >= 0x80 {
				return false
			}
		}
	}
	return true
}

// startTLSLine reports whether line is "<tag> STARTTLS" and cmdConn runs it
// (without a TLS configuration the library answers it).
func (c *cmdConn) startTLSLine(line []byte) bool {
	text := strings.TrimSuffix(strings.TrimRight(string(line), "\r\n"), " ")
	_, verb, ok := strings.Cut(text, " ")
	return ok && strings.EqualFold(verb, "STARTTLS") && c.srv.opt.TLSConfig != nil
}

// wellFormed reports whether a line outside literals has no bare CR and ends
// outside quoted strings, as IMAP's syntax wants: otherwise the library's
// parser and cmdConn could disagree on where the line ends.
func wellFormed(line []byte) bool {
	body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	quoted := false
	for i := 0; i < len(body); i++ {
		switch b := body[i]; {
		case b == '\r' || b == '\n':
			return false
		case quoted && b == '\\':
			i++
			if i < len(body) && (body[i] == '\r' || body[i] == '\n') {
				return false
			}
		case b == '"':
			quoted = !quoted
		}
	}
	return !quoted
}

// literalAt parses the literal announced at the end of a line, as the
// library's decoder does: "{n}" or "{n+}" (literal8's "~" comes before), an
// optional space, an optional CR, LF. A size too large to parse is reported
// as the largest.
func literalAt(line []byte) (n int64, nonSync, ok bool) {
	s, ok := bytes.CutSuffix(line, []byte("\n"))
	if !ok {
		return 0, false, false
	}
	s, _ = bytes.CutSuffix(s, []byte("\r"))
	s, _ = bytes.CutSuffix(s, []byte(" "))
	s, ok = bytes.CutSuffix(s, []byte("}"))
	if !ok {
		return 0, false, false
	}
	s, nonSync = bytes.CutSuffix(s, []byte("+"))
	open := bytes.LastIndexByte(s, '{')
	digits := s[open+1:]
	if open < 0 || len(digits) == 0 {
		return 0, false, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false, false
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		n = 1<<63 - 1
	}
	return n, nonSync, true
}

// setLiteralSize rewrites the size of the literal announced at the end of
// line.
func setLiteralSize(line []byte, n int64) []byte {
	open := bytes.LastIndexByte(line, '{')
	end := open + 1
	for end < len(line) && line[end] >= '0' && line[end] <= '9' {
		end++
	}
	out := append([]byte(nil), line[:open+1]...)
	out = strconv.AppendInt(out, n, 10)
	return append(out, line[end:]...)
}

// refuse answers a command the library never sees, and counts it.
func (c *cmdConn) refuse(cmd command, status string) {
	tag := cmd.tag
	if len(tag) > maxTagLen {
		tag = "*"
	}
	c.wc.Touch()
	result := "bad"
	if strings.HasPrefix(status, "NO") {
		result = "no"
	}
	countCommand(c.srv.metrics(), cmd.verb, result)
	c.reply(tag + " " + status)
}

// Response codes of cmdConn's BYE.
const (
	tooBig    = "TOOBIG"
	clientBug = "CLIENTBUG"
)

// byeClose ends a connection whose client sent what the library must not
// see: BYE, then close. The library's read fails as on a closed connection.
func (c *cmdConn) byeClose(verb, code, text string) error {
	if verb != "" {
		countCommand(c.srv.metrics(), verb, "bad")
	}
	c.wc.Logger().Info("imap connection closed by server", "reason", text)
	c.reply("* BYE [" + code + "] " + text)
	c.mu.Lock()
	c.state = stateClosed
	c.mu.Unlock()
	c.inner.Close()
	return net.ErrClosed
}

// startTLS runs STARTTLS. On success the connection goes on, encrypted, as a
// new library connection (which then reads EOF and ends).
func (c *cmdConn) startTLS(tag string) error {
	c.wc.Touch()
	switch {
	case c.tls:
		c.reply(tag + " BAD TLS already active")
		return nil
	case c.wc.IsLoggedIn():
		c.reply(tag + " BAD STARTTLS is not allowed after login")
		return nil
	}
	c.reply(tag + " OK Begin TLS negotiation now")
	// Whatever the client sent after STARTTLS in the clear is not to be
	// believed once TLS is on.
	c.r.Discard(c.r.Buffered()) //nolint:errcheck // buffered bytes
	c.mu.Lock()
	c.state = stateSwitching // a BYE written now would break the handshake
	c.mu.Unlock()
	tc := tls.Server(c.inner, c.srv.opt.TLSConfig)
	if err := tc.HandshakeContext(c.wc.Context()); err != nil {
		c.wc.Logger().Debug("STARTTLS handshake failed", "err", err)
		c.inner.Close()
		return net.ErrClosed
	}
	// From now on Drain and Expire find the next session, or none yet: the
	// next session then sees the shutdown itself, and a timeout closes the
	// connection.
	if sess := c.sess.Load(); sess != nil {
		c.srv.removeSession(sess)
	}
	next := newCmdConn(c.srv, c.wc, tc, true)
	next.swallowGreeting = true
	c.mu.Lock()
	c.state = stateHandedOff
	c.mu.Unlock()
	if !c.srv.trustedLn.Give(next) {
		tc.Close()
	}
	return io.EOF
}

// reply writes lines of cmdConn's own, in one write. cmdConn writes from
// the library's command goroutine while the library waits for a command, so
// the library's writes then are another goroutine's: a BYE, or the updates of
// an IDLE that ended without DONE. Each of those is a response of its own,
// which reply waits for the end of: the lines never land inside one.
func (c *cmdConn) reply(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for !c.wbroken && c.wcond != nil && !c.betweenResponses() {
		c.wcond.Wait()
	}
	io.WriteString(c.inner, b.String()) //nolint:errcheck // a broken connection fails the next read
}

// betweenResponses reports whether the library's last write ended a
// response. Under wmu.
func (c *cmdConn) betweenResponses() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outLit == 0 && !c.outMid && c.held == nil
}

// Write passes the library's responses on. At the start of a response it
// notes what the client sends next (a literal after a continuation request;
// a SASL response or DONE; a new command once the current one is answered),
// completes capability lists, and puts before a FETCH response that shows
// a keyword the client has not been told of the FLAGS update it needs (see
// keywordNews). The library flushes at the end of each response, so a
// response that fits its buffer comes in one write; a FETCH response whose
// FLAGS the write cuts is kept back until they are whole.
func (c *cmdConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	sent, err := c.writeLocked(p)
	if err != nil {
		c.wbroken = true
	}
	if c.wcond != nil {
		c.wcond.Broadcast()
	}
	c.wmu.Unlock()
	if !sent {
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if fn := c.after.Swap(nil); fn != nil {
		(*fn)()
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// maxHeldFetch bounds what Write keeps back of a FETCH response: more than
// the longest FLAGS list (models.MaxKeywords keywords of
// models.MaxKeywordLen bytes) with the UID before it.
const maxHeldFetch = 16 << 10

// writeLocked is Write under wmu. sent is false when nothing went out: p was
// swallowed or kept back.
func (c *cmdConn) writeLocked(p []byte) (sent bool, err error) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return false, net.ErrClosed
	}
	if c.swallowGreeting {
		c.swallowGreeting = false
		if bytes.HasPrefix(p, []byte("* OK ")) {
			c.mu.Unlock()
			return false, nil
		}
	}
	atStart := c.outLit == 0 && !c.outMid
	c.mu.Unlock()
	out := p
	var news []byte
	if atStart {
		if c.held != nil {
			out = append(c.held, p...)
		}
		kws, done := fetchKeywords(out)
		if !done && len(out) < maxHeldFetch {
			c.held = append(c.held[:0:0], out...) // p is the library's buffer
			return false, nil
		}
		c.held = nil
		if sess := c.sess.Load(); sess != nil && len(kws) > 0 {
			news = sess.keywordNews(kws)
		}
	}
	out = filterFetchOut(c, out) // fetch.go: the FETCH items go-imap writes wrong
	c.mu.Lock()
	if c.trackOut(out) && len(out) > 0 {
		c.response(out)
		out = c.completeCaps(out)
	}
	c.mu.Unlock()
	if news != nil {
		out = append(news, out...)
	}
	_, err = c.inner.Write(out)
	return true, err
}

// trackOut follows the server→client stream over p (literals in FETCH
// responses included) and reports whether p begins a response. Under mu.
func (c *cmdConn) trackOut(p []byte) (atStart bool) {
	atStart = c.outLit == 0 && !c.outMid
	for len(p) > 0 {
		if c.outLit > 0 {
			k := min(c.outLit, int64(len(p)))
			p, c.outLit = p[k:], c.outLit-k
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.addTail(p)
			c.outMid = true
			return atStart
		}
		c.addTail(p[:i+1])
		n, _, lit := literalAt(c.outTail)
		c.outLit, c.outMid = n, lit
		c.outTail = c.outTail[:0]
		p = p[i+1:]
	}
	return atStart
}

func (c *cmdConn) addTail(b []byte) {
	if len(b) >= 32 {
		c.outTail = append(c.outTail[:0], b[len(b)-32:]...)
		return
	}
	if over := len(c.outTail) + len(b) - 32; over > 0 {
		c.outTail = append(c.outTail[:0], c.outTail[over:]...)
	}
	c.outTail = append(c.outTail, b...)
}

// response notes what a response that begins p means for the client's next
// bytes. Under mu.
func (c *cmdConn) response(p []byte) {
	cmd := &c.cmd
	switch {
	case p[0] == '+':
		switch {
		case c.mode == modeSync:
			// The literal is wanted.
			c.mode, c.lit = modeLiteral, cmd.pending
			if c.lit == 0 {
				c.mode = modeCont
			}
		case cmd.open && (cmd.verb == "AUTHENTICATE" || cmd.verb == "IDLE"):
			c.mode = modeRawLine
		}
	case cmd.open && bytes.HasPrefix(p, []byte(cmd.tag+" ")):
		// The command is answered. If the library did not read all of it
		// (a literal it refused, a command it found malformed), what the
		// client still sends of it is not a command.
		cmd.open = false
		switch c.mode {
		case modeSync, modeRawLine:
			c.mode = modeCommand
		case modeLiteral:
			c.mode = modeSkipLit
		case modeCont:
			c.mode = modeSkipLine
		}
	}
}

// completeCaps rewrites the capability list a response may carry (the
// CAPABILITY response, or a CAPABILITY code in the greeting or a login's
// reply): APPENDLIMIT with its number, ID, and STARTTLS while it is
// available.
// Under mu.
func (c *cmdConn) completeCaps(p []byte) []byte {
	end := bytes.IndexByte(p, '\n')
	if end < 0 {
		return p
	}
	line := bytes.TrimRight(p[:end+1], "\r\n")
	var start, stop int
	if rest, ok := bytes.CutPrefix(line, []byte("* CAPABILITY ")); ok {
		start, stop = len(line)-len(rest), len(line)
	} else {
		// "<tag> <type> [CAPABILITY …] text"
		_, rest, _ := bytes.Cut(line, []byte(" "))
		_, rest, _ = bytes.Cut(rest, []byte(" "))
		rest, ok := bytes.CutPrefix(rest, []byte("[CAPABILITY "))
		j := bytes.IndexByte(rest, ']')
		if !ok || j < 0 {
			return p
		}
		start = len(line) - len(rest)
		stop = start + j
	}
	caps := strings.Fields(string(line[start:stop]))
	starttls := !c.tls && c.srv.opt.TLSConfig != nil && !c.wc.IsLoggedIn()
	id := true // cmdConn answers ID (RFC 2971) in every state
	changed := false
	for i, cp := range caps {
		switch {
		case strings.EqualFold(cp, "APPENDLIMIT"):
			caps[i] = fmt.Sprintf("APPENDLIMIT=%d", c.srv.appendLimit())
			changed = true
		case strings.EqualFold(cp, "STARTTLS"):
			starttls = false
		case strings.EqualFold(cp, "ID"):
			id = false
		}
	}
	if id {
		caps = append(caps, "ID")
		changed = true
	}
	if starttls {
		caps = append(caps, "STARTTLS")
		changed = true
	}
	if !changed {
		return p
	}
	out := make([]byte, 0, len(p)+32)
	out = append(out, p[:start]...)
	out = append(out, strings.Join(caps, " ")...)
	return append(out, p[stop:]...)
}

// thenRun runs fn (once) after the library's next write. fn runs inside the
// library's writer: it must not write (a goroutine may).
func (c *cmdConn) thenRun(fn func()) { c.after.Store(&fn) }

// fire runs a hook still armed (its reply was never written).
func (c *cmdConn) fire() {
	if fn := c.after.Swap(nil); fn != nil {
		(*fn)()
	}
}

// Close closes the connection, unless it went on under TLS.
func (c *cmdConn) Close() error {
	c.mu.Lock()
	handedOff := c.state == stateHandedOff
	c.mu.Unlock()
	var err error
	if !handedOff {
		err = c.inner.Close() // first: it ends a write blocked under wmu
	}
	c.wmu.Lock()
	c.wbroken = true
	if c.wcond != nil {
		c.wcond.Broadcast()
	}
	c.wmu.Unlock()
	return err
}

func (c *cmdConn) LocalAddr() net.Addr                { return c.inner.LocalAddr() }
func (c *cmdConn) RemoteAddr() net.Addr               { return c.inner.RemoteAddr() }
func (c *cmdConn) SetDeadline(t time.Time) error      { return c.inner.SetDeadline(t) }
func (c *cmdConn) SetReadDeadline(t time.Time) error  { return c.inner.SetReadDeadline(t) }
func (c *cmdConn) SetWriteDeadline(t time.Time) error { return c.inner.SetWriteDeadline(t) }

// ID (RFC 2971): the library does not know the command, so cmdConn answers
// it, in any state, as it does STARTTLS.

// Limits of RFC 2971 §3.3.
const (
	maxIDPairs = 30
	maxIDField = 30   // octets
	maxIDValue = 1024 // octets
)

// idPair is one field-value pair of an ID command; nil is a NIL value.
type idPair struct {
	field string
	value *string
}

// runID reads a whole ID command, its literals included (any string of it
// may be one; cmdConn sends a synchronizing literal's continuation request
// itself), and answers it with the server's ID.
func (c *cmdConn) runID(cmd command, line []byte) error {
	c.wc.Touch()
	var parts [][]byte // text outside literals and literal data, alternately
	size := len(line)
	for {
		n, nonSync, isLit := literalAt(line)
		text := bytes.TrimRight(line, "\r\n")
		if !isLit {
			parts = append(parts, bytes.Clone(text))
			break
		}
		text = text[:bytes.LastIndexByte(text, '{')]
		if refusal := idLiteralRefusal(n, size, bytes.HasSuffix(text, []byte("~"))); refusal != "" {
			// Refused before it is sent, or skipped.
			c.refuse(cmd, refusal)
			if nonSync {
				return c.skipped(line)
			}
			c.setMode(modeCommand, 0)
			return nil
		}
		parts = append(parts, bytes.Clone(text))
		if !nonSync {
			c.reply("+ Ready for literal data")
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.r, data); err != nil {
			return err
		}
		parts = append(parts, data)
		size += int(n)
		var long bool
		var err error
		if line, long, err = c.readLine(maxCommandBytes - size); err != nil {
			return err
		}
		if long {
			return c.byeClose(cmd.verb, tooBig, "Command line too long; closing")
		}
		if !wellFormed(line) {
			return c.byeClose(cmd.verb, clientBug, "Malformed command line; closing")
		}
		size += len(line)
	}
	c.setMode(modeCommand, 0)
	pairs, isNil, err := parseID(parts)
	if err != nil {
		c.refuse(cmd, "BAD [CLIENTBUG] "+err.Error())
		return nil
	}
	c.logID(pairs, isNil)
	countCommand(c.srv.metrics(), cmd.verb, "ok")
	c.reply("* ID "+c.srv.idList(), cmd.tag+" OK ID completed")
	return nil
}

// idLiteralRefusal is the reply to a literal of n octets announced after
// size octets of an ID command, or "" to read it. No ID string is longer
// than maxIDValue, and a whole command within §3.3's bounds is under 35,000
// octets; a literal8 is no string.
func idLiteralRefusal(n int64, size int, literal8 bool) string {
	switch {
	case literal8:
		return "BAD [CLIENTBUG] ID strings are not literal8"
	case n > maxIDValue:
		return "BAD [CLIENTBUG] ID strings are at most 1024 octets"
	case int64(size)+n > maxCommandBytes:
		return "BAD [TOOBIG] ID command too long"
	}
	return ""
}

// logID records what the client says it is.
func (c *cmdConn) logID(pairs []idPair, isNil bool) {
	if isNil {
		c.wc.Logger().Info("imap client id", "id", "NIL")
		return
	}
	attrs := make([]any, 0, len(pairs))
	for _, p := range pairs {
		if p.value == nil {
			attrs = append(attrs, slog.Any(p.field, nil))
		} else {
			attrs = append(attrs, slog.String(p.field, *p.value))
		}
	}
	c.wc.Logger().Info("imap client id", slog.Group("id", attrs...))
}

// idList is the server's ID parameter list: its name and, when the server was
// given one, its version; nothing of the host it runs on.
func (s *Server) idList() string {
	list := `("name" "mailgate"`
	if v := idString(s.opt.Version); v != "" {
		list += ` "version" "` + v + `"`
	}
	return list + ")"
}

// idString makes s the contents of a quoted string of at most maxIDValue
// octets: printable ASCII, with '"' and '\' escaped.
func idString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxIDValue-1; i++ {
		switch ch := s[i]; {
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case ch >= 0x20 && ch < 0x7f:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// errIDSyntax is the reply to an ID command that is not one.
var errIDSyntax = errors.New("ID takes NIL or a parenthesized list of field-value pairs")

// idToken is one token of an ID command: an atom, a string (quoted or
// literal), or one of '(', ')' and ' '.
type idToken struct {
	kind byte // 'a' atom, 's' string, or the character itself
	text string
}

// parseID parses an ID command (RFC 2971 §4) from its text and literals,
// tag included:
//
//	tag SP "ID" SP ( "(" [ string SP nstring *( SP string SP nstring ) ] ")" / "NIL" )
//
// and checks the limits of §3.3: at most 30 pairs, fields of at most 30
// octets sent once each (strings are not case-sensitive), values of at most
// 1024 octets.
func parseID(parts [][]byte) (pairs []idPair, isNil bool, err error) {
	toks, err := idTokens(parts)
	if err != nil {
		return nil, false, err
	}
	if len(toks) < 5 || toks[0].kind != 'a' || toks[1].kind != ' ' || toks[2].kind != 'a' ||
		!strings.EqualFold(toks[2].text, "ID") || toks[3].kind != ' ' {
		return nil, false, errIDSyntax
	}
	toks = toks[4:]
	if len(toks) == 1 && toks[0].kind == 'a' && strings.EqualFold(toks[0].text, "NIL") {
		return nil, true, nil
	}
	if toks[0].kind != '(' || toks[len(toks)-1].kind != ')' {
		return nil, false, errIDSyntax
	}
	body := toks[1 : len(toks)-1]
	for i := 0; i < len(body); i += 4 {
		// string SP nstring, then SP before the next pair.
		if i+2 >= len(body) || body[i].kind != 's' || body[i+1].kind != ' ' || !isNString(body[i+2]) ||
			(i+3 < len(body) && (body[i+3].kind != ' ' || i+4 == len(body))) {
			return nil, false, errIDSyntax
		}
		p := idPair{field: body[i].text}
		if body[i+2].kind == 's' {
			v := body[i+2].text
			p.value = &v
		}
		pairs = append(pairs, p)
	}
	return pairs, false, checkIDPairs(pairs)
}

func isNString(t idToken) bool {
	return t.kind == 's' || (t.kind == 'a' && strings.EqualFold(t.text, "NIL"))
}

// checkIDPairs applies RFC 2971 §3.3's limits.
func checkIDPairs(pairs []idPair) error {
	if len(pairs) > maxIDPairs {
		return errors.New("ID takes at most 30 field-value pairs")
	}
	seen := make(map[string]bool, len(pairs))
	for _, p := range pairs {
		switch {
		case len(p.field) > maxIDField:
			return errors.New("ID fields are at most 30 octets")
		case p.value != nil && len(*p.value) > maxIDValue:
			return errors.New("ID values are at most 1024 octets")
		case seen[strings.ToLower(p.field)]:
			return errors.New("ID field sent more than once")
		}
		seen[strings.ToLower(p.field)] = true
	}
	return nil
}

// idTokens splits an ID command into tokens: parts alternate between text
// and literal data, each literal one string.
func idTokens(parts [][]byte) ([]idToken, error) {
	var toks []idToken
	for k, part := range parts {
		if k%2 == 1 {
			if bytes.IndexByte(part, 0) >= 0 {
				return nil, errIDSyntax // CHAR8 excludes NUL (RFC 9051 §9)
			}
			toks = append(toks, idToken{kind: 's', text: string(part)})
			continue
		}
		for i := 0; i < len(part); {
			switch ch := part[i]; {
			case ch == ' ' || ch == '(' || ch == ')':
				toks = append(toks, idToken{kind: ch})
				i++
			case ch == '"':
				s, n, ok := unquote(part[i:])
				if !ok {
					return nil, errIDSyntax
				}
				toks = append(toks, idToken{kind: 's', text: s})
				i += n
			default:
				j := i
				for j < len(part) && isAtomChar(part[j]) {
					j++
				}
				if j == i {
					return nil, errIDSyntax
				}
				toks = append(toks, idToken{kind: 'a', text: string(part[i:j])})
				i = j
			}
		}
	}
	return toks, nil
}

// unquote reads the quoted string p begins with: its contents and length.
// Only '"' and '\' may be escaped (RFC 9051's quoted).
func unquote(p []byte) (s string, n int, ok bool) {
	var b []byte
	for i := 1; i < len(p); i++ {
		switch ch := p[i]; ch {
		case '"':
			return string(b), i + 1, true
		case '\\':
			if i+1 == len(p) || (p[i+1] != '"' && p[i+1] != '\\') {
				return "", 0, false
			}
			i++
			b = append(b, p[i])
		case 0, '\r', '\n':
			return "", 0, false
		default:
			b = append(b, ch)
		}
	}
	return "", 0, false
}

// isAtomChar reports whether ch may be part of an atom (RFC 9051's
// ATOM-CHAR). Octets of UTF-8 are let through, as the library's encoder
// does, but not those it takes for C1 controls.
func isAtomChar(ch byte) bool {
	switch ch {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return ch > 0x20 && ch != 0x7f && (ch < 0x80 || ch > 0x9f)
}
