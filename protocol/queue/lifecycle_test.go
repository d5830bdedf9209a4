package queue_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/queue"
)

// An idle queue waits a minute between looks; a notice must wake it at once.
func TestRelayWakesOnNotice(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, nil)
	e.run(t, options(t, route(t, "remote.test", r.addr)))
	for i := 0; i < 3; i++ {
		e.send(t, body("wake", "now\r\n"), "bob@remote.test")
		waitFor(t, "the message, well before the idle timer", 10*time.Second, func() bool { return len(r.messages()) == i+1 })
	}
}

// An entry leased by an instance that then died is delivered once its lease ends.
func TestRelayRecoversCrashedLease(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, nil)
	e.send(t, body("orphan", "left behind\r\n"), "bob@remote.test")
	got, err := e.store.LeaseQueue(context.Background(), models.QueueLease{Owner: "dead/1", Now: time.Now(),
		For: 300 * time.Millisecond, Groups: 1, Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("lease = %v, %v", got, err)
	}
	e.run(t, options(t, route(t, "remote.test", r.addr)))
	waitFor(t, "the orphaned entry delivered", 10*time.Second, func() bool { return len(r.messages()) == 1 })
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return len(e.queued(t)) == 0 })
}

// A server offering STARTTLS whose handshake fails still gets the mail, in
// plain text (RFC 7435: opportunistic TLS must not make delivery fail).
func TestRelayTLSFailureFallsBackToPlainText(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", &tls.Config{}, nil) // STARTTLS offered, no certificate: every handshake fails
	e.send(t, body("fallback", "plain is better than nothing\r\n"), "bob@remote.test")
	e.run(t, options(t, route(t, "remote.test", r.addr)))
	waitFor(t, "the message", 10*time.Second, func() bool { return len(r.messages()) == 1 })
	if r.messages()[0].tls {
		t.Fatal("message claims TLS")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.helos) != 2 { // the connection whose handshake failed, then the plain one
		t.Fatalf("%d sessions, want 2", len(r.helos))
	}
}

// runQueue starts a queue under ctx and returns a channel closed when Run returns.
func runQueue(t *testing.T, in *instance, ctx context.Context, opt queue.Options) <-chan struct{} {
	t.Helper()
	q, err := queue.New(in.store, in.mbox, in.dlv, opt)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := q.Run(ctx); err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	return done
}

func TestRunFinishesDeliveriesUnderWay(t *testing.T) {
	e := newEnv(t, lifetime)
	inData, release := make(chan struct{}), make(chan struct{})
	r := startReceiver(t, "", nil, func(r *receiver) {
		r.onData = func() { close(inData); <-release }
	})
	e.send(t, body("inflight", "let me finish\r\n"), "bob@remote.test")
	ctx, cancel := context.WithCancel(context.Background())
	done := runQueue(t, e.instance, ctx, options(t, route(t, "remote.test", r.addr)))
	<-inData
	cancel() // shutdown begins while the message is being sent
	close(release)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if len(r.messages()) != 1 || len(e.queued(t)) != 0 {
		t.Fatalf("received %d, queued %d; want the delivery finished and recorded", len(r.messages()), len(e.queued(t)))
	}
}

func TestRunCutsOffStuckDeliveriesAtShutdown(t *testing.T) {
	e := newEnv(t, lifetime)
	inData, never := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(never) })
	r := startReceiver(t, "", nil, func(r *receiver) {
		r.onData = func() { close(inData); <-never }
	})
	e.send(t, body("stuck", "the receiver hangs\r\n"), "bob@remote.test")
	opt := options(t, route(t, "remote.test", r.addr))
	opt.ShutdownTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := runQueue(t, e.instance, ctx, opt)
	<-inData
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its shutdown timeout")
	}
	es := e.queued(t)
	if len(es) != 1 || es[0].Status != models.QueueDeferred || es[0].LeaseOwner != "" || !strings.Contains(es[0].LastError, "DATA") {
		t.Fatalf("queue after cut-off = %+v; want the entry deferred for a retry", es)
	}
	if n := len(e.inbox(t, e.alice)); n != 0 {
		t.Fatalf("alice got %d bounces", n)
	}
}

// Transactions to one server share a session (RFC 5321 §3.3).
func TestRelayReusesSessions(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, nil)
	for i := 0; i < 5; i++ {
		e.send(t, body("reuse", strings.Repeat("x", i)+"\r\n"), "bob@remote.test")
	}
	opt := options(t, route(t, "remote.test", r.addr))
	opt.Workers = 1
	stop := e.run(t, opt)
	waitFor(t, "five messages", 10*time.Second, func() bool { return len(r.messages()) == 5 })
	stop() // ends the idle session with QUIT
	// The receiver counts the end of the session in its own goroutine, after QUIT.
	waitFor(t, "the session to end", 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.ended > 0
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.helos) != 1 || r.ended != 1 {
		t.Fatalf("%d sessions begun and %d ended for 5 messages; want 1", len(r.helos), r.ended)
	}
}

// A kept session the server has dropped meanwhile is replaced, not failed.
func TestRelayReplacesDroppedSession(t *testing.T) {
	e := newEnv(t, lifetime)
	r := startReceiver(t, "", nil, nil)
	opt := options(t, route(t, "remote.test", r.addr))
	opt.BackoffBase, opt.BackoffMax = time.Hour, time.Hour // a failed attempt would show as a timeout
	e.run(t, opt)
	e.send(t, body("first", "one\r\n"), "bob@remote.test")
	waitFor(t, "the first message", 10*time.Second, func() bool { return len(r.messages()) == 1 })
	r.drop()
	waitFor(t, "the server to end the idle session", 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.ended == 1
	})
	e.send(t, body("second", "two\r\n"), "bob@remote.test")
	waitFor(t, "the second message", 10*time.Second, func() bool { return len(r.messages()) == 2 })
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return len(e.queued(t)) == 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.helos) != 2 || r.tries["bob@remote.test"] != 2 {
		t.Fatalf("%d sessions and %d RCPTs for 2 messages; want a new session and no failed attempt", len(r.helos), r.tries["bob@remote.test"])
	}
}
