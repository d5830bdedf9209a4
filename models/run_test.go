package models_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
)

// inboxOf creates a user and returns its inbox.
func inboxOf(t *testing.T, s *models.Store, email string) *models.Mailbox {
	t.Helper()
	ctx := context.Background()
	_, domain, _ := strings.Cut(email, "@")
	if _, err := s.CreateDomain(ctx, domain, ""); err != nil && !errors.Is(err, models.ErrConflict) {
		t.Fatal(err)
	}
	u := mustUser(t, s, email)
	mb, err := s.MailboxByName(ctx, u.ID, models.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// deliveryTo is a delivery of a message with its own subject (so its own
// content) to mb.
func deliveryTo(mb *models.Mailbox, subject string) *models.Delivery {
	body := "Subject: " + subject + "\r\n\r\nhello\r\n"
	sum := sha256.Sum256([]byte(body))
	put := models.ContentPut{Content: models.Content{SHA256: sum[:], Size: int64(len(body))},
		Body: func() io.Reader { return strings.NewReader(body) }}
	return &models.Delivery{Contents: []models.ContentPut{put}, Appends: []models.AppendSpec{{Content: 0,
		Meta:    models.MessageMeta{Subject: subject},
		Targets: []models.AppendTarget{{MailboxID: mb.ID, UserID: mb.UserID, SkipQuota: true}}}}}
}

// subjectsIn lists the subjects of the messages in a mailbox.
func subjectsIn(t *testing.T, s *models.Store, mailboxID int64) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	err := s.MessagesByUID(context.Background(), mailboxID, models.All, func(m *models.Message) error {
		got[m.Subject] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startRun runs s in the background and returns a function that stops Run and
// returns its result, failing the test if Run does not return in time.
func startRun(t *testing.T, s *models.Store) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- s.Run(ctx) }()
	t.Cleanup(cancel)
	waitFor(t, "Run starts", 10*time.Second, func() bool { return models.StoreRunning(s) })
	return func() error {
		cancel()
		select {
		case err := <-ch:
			return err
		case <-time.After(time.Minute):
			t.Fatal("Run still running a minute after its context ended")
			return nil
		}
	}, ch
}

// TestDeliverRacesShutdown: deliveries keep arriving while the store shuts
// down. None hangs, each either succeeds or fails with ErrTemporary, and
// exactly the ones that succeeded are in the database afterwards.
func TestDeliverRacesShutdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  bool // Run the store (group commit); else deliveries commit inline
		// stop shuts the store down while deliveries race it; it returns once
		// the store takes no more.
		stop func(t *testing.T, s *models.Store, stopRun func() error)
	}{
		{"RunEnds", true, func(t *testing.T, s *models.Store, stopRun func() error) {
			if err := stopRun(); err != nil {
				t.Errorf("Run = %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close after Run = %v", err)
			}
		}},
		{"CloseWhileRunning", true, func(t *testing.T, s *models.Store, stopRun func() error) {
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			if err := stopRun(); err != nil {
				t.Errorf("Run after Close = %v", err)
			}
		}},
		{"CloseNotRun", false, func(t *testing.T, s *models.Store, _ func() error) {
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := modelstest.URL(t)
			s := modelstest.OpenIdle(t, url)
			mb := inboxOf(t, s, "race@example.com")
			stopRun := func() error { return nil }
			if tc.run {
				stopRun, _ = startRun(t, s)
			}

			const workers, burst = 48, 96
			var (
				mu        sync.Mutex
				delivered = map[string]bool{}
				refused   int
				total     atomic.Int64
				enough    = make(chan struct{})
				once      sync.Once
				release   = make(chan struct{})
				wg        sync.WaitGroup
			)
			// deliver reports whether the store took the delivery.
			deliver := func(subject string) bool {
				res, err := s.Deliver(context.Background(), deliveryTo(mb, subject))
				if err != nil {
					if !errors.Is(err, models.ErrTemporary) {
						t.Errorf("Deliver %s = %v, want success or ErrTemporary", subject, err)
					}
					mu.Lock()
					refused++
					mu.Unlock()
					return false
				}
				if r := res.Appends[0][0]; r.Err != nil || r.Message == nil {
					t.Errorf("Deliver %s: append %+v", subject, r)
				}
				mu.Lock()
				delivered[subject] = true
				mu.Unlock()
				if total.Add(1) >= 3*workers {
					once.Do(func() { close(enough) })
				}
				return true
			}
			// Each worker delivers until the store refuses: some of its
			// deliveries are in flight when the store shuts down.
			for w := 0; w < workers; w++ {
				wg.Go(func() {
					for i := 0; i < 100000 && deliver(fmt.Sprintf("w%d-%d", w, i)); i++ {
					}
				})
			}
			// A burst released as the shutdown begins.
			for b := 0; b < burst; b++ {
				wg.Go(func() {
					<-release
					deliver(fmt.Sprintf("b%d", b))
				})
			}
			select {
			case <-enough:
			case <-time.After(2 * time.Minute):
				t.Fatalf("only %d deliveries in 2 minutes", total.Load())
			}
			close(release)
			// Let part of the burst reach Deliver first: it races the shutdown.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond))))
			tc.stop(t, s, stopRun)
			allDone := make(chan struct{})
			go func() { wg.Wait(); close(allDone) }()
			select {
			case <-allDone:
			case <-time.After(2 * time.Minute):
				t.Fatal("deliveries still waiting 2 minutes after the store shut down")
			}
			if refused < workers { // every worker ends on a refusal
				t.Errorf("%d refused, want at least one per worker (%d)", refused, workers)
			}
			t.Logf("%d delivered, %d refused", len(delivered), refused)

			// Every delivery reported as committed is there, and no other.
			other := modelstest.OpenIdle(t, url)
			got := subjectsIn(t, other, mb.ID)
			for subject := range delivered {
				if !got[subject] {
					t.Errorf("%s reported delivered, not in the mailbox", subject)
				}
			}
			for subject := range got {
				if !delivered[subject] {
					t.Errorf("%s in the mailbox, reported failed", subject)
				}
			}
			box, err := other.MailboxByID(context.Background(), mb.ID)
			if err != nil || box.MessagesCount != int64(len(delivered)) {
				t.Errorf("mailbox counts %d messages (%v), want %d", box.MessagesCount, err, len(delivered))
			}
		})
	}
}

