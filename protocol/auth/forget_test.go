package auth

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestFailuresForgottenByAge: failures of clients gone quiet for forgetAfter go
// away by age, with no threshold of entries to reach, while recent ones count.
func TestFailuresForgottenByAge(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := New(nil, Options{FreeFailures: 3, MaxDelay: time.Second})
	a.now = func() time.Time { return now }
	for i := range 1000 {
		a.failed(fmt.Sprintf("192.0.2.%d:1234", i))
	}
	if n := a.tracked(); n != 1000 {
		t.Fatalf("tracking %d clients, want 1000", n)
	}
	now = now.Add(14 * time.Minute)
	for range 3 {
		a.failed("198.51.100.1")
	}
	if n := a.Failures("192.0.2.5"); n != 1 {
		t.Fatalf("a failure 14 minutes old counts %d, want 1", n)
	}
	// Past forgetAfter the first failures count for nothing; they are kept one
	// more period at most.
	now = now.Add(2 * time.Minute)
	if n := a.Failures("192.0.2.5"); n != 0 {
		t.Fatalf("a failure 16 minutes old counts %d, want 0", n)
	}
	// 198.51.100.1's failures, 2 minutes old, outlive the generation change
	// and still count: its next failure is delayed.
	if n := a.Failures("198.51.100.1"); n != 3 {
		t.Fatalf("recent failures count %d after a generation change, want 3", n)
	}
	if d := a.failed("198.51.100.1"); d != 250*time.Millisecond {
		t.Fatalf("4th failure delayed %v, want 250ms", d)
	}
	// One more period: the 1000 old clients are gone; one new failure from
	// anyone is enough to let them go.
	now = now.Add(forgetAfter)
	a.failed("203.0.113.1")
	if n := a.tracked(); n != 2 {
		t.Fatalf("tracking %d clients two periods on, want 2 (198.51.100.1 and 203.0.113.1)", n)
	}
	// Exactly forgetAfter after its last failure, a client's next failure
	// still adds to the old ones, as it always did.
	if d := a.failed("198.51.100.1"); d != 500*time.Millisecond {
		t.Fatalf("5th failure, forgetAfter after the 4th, delayed %v, want 500ms", d)
	}
	// A quiet hour: the next look forgets everything.
	now = now.Add(time.Hour)
	if n := a.Failures("203.0.113.1"); n != 0 {
		t.Fatalf("failures after a quiet hour: %d", n)
	}
	if n := a.tracked(); n != 0 {
		t.Fatalf("tracking %d clients after a quiet hour, want 0", n)
	}
}

// TestForgettingChangesNoAnswer: against a table that never forgets, the
// delays and counts are the same on any sequence of failures, successes and
// pauses, short or longer than forgetAfter.
func TestForgettingChangesNoAnswer(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := New(nil, Options{FreeFailures: 3, MaxDelay: 5 * time.Second})
	a.now = func() time.Time { return now }
	ref := map[string]*failure{}
	delay := func(n int) time.Duration {
		if over := n - 3; over > 0 {
			return min(250*time.Millisecond<<min(over-1, 10), 5*time.Second)
		}
		return 0
	}
	rnd := rand.New(rand.NewPCG(7, 7))
	pauses := []time.Duration{time.Second, time.Minute, 7 * time.Minute, forgetAfter - time.Second, forgetAfter, forgetAfter + time.Second, 2 * forgetAfter, time.Hour}
	for i := range 20000 {
		if rnd.IntN(8) == 0 {
			now = now.Add(pauses[rnd.IntN(len(pauses))])
		}
		ip := fmt.Sprint("192.0.2.", rnd.IntN(30))
		switch rnd.IntN(10) {
		case 0:
			a.succeeded(ip)
			delete(ref, ip)
		case 1, 2:
			want := 0
			if f := ref[ip]; f != nil && now.Sub(f.last) < forgetAfter {
				want = f.n
			}
			if got := a.Failures(ip); got != want {
				t.Fatalf("step %d: Failures(%s) = %d, want %d", i, ip, got, want)
			}
		default:
			f := ref[ip]
			if f == nil || now.Sub(f.last) > forgetAfter {
				f = &failure{}
				ref[ip] = f
			}
			f.n++
			f.last = now
			if got, want := a.failed(ip), delay(f.n); got != want {
				t.Fatalf("step %d: failed(%s) delays %v, want %v", i, ip, got, want)
			}
		}
	}
	if n := a.tracked(); n > 30 {
		t.Fatalf("tracking %d of 30 clients", n)
	}
}

// TestFailuresConcurrent records failures from many goroutines (for -race).
func TestFailuresConcurrent(t *testing.T) {
	a := New(nil, Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				ip := fmt.Sprintf("10.0.%d.%d", g, i%200)
				a.failed(ip)
				a.Failures(ip)
				if i%50 == 0 {
					a.succeeded(ip)
				}
			}
		})
	}
	wg.Wait()
	if n := a.tracked(); n == 0 || n > 8*200 {
		t.Fatalf("tracking %d clients", n)
	}
}
