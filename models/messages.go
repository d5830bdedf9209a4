package models

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Flags are a message's IMAP flags: the system flags and keywords.
type Flags struct {
	Seen, Answered, Flagged, Deleted, Draft bool
	Keywords                                []string
}

// FlagsOf returns a message's flags.
func FlagsOf(m *Message) Flags {
	f := Flags{Seen: m.Seen, Answered: m.Answered, Flagged: m.Flagged, Deleted: m.Deleted, Draft: m.Draft}
	if m.Keywords != "" {
		f.Keywords = strings.Fields(m.Keywords)
	}
	return f
}

func (f Flags) keywords() string { return strings.Join(f.Keywords, " ") }

// FlagOp says how SetFlags combines the given flags with the present ones.
type FlagOp int

const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// Apply returns f changed by op with g.
func (f Flags) Apply(op FlagOp, g Flags) Flags {
	switch op {
	case FlagsReplace:
		g.Keywords = dedupKeywords(g.Keywords)
		return g
	case FlagsAdd:
		f.Seen = f.Seen || g.Seen
		f.Answered = f.Answered || g.Answered
		f.Flagged = f.Flagged || g.Flagged
		f.Deleted = f.Deleted || g.Deleted
		f.Draft = f.Draft || g.Draft
		f.Keywords = dedupKeywords(append(append([]string(nil), f.Keywords...), g.Keywords...))
	case FlagsRemove:
		f.Seen = f.Seen && !g.Seen
		f.Answered = f.Answered && !g.Answered
		f.Flagged = f.Flagged && !g.Flagged
		f.Deleted = f.Deleted && !g.Deleted
		f.Draft = f.Draft && !g.Draft
		drop := foldSet(g.Keywords)
		var kept []string
		for _, k := range f.Keywords {
			if !drop[strings.ToLower(k)] {
				kept = append(kept, k)
			}
		}
		f.Keywords = kept
	}
	return f
}

// Equal reports whether two flag sets are the same (keywords compare without case).
func (f Flags) Equal(g Flags) bool {
	if f.Seen != g.Seen || f.Answered != g.Answered || f.Flagged != g.Flagged || f.Deleted != g.Deleted || f.Draft != g.Draft || len(f.Keywords) != len(g.Keywords) {
		return false
	}
	have := foldSet(g.Keywords)
	for _, k := range f.Keywords {
		if !have[strings.ToLower(k)] {
			return false
		}
	}
	return true
}

// Bounds on keywords: each is stored in the message's row, and every change
// rewrites them all.
const (
	MaxKeywords   = 50  // per message
	MaxKeywordLen = 100 // bytes
)

// CheckKeywords refuses more keywords than a message may have, or one too long.
func (f Flags) CheckKeywords() error {
	if len(f.Keywords) > MaxKeywords && len(dedupKeywords(f.Keywords)) > MaxKeywords {
		return Invalid("keywords", fmt.Sprintf("at most %d per message", MaxKeywords))
	}
	for _, k := range f.Keywords {
		if len(k) > MaxKeywordLen {
			return Invalid("keywords", fmt.Sprintf("a keyword has at most %d bytes", MaxKeywordLen))
		}
	}
	return nil
}

