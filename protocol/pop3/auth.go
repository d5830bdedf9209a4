package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/mailgate/mailgate/models"
)

// capa lists the capabilities (RFC 2449 §5). Those that cannot be used right
// now are left out: STLS once TLS is on or without a certificate, USER and SASL
// where plaintext logins are refused, and all three after login.
func (c *conn) capa(arg string) error {
	if arg != "" {
		return errSyntax
	}
	caps := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	if c.state == stateAuthorization {
		if c.secure() {
			caps = append(caps, "USER", "SASL PLAIN")
		}
		if c.srv.opt.TLSConfig != nil && !c.tls {
			caps = append(caps, "STLS")
		}
	}
	caps = append(caps, "IMPLEMENTATION mailgate")
	c.writeLine("+OK Capability list follows")
	for _, s := range caps {
		c.writeLine(s)
	}
	c.writeLine(".")
	return nil
}

// stls starts TLS (RFC 2595 §4). Whatever the client sent after STLS in the
// clear is thrown away, so that it cannot pass for commands sent under TLS.
func (c *conn) stls(arg string) error {
	switch {
	case arg != "":
		return errSyntax
	case c.tls:
		return &protoError{text: "TLS is already active"}
	case c.srv.opt.TLSConfig == nil:
		return &protoError{text: "STLS is not available"}
	}
	c.writeLine("+OK Begin TLS negotiation")
	if err := c.flush(); err != nil {
		return nil
	}
	tc := tls.Server(c.netConn, c.srv.opt.TLSConfig)
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.opt.AuthTimeout)
	defer cancel()
	c.netConn.SetDeadline(time.Now().Add(c.srv.opt.AuthTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("STLS handshake failed", "err", err)
		c.done = true
		return nil
	}
	c.mu.Lock()
	c.netConn = tc
	c.mu.Unlock()
	c.br = bufio.NewReaderSize(tc, 4096)
	c.tls = true
	c.userName = ""
	return nil
}

// userCmd names the user for PASS (RFC 1939 §7). Whether the user exists is
// not told here: PASS fails the same either way.
func (c *conn) userCmd(arg string) error {
	if !c.secure() {
		return errInsecure
	}
	name := strings.TrimSpace(arg)
	if name == "" {
		return errSyntax
	}
	c.userName = name
	c.writeLine("+OK Send PASS")
	return nil
}

// pass checks the password of the user named by USER.
func (c *conn) pass(arg string) error {
	if !c.secure() {
		return errInsecure
	}
	if c.userName == "" {
		return &protoError{text: "Send USER first"}
	}
	name := c.userName
	c.userName = ""
	if arg == "" {
		return errSyntax
	}
	ctx, cancel := c.opCtx()
	defer cancel()
	u, err := c.srv.auth.Check(ctx, name, arg, c.remote)
	if err != nil {
		return c.loginFailed(name, err)
	}
	return c.login(u)
}

// authenticate runs AUTH (RFC 5034). Only PLAIN (RFC 4616) is offered; AUTH
// without a mechanism lists it, as clients of the earlier RFC 1734 expect.
func (c *conn) authenticate(arg string) error {
	if !c.secure() {
		return errInsecure
	}
	mech, ir, hasIR := strings.Cut(strings.TrimSpace(arg), " ")
	if mech == "" {
		c.writeLine("+OK Mechanisms follow")
		c.writeLine(sasl.Plain)
		c.writeLine(".")
		return nil
	}
	if !strings.EqualFold(mech, sasl.Plain) {
		return &protoError{text: "Unsupported authentication mechanism"}
	}
	c.userName = ""
	var resp []byte
	if hasIR {
		var err error
		if resp, err = decodeSASL(ir); err != nil {
			return err
		}
	}
	var user *models.User
	var name string
	checked := false
	srv := sasl.NewPlainServer(func(identity, username, password string) error {
		name, checked = username, true
		if identity != "" && !sameUser(identity, username) {
			return fmt.Errorf("authorization identity %q differs from %q: %w", identity, username, errAuthFailed)
		}
		ctx, cancel := c.opCtx()
		defer cancel()
		u, err := c.srv.auth.Check(ctx, username, password, c.remote)
		user = u
		return err
	})
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil && !checked {
			// Not three NUL-separated fields: a failed login like any other.
			err = fmt.Errorf("malformed PLAIN response: %w", errAuthFailed)
		}
		if err != nil {
			return c.loginFailed(name, err)
		}
		if done {
			return c.login(user)
		}
		if resp, err = c.saslContinue(challenge); err != nil {
			return err
		}
	}
}

