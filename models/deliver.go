package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// ContentPut is a message content to store unless content with the same digest
// is stored already. Content carries the digest, size and metadata; Body gives
// a fresh reader of the bytes each time it is called.
type ContentPut struct {
	Content Content
	Body    func() io.Reader
}

// AppendSpec puts one content of a Delivery into several mailboxes.
type AppendSpec struct {
	Content int // index into Delivery.Contents
	Meta    MessageMeta
	Targets []AppendTarget
}

// Delivery is everything the acknowledgement of one message depends on: its
// contents, the mailboxes that get it, the queue entries for remote recipients.
type Delivery struct {
	Contents []ContentPut
	Appends  []AppendSpec
	Queue    []QueueEntry // ContentID is filled from QueueContent
	// QueueContent is the index of the content the queue entries carry.
	QueueContent int
	// NeedOne makes the delivery fail with ErrQuota, storing nothing, when every
	// append target is over quota and there is nothing to queue.
	NeedOne bool
	// Finish, when set, runs in the delivery's transaction after its writes,
	// with the outcome; an error undoes the whole delivery.
	Finish func(ctx context.Context, tx *Store, r *DeliveryResult) error
}

// DeliveryResult is the outcome of one Delivery: for each AppendSpec, one
// result per target, in order.
type DeliveryResult struct {
	Appends [][]AppendResult
}

// maxBatch bounds one group commit: deliveries, and bytes of content held.
const (
	maxBatch      = 64
	maxBatchBytes = 8 << 20
)

// Deliver stores a delivery and returns only once it is committed (or failed).
//
// While Run runs, deliveries that arrive while an earlier batch is being
// committed are committed together, in one transaction with one multi-row
// statement per table, so that the cost per message of statements, round trips
// and commits falls as load rises (group commit). If a batch fails, each of its
// deliveries is tried again alone, so one bad message cannot fail the others.
//
// Before Run (CLI commands, tests) Deliver commits the delivery inline, as a
// batch of one. Once Run has begun shutting down, or after Close, it fails at
// once with an error wrapping ErrTemporary; so does a ctx that ends before the
// delivery is handed over. A delivery handed over is always committed or failed
// and answered, even if ctx ends or the store shuts down meanwhile.
func (s *Store) Deliver(ctx context.Context, d *Delivery) (*DeliveryResult, error) {
	for _, a := range d.Appends {
		for _, t := range a.Targets {
			if err := t.Flags.CheckKeywords(); err != nil {
				return nil, err
			}
		}
	}
	if s.shared.stopping.Load() {
		return nil, s.stoppedErr()
	}
	p := &pendingDelivery{ctx: ctx, d: d, done: make(chan struct{})}
	if err := s.handOver(ctx, p); err != nil {
		return nil, err
	}
	// Once handed over, the delivery may commit: wait for the outcome even if
	// ctx ends, so that a committed message is never reported as failed.
	<-p.done
	return p.res, p.err
}

// handOver gives p to the group committers, or commits it inline when Run is
// not running yet. It holds deliverMu shared throughout, so that shutdown,
// which takes it exclusively, knows no delivery is still being handed over or
// written after it.
func (s *Store) handOver(ctx context.Context, p *pendingDelivery) error {
	sh := s.shared
	sh.deliverMu.RLock()
	defer sh.deliverMu.RUnlock()
	switch sh.state {
	case stateRunning:
		// The committers keep taking from the channel until shutdown closes it,
		// which waits for this lock: a full channel only delays the send.
		select {
		case sh.deliveries <- p:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("deliver: %w: %v", ErrTemporary, ctx.Err())
		}
	case stateIdle:
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deliver: %w: %v", ErrTemporary, err)
		}
		s.commitBatch([]*pendingDelivery{p})
		return nil
	}
	return s.stoppedErr()
}

// stoppedErr is Deliver's answer once the store no longer takes deliveries.
func (s *Store) stoppedErr() error {
	select {
	case <-s.shared.closed:
		return fmt.Errorf("deliver: store closed: %w", ErrTemporary)
	default:
		return fmt.Errorf("deliver: store shutting down: %w", ErrTemporary)
	}
}

type pendingDelivery struct {
	ctx  context.Context
	d    *Delivery
	res  *DeliveryResult
	err  error
	done chan struct{}
}

// startCommitters starts the group committers (Run, under deliverMu).
func (s *Store) startCommitters() {
	n := 1 // SQLite has one writer anyway
	if s.shared.dialect == Postgres {
		n = 2 // one batch commits while the next one is built
	}
	for i := 0; i < n; i++ {
		s.shared.spawn(&s.shared.committers, s.commitLoop)
	}
}

