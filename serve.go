package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/handlers"
	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/imap"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/pop3"
	"github.com/mailgate/mailgate/protocol/queue"
	"github.com/mailgate/mailgate/protocol/smtp"
	"github.com/mailgate/mailgate/protocol/wire"
)

// serve runs every configured front end until SIGINT/SIGTERM (or ctx ends), then
// stops them gracefully: listeners close, sessions in flight get time to finish.
func serve(ctx context.Context, args []string, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	cfg, err := loadConfig("serve", args, stderr, lookupEnv, nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.store.Close()
	lns, err := bindAll(cfg)
	if err != nil {
		return err
	}
	where := []any{"version", versionString(), "database", string(a.store.Dialect())}
	for _, l := range lns {
		where = append(where, l.name, l.ln.Addr().String())
	}
	log.Info("mailgate listening", where...)
	return a.run(ctx, lns)
}

// app is the wired server: the store and the mail core that every front end uses.
type app struct {
	cfg      *Config
	log      *slog.Logger
	store    *models.Store
	tls      *tls.Config
	instance string
	authn    *auth.Authenticator
	tokens   *auth.Tokens
	secret   []byte
	mbox     *mailbox.Service
	dlv      *delivery.Deliverer
	outbound *queue.Queue
	reg      *prometheus.Registry // every metric of /metrics
	// distrustLoopback makes loopback clients count as remote for the
	// plaintext-login rule: set by tests only, to see what remote clients see.
	distrustLoopback bool
}

// newApp opens and migrates the database, makes sure the shared secrets and the
// first admin exist, and builds the mail core.
func newApp(ctx context.Context, cfg *Config, log *slog.Logger) (*app, error) {
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, store: store, instance: instanceName(cfg)}
	if err := a.prepare(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return a, nil
}

func (a *app) prepare(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	mig, err := migrationsFor(a.store, log)
	if err != nil {
		return err
	}
	if _, err := mig.Up(ctx); err != nil {
		return err
	}
	if a.secret, err = jwtSecret(ctx, a.store, cfg); err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, a.store, cfg, log); err != nil {
		return err
	}
	if a.tls, err = tlsConfig(cfg, log); err != nil {
		return err
	}
	spoolDir := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return fmt.Errorf("create spool dir (MAILGATE_DATA_DIR): %w", err)
	}
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.authn = auth.New(a.store, auth.Options{FailuresPerNetwork: cfg.FailuresPerNet, FailuresPerAccount: cfg.FailuresPerAcct,
		Window: cfg.FailureWindow, CacheTTL: cfg.AuthCacheTTL, Logger: log.With("component", "auth")})
	a.tokens = auth.NewTokens(a.store, a.secret, cfg.TokenTTL)
	a.mbox = mailbox.New(a.store, mailbox.Options{SpoolDir: spoolDir, MaxMessageBytes: cfg.MaxMessageBytes, Logger: log})
	a.dlv = delivery.New(a.store, a.mbox, delivery.Options{Hostname: cfg.Hostname, QueueLifetime: cfg.QueueLifetime,
		Registry: a.reg, Logger: log.With("component", "delivery")})
	routes, err := queue.ParseTransportMap(cfg.TransportMap)
	if err != nil {
		return fmt.Errorf("MAILGATE_TRANSPORT_MAP: %w", err)
	}
	a.outbound, err = queue.New(a.store, a.mbox, a.dlv, queue.Options{Hostname: cfg.Hostname, RelayHost: cfg.RelayHost,
		RelayUsername: cfg.RelayUsername, RelayPassword: cfg.RelayPassword, TransportMap: routes, InstanceID: a.instance,
		Registry: a.reg, BackoffBase: cfg.QueueRetryMin, BackoffMax: cfg.QueueRetryMax, Logger: log.With("component", "queue")})
	if err != nil {
		return fmt.Errorf("MAILGATE_RELAY_HOST: %w", err)
	}
	return nil
}

// frontEnd is one server: how it serves a listener, and how it stops.
type frontEnd struct {
	server   string // one server may serve two listeners (STARTTLS and implicit TLS, HTTP and HTTPS)
	serve    func(net.Listener) error
	closed   error // what serve returns after shutdown
	shutdown func(context.Context) error
}

