// Package api is mailgate's HTTP front end: the one route table, the middleware
// (request IDs, nosniff and no-store, access log, panics, JWT, body limits, rate
// limits, metrics) and the HTTP server's life cycle.
package api

import (
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	swaggerFiles "github.com/swaggo/files"
	ginSwagger "github.com/swaggo/gin-swagger"

	_ "github.com/mailgate/mailgate/docs" // registers the swagger document
	"github.com/mailgate/mailgate/handlers"
)

// Options configure the router.
type Options struct {
	Handlers *handlers.Handlers
	Tokens   TokenVerifier
	// MaxBodyBytes caps JSON request bodies (0: 1 MiB).
	MaxBodyBytes int64
	// MaxMessageBytes caps the bodies of routes that carry a whole message (sending
	// mail): MAILGATE_MAX_MESSAGE_BYTES (0: 25 MiB).
	MaxMessageBytes int64
	// RateLimit is the sustained requests per second allowed per client IP on the
	// API (0: no limit); bursts of twice as many pass.
	RateLimit float64
	// LoginPerMinute is the login attempts allowed per client IP per minute (0: no limit).
	LoginPerMinute float64
	// Registry receives the HTTP metrics (nil: none are kept).
	Registry prometheus.Registerer
	Logger   *slog.Logger
	// TrustedProxies may set X-Forwarded-For (nil: none; the peer address is the client).
	TrustedProxies []string
}

// route is one entry of the route table.
type route struct {
	method, path string
	admin        bool // needs an admin (every /api/v1 route but login needs a token)
	public       bool // needs no token
	message      bool // the body is a whole message: limited by MaxMessageBytes, not MaxBodyBytes
	h            func(*gin.Context) error
}

func routes(h *handlers.Handlers) []route {
	return []route{
		{method: "POST", path: "/api/v1/auth/login", public: true, h: h.Login},
		{method: "GET", path: "/api/v1/me", h: h.Me},

		{method: "GET", path: "/api/v1/domains", admin: true, h: h.ListDomains},
		{method: "POST", path: "/api/v1/domains", admin: true, h: h.CreateDomain},
		{method: "GET", path: "/api/v1/domains/:domain", admin: true, h: h.GetDomain},
		{method: "PATCH", path: "/api/v1/domains/:domain", admin: true, h: h.UpdateDomain},
		{method: "DELETE", path: "/api/v1/domains/:domain", admin: true, h: h.DeleteDomain},

		{method: "GET", path: "/api/v1/users", admin: true, h: h.ListUsers},
		{method: "POST", path: "/api/v1/users", admin: true, h: h.CreateUser},
		{method: "GET", path: "/api/v1/users/:email", h: h.GetUser},
		{method: "PATCH", path: "/api/v1/users/:email", h: h.UpdateUser},
		{method: "DELETE", path: "/api/v1/users/:email", admin: true, h: h.DeleteUser},

		{method: "GET", path: "/api/v1/groups", admin: true, h: h.ListGroups},
		{method: "POST", path: "/api/v1/groups", admin: true, h: h.CreateGroup},
		{method: "GET", path: "/api/v1/groups/:email", admin: true, h: h.GetGroup},
		{method: "PATCH", path: "/api/v1/groups/:email", admin: true, h: h.UpdateGroup},
		{method: "DELETE", path: "/api/v1/groups/:email", admin: true, h: h.DeleteGroup},
		{method: "GET", path: "/api/v1/groups/:email/members", admin: true, h: h.ListGroupMembers},
		{method: "PUT", path: "/api/v1/groups/:email/members/:member", admin: true, h: h.AddGroupMember},
		{method: "DELETE", path: "/api/v1/groups/:email/members/:member", admin: true, h: h.RemoveGroupMember},

		{method: "GET", path: "/api/v1/queue", admin: true, h: h.ListQueue},
		{method: "POST", path: "/api/v1/queue/:id/retry", admin: true, h: h.RetryQueueEntry},
		{method: "DELETE", path: "/api/v1/queue/:id", admin: true, h: h.DeleteQueueEntry},

		{method: "GET", path: "/api/v1/mailboxes", h: h.ListMailboxes},
		{method: "POST", path: "/api/v1/mailboxes", h: h.CreateMailbox},
		{method: "PATCH", path: "/api/v1/mailboxes/:id", h: h.UpdateMailbox},
		{method: "DELETE", path: "/api/v1/mailboxes/:id", h: h.DeleteMailbox},

		{method: "GET", path: "/api/v1/messages", h: h.ListMessages},
		{method: "POST", path: "/api/v1/messages", message: true, h: h.SendMessage},
		{method: "GET", path: "/api/v1/messages/:id", h: h.GetMessage},
		{method: "PATCH", path: "/api/v1/messages/:id", h: h.UpdateMessage},
		{method: "DELETE", path: "/api/v1/messages/:id", h: h.DeleteMessage},
		{method: "GET", path: "/api/v1/messages/:id/raw", h: h.GetMessageRaw},
		{method: "GET", path: "/api/v1/messages/:id/attachments/:index", h: h.GetAttachment},
		{method: "POST", path: "/api/v1/messages/:id/trash", h: h.TrashMessage},

		{method: "GET", path: "/healthz", public: true, h: h.Health},
		{method: "GET", path: "/readyz", public: true, h: h.Ready},
		{method: "GET", path: "/metrics", public: true, h: h.Metrics},
		{method: "GET", path: "/openapi.yaml", public: true, h: h.OpenAPI},
	}
}

