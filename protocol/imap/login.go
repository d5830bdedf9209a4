package imap

import (
	"errors"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/mailgate/mailgate/protocol/auth"
)

var (
	errPrivacyRequired = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}
	errTooManyFailures = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Too many failed logins"}
	errLoginTemporary  = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Temporary failure; try again later"}
)

// Login answers LOGIN. The library has already refused it before TLS where
// the policy wants TLS; the check is repeated here so that it does not rest
// on which library server got the connection.
func (s *session) Login(username, password string) (err error) {
	s.begin()
	defer func() { s.end("LOGIN", err) }()
	switch {
	case !s.authAllowed():
		return errPrivacyRequired
	case s.hungUp:
		return errTooManyFailures
	}
	if err := s.checkLogin(username, password); err != nil {
		return s.loginFailed(err)
	}
	return nil
}

// AuthenticateMechanisms are the SASL mechanisms offered (AUTH=…) where a
// plaintext password may be sent.
func (s *session) AuthenticateMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return slices.Clone(auth.Mechanisms)
}

// Authenticate answers AUTHENTICATE with auth's SASL servers (PLAIN and
// LOGIN); the library runs the exchange.
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	s.begin()
	var err error
	switch {
	case !s.authAllowed():
		err = errPrivacyRequired
	case s.hungUp:
		err = errTooManyFailures
	}
	if err != nil {
		s.end("AUTHENTICATE", err)
		return nil, err
	}
	srv, err := auth.NewSASLServer(mech, s.checkLogin)
	if err != nil {
		err = s.loginFailed(err)
		s.end("AUTHENTICATE", err)
		return nil, err
	}
	return &saslServer{s: s, srv: srv}, nil
}

// saslServer maps the errors of auth's SASL servers to IMAP replies and
// counts the exchange.
type saslServer struct {
	s   *session
	srv sasl.Server
}

func (a *saslServer) Next(response []byte) ([]byte, bool, error) {
	a.s.wc.Touch()
	challenge, done, err := a.srv.Next(response)
	if err != nil {
		err = a.s.loginFailed(err)
		a.s.end("AUTHENTICATE", err)
		return nil, false, err
	}
	if done {
		a.s.end("AUTHENTICATE", nil)
	}
	return challenge, done, nil
}

// checkLogin checks credentials; on success the session is authenticated.
// Its errors are auth's and the store's, for loginFailed.
func (s *session) checkLogin(username, password string) error {
	if err := auth.CheckCredentialSize(username, password); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(opTimeout)
	defer cancel()
	u, err := s.srv.authn.Check(ctx, username, password, s.remote)
	if err != nil {
		return err
	}
	s.user = u
	s.log = s.log.With("user", u.Email)
	s.wc.LoggedIn()
	s.srv.authn.WatchUser(s.ctx, u, s.revoke)
	s.log.Info("imap login")
	return nil
}

// loginFailed answers a failed LOGIN or AUTHENTICATE. A failed login (wrong
// credentials, or ones too long or malformed to check) counts towards the
// connection's limit: after the last one allowed, the tagged NO is followed
// by BYE. A login the budget refused (auth.ErrThrottled) counts too.
func (s *session) loginFailed(err error) error {
	counted := errors.Is(err, auth.ErrFailed) || errors.Is(err, auth.ErrThrottled) || errors.Is(err, auth.ErrCredentialTooLong) ||
		errors.Is(err, auth.ErrMalformedResponse) || errors.Is(err, sasl.ErrUnexpectedClientResponse)
	var reply *imap.Error
	switch {
	case errors.Is(err, sasl.ErrUnexpectedClientResponse):
		reply = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Unexpected SASL response"}
	case counted, errors.Is(err, auth.ErrUnknownMechanism):
		reply, _ = toIMAP(err, false)
	default:
		s.log.Warn("imap login failed temporarily", "err", err)
		reply = errLoginTemporary
	}
	if counted && s.wc.LoginFailed(errors.Is(err, auth.ErrThrottled)) {
		s.hungUp = true
		// The tagged NO is the next write: nothing else is written before
		// authentication. BYE takes the library's writer, hence the goroutine.
		s.cc.thenRun(func() { go s.bye("Too many failed logins") })
	}
	return reply
}

// revoke ends a session whose user may no longer read mail: disabled,
// deleted or its password changed (auth.WatchUser), on any instance. A client
// that does not read its BYE is cut off byeGrace later.
func (s *session) revoke(reason string) {
	s.log.Info("ending session: credentials revoked", "reason", reason)
	t := time.AfterFunc(byeGrace, func() { s.wc.Close() })
	defer t.Stop()
	s.bye("Credentials no longer valid")
}
