package pop3

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/wire"
)

const (
	testUser     = "alice@example.com"
	testPassword = "correct horse battery"
)

// env is one POP3 server on a fresh store, listening on loopback: plain (with
// STLS) at addr and implicit TLS at tlsAddr.
type env struct {
	t       testing.TB
	url     string
	store   *models.Store
	mbox    *mailbox.Service
	dlv     *delivery.Deliverer
	srv     *Server
	addr    string
	tlsAddr string
	user    *models.User
	reg     *prometheus.Registry // the server's metrics
	served  chan error           // Serve's results
}

type envOption func(*envConfig)

type envConfig struct {
	url    string // "" for a new database
	opt    Options
	noUser bool
	noTLS  bool // no certificate: no STLS, no implicit-TLS listener
}

var (
	noTLS envOption = func(c *envConfig) { c.noTLS = true }
	// asRemoteUsers treats loopback clients like remote ones (no plaintext
	// exemption).
	asRemoteUsers envOption = func(c *envConfig) { c.opt.Policy.DistrustLoopback = true }
)

func withOptions(f func(*Options)) envOption { return func(c *envConfig) { f(&c.opt) } }

// onURL opens the store at an existing URL: a second instance on the same database.
func onURL(u string) envOption { return func(c *envConfig) { c.url, c.noUser = u, true } }

var (
	certOnce sync.Once
	testCert tls.Certificate
)

// serverTLS returns a TLS config with a self-signed certificate for 127.0.0.1.
func serverTLS(t testing.TB) *tls.Config {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailgate test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return &tls.Config{Certificates: []tls.Certificate{testCert}, MinVersion: tls.VersionTLS12}
}

// testLogger writes the server's log into the test's output, shown on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	cfg := envConfig{opt: Options{Hostname: "pop.example.com", Logger: testLogger(t)}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.url == "" {
		cfg.url = modelstest.URL(t)
	}
	if cfg.opt.TLSConfig == nil && !cfg.noTLS {
		cfg.opt.TLSConfig = serverTLS(t)
	}
	e := &env{t: t, url: cfg.url, store: modelstest.Open(t, cfg.url), reg: prometheus.NewRegistry(), served: make(chan error, 2)}
	if cfg.opt.Metrics == nil {
		cfg.opt.Metrics = wire.NewMetrics(e.reg, "pop3")
	}
	ctx := context.Background()
	e.mbox = mailbox.New(e.store, mailbox.Options{MaxMessageBytes: 64 << 20})
	e.dlv = delivery.New(e.store, e.mbox, delivery.Options{Hostname: "mx.example.com"})
	if !cfg.noUser {
		if _, err := e.store.CreateDomain(ctx, "example.com", ""); err != nil {
			t.Fatalf("CreateDomain: %v", err)
		}
		e.user = e.createUser(testUser, testPassword)
	} else {
		u, err := e.store.GetUser(ctx, testUser)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		e.user = u
	}
	authn := auth.New(e.store, auth.Options{FailuresPerNetwork: 1000, FailuresPerAccount: 1000})
	e.srv = New(authn, e.mbox, cfg.opt)
	e.addr = e.listen(false)
	if !cfg.noTLS {
		e.tlsAddr = e.listen(true)
	}
	t.Cleanup(e.close)
	return e
}

func (e *env) createUser(email, password string) *models.User {
	e.t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.store.CreateUser(context.Background(), models.NewUser{Email: email, PasswordHash: hash})
	if err != nil {
		e.t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func (e *env) listen(implicitTLS bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		if implicitTLS {
			e.served <- e.srv.ServeTLS(ln)
		} else {
			e.served <- e.srv.Serve(ln)
		}
	}()
	return ln.Addr().String()
}

// close shuts the server down and checks that no command panicked.
func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("Shutdown: %v", err)
	}
	if n := e.srv.panics.Load(); n != 0 {
		e.t.Errorf("%d commands panicked (see log)", n)
	}
}

// waitIdle waits until the server has no connection left open (a closed
// session has released its lock by then).
func (e *env) waitIdle() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.metric("mailgate_pop3_connections_open") > 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("%v sessions still open", e.metric("mailgate_pop3_connections_open"))
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline, not synchronisation by sleep
	}
}

// metric reads one series of the server's metrics: name, with the labels
// given as name, value pairs (0 when the series does not exist yet).
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			return value(m)
		}
	}
	return 0
}

