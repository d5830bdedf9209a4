package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/message"
)

// TestMailErrorStatuses covers the branches of the error table the mail
// endpoints added, wrapped as the layers below wrap them.
func TestMailErrorStatuses(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
		field  string
	}{
		{fmt.Errorf("deliver: %w", delivery.ErrSenderDenied), http.StatusForbidden, CodeForbidden, ""},
		{onField("from", delivery.ErrSenderDenied), http.StatusForbidden, CodeForbidden, "from"},
		{fmt.Errorf("resolve: %w", delivery.ErrBadAddress), http.StatusBadRequest, CodeInvalid, ""},
		{fmt.Errorf("compose message: %w", message.ErrTooLarge), http.StatusRequestEntityTooLarge, CodeTooLarge, ""},
		{fmt.Errorf("claim: %w", models.ErrIdempotencyMismatch), http.StatusUnprocessableEntity, CodeIdempotencyMismatch, ""},
		{fmt.Errorf("stream: %w", message.ErrNoAttachment), http.StatusNotFound, CodeNotFound, ""},
		{fmt.Errorf("deliver to 2 recipients: %w", noRecipients([]Rejection{{"a@b", "no such user here"}})), http.StatusUnprocessableEntity, CodeNoRecipients, "to"},
		{onField("mailbox", models.Invalid("name", "is empty")), http.StatusBadRequest, CodeInvalid, "mailbox"},
		{fmt.Errorf("append: %w", models.ErrQuota), http.StatusInsufficientStorage, CodeOverQuota, ""},
		// A field cannot make an internal error any less internal, or leak it.
		{onField("from", errors.New("connection reset")), http.StatusInternalServerError, CodeInternal, ""},
	} {
		st, body := status(c.err)
		if st != c.status || body.Code != c.code || body.Field != c.field {
			t.Errorf("status(%v) = %d %+v, want %d %s field %q", c.err, st, body, c.status, c.code, c.field)
		}
		if c.field != "" && (len(body.Message) < len(c.field) || body.Message[:len(c.field)] != c.field) {
			t.Errorf("status(%v): message %q does not start with the field", c.err, body.Message)
		}
		if st == 500 && body.Message != "internal server error" {
			t.Errorf("500 leaks %q", body.Message)
		}
	}
}
