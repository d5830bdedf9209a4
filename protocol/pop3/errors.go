package pop3

import (
	"errors"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
)

// Response codes (RFC 2449 §8, RFC 3206).
const (
	codeInUse   = "IN-USE"
	codeAuth    = "AUTH"
	codeSysTemp = "SYS/TEMP"
)

// protoError is a negative reply whose text goes to the client as is: the
// protocol's own complaints (bad syntax, wrong state, no such message).
type protoError struct {
	code string // a response code without brackets, or ""
	text string
}

func (e *protoError) Error() string { return e.text }

// Errors with a fixed reply.
var (
	errNoSuchMessage = &protoError{text: "No such message"}
	errDeleted       = &protoError{text: "Message already deleted"}
	errSyntax        = &protoError{text: "Syntax error in arguments"}
	errInsecure      = &protoError{code: codeAuth, text: "Plaintext authentication is refused without TLS; use STLS or port 995"}
	errAuthFailed    = &protoError{code: codeAuth, text: "Authentication failed"}
	errThrottled     = &protoError{code: codeAuth, text: "Too many failed logins; try again later"}
	errCredTooLong   = &protoError{code: codeAuth, text: "Authentication failed: credentials too long"}
	errUnknownMech   = &protoError{text: "Unsupported authentication mechanism"}
	errInUse         = &protoError{code: codeInUse, text: "Maildrop is in use by another session; try again later"}
	errTemporary     = &protoError{code: codeSysTemp, text: "Temporary server failure; try again later"}
)

// reply is the one mapping of errors to -ERR replies. It returns the protoError
// to send, and whether err was unexpected (a store or internal failure), which
// the caller logs with its detail; clients never see that detail.
//   - protoError → itself;
//   - auth.ErrCredentialTooLong → -ERR [AUTH] saying so;
//   - auth.ErrFailed, auth.ErrMalformedResponse → -ERR [AUTH] (RFC 3206 §4);
//   - auth.ErrThrottled (the login budget) → -ERR [AUTH] saying to come back later;
//   - auth.ErrUnknownMechanism → -ERR Unsupported authentication mechanism;
//   - models.ErrMaildropLocked → -ERR [IN-USE] (RFC 2449 §8.1.1);
//   - models.ErrNotFound (a message gone since the snapshot) → -ERR No such message;
//   - anything else — models.ErrTemporary, a lost database, a deadline — →
//     -ERR [SYS/TEMP] (RFC 3206 §4): nothing was changed, so trying again later is right.
func reply(err error) (e *protoError, unexpected bool) {
	var pe *protoError
	switch {
	case errors.As(err, &pe):
		return pe, false
	case errors.Is(err, auth.ErrCredentialTooLong):
		return errCredTooLong, false
	case errors.Is(err, auth.ErrFailed), errors.Is(err, auth.ErrMalformedResponse):
		return errAuthFailed, false
	case errors.Is(err, auth.ErrThrottled):
		return errThrottled, false
	case errors.Is(err, auth.ErrUnknownMechanism):
		return errUnknownMech, false
	case errors.Is(err, models.ErrMaildropLocked):
		return errInUse, false
	case errors.Is(err, models.ErrNotFound):
		return errNoSuchMessage, false
	}
	return errTemporary, true
}

// line renders a negative reply: "-ERR [CODE] text".
func (e *protoError) line() string {
	if e.code == "" {
		return "-ERR " + e.text
	}
	return "-ERR [" + e.code + "] " + e.text
}
