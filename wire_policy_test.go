package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/auth"
)

// The connection layer's policy is one for SMTP submission, IMAP and POP3:
// TestWirePolicy runs the same cases against the three, through the real
// `serve` wiring, and expects the same outcome from each in its own terms.

const (
	policyUser     = "pat@policy.test"
	policyPassword = "pat-secret-123"
)

// wireApp is one running server with the listeners of the three protocols.
type wireApp struct {
	addrs map[string]string
	store *models.Store
	env   map[string]string // what it was started with, database included
}

// startWireApp runs the app with env (plus a fresh database) and a test's view
// of loopback: with distrust, loopback clients count as remote.
func startWireApp(t *testing.T, env map[string]string, distrust bool) *wireApp {
	t.Helper()
	full := map[string]string{"MAILGATE_DATA_DIR": t.TempDir(), "MAILGATE_HOSTNAME": "mail.policy.test",
		"MAILGATE_ADMIN_PASSWORD": "admin-secret-1"}
	if os.Getenv(modelstest.EnvURL) != "" {
		full["MAILGATE_DATABASE_URL"] = modelstest.URL(t)
	}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := loadConfig("serve", nil, io.Discard, func(k string) (string, bool) { v, ok := full[k]; return v, ok }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, newLogger(cfg, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	a.distrustLoopback = distrust
	if _, err := a.store.GetUser(ctx, policyUser); errors.Is(err, models.ErrNotFound) {
		if _, err := a.store.CreateDomain(ctx, "policy.test", ""); err != nil {
			t.Fatal(err)
		}
		hash, err := auth.HashPassword(policyPassword)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.CreateUser(ctx, models.NewUser{Email: policyUser, PasswordHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	app := &wireApp{addrs: map[string]string{}, store: a.store, env: full}
	var lns []*listener
	names := []string{"submission", "submissions", "imap", "imaps", "pop3", "pop3s"}
	if full["MAILGATE_HTTP_ADDR"] != "" {
		names = append(names, "http")
	}
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, &listener{name: name, env: name, ln: ln})
		app.addrs[name] = ln.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, lns) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("run did not stop within 30s")
		}
		a.store.Close()
	})
	return app
}

// lineConn is a client that speaks lines.
type lineConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialLine(t *testing.T, addr string, useTLS bool) *lineConn {
	t.Helper()
	var nc net.Conn
	var err error
	if useTLS {
		nc, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's self-signed server
	} else {
		nc, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &lineConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *lineConn) line() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	return c.r.ReadString('\n')
}

// until reads lines until one starts with one of prefixes, and returns it.
func (c *lineConn) until(prefixes ...string) string {
	c.t.Helper()
	for {
		l, err := c.line()
		if err != nil {
			c.t.Fatalf("waiting for %q: %v (last %q)", prefixes, err, l)
		}
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				return l
			}
		}
	}
}

func (c *lineConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s+"\r\n"); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// closedAfter reads what is left: the server must close the connection (a
// goodbye line before that is fine).
func (c *lineConn) closed() bool {
	for i := 0; i < 5; i++ {
		if _, err := c.line(); err != nil {
			return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset")
		}
	}
	return false
}

// wireProto drives one protocol: how a session starts, how a login looks,
// and the first words of its answers.
type wireProto struct {
	name, plain, implicit string
	// greet reads the greeting (and for SMTP says EHLO).
	greet func(c *lineConn)
	// login sends one login and returns the final reply line.
	login                                               func(c *lineConn, user, pass string) string
	ok, refusedInsecure, failed, hungUp, busy, timedOut string
	tooLong                                             []string
}

