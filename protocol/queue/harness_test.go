package queue_test

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
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/message"
	"github.com/mailgate/mailgate/protocol/queue"
)

const ourHost = "mx.local.test"

// instance is one mailgate's store and pipeline.
type instance struct {
	store *models.Store
	mbox  *mailbox.Service
	dlv   *delivery.Deliverer
}

func newInstance(t testing.TB, url string, lifetime time.Duration) *instance {
	t.Helper()
	s := modelstest.Open(t, url)
	mb := mailbox.New(s, mailbox.Options{})
	return &instance{store: s, mbox: mb, dlv: delivery.New(s, mb, delivery.Options{Hostname: ourHost, QueueLifetime: lifetime})}
}

// env is an instance with domain local.test and its user alice.
type env struct {
	*instance
	alice *models.User
}

func newEnv(t testing.TB, lifetime time.Duration) *env {
	t.Helper()
	in := newInstance(t, modelstest.URL(t), lifetime)
	return setup(t, in)
}

func setup(t testing.TB, in *instance) *env {
	t.Helper()
	ctx := context.Background()
	if _, err := in.store.CreateDomain(ctx, "local.test", ""); err != nil {
		t.Fatal(err)
	}
	u, err := in.store.CreateUser(ctx, models.NewUser{Email: "alice@local.test", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{instance: in, alice: u}
}

// send has alice send body to rcpts, as an authenticated submission would.
func (e *env) send(t testing.TB, body string, rcpts ...string) {
	t.Helper()
	ctx := context.Background()
	env := &delivery.Envelope{From: e.alice.Email, User: e.alice}
	for _, a := range rcpts {
		r, err := e.dlv.Resolve(ctx, a, e.alice, int64(len(body)))
		if err != nil {
			t.Fatalf("resolve %s: %v", a, err)
		}
		env.Recipients = append(env.Recipients, r)
	}
	if _, err := e.dlv.Deliver(ctx, env, message.Bytes(body)); err != nil {
		t.Fatalf("deliver: %v", err)
	}
}

// run starts a queue; the returned stop (also run at cleanup) cancels it and
// waits until Run has returned.
func (in *instance) run(t testing.TB, opt queue.Options) (stop func()) {
	t.Helper()
	q, err := queue.New(in.store, in.mbox, in.dlv, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (in *instance) queued(t testing.TB) []models.QueueEntry {
	t.Helper()
	es, _, err := in.store.ListQueue(context.Background(), models.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// inbox returns the messages in a user's INBOX.
func (in *instance) inbox(t testing.TB, u *models.User) [][]byte {
	t.Helper()
	ctx := context.Background()
	mb, err := in.store.MailboxByName(ctx, u.ID, models.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	err = in.store.MessagesByUID(ctx, mb.ID, models.All, func(m *models.Message) error {
		r, err := in.mbox.OpenMessage(ctx, m)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(r)
		out = append(out, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func options(t testing.TB, routes queue.TransportMap) queue.Options {
	return queue.Options{
		Hostname: ourHost, TransportMap: routes, Workers: 4,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func route(t testing.TB, domain, addr string) queue.TransportMap {
	t.Helper()
	h, err := queue.ParseHop(addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	return queue.TransportMap{domain: h}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// receiver is the remote MX: a real SMTP server (go-smtp) that records what it gets.
type receiver struct {
	addr string
	srv  *gosmtp.Server

	// set before traffic
	rcptReply          func(rcpt string, try int) error // nil accepts every recipient
	username, password string                           // set: AUTH PLAIN required before MAIL
	discard            bool                             // count recipients only (benchmarks)
	onData             func()                           // called as DATA begins

	delivered atomic.Int64 // recipients of accepted messages

	mu    sync.Mutex
	msgs  []received
	txns  [][]string // RCPT TO addresses tried, per transaction
	helos []string   // the EHLO name of every session
	ended int        // sessions ended (connection closed or TLS started)
	conns []net.Conn // every connection accepted
	auths []string   // users that authenticated
	tries map[string]int
}

type received struct {
	from  string
	rcpts []string
	data  []byte
	tls   bool
}

// startReceiver listens on addr ("" for a free loopback port), with STARTTLS
// when cfg is set.
func startReceiver(t testing.TB, addr string, cfg *tls.Config, configure func(*receiver)) *receiver {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: ln.Addr().String(), tries: map[string]int{}}
	if configure != nil {
		configure(r)
	}
	r.srv = gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		r.mu.Lock()
		r.helos = append(r.helos, c.Hostname())
		r.conns = append(r.conns, c.Conn())
		r.mu.Unlock()
		_, tlsOn := c.TLSConnectionState()
		return &rsession{r: r, tls: tlsOn}, nil
	}))
	r.srv.Domain = "mx.remote.test"
	r.srv.TLSConfig = cfg
	r.srv.EnableSMTPUTF8 = true
	r.srv.ReadTimeout = 30 * time.Second
	r.srv.WriteTimeout = 30 * time.Second
	go r.srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// drop closes every connection, as a server ending idle sessions does.
func (r *receiver) drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

// count tells how many messages reached each recipient.
func (r *receiver) count() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, m := range r.msgs {
		for _, a := range m.rcpts {
			out[a]++
		}
	}
	return out
}

func (r *receiver) messages() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.msgs...)
}

type rsession struct {
	r      *receiver
	tls    bool
	authed bool
	from   string
	tried  []string
	rcpts  []string
}

func (s *rsession) AuthMechanisms() []string {
	if s.r.username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *rsession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.r.username || pass != s.r.password {
			return &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.authed = true
		s.r.mu.Lock()
		s.r.auths = append(s.r.auths, user)
		s.r.mu.Unlock()
		return nil
	}), nil
}

func (s *rsession) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.r.username != "" && !s.authed {
		return &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.from = from
	return nil
}

func (s *rsession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.r.mu.Lock()
	s.r.tries[to]++
	try := s.r.tries[to]
	s.r.mu.Unlock()
	s.tried = append(s.tried, to)
	if s.r.rcptReply != nil {
		if err := s.r.rcptReply(to, try); err != nil {
			return err
		}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *rsession) Data(r io.Reader) error {
	if s.r.onData != nil {
		s.r.onData()
	}
	if s.r.discard {
		_, err := io.Copy(io.Discard, r)
		s.r.delivered.Add(int64(len(s.rcpts)))
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.delivered.Add(int64(len(s.rcpts)))
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, received{from: s.from, rcpts: append([]string(nil), s.rcpts...), data: b, tls: s.tls})
	s.r.mu.Unlock()
	return nil
}

func (s *rsession) Reset() {
	if len(s.tried) > 0 {
		s.r.mu.Lock()
		s.r.txns = append(s.r.txns, s.tried)
		s.r.mu.Unlock()
	}
	s.from, s.tried, s.rcpts = "", nil, nil
}

func (s *rsession) Logout() error {
	s.Reset()
	s.r.mu.Lock()
	s.r.ended++
	s.r.mu.Unlock()
	return nil
}

// selfSigned makes a certificate for 127.0.0.1 and mx.remote.test and a pool
// that trusts it.
func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.remote.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"mx.remote.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// dsn is a parsed delivery status notification.
type dsn struct {
	header     gomessage.Header
	human      string
	perMessage textproto.MIMEHeader
	recipients []textproto.MIMEHeader
	original   string // the text/rfc822-headers part
}

func parseDSN(t testing.TB, raw []byte) *dsn {
	t.Helper()
	ent, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read DSN: %v", err)
	}
	typ, params, err := ent.Header.ContentType()
	if err != nil || typ != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type = %q %v, %v", typ, params, err)
	}
	d := &dsn{header: ent.Header}
	mr := ent.MultipartReader()
	var types []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v", err)
		}
		typ, _, _ := p.Header.ContentType()
		types = append(types, typ)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "text/plain":
			d.human = string(body)
		case "message/delivery-status":
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			if d.perMessage, err = tr.ReadMIMEHeader(); err != nil {
				t.Fatalf("per-message fields: %v", err)
			}
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					d.recipients = append(d.recipients, h)
				}
				if err != nil {
					break
				}
			}
		case "text/rfc822-headers":
			d.original = string(body)
		}
	}
	if len(types) != 3 || types[0] != "text/plain" || types[1] != "message/delivery-status" || types[2] != "text/rfc822-headers" {
		t.Fatalf("DSN parts = %v", types)
	}
	return d
}