// deliverQuickly runs Deliver, failing the test if it does not return within
// a few seconds.
func deliverQuickly(t *testing.T, s *models.Store, d *models.Delivery) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		_, err := s.Deliver(context.Background(), d)
		ch <- err
	}()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Deliver still waiting after 5 seconds")
		return nil
	}
}

// TestDeliverAfterShutdown: once Run has ended or the store is closed, Deliver
// fails at once with ErrTemporary; Run and Close are safe in any order.
func TestDeliverAfterShutdown(t *testing.T) {
	ctx := context.Background()

	t.Run("Closed", func(t *testing.T) {
		s := modelstest.New(t)
		mb := inboxOf(t, s, "a@example.com")
		if err := deliverQuickly(t, s, deliveryTo(mb, "before")); err != nil {
			t.Fatalf("Deliver before Close = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if err := deliverQuickly(t, s, deliveryTo(mb, "after")); !errors.Is(err, models.ErrTemporary) {
			t.Fatalf("Deliver after Close = %v, want ErrTemporary", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})

	t.Run("RunEnded", func(t *testing.T) {
		s := modelstest.OpenIdle(t, modelstest.URL(t))
		mb := inboxOf(t, s, "a@example.com")
		stopRun, _ := startRun(t, s)
		if err := deliverQuickly(t, s, deliveryTo(mb, "while running")); err != nil {
			t.Fatalf("Deliver while running = %v", err)
		}
		if err := stopRun(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if err := deliverQuickly(t, s, deliveryTo(mb, "after Run")); !errors.Is(err, models.ErrTemporary) {
			t.Fatalf("Deliver after Run = %v, want ErrTemporary", err)
		}
		// The rest of the store still serves until Close.
		if got := subjectsIn(t, s, mb.ID); len(got) != 1 || !got["while running"] {
			t.Fatalf("mailbox after Run: %v", got)
		}
		if err := s.Run(ctx); err == nil {
			t.Fatal("second Run = nil, want an error")
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close after Run = %v", err)
		}
		if err := deliverQuickly(t, s, deliveryTo(mb, "after Close")); !errors.Is(err, models.ErrTemporary) {
			t.Fatalf("Deliver after Close = %v, want ErrTemporary", err)
		}
	})

	t.Run("ClosedBeforeRun", func(t *testing.T) {
		s := modelstest.OpenIdle(t, modelstest.URL(t))
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }() // ctx never ends: Run must see the store closed
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run after Close = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run on a closed store still running after 5 seconds")
		}
		if n := models.StoreGoroutines(s); n != 0 {
			t.Fatalf("%d store goroutines after Run on a closed store", n)
		}
	})
}

// ownedGoroutines counts goroutines, of any store in the process, that a store
// started (all go through shared.spawn).
func ownedGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "models.(*shared).spawn")
}