// series reads every series of one of the server's metrics, keyed by its
// labels as "name=value,…" in the order the registry sorts them.
func (e *env) series(name string) map[string]float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var key []string
			for _, lp := range m.GetLabel() {
				key = append(key, lp.GetName()+"="+lp.GetValue())
			}
			out[strings.Join(key, ",")] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return m.GetUntyped().GetValue()
}

// deliver sends raw to the test user through the delivery pipeline, as SMTP
// does, and returns the stored message and its exact stored bytes.
func (e *env) deliver(raw string) (*models.Message, []byte) {
	e.t.Helper()
	return e.deliverTo(e.user, raw)
}

func (e *env) deliverTo(u *models.User, raw string) (*models.Message, []byte) {
	e.t.Helper()
	ctx := context.Background()
	rcpt, err := e.dlv.Resolve(ctx, u.Email, nil, int64(len(raw)))
	if err != nil {
		e.t.Fatalf("Resolve: %v", err)
	}
	sp := e.mbox.NewSpool()
	defer sp.Close()
	if _, err := io.Copy(sp, strings.NewReader(raw)); err != nil {
		e.t.Fatal(err)
	}
	if err := sp.Finish(); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.dlv.Deliver(ctx, &delivery.Envelope{From: "sender@remote.test", Recipients: []*delivery.Recipient{rcpt}}, sp)
	if err != nil || len(res.Messages) != 1 {
		e.t.Fatalf("Deliver = %+v, %v", res, err)
	}
	m := res.Messages[0]
	return m, e.stored(m)
}

// stored reads a message's bytes back from the store.
func (e *env) stored(m *models.Message) []byte {
	e.t.Helper()
	r, err := e.mbox.OpenMessage(context.Background(), m)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) inbox() *models.Mailbox {
	e.t.Helper()
	mb, err := e.mbox.Get(context.Background(), e.user.ID, models.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	return mb
}

// inboxCount counts the messages in the test user's INBOX, from the store.
func (e *env) inboxCount() int {
	e.t.Helper()
	msgs, err := e.mbox.MaildropMessages(context.Background(), e.inbox().ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(msgs)
}

// client is a minimal POP3 client for scripted dialogues.
type client struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, nc: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	if g := c.line(); !strings.HasPrefix(g, "+OK ") {
		t.Fatalf("greeting = %q", g)
	}
	return c
}

func dialTLS(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, nc: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	if g := c.line(); !strings.HasPrefix(g, "+OK ") {
		t.Fatalf("greeting = %q", g)
	}
	return c
}

// starttls upgrades the connection after a +OK to STLS.
func (c *client) starttls() {
	c.t.Helper()
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one response line without its CRLF.
func (c *client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read response: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("response %q does not end in CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// cmd sends a command and returns the first line of its response.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

// body reads the rest of a multi-line response, undoing dot-stuffing, and
// returns the bytes exactly as sent before the terminating ".CRLF".
func (c *client) body() []byte {
	c.t.Helper()
	var out []byte
	for {
		s, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			out = append(out, s...)
			for errors.Is(err, bufio.ErrBufferFull) {
				s, err = c.r.ReadSlice('\n')
				out = append(out, s...)
			}
			if err != nil {
				c.t.Fatalf("read multi-line response: %v", err)
			}
			continue
		}
		if err != nil {
			c.t.Fatalf("read multi-line response: %v", err)
		}
		if string(s) == ".\r\n" {
			return out
		}
		if s[0] == '.' {
			s = s[1:]
		}
		out = append(out, s...)
	}
}

// lines reads a multi-line response as lines.
func (c *client) lines() []string {
	c.t.Helper()
	b := string(c.body())
	if b == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(b, "\r\n"), "\r\n")
}

func (c *client) login(user, password string) string {
	c.t.Helper()
	if r := c.cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("USER = %q", r)
	}
	return c.cmd("PASS " + password)
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("connection not closed: %v (read %q)", err, b)
	}
	if len(b) > 0 {
		c.t.Fatalf("unexpected bytes before close: %q", b)
	}
}

func mustPrefix(t testing.TB, what, got, want string) {
	t.Helper()
	if !strings.HasPrefix(got, want) {
		t.Fatalf("%s = %q, want prefix %q", what, got, want)
	}
}

// testMessage is a small message whose body makes n distinguishable.
func testMessage(n int) string {
	return fmt.Sprintf("From: sender@remote.test\r\nTo: alice@example.com\r\nSubject: test %d\r\nMessage-ID: <m%d@remote.test>\r\n\r\nHello number %d.\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n", n, n, n)
}
