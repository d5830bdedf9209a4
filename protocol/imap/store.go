package imap

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/models"
)

// Store changes flags (RFC 9051 §6.4.6). Without .SILENT the new flags of
// every message named are returned; the same changes, when they reach this
// session again through the shared state, are not repeated.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, sf *imap.StoreFlags, _ *imap.StoreOptions) (err error) {
	s.begin()
	defer func() { s.end(uidVerb("STORE", numSet), err) }()
	v, err := s.selected()
	if err != nil {
		return err
	}
	if v.readOnly {
		return s.fail("store", errReadOnly)
	}
	flags, err := fromIMAPFlags(sf.Flags)
	if err != nil {
		return s.fail("store", err)
	}
	op := models.FlagsReplace
	switch sf.Op {
	case imap.StoreFlagsAdd:
		op = models.FlagsAdd
	case imap.StoreFlagsDel:
		op = models.FlagsRemove
	}
	uids := v.resolve(numSet)
	if len(uids) == 0 {
		return nil
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	changes, err := s.srv.mbox.SetFlags(ctx, s.mailboxID, uids, op, flags)
	if err != nil {
		return s.fail("store", err)
	}
	s.applyOwn(ctx, v, changes)
	if sf.Silent {
		return nil
	}
	_, byUID := numSet.(imap.UIDSet)
	return s.fetch(ctx, w, v, uids, &imap.FetchOptions{Flags: true, UID: byUID}, false)
}

// Copy copies messages to another mailbox (RFC 9051 §6.4.7), answering with
// COPYUID (RFC 4315).
func (s *session) Copy(numSet imap.NumSet, dest string) (_ *imap.CopyData, err error) {
	s.begin()
	defer func() { s.end(uidVerb("COPY", numSet), err) }()
	v, err := s.selected()
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	to, err := s.srv.mbox.Get(ctx, s.user.ID, dest)
	if err != nil {
		return nil, s.failDest("copy", err)
	}
	uids := v.resolve(numSet)
	if len(uids) == 0 {
		return nil, nil
	}
	res, err := s.srv.mbox.Copy(ctx, s.mailboxID, uids, to.ID)
	if err != nil {
		return nil, s.failDest("copy", err)
	}
	return copyData(res), nil
}

// Move moves messages (RFC 6851): COPYUID first, then the EXPUNGEs, which the
// poll that ends the command reports from the applied change.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) (err error) {
	s.begin()
	defer func() { s.end(uidVerb("MOVE", numSet), err) }()
	v, err := s.selected()
	if err != nil {
		return err
	}
	if v.readOnly {
		return s.fail("move", errReadOnly)
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	to, err := s.srv.mbox.Get(ctx, s.user.ID, dest)
	if err != nil {
		return s.failDest("move", err)
	}
	uids := v.resolve(numSet)
	if len(uids) == 0 {
		return nil
	}
	res, err := s.srv.mbox.Move(ctx, s.mailboxID, uids, to.ID)
	if err != nil {
		return s.failDest("move", err)
	}
	if data := copyData(res); data != nil {
		if err := w.WriteCopyData(data); err != nil {
			return err
		}
	}
	s.applyOwn(ctx, v, nil)
	return nil
}

func copyData(res *models.CopyResult) *imap.CopyData {
	if res == nil || len(res.SourceUIDs) == 0 {
		return nil
	}
	d := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.SourceUIDs {
		d.SourceUIDs = appendUID(d.SourceUIDs, res.SourceUIDs[i])
		d.DestUIDs = appendUID(d.DestUIDs, res.DestUIDs[i])
	}
	return d
}

// appendUID adds a UID to a set built in ascending order, extending the last
// range when it can.
func appendUID(set imap.UIDSet, uid uint32) imap.UIDSet {
	if n := len(set); n > 0 && uint32(set[n-1].Stop)+1 == uid {
		set[n-1].Stop = imap.UID(uid)
		return set
	}
	return append(set, imap.UIDRange{Start: imap.UID(uid), Stop: imap.UID(uid)})
}

func appendSeq(set imap.SeqSet, n uint32) imap.SeqSet {
	if k := len(set); k > 0 && set[k-1].Stop+1 == n {
		set[k-1].Stop = n
		return set
	}
	return append(set, imap.SeqRange{Start: n, Stop: n})
}

// Expunge removes the \Deleted messages the client knows (all of them, or
// those in uids for UID EXPUNGE). The EXPUNGE responses come from the poll
// that ends the command. CLOSE calls this too, with a writer that writes
// nothing: in EXAMINE it must then do nothing and not fail (RFC 9051 §6.4.1).
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) (err error) {
	closing := w != nil && *w == (imapserver.ExpungeWriter{})
	s.begin()
	defer func() {
		switch {
		case !closing:
			verb := "EXPUNGE"
			if uids != nil {
				verb = "UID EXPUNGE"
			}
			s.end(verb, err)
		case err != nil:
			s.end("CLOSE", err)
		default:
			s.closing = true // Unselect comes next, and counts CLOSE
		}
	}()
	v, err := s.selected()
	if err != nil {
		if closing {
			return nil
		}
		return err
	}
	if v.readOnly {
		if closing {
			return nil
		}
		return s.fail("expunge", errReadOnly)
	}
	var set models.UIDSet
	if uids != nil {
		set = v.resolve(*uids)
	} else if top := v.clientMaxNow(); top > 0 {
		set = models.UIDSet{{Start: 1, Stop: top}}
	}
	if len(set) == 0 {
		return nil
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	// Clients CLOSE or EXPUNGE after every sync; when nothing is \Deleted
	// (an index answers that) the store is not written at all.
	n, err := s.srv.mbox.CountDeleted(ctx, s.mailboxID)
	if err != nil {
		return s.fail("expunge", err)
	}
	if n == 0 {
		return nil
	}
	if _, err := s.srv.mbox.Expunge(ctx, s.mailboxID, set, true); err != nil {
		return s.fail("expunge", err)
	}
	if !closing {
		s.applyOwn(ctx, v, nil)
	}
	return nil
}