// frontEnds builds the server of every listener name.
func (a *app) frontEnds() map[string]frontEnd {
	cfg, log := a.cfg, a.log
	reg := a.reg
	h := handlers.New(handlers.Options{Store: a.store, Auth: a.authn, Tokens: a.tokens, Cursors: handlers.NewCursors(a.secret),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), OpenAPI: openapiYAML,
		Mailbox: a.mbox, Deliverer: a.dlv, MaxRecipients: cfg.MaxRecipients})
	var proxies []string
	for _, p := range strings.Split(cfg.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			proxies = append(proxies, p)
		}
	}
	httpLog := log.With("component", "http")
	httpSrv := api.NewServer(api.New(api.Options{Handlers: h, Tokens: a.tokens, RateLimit: cfg.RateLimit,
		LoginPerMinute: cfg.LoginRateLimit, MaxMessageBytes: cfg.MaxMessageBytes, Registry: reg,
		Logger: httpLog, TrustedProxies: proxies}), httpLog)
	limits, policy := a.wireLimits(), a.wirePolicy()
	smtpMetrics := wire.NewMetrics(reg, "smtp")
	smtpSrv := func(mode smtp.Mode) *smtp.Server {
		return smtp.New(a.authn, a.dlv, smtp.Options{Mode: mode, Hostname: cfg.Hostname, TLSConfig: a.tls,
			MaxMessageBytes: cfg.MaxMessageBytes, MaxRecipients: cfg.MaxRecipients,
			Limits: limits, Policy: policy, Metrics: smtpMetrics,
			Logger: log.With("component", "smtp")})
	}
	mta, submission, submissions := smtpSrv(smtp.ModeMTA), smtpSrv(smtp.ModeSubmission), smtpSrv(smtp.ModeSubmissions)
	imapSrv := imap.New(a.authn, a.mbox, imap.Options{Hostname: cfg.Hostname, TLSConfig: a.tls,
		MaxMessageBytes: cfg.MaxMessageBytes, Limits: limits, Policy: policy, Metrics: wire.NewMetrics(reg, "imap"), Version: versionString(),
		Logger: log.With("component", "imap")})
	popSrv := pop3.New(a.authn, a.mbox, pop3.Options{Hostname: cfg.Hostname, TLSConfig: a.tls,
		Limits: limits, Policy: policy, Metrics: wire.NewMetrics(reg, "pop3"),
		InstanceID: a.instance, Logger: log.With("component", "pop3")})
	return map[string]frontEnd{
		"http":        {"http", httpSrv.Serve, nil, httpSrv.Shutdown},
		"https":       {"http", func(ln net.Listener) error { return httpSrv.ServeTLS(ln, a.tls) }, nil, httpSrv.Shutdown},
		"smtp":        {"smtp", mta.Serve, smtp.ErrServerClosed, mta.Shutdown},
		"submission":  {"submission", submission.Serve, smtp.ErrServerClosed, submission.Shutdown},
		"submissions": {"submissions", submissions.Serve, smtp.ErrServerClosed, submissions.Shutdown},
		"imap":        {"imap", imapSrv.Serve, imap.ErrServerClosed, imapSrv.Shutdown},
		"imaps":       {"imap", imapSrv.ServeTLS, imap.ErrServerClosed, imapSrv.Shutdown},
		"pop3":        {"pop3", popSrv.Serve, pop3.ErrServerClosed, popSrv.Shutdown},
		"pop3s":       {"pop3", popSrv.ServeTLS, pop3.ErrServerClosed, popSrv.Shutdown},
	}
}

// shutdownGrace is how long each server gets, all at once, to let its sessions
// in flight finish when mailgate stops.
const shutdownGrace = 20 * time.Second

