package smtp

import (
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"

	"github.com/mailgate/mailgate/protocol/auth"
)

// authAllowed tells whether AUTH may be offered: the connection layer's one
// rule (TLS, a peer on this host, or the operator's say-so).
func (s *session) authAllowed() bool { return s.conn.PlaintextAuthAllowed(s.tls) }

// AuthMechanisms lists what EHLO advertises: nothing where AUTH is not allowed.
func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return auth.Mechanisms
}

// Auth starts an AUTH exchange (RFC 4954).
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.authAllowed() {
		return nil, s.done("AUTH", s.refuse("AUTH", errEncryptionRequired))
	}
	srv, err := auth.NewSASLServer(mech, s.authenticate)
	if err != nil {
		return nil, s.done("AUTH", s.refuse("AUTH", err))
	}
	return replyServer{srv: srv, s: s}, nil
}

// authenticate checks credentials and, when they are good, makes the session
// act for the user. It never logs the password.
func (s *session) authenticate(username, password string) error {
	ctx, cancel := s.commandContext()
	defer cancel()
	u, err := s.srv.authn.Check(ctx, username, password, s.conn.RemoteAddr().String())
	if errors.Is(err, auth.ErrFailed) || errors.Is(err, auth.ErrThrottled) {
		return err // auth.Check logged it
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errAuthUnavailable, err)
	}
	s.mu.Lock()
	s.user = u
	s.mu.Unlock()
	s.conn.LoggedIn()
	s.srv.authn.WatchUser(s.ctx, u, s.revoke)
	s.log.Info("authenticated", "user", u.Email)
	return nil
}

// replyServer turns the errors of a SASL exchange into SMTP replies, so that
// go-smtp never shows a client an internal error's text, and counts failed
// logins: the connection's last allowed failure is answered 421 and closed.
type replyServer struct {
	srv sasl.Server
	s   *session
}

func (r replyServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := r.srv.Next(response)
	if err == nil {
		if done {
			r.s.done("AUTH", nil)
		}
		return challenge, done, nil
	}
	if !isAuthError(err) {
		err = fmt.Errorf("%w: %w", errAuthResponse, err) // sasl's own parse errors
	}
	if !errors.Is(err, errAuthUnavailable) && r.s.conn.LoginFailed(errors.Is(err, auth.ErrThrottled)) {
		r.s.log.Info("too many failed logins; closing")
		r.s.conn.CloseAfterNextWrite()
		err = fmt.Errorf("%w: %w", errTooManyFailures, err)
	}
	return nil, false, r.s.done("AUTH", r.s.refuse("AUTH", err))
}

func isAuthError(err error) bool {
	return errors.Is(err, auth.ErrFailed) || errors.Is(err, auth.ErrThrottled) || errors.Is(err, errAuthUnavailable) ||
		errors.Is(err, auth.ErrCredentialTooLong) || errors.Is(err, auth.ErrMalformedResponse)
}
