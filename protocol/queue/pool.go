package queue

import (
	"context"
	"sync"
	"time"
)

// pool keeps sessions that finished a transaction cleanly, so that the next
// transaction to the same server skips the connection, greeting, EHLO, TLS
// handshake and AUTH (RFC 5321 §3.3: one session may carry many transactions).
// A session waits at most idleTime; before reuse a NOOP checks that the
// server has not dropped it meanwhile.
type pool struct {
	idleTime time.Duration
	max      int // idle sessions per server

	mu     sync.Mutex
	idle   map[target][]idleSession // guarded by mu
	closed bool                     // guarded by mu
}

type idleSession struct {
	s     *session
	since time.Time
}

func newPool(idleTime time.Duration, max int) *pool {
	return &pool{idleTime: idleTime, max: max, idle: map[target][]idleSession{}}
}

// key forgets how the session came to be (a TLS fallback), keeping where it goes.
func key(t target) target {
	t.noTLS = false
	return t
}

// get returns a live idle session to t, watching ctx, or nil.
func (p *pool) get(ctx context.Context, t target) *session {
	for {
		p.mu.Lock()
		list := p.idle[key(t)]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		is := list[len(list)-1]
		p.idle[key(t)] = list[:len(list)-1]
		p.mu.Unlock()
		if time.Since(is.since) > p.idleTime {
			is.s.quit()
			continue
		}
		is.s.watch(ctx)
		if err := is.s.c.Noop(); err != nil {
			is.s.close()
			continue
		}
		return is.s
	}
}

// put keeps a session after a clean transaction, or ends it when the pool is
// full or closed.
func (p *pool) put(t target, s *session) {
	s.unwatch()
	p.mu.Lock()
	if p.closed || p.idleTime <= 0 || len(p.idle[key(t)]) >= p.max {
		p.mu.Unlock()
		s.quit()
		return
	}
	p.idle[key(t)] = append(p.idle[key(t)], idleSession{s: s, since: time.Now()})
	p.mu.Unlock()
}

// sweep ends sessions idle too long; with all set, every session (shutdown).
func (p *pool) sweep(all bool) {
	var old []*session
	p.mu.Lock()
	for k, list := range p.idle {
		kept := list[:0]
		for _, is := range list {
			if all || time.Since(is.since) > p.idleTime {
				old = append(old, is.s)
			} else {
				kept = append(kept, is)
			}
		}
		if len(kept) == 0 {
			delete(p.idle, k)
		} else {
			p.idle[k] = kept
		}
	}
	p.closed = p.closed || all
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range old {
		wg.Go(s.quit)
	}
	wg.Wait()
}

// janitor sweeps the pool until ctx ends, then empties it.
func (p *pool) janitor(ctx context.Context) {
	defer p.sweep(true)
	if p.idleTime <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(p.idleTime)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.sweep(false)
		}
	}
}
