package smtp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/message"
)

// TestReply covers every branch of the error mapping, each error also wrapped
// the way lower layers wrap, and checks that no error text reaches the client.
func TestReply(t *testing.T) {
	own := &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "own"}
	secret := errors.New("pq: password authentication failed for user secret")
	cases := []struct {
		err   error
		code  int
		ec    gosmtp.EnhancedCode
		known bool
	}{
		{own, 421, gosmtp.EnhancedCode{4, 4, 2}, true},
		{gosmtp.ErrDataTooLarge, 552, gosmtp.EnhancedCode{5, 3, 4}, true},
		{delivery.ErrNoSuchUser, 550, gosmtp.EnhancedCode{5, 1, 1}, true},
		{delivery.ErrDisabled, 550, gosmtp.EnhancedCode{5, 2, 1}, true},
		{delivery.ErrRelayDenied, 554, gosmtp.EnhancedCode{5, 7, 1}, true},
		{delivery.ErrSenderDenied, 553, gosmtp.EnhancedCode{5, 7, 1}, true},
		{errFromDenied, 553, gosmtp.EnhancedCode{5, 7, 1}, true},
		{delivery.ErrAllOverQuota, 452, gosmtp.EnhancedCode{4, 2, 2}, true},
		{models.ErrQuota, 452, gosmtp.EnhancedCode{4, 2, 2}, true},
		{delivery.ErrBadAddress, 501, gosmtp.EnhancedCode{5, 1, 3}, true},
		{errBadSender, 501, gosmtp.EnhancedCode{5, 1, 7}, true},
		{errTooManyRecipients, 452, gosmtp.EnhancedCode{4, 5, 3}, true},
		{message.ErrTooLarge, 552, gosmtp.EnhancedCode{5, 3, 4}, true},
		{gosmtp.ErrTooLongLine, 500, gosmtp.EnhancedCode{5, 5, 2}, true},
		{delivery.ErrNoRecipients, 554, gosmtp.EnhancedCode{5, 5, 1}, true},
		{errAuthRequired, 530, gosmtp.EnhancedCode{5, 7, 0}, true},
		{errEncryptionRequired, 538, gosmtp.EnhancedCode{5, 7, 11}, true},
		{auth.ErrFailed, 535, gosmtp.EnhancedCode{5, 7, 8}, true},
		{errAuthUnavailable, 454, gosmtp.EnhancedCode{4, 7, 0}, true},
		{errAuthResponse, 501, gosmtp.EnhancedCode{5, 5, 2}, true},
		{auth.ErrCredentialTooLong, 501, gosmtp.EnhancedCode{5, 5, 2}, true},
		{fmt.Errorf("%w: %w", errTooManyFailures, auth.ErrFailed), 421, gosmtp.EnhancedCode{4, 7, 0}, true},
		{auth.ErrUnknownMechanism, 504, gosmtp.EnhancedCode{5, 5, 4}, true},
		{models.ErrTemporary, 451, gosmtp.EnhancedCode{4, 3, 0}, false},
		{context.DeadlineExceeded, 451, gosmtp.EnhancedCode{4, 3, 0}, false},
		{os.ErrDeadlineExceeded, 451, gosmtp.EnhancedCode{4, 3, 0}, false},
		{models.ErrNotFound, 451, gosmtp.EnhancedCode{4, 3, 0}, false},
		{secret, 451, gosmtp.EnhancedCode{4, 3, 0}, false},
	}
	for _, c := range cases {
		for _, err := range []error{c.err, fmt.Errorf("deliver to 3 recipients: %w", fmt.Errorf("resolve x: %w", c.err))} {
			got, known := reply(err)
			if got == nil || got.Code != c.code || got.EnhancedCode != c.ec || known != c.known {
				t.Errorf("reply(%v) = %+v, %v; want %d %v, %v", err, got, known, c.code, c.ec, c.known)
				continue
			}
			if got != own && (got.Message == "" || strings.Contains(got.Message, err.Error()) ||
				strings.Contains(got.Message, "secret") || strings.Contains(got.Message, "resolve")) {
				t.Errorf("reply(%v) leaks or lacks text: %q", err, got.Message)
			}
		}
	}
	if got, known := reply(nil); got != nil || !known {
		t.Errorf("reply(nil) = %v, %v", got, known)
	}
}

func TestWithProtocol(t *testing.T) {
	for _, c := range []struct {
		tls, auth bool
		want      string
	}{{false, false, "ESMTP"}, {true, false, "ESMTPS"}, {false, true, "ESMTPA"}, {true, true, "ESMTPSA"}} {
		if got := withProtocol(c.tls, c.auth); got != c.want {
			t.Errorf("withProtocol(%v, %v) = %q", c.tls, c.auth, got)
		}
	}
}