// dedupKeywords drops repeated keywords (IMAP keywords are case-insensitive) and
// sorts them, keeping the case they were first given in.
func dedupKeywords(ks []string) []string {
	var out []string
	seen := make(map[string]bool, len(ks))
	for _, k := range ks {
		if lk := strings.ToLower(k); k != "" && !seen[lk] {
			seen[lk] = true
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

// foldSet is a set of keywords, by lower case.
func foldSet(ks []string) map[string]bool {
	set := make(map[string]bool, len(ks))
	for _, k := range ks {
		set[strings.ToLower(k)] = true
	}
	return set
}

// MessageMeta is what the listing columns cache about a message's content.
type MessageMeta struct {
	Subject        string
	FromAddr       string
	ToAddrs        string
	CcAddrs        string
	SentAt         *time.Time
	MessageID      string
	HasAttachments bool
	Preview        string
}

// AppendTarget is one mailbox to put a message in.
type AppendTarget struct {
	MailboxID    int64
	UserID       int64
	Flags        Flags
	InternalDate time.Time
	// SkipQuota lets a message in even over the owner's quota (a bounce must
	// not be lost to a full mailbox).
	SkipQuota bool
	// Required makes the whole delivery fail with ErrQuota, storing and
	// queueing nothing, when this target is over quota (the sender's own copy
	// in Sent: a send that cannot keep it does not happen).
	Required bool
}

// AppendResult is the outcome for one target: the stored message, or Err
// (ErrQuota wrapped, or ErrNotFound when the mailbox went away).
type AppendResult struct {
	Message *Message
	Err     error
}

// AppendMessages puts content (already stored with PutContent) into each target
// mailbox, allocating UIDs and a modification sequence under the mailbox's lock.
// A target over its owner's quota gets ErrQuota and the others still get the
// message. It must run inside a transaction; notices go out on commit.
func (s *Store) AppendMessages(ctx context.Context, contentID, size int64, meta MessageMeta, targets []AppendTarget) ([]AppendResult, error) {
	if !s.InTx() {
		return nil, errors.New("AppendMessages must run inside a transaction")
	}
	// The same path as a delivery of already stored content.
	ds := []*Delivery{{Contents: []ContentPut{{Content: Content{ID: contentID, Size: size}}},
		Appends: []AppendSpec{{Content: 0, Meta: meta, Targets: targets}}}}
	results, errs := make([]*DeliveryResult, 1), make([]error, 1)
	if err := s.checkQuotas(ctx, ds, results, errs); err != nil {
		return nil, err
	}
	topics := map[string]bool{}
	if err := s.appendAll(ctx, ds, results, errs, [][]int64{{contentID}}, topics); err != nil {
		return nil, err
	}
	if err := s.notifySet(ctx, topics); err != nil {
		return nil, err
	}
	return results[0].Appends[0], nil
}

// overQuota tells which of the targets' owners would go over quota with size more bytes.
func (s *Store) overQuota(ctx context.Context, size int64, targets []AppendTarget) (map[int64]bool, error) {
	var ids []int64
	seen := map[int64]bool{}
	for _, t := range targets {
		if !t.SkipQuota && !seen[t.UserID] {
			seen[t.UserID] = true
			ids = append(ids, t.UserID)
		}
	}
	over := map[int64]bool{}
	if len(ids) == 0 {
		return over, nil
	}
	var rows []struct {
		ID         int64
		QuotaBytes int64
		Used       int64
	}
	err := s.scan(ctx, &rows, `SELECT u.id, u.quota_bytes, coalesce((SELECT sum(size_bytes) FROM mailboxes WHERE user_id = u.id), 0) AS used
		FROM users u WHERE u.id IN ? AND u.quota_bytes > 0`, ids)
	if err != nil {
		return nil, fmt.Errorf("check quota: %w", translate(err))
	}
	for _, r := range rows {
		if r.Used+size > r.QuotaBytes {
			over[r.ID] = true
		}
	}
	return over, nil
}

// lockMailbox takes the mailbox's lock for the rest of the transaction and
// allocates the next modification sequence.
func (s *Store) lockMailbox(ctx context.Context, mailboxID int64) (int64, error) {
	var modseq []int64
	err := s.scan(ctx, &modseq, `UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq`, mailboxID)
	if err != nil {
		return 0, fmt.Errorf("lock mailbox %d: %w", mailboxID, translate(err))
	}
	if len(modseq) == 0 {
		return 0, notFound(fmt.Sprintf("mailbox %d", mailboxID))
	}
	return modseq[0], nil
}

// lockMailboxes takes the locks of several mailboxes for the rest of the
// transaction, in id order like every transaction that locks more than one.
// SQLite has one writer at a time and needs none.
func (s *Store) lockMailboxes(ctx context.Context, ids ...int64) error {
	if s.shared.dialect != Postgres {
		return nil
	}
	var locked []int64
	if err := s.scan(ctx, &locked, `SELECT id FROM mailboxes WHERE id IN ? ORDER BY id FOR UPDATE`, ids); err != nil {
		return fmt.Errorf("lock mailboxes %v: %w", ids, translate(err))
	}
	return nil
}

// FlagChange is a message whose flags changed.
type FlagChange struct {
	ID     int64
	UID    uint32
	ModSeq int64
	Flags  Flags
	// OldModSeq is the message's modification sequence before SetFlags
	// changed it (0 elsewhere): a session that was told of every change up
	// to it knows that only its own change came after.
	OldModSeq int64
}

// SetFlags changes the flags of the messages of a mailbox with UIDs in uids and
// returns those that changed, in UID order. Messages whose flags would not change
// keep their modification sequence.
func (s *Store) SetFlags(ctx context.Context, mailboxID int64, uids UIDSet, op FlagOp, flags Flags) ([]FlagChange, error) {
	if err := flags.CheckKeywords(); err != nil {
		return nil, err
	}
	var changed []FlagChange
	err := s.Tx(ctx, func(tx *Store) error {
		changed = changed[:0]
		modseq, err := tx.lockMailbox(ctx, mailboxID)
		if err != nil {
			return err
		}
		groups := map[string][]int64{}
		newFlags := map[string]Flags{}
		unseenDelta := 0
		for _, b := range uids.batches() {
			cond, args := b.sql("uid")
			var ms []Message
			err := tx.conn(ctx).Select("id", "uid", "modseq", "seen", "answered", "flagged", "deleted", "draft", "keywords").
				Where("mailbox_id = ? AND "+cond, append([]any{mailboxID}, args...)...).Order("uid").Find(&ms).Error
			if err != nil {
				return fmt.Errorf("read flags in mailbox %d: %w", mailboxID, translate(err))
			}
			for i := range ms {
				old := FlagsOf(&ms[i])
				nf := old.Apply(op, flags)
				if nf.Equal(old) {
					continue
				}
				if len(nf.Keywords) > MaxKeywords {
					return Invalid("keywords", fmt.Sprintf("at most %d per message", MaxKeywords))
				}
				if old.Seen != nf.Seen {
					if nf.Seen {
						unseenDelta--
					} else {
						unseenDelta++
					}
				}
				key := fmt.Sprint(nf.Seen, nf.Answered, nf.Flagged, nf.Deleted, nf.Draft, nf.keywords())
				groups[key] = append(groups[key], ms[i].ID)
				newFlags[key] = nf
				changed = append(changed, FlagChange{ID: ms[i].ID, UID: ms[i].UID, ModSeq: modseq, Flags: nf, OldModSeq: ms[i].ModSeq})
			}
		}
		for key, ids := range groups {
			f := newFlags[key]
			for len(ids) > 0 {
				n := min(len(ids), 500)
				err := tx.conn(ctx).Exec(`UPDATE messages SET seen = ?, answered = ?, flagged = ?, deleted = ?, draft = ?, keywords = ?, modseq = ? WHERE id IN ?`,
					f.Seen, f.Answered, f.Flagged, f.Deleted, f.Draft, f.keywords(), modseq, ids[:n]).Error
				if err != nil {
					return fmt.Errorf("update flags in mailbox %d: %w", mailboxID, translate(err))
				}
				ids = ids[n:]
			}
		}
		if unseenDelta != 0 {
			if err := tx.conn(ctx).Exec(`UPDATE mailboxes SET unseen_count = unseen_count + ? WHERE id = ?`, unseenDelta, mailboxID).Error; err != nil {
				return fmt.Errorf("count unseen in mailbox %d: %w", mailboxID, translate(err))
			}
		}
		if len(changed) == 0 {
			return nil
		}
		return tx.Notify(ctx, MailboxTopic(mailboxID))
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// Expunge removes the messages of a mailbox with UIDs in uids (only those
// flagged \Deleted when onlyDeleted) and returns the removed UIDs in order.
func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids UIDSet, onlyDeleted bool) ([]uint32, error) {
	var gone []uint32
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		gone, err = tx.expungeTx(ctx, mailboxID, uids, onlyDeleted)
		return err
	})
	return gone, err
}

func (s *Store) expungeTx(ctx context.Context, mailboxID int64, uids UIDSet, onlyDeleted bool) ([]uint32, error) {
	modseq, err := s.lockMailbox(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	var gone []uint32
	var count, unseen, size int64
	for _, b := range uids.batches() {
		cond, args := b.sql("uid")
		where := "mailbox_id = ? AND " + cond
		if onlyDeleted {
			where += " AND deleted = ?"
			args = append(args, true)
		}
		var rows []struct {
			UID  uint32
			Seen bool
			Size int64
		}
		err := s.scan(ctx, &rows, `DELETE FROM messages WHERE `+where+` RETURNING uid, seen, size`, append([]any{mailboxID}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("expunge from mailbox %d: %w", mailboxID, translate(err))
		}
		for _, r := range rows {
			gone = append(gone, r.UID)
			count++
			size += r.Size
			if !r.Seen {
				unseen++
			}
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
	err = s.conn(ctx).Exec(`UPDATE mailboxes SET messages_count = messages_count - ?, unseen_count = unseen_count - ?, size_bytes = size_bytes - ? WHERE id = ?`,
		count, unseen, size, mailboxID).Error
	if err != nil {
		return nil, fmt.Errorf("count mailbox %d: %w", mailboxID, translate(err))
	}
	for i := 0; i < len(gone); i += 300 {
		part := gone[i:min(i+300, len(gone))]
		args := make([]any, 0, 3*len(part))
		for _, u := range part {
			args = append(args, mailboxID, int64(u), modseq)
		}
		if err := s.conn(ctx).Exec(`INSERT INTO expunged (mailbox_id, uid, modseq) VALUES `+valueRows(len(part), 3), args...).Error; err != nil {
			return nil, fmt.Errorf("record expunged in mailbox %d: %w", mailboxID, translate(err))
		}
	}
	return gone, s.Notify(ctx, MailboxTopic(mailboxID))
}

// CopyResult maps source UIDs to the UIDs of their copies (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32
	SourceUIDs  []uint32
	DestUIDs    []uint32
	Messages    []*Message
}

// CopyMessages copies messages with UIDs in uids from one mailbox to another of
// the same user, keeping flags and internal dates. The copies share the content.
func (s *Store) CopyMessages(ctx context.Context, fromID int64, uids UIDSet, toID int64) (*CopyResult, error) {
	var res *CopyResult
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		res, err = tx.copyTx(ctx, fromID, uids, toID)
		return err
	})
	return res, err
}

// MoveMessages moves messages between mailboxes of the same user (RFC 6851).
func (s *Store) MoveMessages(ctx context.Context, fromID int64, uids UIDSet, toID int64) (*CopyResult, error) {
	var res *CopyResult
	err := s.Tx(ctx, func(tx *Store) error {
		// Both mailboxes are locked, in id order, before anything is read:
		// copyTx would lock the destination and expungeTx then the source,
		// so that two MOVEs in opposite directions deadlocked; and the
		// source messages read next can no longer be moved or expunged by
		// another transaction before this one removes them.
		if err := tx.lockMailboxes(ctx, fromID, toID); err != nil {
			return err
		}
		var err error
		res, err = tx.copyTx(ctx, fromID, uids, toID)
		if err != nil || len(res.SourceUIDs) == 0 {
			return err
		}
		_, err = tx.expungeTx(ctx, fromID, UIDs(res.SourceUIDs...), false)
		return err
	})
	return res, err
}

func (s *Store) copyTx(ctx context.Context, fromID int64, uids UIDSet, toID int64) (*CopyResult, error) {
	dest, err := s.MailboxByID(ctx, toID)
	if err != nil {
		return nil, err
	}
	var src []Message
	for _, b := range uids.batches() {
		cond, args := b.sql("uid")
		var part []Message
		if err := s.conn(ctx).Where("mailbox_id = ? AND "+cond, append([]any{fromID}, args...)...).Order("uid").Find(&part).Error; err != nil {
			return nil, fmt.Errorf("read messages of mailbox %d: %w", fromID, translate(err))
		}
		src = append(src, part...)
	}
	sort.Slice(src, func(i, j int) bool { return src[i].UID < src[j].UID })
	res := &CopyResult{UIDValidity: dest.UIDValidity}
	if len(src) == 0 {
		return res, nil
	}
	var total, unseen int64
	for _, m := range src {
		total += m.Size
		if !m.Seen {
			unseen++
		}
	}
	if fromID != toID {
		over, err := s.overQuota(ctx, total, []AppendTarget{{UserID: dest.UserID}})
		if err != nil {
			return nil, err
		}
		if over[dest.UserID] {
			return nil, fmt.Errorf("copy %d messages: %w", len(src), ErrQuota)
		}
	}
	var alloc struct {
		UIDNext       int64
		HighestModseq int64
	}
	n := int64(len(src))
	err = s.scan(ctx, &alloc, `UPDATE mailboxes SET uid_next = uid_next + ?, highest_modseq = highest_modseq + 1,
		messages_count = messages_count + ?, unseen_count = unseen_count + ?, size_bytes = size_bytes + ?
		WHERE id = ? RETURNING uid_next, highest_modseq`, n, n, unseen, total, toID)
	if err != nil {
		return nil, fmt.Errorf("allocate %d uids in mailbox %d: %w", n, toID, translate(err))
	}
	first := uint32(alloc.UIDNext - n)
	for i := range src {
		m := src[i]
		res.SourceUIDs = append(res.SourceUIDs, m.UID)
		m.ID = 0
		m.PublicID = NewID()
		m.MailboxID = toID
		m.UserID = dest.UserID
		m.UID = first + uint32(i)
		m.ModSeq = alloc.HighestModseq
		res.DestUIDs = append(res.DestUIDs, m.UID)
		res.Messages = append(res.Messages, &m)
	}
	if err := s.conn(ctx).CreateInBatches(res.Messages, 100).Error; err != nil {
		return nil, fmt.Errorf("insert %d copies: %w", len(res.Messages), translate(err))
	}
	return res, s.Notify(ctx, MailboxTopic(toID))
}

// MessageByUID finds one message of a mailbox.
func (s *Store) MessageByUID(ctx context.Context, mailboxID int64, uid uint32) (*Message, error) {
	var m Message
	if err := s.conn(ctx).Where("mailbox_id = ? AND uid = ?", mailboxID, uid).Take(&m).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound(fmt.Sprintf("message %d", uid))
		}
		return nil, fmt.Errorf("get message %d of mailbox %d: %w", uid, mailboxID, err)
	}
	return &m, nil
}

// MessageByPublicID finds a user's message by its public id. Another user's
// message is not found, exactly like one that does not exist.
func (s *Store) MessageByPublicID(ctx context.Context, userID int64, publicID string) (*Message, error) {
	if !ValidID(publicID) {
		return nil, notFound("message " + publicID)
	}
	var m Message
	if err := s.conn(ctx).Where("public_id = ? AND user_id = ?", publicID, userID).Take(&m).Error; err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("message " + publicID)
		}
		return nil, fmt.Errorf("get message %s: %w", publicID, err)
	}
	return &m, nil
}

