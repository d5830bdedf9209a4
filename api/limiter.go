package api

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// limiterShards is how many independently locked parts a limiter's buckets are
// kept in, so that clients rarely wait on each other.
const limiterShards = 16

// limiter keeps one token bucket per client IP.
//
// Buckets are forgotten once idle for a while, so that memory holds the clients
// of the last few minutes, not every client ever seen. Each shard keeps two
// generations of buckets: a bucket used goes to (or stays in) the current one,
// and once per idle period the shard drops its previous generation and the
// current one becomes the previous. That costs O(1), under the shard's lock
// only, whatever the number of clients; a bucket is dropped after at least idle
// and at most twice idle without use.
type limiter struct {
	every rate.Limit
	burst int
	// idle is how long a bucket must go unused before it may be forgotten. It is
	// never shorter than the time an empty bucket takes to fill up again, so a
	// client whose bucket was forgotten gets exactly the full bucket it would
	// have had.
	idle   time.Duration
	now    func() time.Time // time.Now; tests move it
	seed   maphash.Seed
	next   atomic.Uint32 // the shard the next call ages besides its own
	shards [limiterShards]limiterShard
}

type limiterShard struct {
	mu        sync.Mutex
	cur, prev map[string]*rate.Limiter
	rotated   time.Time // when cur was started
}

// limiterMinIdle is the least time a bucket is kept after its last use.
const limiterMinIdle = 10 * time.Minute

func newLimiter(perSecond float64, burst int) *limiter {
	l := &limiter{every: rate.Limit(perSecond), burst: burst, idle: limiterMinIdle, now: time.Now, seed: maphash.MakeSeed()}
	if perSecond > 0 {
		l.idle = max(l.idle, time.Duration(float64(burst)/perSecond*float64(time.Second)))
	}
	return l
}

// allow reports whether the client may go on, or how long it should wait.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	// Age one other shard per call (if nobody holds it), so that shards no
	// client of late falls into still let their old buckets go.
	if o := &l.shards[l.next.Add(1)%limiterShards]; o.mu.TryLock() {
		o.age(now, l.idle)
		o.mu.Unlock()
	}
	s := &l.shards[maphash.String(l.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.age(now, l.idle)
	b := s.cur[key]
	if b == nil {
		if b = s.prev[key]; b != nil {
			delete(s.prev, key)
		} else {
			b = rate.NewLimiter(l.every, l.burst)
		}
		s.cur[key] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// age starts a new generation once the current one is idle old, dropping the
// previous one, whose buckets have gone unused for at least idle. Every bucket
// in cur was used at or after rotated; every bucket in prev before it.
func (s *limiterShard) age(now time.Time, idle time.Duration) {
	switch since := now.Sub(s.rotated); {
	case s.cur == nil || since >= 2*idle:
		// No use for two periods (or never used): nothing is recent.
		s.cur, s.prev, s.rotated = map[string]*rate.Limiter{}, nil, now
	case since >= idle:
		s.cur, s.prev, s.rotated = map[string]*rate.Limiter{}, s.cur, now
	}
}

// size is how many buckets the limiter holds.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}