// run serves the listeners and the background work until ctx ends, then shuts
// every server down in parallel, each with the whole grace period.
func (a *app) run(ctx context.Context, lns []*listener) error {
	g, gctx := errgroup.WithContext(ctx)
	fes := a.frontEnds()
	shutdowns := map[string]func(context.Context) error{}
	for _, l := range lns {
		fe, ln := fes[l.name], l.ln
		g.Go(func() error {
			if err := fe.serve(ln); err != nil && !errors.Is(err, fe.closed) {
				return fmt.Errorf("%s (%s): %w", l.name, l.env, err)
			}
			return nil
		})
		shutdowns[fe.server] = fe.shutdown
	}
	// The store's background work (group commit, the change listener) stops
	// last: after the servers' sessions and the queue worker have finished
	// delivering what they accepted.
	storeCtx, stopStore := context.WithCancel(context.Background())
	defer stopStore()
	g.Go(func() error { return a.store.Run(storeCtx) })
	g.Go(func() error { sweep(gctx, a.mbox, a.authn, a.log); return nil })
	g.Go(func() error { a.mbox.RunIndexer(gctx); return nil })
	queueDone := make(chan struct{})
	g.Go(func() error {
		defer close(queueDone)
		return a.outbound.Run(gctx)
	})
	g.Go(func() error {
		defer stopStore()
		<-gctx.Done()
		a.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		errs := make(chan error, len(shutdowns))
		for name, s := range shutdowns {
			go func() {
				if err := s(sctx); err != nil {
					errs <- fmt.Errorf("shut down %s: %w", name, err)
					return
				}
				errs <- nil
			}()
		}
		var all []error
		for range shutdowns {
			all = append(all, <-errs)
		}
		<-queueDone
		return errors.Join(all...)
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	a.log.Info("stopped")
	return nil
}

// wireLimits are the connection limits every mail front end shares.
func (a *app) wireLimits() wire.Limits {
	return wire.Limits{MaxConnections: a.cfg.MaxConnections, MaxConnectionsPerIP: a.cfg.MaxConnsPerIP,
		LoginTimeout: a.cfg.LoginTimeout, IdleTimeout: a.cfg.IdleTimeout}
}

// wirePolicy is the plaintext-login rule every mail front end shares.
func (a *app) wirePolicy() wire.Policy {
	return wire.Policy{AllowInsecureAuth: a.cfg.AllowInsecureAuth, DistrustLoopback: a.distrustLoopback}
}

// bindAll opens every configured listener, or none.
func bindAll(cfg *Config) ([]*listener, error) {
	spec := []struct{ name, env, addr string }{
		{"http", "MAILGATE_HTTP_ADDR", cfg.HTTPAddr},
		{"https", "MAILGATE_HTTPS_ADDR", cfg.HTTPSAddr},
		{"smtp", "MAILGATE_SMTP_ADDR", cfg.SMTPAddr},
		{"submission", "MAILGATE_SUBMISSION_ADDR", cfg.SubmissionAddr},
		{"submissions", "MAILGATE_SUBMISSIONS_ADDR", cfg.SubmissionsAddr},
		{"imap", "MAILGATE_IMAP_ADDR", cfg.IMAPAddr},
		{"imaps", "MAILGATE_IMAPS_ADDR", cfg.IMAPSAddr},
		{"pop3", "MAILGATE_POP3_ADDR", cfg.POP3Addr},
		{"pop3s", "MAILGATE_POP3S_ADDR", cfg.POP3SAddr},
	}
	var out []*listener
	for _, s := range spec {
		l, err := bind(s.name, s.env, s.addr, cfg.explicit[s.env])
		if err != nil {
			for _, o := range out {
				o.ln.Close()
			}
			return nil, err
		}
		if l != nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// instanceName tells this process apart from other instances on the database
// (it owns leases: the POP3 maildrop lock, outbound queue entries).
func instanceName(cfg *Config) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%s/%d", cfg.Hostname, host, os.Getpid())
}

// sweep removes message content that nothing references any more, and login
// failures that left the budget's window.
func sweep(ctx context.Context, mbox *mailbox.Service, authn *auth.Authenticator, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := authn.Prune(ctx); err != nil && ctx.Err() == nil {
			log.Warn("prune login budget", "err", err)
		}
		n, err := mbox.Sweep(ctx, time.Now().Add(-time.Hour))
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep unreferenced content", "err", err)
		} else if n > 0 {
			log.Info("swept unreferenced content", "count", n)
		}
	}
}
