package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/delivery"
)

// run makes one attempt at a job and records what came of it.
func (q *Queue) run(base context.Context, j *job, finished chan<- models.Leased) {
	ctx, cancel := context.WithDeadline(base, j.deadline)
	outs := q.attempt(ctx, j)
	cancel()
	// The record must be written even when the attempt was cut off.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(base), 30*time.Second)
	defer fcancel()
	q.finish(fctx, j, outs, finished)
}

// bounced is an entry that failed for good, with why.
type bounced struct {
	entry   models.QueueEntry
	f       *failure
	expired bool
}

// finish removes delivered entries, schedules the next try of deferred ones
// and bounces the rest. Every write names the job's lease: an entry whose lease
// was lost, or that an administrator deleted meanwhile, is left alone.
func (q *Queue) finish(ctx context.Context, j *job, outs []*failure, finished chan<- models.Leased) {
	now := time.Now()
	var bounces []bounced
	for i, e := range j.entries {
		f := outs[i]
		log := q.log.With("entry", e.PublicID, "rcpt", e.Recipient, "attempt", e.Attempts)
		switch {
		case f == nil:
			q.attempts.WithLabelValues("sent").Inc()
			finished <- models.Leased{ID: e.ID, Owner: j.lease}
			log.Info("delivered", "domain", e.Domain)
		case f.perm:
			q.attempts.WithLabelValues("bounced").Inc()
			bounces = append(bounces, bounced{entry: e, f: f})
			log.Info("failed permanently", "err", f.Error())
		case !now.Before(e.ExpiresAt):
			q.attempts.WithLabelValues("bounced").Inc()
			bounces = append(bounces, bounced{entry: e, f: f, expired: true})
			log.Info("expired", "err", f.Error())
		default:
			q.attempts.WithLabelValues("deferred").Inc()
			next := now.Add(Backoff(e.Attempts, q.opt.BackoffBase, q.opt.BackoffMax))
			if next.After(e.ExpiresAt) {
				next = e.ExpiresAt // one last try when the entry expires
			}
			if _, err := q.store.DeferQueue(ctx, j.lease, e.ID, next, f.Error()); err != nil {
				// The lease runs out and the entry is retried then.
				log.Error("defer queue entry", "err", err)
			}
			log.Info("deferred", "err", f.Error(), "next", next)
		}
	}
	if len(bounces) > 0 {
		q.bounce(ctx, j, bounces)
	}
}

// bounce removes entries that failed for good and, in the same transaction,
// stores the DSN for the sender when the sender is local.
func (q *Queue) bounce(ctx context.Context, j *job, bs []bounced) {
	var hdr []byte
	if c, err := q.store.ContentLayout(ctx, j.contentID); err != nil {
		q.log.Warn("bounce without the original header", "content", j.contentID, "err", err)
	} else if hdr, err = delivery.ReadHeader(q.mbox.Open(ctx, c, 0), delivery.MaxDSNHeaderBytes); err != nil {
		q.log.Warn("bounce without the original header", "content", j.contentID, "err", err)
	}
	ids := make([]models.Leased, len(bs))
	for i, b := range bs {
		ids[i] = models.Leased{ID: b.entry.ID, Owner: j.lease}
	}
	var stored bool
	var n int
	err := q.store.Tx(ctx, func(tx *models.Store) error {
		gone, err := tx.FinishQueue(ctx, ids)
		if err != nil {
			return err
		}
		dsn := q.dsn(j, bs, gone, hdr)
		n = len(dsn.Recipients)
		stored, err = q.dlv.BounceTx(ctx, tx, dsn)
		return err
	})
	switch {
	case err != nil:
		// Nothing was removed: the entries are tried again when their lease ends.
		q.log.Error("bounce", "sender", j.sender, "recipients", len(bs), "err", err)
	case n > 0 && !stored && j.sender != "":
		q.log.Info("no bounce: the sender is not local", "sender", j.sender, "recipients", n)
	case stored:
		q.log.Info("bounced", "sender", j.sender, "recipients", n)
	}
}

func (q *Queue) dsn(j *job, bs []bounced, gone []int64, hdr []byte) *delivery.DSN {
	removed := make(map[int64]bool, len(gone))
	for _, id := range gone {
		removed[id] = true
	}
	dsn := &delivery.DSN{Sender: j.sender, EnvelopeID: j.envelopeID, Header: hdr}
	for _, b := range bs {
		if !removed[b.entry.ID] {
			continue
		}
		if dsn.ArrivalDate.IsZero() || b.entry.CreatedAt.Before(dsn.ArrivalDate) {
			dsn.ArrivalDate = b.entry.CreatedAt
		}
		reason := b.f.Error()
		if b.expired {
			reason = fmt.Sprintf("gave up after %s in the queue; last error: %s",
				b.entry.ExpiresAt.Sub(b.entry.CreatedAt).Round(time.Second), reason)
		}
		r := delivery.DSNRecipient{Address: b.entry.Recipient, Action: delivery.ActionFailed, Status: b.f.status,
			Diagnostic: b.f.diagnostic(), LastAttempt: time.Now(), Reason: reason}
		if b.f.reply != nil { // Remote-MTA names the server that answered, if one did
			r.RemoteMTA = b.f.remote
		}
		dsn.Recipients = append(dsn.Recipients, r)
	}
	return dsn
}
