package mailbox

import (
	"context"
	"time"
)

// RunIndexer builds the full-text index of stored messages in the background
// until ctx ends. Indexing is deferred from delivery (it is the largest cost of
// storing a message) and yields to it: while this process is committing mail it
// waits, unless mail has kept it waiting for maxLag. Searches never depend on it:
// they index what their mailbox still lacks first.
func (s *Service) RunIndexer(ctx context.Context) {
	const (
		tick   = 250 * time.Millisecond
		quiet  = 250 * time.Millisecond // no delivery for this long: the store is idle
		maxLag = 30 * time.Second
		batch  = 200
	)
	t := time.NewTicker(tick)
	defer t.Stop()
	var waiting time.Time // since when indexing has waited for a busy store
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(s.store.LastDelivery()) < quiet {
			if waiting.IsZero() {
				waiting = time.Now()
			}
			if time.Since(waiting) < maxLag {
				continue
			}
		}
		waiting = time.Time{}
		for ctx.Err() == nil {
			n, err := s.store.IndexSearch(ctx, batch)
			if err != nil {
				if ctx.Err() == nil {
					s.opt.Logger.Warn("search indexer", "err", err)
				}
				break
			}
			if n < batch || time.Since(s.store.LastDelivery()) < quiet {
				break
			}
		}
	}
}
