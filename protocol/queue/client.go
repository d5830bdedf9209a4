package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// session is an SMTP connection ready for MAIL FROM: greeted, EHLO sent with
// our host name, TLS on when it could be had.
type session struct {
	c    *gosmtp.Client
	tls  bool
	host string // the hop's name, for logs and the DSN's Remote-MTA
	// stop ends the watch on the context of the transaction using the
	// session: go-smtp watches no context, so closing the connection is what
	// ends a delivery at its deadline or at shutdown.
	stop func() bool
}

func (s *session) watch(ctx context.Context) {
	s.unwatch()
	s.stop = context.AfterFunc(ctx, func() { s.c.Close() }) //nolint:errcheck // the connection is being dropped
}

func (s *session) unwatch() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

func (s *session) close() {
	s.unwatch()
	s.c.Close() //nolint:errcheck // the connection is being dropped
}

// quit ends the session politely, not waiting long for the reply: a failure
// here changes nothing delivered.
func (s *session) quit() {
	s.c.CommandTimeout = 5 * time.Second
	s.c.Quit() //nolint:errcheck // see above
	s.close()
}

// greetedConn hands go-smtp a connection whose greeting was already read.
// go-smtp's client has no public STARTTLS, and its own STARTTLS says
// "EHLO localhost" first: mailgate does the greeting, EHLO and STARTTLS itself
// (with its real name, RFC 5321 §4.1.1.1) and then lets go-smtp read a
// stand-in 220 line. After STARTTLS go-smtp's EHLO goes to the server, as
// RFC 3207 §4.2 requires. Without TLS the server has had its EHLO already,
// and some servers refuse a second one (Python's smtpd: "503 Duplicate
// HELO/EHLO"), so go-smtp's EHLO line is not sent and the server's reply to
// ours is replayed to it instead.
type greetedConn struct {
	net.Conn
	r       io.Reader
	swallow bool // go-smtp's EHLO line is still to be dropped
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

func (g *greetedConn) Write(p []byte) (int, error) {
	if !g.swallow {
		return g.Conn.Write(p)
	}
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		return len(p), nil
	}
	g.swallow = false
	n, err := g.Conn.Write(p[i+1:])
	return i + 1 + n, err
}

const standInGreeting = "220 ready\r\n"

// greeted is the connection after STARTTLS: go-smtp says EHLO itself.
func greeted(c net.Conn) *greetedConn {
	return &greetedConn{Conn: c, r: io.MultiReader(strings.NewReader(standInGreeting), c)}
}

// replayed is the plain-text connection: rest holds what the server sends
// next, ehlo the server's reply to our EHLO.
func replayed(c net.Conn, rest io.Reader, ehlo string) *greetedConn {
	return &greetedConn{Conn: c, swallow: true,
		r: io.MultiReader(strings.NewReader(standInGreeting+ehlo), rest)}
}

// replyLines renders a reply as it came over the wire (multi-line replies
// with "250-" continuations), from net/textproto's code and joined message.
func replyLines(code int, msg string) string {
	lines := strings.Split(msg, "\n")
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%03d%s%s\r\n", code, sep, l)
	}
	return b.String()
}