var wireProtos = []wireProto{
	{
		name: "smtp", plain: "submission", implicit: "submissions",
		greet: func(c *lineConn) {
			c.until("220 ")
			c.send("EHLO client.policy.test")
			c.until("250 ")
		},
		login: func(c *lineConn, user, pass string) string {
			c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
			return c.until("2", "3", "4", "5")
		},
		ok: "235 ", refusedInsecure: "538 ", failed: "535 ", hungUp: "421 4.7.0", busy: "421 4.7.0",
		timedOut: "421 ", tooLong: []string{"501 ", "421 "},
	},
	{
		name: "imap", plain: "imap", implicit: "imaps",
		greet: func(c *lineConn) { c.until("* OK") },
		login: func(c *lineConn, user, pass string) string {
			c.send(fmt.Sprintf("a1 LOGIN %q {%d+}", user, len(pass)))
			io.WriteString(c.nc, pass+"\r\n")
			return c.until("a1 ")
		},
		ok: "a1 OK", refusedInsecure: "a1 NO", failed: "a1 NO", hungUp: "a1 NO", busy: "* BYE",
		timedOut: "* BYE", tooLong: []string{"a1 NO", "a1 BAD"},
	},
	{
		name: "pop3", plain: "pop3", implicit: "pop3s",
		greet: func(c *lineConn) { c.until("+OK") },
		login: func(c *lineConn, user, pass string) string {
			c.send("USER " + user)
			if l := c.until("+OK", "-ERR"); strings.HasPrefix(l, "-ERR") {
				return l
			}
			c.send("PASS " + pass)
			return c.until("+OK", "-ERR")
		},
		ok: "+OK", refusedInsecure: "-ERR", failed: "-ERR", hungUp: "-ERR", busy: "-ERR [SYS/TEMP]",
		timedOut: "-ERR", tooLong: []string{"-ERR"},
	},
}