// MessagesByUID lists the messages of a mailbox with UIDs in uids, in UID order,
// calling fn for each row without holding them all in memory.
func (s *Store) MessagesByUID(ctx context.Context, mailboxID int64, uids UIDSet, fn func(*Message) error) error {
	for _, b := range uids.batches() {
		cond, args := b.sql("uid")
		rows, err := s.conn(ctx).Model(&Message{}).Where("mailbox_id = ? AND "+cond, append([]any{mailboxID}, args...)...).Order("uid").Rows()
		if err != nil {
			return fmt.Errorf("list messages of mailbox %d: %w", mailboxID, translate(err))
		}
		for rows.Next() {
			var m Message
			if err := s.db.ScanRows(rows, &m); err != nil {
				rows.Close()
				return fmt.Errorf("scan message: %w", translate(err))
			}
			if err := fn(&m); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("list messages of mailbox %d: %w", mailboxID, translate(err))
		}
	}
	return nil
}

// Changes is what happened in a mailbox after a modification sequence.
type Changes struct {
	HighestModSeq int64
	UIDNext       uint32
	Updated       []FlagChange // appended or re-flagged, in UID order
	Expunged      []uint32     // in UID order
}

// ChangesSince reports the changes of a mailbox after modseq, up to the highest
// modification sequence committed when it was called.
func (s *Store) ChangesSince(ctx context.Context, mailboxID int64, modseq int64) (*Changes, error) {
	mb, err := s.MailboxByID(ctx, mailboxID)
	if err != nil {
		return nil, err
	}
	c := &Changes{HighestModSeq: mb.HighestModSeq, UIDNext: mb.UIDNext}
	if mb.HighestModSeq <= modseq {
		return c, nil
	}
	var ms []Message
	err = s.conn(ctx).Select("id", "uid", "modseq", "seen", "answered", "flagged", "deleted", "draft", "keywords").
		Where("mailbox_id = ? AND modseq > ? AND modseq <= ?", mailboxID, modseq, mb.HighestModSeq).Order("uid").Find(&ms).Error
	if err != nil {
		return nil, fmt.Errorf("changed messages of mailbox %d: %w", mailboxID, translate(err))
	}
	for i := range ms {
		c.Updated = append(c.Updated, FlagChange{ID: ms[i].ID, UID: ms[i].UID, ModSeq: ms[i].ModSeq, Flags: FlagsOf(&ms[i])})
	}
	err = s.scan(ctx, &c.Expunged, `SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? AND modseq <= ? ORDER BY uid`,
		mailboxID, modseq, mb.HighestModSeq)
	if err != nil {
		return nil, fmt.Errorf("expunged messages of mailbox %d: %w", mailboxID, translate(err))
	}
	return c, nil
}