// commitLoop commits batches until shutdown closes the channel and it is
// drained: a delivery handed over is never dropped.
func (s *Store) commitLoop() {
	for first := range s.shared.deliveries {
		batch := []*pendingDelivery{first}
		bytes := first.d.size()
	gather:
		for len(batch) < maxBatch && bytes < maxBatchBytes {
			select {
			case p, ok := <-s.shared.deliveries:
				if !ok {
					break gather
				}
				batch = append(batch, p)
				bytes += p.d.size()
			default:
				break gather
			}
		}
		s.commitBatch(batch)
	}
}

func (d *Delivery) size() int64 {
	var n int64
	for _, c := range d.Contents {
		n += min(c.Content.Size, ChunkSize)
	}
	return n
}

// commitBatch commits a batch, or each of its deliveries alone if it fails.
func (s *Store) commitBatch(batch []*pendingDelivery) {
	defer func() { s.shared.lastDelivery.Store(time.Now().UnixNano()) }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), 2*time.Minute)
	defer cancel()
	if len(batch) > 1 {
		ds := make([]*Delivery, len(batch))
		for i, p := range batch {
			ds[i] = p.d
		}
		res, errs, err := s.deliverTx(ctx, ds)
		if err == nil {
			for i, p := range batch {
				p.res, p.err = res[i], errs[i]
				close(p.done)
			}
			return
		}
	}
	for _, p := range batch {
		res, errs, err := s.deliverTx(ctx, []*Delivery{p.d})
		if err == nil {
			p.res, p.err = res[0], errs[0]
		} else {
			p.err = err
		}
		close(p.done)
	}
}

