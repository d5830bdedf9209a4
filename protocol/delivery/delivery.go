// Package delivery is the one pipeline all mail goes through, whether it arrives
// by SMTP (RFC 5321) or from the HTTP API: it resolves recipients (users,
// groups), enforces who may send as whom and where, stores local mail through
// package mailbox and queues the rest for relay, all in one transaction, so that
// a message is acknowledged only once it is safe in the database.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"strings"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/message"
)

// Errors of recipient and sender checks. Front ends map them to their replies.
var (
	ErrNoSuchUser   = errors.New("no such user here")        // SMTP 550 5.1.1
	ErrDisabled     = errors.New("mailbox disabled")         // SMTP 550 5.2.1
	ErrRelayDenied  = errors.New("relay access denied")      // SMTP 554 5.7.1
	ErrSenderDenied = errors.New("sender address not owned") // SMTP 553 5.7.1
	ErrBadAddress   = errors.New("invalid address")          // SMTP 501 5.1.3
	ErrNoRecipients = errors.New("no valid recipients")      // SMTP 554 5.5.1
	ErrAllOverQuota = fmt.Errorf("every recipient is over quota: %w", models.ErrQuota)
	// ErrSenderOverQuota: the sender's copy in Sent would put it over its
	// quota, so nothing is sent.
	ErrSenderOverQuota = fmt.Errorf("the sender's Sent copy is over quota: %w", models.ErrQuota)
)

