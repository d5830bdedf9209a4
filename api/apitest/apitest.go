// Package apitest runs the real HTTP API (router, handlers, store) for tests and
// checks every request and response against openapi.yaml, so that a response the
// document does not describe fails the test that caused it.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/handlers"
	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/mailbox"
)

// Admin credentials of every test environment.
const (
	AdminEmail    = "admin@example.com"
	AdminPassword = "admin-password-1"
)

var (
	docOnce sync.Once
	doc     *openapi3.T
	docRt   routers.Router
	docErr  error
)

func openapiPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "openapi.yaml")
}

func openapiBytes(t testing.TB) []byte {
	b, err := os.ReadFile(openapiPath())
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return b
}

// Document loads openapi.yaml from the repository root.
func Document(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	docOnce.Do(func() {
		var b []byte
		if b, docErr = os.ReadFile(openapiPath()); docErr != nil {
			return
		}
		loader := openapi3.NewLoader()
		if doc, docErr = loader.LoadFromData(b); docErr != nil {
			return
		}
		if docErr = doc.Validate(context.Background()); docErr != nil {
			return
		}
		doc.Servers = openapi3.Servers{{URL: "http://mailgate.test"}}
		// Downloads (a raw message, an attachment) are files: their bytes are
		// not checked against a schema, but their media type must be documented.
		for _, mt := range []string{"message/rfc822", "application/pdf", "image/png", "image/jpeg", "image/gif", "text/html", "text/calendar"} {
			if openapi3filter.RegisteredBodyDecoder(mt) == nil {
				openapi3filter.RegisterBodyDecoder(mt, openapi3filter.FileBodyDecoder)
			}
		}
		docRt, docErr = gorillamux.NewRouter(doc)
	})
	if docErr != nil {
		t.Fatalf("openapi.yaml: %v", docErr)
	}
	return doc, docRt
}

// Hostname is the server name of every test environment (Message-IDs, postmaster).
const Hostname = "mail.example.com"

// Env is a running API on a fresh store.
type Env struct {
	T      testing.TB
	Store  *models.Store
	Auth   *auth.Authenticator
	Tokens *auth.Tokens
	// Mailbox and Deliverer are the mail core the API uses (built by Start).
	Mailbox   *mailbox.Service
	Deliverer *delivery.Deliverer
	// MaxMessageBytes limits messages, for the mail core and the send route alike
	// (0: 25 MiB); change it before Start.
	MaxMessageBytes int64
	Server          *httptest.Server
	// AdminToken is a token of the admin AdminEmail.
	AdminToken string
	// Options may be changed before Start.
	Options api.Options

	secret   []byte
	registry *prometheus.Registry
}