// UIDRanges returns the UIDs present in a mailbox as ascending ranges, computed
// in the database so that a large mailbox costs a few rows, not one per message,
// and the highest modification sequence committed before they were read. Changes
// after it may or may not be in the ranges already: replaying ChangesSince from
// that modseq must therefore treat known appends and unknown expunges as no-ops.
func (s *Store) UIDRanges(ctx context.Context, mailboxID int64) (UIDSet, int64, error) {
	var modseq int64
	if err := s.scan(ctx, &modseq, `SELECT highest_modseq FROM mailboxes WHERE id = ?`, mailboxID); err != nil {
		return nil, 0, fmt.Errorf("read mailbox %d: %w", mailboxID, translate(err))
	}
	var rows []struct{ Lo, Hi int64 }
	err := s.scan(ctx, &rows, `SELECT min(uid) AS lo, max(uid) AS hi FROM (
			SELECT uid, uid - row_number() OVER (ORDER BY uid) AS grp FROM messages WHERE mailbox_id = ?
		) t GROUP BY grp ORDER BY lo`, mailboxID)
	if err != nil {
		return nil, 0, fmt.Errorf("uid ranges of mailbox %d: %w", mailboxID, translate(err))
	}
	set := make(UIDSet, len(rows))
	for i, r := range rows {
		set[i] = UIDRange{uint32(r.Lo), uint32(r.Hi)}
	}
	return set, modseq, nil
}