// Routes lists "METHOD /path" of every API operation (for the OpenAPI drift test).
func Routes() []string {
	var out []string
	for _, r := range routes(&handlers.Handlers{}) {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

// New builds the router.
func New(opt Options) *gin.Engine {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 1 << 20
	}
	if opt.MaxMessageBytes <= 0 {
		opt.MaxMessageBytes = 25 << 20
	}
	if opt.Registry == nil {
		opt.Registry = prometheus.NewRegistry() // kept by nobody
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.SetTrustedProxies(opt.TrustedProxies) //nolint:errcheck // nil or validated by main
	m := newMetrics(opt.Registry)
	r.Use(requestID, noSniffNoStore, accessLog(opt.Logger), recoverer(opt.Logger), m.observe)
	r.NoRoute(notFound)
	r.NoMethod(methodNotAllowed)

	var apiLimit, loginLimit *limiter
	if opt.RateLimit > 0 {
		apiLimit = newLimiter(opt.RateLimit, int(2*opt.RateLimit)+1)
	}
	if opt.LoginPerMinute > 0 {
		loginLimit = newLimiter(opt.LoginPerMinute/60, int(opt.LoginPerMinute))
	}
	authn := authenticate(opt.Tokens)
	for _, rt := range routes(opt.Handlers) {
		limit := opt.MaxBodyBytes
		if rt.message {
			limit = opt.MaxMessageBytes
		}
		chain := []gin.HandlerFunc{limitBody(limit)}
		switch {
		case rt.path == "/api/v1/auth/login":
			chain = append(chain, rateLimit(loginLimit, "login attempts"), rateLimit(apiLimit, "requests"))
		case rt.public:
		default:
			chain = append(chain, rateLimit(apiLimit, "requests"), authn)
		}
		if rt.admin {
			chain = append(chain, handlers.RequireAdmin)
		}
		chain = append(chain, handlers.H(rt.h))
		r.Handle(rt.method, rt.path, chain...)
	}

	// Swagger UI is the one route outside the OpenAPI document: it is the document's viewer.
	r.GET("/swagger/*any", ginSwagger.WrapHandler(swaggerFiles.Handler, ginSwagger.URL("/swagger/doc.json")))
	return r
}
