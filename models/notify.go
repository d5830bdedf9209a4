package models

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// notifyChannel is the one PostgreSQL channel mailgate uses; the payload is the topic.
const notifyChannel = "mailgate"

// Notify announces that something under topic changed. Inside a transaction the
// notice goes out when it commits and not at all if it rolls back; on PostgreSQL
// it reaches every instance on the database, on SQLite every subscriber in process.
// A notice carries no data: subscribers read what changed from the store, so a
// lost or merged notice costs latency, never correctness.
func (s *Store) Notify(ctx context.Context, topic string) error {
	if s.shared.dialect == Postgres {
		if err := s.conn(ctx).Exec("SELECT pg_notify(?, ?)", notifyChannel, topic).Error; err != nil {
			return fmt.Errorf("notify %s: %w", topic, translate(err))
		}
		return nil
	}
	if s.pending != nil {
		*s.pending = append(*s.pending, topic)
		return nil
	}
	s.shared.hub.publish(topic)
	return nil
}

// Subscribe returns a channel that receives a signal after a notice on topic
// (signals coalesce: one pending signal at most) and after the store lost and
// regained its PostgreSQL listener, when notices may have been missed. Call the
// returned function to unsubscribe.
//
// On PostgreSQL the notices come through a listener that Run starts; on a store
// not run, the first Subscribe starts it. Either way shutdown (Run's end, Close)
// stops it: after that, subscriptions get no more signals from PostgreSQL.
func (s *Store) Subscribe(topic string) (<-chan struct{}, func()) {
	if s.shared.dialect == Postgres {
		ready := s.startListener()
		// Wait briefly for LISTEN to be in place so that a notice sent right
		// after the first Subscribe returns is not missed; a slow database only
		// delays this once.
		s.shared.listenWait.Do(func() {
			if ready == nil {
				return
			}
			t := time.NewTimer(5 * time.Second)
			defer t.Stop()
			select {
			case <-ready:
			case <-t.C:
			}
		})
	}
	return s.shared.hub.subscribe(topic)
}

// startListener starts the PostgreSQL listener unless it runs already or
// shutdown has begun, and returns the channel closed once LISTEN is in place or
// the listener ended (nil when none was started).
func (s *Store) startListener() <-chan struct{} {
	sh := s.shared
	sh.listenMu.Lock()
	defer sh.listenMu.Unlock()
	if sh.listenReady != nil || sh.listenStopped {
		return sh.listenReady
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	sh.stopListen, sh.listenReady = cancel, ready
	sh.spawn(&sh.listeners, func() { s.listen(ctx, ready) })
	return ready
}

func (s *Store) listen(ctx context.Context, ready chan struct{}) {
	var once sync.Once
	markReady := func() { once.Do(func() { close(ready) }) }
	defer markReady() // a Subscribe waiting for ready need not wait past the end
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, markReady)
		if ctx.Err() != nil {
			return
		}
		s.shared.log.Warn("database listener lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, ready func()) error {
	conn, err := s.shared.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listener connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		conn.Conn().Close(context.Background()) //nolint:errcheck // broken connection
		return fmt.Errorf("listen: %w", err)
	}
	// Anything may have changed while no listener was in place. This goes out
	// before ready: a first Subscribe, which waits for ready, is not yet
	// subscribed and has missed nothing.
	s.shared.hub.publishAll()
	ready()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() == nil {
				conn.Conn().Close(context.Background()) //nolint:errcheck // broken connection
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		s.shared.hub.publish(n.Payload)
	}
}

// hub fans notices out to in-process subscribers.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: make(map[string]map[chan struct{}]struct{})} }

func (h *hub) subscribe(topic string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[topic] == nil {
		h.subs[topic] = make(map[chan struct{}]struct{})
	}
	h.subs[topic][ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs[topic], ch)
			if len(h.subs[topic]) == 0 {
				delete(h.subs, topic)
			}
			h.mu.Unlock()
		})
	}
}

func (h *hub) publish(topics ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range topics {
		for ch := range h.subs[t] {
			signal(ch)
		}
	}
}

func (h *hub) publishAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for ch := range set {
			signal(ch)
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Topics used across the project.

// MailboxTopic is the topic of changes to one mailbox.
func MailboxTopic(mailboxID int64) string { return fmt.Sprintf("mailbox:%d", mailboxID) }

// MailboxListTopic is the topic of changes to a user's set of mailboxes.
func MailboxListTopic(userID int64) string { return fmt.Sprintf("mailboxes:%d", userID) }

// UserTopic is the topic of a user's credentials: a notice means the user was
// disabled or deleted or its password changed, so sessions must check again.
func UserTopic(userID int64) string { return fmt.Sprintf("user:%d", userID) }

// QueueTopic is the topic of new or changed outbound queue entries.
const QueueTopic = "queue"

// notifyTopics is Notify for several topics; on PostgreSQL in one statement.
func (s *Store) notifyTopics(ctx context.Context, topics []string) error {
	if s.shared.dialect != Postgres || len(topics) == 1 {
		for _, t := range topics {
			if err := s.Notify(ctx, t); err != nil {
				return err
			}
		}
		return nil
	}
	for len(topics) > 0 {
		n := min(len(topics), 100)
		calls := strings.TrimSuffix(strings.Repeat("pg_notify(?, ?), ", n), ", ")
		args := make([]any, 0, 2*n)
		for _, t := range topics[:n] {
			args = append(args, notifyChannel, t)
		}
		if err := s.conn(ctx).Exec("SELECT "+calls, args...).Error; err != nil {
			return fmt.Errorf("notify %d topics: %w", n, translate(err))
		}
		topics = topics[n:]
	}
	return nil
}

// notifySet is notifyTopics for a set, in a stable order.
func (s *Store) notifySet(ctx context.Context, set map[string]bool) error {
	list := make([]string, 0, len(set))
	for t := range set {
		list = append(list, t)
	}
	sort.Strings(list)
	return s.notifyTopics(ctx, list)
}