// Setup prepares an environment: a fresh store with the domain example.com and
// the admin. Change e.Options, then call Start.
func Setup(t testing.TB) *Env {
	t.Helper()
	store := modelstest.New(t)
	ctx := context.Background()
	if _, err := store.CreateDomain(ctx, "example.com", ""); err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateUser(ctx, models.NewUser{Email: AdminEmail, PasswordHash: hash, Role: models.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	e := &Env{T: t, Store: store}
	e.Auth = auth.New(store, auth.Options{FailuresPerNetwork: 1000, FailuresPerAccount: 1000})
	e.Tokens = auth.NewTokens(store, secret, time.Hour)
	e.secret = secret
	e.registry = prometheus.NewRegistry()
	e.Options = api.Options{Tokens: e.Tokens, Registry: e.registry}
	return e
}

// Start builds the mail core and the handlers, runs the router and logs the admin in.
func (e *Env) Start() *Env {
	e.T.Helper()
	e.Mailbox = mailbox.New(e.Store, mailbox.Options{SpoolDir: e.T.TempDir(), MaxMessageBytes: e.MaxMessageBytes})
	e.Deliverer = delivery.New(e.Store, e.Mailbox, delivery.Options{Hostname: Hostname})
	if e.Options.Handlers == nil {
		e.Options.Handlers = handlers.New(handlers.Options{Store: e.Store, Auth: e.Auth, Tokens: e.Tokens,
			Cursors: handlers.NewCursors(e.secret), Metrics: promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{}),
			OpenAPI: openapiBytes(e.T), Mailbox: e.Mailbox, Deliverer: e.Deliverer})
	}
	if e.Options.MaxMessageBytes == 0 {
		e.Options.MaxMessageBytes = e.Mailbox.MaxMessageBytes()
	}
	e.Server = httptest.NewServer(api.New(e.Options))
	e.T.Cleanup(e.Server.Close)
	e.AdminToken = e.Login(AdminEmail, AdminPassword)
	return e
}

// New is Setup then Start with default options.
func New(t testing.TB) *Env { return Setup(t).Start() }

// Login returns a token, failing the test if login fails.
func (e *Env) Login(email, password string) string {
	e.T.Helper()
	r := e.Do("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password}, "")
	r.Want(http.StatusOK)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	r.JSON(&out)
	return out.AccessToken
}

// Response is an answer that passed the contract check.
type Response struct {
	t      testing.TB
	Status int
	Header http.Header
	Body   []byte
}

// Want fails the test unless the status is one of codes.
func (r *Response) Want(codes ...int) *Response {
	r.t.Helper()
	for _, c := range codes {
		if r.Status == c {
			return r
		}
	}
	r.t.Fatalf("status %d, want %v; body: %s", r.Status, codes, r.Body)
	return r
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		r.t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// ErrorCode returns the envelope's code (failing if the body is not an envelope).
func (r *Response) ErrorCode() string {
	r.t.Helper()
	var env handlers.ErrorEnvelope
	r.JSON(&env)
	if env.Error.Code == "" || env.Error.Message == "" {
		r.t.Fatalf("not an error envelope: %s", r.Body)
	}
	return env.Error.Code
}

// Do sends a request. body may be nil, a []byte or string (sent as is, as JSON),
// or any value (encoded as JSON). The request is checked against the document
// when it is expected to be valid (the response is 2xx); the response always is.
func (e *Env) Do(method, path string, body any, token string, headers ...string) *Response {
	e.T.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.T.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.Server.URL+path, bytes.NewReader(raw))
	if err != nil {
		e.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.Server.Client().Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatal(err)
	}
	r := &Response{t: e.T, Status: resp.StatusCode, Header: resp.Header, Body: out}
	if resp.Header.Get("X-Request-ID") == "" {
		e.T.Errorf("%s %s: no X-Request-ID", method, path)
	}
	if err := CheckContract(e.T, method, path, req.Header, raw, r); err != nil {
		e.T.Errorf("%s %s → %d breaks openapi.yaml: %v\nbody: %s", method, path, r.Status, err, out)
	}
	return r
}

// CheckContract validates one exchange against openapi.yaml: the response always
// (its status must be documented), the request only when the response is 2xx
// (a test of bad input sends a request the document forbids on purpose).
func CheckContract(t testing.TB, method, path string, reqHeader http.Header, reqBody []byte, r *Response) error {
	_, rt := Document(t)
	u := "http://mailgate.test" + path
	req, err := http.NewRequest(method, u, bytes.NewReader(reqBody))
	if err != nil {
		return err
	}
	req.Header = reqHeader.Clone()
	route, params, err := rt.FindRoute(req)
	if err != nil {
		if r.Status == http.StatusNotFound || r.Status == http.StatusMethodNotAllowed {
			return nil // a route the API does not have, asked for on purpose
		}
		return err
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if r.Status >= 200 && r.Status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return err
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.Status, Header: r.Header,
		Body: io.NopCloser(bytes.NewReader(r.Body)), Options: opts}
	return openapi3filter.ValidateResponse(ctx, out)
}
