// Package handlers holds the HTTP API's handlers: each binds and validates a
// request, calls the mail core (protocol/…) or the store, and answers JSON. Every
// error goes through one table (errors.go) into one envelope.
package handlers

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// Options are the handlers' dependencies.
type Options struct {
	Store   *models.Store
	Auth    *auth.Authenticator
	Tokens  *auth.Tokens
	Cursors *Cursors
	// Metrics serves /metrics (nil: 404).
	Metrics http.Handler
	// OpenAPI is the document served at /openapi.yaml.
	OpenAPI []byte
	// Mailbox and Deliverer serve the mail endpoints: every read and change goes
	// through the one mailbox service, every send through the delivery pipeline.
	Mailbox   *mailbox.Service
	Deliverer *delivery.Deliverer
	// MaxRecipients caps the recipients of one sent message (0: 100).
	MaxRecipients int
}

// Handlers serves the API's endpoints.
type Handlers struct {
	store   *models.Store
	auth    *auth.Authenticator
	tokens  *auth.Tokens
	cursors *Cursors
	metrics http.Handler
	openapi []byte
	mbox    *mailbox.Service
	dlv     *delivery.Deliverer
	maxRcpt int
}

// New returns the handlers.
func New(opt Options) *Handlers {
	if opt.MaxRecipients <= 0 {
		opt.MaxRecipients = 100
	}
	return &Handlers{store: opt.Store, auth: opt.Auth, tokens: opt.Tokens, cursors: opt.Cursors, metrics: opt.Metrics, openapi: opt.OpenAPI,
		mbox: opt.Mailbox, dlv: opt.Deliverer, maxRcpt: opt.MaxRecipients}
}

const userKey = "mailgate.user"

// SetUser records the authenticated user of a request (the auth middleware does).
func SetUser(c *gin.Context, u *models.User) { c.Set(userKey, u) }

// CurrentUser is the authenticated user of a request, or nil.
func CurrentUser(c *gin.Context) *models.User {
	if v, ok := c.Get(userKey); ok {
		return v.(*models.User)
	}
	return nil
}

// RequireAdmin answers 403 unless the request's user is an admin.
func RequireAdmin(c *gin.Context) {
	if u := CurrentUser(c); u == nil || !u.IsAdmin() {
		WriteError(c, Errorf(http.StatusForbidden, CodeForbidden, "this needs an admin"))
		return
	}
	c.Next()
}

func ctxOf(c *gin.Context) context.Context { return c.Request.Context() }
