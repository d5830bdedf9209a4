package imap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/models"
)

// creatableUses are the special-use attributes CREATE (USE (...)) accepts
// (RFC 6154): the virtual ones (\All, \Flagged) would need a server-side view.
var creatableUses = map[string]string{
	`\sent`: models.SpecialSent, `\drafts`: models.SpecialDrafts, `\trash`: models.SpecialTrash,
	`\junk`: models.SpecialJunk, `\archive`: models.SpecialArchive,
}

func (s *session) Create(name string, options *imap.CreateOptions) (err error) {
	s.begin()
	defer func() { s.end("CREATE", err) }()
	// "foo/" asks for a mailbox that will hold others (RFC 9051 §6.3.4); this
	// store has no other kind.
	name = strings.TrimSuffix(name, string(delim))
	var use string
	if len(options.SpecialUse) > 1 {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: responseUseAttr, Text: "A mailbox has at most one special use"}
	}
	if len(options.SpecialUse) == 1 {
		var ok bool
		if use, ok = creatableUses[strings.ToLower(string(options.SpecialUse[0]))]; !ok {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: responseUseAttr, Text: "Unsupported special use"}
		}
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	// CREATE does not subscribe: that is SUBSCRIBE's to do (RFC 9051 §6.3.4,
	// §6.3.7), and the client's to ask.
	if _, err := s.srv.mbox.Create(ctx, s.user.ID, name, use); err != nil {
		return s.fail("create", err)
	}
	return nil
}

// Delete removes a mailbox. Deleting the selected mailbox leaves this session
// with nothing to work on (NO [NONEXISTENT] until it selects another); other
// sessions with it selected get BYE (see flush).
func (s *session) Delete(name string) (err error) {
	s.begin()
	defer func() { s.end("DELETE", err) }()
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	mb, err := s.srv.mbox.Get(ctx, s.user.ID, name)
	if err != nil {
		return s.fail("delete", err)
	}
	mine := s.view != nil && s.mailboxID == mb.ID
	if mine {
		s.setDeletedByMe(true)
	}
	if err := s.srv.mbox.Delete(ctx, s.user.ID, mb.Name); err != nil {
		if mine {
			s.setDeletedByMe(false)
		}
		return s.fail("delete", err)
	}
	return nil
}

func (s *session) setDeletedByMe(on bool) {
	s.view.st.mu.Lock()
	s.view.deletedByMe = on
	s.view.st.mu.Unlock()
}

// Rename keeps mailbox ids, UIDs and UIDVALIDITY, so a session with the
// mailbox selected simply goes on under the new name (RFC 2180 §3.4 allows it).
func (s *session) Rename(from, to string, _ *imap.RenameOptions) (err error) {
	s.begin()
	defer func() { s.end("RENAME", err) }()
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	if err := s.srv.mbox.Rename(ctx, s.user.ID, from, strings.TrimSuffix(to, string(delim))); err != nil {
		return s.fail("rename", err)
	}
	return nil
}

// Subscribe and Unsubscribe change the subscriptions, which are names
// (RFC 9051 §6.3.7, §6.3.8): a name without a mailbox may be subscribed, and
// unsubscribing a name that is not subscribed (a deleted mailbox's, say)
// succeeds.
func (s *session) Subscribe(name string) error   { return s.subscribe(name, true) }
func (s *session) Unsubscribe(name string) error { return s.subscribe(name, false) }

func (s *session) subscribe(name string, on bool) (err error) {
	verb := "SUBSCRIBE"
	if !on {
		verb = "UNSUBSCRIBE"
	}
	s.begin()
	defer func() { s.end(verb, err) }()
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	if err := s.srv.mbox.SetSubscribed(ctx, s.user.ID, name, on); err != nil {
		return s.fail("subscribe", err)
	}
	return nil
}

func (s *session) Status(name string, options *imap.StatusOptions) (_ *imap.StatusData, err error) {
	s.begin()
	defer func() { s.end("STATUS", err) }()
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	mb, err := s.srv.mbox.Get(ctx, s.user.ID, name)
	if err != nil {
		return nil, s.fail("status", err)
	}
	data, err := s.status(ctx, mb, options)
	if err != nil {
		return nil, s.fail("status", err)
	}
	return data, nil
}