var errAuthCancelled = &protoError{code: codeAuth, text: "Authentication cancelled"}

// saslContinue sends a challenge and reads the client's response line.
func (c *conn) saslContinue(challenge []byte) ([]byte, error) {
	c.writeLine("+ " + base64.StdEncoding.EncodeToString(challenge))
	if err := c.flush(); err != nil {
		return nil, errAuthCancelled
	}
	line, err := c.waitLine(maxAuthLine, c.srv.opt.AuthTimeout)
	switch {
	case errors.Is(err, errLineTooLong):
		return nil, &protoError{code: codeAuth, text: "Authentication response too long"}
	case err != nil:
		c.done = true
		return nil, errAuthCancelled
	case string(line) == "*":
		return nil, errAuthCancelled
	}
	return decodeSASL(string(line))
}

// decodeSASL decodes a base64 SASL response; "=" is an empty one (RFC 5034 §4).
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &protoError{code: codeAuth, text: "Invalid base64 in authentication response"}
	}
	return b, nil
}

func sameUser(a, b string) bool {
	na, err1 := models.NormalizeEmail(a)
	nb, err2 := models.NormalizeEmail(b)
	return err1 == nil && err2 == nil && na == nb
}

// loginFailed counts a failed login and ends the session after too many. A
// store failure is not the client's fault and is not counted.
func (c *conn) loginFailed(name string, err error) error {
	pe, unexpected := reply(err)
	if unexpected {
		return err
	}
	if pe.code == codeAuth {
		// Undecodable PLAIN responses are failures like wrong passwords.
		c.failures++
		c.log.Debug("login failed", "user", name, "failures", c.failures)
		if c.failures >= c.srv.opt.MaxAuthFailures {
			c.writeLine(errAuthFailed.line() + "; too many failures, closing")
			c.done = true
			return nil
		}
		return errAuthFailed
	}
	return err
}

// login locks the user's maildrop and takes its snapshot (RFC 1939 §8). If the
// lock is held, the session stays in AUTHORIZATION: the client may try again.
func (c *conn) login(u *models.User) error {
	ctx, cancel := c.opCtx()
	defer cancel()
	owner := c.srv.newOwner()
	if err := c.srv.mbox.LockMaildrop(ctx, u.ID, owner, c.srv.opt.LockTTL); err != nil {
		if !errors.Is(err, models.ErrMaildropLocked) {
			err = fmt.Errorf("lock maildrop of %s: %w", u.Email, err)
		} else {
			c.log.Info("maildrop in use", "user", u.Email)
		}
		return err
	}
	lctx, stop := context.WithCancel(c.ctx)
	c.lease = &lease{userID: u.ID, owner: owner, stop: stop, done: make(chan struct{})}
	go c.lease.keep(lctx, c.srv.mbox, c.srv.opt.LockTTL, c.log, c.abort)
	inbox, err := c.srv.mbox.Get(ctx, u.ID, models.Inbox)
	if err != nil {
		c.releaseLease()
		return fmt.Errorf("open INBOX of %s: %w", u.Email, errors.Join(err, models.ErrTemporary))
	}
	msgs, err := c.srv.mbox.MaildropMessages(ctx, inbox.ID)
	if err != nil {
		c.releaseLease()
		return fmt.Errorf("list INBOX of %s: %w", u.Email, errors.Join(err, models.ErrTemporary))
	}
	c.user, c.drop, c.state = u, newSnapshot(inbox.ID, msgs), stateTransaction
	c.log = c.log.With("user", u.Email)
	c.log.Info("logged in", "messages", c.drop.count, "tls", c.tls)
	c.writeLine(fmt.Sprintf("+OK Maildrop has %d messages (%d octets)", c.drop.count, c.drop.size))
	return nil
}

// releaseLease stops renewing the maildrop lock and gives it up.
func (c *conn) releaseLease() {
	l := c.lease
	if l == nil {
		return
	}
	c.lease = nil
	l.stop()
	<-l.done
	// The session's ctx may be ending; the release must still reach the store,
	// or the next login waits for the lease to run out.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.srv.mbox.UnlockMaildrop(ctx, l.userID, l.owner); err != nil {
		c.log.Warn("release maildrop lock", "err", err)
	}
}
