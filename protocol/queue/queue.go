// Package queue delivers the outbound queue: mail for recipients in domains
// not hosted here, which package delivery stored in the queue table.
//
// Workers lease due entries from the database (models.LeaseQueue), so any
// number of instances may share one PostgreSQL database without sending an
// entry twice, and an instance that dies mid-delivery only delays its entries
// until their lease runs out. The recipients of one message at one domain that
// are leased together go out in one SMTP transaction (RFC 5321) with one reply
// per recipient. Mail goes to the next hop named by the transport map, else to
// the relay host (AUTH PLAIN, RFC 4954/4616, over verified TLS only), else to
// the domain's MX hosts (RFC 5321 §5.1, with the address fallback and the null
// MX of RFC 7505). Hosts named in DNS are connected to at public addresses
// only, never at loopback, private or other special-purpose ones, so that a
// domain's MX cannot point mailgate at its own host or network; mail whose MX
// hosts have no public address bounces. STARTTLS (RFC 3207) is used whenever
// offered, as opportunistic encryption (RFC 7435). 4xx replies and broken
// connections are retried with exponential backoff until the entry expires; a
// 5xx reply or expiry sends the local sender a delivery status notification
// (RFC 3464, with RFC 3463 status codes) through package delivery. The message is
// streamed from the store, with SIZE (RFC 1870), BODY=8BITMIME (RFC 6152) and
// SMTPUTF8 (RFC 6531, needed for non-ASCII addresses) as the server allows; a
// session that ended a transaction cleanly is kept a few seconds for the next
// transaction to the same server.
//
// Imports: models, protocol/mailbox, protocol/delivery and protocol/message;
// never protocol/smtp (the wire server) or the HTTP handlers.
package queue

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// Options tune a Queue. The queue lifetime (MAILGATE_QUEUE_LIFETIME) is not
// here: each entry carries its own expiry, set when it is queued from
// delivery.Options.QueueLifetime.
type Options struct {
	// Registry receives the queue's metrics: its depth and delivery attempts
	// by result (nil: not exported).
	Registry prometheus.Registerer
	// Hostname is the name said in EHLO and written in bounces ("": the
	// Deliverer's host name).
	Hostname string
	// RelayHost ("host:port", MAILGATE_RELAY_HOST) receives all remote mail
	// not routed by TransportMap; "" delivers to each domain's MX hosts.
	RelayHost string
	// RelayUsername and RelayPassword (MAILGATE_RELAY_USERNAME/PASSWORD), when
	// set, authenticate to the relay with AUTH PLAIN; the relay must then
	// offer STARTTLS (or listen with TLS on port 465) with a certificate
	// valid for its name.
	RelayUsername string
	RelayPassword string
	// RelayTLSConfig verifies the relay's certificate (nil: the system roots).
	RelayTLSConfig *tls.Config
	// TransportMap (MAILGATE_TRANSPORT_MAP, see ParseTransportMap) sends the
	// mail of given domains to fixed hosts, ahead of the relay host.
	TransportMap TransportMap
	// Workers is how many SMTP transactions run at once (0: 8).
	Workers int
	// MaxRecipients caps the recipients of one transaction (0: 100, the
	// least RFC 5321 §4.5.3.1.8 lets a server accept).
	MaxRecipients int
	// BackoffBase and BackoffMax shape retries: base, 2·base, 4·base … up to
	// max (0: 1 minute and 1 hour).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// LeaseTime is how long an entry stays claimed by one attempt (0: 30
	// minutes). An attempt is cut off before its lease ends, so an entry is
	// never in two attempts at once; an instance that dies holds its entries
	// this long.
	LeaseTime time.Duration
	// InstanceID names this instance in leases ("": host name and a random suffix).
	InstanceID string
	// Resolver looks up MX and address records (nil: net.DefaultResolver).
	Resolver Resolver
	// MXPort is the port of MX hosts (0: 25). Tests change it.
	MXPort int
	// AllowPrivateMX lets mail go to MX hosts (and domains without MX) whose
	// addresses are loopback, private, link-local or otherwise not public. It
	// is for tests and closed networks only: otherwise anyone who can send
	// mail here can make mailgate connect to services on its own host or
	// internal network by naming them in a domain's MX. Off, such addresses
	// are skipped, and mail whose MX hosts have no other address bounces
	// (5.4.4). Routes set by the operator (RelayHost, TransportMap) may always
	// point anywhere.
	AllowPrivateMX bool
	// Dial opens the TCP connection to one address of a hop, "ip:port" (nil:
	// a net.Dialer with DialTimeout). Tests use it to see where the queue
	// connects.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// DialTimeout bounds connecting (0: 30s); CommandTimeout bounds each
	// command's reply (0: 5 minutes, RFC 5321 §4.5.3.2).
	DialTimeout    time.Duration
	CommandTimeout time.Duration
	// IdleTime is how long a session that finished a transaction is kept for
	// the next one to the same server (0: 5s; negative: never kept).
	IdleTime time.Duration
	// ShutdownTimeout is how long Run waits, once its context ends, for
	// deliveries under way (0: 30s); then they are cut off and retried later.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// Queue delivers queued mail.
type Queue struct {
	store *models.Store
	mbox  *mailbox.Service
	dlv   *delivery.Deliverer
	opt   Options
	relay *Hop // parsed RelayHost; nil when mail goes to MX hosts
	pool  *pool
	log   *slog.Logger
	lease atomic.Int64 // numbers lease tokens

	attempts *prometheus.CounterVec // delivery attempts by result
}

// New returns a Queue; Run starts it. A malformed RelayHost is an error.
func New(store *models.Store, mbox *mailbox.Service, dlv *delivery.Deliverer, opt Options) (*Queue, error) {
	if opt.Hostname == "" {
		opt.Hostname = dlv.Hostname()
	}
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	if opt.MaxRecipients <= 0 {
		opt.MaxRecipients = 100
	}
	if opt.BackoffBase <= 0 {
		opt.BackoffBase = time.Minute
	}
	if opt.BackoffMax <= 0 {
		opt.BackoffMax = time.Hour
	}
	if opt.LeaseTime <= 0 {
		opt.LeaseTime = 30 * time.Minute
	}
	if opt.InstanceID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:]) //nolint:errcheck // never fails
		opt.InstanceID = host + "-" + hex.EncodeToString(b[:])
	}
	if opt.Resolver == nil {
		opt.Resolver = net.DefaultResolver
	}
	if opt.MXPort == 0 {
		opt.MXPort = 25
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 30 * time.Second
	}
	if opt.Dial == nil {
		opt.Dial = (&net.Dialer{Timeout: opt.DialTimeout}).DialContext
	}
	if opt.CommandTimeout <= 0 {
		opt.CommandTimeout = 5 * time.Minute
	}
	if opt.IdleTime == 0 {
		opt.IdleTime = 5 * time.Second
	}
	if opt.ShutdownTimeout <= 0 {
		opt.ShutdownTimeout = 30 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{store: store, mbox: mbox, dlv: dlv, opt: opt, log: opt.Logger.With("proto", "queue", "instance", opt.InstanceID),
		pool: newPool(opt.IdleTime, opt.Workers)}
	q.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_queue_delivery_attempts_total",
		Help: "Outbound delivery attempts, one per recipient, by result (sent, deferred, bounced)."}, []string{"result"})
	if opt.Registry != nil {
		depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailgate_queue_depth",
			Help: "Recipients waiting in the outbound queue (read from the database at each scrape)."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := store.QueueDepth(ctx)
			if err != nil {
				return math.NaN() // not known now; the scrape still answers
			}
			return float64(n)
		})
		opt.Registry.MustRegister(q.attempts, depth)
	}
	if opt.RelayHost != "" {
		h, err := ParseHop(opt.RelayHost, 25)
		if err != nil {
			return nil, fmt.Errorf("relay host: %w", err)
		}
		q.relay = &h
	}
	if opt.RelayUsername == "" && opt.RelayPassword != "" {
		return nil, errors.New("relay password set without a relay username")
	}
	return q, nil
}

