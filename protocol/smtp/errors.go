package smtp

import (
	"errors"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/message"
)

// Errors of this package's own checks. They never reach a client as text: reply
// maps each to its SMTP reply.
var (
	errAuthRequired       = errors.New("authentication required")
	errEncryptionRequired = errors.New("plaintext authentication without TLS")
	errAuthUnavailable    = errors.New("credential check unavailable")
	errAuthResponse       = errors.New("malformed authentication response")
	errBadSender          = errors.New("invalid sender address")
	errFromDenied         = errors.New("From header address not owned by the sender")
	errTooManyRecipients  = errors.New("too many recipients")
	errTooManyFailures    = errors.New("too many failed logins on the connection")
)

// Replies that do not depend on the error.
var (
	replyTryLater = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "Temporary server error, please try again later"}
	replyTooLarge = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4},
		Message: "Message too big"}
)

// reply is the one mapping from errors to SMTP replies. Client text is fixed
// per category and never includes err.Error(): details go to the log. The second
// result is false when err fell into no category (an internal failure the caller
// must log): the reply is then the generic 451 4.3.0.
func reply(err error) (*gosmtp.SMTPError, bool) {
	var se *gosmtp.SMTPError
	switch {
	case err == nil:
		return nil, true
	case errors.As(err, &se):
		return se, true // already a reply (go-smtp's, or one of ours)
	case errors.Is(err, delivery.ErrNoSuchUser):
		return smtpErr(550, 5, 1, 1, "No such user here"), true
	case errors.Is(err, delivery.ErrDisabled):
		return smtpErr(550, 5, 2, 1, "Mailbox disabled"), true
	case errors.Is(err, delivery.ErrRelayDenied):
		return smtpErr(554, 5, 7, 1, "Relay access denied"), true
	case errors.Is(err, delivery.ErrSenderDenied):
		return smtpErr(553, 5, 7, 1, "Sender address not owned by the authenticated user"), true
	case errors.Is(err, errFromDenied):
		return smtpErr(553, 5, 7, 1, "From header address not owned by the authenticated user"), true
	case errors.Is(err, delivery.ErrAllOverQuota):
		return smtpErr(452, 4, 2, 2, "Mailbox full"), true
	case errors.Is(err, models.ErrQuota):
		return smtpErr(452, 4, 2, 2, "Mailbox full"), true
	case errors.Is(err, delivery.ErrBadAddress):
		return smtpErr(501, 5, 1, 3, "Bad recipient address syntax"), true
	case errors.Is(err, errBadSender):
		return smtpErr(501, 5, 1, 7, "Bad sender address syntax"), true
	case errors.Is(err, errTooManyRecipients):
		return smtpErr(452, 4, 5, 3, "Too many recipients"), true
	case errors.Is(err, message.ErrTooLarge), errors.Is(err, gosmtp.ErrDataTooLarge):
		return replyTooLarge, true
	case errors.Is(err, gosmtp.ErrTooLongLine):
		return smtpErr(500, 5, 5, 2, "Line too long"), true
	case errors.Is(err, delivery.ErrNoRecipients):
		return smtpErr(554, 5, 5, 1, "No valid recipients"), true
	case errors.Is(err, errAuthRequired):
		return smtpErr(530, 5, 7, 0, "Authentication required"), true
	case errors.Is(err, errEncryptionRequired):
		return smtpErr(538, 5, 7, 11, "Encryption required for requested authentication mechanism"), true
	case errors.Is(err, errTooManyFailures):
		return smtpErr(421, 4, 7, 0, "Too many authentication failures, closing connection"), true
	case errors.Is(err, auth.ErrThrottled):
		return smtpErr(454, 4, 7, 0, "Too many failed logins, try again later"), true
	case errors.Is(err, auth.ErrFailed):
		return smtpErr(535, 5, 7, 8, "Authentication credentials invalid"), true
	case errors.Is(err, errAuthUnavailable):
		return smtpErr(454, 4, 7, 0, "Temporary authentication failure"), true
	case errors.Is(err, errAuthResponse), errors.Is(err, auth.ErrCredentialTooLong), errors.Is(err, auth.ErrMalformedResponse):
		return smtpErr(501, 5, 5, 2, "Malformed authentication response"), true
	case errors.Is(err, auth.ErrUnknownMechanism):
		return smtpErr(504, 5, 5, 4, "Unrecognized authentication type"), true
	}
	return replyTryLater, false
}

func smtpErr(code, class, subject, detail int, msg string) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{class, subject, detail}, Message: msg}
}
