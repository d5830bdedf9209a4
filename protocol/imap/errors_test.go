package imap

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/message"
)

func TestErrorTable(t *testing.T) {
	no := imap.StatusResponseTypeNo
	cases := []struct {
		err   error
		dest  bool
		typ   imap.StatusResponseType
		code  imap.ResponseCode
		text  string // "" : any
		known bool
	}{
		{fmt.Errorf("check: %w", auth.ErrFailed), false, no, imap.ResponseCodeAuthenticationFailed, "Authentication failed", true},
		{fmt.Errorf("%w: %w", auth.ErrFailed, auth.ErrCredentialTooLong), false, no, imap.ResponseCodeAuthenticationFailed, "User name or password too long", true},
		{auth.ErrMalformedResponse, false, imap.StatusResponseTypeBad, imap.ResponseCodeClientBug, "", true},
		{fmt.Errorf("search: %w: too many terms", models.ErrTooExpensive), false, no, imap.ResponseCodeLimit, "Search too expensive; narrow it", true},
		{&auth.ThrottledError{RetryAfter: time.Minute}, false, no, imap.ResponseCodeUnavailable, "Too many failed logins; try again later", true},
		{fmt.Errorf("%w: %q", auth.ErrUnknownMechanism, "X"), false, no, imap.ResponseCodeCannot, "", true},
		{fmt.Errorf("append: %w", message.ErrTooLarge), false, no, imap.ResponseCodeTooBig, "", true},
		{errReadOnly, false, no, "READ-ONLY", "", true},
		{errSelectedGone, false, no, imap.ResponseCodeNonExistent, "", true},
		{&models.NotFoundError{What: "mailbox x"}, false, no, imap.ResponseCodeNonExistent, "No such mailbox", true},
		{fmt.Errorf("copy: %w", &models.NotFoundError{What: "mailbox x"}), true, no, imap.ResponseCodeTryCreate, "", true},
		{&models.ConflictError{Reason: `mailbox "x" already exists`}, false, no, imap.ResponseCodeAlreadyExists, `mailbox "x" already exists`, true},
		{fmt.Errorf("insert: %w: duplicate key value violates secret_index", models.ErrConflict), false, no, imap.ResponseCodeAlreadyExists, "Already exists", true},
		{fmt.Errorf("append: %w", models.ErrQuota), false, no, imap.ResponseCodeOverQuota, "", true},
		{models.Invalid("name", "has an empty hierarchy level"), false, no, imap.ResponseCodeCannot, "name has an empty hierarchy level", true},
		{fmt.Errorf("delete INBOX: %w", models.ErrForbidden), false, no, imap.ResponseCodeNoPerm, "", true},
		{fmt.Errorf("tx: %w", models.ErrTemporary), false, no, imap.ResponseCodeUnavailable, "", true},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), false, no, imap.ResponseCodeUnavailable, "", true},
		{context.Canceled, false, no, imap.ResponseCodeUnavailable, "", true},
		{&imap.Error{Type: imap.StatusResponseTypeBad, Text: "as is"}, false, imap.StatusResponseTypeBad, "", "as is", true},
		{errors.New("disk on fire at /var/secret"), false, no, imap.ResponseCodeServerBug, "Internal error; it has been logged", false},
	}
	for _, c := range cases {
		r, known := toIMAP(c.err, c.dest)
		if r.Type != c.typ || r.Code != c.code || known != c.known || (c.text != "" && r.Text != c.text) {
			t.Errorf("toIMAP(%v, %v) = %+v known=%v; want %s [%s] %q known=%v", c.err, c.dest, r, known, c.typ, c.code, c.text, c.known)
		}
	}
	// Every row of the table is exercised above.
	for _, row := range errorTable {
		found := false
		for _, c := range cases {
			if errors.Is(c.err, row.target) {
				found = true
			}
		}
		if !found {
			t.Errorf("table row %v not tested", row.target)
		}
	}
}
