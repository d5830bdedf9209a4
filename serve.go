package main

import (
	"context"
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
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/imap"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/pop3"
	"github.com/mailgate/mailgate/protocol/queue"
	"github.com/mailgate/mailgate/protocol/smtp"
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

	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	mig, err := migrationsFor(store, log)
	if err != nil {
		return err
	}
	if _, err := mig.Up(ctx); err != nil {
		return err
	}
	secret, err := jwtSecret(ctx, store, cfg)
	if err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, store, cfg, log); err != nil {
		return err
	}
	tlsCfg, err := tlsConfig(cfg, log)
	if err != nil {
		return err
	}
	instanceID := instanceName(cfg)

	spoolDir := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return fmt.Errorf("create spool dir (MAILGATE_DATA_DIR): %w", err)
	}
	authn := auth.New(store, auth.Options{Logger: log.With("component", "auth")})
	tokens := auth.NewTokens(store, secret, cfg.TokenTTL)
	mbox := mailbox.New(store, mailbox.Options{SpoolDir: spoolDir, MaxMessageBytes: cfg.MaxMessageBytes, Logger: log})
	dlv := delivery.New(store, mbox, delivery.Options{Hostname: cfg.Hostname, QueueLifetime: cfg.QueueLifetime, Logger: log.With("component", "delivery")})
	routes, err := queue.ParseTransportMap(cfg.TransportMap)
	if err != nil {
		return fmt.Errorf("MAILGATE_TRANSPORT_MAP: %w", err)
	}
	outbound, err := queue.New(store, mbox, dlv, queue.Options{Hostname: cfg.Hostname, RelayHost: cfg.RelayHost,
		RelayUsername: cfg.RelayUsername, RelayPassword: cfg.RelayPassword, TransportMap: routes, InstanceID: instanceID,
		BackoffBase: cfg.QueueRetryMin, BackoffMax: cfg.QueueRetryMax,
		Logger: log.With("component", "queue")})
	if err != nil {
		return fmt.Errorf("MAILGATE_RELAY_HOST: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := handlers.New(handlers.Options{Store: store, Auth: authn, Tokens: tokens, Cursors: handlers.NewCursors(secret),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), OpenAPI: openapiYAML,
		Mailbox: mbox, Deliverer: dlv, MaxRecipients: cfg.MaxRecipients})
	var proxies []string
	for _, p := range strings.Split(cfg.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			proxies = append(proxies, p)
		}
	}
	router := api.New(api.Options{Handlers: h, Tokens: tokens, RateLimit: cfg.RateLimit,
		LoginPerMinute: cfg.LoginRateLimit, MaxMessageBytes: cfg.MaxMessageBytes, Registry: reg, Logger: log.With("component", "http"), TrustedProxies: proxies})

	lns, err := bindAll(cfg)
	if err != nil {
		return err
	}
	var where []any
	for _, l := range lns {
		where = append(where, l.name, l.ln.Addr().String())
	}
	log.Info("mailgate listening", append(where, "version", versionString(), "database", string(store.Dialect()))...)

	httpSrv := api.NewServer(router)
	popSrv := pop3.New(authn, mbox, pop3.Options{Hostname: cfg.Hostname, TLSConfig: tlsCfg, AllowInsecureAuth: cfg.AllowInsecureAuth,
		InstanceID: instanceID, Logger: log.With("component", "pop3")})

	smtpSrv := func(mode smtp.Mode) *smtp.Server {
		return smtp.New(authn, dlv, smtp.Options{Mode: mode, Hostname: cfg.Hostname, TLSConfig: tlsCfg,
			AllowInsecureAuth: cfg.AllowInsecureAuth, MaxMessageBytes: cfg.MaxMessageBytes, MaxRecipients: cfg.MaxRecipients,
			Logger: log.With("component", "smtp", "mode", mode.String())})
	}
	mta, submission, submissions := smtpSrv(smtp.ModeMTA), smtpSrv(smtp.ModeSubmission), smtpSrv(smtp.ModeSubmissions)

	imapSrv := imap.New(authn, mbox, imap.Options{Hostname: cfg.Hostname, TLSConfig: tlsCfg, AllowInsecureAuth: cfg.AllowInsecureAuth,
		MaxMessageBytes: cfg.MaxMessageBytes, Logger: log.With("component", "imap")})

	g, gctx := errgroup.WithContext(ctx)
	serveOn := func(ln net.Listener, serve func(net.Listener) error, closed error) {
		g.Go(func() error {
			if err := serve(ln); err != nil && !errors.Is(err, closed) {
				return err
			}
			return nil
		})
	}
	for _, l := range lns {
		switch l.name {
		case "http":
			serveOn(l.ln, httpSrv.Serve, nil)
		case "smtp":
			serveOn(l.ln, mta.Serve, smtp.ErrServerClosed)
		case "submission":
			serveOn(l.ln, submission.Serve, smtp.ErrServerClosed)
		case "submissions":
			serveOn(l.ln, submissions.Serve, smtp.ErrServerClosed)
		case "imap":
			serveOn(l.ln, imapSrv.Serve, imap.ErrServerClosed)
		case "imaps":
			serveOn(l.ln, imapSrv.ServeTLS, imap.ErrServerClosed)
		case "pop3":
			serveOn(l.ln, popSrv.Serve, pop3.ErrServerClosed)
		case "pop3s":
			serveOn(l.ln, popSrv.ServeTLS, pop3.ErrServerClosed)
		}
	}
	shutdowns := []func(context.Context) error{httpSrv.Shutdown, popSrv.Shutdown, mta.Shutdown, submission.Shutdown, submissions.Shutdown, imapSrv.Shutdown}
	g.Go(func() error { sweep(gctx, mbox, log); return nil })
	g.Go(func() error { mbox.RunIndexer(gctx); return nil })
	g.Go(func() error { return outbound.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var errs []error
		for _, s := range shutdowns {
			errs = append(errs, s(sctx))
		}
		return errors.Join(errs...)
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

// bindAll opens every configured listener, or none.
func bindAll(cfg *Config) ([]*listener, error) {
	spec := []struct{ name, env, addr string }{
		{"http", "MAILGATE_HTTP_ADDR", cfg.HTTPAddr},
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

// sweep removes message content that nothing references any more.
func sweep(ctx context.Context, mbox *mailbox.Service, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := mbox.Sweep(ctx, time.Now().Add(-time.Hour))
		if err != nil && ctx.Err() == nil {
			log.Warn("sweep unreferenced content", "err", err)
		} else if n > 0 {
			log.Info("swept unreferenced content", "count", n)
		}
	}
}
