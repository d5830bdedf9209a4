package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/handlers"
	"github.com/mailgate/mailgate/models"
)

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request ID a context carries.
func RequestID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey).(string)
	return id, ok
}

// LogHandler stamps the request ID carried by a context on every log record, so
// that every line a request causes can be found by its X-Request-ID.
type LogHandler struct{ slog.Handler }

// Handle adds request_id.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := RequestID(ctx); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper.
func (h LogHandler) WithAttrs(a []slog.Attr) slog.Handler { return LogHandler{h.Handler.WithAttrs(a)} }

// WithGroup keeps the wrapper.
func (h LogHandler) WithGroup(n string) slog.Handler { return LogHandler{h.Handler.WithGroup(n)} }

// requestID accepts a sane incoming X-Request-ID or makes one, and puts it in
// the response and in the request's context.
func requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !validRequestID(id) {
		var b [12]byte
		rand.Read(b[:]) //nolint:errcheck // never fails
		id = hex.EncodeToString(b[:])
	}
	c.Header("X-Request-ID", id)
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey, id))
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)) {
			return false
		}
	}
	return true
}

// noSniffNoStore marks every answer nosniff (a browser must not take JSON or a
// message for HTML or script) and, but for the Swagger UI's static files,
// no-store: API answers carry tokens and mail, which no cache, shared or the
// browser's own, may keep.
func noSniffNoStore(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if p := c.Request.URL.Path; !strings.HasPrefix(p, "/swagger/") || strings.HasSuffix(p, ".json") {
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
}

// accessLog writes one line per request, with the errors handlers recorded.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		st := c.Writer.Status()
		attrs := []any{"method", c.Request.Method, "path", c.Request.URL.Path, "status", st,
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "remote", c.ClientIP(), "bytes", c.Writer.Size()}
		if u := handlers.CurrentUser(c); u != nil {
			attrs = append(attrs, "user", u.Email)
		}
		if len(c.Errors) > 0 {
			attrs = append(attrs, "err", c.Errors.String())
		}
		lvl := slog.LevelInfo
		if st >= 500 {
			lvl = slog.LevelError
		}
		log.Log(c.Request.Context(), lvl, "http request", attrs...)
	}
}

// recoverer turns a panic into a 500 envelope and a logged stack.
func recoverer(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, v any) {
		if v == http.ErrAbortHandler {
			// A handler that already sent part of a body asks to drop the
			// connection, so the client cannot take a cut body for a whole one.
			panic(v)
		}
		log.ErrorContext(c.Request.Context(), "panic in handler", "panic", fmt.Sprint(v))
		handlers.WriteError(c, fmt.Errorf("panic: %v", v))
	})
}

// TokenVerifier checks a bearer token and returns its user.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*models.User, error)
}

// authenticate requires a valid bearer token.
func authenticate(tv TokenVerifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			handlers.WriteError(c, handlers.Errorf(http.StatusUnauthorized, handlers.CodeUnauthorized, "missing bearer token: send Authorization: Bearer <token> from POST /api/v1/auth/login"))
			return
		}
		u, err := tv.Verify(c.Request.Context(), strings.TrimSpace(tok))
		if err != nil {
			handlers.WriteError(c, err)
			return
		}
		handlers.SetUser(c, u)
		c.Next()
	}
}

// limitBody caps request bodies: reading past n is a 413 in the envelope.
func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > n {
			handlers.WriteError(c, handlers.Errorf(http.StatusRequestEntityTooLarge, handlers.CodeTooLarge,
				fmt.Sprintf("request body larger than %d bytes", n)))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

// rateLimit answers 429 with Retry-After to a client over its budget.
func rateLimit(l *limiter, what string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			c.Next()
			return
		}
		if ok, wait := l.allow(c.ClientIP()); !ok {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			handlers.WriteError(c, handlers.Errorf(http.StatusTooManyRequests, handlers.CodeRateLimited, "too many "+what+"; retry later"))
			return
		}
		c.Next()
	}
}

// notFound and methodNotAllowed keep the envelope for unknown routes. The
// answer never repeats the path: it is whatever the client sent (markup, script,
// a reflected lure), and the access log has it anyway.
func notFound(c *gin.Context) {
	handlers.WriteError(c, handlers.Errorf(http.StatusNotFound, handlers.CodeNotFound, "no such endpoint; see /openapi.yaml for the API's routes"))
}

func methodNotAllowed(c *gin.Context) {
	handlers.WriteError(c, handlers.Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method "+c.Request.Method+" is not allowed here"))
}
