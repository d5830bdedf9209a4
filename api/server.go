package api

import (
	"context"
	"crypto/tls"
	"errors"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Server is the HTTP server's life cycle around a router.
type Server struct {
	srv *http.Server
}

// NewServer wraps a handler with sane timeouts. What net/http itself has to
// say (a failed TLS handshake, an accept error) goes to log (nil: nowhere).
func NewServer(h http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{srv: &http.Server{
		Handler:           h,
		ErrorLog:          stdlog.New(serverLog{log}, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // large sends upload slowly
		WriteTimeout:      10 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}}
}

// Serve answers requests on ln until Shutdown; it then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeTLS answers requests over TLS (HTTP/2 or HTTP/1.1) on ln until Shutdown;
// it then returns nil. It may run beside Serve on another listener: one server,
// one handler, one Shutdown for both.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return s.Serve(tls.NewListener(ln, cfg))
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// serverLog puts the net/http server's own messages in the structured log. A
// failed TLS handshake is everyday noise on a public port (scanners, clients
// that distrust the certificate): debug; the rest is a warning.
type serverLog struct{ log *slog.Logger }

func (w serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	lvl := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		lvl = slog.LevelDebug
	}
	w.log.Log(context.Background(), lvl, msg)
	return len(p), nil
}
