package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/mailgate/mailgate/models"
)

// MaxCredentialLen caps a user name or a password sent by a client, on every
// front end. Real ones are far shorter (passwords stop at MaxPasswordLen); a
// longer one is refused before any work is done on it.
const MaxCredentialLen = 1024

// Errors of the SASL exchange, besides ErrFailed.
var (
	// ErrCredentialTooLong is a user name or password over MaxCredentialLen.
	ErrCredentialTooLong = errors.New("credential too long")
	// ErrUnknownMechanism is a SASL mechanism that is not offered.
	ErrUnknownMechanism = errors.New("unknown SASL mechanism")
	// ErrMalformedResponse is a client response that breaks the mechanism's
	// syntax.
	ErrMalformedResponse = errors.New("malformed SASL response")
)

// Mechanisms are the SASL mechanisms every front end offers where plaintext
// passwords are allowed (RFC 4616 PLAIN, and LOGIN, which Outlook and older
// clients use).
var Mechanisms = []string{sasl.Plain, sasl.Login}

// CheckCredentialSize refuses a user name or password over MaxCredentialLen.
func CheckCredentialSize(username, password string) error {
	if len(username) > MaxCredentialLen || len(password) > MaxCredentialLen {
		return ErrCredentialTooLong
	}
	return nil
}

// SameIdentity reports whether an authorization identity names the user that
// authenticated: an empty one does; otherwise both must be the same address
// once normalized (case, IDNA), as everywhere else in mailgate.
func SameIdentity(authzid, username string) bool {
	if authzid == "" {
		return true
	}
	a, err1 := models.NormalizeEmail(authzid)
	b, err2 := models.NormalizeEmail(username)
	return err1 == nil && err2 == nil && a == b
}

// NewSASLServer is the one SASL factory of the mail front ends: the server
// side of mech (one of Mechanisms, any case), calling login with the
// credentials once the client sent them. login's error ends the exchange and
// is returned by Next as is. Acting for another identity (RFC 4616 authzid)
// is refused as a failed login.
func NewSASLServer(mech string, login func(username, password string) error) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &plainServer{login: login}, nil
	case sasl.Login:
		return &loginServer{login: login}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownMechanism, mech)
}

// plainServer is PLAIN (RFC 4616), with the size cap and identity rule.
type plainServer struct {
	login func(username, password string) error
	done  bool
}

func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.done {
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
	if response == nil {
		return []byte{}, false, nil // ask for the response
	}
	p.done = true
	parts := strings.Split(string(response), "\x00")
	if len(parts) != 3 {
		return nil, false, ErrMalformedResponse
	}
	authzid, username, password := parts[0], parts[1], parts[2]
	if err := CheckCredentialSize(username, password); err != nil {
		return nil, false, err
	}
	if len(authzid) > MaxCredentialLen {
		return nil, false, ErrCredentialTooLong
	}
	if !SameIdentity(authzid, username) {
		return nil, false, fmt.Errorf("authorization identity differs from the user: %w", ErrFailed)
	}
	if err := p.login(username, password); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// loginServer is the server side of the LOGIN mechanism, which go-sasl lacks:
// the client sends its user name, then its password, each when asked (or the
// user name as the initial response).
type loginServer struct {
	step     loginStep
	username string
	login    func(username, password string) error
}

type loginStep uint8

const (
	loginStart        loginStep = iota
	loginWantUser               // the server asked for the user name
	loginWantPassword           // … and then for the password
	loginDone
)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case loginStart:
		if response == nil {
			l.step = loginWantUser
			return []byte("Username:"), false, nil
		}
		return l.user(response)
	case loginWantUser:
		return l.user(response)
	case loginWantPassword:
		l.step = loginDone
		if len(response) > MaxCredentialLen {
			return nil, false, ErrCredentialTooLong
		}
		if err := l.login(l.username, string(response)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

func (l *loginServer) user(response []byte) ([]byte, bool, error) {
	if len(response) > MaxCredentialLen {
		l.step = loginDone
		return nil, false, ErrCredentialTooLong
	}
	l.username = string(response)
	l.step = loginWantPassword
	return []byte("Password:"), false, nil
}