// connect opens a session with one target, trying its addresses in turn.
func (q *Queue) connect(ctx context.Context, t target) (*session, *failure) {
	addrs, f := q.addresses(ctx, t)
	if f != nil {
		return nil, f
	}
	var conn net.Conn
	var err error
	for _, a := range addrs {
		if conn, err = q.opt.Dial(ctx, "tcp", net.JoinHostPort(a, fmt.Sprint(t.Port))); err == nil {
			break
		}
	}
	if conn == nil {
		return nil, &failure{status: "4.4.1", stage: "connect", remote: t.Host, err: fmt.Errorf("connect to %s: %w", t.Hop, err)}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	s, f := q.handshake(ctx, conn, t)
	stop()
	if f != nil {
		conn.Close()
		return nil, f
	}
	s.watch(ctx)
	return s, nil
}

// handshake reads the greeting, says EHLO and starts TLS when the server
// offers it. TLS to MX hosts is opportunistic (RFC 7435): certificates are not
// checked, since without MTA-STS or DANE nothing says which to trust, and a
// server without STARTTLS gets plain text. A relay host with credentials must
// do TLS with a certificate valid for its name, or nothing is sent.
func (q *Queue) handshake(ctx context.Context, conn net.Conn, t target) (*session, *failure) {
	requireTLS := t.relay && q.opt.RelayUsername != ""
	fail := func(err error, stage string) *failure {
		f := replyFailure(err, t.Host, stage)
		f.perm = false // a server that will not talk now may well later, or another MX will
		return f
	}
	conn.SetDeadline(time.Now().Add(q.opt.CommandTimeout)) //nolint:errcheck // surfaces at the next read
	if t.relay && t.Port == 465 {
		// Submission over implicit TLS (RFC 8314): TLS before the greeting.
		tc := tls.Client(conn, q.tlsConfig(t, requireTLS))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, &failure{status: "4.7.0", stage: "TLS", remote: t.Host, err: fmt.Errorf("TLS handshake with %s: %w", t.Hop, err)}
		}
		conn.SetDeadline(time.Time{}) //nolint:errcheck // go-smtp sets its own per command
		c := gosmtp.NewClient(tc)
		q.tune(c)
		if err := c.Hello(q.opt.Hostname); err != nil {
			return nil, fail(err, "EHLO")
		}
		return &session{c: c, tls: true, host: t.Host}, nil
	}
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fail(err, "greeting")
	}
	ext, reply, err := ehlo(tp, q.opt.Hostname)
	if err != nil {
		return nil, fail(err, "EHLO")
	}
	// A server refusing EHLO speaks plain RFC 821 SMTP: go-smtp, given the
	// refusal, falls back to HELO.
	_, offered := ext["STARTTLS"]
	if offered && !t.noTLS {
		tc, f := q.startTLS(ctx, tp, conn, t, requireTLS)
		if f != nil {
			return nil, f
		}
		if tc != nil {
			c := gosmtp.NewClient(greeted(tc))
			q.tune(c)
			if err := c.Hello(q.opt.Hostname); err != nil {
				return nil, fail(err, "EHLO")
			}
			return &session{c: c, tls: true, host: t.Host}, nil
		}
	}
	if requireTLS {
		return nil, &failure{status: "4.7.0", stage: "STARTTLS", remote: t.Host,
			err: fmt.Errorf("relay host %s offers no STARTTLS: credentials are never sent in plain text", t.Hop)}
	}
	c := gosmtp.NewClient(replayed(conn, tp.R, reply))
	q.tune(c)
	if err := c.Hello(q.opt.Hostname); err != nil {
		return nil, fail(err, "EHLO")
	}
	return &session{c: c, host: t.Host}, nil
}

// startTLS runs STARTTLS (RFC 3207). It returns a nil connection without a
// failure when the server declined and plain text may go on.
func (q *Queue) startTLS(ctx context.Context, tp *textproto.Conn, conn net.Conn, t target, require bool) (*tls.Conn, *failure) {
	id, err := tp.Cmd("STARTTLS")
	if err == nil {
		tp.StartResponse(id)
		_, _, err = tp.ReadResponse(220)
		tp.EndResponse(id)
	}
	if err != nil {
		if asReply(err) != nil && !require {
			return nil, nil // 454 and the like: go on without TLS
		}
		f := replyFailure(err, t.Host, "STARTTLS")
		f.perm = false
		return nil, f
	}
	if tp.R.Buffered() > 0 {
		// Bytes sent before the handshake would be taken as if protected by it
		// (the STARTTLS injection of CVE-2011-0411): refuse the server.
		return nil, &failure{status: "4.7.0", stage: "STARTTLS", remote: t.Host,
			err: fmt.Errorf("%s sent data ahead of the TLS handshake", t.Hop)}
	}
	tc := tls.Client(conn, q.tlsConfig(t, require))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, &failure{status: "4.7.0", stage: "STARTTLS", remote: t.Host, tlsFailed: !require,
			err: fmt.Errorf("TLS handshake with %s: %w", t.Hop, err)}
	}
	conn.SetDeadline(time.Time{}) //nolint:errcheck // go-smtp sets its own per command
	return tc, nil
}

// tlsConfig is the TLS client configuration for a target: verified against
// RelayTLSConfig (or the system roots) when verify is set, else opportunistic.
func (q *Queue) tlsConfig(t target, verify bool) *tls.Config {
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opportunistic TLS, RFC 7435 §1.3
	if verify {
		cfg = q.opt.RelayTLSConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
	}
	if cfg.ServerName == "" && (verify || net.ParseIP(t.Host) == nil) {
		cfg.ServerName = t.Host // for a verified relay an IP literal is checked against the certificate's IP names
	}
	return cfg
}

// ehlo says EHLO and returns the extensions offered and the reply as it came
// (a refusal too: err is only for a broken connection).
func ehlo(tp *textproto.Conn, name string) (map[string]string, string, error) {
	id, err := tp.Cmd("EHLO %s", name)
	if err != nil {
		return nil, "", err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	code, msg, err := tp.ReadResponse(250)
	var te *textproto.Error
	if errors.As(err, &te) {
		return nil, replyLines(te.Code, te.Msg), nil
	}
	if err != nil {
		return nil, "", err
	}
	ext := map[string]string{}
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext, replyLines(code, msg), nil
}

func (q *Queue) tune(c *gosmtp.Client) {
	c.CommandTimeout = q.opt.CommandTimeout
	c.SubmissionTimeout = 2 * q.opt.CommandTimeout
}

// errNoSMTPUTF8 is the failure of an address that needs SMTPUTF8 (RFC 6531)
// at a server without it.
var errNoSMTPUTF8 = errors.New("an address is not ASCII and the server does not support SMTPUTF8")