// Run delivers until ctx ends, then waits for deliveries under way (at most
// ShutdownTimeout) and returns nil. It wakes when mail is queued on any
// instance (models.QueueTopic) and when the next entry falls due.
func (q *Queue) Run(ctx context.Context) error {
	wake, unsubscribe := q.store.Subscribe(models.QueueTopic)
	defer unsubscribe()
	// Deliveries outlive ctx so that shutdown lets them finish.
	jobCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	r := &runner{q: q, ctx: jobCtx, slots: make(chan struct{}, q.opt.Workers), done: make(chan struct{}, 1),
		finished: make(chan models.Leased, 4*q.opt.MaxRecipients)}
	finisher := make(chan struct{})
	go func() { r.finisher(); close(finisher) }()
	janitorCtx, stopJanitor := context.WithCancel(context.Background())
	janitor := make(chan struct{})
	go func() { q.pool.janitor(janitorCtx); close(janitor) }()
	errWait := time.Second
	for ctx.Err() == nil {
		r.start()
		if len(r.pending) < q.opt.Workers {
			n, err := r.lease(ctx)
			if err != nil && ctx.Err() != nil {
				break
			}
			if err != nil {
				q.log.Error("lease queue entries", "err", err, "retry_in", errWait)
				sleep(ctx, errWait)
				errWait = min(2*errWait, time.Minute)
				continue
			}
			errWait = time.Second
			if n > 0 {
				continue // more may be due
			}
		}
		q.wait(ctx, len(r.pending) < q.opt.Workers, wake, r.done)
	}
	q.release(r.pending)
	all := make(chan struct{})
	go func() { r.wg.Wait(); close(all) }()
	t := time.NewTimer(q.opt.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-all:
	case <-t.C:
		q.log.Warn("cutting off deliveries under way at shutdown; they will be retried")
		abort()
		<-all
	}
	close(r.finished)
	<-finisher
	stopJanitor()
	<-janitor // idle sessions end with QUIT
	return nil
}

