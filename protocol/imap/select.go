package imap

import (
	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
)

// Select opens a mailbox (SELECT, or EXAMINE when options.ReadOnly). Nothing
// here reads every message: the UIDs come from the shared state (loaded once
// per process as ranges, then kept up to date from the change log), the
// counts from the mailbox row and the first unseen message from an index.
func (s *session) Select(name string, options *imap.SelectOptions) (_ *imap.SelectData, err error) {
	s.begin()
	defer func() { s.end(selectVerb(options), err) }()
	s.unselect()
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	mb, err := s.srv.mbox.Get(ctx, s.user.ID, name)
	if err != nil {
		return nil, s.fail("select", err)
	}
	st, err := s.srv.reg.acquire(ctx, mb.ID)
	if err != nil {
		return nil, s.fail("select", err)
	}
	rev2 := s.conn.EnabledCaps().Has(imap.CapIMAP4rev2)
	v := st.attach(options.ReadOnly, rev2)
	var recent uint32
	switch {
	case rev2:
		// IMAP4rev2 has no \Recent; claiming would take it from the
		// IMAP4rev1 sessions that show it.
	case options.ReadOnly:
		// EXAMINE must not take \Recent from anyone (RFC 3501 §6.3.2): show
		// what nobody has claimed yet without claiming it.
		recent = v.claimed(mb.RecentUID, v.clientMaxNow()+1)
	default:
		from, to, err := s.srv.mbox.ClaimRecent(ctx, mb.ID)
		if err != nil {
			st.detach(v)
			s.srv.reg.release(st)
			return nil, s.fail("select", err)
		}
		recent = v.claimed(from, to)
	}
	var firstUnseen uint32
	if !rev2 { // UNSEEN is gone from IMAP4rev2
		uid, err := s.srv.mbox.FirstUnseenUID(ctx, mb.ID)
		if err != nil {
			st.detach(v)
			s.srv.reg.release(st)
			return nil, s.fail("select", err)
		}
		firstUnseen = v.seq(uid)
	}
	st.mu.Lock()
	// FLAGS names the keywords in use too (RFC 9051 §7.3.5); the client is
	// told of later ones as they come (keywordNews).
	kws := st.keywordListLocked()
	data := &imap.SelectData{
		Flags:             mailboxFlags(kws),
		PermanentFlags:    permanentFlags(kws),
		NumMessages:       v.countLocked(),
		FirstUnseenSeqNum: firstUnseen,
		NumRecent:         recent,
		UIDNext:           imap.UID(v.uidNextLocked()),
		UIDValidity:       mb.UIDValidity,
	}
	st.mu.Unlock()
	if options.ReadOnly {
		data.PermanentFlags = []imap.Flag{} // nothing can be changed (RFC 9051 §7.1)
	}
	s.told.tell(kws)
	if rev2 {
		data.List = &imap.ListData{Delim: delim, Mailbox: mb.Name, Attrs: selectAttrs(mb)}
	}
	s.setView(v)
	return data, nil
}

func selectAttrs(mb *models.Mailbox) []imap.MailboxAttr {
	if mb.SpecialUse == "" {
		return nil
	}
	return []imap.MailboxAttr{imap.MailboxAttr(mb.SpecialUse)}
}

// clientMaxNow is the highest UID the client knows.
func (v *view) clientMaxNow() uint32 {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	return v.clientMax
}

// seq is seqLocked taking the lock.
func (v *view) seq(uid uint32) uint32 {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	return v.seqLocked(uid)
}

// selectVerb is SELECT, or EXAMINE for a read-only open.
func selectVerb(o *imap.SelectOptions) string {
	if o.ReadOnly {
		return "EXAMINE"
	}
	return "SELECT"
}
