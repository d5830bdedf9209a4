package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
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
		if c.plaintextOK() {
			caps = append(caps, "USER", "SASL "+strings.Join(auth.Mechanisms, " "))
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
	// STLS is only valid before login: wc's read deadline bounds the
	// handshake by the login timeout.
	tc := tls.Server(c.netConn, c.srv.opt.TLSConfig)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.log.Debug("STLS handshake failed", "err", err)
		c.done = true
		return nil
	}
	c.netConn = tc
	c.br = bufio.NewReaderSize(tc, 4096)
	c.bw.Reset(tc) // flushed above
	c.tls = true
	c.userName = ""
	return nil
}

// userCmd names the user for PASS (RFC 1939 §7). Whether the user exists is
// not told here: PASS fails the same either way.
func (c *conn) userCmd(arg string) error {
	if !c.plaintextOK() {
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
	if !c.plaintextOK() {
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
	if err := auth.CheckCredentialSize(name, arg); err != nil {
		return c.loginFailed(name, err)
	}
	ctx, cancel := c.wc.OpContext()
	defer cancel()
	u, err := c.srv.auth.Check(ctx, name, arg, c.remote)
	if err != nil {
		return c.loginFailed(name, err)
	}
	return c.login(u)
}

// authenticate runs AUTH (RFC 5034) with the mechanisms of package auth (PLAIN
// and LOGIN); AUTH without a mechanism lists them, as clients of the earlier
// RFC 1734 expect.
func (c *conn) authenticate(arg string) error {
	if !c.plaintextOK() {
		return errInsecure
	}
	mech, ir, hasIR := strings.Cut(strings.TrimSpace(arg), " ")
	if mech == "" {
		c.writeLine("+OK Mechanisms follow")
		for _, m := range auth.Mechanisms {
			c.writeLine(m)
		}
		c.writeLine(".")
		return nil
	}
	var user *models.User
	var name string
	srv, err := auth.NewSASLServer(mech, func(username, password string) error {
		name = username
		ctx, cancel := c.wc.OpContext()
		defer cancel()
		u, err := c.srv.auth.Check(ctx, username, password, c.remote)
		user = u
		return err
	})
	if err != nil {
		return err
	}
	c.userName = ""
	var resp []byte
	if hasIR {
		if resp, err = decodeSASL(ir); err != nil {
			return err
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			// A malformed or oversized response fails like a wrong password.
			return c.loginFailed(name, err)
		}
		if done {
			return c.login(user)
		}
		if resp, err = c.saslContinue(challenge); err != nil {
			if errors.Is(err, errHungUp) {
				return nil
			}
			return err
		}
	}
}

var (
	errAuthCancelled = &protoError{code: codeAuth, text: "Authentication cancelled"}
	// errHungUp ends a command whose connection is gone or that was answered
	// already.
	errHungUp = errors.New("connection ended")
)

// saslContinue sends a challenge and reads the client's response line.
func (c *conn) saslContinue(challenge []byte) ([]byte, error) {
	c.writeLine("+ " + base64.StdEncoding.EncodeToString(challenge))
	if err := c.flush(); err != nil {
		c.silent = true
		return nil, errHungUp
	}
	line, err := c.readLine(maxAuthLine)
	switch {
	case errors.Is(err, errLineTooLong):
		return nil, &protoError{code: codeAuth, text: "Authentication response too long"}
	case err != nil:
		c.readFailed(err) // a timeout is answered with its reason
		c.done = true
		c.silent = !c.failed // nothing negative was written before
		return nil, errHungUp
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

// loginFailed answers a failed login, which wire counts; after too many the
// session ends. A store failure is not the client's fault and is not counted.
func (c *conn) loginFailed(name string, err error) error {
	pe, unexpected := reply(err)
	if unexpected || pe.code != codeAuth {
		return err
	}
	throttled := errors.Is(err, auth.ErrThrottled)
	c.log.Debug("login failed", "user", name, "throttled", throttled, "err", err)
	if c.wc.LoginFailed(throttled) {
		c.writeLine(pe.line() + "; too many failures, closing")
		c.done = true
		return nil
	}
	return pe
}

// login locks the user's maildrop and takes its snapshot (RFC 1939 §8). If the
// lock is held, the session stays in AUTHORIZATION: the client may try again.
func (c *conn) login(u *models.User) error {
	ctx, cancel := c.wc.OpContext()
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
	go c.lease.keep(lctx, c.srv.mbox, c.srv.opt.LockTTL, c.log, func() { c.wc.Close() })
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
	c.wc.LoggedIn()
	c.srv.auth.WatchUser(c.ctx, u, c.revoke)
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

// revoke ends a session whose user may no longer read mail: disabled, deleted
// or its password changed (auth.WatchUser). It runs in a goroutine of its own:
// the goodbye is written straight to the connection, which is then closed; the
// session's next read fails, and it ends without UPDATE, deleting nothing.
func (c *conn) revoke(reason string) {
	c.log.Info("ending session: credentials revoked", "reason", reason)
	io.WriteString(c.netConn, "-ERR ["+codeAuth+"] Credentials no longer valid; closing\r\n") //nolint:errcheck // closing anyway
	c.wc.Close()
}