func TestWirePolicy(t *testing.T) {
	local := startWireApp(t, map[string]string{"MAILGATE_MAX_CONNECTIONS_PER_IP": "2"}, false)
	remote := startWireApp(t, nil, true)
	// Short timeouts, each on its own server, so that a slow login (bcrypt
	// under -race) does not run into the other timeout.
	quickLogin := startWireApp(t, map[string]string{"MAILGATE_LOGIN_TIMEOUT": "1s"}, false)
	quickIdle := startWireApp(t, map[string]string{"MAILGATE_LOGIN_TIMEOUT": "1m", "MAILGATE_IDLE_TIMEOUT": "1s"}, false)

	cases := []struct {
		name string
		run  func(t *testing.T, p wireProto)
	}{
		{"plaintext refused off loopback without TLS", func(t *testing.T, p wireProto) {
			c := dialLine(t, remote.addrs[p.plain], false)
			p.greet(c)
			if got := p.login(c, policyUser, policyPassword); !strings.HasPrefix(got, p.refusedInsecure) {
				t.Errorf("got %q, want %q", got, p.refusedInsecure)
			}
		}},
		{"plaintext allowed over TLS", func(t *testing.T, p wireProto) {
			c := dialLine(t, remote.addrs[p.implicit], true)
			p.greet(c)
			if got := p.login(c, policyUser, policyPassword); !strings.HasPrefix(got, p.ok) {
				t.Errorf("got %q, want %q", got, p.ok)
			}
		}},
		{"plaintext allowed on loopback", func(t *testing.T, p wireProto) {
			c := dialLine(t, local.addrs[p.plain], false)
			p.greet(c)
			if got := p.login(c, policyUser, policyPassword); !strings.HasPrefix(got, p.ok) {
				t.Errorf("got %q, want %q", got, p.ok)
			}
		}},
		{"three failures hang up", func(t *testing.T, p wireProto) {
			c := dialLine(t, local.addrs[p.plain], false)
			p.greet(c)
			for i := 1; i <= 2; i++ {
				if got := p.login(c, policyUser, "wrong-password"); !strings.HasPrefix(got, p.failed) {
					t.Fatalf("failure %d: got %q, want %q", i, got, p.failed)
				}
			}
			if got := p.login(c, policyUser, "wrong-password"); !strings.HasPrefix(got, p.hungUp) {
				t.Errorf("third failure: got %q, want %q", got, p.hungUp)
			}
			if !c.closed() {
				t.Errorf("connection still open after the third failure")
			}
		}},
		{"oversize credentials refused", func(t *testing.T, p wireProto) {
			c := dialLine(t, local.addrs[p.plain], false)
			p.greet(c)
			got := p.login(c, policyUser, strings.Repeat("p", auth.MaxCredentialLen+1))
			ok := false
			for _, w := range p.tooLong {
				ok = ok || strings.HasPrefix(got, w)
			}
			if !ok {
				t.Errorf("got %q, want one of %q", got, p.tooLong)
			}
		}},
		{"over the per-address cap refused", func(t *testing.T, p wireProto) {
			addr := local.addrs[p.plain]
			var held []*lineConn
			for len(held) < 2 {
				c := dialLine(t, addr, false)
				l, err := c.line()
				if err == nil && !strings.HasPrefix(l, p.busy) {
					held = append(held, c)
					continue
				}
				// A slot of an earlier case not freed yet: wait for it.
				c.nc.Close()
				time.Sleep(50 * time.Millisecond)
			}
			c := dialLine(t, addr, false)
			if l, err := c.line(); err != nil || !strings.HasPrefix(l, p.busy) {
				t.Errorf("third connection got %q, %v; want %q", l, err, p.busy)
			}
			if !c.closed() {
				t.Errorf("refused connection left open")
			}
			for _, h := range held {
				h.nc.Close()
			}
		}},
		{"login timeout", func(t *testing.T, p wireProto) {
			c := dialLine(t, quickLogin.addrs[p.plain], false)
			p.greet(c)
			start := time.Now()
			if l := c.until(p.timedOut); time.Since(start) > 10*time.Second {
				t.Errorf("timed out after %v with %q", time.Since(start), l)
			}
			if !c.closed() {
				t.Errorf("connection open after the login timeout")
			}
		}},
		{"idle timeout", func(t *testing.T, p wireProto) {
			c := dialLine(t, quickIdle.addrs[p.plain], false)
			p.greet(c)
			if got := p.login(c, policyUser, policyPassword); !strings.HasPrefix(got, p.ok) {
				t.Fatalf("login: %q", got)
			}
			c.until(p.timedOut)
			if !c.closed() {
				t.Errorf("connection open after the idle timeout")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range wireProtos {
				t.Run(p.name, func(t *testing.T) { tc.run(t, p) })
			}
		})
	}
}

// TestRevocationEndsSessions: disabling a user ends its open SMTP, IMAP and
// POP3 sessions within a second, in each protocol's terms; on PostgreSQL the
// sessions are on another instance than the one that disables the user.
func TestRevocationEndsSessions(t *testing.T) {
	a := startWireApp(t, nil, false)
	b := a
	if os.Getenv(modelstest.EnvURL) != "" {
		b = startWireApp(t, map[string]string{"MAILGATE_DATABASE_URL": a.env["MAILGATE_DATABASE_URL"]}, false)
	}
	goodbye := map[string]string{"smtp": "421 4.7.0", "imap": "* BYE", "pop3": "-ERR [AUTH]"}
	conns := map[string]*lineConn{}
	for _, p := range wireProtos {
		c := dialLine(t, b.addrs[p.plain], false)
		p.greet(c)
		if got := p.login(c, policyUser, policyPassword); !strings.HasPrefix(got, p.ok) {
			t.Fatalf("%s login: %q", p.name, got)
		}
		conns[p.name] = c
	}
	// The IMAP session waits in IDLE, as a mail client does.
	conns["imap"].send("a2 SELECT INBOX")
	conns["imap"].until("a2 OK")
	conns["imap"].send("a3 IDLE")
	conns["imap"].until("+")
	time.Sleep(100 * time.Millisecond) // the watches are in place (they check once at login too)
	disabled := true
	start := time.Now()
	if _, err := a.store.UpdateUser(context.Background(), policyUser, models.UserPatch{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	for _, p := range wireProtos {
		c := conns[p.name]
		l := c.until(goodbye[p.name])
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: %q after %v, want within a second", p.name, l, took)
		}
		if !c.closed() {
			t.Errorf("%s: connection open after the goodbye", p.name)
		}
	}
}

// TestLoginBudgetAcrossFrontEnds replays the attacks of the security review
// against a running server, through SMTP, IMAP, POP3 and HTTP alike: guesses
// whose answers the attacker does not wait for, a good login to the
// attacker's own account between guesses, and guesses sent in parallel. The
// network (here 127.0.0.1) gets its budget's worth of guesses in the window
// and no more; the next attempt is refused at once even with the right
// password, in each protocol's words.
func TestLoginBudgetAcrossFrontEnds(t *testing.T) {
	const budget = 8
	app := startWireApp(t, map[string]string{"MAILGATE_LOGIN_FAILURES_PER_NETWORK": fmt.Sprint(budget),
		"MAILGATE_LOGIN_FAILURES_PER_ACCOUNT": "1000", "MAILGATE_HTTP_ADDR": "127.0.0.1:0"}, false)
	ctx := context.Background()
	hash, err := auth.HashPassword("mallory-secret-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.store.CreateUser(ctx, models.NewUser{Email: "mallory@policy.test", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	byName := map[string]wireProto{}
	for _, p := range wireProtos {
		byName[p.name] = p
	}
	guesses := 0
	// The drop-early trick: send the guess, hang up without the answer.
	for _, name := range []string{"smtp", "imap", "pop3"} {
		p := byName[name]
		c := dialLine(t, app.addrs[p.plain], false)
		p.greet(c)
		switch name {
		case "smtp":
			c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+policyUser+"\x00guess-dropped")))
		case "imap":
			c.send(`a1 LOGIN "` + policyUser + `" "guess-dropped"`)
		case "pop3":
			c.send("USER " + policyUser)
			c.until("+OK")
			c.send("PASS guess-dropped")
		}
		c.nc.Close()
		guesses++
	}
	// The reset trick: a good login to the attacker's own account in between.
	c := dialLine(t, app.addrs["imap"], false)
	byName["imap"].greet(c)
	if got := byName["imap"].login(c, "mallory@policy.test", "mallory-secret-1"); !strings.HasPrefix(got, "a1 OK") {
		t.Fatalf("own login: %q", got)
	}
	c.nc.Close()
	// Parallel guesses over every front end, the HTTP API included: more than
	// the budget has left.
	type verdict struct{ name, line string }
	results := make(chan verdict, 32)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 3 {
				st, _ := call(t, "POST", "http://"+app.addrs["http"]+"/api/v1/auth/login", "",
					map[string]string{"email": policyUser, "password": fmt.Sprint("guess-", i)})
				results <- verdict{"http", fmt.Sprint(st)}
				return
			}
			p := wireProtos[i%4]
			c := dialLine(t, app.addrs[p.plain], false)
			p.greet(c)
			results <- verdict{p.name, p.login(c, policyUser, fmt.Sprint("guess-", i))}
		}()
	}
	wg.Wait()
	close(results)
	throttledLine := map[string]string{"smtp": "454 4.7.0", "imap": "a1 NO [UNAVAILABLE]", "pop3": "-ERR [AUTH] Too many", "http": "429"}
	failedLine := map[string]string{"smtp": "535 ", "imap": "a1 NO [AUTHENTICATIONFAILED]", "pop3": "-ERR [AUTH] Authentication failed", "http": "401"}
	for r := range results {
		switch {
		case strings.HasPrefix(r.line, failedLine[r.name]):
			guesses++
		case strings.HasPrefix(r.line, throttledLine[r.name]):
		default:
			t.Errorf("%s answered %q", r.name, r.line)
		}
	}
	if guesses > budget {
		t.Errorf("%d guesses got a verdict; the budget is %d", guesses, budget)
	}
	// Now even the right password is refused, on every front end, at once.
	for _, p := range wireProtos {
		c := dialLine(t, app.addrs[p.plain], false)
		p.greet(c)
		if got := p.login(c, policyUser, policyPassword); !strings.HasPrefix(got, throttledLine[p.name]) {
			t.Errorf("%s, right password over budget: %q", p.name, got)
		}
	}
	st, _ := call(t, "POST", "http://"+app.addrs["http"]+"/api/v1/auth/login", "", map[string]string{"email": policyUser, "password": policyPassword})
	if st != 429 {
		t.Errorf("http, right password over budget: %d", st)
	}
}
