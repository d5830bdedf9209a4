package smtp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/smtp"
)

const (
	domain   = "example.test"
	password = "correct horse battery"
	hostname = "mx.example.test"
)

// env is one test's world: a fresh store with a domain, users and groups, and
// the services a server needs.
type env struct {
	t     testing.TB
	store *models.Store
	mbox  *mailbox.Service
	dlv   *delivery.Deliverer
	authn *auth.Authenticator
	tls   *tls.Config
	logs  *syncBuffer // every server's log, JSON
}

// newEnv makes the world of most tests:
//   - alice, bob, carol, dave: users with password;
//   - gone: a disabled user; full: over its 100-byte quota; tight: empty, 300-byte quota;
//   - team = {bob, carol}; staff = {alice, dave}.
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvStore(t, modelstest.New(t))
}

func newEnvStore(t testing.TB, store *models.Store) *env {
	t.Helper()
	ctx := context.Background()
	if _, err := store.CreateDomain(ctx, domain, ""); err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, logs: &syncBuffer{}}
	e.mbox = mailbox.New(store, mailbox.Options{MaxMessageBytes: 64 << 20})
	e.dlv = delivery.New(store, e.mbox, delivery.Options{Hostname: hostname})
	e.authn = auth.New(store, auth.Options{FailuresPerNetwork: 1000, FailuresPerAccount: 1000})
	e.tls = serverTLS(t)
	for _, u := range []models.NewUser{
		{Email: "alice@" + domain}, {Email: "bob@" + domain}, {Email: "carol@" + domain}, {Email: "dave@" + domain},
		{Email: "gone@" + domain}, {Email: "full@" + domain}, {Email: "tight@" + domain, QuotaBytes: 300},
	} {
		u.PasswordHash = hash
		if _, err := store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	disabled := true
	if _, err := store.UpdateUser(ctx, "gone@"+domain, models.UserPatch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	full := e.user("full@" + domain)
	if _, err := e.mbox.Append(ctx, full.ID, models.Inbox, strings.NewReader("Subject: filler\r\n\r\n"+strings.Repeat("x", 200)+"\r\n"), models.Flags{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	quota := int64(100) // set after the filler went in: full is now over it
	if _, err := store.UpdateUser(ctx, full.Email, models.UserPatch{QuotaBytes: &quota}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateGroup(ctx, "team@"+domain, "Team", []string{"bob@" + domain, "carol@" + domain}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateGroup(ctx, "staff@"+domain, "Staff", []string{"alice@" + domain, "dave@" + domain}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) user(email string) *models.User {
	e.t.Helper()
	u, err := e.store.GetUser(context.Background(), email)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// logger writes JSON lines to e.logs and, with MAILGATE_TEST_LOG set, to stderr.
func (e *env) logger() *slog.Logger {
	var w io.Writer = e.logs
	if os.Getenv("MAILGATE_TEST_LOG") != "" {
		w = io.MultiWriter(e.logs, os.Stderr)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serve starts a server on 127.0.0.1:0 and returns its address. configure, if
// not nil, runs before Serve.
func (e *env) serve(opt smtp.Options, configure ...func(*smtp.Server)) (string, *smtp.Server) {
	e.t.Helper()
	if opt.Logger == nil {
		opt.Logger = e.logger()
	}
	if opt.Hostname == "" {
		opt.Hostname = hostname
	}
	if opt.TLSConfig == nil {
		opt.TLSConfig = e.tls
	}
	srv := smtp.New(e.authn, e.dlv, opt)
	for _, f := range configure {
		f(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	e.t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, smtp.ErrServerClosed) {
			e.t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), srv
}

// stored is one message as read back through the mailbox service.
type stored struct {
	msg *models.Message
	raw []byte
}

// inbox reads every message in a user's INBOX.
func (e *env) inbox(email string) []stored {
	e.t.Helper()
	ctx := context.Background()
	u := e.user(email)
	mb, err := e.mbox.Get(ctx, u.ID, models.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []stored
	err = e.mbox.Messages(ctx, mb.ID, models.All, func(m *models.Message) error {
		r, err := e.mbox.OpenMessage(ctx, m)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		out = append(out, stored{msg: m, raw: raw})
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// splitTrace cuts a stored message into its Return-Path line, its Received
// field (with continuation lines) and the rest, the message as sent.
func splitTrace(t testing.TB, raw []byte) (returnPath, received string, rest []byte) {
	t.Helper()
	s := string(raw)
	line, s, ok := strings.Cut(s, "\r\n")
	if !ok || !strings.HasPrefix(line, "Return-Path: <") {
		t.Fatalf("stored message does not start with Return-Path: %q", firstBytes(raw, 200))
	}
	returnPath = line
	if !strings.HasPrefix(s, "Received: from ") {
		t.Fatalf("no Received field after Return-Path: %q", firstBytes([]byte(s), 200))
	}
	var b strings.Builder
	for {
		line, tail, ok := strings.Cut(s, "\r\n")
		if !ok {
			t.Fatalf("unterminated Received field")
		}
		b.WriteString(line + "\r\n")
		s = tail
		if !strings.HasPrefix(s, "\t") && !strings.HasPrefix(s, " ") {
			break
		}
	}
	return returnPath, b.String(), []byte(s)
}

func firstBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// serverTLS makes a self-signed certificate for the test.
func serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: hostname},
		DNSNames:     []string{hostname, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// clientTLS trusts anything: the tests' certificate is self-signed.
func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: hostname} //nolint:gosec // test certificate
}

// client is a scripted SMTP client that speaks raw lines.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string, implicitTLS bool) *client {
	t.Helper()
	var conn net.Conn
	var err error
	if implicitTLS {
		conn, err = tls.Dial("tcp", addr, clientTLS())
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220 ")
	return c
}

// readReply reads one reply, all lines of it.
func (c *client) readReply() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, ""), err
		}
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, ""), nil
		}
	}
}

// expect reads a reply whose last line starts with want.
func (c *client) expect(want string) string {
	c.t.Helper()
	rep, err := c.readReply()
	if err != nil {
		c.t.Fatalf("reading reply (want %q): %v (got %q)", want, err, rep)
	}
	lines := strings.Split(strings.TrimSuffix(rep, "\r\n"), "\r\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, want) {
		c.t.Fatalf("got %q, want %q", rep, want)
	}
	return rep
}

func (c *client) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// cmd sends a line and expects a reply starting with want.
func (c *client) cmd(line, want string) string {
	c.t.Helper()
	c.send(line)
	return c.expect(want)
}

// startTLS upgrades the connection after a 220 to STARTTLS.
func (c *client) startTLS() {
	c.t.Helper()
	if c.r.Buffered() > 0 {
		c.t.Fatalf("plaintext data after the STARTTLS reply")
	}
	tc := tls.Client(c.conn, clientTLS())
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

// step is one line of a scripted dialogue: what to send and the start of the
// reply expected. "STARTTLS" answered 220 upgrades the connection.
type step struct{ send, want string }

func (c *client) run(steps []step) {
	c.t.Helper()
	for _, s := range steps {
		c.cmd(s.send, s.want)
		if strings.EqualFold(s.send, "STARTTLS") && strings.HasPrefix(s.want, "220") {
			c.startTLS()
		}
	}
}

func plainAuth(user, pass string) string {
	return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// syncBuffer is a bytes.Buffer safe for the servers' goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// needTool finds an external client. In CI a missing one fails the test;
// elsewhere the test is skipped with the package to install.
func needTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (install Debian package %s): %v", name, debianPackage, err)
	}
	t.Skipf("%s not found: install Debian package %s", name, debianPackage)
	return ""
}

func newUser(email, hash string) models.NewUser {
	return models.NewUser{Email: email, PasswordHash: hash}
}