// Options tune a Deliverer.
type Options struct {
	Hostname string
	// QueueLifetime is how long a remote delivery is retried (0: 5 days).
	QueueLifetime time.Duration
	// Registry receives the delivery latency histogram (nil: not exported).
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Deliverer runs the pipeline.
type Deliverer struct {
	store   *models.Store
	mbox    *mailbox.Service
	opt     Options
	latency *prometheus.HistogramVec
}

// New returns a Deliverer.
func New(store *models.Store, mbox *mailbox.Service, opt Options) *Deliverer {
	if opt.QueueLifetime <= 0 {
		opt.QueueLifetime = 5 * 24 * time.Hour
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Hostname == "" {
		opt.Hostname = "localhost"
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailgate_delivery_duration_seconds",
		Help:    "Time to store a message for its recipients (and queue it for remote ones), by result (ok, error).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"result"})
	if opt.Registry != nil {
		opt.Registry.MustRegister(latency)
	}
	return &Deliverer{store: store, mbox: mbox, opt: opt, latency: latency}
}

// Mailbox is the mailbox service the deliverer stores through.
func (d *Deliverer) Mailbox() *mailbox.Service { return d.mbox }

// Hostname is the name this server uses for itself.
func (d *Deliverer) Hostname() string { return d.opt.Hostname }

// Recipient is a resolved RCPT.
type Recipient struct {
	Address string            // normalized
	Local   *models.Recipient // nil for a remote address
}

// Remote reports whether the recipient is in a domain not hosted here.
func (r *Recipient) Remote() bool { return r.Local == nil }

// Resolve checks one recipient at RCPT time for a message of about size bytes
// (0 if unknown) from sender (nil: an unauthenticated peer).
//   - a local user → it; a group → its enabled members;
//   - unknown in a hosted domain → ErrNoSuchUser; a disabled user or domain → ErrDisabled;
//   - a user already over quota → models.ErrQuota;
//   - a domain not hosted here → allowed only for an authenticated sender, else ErrRelayDenied.
func (d *Deliverer) Resolve(ctx context.Context, addr string, sender *models.User, size int64) (*Recipient, error) {
	n, err := models.NormalizeEmail(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	local, domain := models.SplitEmail(n)
	l, err := d.store.LookupRecipient(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", n, err)
	}
	if !l.DomainFound {
		if strings.EqualFold(local, "postmaster") && d.isOwnHost(domain) {
			// RFC 5321 §4.5.1: postmaster@ our host name must be accepted.
			return d.postmaster(ctx, n)
		}
		if sender == nil {
			return nil, ErrRelayDenied
		}
		return &Recipient{Address: n}, nil
	}
	if l.DomainDisabled {
		return nil, ErrDisabled
	}
	r := l.Recipient
	if r == nil {
		if strings.EqualFold(local, "postmaster") || strings.EqualFold(local, "abuse") {
			return d.postmaster(ctx, n)
		}
		return nil, ErrNoSuchUser
	}
	if r.Group == nil && r.Users[0].Disabled {
		return nil, ErrDisabled
	}
	if r.Group == nil && r.Users[0].QuotaBytes > 0 {
		used, err := d.store.UsedBytes(ctx, r.Users[0].ID)
		if err != nil {
			return nil, err
		}
		if used >= r.Users[0].QuotaBytes || (size > 0 && used+size > r.Users[0].QuotaBytes) {
			return nil, fmt.Errorf("%s: %w", n, models.ErrQuota)
		}
	}
	return &Recipient{Address: n, Local: r}, nil
}

func (d *Deliverer) isOwnHost(domain string) bool {
	h, err := models.NormalizeDomain(d.opt.Hostname)
	return err == nil && h == domain || domain == "localhost"
}

// postmaster routes postmaster@ and abuse@ to the server's admins when no such
// address exists (RFC 5321 §4.5.1, RFC 2142).
func (d *Deliverer) postmaster(ctx context.Context, addr string) (*Recipient, error) {
	admins, err := d.store.ListAdmins(ctx)
	if err != nil {
		return nil, err
	}
	if len(admins) == 0 {
		return nil, ErrNoSuchUser
	}
	return &Recipient{Address: addr, Local: &models.Recipient{Address: addr, Users: admins}}, nil
}

// CheckSender tells whether an authenticated user may use addr as its sender
// (MAIL FROM or From:): its own address or that of a group it belongs to.
func (d *Deliverer) CheckSender(ctx context.Context, u *models.User, addr string) error {
	n, err := models.NormalizeEmail(addr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	if n == u.Email {
		return nil
	}
	gs, err := d.store.GroupsOf(ctx, u.ID)
	if err != nil {
		return err
	}
	for _, g := range gs {
		if g.Email == n {
			return nil
		}
	}
	return ErrSenderDenied
}

// Envelope is one message's SMTP envelope, whatever front end it came from.
type Envelope struct {
	From       string       // reverse-path; "" is the null sender of bounces
	User       *models.User // the authenticated sender; nil for mail from other servers
	Recipients []*Recipient
	EnvelopeID string // RFC 3461 ENVID, kept for bounces
	// SaveSent also stores a copy, seen, in the sender's Sent mailbox.
	SaveSent bool
	// BeforeCommit, when set, runs inside the delivery's transaction once the
	// message is stored (res holds the stored copies and the failures), so that
	// a caller can record something atomically with the delivery: the HTTP API
	// keeps its Idempotency-Key answer this way. An error rolls everything back.
	BeforeCommit func(ctx context.Context, tx *models.Store, res *Result) error
}

// Failure is a recipient that did not get the message.
type Failure struct {
	Address string
	Err     error
}

// Result tells what happened to each recipient.
type Result struct {
	Delivered []string          // local addresses that hold the message
	Queued    []string          // remote addresses queued for relay
	Failed    []Failure         // local users refused at delivery (over quota), by their address
	Messages  []*models.Message // the stored local copies
	Sent      *models.Message   // the copy in the sender's Sent mailbox
}

// Deliver stores a message for its recipients in one transaction: local copies
// (with Return-Path) into each user's INBOX, one copy of the content however many
// users get it; one queue entry per remote recipient. When Deliver returns nil,
// the message is committed and may be acknowledged. Recipients over quota by now
// are in Result.Failed and get a bounce; if every recipient fails, Deliver
// returns ErrAllOverQuota and stores nothing.
func (d *Deliverer) Deliver(ctx context.Context, env *Envelope, src message.Source) (*Result, error) {
	start := time.Now()
	res, err := d.deliver(ctx, env, src)
	result := "ok"
	if err != nil {
		result = "error"
	}
	d.latency.WithLabelValues(result).Observe(time.Since(start).Seconds())
	return res, err
}

func (d *Deliverer) deliver(ctx context.Context, env *Envelope, src message.Source) (*Result, error) {
	if len(env.Recipients) == 0 {
		return nil, ErrNoRecipients
	}
	res := &Result{}
	var users []models.User
	seen := map[int64]bool{}
	var remote []string
	for _, r := range env.Recipients {
		if r.Remote() {
			remote = append(remote, r.Address)
			continue
		}
		res.Delivered = append(res.Delivered, r.Address)
		for _, u := range r.Local.Users {
			if u.Disabled {
				continue
			}
			if !seen[u.ID] {
				seen[u.ID] = true
				users = append(users, u)
			}
		}
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	inboxes := make(map[int64]int64, len(ids))
	var unknown []int64
	for _, r := range env.Recipients {
		if r.Local != nil {
			for id, mb := range r.Local.Inboxes {
				inboxes[id] = mb
			}
		}
	}
	for _, id := range ids {
		if _, ok := inboxes[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		more, err := d.store.Inboxes(ctx, unknown)
		if err != nil {
			return nil, err
		}
		for id, mb := range more {
			inboxes[id] = mb.ID
		}
	}
	var targets []models.AppendTarget
	emails := make(map[int64]string, len(users))
	for _, u := range users {
		emails[u.ID] = u.Email
		mb, ok := inboxes[u.ID]
		if !ok {
			continue
		}
		targets = append(targets, models.AppendTarget{MailboxID: mb, UserID: u.ID})
	}

	var local, raw *mailbox.Prepared
	var err error
	if len(targets) > 0 {
		if local, err = d.mbox.Prepare(message.WithPrefix("Return-Path: <"+env.From+">\r\n", src)); err != nil {
			return nil, err
		}
	}
	if len(remote) > 0 || env.SaveSent {
		if raw, err = d.mbox.Prepare(src); err != nil {
			return nil, err
		}
	}
	var sentBox *models.Mailbox
	if env.SaveSent && env.User != nil {
		if sentBox, err = d.mbox.BySpecialUse(ctx, env.User.ID, models.SpecialSent); err != nil && !errors.Is(err, models.ErrNotFound) {
			return nil, err
		}
	}
	// Everything below commits as one unit, grouped with other deliveries that
	// arrive at the same time (models.Store.Deliver).
	spec := &models.Delivery{NeedOne: len(remote) == 0 && sentBox == nil}
	localIdx, rawIdx := -1, -1
	if local != nil {
		localIdx = len(spec.Contents)
		spec.Contents = append(spec.Contents, local.Put())
		spec.Appends = append(spec.Appends, models.AppendSpec{Content: localIdx, Meta: local.Meta(), Targets: targets})
	}
	if raw != nil {
		rawIdx = len(spec.Contents)
		spec.Contents = append(spec.Contents, raw.Put())
	}
	sentIdx := -1
	if sentBox != nil {
		sentIdx = len(spec.Appends)
		spec.Appends = append(spec.Appends, models.AppendSpec{Content: rawIdx, Meta: raw.Meta(),
			Targets: []models.AppendTarget{{MailboxID: sentBox.ID, UserID: env.User.ID, Flags: models.Flags{Seen: true}, Required: true}}})
	}
	now := time.Now()
	for _, a := range remote {
		_, dom := models.SplitEmail(a)
		e := models.QueueEntry{Sender: env.From, Recipient: a, Domain: dom, ExpiresAt: now.Add(d.opt.QueueLifetime), EnvelopeID: env.EnvelopeID}
		if env.User != nil {
			e.UserID = &env.User.ID
		}
		spec.Queue = append(spec.Queue, e)
	}
	spec.QueueContent = rawIdx
	collect := func(out *models.DeliveryResult) {
		res.Failed, res.Messages, res.Sent = nil, nil, nil
		for j, a := range spec.Appends {
			for k, o := range out.Appends[j] {
				switch {
				case j == sentIdx:
					res.Sent = o.Message
				case o.Err != nil:
					res.Failed = append(res.Failed, Failure{Address: emails[a.Targets[k].UserID], Err: o.Err})
				default:
					res.Messages = append(res.Messages, o.Message)
				}
			}
		}
	}
	if env.BeforeCommit != nil {
		spec.Finish = func(ctx context.Context, tx *models.Store, out *models.DeliveryResult) error {
			collect(out)
			res.Queued = remote
			return env.BeforeCommit(ctx, tx, res)
		}
	}
	out, err := d.store.Deliver(ctx, spec)
	if errors.Is(err, models.ErrQuota) {
		if sentBox != nil {
			return nil, ErrSenderOverQuota // NeedOne is off when there is a Sent copy
		}
		return nil, ErrAllOverQuota
	}
	if err != nil {
		return nil, fmt.Errorf("deliver to %d recipients: %w", len(env.Recipients), err)
	}
	collect(out)
	res.Queued = remote
	if len(res.Failed) > 0 {
		// A user's own address that failed is not delivered; a group address
		// stays delivered when any member got the message.
		failed := map[string]bool{}
		for _, f := range res.Failed {
			failed[f.Address] = true
		}
		kept := res.Delivered[:0]
		for _, a := range res.Delivered {
			if !failed[a] {
				kept = append(kept, a)
			}
		}
		res.Delivered = kept
		d.opt.Logger.Warn("recipients over quota at delivery", "count", len(res.Failed), "from", env.From)
		d.bounceFailed(ctx, env, src, res.Failed)
	}
	return res, nil
}
