package api

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLimiterForgetsIdleClients: buckets of clients gone for the idle period go
// away without any threshold of entries being reached, while recent ones stay.
func TestLimiterForgetsIdleClients(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newLimiter(1, 1)
	l.now = clk.now
	if l.idle != limiterMinIdle {
		t.Fatalf("idle %v, want %v", l.idle, limiterMinIdle)
	}
	for i := range 5000 {
		if ok, _ := l.allow(fmt.Sprintf("192.0.2.%d", i)); !ok {
			t.Fatalf("first request of client %d refused", i)
		}
	}
	if n := l.size(); n != 5000 {
		t.Fatalf("%d buckets, want 5000", n)
	}
	// The limit holds: a second request at once is refused, with a wait.
	if ok, wait := l.allow("192.0.2.7"); ok || wait <= 0 || wait > time.Second {
		t.Fatalf("second request at once: ok=%v wait=%v", ok, wait)
	}

	// Within the idle period nothing is forgotten, whatever the calls.
	clk.add(l.idle - time.Second)
	for range 2 * limiterShards {
		l.allow("198.51.100.1")
	}
	if n := l.size(); n != 5001 {
		t.Fatalf("%d buckets before the idle period is over, want 5001", n)
	}
	// Past it, the old buckets are only the previous generation: still kept.
	clk.add(2 * time.Second)
	for range 2 * limiterShards {
		l.allow("198.51.100.1")
	}
	if n := l.size(); n != 5001 {
		t.Fatalf("%d buckets one period on, want 5001 (kept one more period)", n)
	}
	// One more period: every client idle that long is gone, in every shard,
	// though only one client comes by.
	clk.add(l.idle)
	for range 2 * limiterShards {
		l.allow("198.51.100.1")
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets after two idle periods, want only the active client's", n)
	}
	// A long quiet: the next calls drop everything but the caller.
	clk.add(24 * time.Hour)
	for range limiterShards {
		l.allow("203.0.113.9")
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets after a quiet day, want 1", n)
	}
}

// TestLimiterForgettingChangesNoAnswer: against a limiter that never forgets,
// the answers (allowed, and how long to wait) are the same on any sequence of
// clients and pauses, short or longer than the idle period.
func TestLimiterForgettingChangesNoAnswer(t *testing.T) {
	for _, c := range []struct{ perSecond float64 }{{100}, {0.5}, {1.0 / 60}, {1.0 / 3600}} {
		burst := int(2*c.perSecond) + 1
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		l := newLimiter(c.perSecond, burst)
		l.now = clk.now
		ref := map[string]*rate.Limiter{}
		rnd := rand.New(rand.NewPCG(1, uint64(c.perSecond*1e6)))
		pauses := []time.Duration{0, time.Millisecond, time.Second, time.Minute, l.idle / 2, l.idle, l.idle + time.Second, 3 * l.idle}
		for i := range 20000 {
			if rnd.IntN(10) == 0 {
				clk.add(pauses[rnd.IntN(len(pauses))])
			}
			key := fmt.Sprint("client", rnd.IntN(40))
			now := clk.now()
			b := ref[key]
			if b == nil {
				b = rate.NewLimiter(rate.Limit(c.perSecond), burst)
				ref[key] = b
			}
			wantOK, wantWait := true, time.Duration(0)
			if r := b.ReserveN(now, 1); r.DelayFrom(now) > 0 {
				wantOK, wantWait = false, r.DelayFrom(now)
				r.CancelAt(now)
			}
			ok, wait := l.allow(key)
			if ok != wantOK || wait != wantWait {
				t.Fatalf("rate %v, call %d (%s): allow = %v, %v; a limiter that never forgets says %v, %v",
					c.perSecond, i, key, ok, wait, wantOK, wantWait)
			}
		}
		if n := l.size(); n > 40 {
			t.Fatalf("%d buckets for 40 clients", n)
		}
	}
}

// TestLimiterSlowRefillKeepsBucketsLonger: a bucket is never forgotten before it
// would be full again, so forgetting changes no answer.
func TestLimiterSlowRefillKeepsBucketsLonger(t *testing.T) {
	l := newLimiter(1.0/3600, 30) // 30 logins, then one an hour: 30 h to refill
	if want := 30 * time.Hour; l.idle < want {
		t.Fatalf("idle %v, shorter than the refill time %v", l.idle, want)
	}
}

// TestLimiterConcurrent runs many clients at once (for -race).
func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter(1000, 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				l.allow(fmt.Sprintf("10.%d.%d.%d", g, i/256, i%256))
			}
		})
	}
	wg.Wait()
	if n := l.size(); n != 8*2000 {
		t.Fatalf("%d buckets, want %d", n, 8*2000)
	}
}
