package smtp

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/mailgate/mailgate/protocol/auth"
)

// maxCredential caps a user name or password from a client; longer ones are
// malformed (auth.MaxPasswordLen is far below).
const maxCredential = 1024

// authAllowed tells whether AUTH may be offered: only over TLS, so that
// passwords never cross the network in the clear, unless the peer is on this
// host or the operator allowed it.
func (s *session) authAllowed() bool {
	if s.tls || s.srv.opt.AllowInsecureAuth {
		return true
	}
	return !s.srv.loopbackIsRemote && isLoopback(s.conn.RemoteAddr())
}

// AuthMechanisms lists what EHLO advertises: nothing where AUTH is not allowed.
func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an AUTH exchange (RFC 4954).
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.authAllowed() {
		return nil, s.refuse("AUTH", errEncryptionRequired)
	}
	var srv sasl.Server
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		srv = sasl.NewPlainServer(func(identity, username, password string) error {
			// Acting for another identity (RFC 4616 authzid) is not supported.
			if identity != "" && !strings.EqualFold(identity, username) {
				return auth.ErrFailed
			}
			return s.authenticate(username, password)
		})
	case sasl.Login:
		srv = &loginServer{authenticate: s.authenticate}
	default:
		return nil, s.refuse("AUTH", errUnknownMechanism)
	}
	return replyServer{srv: srv, s: s}, nil
}

// authenticate checks credentials and, when they are good, makes the session
// act for the user. It never logs the password.
func (s *session) authenticate(username, password string) error {
	if len(username) > maxCredential || len(password) > maxCredential {
		return errAuthResponse
	}
	ctx, cancel := s.commandContext()
	defer cancel()
	u, err := s.srv.authn.Check(ctx, username, password, s.conn.RemoteAddr().String())
	if errors.Is(err, auth.ErrFailed) {
		return err // auth.Check logged it
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errAuthUnavailable, err)
	}
	s.mu.Lock()
	s.user = u
	s.mu.Unlock()
	s.conn.log.Info("authenticated", "user", u.Email)
	return nil
}

// replyServer turns the errors of a SASL exchange into SMTP replies, so that
// go-smtp never shows a client an internal error's text.
type replyServer struct {
	srv sasl.Server
	s   *session
}

func (r replyServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := r.srv.Next(response)
	if err != nil {
		if !isAuthError(err) {
			err = fmt.Errorf("%w: %w", errAuthResponse, err) // sasl's own parse errors
		}
		return nil, false, r.s.refuse("AUTH", err)
	}
	return challenge, done, nil
}

func isAuthError(err error) bool {
	return errors.Is(err, auth.ErrFailed) || errors.Is(err, errAuthUnavailable) || errors.Is(err, errAuthResponse)
}

// loginServer is the server side of the LOGIN mechanism, which go-sasl lacks:
// the client sends its user name, then its password, each when asked (or the
// user name as the initial response). Outlook and older clients use it.
type loginServer struct {
	step         loginStep
	username     string
	authenticate func(username, password string) error
}

type loginStep uint8

const (
	loginStart loginStep = iota
	loginWantUser
	loginWantPassword
	loginDone
)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case loginStart:
		if response == nil {
			l.step = loginWantUser
			return []byte("Username:"), false, nil
		}
		fallthrough // the initial response is the user name
	case loginWantUser:
		if len(response) > maxCredential {
			l.step = loginDone
			return nil, false, errAuthResponse
		}
		l.username = string(response)
		l.step = loginWantPassword
		return []byte("Password:"), false, nil
	case loginWantPassword:
		l.step = loginDone
		if len(response) > maxCredential {
			return nil, false, errAuthResponse
		}
		if err := l.authenticate(l.username, string(response)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("%w: %w", errAuthResponse, sasl.ErrUnexpectedClientResponse)
}