// status reads a mailbox's counters from its row; only DELETED and RECENT
// count rows, through small indexes.
func (s *session) status(ctx context.Context, mb *models.Mailbox, o *imap.StatusOptions) (*imap.StatusData, error) {
	d := &imap.StatusData{Mailbox: mb.Name, UIDNext: imap.UID(mb.UIDNext), UIDValidity: mb.UIDValidity}
	u32 := func(n int64) *uint32 { v := uint32(n); return &v }
	if o.NumMessages {
		d.NumMessages = u32(mb.MessagesCount)
	}
	if o.NumUnseen {
		d.NumUnseen = u32(mb.UnseenCount)
	}
	if o.Size {
		d.Size = &mb.SizeBytes
	}
	if o.AppendLimit {
		limit := s.srv.appendLimit()
		d.AppendLimit = &limit
	}
	if o.NumDeleted {
		n, err := s.srv.mbox.CountDeleted(ctx, mb.ID)
		if err != nil {
			return nil, err
		}
		d.NumDeleted = u32(n)
	}
	if o.NumRecent {
		n, err := s.srv.mbox.CountRecent(ctx, mb.ID)
		if err != nil {
			return nil, err
		}
		d.NumRecent = u32(n)
	}
	return d, nil
}

// Append stores a message (RFC 9051 §6.3.12), streaming the literal into a
// spool.
//
// A literal over MaxMessageBytes is refused here with NO [TOOBIG] before any
// of it is read; the library then reads the literal to its end and discards
// it (the io.Copy(io.Discard, lit) after Session.Append in imapserver's
// handleAppend), so that its bytes are never parsed as commands. The
// library's own check, which refuses a literal before reading it, is left at
// its default of 100 MiB (MaxMessageBytes is never more): the session does
// not implement imapserver.SessionAppendLimit, because with it a LITERAL+
// literal over the limit would be refused unread and its bytes, which the
// client sends anyway, taken for commands (literal smuggling). What follows:
//   - a synchronizing literal over 100 MiB is refused before the "+"
//     continuation (by the library);
//   - one between MaxMessageBytes and 100 MiB gets the "+", is received and
//     discarded, then refused here (RFC 7889 would rather refuse it first);
//   - a LITERAL+ literal up to 100 MiB is received, discarded and refused;
//     one over 100 MiB is still refused by the library unread.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (_ *imap.AppendData, err error) {
	s.begin()
	defer func() {
		s.end("APPEND", err)
		s.srv.metrics().Message(err == nil)
	}()
	if r.Size() > s.srv.opt.MaxMessageBytes {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
			Text: fmt.Sprintf("Message exceeds the size limit of %d bytes", s.srv.opt.MaxMessageBytes)}
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	mb, err := s.srv.mbox.Get(ctx, s.user.ID, name)
	if err != nil {
		return nil, s.failDest("append", err)
	}
	flags, err := fromIMAPFlags(options.Flags)
	if err != nil {
		return nil, s.fail("append", err)
	}
	s.startAppend()
	defer func() { s.finishAppend(err == nil) }()
	sp := s.srv.mbox.NewSpool()
	defer sp.Close()
	if _, err := io.Copy(sp, r); err != nil {
		return nil, s.fail("append", err)
	}
	if err := sp.Finish(); err != nil {
		return nil, s.fail("append", err)
	}
	// A fresh context: receiving the literal may have taken longer than one
	// command's store work may.
	sctx, scancel := s.opCtx(opTimeout)
	defer scancel()
	msg, err := s.srv.mbox.AppendSource(sctx, mb, sp, flags, options.Time)
	if err != nil {
		return nil, s.failDest("append", err)
	}
	return &imap.AppendData{UID: imap.UID(msg.UID), UIDValidity: mb.UIDValidity}, nil
}

// startAppend marks a message transfer: the literal's bytes count as activity
// and Shutdown lets the APPEND finish and be answered before its BYE.
func (s *session) startAppend() {
	s.mu.Lock()
	s.appending = true
	s.mu.Unlock()
	s.wc.Transfer(true)
}

// finishAppend arranges for afterAppend to run once the APPEND's reply is
// written: the library still reads the literal's end (and CRLF) before it
// answers, so the transfer lasts until then. The reply is the next write
// after a failure, and after the poll that follows a success.
func (s *session) finishAppend(ok bool) {
	if ok {
		s.staged = s.afterAppend // armed by Poll
		return
	}
	s.cc.thenRun(s.afterAppend)
}

// afterAppend ends an APPEND's transfer, or, when Shutdown began meanwhile,
// says BYE now that the reply is out.
func (s *session) afterAppend() {
	s.mu.Lock()
	s.appending = false
	draining := s.wc.Draining()
	s.mu.Unlock()
	if draining {
		go s.bye("Server shutting down")
		return
	}
	s.wc.Transfer(false)
}