// TestRunLeavesNoGoroutines: the goroutines a store starts (committers, the
// PostgreSQL listener, whether started by Run or by Subscribe) have all ended
// when Run returns or Close does; deliveries and notices work without Run.
func TestRunLeavesNoGoroutines(t *testing.T) {
	ctx := context.Background()
	listener := 0 // goroutines: the PostgreSQL listener
	if os.Getenv(modelstest.EnvURL) != "" {
		listener = 1
	}
	noneLeft := func(t *testing.T, s *models.Store, when string) {
		t.Helper()
		if n := models.StoreGoroutines(s); n != 0 {
			t.Fatalf("%s: the store counts %d goroutines of its own, want 0", when, n)
		}
		// The count is the store's own bookkeeping: look at the goroutines
		// themselves too. A goroutine that has just signalled its end may still
		// be on its way out.
		waitFor(t, when+": no store goroutine in the process", 5*time.Second, func() bool { return ownedGoroutines() == 0 })
	}
	notified := func(t *testing.T, s *models.Store, topic string) {
		t.Helper()
		ch, unsubscribe := s.Subscribe(topic)
		defer unsubscribe()
		select { // drain the signal the listener gives on connecting
		case <-ch:
		default:
		}
		if err := s.Notify(ctx, topic); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no signal on %s", topic)
		}
	}

	t.Run("Run", func(t *testing.T) {
		s := modelstest.OpenIdle(t, modelstest.URL(t))
		mb := inboxOf(t, s, "a@example.com")
		// Before Run: deliveries commit inline, Subscribe starts the listener.
		if err := deliverQuickly(t, s, deliveryTo(mb, "inline")); err != nil {
			t.Fatalf("Deliver without Run = %v", err)
		}
		notified(t, s, "before-run")
		if n := models.StoreGoroutines(s); n != listener {
			t.Fatalf("%d store goroutines before Run, want %d (the listener only)", n, listener)
		}
		stopRun, _ := startRun(t, s)
		if n := models.StoreGoroutines(s); n <= listener {
			t.Fatalf("%d store goroutines while running, want committers too", n)
		}
		if err := deliverQuickly(t, s, deliveryTo(mb, "grouped")); err != nil {
			t.Fatalf("Deliver while running = %v", err)
		}
		notified(t, s, "while-running")
		if err := stopRun(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		noneLeft(t, s, "after Run")
		// Shutdown is final: Subscribe starts no listener again.
		_, unsubscribe := s.Subscribe("after-run")
		unsubscribe()
		noneLeft(t, s, "Subscribe after Run")
		if got := subjectsIn(t, s, mb.ID); len(got) != 2 {
			t.Fatalf("mailbox: %v, want both deliveries", got)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
	})

	t.Run("CloseWithoutRun", func(t *testing.T) {
		s := modelstest.OpenIdle(t, modelstest.URL(t))
		notified(t, s, "not-run")
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		noneLeft(t, s, "after Close")
	})
}
