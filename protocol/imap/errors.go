package imap

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/message"
)

// Errors of this package that the table below maps.
var (
	// errReadOnly: a command that would change a mailbox opened with EXAMINE.
	errReadOnly = errors.New("mailbox is read-only")
	// errSelectedGone: a command on a selected mailbox this session deleted.
	errSelectedGone = errors.New("selected mailbox was deleted")
)

// responseUseAttr is RFC 6154's code for a special-use attribute the server
// does not accept.
const responseUseAttr imap.ResponseCode = "USEATTR"

// errorReply is how one category of error is answered.
type errorReply struct {
	target error
	typ    imap.StatusResponseType
	code   imap.ResponseCode
	text   string // shown to the client; never the error's own text unless detail
	detail bool   // show the reason of a *models.FieldError / *models.ConflictError
}

// errorTable is the one mapping from errors to IMAP replies (RFC 5530 codes).
// The first entry whose target the error matches wins; an error matching none
// is a bug: it is logged and answered NO [SERVERBUG].
var errorTable = []errorReply{
	{target: auth.ErrCredentialTooLong, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeAuthenticationFailed, text: "User name or password too long"},
	{target: auth.ErrMalformedResponse, typ: imap.StatusResponseTypeBad, code: imap.ResponseCodeClientBug, text: "Malformed SASL response"},
	{target: auth.ErrUnknownMechanism, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeCannot, text: "Unsupported SASL mechanism"},
	{target: auth.ErrFailed, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeAuthenticationFailed, text: "Authentication failed"},
	{target: auth.ErrThrottled, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeUnavailable, text: "Too many failed logins; try again later"},
	{target: message.ErrTooLarge, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeTooBig, text: "Message exceeds the size limit"},
	{target: errReadOnly, typ: imap.StatusResponseTypeNo, code: "READ-ONLY", text: "Mailbox is read-only (opened with EXAMINE)"},
	{target: errSelectedGone, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeNonExistent, text: "Selected mailbox was deleted; select another"},
	{target: models.ErrNotFound, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeNonExistent, text: "No such mailbox"},
	{target: models.ErrConflict, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeAlreadyExists, text: "Already exists", detail: true},
	{target: models.ErrQuota, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeOverQuota, text: "Quota exceeded"},
	{target: models.ErrTooExpensive, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeLimit, text: "Search too expensive; narrow it"},
	{target: models.ErrInvalid, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeCannot, text: "Cannot do that", detail: true},
	{target: models.ErrForbidden, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeNoPerm, text: "Not permitted"},
	{target: models.ErrTemporary, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeUnavailable, text: "Temporary failure; try again later"},
	{target: context.DeadlineExceeded, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeUnavailable, text: "Temporary failure; try again later"},
	{target: context.Canceled, typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeUnavailable, text: "Server shutting down"},
}

var errServerBug = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error; it has been logged"}

// toIMAP maps err to a reply. dest says the mailbox named was the destination
// of APPEND, COPY or MOVE, where a missing one is NO [TRYCREATE] (RFC 9051
// §6.3.12). known is false for errors the table does not cover.
func toIMAP(err error, dest bool) (reply *imap.Error, known bool) {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie, true
	}
	for _, e := range errorTable {
		if !errors.Is(err, e.target) {
			continue
		}
		r := &imap.Error{Type: e.typ, Code: e.code, Text: e.text}
		if dest && e.target == models.ErrNotFound {
			r.Code = imap.ResponseCodeTryCreate
			r.Text = "No such mailbox; create it first"
		}
		if e.detail {
			var fe *models.FieldError
			var ce *models.ConflictError
			switch {
			case errors.As(err, &fe):
				r.Text = fe.Field + " " + fe.Reason
			case errors.As(err, &ce):
				r.Text = ce.Reason
			}
		}
		return r, true
	}
	return errServerBug, false
}

// fail turns an error of a command into its reply, logging the unexpected.
func (s *session) fail(op string, err error) error {
	return s.reply(op, err, false)
}

// failDest is fail for a command whose named mailbox is a destination.
func (s *session) failDest(op string, err error) error {
	return s.reply(op, err, true)
}

func (s *session) reply(op string, err error, dest bool) error {
	r, known := toIMAP(err, dest)
	switch {
	case !known:
		s.log.Error("imap command failed", "op", op, "err", err)
	case r.Code == imap.ResponseCodeUnavailable:
		s.log.Warn("imap command failed temporarily", "op", op, "err", err)
	}
	return r
}
