package imap

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

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

// listEntry is a mailbox or a hierarchy level with no mailbox of its own
// (its mailbox was deleted while children remained).
type listEntry struct {
	mb          *models.Mailbox // nil for a level without a mailbox
	name        string
	children    bool
	subChildren bool // some descendant is subscribed (LIST-EXTENDED RECURSIVEMATCH)
}

// List answers LIST, LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and
// SPECIAL-USE (RFC 6154), and LSUB (the library passes SelectSubscribed).
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, o *imap.ListOptions) (err error) {
	s.begin()
	defer func() { s.end("LIST", err) }()
	if len(patterns) == 0 { // LIST "" "": the delimiter and root
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	mbs, err := s.srv.mbox.Mailboxes(ctx, s.user.ID)
	if err != nil {
		return s.fail("list", err)
	}
	extended := o.SelectSubscribed || o.SelectSpecialUse || o.SelectRecursiveMatch || o.ReturnSubscribed ||
		o.ReturnChildren || o.ReturnSpecialUse || o.ReturnStatus != nil
	ref = models.CanonicalMailboxName(ref)
	for i := range patterns {
		if ref == "" {
			patterns[i] = models.CanonicalMailboxName(patterns[i])
		}
	}
	for _, e := range listEntries(mbs) {
		if !matchesAny(e.name, ref, patterns) {
			continue
		}
		data := &imap.ListData{Delim: delim, Mailbox: e.name}
		subscribed := e.mb != nil && e.mb.Subscribed
		if o.SelectSubscribed && !subscribed {
			if !o.SelectRecursiveMatch || !e.subChildren {
				continue
			}
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if o.SelectSpecialUse && (e.mb == nil || e.mb.SpecialUse == "") {
			continue
		}
		data.Attrs = listAttrs(e, extended, subscribed && (o.ReturnSubscribed || o.SelectSubscribed))
		if o.ReturnStatus != nil && e.mb != nil {
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

// listEntries returns the user's mailboxes and the missing levels above them,
// in name order, with whether each has children.
func listEntries(mbs []models.Mailbox) []listEntry {
	byName := make(map[string]*listEntry, len(mbs))
	for i := range mbs {
		byName[mbs[i].Name] = &listEntry{mb: &mbs[i], name: mbs[i].Name}
	}
	for i := range mbs {
		name := mbs[i].Name
		subscribed := mbs[i].Subscribed
		for {
			cut := strings.LastIndexByte(name, byte(delim))
			if cut < 0 {
				break
			}
			name = name[:cut]
			parent := byName[name]
			if parent == nil {
				parent = &listEntry{name: name}
				byName[name] = parent
			}
			parent.children = true
			parent.subChildren = parent.subChildren || subscribed
		}
	}
	out := make([]listEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func listAttrs(e listEntry, extended, showSubscribed bool) []imap.MailboxAttr {
	var attrs []imap.MailboxAttr
	if e.mb == nil {
		// RFC 5258 §3: \NonExistent (implying \Noselect) for extended LIST;
		// a basic LIST says \Noselect, which every client understands.
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
	if showSubscribed {
		attrs = append(attrs, imap.MailboxAttrSubscribed)
	}
	// RFC 6154 §2: special-use attributes go in every LIST response, so that
	// clients which never ask for them still find Sent, Drafts and Trash.
	if e.mb != nil && e.mb.SpecialUse != "" {
		attrs = append(attrs, imap.MailboxAttr(e.mb.SpecialUse))
	}
	return attrs
}

func matchesAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
	}
	return false
}