// runner is the state of one Run.
type runner struct {
	q        *Queue
	ctx      context.Context // of the deliveries: outlives Run's
	slots    chan struct{}   // one per delivery under way
	done     chan struct{}   // signalled when a delivery ends
	finished chan models.Leased
	pending  []*job // leased, waiting for a slot
	wg       sync.WaitGroup
}

// lease claims due entries, enough for every worker and as many again, so
// that workers finishing one by one do not each cost a lease transaction.
func (r *runner) lease(ctx context.Context) (int, error) {
	q := r.q
	groups := 2*q.opt.Workers - len(r.pending)
	owner := fmt.Sprintf("%s/%d", q.opt.InstanceID, q.lease.Add(1))
	now := time.Now()
	entries, err := q.store.LeaseQueue(ctx, models.QueueLease{Owner: owner, Now: now, For: q.opt.LeaseTime,
		Groups: groups, Limit: groups * q.opt.MaxRecipients})
	if err != nil {
		return 0, err
	}
	// Cut an attempt off well before its lease ends, so the entry cannot be
	// leased again while this attempt still runs.
	deadline := now.Add(q.opt.LeaseTime - q.opt.LeaseTime/10)
	for _, j := range group(entries, owner, q.opt.MaxRecipients) {
		j.deadline = deadline
		r.pending = append(r.pending, j)
	}
	return len(entries), nil
}

// start runs pending jobs while workers are free.
func (r *runner) start() {
	for len(r.pending) > 0 && len(r.slots) < cap(r.slots) {
		j := r.pending[0]
		r.pending = r.pending[1:]
		if time.Until(j.deadline) < r.q.opt.LeaseTime/10 {
			r.q.release([]*job{j}) // waited too long to finish safely within its lease
			continue
		}
		r.slots <- struct{}{}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.q.run(r.ctx, j, r.finished)
			<-r.slots
			select {
			case r.done <- struct{}{}:
			default:
			}
		}()
	}
}

// finisher removes delivered entries from the queue, many per statement when
// deliveries end faster than one statement commits.
func (r *runner) finisher() {
	for first := range r.finished {
		batch := []models.Leased{first}
	drain:
		for len(batch) < 500 {
			select {
			case l, ok := <-r.finished:
				if !ok {
					break drain
				}
				batch = append(batch, l)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := r.q.store.FinishQueue(ctx, batch); err != nil {
			// Worst case the entries are sent again when their lease ends.
			r.q.log.Error("remove delivered queue entries", "count", len(batch), "err", err)
		}
		cancel()
	}
}

// wait blocks until there may be work: a notice, a finished delivery, or the
// next due time (checked at least every minute, in case a notice was lost).
func (q *Queue) wait(ctx context.Context, canLease bool, wake, done <-chan struct{}) {
	var due <-chan time.Time
	if canLease {
		d := time.Minute
		at, ok, err := q.store.NextQueueAttempt(ctx)
		if err != nil && ctx.Err() == nil {
			q.log.Warn("next queue attempt", "err", err)
		}
		if ok {
			// Due but not leased means another instance is claiming it right
			// now: look again shortly.
			d = min(max(time.Until(at), 50*time.Millisecond), time.Minute)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		due = t.C
	}
	select {
	case <-ctx.Done():
	case <-wake:
	case <-done:
	case <-due:
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// release hands back leased entries that were never attempted.
func (q *Queue) release(jobs []*job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, j := range jobs {
		for _, e := range j.entries {
			if _, err := q.store.DeferQueue(ctx, j.lease, e.ID, time.Now(), e.LastError); err != nil {
				q.log.Warn("release queue entry", "entry", e.PublicID, "err", err)
			}
		}
	}
}

// job is one SMTP transaction's worth of entries: one content, one domain,
// one sender.
type job struct {
	lease      string
	deadline   time.Time // the attempt must end by then
	contentID  int64
	domain     string
	sender     string
	envelopeID string
	entries    []models.QueueEntry
}

// all gives every entry of the job the same outcome.
func (j *job) all(f *failure) []*failure {
	out := make([]*failure, len(j.entries))
	for i := range out {
		out[i] = f
	}
	return out
}

func (j *job) needsUTF8() bool {
	if !isASCII(j.sender) {
		return true
	}
	for _, e := range j.entries {
		if !isASCII(e.Recipient) {
			return true
		}
	}
	return false
}

// group splits leased entries into jobs, keeping lease order.
func group(entries []models.QueueEntry, lease string, maxRcpts int) []*job {
	type key struct {
		content            int64
		domain, from, envd string
	}
	var jobs []*job
	open := map[key]*job{}
	for _, e := range entries {
		k := key{e.ContentID, e.Domain, e.Sender, e.EnvelopeID}
		j := open[k]
		if j == nil || len(j.entries) >= maxRcpts {
			j = &job{lease: lease, contentID: e.ContentID, domain: e.Domain, sender: e.Sender, envelopeID: e.EnvelopeID}
			open[k] = j
			jobs = append(jobs, j)
		}
		j.entries = append(j.entries, e)
	}
	return jobs
}
