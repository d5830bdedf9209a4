package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback address that was free a moment ago, for a server
// that must come back on the same port after a restart.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fetchAll retrieves (and keeps) every message of a user over POP3.
func fetchAll(t testing.TB, ctx context.Context, s *Server, user, pass string) []string {
	t.Helper()
	out := python(t, ctx, seedFetch, s.Addr["pop3s"], user, pass, "keep")
	return strings.Split(out, "=====MESSAGE=====\n")[1:]
}

// waitFor polls until some message of user contains want.
func waitFor(t testing.TB, ctx context.Context, s *Server, user, pass, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, m := range fetchAll(t, ctx, s, user, pass) {
			if strings.Contains(m, want) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no message with %q after %v", user, want, within)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func addUser(t testing.TB, s *Server, domain, user, pass string) {
	t.Helper()
	tok := login(t, s, s.Admin, s.Pass)
	if st := postJSON(t, s, "/api/v1/domains", tok, fmt.Sprintf(`{"name":%q}`, domain)); st != 201 {
		t.Fatalf("domain %s: %d", domain, st)
	}
	if st := postJSON(t, s, "/api/v1/users", tok, fmt.Sprintf(`{"email":%q,"password":%q}`, user, pass)); st != 201 {
		t.Fatalf("user %s: %d", user, st)
	}
}

// TestTwoInstancesRelay: two mailgate instances with different domains relay to
// each other through MAILGATE_TRANSPORT_MAP; a message to a receiver that is down
// arrives once it is back; a permanent 550 comes back as a bounce.
func TestTwoInstancesRelay(t *testing.T) {
	swaks := requireTool(t, "swaks", "swaks")
	aSMTP, bSMTP := freePort(t), freePort(t)
	retry := map[string]string{"MAILGATE_QUEUE_RETRY_MIN": "200ms", "MAILGATE_QUEUE_RETRY_MAX": "1s"}
	envA := map[string]string{"MAILGATE_HOSTNAME": "mx.a.example", "MAILGATE_SMTP_ADDR": aSMTP, "MAILGATE_TRANSPORT_MAP": "b.example=" + bSMTP}
	envB := map[string]string{"MAILGATE_HOSTNAME": "mx.b.example", "MAILGATE_SMTP_ADDR": bSMTP, "MAILGATE_TRANSPORT_MAP": "a.example=" + aSMTP}
	for k, v := range retry {
		envA[k], envB[k] = v, v
	}
	a, b := Start(t, envA), Start(t, envB)
	addUser(t, a, "a.example", "alice@a.example", "alice-secret-1")
	addUser(t, b, "b.example", "bob@b.example", "bob-secret-12")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	send := func(from *Server, user, pass, to, subject string) {
		t.Helper()
		out := run(t, ctx, swaks, "--server", from.Addr["submission"], "--tls", "--auth", "PLAIN", "--auth-user", user,
			"--auth-password", pass, "--from", user, "--to", to, "--header", "Subject: "+subject, "--timeout", "10")
		if !strings.Contains(out, "250 2.0.0") {
			t.Fatalf("send %q: not accepted:\n%s", subject, out)
		}
	}

	send(a, "alice@a.example", "alice-secret-1", "bob@b.example", "hello from a")
	m := waitFor(t, ctx, b, "bob@b.example", "bob-secret-12", "Subject: hello from a", 30*time.Second)
	if !strings.Contains(m, "by mx.a.example") || !strings.Contains(m, "by mx.b.example") {
		t.Errorf("relayed message lacks the trace of both hops:\n%.600s", m)
	}
	send(b, "bob@b.example", "bob-secret-12", "alice@a.example", "hello back")
	waitFor(t, ctx, a, "alice@a.example", "alice-secret-1", "Subject: hello back", 30*time.Second)

	// The receiver is down for the first attempts.
	b.Stop()
	send(a, "alice@a.example", "alice-secret-1", "bob@b.example", "while you were down")
	time.Sleep(1500 * time.Millisecond) // several attempts fail meanwhile
	b.Restart()
	waitFor(t, ctx, b, "bob@b.example", "bob-secret-12", "Subject: while you were down", 60*time.Second)

	// A permanent refusal bounces to the local sender.
	send(a, "alice@a.example", "alice-secret-1", "nobody@b.example", "to nobody")
	dsn := waitFor(t, ctx, a, "alice@a.example", "alice-secret-1", "Final-Recipient: rfc822; nobody@b.example", 60*time.Second)
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "Action: failed", "Status: 5.1.1", "Subject: to nobody"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("bounce lacks %q:\n%s", want, dsn)
		}
	}
}