// deliverTx commits deliveries in one transaction. A delivery refused as a
// whole (NeedOne with every target over quota) gets its error in errs and
// writes nothing; any other failure fails the transaction.
func (s *Store) deliverTx(ctx context.Context, ds []*Delivery) ([]*DeliveryResult, []error, error) {
	var results []*DeliveryResult
	var errs []error
	err := s.Tx(ctx, func(tx *Store) error {
		var err error
		results, errs, err = tx.deliverLocked(ctx, ds)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("commit %d deliveries: %w", len(ds), err)
	}
	return results, errs, nil
}

func (s *Store) deliverLocked(ctx context.Context, ds []*Delivery) ([]*DeliveryResult, []error, error) {
	results := make([]*DeliveryResult, len(ds))
	errs := make([]error, len(ds))
	if err := s.checkQuotas(ctx, ds, results, errs); err != nil {
		return nil, nil, err
	}
	ids, err := s.putContents(ctx, ds, errs)
	if err != nil {
		return nil, nil, err
	}
	topics := map[string]bool{}
	if err := s.appendAll(ctx, ds, results, errs, ids, topics); err != nil {
		return nil, nil, err
	}
	var entries []QueueEntry
	for i, d := range ds {
		if errs[i] != nil {
			continue
		}
		for _, e := range d.Queue {
			e.ContentID = ids[i][d.QueueContent]
			entries = append(entries, e)
		}
	}
	if len(entries) > 0 {
		if err := s.insertQueue(ctx, entries); err != nil {
			return nil, nil, err
		}
		topics[QueueTopic] = true
	}
	for i, d := range ds {
		if errs[i] == nil && d.Finish != nil {
			if err := d.Finish(ctx, s, results[i]); err != nil {
				return nil, nil, err
			}
		}
	}
	return results, errs, s.notifySet(ctx, topics)
}

// checkQuotas fills in ErrQuota for targets whose owner would go over quota,
// counting earlier messages of the same batch, and refuses NeedOne deliveries
// left with nothing to store.
func (s *Store) checkQuotas(ctx context.Context, ds []*Delivery, results []*DeliveryResult, errs []error) error {
	var users []int64
	seen := map[int64]bool{}
	for _, d := range ds {
		for _, a := range d.Appends {
			for _, t := range a.Targets {
				if !t.SkipQuota && !seen[t.UserID] {
					seen[t.UserID] = true
					users = append(users, t.UserID)
				}
			}
		}
	}
	type room struct{ quota, used int64 }
	rooms := map[int64]*room{}
	if len(users) > 0 {
		var rows []struct {
			ID         int64
			QuotaBytes int64
			Used       int64
		}
		err := s.scan(ctx, &rows, `SELECT u.id, u.quota_bytes, coalesce((SELECT sum(size_bytes) FROM mailboxes WHERE user_id = u.id), 0) AS used
			FROM users u WHERE u.id IN ? AND u.quota_bytes > 0`, users)
		if err != nil {
			return fmt.Errorf("check quota: %w", translate(err))
		}
		for _, r := range rows {
			rooms[r.ID] = &room{quota: r.QuotaBytes, used: r.Used}
		}
	}
	type use struct {
		r    *room
		size int64
	}
	for i, d := range ds {
		res := &DeliveryResult{Appends: make([][]AppendResult, len(d.Appends))}
		results[i] = res
		stored := 0
		var used []use // what this delivery takes, given back if it fails whole
		for j, a := range d.Appends {
			res.Appends[j] = make([]AppendResult, len(a.Targets))
			size := d.Contents[a.Content].Content.Size
			for k, t := range a.Targets {
				if r := rooms[t.UserID]; r != nil && !t.SkipQuota {
					if r.used+size > r.quota {
						res.Appends[j][k].Err = fmt.Errorf("mailbox of user %d: %w", t.UserID, ErrQuota)
						if t.Required && errs[i] == nil {
							errs[i] = fmt.Errorf("required copy for user %d: %w", t.UserID, ErrQuota)
						}
						continue
					}
					r.used += size
					used = append(used, use{r, size})
				}
				stored++
			}
		}
		if d.NeedOne && stored == 0 && len(d.Queue) == 0 && errs[i] == nil {
			errs[i] = fmt.Errorf("every recipient: %w", ErrQuota)
		}
		if errs[i] != nil {
			for _, u := range used {
				u.r.used -= u.size
			}
		}
	}
	return nil
}

// putContents stores the contents the deliveries still need and returns their
// ids, by delivery and content index.
func (s *Store) putContents(ctx context.Context, ds []*Delivery, errs []error) ([][]int64, error) {
	ids := make([][]int64, len(ds))
	type need struct {
		put  *ContentPut
		refs [][2]int
	}
	bySum := map[string]*need{}
	var order []string
	for i, d := range ds {
		ids[i] = make([]int64, len(d.Contents))
		if errs[i] != nil {
			continue
		}
		for j := range d.Contents {
			key := string(d.Contents[j].Content.SHA256)
			n := bySum[key]
			if n == nil {
				n = &need{put: &d.Contents[j]}
				bySum[key] = n
				order = append(order, key)
			}
			n.refs = append(n.refs, [2]int{i, j})
		}
	}
	if len(order) == 0 {
		return ids, nil
	}
	now := time.Now().UTC()
	got := map[string]int64{}
	var fresh []string
	for start := 0; start < len(order); start += 200 {
		part := order[start:min(start+200, len(order))]
		args := make([]any, 0, 9*len(part))
		for _, key := range part {
			c := bySum[key].put.Content
			args = append(args, blob(c.SHA256), c.Size, ChunkSize, c.HeaderSize, c.Envelope, c.BodyStructure, c.HeaderText, c.SearchText, now)
		}
		var rows []struct {
			ID     int64
			SHA256 []byte `gorm:"column:sha256"`
		}
		err := s.scan(ctx, &rows, `INSERT INTO contents (sha256, size, chunk_size, header_size, envelope, body_structure, header_text, search_text, last_used_at)
			VALUES `+valueRows(len(part), 9)+` ON CONFLICT (sha256) DO NOTHING RETURNING id, sha256`, args...)
		if err != nil {
			return nil, fmt.Errorf("insert %d contents: %w", len(part), translate(err))
		}
		for _, r := range rows {
			got[string(r.SHA256)] = r.ID
			fresh = append(fresh, string(r.SHA256))
		}
	}
	var reused []any
	for _, key := range order {
		if _, ok := got[key]; !ok {
			reused = append(reused, blob(key))
		}
	}
	if len(reused) > 0 {
		// Already stored: mark them used, which also keeps the sweeper off them.
		var rows []struct {
			ID     int64
			SHA256 []byte `gorm:"column:sha256"`
		}
		err := s.scan(ctx, &rows, `UPDATE contents SET last_used_at = ? WHERE sha256 IN (`+marks(len(reused))+`) RETURNING id, sha256`,
			append([]any{now}, reused...)...)
		if err != nil {
			return nil, fmt.Errorf("reuse %d contents: %w", len(reused), translate(err))
		}
		for _, r := range rows {
			got[string(r.SHA256)] = r.ID
		}
		if len(rows) != len(reused) {
			return nil, fmt.Errorf("reuse contents: %d of %d went away: %w", len(reused)-len(rows), len(reused), ErrTemporary)
		}
	}
	if err := s.putChunks(ctx, fresh, got, func(key string) *ContentPut { return bySum[key].put }); err != nil {
		return nil, err
	}
	for _, key := range order {
		for _, ref := range bySum[key].refs {
			ids[ref[0]][ref[1]] = got[key]
		}
	}
	return ids, nil
}

// putChunks writes the bytes of newly inserted contents: contents of one chunk
// together in multi-row statements, larger ones a chunk at a time.
func (s *Store) putChunks(ctx context.Context, fresh []string, ids map[string]int64, put func(string) *ContentPut) error {
	var sb strings.Builder
	var args []any
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		err := s.conn(ctx).Exec(`INSERT INTO content_chunks (content_id, seq, data) VALUES `+sb.String(), args...).Error
		sb.Reset()
		args, rows = args[:0], 0
		if err != nil {
			return fmt.Errorf("insert content chunks: %w", translate(err))
		}
		return nil
	}
	for _, key := range fresh {
		p := put(key)
		if p.Content.Size > ChunkSize {
			if err := s.putBigChunks(ctx, ids[key], p); err != nil {
				return err
			}
			continue
		}
		data := make([]byte, p.Content.Size)
		if _, err := io.ReadFull(p.Body(), data); err != nil {
			return fmt.Errorf("read content of %d bytes: %w", p.Content.Size, err)
		}
		if len(data) == 0 {
			continue
		}
		if rows > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, 0, ?)")
		args = append(args, ids[key], blob(data))
		rows++
		if rows == 100 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (s *Store) putBigChunks(ctx context.Context, id int64, p *ContentPut) error {
	buf := make([]byte, ChunkSize)
	body := p.Body()
	var total int64
	for seq := 0; ; seq++ {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if e := s.conn(ctx).Exec(`INSERT INTO content_chunks (content_id, seq, data) VALUES (?, ?, ?)`, id, seq, blob(buf[:n])).Error; e != nil {
				return fmt.Errorf("insert content chunk %d: %w", seq, translate(e))
			}
			total += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read content: %w", err)
		}
	}
	if total != p.Content.Size {
		return fmt.Errorf("content is %d bytes, expected %d", total, p.Content.Size)
	}
	return nil
}

