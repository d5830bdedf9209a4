package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/wire"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = wire.ErrServerClosed

// Mode is the role of a listener.
type Mode int

const (
	// ModeMTA receives mail from other servers (port 25).
	ModeMTA Mode = iota
	// ModeSubmission takes mail from users' clients, AUTH required (port 587).
	ModeSubmission
	// ModeSubmissions is ModeSubmission over implicit TLS (port 465).
	ModeSubmissions
)

func (m Mode) String() string {
	switch m {
	case ModeMTA:
		return "mta"
	case ModeSubmission:
		return "submission"
	case ModeSubmissions:
		return "submissions"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// DefaultIdleTimeout is how long a client may go without completing a
// command when wire.Limits sets no idle timeout (RFC 5321 §4.5.3.2.7).
const DefaultIdleTimeout = 5 * time.Minute

// Options tune a Server. Zero values take the defaults given.
type Options struct {
	Mode Mode
	// Hostname names this server in the greeting and trace headers ("": the
	// deliverer's hostname).
	Hostname string
	// TLSConfig enables STARTTLS (nil: not offered). Required by ModeSubmissions.
	TLSConfig *tls.Config
	// MaxMessageBytes is the largest message accepted, as sent (0: the mailbox
	// service's limit).
	MaxMessageBytes int64
	// MaxRecipients per message (0: 100).
	MaxRecipients int
	// Limits, Policy and Metrics are the connection layer's, shared with the
	// other front ends. The login timeout applies to the submission modes only:
	// servers sending to port 25 never log in.
	Limits  wire.Limits
	Policy  wire.Policy
	Metrics *wire.Metrics
	Logger  *slog.Logger
}

// storeTimeout bounds storing one message once it is received: a transfer,
// longer than one command's store work.
const storeTimeout = 5 * time.Minute

// Server is an SMTP server in one mode. Serve may be called for several
// listeners.
type Server struct {
	authn *auth.Authenticator
	dlv   *delivery.Deliverer
	opt   Options
	log   *slog.Logger
	gs    *gosmtp.Server
	wire  *wire.Server
	conns *wire.Handoff // hands the wire layer's connections to go-smtp
	once  sync.Once     // starts go-smtp
}

// New returns a Server that authenticates with authn and delivers with dlv.
func New(authn *auth.Authenticator, dlv *delivery.Deliverer, opt Options) *Server {
	if opt.Hostname == "" {
		opt.Hostname = dlv.Hostname()
	}
	if opt.MaxMessageBytes <= 0 {
		opt.MaxMessageBytes = dlv.Mailbox().MaxMessageBytes()
	}
	if opt.MaxRecipients <= 0 {
		opt.MaxRecipients = 100
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	log := opt.Logger.With("proto", "smtp", "mode", opt.Mode.String())
	s := &Server{authn: authn, dlv: dlv, opt: opt, log: log, conns: wire.NewHandoff("mailgate-smtp")}
	gs := gosmtp.NewServer(backend{s})
	gs.Domain = opt.Hostname
	// STARTTLS is cmdConn's: go-smtp is not told of the TLS configuration.
	gs.TLSConfig = nil
	gs.MaxMessageBytes = opt.MaxMessageBytes
	gs.MaxRecipients = opt.MaxRecipients
	// The session decides who may AUTH (TLS, loopback, the option): go-smtp's
	// switch is all or nothing.
	gs.AllowInsecureAuth = true
	// The wire layer owns every deadline (go-smtp's ReadTimeout would be one
	// deadline for a whole DATA body).
	gs.ReadTimeout, gs.WriteTimeout = 0, 0
	gs.EnableSMTPUTF8 = true
	gs.ErrorLog = errorLog{log}
	s.gs = gs
	s.wire = wire.NewServer(wire.Options{
		Protocol: "smtp", DefaultIdle: DefaultIdleTimeout, NeedsLogin: opt.Mode != ModeMTA,
		Limits: opt.Limits, Policy: opt.Policy, TLSConfig: opt.TLSConfig, Metrics: opt.Metrics, Logger: log,
		Handle: func(c *wire.Conn, nc net.Conn) {
			if !s.conns.Give(newCmdConn(s, nc, c.ImplicitTLS())) {
				nc.Close()
			}
		},
		Refuse: func(nc net.Conn, _ string) {
			io.WriteString(nc, "421 4.7.0 "+opt.Hostname+" Too many connections, try again later\r\n") //nolint:errcheck // closing anyway
		},
	})
	return s
}

// Serve accepts connections on ln until Shutdown or Close, and then returns
// ErrServerClosed. ln is a plain TCP listener in every mode: in ModeSubmissions
// the implicit TLS runs above the connection layer's deadlines.
func (s *Server) Serve(ln net.Listener) error {
	s.once.Do(func() {
		go s.gs.Serve(s.conns) //nolint:errcheck // returns once conns is closed
	})
	if s.opt.Mode == ModeSubmissions {
		return s.wire.ServeTLS(ln)
	}
	return s.wire.Serve(ln)
}

// Shutdown stops accepting connections, ends idle ones (421) and waits for the
// messages in transfer to be stored and answered. If ctx ends first, the
// remaining connections are closed (their messages are not acknowledged, so
// their clients retry) and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.wire.Shutdown(ctx)
	s.conns.Close()
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	err := s.wire.Close()
	s.conns.Close()
	return err
}

// Metrics are the counters of this server's connections.
func (s *Server) Metrics() *wire.Metrics { return s.wire.Metrics() }

// errorLog routes go-smtp's internal error reports to slog.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Warn("smtp library", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (e errorLog) Println(v ...any) {
	e.log.Warn("smtp library", "detail", strings.TrimSpace(fmt.Sprintln(v...)))
}
