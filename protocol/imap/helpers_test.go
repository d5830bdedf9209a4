package imap_test

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
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	mgimap "github.com/mailgate/mailgate/protocol/imap"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/message"
)

const (
	testUser = "alice@example.com"
	testPass = "correct horse battery"
)

// env is one mailgate "instance" (store, services, IMAP server on a random
// loopback port) with a user alice@example.com.
type env struct {
	t     testing.TB
	store *models.Store
	mbox  *mailbox.Service
	dlv   *delivery.Deliverer
	srv   *mgimap.Server
	addr  string
	user  *models.User
}

type envOptions struct {
	url       string // database URL; "" for a fresh one
	opt       mgimap.Options
	noUser    bool
	tlsConfig *tls.Config
}

func newEnv(t testing.TB) *env { return newEnvWith(t, envOptions{}) }

func newEnvWith(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	if o.url == "" {
		o.url = modelstest.URL(t)
	}
	store := modelstest.Open(t, o.url)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mbox := mailbox.New(store, mailbox.Options{MaxMessageBytes: 2 << 20, Logger: log})
	e := &env{t: t, store: store, mbox: mbox, dlv: delivery.New(store, mbox, delivery.Options{Hostname: "mx.example.com"})}
	if !o.noUser {
		if _, err := store.CreateDomain(ctx, "example.com", ""); err != nil && !errors.Is(err, models.ErrConflict) {
			t.Fatalf("create domain: %v", err)
		}
		u, err := store.GetUser(ctx, testUser)
		if err != nil {
			// The cheapest bcrypt cost: a login then takes milliseconds even
			// under the race detector, well within the short timeouts tests set.
			hash, err := bcrypt.GenerateFromPassword([]byte(testPass), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			if u, err = store.CreateUser(ctx, models.NewUser{Email: testUser, PasswordHash: string(hash)}); err != nil {
				t.Fatalf("create user: %v", err)
			}
		}
		e.user = u
	}
	authn := auth.New(store, auth.Options{FailuresPerNetwork: 1000, FailuresPerAccount: 1000, Logger: log})
	o.opt.Logger = log
	if o.opt.TLSConfig == nil {
		o.opt.TLSConfig = o.tlsConfig
	}
	e.srv = mgimap.New(authn, mbox, o.opt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { e.srv.Serve(ln); close(done) }() //nolint:errcheck // ErrServerClosed
	t.Cleanup(func() { e.srv.Close(); <-done })
	return e
}

// testWriter sends logs to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client logs in with go-imap's client; updates receives its unilateral data.
func (e *env) client(t testing.TB, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.addr, &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// deliver stores a message in the user's INBOX the way SMTP does.
func (e *env) deliver(t testing.TB, msg string) {
	t.Helper()
	r, err := e.dlv.Resolve(context.Background(), testUser, nil, int64(len(msg)))
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	env := &delivery.Envelope{From: "bob@remote.example", Recipients: []*delivery.Recipient{r}}
	if _, err := e.dlv.Deliver(context.Background(), env, message.Bytes(msg)); err != nil {
		t.Fatalf("deliver: %v", err)
	}
}

// appendMsg stores a message in a mailbox of the user directly.
func (e *env) appendMsg(t testing.TB, mailbox, msg string, flags models.Flags) *models.Message {
	t.Helper()
	m, err := e.mbox.Append(context.Background(), e.user.ID, mailbox, strings.NewReader(msg), flags, time.Time{})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return m
}

func testMessage(i int, subject string) string {
	return fmt.Sprintf("From: Bob <bob@remote.example>\r\nTo: alice@example.com\r\nSubject: %s\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <m%d@remote.example>\r\n\r\nHello number %d.\r\n", subject, i, i)
}

// raw is a line-level IMAP client for what go-imap's client will not send.
type raw struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, conn: c, r: bufio.NewReader(c)}
	if g := r.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return r
}

func (r *raw) line() string {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := r.conn.Write([]byte(s + "\r\n")); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// cmd sends a tagged command and returns the untagged lines and the tagged
// status line (without the tag).
func (r *raw) cmd(line string) (untagged []string, status string) {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("t%d", r.n)
	r.send(tag + " " + line)
	for {
		l := r.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

// expectOK runs a command that must succeed.
func (r *raw) expectOK(line string) []string {
	r.t.Helper()
	u, st := r.cmd(line)
	if !strings.HasPrefix(st, "OK") {
		r.t.Fatalf("%s: %s (untagged %q)", line, st, u)
	}
	return u
}

func (r *raw) login() {
	r.t.Helper()
	r.expectOK(fmt.Sprintf("LOGIN %s %q", testUser, testPass))
}

// hasLine reports whether some line contains every one of parts.
func hasLine(lines []string, parts ...string) bool {
	for _, l := range lines {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// needTool finds an external client: in CI its absence fails the test,
// elsewhere it skips with the Debian package to install.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: install Debian package %s", name, pkg)
	}
	t.Skipf("%s not found: install Debian package %s", name, pkg)
	return ""
}

// selfSigned returns a TLS config with a fresh certificate for 127.0.0.1.
func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// updates collects a client's unilateral data for assertions.
type updates struct {
	mu       sync.Mutex
	exists   []uint32
	expunges []uint32
	fetches  []string
}

func (u *updates) handler() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { u.mu.Lock(); u.expunges = append(u.expunges, seq); u.mu.Unlock() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				u.mu.Lock()
				u.exists = append(u.exists, *d.NumMessages)
				u.mu.Unlock()
			}
		},
		Fetch: func(m *imapclient.FetchMessageData) {
			b, err := m.Collect()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.fetches = append(u.fetches, fmt.Sprintf("%d %v", b.SeqNum, b.Flags))
			u.mu.Unlock()
		},
	}
}

func (u *updates) snapshot() (exists, expunges []uint32, fetches []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]uint32(nil), u.exists...), append([]uint32(nil), u.expunges...), append([]string(nil), u.fetches...)
}

func imapDial(addr string) (*imapclient.Client, error) {
	return imapclient.DialInsecure(addr, nil)
}

// readAll reads what the server sends until it closes the connection or the
// read deadline passes.
func readAll(r *raw) (string, error) {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), err
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