// appendAll allocates UIDs for every accepted target, per mailbox in one
// statement, and inserts the messages.
func (s *Store) appendAll(ctx context.Context, ds []*Delivery, results []*DeliveryResult, errs []error, ids [][]int64, topics map[string]bool) error {
	type slot struct{ d, a, t int }
	type box struct {
		n, unseen, size int64
		slots           []slot
	}
	boxes := map[int64]*box{}
	var order []int64
	for i, d := range ds {
		if errs[i] != nil {
			continue
		}
		for j, a := range d.Appends {
			size := d.Contents[a.Content].Content.Size
			for k, t := range a.Targets {
				if results[i].Appends[j][k].Err != nil {
					continue
				}
				b := boxes[t.MailboxID]
				if b == nil {
					b = &box{}
					boxes[t.MailboxID] = b
					order = append(order, t.MailboxID)
				}
				b.n++
				b.size += size
				if !t.Flags.Seen {
					b.unseen++
				}
				b.slots = append(b.slots, slot{i, j, k})
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	// Lock in id order, so concurrent batches cannot deadlock.
	sort.Slice(order, func(a, b int) bool { return order[a] < order[b] })
	if s.shared.dialect == Postgres {
		var locked []int64
		if err := s.scan(ctx, &locked, `SELECT id FROM mailboxes WHERE id IN ? ORDER BY id FOR UPDATE`, order); err != nil {
			return fmt.Errorf("lock %d mailboxes: %w", len(order), translate(err))
		}
	}
	type alloc struct {
		ID            int64
		UIDNext       int64
		HighestModseq int64
	}
	allocs := map[int64]alloc{}
	for start := 0; start < len(order); start += 200 {
		part := order[start:min(start+200, len(order))]
		var sb strings.Builder
		args := make([]any, 0, 4*len(part))
		for k, id := range part {
			if k > 0 {
				sb.WriteString(" UNION ALL ")
			}
			sb.WriteString("SELECT CAST(? AS BIGINT) AS id, CAST(? AS BIGINT) AS n, CAST(? AS BIGINT) AS u, CAST(? AS BIGINT) AS s")
			b := boxes[id]
			args = append(args, id, b.n, b.unseen, b.size)
		}
		var rows []alloc
		err := s.scan(ctx, &rows, `UPDATE mailboxes SET uid_next = mailboxes.uid_next + v.n, highest_modseq = mailboxes.highest_modseq + 1,
			messages_count = mailboxes.messages_count + v.n, unseen_count = mailboxes.unseen_count + v.u, size_bytes = mailboxes.size_bytes + v.s
			FROM (`+sb.String()+`) AS v WHERE mailboxes.id = v.id RETURNING mailboxes.id, mailboxes.uid_next, mailboxes.highest_modseq`, args...)
		if err != nil {
			return fmt.Errorf("allocate uids in %d mailboxes: %w", len(part), translate(err))
		}
		for _, r := range rows {
			allocs[r.ID] = r
		}
	}
	var msgs []*Message
	now := time.Now()
	for _, id := range order {
		b := boxes[id]
		al, ok := allocs[id]
		if !ok {
			for _, sl := range b.slots {
				results[sl.d].Appends[sl.a][sl.t].Err = notFound(fmt.Sprintf("mailbox %d", id))
			}
			continue
		}
		uid := uint32(al.UIDNext - b.n)
		for _, sl := range b.slots {
			d := ds[sl.d]
			a := d.Appends[sl.a]
			t := a.Targets[sl.t]
			date := t.InternalDate
			if date.IsZero() {
				date = now
			}
			m := &Message{PublicID: NewID(), UserID: t.UserID, MailboxID: id, ContentID: ids[sl.d][a.Content],
				UID: uid, ModSeq: al.HighestModseq, InternalDate: date.UTC().Truncate(time.Second), Size: d.Contents[a.Content].Content.Size,
				Seen: t.Flags.Seen, Answered: t.Flags.Answered, Flagged: t.Flags.Flagged, Deleted: t.Flags.Deleted, Draft: t.Flags.Draft,
				Keywords: strings.Join(dedupKeywords(t.Flags.Keywords), " "),
				Subject:  a.Meta.Subject, FromAddr: a.Meta.FromAddr, ToAddrs: a.Meta.ToAddrs, CcAddrs: a.Meta.CcAddrs, SentAt: a.Meta.SentAt,
				MessageID: a.Meta.MessageID, HasAttachments: a.Meta.HasAttachments, Preview: a.Meta.Preview}
			uid++
			msgs = append(msgs, m)
			results[sl.d].Appends[sl.a][sl.t].Message = m
		}
		topics[MailboxTopic(id)] = true
	}
	return s.insertMessages(ctx, msgs)
}

// messageColumns are the columns insertMessages writes, in order.
const messageColumns = "public_id, user_id, mailbox_id, content_id, uid, modseq, internal_date, size, seen, answered, flagged, deleted, draft, keywords, subject, from_addr, to_addrs, cc_addrs, sent_at, message_id, has_attachments, preview"

// insertMessages inserts rows with multi-row statements and fills in their ids.
func (s *Store) insertMessages(ctx context.Context, msgs []*Message) error {
	const per = 200
	for start := 0; start < len(msgs); start += per {
		part := msgs[start:min(start+per, len(msgs))]
		args := make([]any, 0, 22*len(part))
		for _, m := range part {
			args = append(args, m.PublicID, m.UserID, m.MailboxID, m.ContentID, int64(m.UID), m.ModSeq, m.InternalDate, m.Size,
				m.Seen, m.Answered, m.Flagged, m.Deleted, m.Draft, m.Keywords, m.Subject, m.FromAddr, m.ToAddrs, m.CcAddrs,
				m.SentAt, m.MessageID, m.HasAttachments, m.Preview)
		}
		var rows []struct {
			ID       int64
			PublicID string
		}
		err := s.scan(ctx, &rows, `INSERT INTO messages (`+messageColumns+`) VALUES `+valueRows(len(part), 22)+` RETURNING id, public_id`, args...)
		if err != nil {
			return fmt.Errorf("insert %d messages: %w", len(part), translate(err))
		}
		byPub := make(map[string]int64, len(rows))
		for _, r := range rows {
			byPub[r.PublicID] = r.ID
		}
		for _, m := range part {
			m.ID = byPub[m.PublicID]
		}
	}
	return nil
}

// insertQueue adds queue entries (their content stored already).
func (s *Store) insertQueue(ctx context.Context, entries []QueueEntry) error {
	now := time.Now().UTC()
	for i := range entries {
		e := &entries[i]
		if e.PublicID == "" {
			e.PublicID = NewID()
		}
		if e.Status == "" {
			e.Status = QueueQueued
		}
		if e.NextAttemptAt.IsZero() {
			e.NextAttemptAt = now
		}
		e.NextAttemptAt, e.ExpiresAt = e.NextAttemptAt.UTC(), e.ExpiresAt.UTC()
		e.CreatedAt, e.UpdatedAt = now, now
	}
	if err := s.conn(ctx).CreateInBatches(&entries, 200).Error; err != nil {
		return fmt.Errorf("enqueue %d entries: %w", len(entries), translate(err))
	}
	return nil
}