// List answers LIST (RFC 9051 §6.3.9) with the selection and return options
// of LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and SPECIAL-USE (RFC
// 6154), and LSUB (RFC 3501 §6.3.9), which the library hands over as a LIST
// with SelectSubscribed.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, o *imap.ListOptions) (err error) {
	s.begin()
	defer func() { s.end("LIST", err) }()
	if len(patterns) == 0 { // LIST "" "": the delimiter and root
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	lsub := s.answeringLSUB()
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	mbs, err := s.srv.mbox.Mailboxes(ctx, s.user.ID)
	if err != nil {
		return s.fail("list", err)
	}
	subs, err := s.srv.mbox.Subscriptions(ctx, s.user.ID)
	if err != nil {
		return s.fail("list", err)
	}
	q := newListQuery(ref, patterns)
	for _, e := range listEntries(mbs, subs, q.matches) {
		if !q.matches(e.name) {
			continue
		}
		var data *imap.ListData
		if lsub {
			data = lsubData(e, q)
		} else {
			data = listData(e, q, o)
		}
		if data == nil {
			continue
		}
		if o.ReturnStatus != nil && e.mb != nil && (!o.SelectSubscribed || e.subscribed) {
			if data.Status, err = s.status(ctx, e.mb, o.ReturnStatus); err != nil {
				return s.fail("list status", err)
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// answeringLSUB reports whether the command being answered is LSUB: the
// library passes it to List as LIST (SUBSCRIBED) does, with nothing to tell
// them apart, but their answers differ (RFC 5258 §3.5: LSUB's \Noselect is
// LIST's CHILDINFO). cmdConn knows the verb of the command it handed over.
func (s *session) answeringLSUB() bool {
	s.cc.mu.Lock()
	defer s.cc.mu.Unlock()
	return s.cc.cmd.verb == "LSUB"
}

// listQuery is the reference and patterns of a LIST or LSUB.
type listQuery struct {
	ref      string
	patterns []string
}

func newListQuery(ref string, patterns []string) listQuery {
	ref = models.CanonicalMailboxName(ref)
	q := listQuery{ref: ref, patterns: make([]string, len(patterns))}
	for i, p := range patterns {
		if ref == "" {
			p = models.CanonicalMailboxName(p) // "inbox" is INBOX (RFC 9051 §5.1)
		}
		q.patterns[i] = p
	}
	return q
}

// matches reports whether some pattern matches name.
func (q listQuery) matches(name string) bool {
	for _, p := range q.patterns {
		if imapserver.MatchList(name, delim, q.ref, p) {
			return true
		}
	}
	return false
}

// percentStops reports whether a pattern that ends with "%" matches name:
// the levels of hierarchy such a pattern stops at are listed even without a
// mailbox of their own (RFC 9051 §6.3.9, RFC 3501 §6.3.9 for LSUB).
func (q listQuery) percentStops(name string) bool {
	for _, p := range q.patterns {
		if strings.HasSuffix(p, "%") && imapserver.MatchList(name, delim, q.ref, p) {
			return true
		}
	}
	return false
}

// listEntry is a name LIST or LSUB may show: a mailbox's, a subscribed one's
// (which may have no mailbox), or a level of the hierarchy above those.
type listEntry struct {
	name       string
	mb         *models.Mailbox // nil: no mailbox has the name
	subscribed bool
	children   bool // some mailbox is below it (\HasChildren)
	// Below it and matched by no pattern, so not listed themselves:
	hiddenMailbox    bool // a mailbox
	hiddenSubscribed bool // a subscribed name (CHILDINFO, LSUB's \Noselect)
}

// listEntries returns every name of mbs and subs and every level above
// them, in name order.
func listEntries(mbs []models.Mailbox, subs []string, matches func(string) bool) []*listEntry {
	byName := make(map[string]*listEntry, len(mbs)+len(subs))
	entry := func(name string) *listEntry {
		e := byName[name]
		if e == nil {
			e = &listEntry{name: name}
			byName[name] = e
		}
		return e
	}
	for i := range mbs {
		entry(mbs[i].Name).mb = &mbs[i]
	}
	for _, name := range subs {
		entry(name).subscribed = true
	}
	for i := range mbs {
		hidden := !matches(mbs[i].Name)
		forEachParent(mbs[i].Name, func(p string) {
			e := entry(p)
			e.children = true
			e.hiddenMailbox = e.hiddenMailbox || hidden
		})
	}
	for _, name := range subs {
		if !matches(name) {
			forEachParent(name, func(p string) { entry(p).hiddenSubscribed = true })
		}
	}
	out := make([]*listEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// forEachParent calls fn with each level above name, nearest first.
func forEachParent(name string, fn func(string)) {
	for {
		cut := strings.LastIndexByte(name, byte(delim))
		if cut < 0 {
			return
		}
		name = name[:cut]
		fn(name)
	}
}

// listData is a matching entry's LIST response, nil if the options leave it
// out. RFC 5258 §3 and RFC 9051 §6.3.9:
//   - without SUBSCRIBED, a mailbox is listed, and a name without one only
//     where a pattern's trailing "%" stops above mailboxes it does not list;
//   - with SUBSCRIBED, a subscribed name is listed, with \NonExistent if no
//     mailbox has it; with RECURSIVEMATCH too, so is a name with subscribed
//     names below it that no pattern matches, with CHILDINFO ("SUBSCRIBED")
//     (§3.5), whether or not it is subscribed itself.
func listData(e *listEntry, q listQuery, o *imap.ListOptions) *imap.ListData {
	recursive := o.SelectRecursiveMatch && e.hiddenSubscribed
	switch {
	case o.SelectSubscribed:
		if !e.subscribed && !recursive {
			return nil
		}
	case e.mb == nil:
		if !e.hiddenMailbox || !q.percentStops(e.name) {
			return nil
		}
	}
	if o.SelectSpecialUse && (e.mb == nil || e.mb.SpecialUse == "") {
		return nil
	}
	extended := o.SelectSubscribed || o.SelectRemote || o.SelectSpecialUse || o.ReturnSubscribed ||
		o.ReturnChildren || o.ReturnSpecialUse || o.ReturnStatus != nil
	showSubscribed := e.subscribed && (o.SelectSubscribed || o.ReturnSubscribed)
	data := &imap.ListData{Delim: delim, Mailbox: e.name, Attrs: listAttrs(e, extended, showSubscribed)}
	if recursive {
		data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
	}
	return data
}

// listAttrs are a listed name's attributes. \HasChildren and \HasNoChildren
// come whether or not RETURN (CHILDREN) asked for them, which RFC 5258 §4
// allows (as Dovecot does); special-use attributes come in every LIST (RFC
// 6154 §2), so that clients which never ask still find Sent and Trash.
func listAttrs(e *listEntry, extended, subscribed bool) []imap.MailboxAttr {
	var attrs []imap.MailboxAttr
	if e.mb == nil {
		// RFC 5258 §3: \NonExistent (which implies \Noselect, and so comes
		// alone) in an extended LIST; a basic LIST says \Noselect, which
		// every IMAP4rev1 client understands.
		if extended {
			attrs = append(attrs, imap.MailboxAttrNonExistent)
		} else {
			attrs = append(attrs, imap.MailboxAttrNoSelect)
		}
	}
	if e.children {
		attrs = append(attrs, imap.MailboxAttrHasChildren)
	} else {
		attrs = append(attrs, imap.MailboxAttrHasNoChildren)
	}
	if subscribed {
		attrs = append(attrs, imap.MailboxAttrSubscribed)
	}
	if e.mb != nil && e.mb.SpecialUse != "" {
		attrs = append(attrs, imap.MailboxAttr(e.mb.SpecialUse))
	}
	return attrs
}

// lsubData is a matching entry's LSUB response (RFC 3501 §6.3.9), nil if LSUB
// leaves it out: a subscribed name, with or without a mailbox, and a name
// that is not subscribed but where a pattern's trailing "%" stops above
// subscribed names, flagged \Noselect. LSUB has only RFC 3501's attributes:
// none of LIST-EXTENDED's, CHILDREN's or SPECIAL-USE's, which are defined for
// LIST alone.
func lsubData(e *listEntry, q listQuery) *imap.ListData {
	switch {
	case e.subscribed:
		return &imap.ListData{Delim: delim, Mailbox: e.name}
	case e.hiddenSubscribed && q.percentStops(e.name):
		return &imap.ListData{Delim: delim, Mailbox: e.name, Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}}
	}
	return nil
}

// Mailbox names on the wire.
//
// go-imap's parser decodes every mailbox name and LIST pattern as modified
// UTF-7 (RFC 3501 §5.1.3) before the session sees it, and a string that is
// not valid modified UTF-7 — "a&b", or any atom with a bare "&" — fails the
// command with an error it answers NO [SERVERBUG]. So cmdConn hands each
// command line to nameArgs first, which rewrites those arguments into the
// form the library decodes back to the name the client meant:
//   - a string that is valid modified UTF-7 means what it decodes to, as
//     IMAP4rev1 wants;
//   - any other string is taken as it is, as Dovecot takes it: RFC 9051
//     §5.1 lets IMAP4rev2 clients send UTF-8 names, in which "&" is just
//     "&", and RFC 3501 §5.1.3 only asks servers to check CREATE's names
//     (SHOULD), which would refuse a name that another client may send;
//   - a string with control characters, or with octets that are not UTF-8,
//     is no name (RFC 9051 §5.1: Net-Unicode) and the command is refused.
// Names are written back by the library: modified UTF-7 to IMAP4rev1
// clients, and UTF-8 with "&" as "&-" to IMAP4rev2 ones (which this reading
// of "&-" keeps consistent). A name sent as a literal passes as it is.

// nameArgs follows one command's arguments across the lines its literals
// split it into, and rewrites those that are mailbox names or patterns.
type nameArgs struct {
	verb     string // upper case, "UID COPY" and the like; "" when no argument is a name
	arg      int    // top-level arguments so far
	depth    int    // parentheses open
	listOpts bool   // LIST with selection options: its reference is argument 1
}

// nameVerbs are the commands with mailbox names among their arguments.
var nameVerbs = map[string]bool{
	"SELECT": true, "EXAMINE": true, "CREATE": true, "DELETE": true, "RENAME": true,
	"SUBSCRIBE": true, "UNSUBSCRIBE": true, "STATUS": true, "APPEND": true, "LIST": true, "LSUB": true,
	"COPY": true, "MOVE": true, "UID COPY": true, "UID MOVE": true,
}

// rewrite returns line (a command's first line when first, else a line that
// continues it after a literal) with its names in the library's form. A
// first line with a string that is no name is refused: refusal is the status
// to answer with, and the library must not see the command. Later lines are
// never refused (the library has begun the command); their bad names are
// left for the library to refuse.
func (a *nameArgs) rewrite(line []byte, first bool) (out []byte, refusal string) {
	body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	p := 0
	if first {
		*a, p = startArgs(body)
	}
	if a.verb == "" {
		return line, ""
	}
	var b []byte // the rewritten line so far, up to done
	done := 0
	for p < len(body) {
		switch c := body[p]; {
		case c == ' ':
			p++
		case c == '(':
			a.listOpts = a.listOpts || (a.verb == "LIST" && a.depth == 0 && a.arg == 0)
			a.depth++
			p++
		case c == ')':
			p++
			if a.depth > 0 {
				a.depth--
				a.endArg(0)
			}
		case c == '{' || (c == '~' && p+1 < len(body) && body[p+1] == '{'):
			// A literal, announced at the end of the line: the next line
			// goes on after its bytes. It is an argument of its own.
			a.endArg(a.depth)
			p = len(body)
		default:
			end, value := stringAt(body, p)
			if a.isName() {
				fixed, why := libraryName(value)
				if why != "" {
					if first {
						return line, why
					}
				} else if fixed != "" {
					b = append(append(b, line[done:p]...), fixed...)
					done = end
				}
			}
			a.endArg(a.depth)
			p = end
		}
	}
	if b == nil {
		return line, ""
	}
	b = append(b, line[done:]...)
	if len(b) > maxCommandBytes {
		if first {
			return line, "BAD [TOOBIG] Command line too long"
		}
		return line, ""
	}
	return b, ""
}

// startArgs reads a command's tag and verb and returns where its arguments
// begin.
func startArgs(body []byte) (nameArgs, int) {
	fields := strings.SplitN(string(body), " ", 4)
	if len(fields) < 3 {
		return nameArgs{}, len(body)
	}
	verb := strings.ToUpper(fields[1])
	p := len(fields[0]) + 1 + len(fields[1]) + 1
	if verb == "UID" {
		verb += " " + strings.ToUpper(fields[2])
		p += len(fields[2]) + 1
	}
	if !nameVerbs[verb] || p > len(body) {
		return nameArgs{}, len(body)
	}
	return nameArgs{verb: verb}, p
}

// endArg notes the end of a string or group at depth.
func (a *nameArgs) endArg(depth int) {
	if depth == 0 {
		a.arg++
	}
}

// isName reports whether the string that begins now is a mailbox name or a
// LIST pattern.
func (a *nameArgs) isName() bool {
	switch a.verb {
	case "RENAME", "LSUB":
		return a.depth == 0 && a.arg <= 1
	case "COPY", "MOVE", "UID COPY", "UID MOVE":
		return a.depth == 0 && a.arg == 1
	case "LIST":
		ref := 0
		if a.listOpts {
			ref = 1
		}
		// The reference, then a pattern or a parenthesized list of them.
		return (a.depth == 0 && (a.arg == ref || a.arg == ref+1)) || (a.depth == 1 && a.arg == ref+1)
	default:
		return a.depth == 0 && a.arg == 0
	}
}

// stringAt reads the quoted string or atom at p and returns where it ends and
// its value.
func stringAt(body []byte, p int) (end int, value string) {
	if body[p] != '"' {
		end = p
		for end < len(body) && body[end] != ' ' && body[end] != '(' && body[end] != ')' {
			end++
		}
		return end, string(body[p:end])
	}
	var v []byte
	for end = p + 1; end < len(body); end++ {
		switch body[end] {
		case '\\':
			end++
			if end < len(body) {
				v = append(v, body[end])
			}
		case '"':
			return end + 1, string(v)
		default:
			v = append(v, body[end])
		}
	}
	return end, string(v)
}

// libraryName returns, as a quoted string, the form of the client's string s
// that the library decodes to the name the client meant; "" when s needs no
// rewriting (the library decodes it right). why is the refusal of a string
// that is no name.
func libraryName(s string) (quoted, why string) {
	if !utf8.ValidString(s) {
		return "", "BAD [CLIENTBUG] Mailbox name is not UTF-8"
	}
	name := s
	if decoded, ok := decodeModifiedUTF7(s); ok {
		name = decoded
	}
	if strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "", "NO [CANNOT] Mailbox names have no control characters"
	}
	if !strings.Contains(s, "&") {
		return "", ""
	}
	// The library's decoder passes UTF-8 through and reads "&-" as "&".
	lib := strings.ReplaceAll(name, "&", "&-")
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(lib) + `"`, ""
}

// mutf7Alphabet is modified BASE64's: BASE64 with "," for "/" (RFC 3501
// §5.1.3).
const mutf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

// decodeModifiedUTF7 decodes s from modified UTF-7 (RFC 3501 §5.1.3). ok is
// false unless s is in the one form the RFC allows: printable US-ASCII, "&-"
// for "&", and shifts ("&", modified BASE64 of UTF-16, "-") that encode no
// printable US-ASCII character and never follow one another directly.
func decodeModifiedUTF7(s string) (string, bool) {
	var b strings.Builder
	afterShift := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c < 0x20 || c > 0x7e:
			return "", false
		case c != '&':
			b.WriteByte(c)
			i++
			afterShift = false
		case strings.HasPrefix(s[i:], "&-"):
			b.WriteByte('&')
			i += 2
			afterShift = false
		default:
			end := strings.IndexByte(s[i+1:], '-')
			if end < 0 || afterShift {
				return "", false
			}
			text, ok := decodeShift(s[i+1 : i+1+end])
			if !ok {
				return "", false
			}
			b.WriteString(text)
			i += end + 2
			afterShift = true
		}
	}
	return b.String(), true
}

// decodeShift decodes the modified BASE64 of a shift into UTF-16 and then
// text.
func decodeShift(b64 string) (string, bool) {
	var units []uint16
	var bits, nbits uint32
	for i := 0; i < len(b64); i++ {
		v := strings.IndexByte(mutf7Alphabet, b64[i])
		if v < 0 {
			return "", false
		}
		bits, nbits = bits<<6|uint32(v), nbits+6
		if nbits >= 16 {
			nbits -= 16
			units = append(units, uint16(bits>>nbits))
			bits &= 1<<nbits - 1
		}
	}
	// What is left over pads the last unit: fewer than 6 bits, all zero.
	if len(units) == 0 || nbits >= 6 || bits != 0 {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(units); i++ {
		r := rune(units[i])
		if utf16.IsSurrogate(r) {
			if i+1 == len(units) {
				return "", false
			}
			i++
			if r = utf16.DecodeRune(r, rune(units[i])); r == utf8.RuneError {
				return "", false
			}
		}
		if r >= 0x20 && r <= 0x7e { // printable US-ASCII stands for itself
			return "", false
		}
		b.WriteRune(r)
	}
	return b.String(), true
}
