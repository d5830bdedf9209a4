package pop3

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
)

// TestReply covers every branch of the one error mapping (STYLE C8).
func TestReply(t *testing.T) {
	for _, tc := range []struct {
		err        error
		line       string
		unexpected bool
	}{
		{errSyntax, "-ERR Syntax error in arguments", false},
		{fmt.Errorf("list: %w", errNoSuchMessage), "-ERR No such message", false},
		{errInsecure, "-ERR [AUTH] Plaintext authentication is refused without TLS; use STLS or port 995", false},
		{fmt.Errorf("check alice: %w", auth.ErrFailed), "-ERR [AUTH] Authentication failed", false},
		{auth.ErrThrottled, "-ERR [AUTH] Too many failed logins; try again later", false},
		{fmt.Errorf("%w: %w", auth.ErrFailed, auth.ErrCredentialTooLong), "-ERR [AUTH] Authentication failed: credentials too long", false},
		{auth.ErrCredentialTooLong, "-ERR [AUTH] Authentication failed: credentials too long", false},
		{auth.ErrMalformedResponse, "-ERR [AUTH] Authentication failed", false},
		{fmt.Errorf("%w: %q", auth.ErrUnknownMechanism, "CRAM-MD5"), "-ERR Unsupported authentication mechanism", false},
		{fmt.Errorf("lock: %w", models.ErrMaildropLocked), "-ERR [IN-USE] Maildrop is in use by another session; try again later", false},
		{fmt.Errorf("content 7: %w", &models.NotFoundError{What: "content 7"}), "-ERR No such message", false},
		{fmt.Errorf("expunge: %w", models.ErrTemporary), "-ERR [SYS/TEMP] Temporary server failure; try again later", true},
		{fmt.Errorf("expunge: %w", context.DeadlineExceeded), "-ERR [SYS/TEMP] Temporary server failure; try again later", true},
		{errors.New("sql: database is closed"), "-ERR [SYS/TEMP] Temporary server failure; try again later", true},
	} {
		pe, unexpected := reply(tc.err)
		if pe.line() != tc.line || unexpected != tc.unexpected {
			t.Errorf("reply(%v) = %q, %v; want %q, %v", tc.err, pe.line(), unexpected, tc.line, tc.unexpected)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line, kw, arg string
		err           error
	}{
		{"retr 1", "RETR", "1", nil},
		{"Top 1 10", "TOP", "1 10", nil},
		{"PASS two  spaces ", "PASS", "two  spaces ", nil},
		{"QUIT", "QUIT", "", nil},
		{"STAT ", "STAT", "", nil},
		{"", "", "", errEmptyCommand},
		{"   ", "", "", errEmptyCommand},
		{" STAT", "", "", errBadKeyword},
		{"RETRIEVE 1", "", "", errBadKeyword},
		{"RE1R", "", "", errBadKeyword},
		{"ÜSER x", "", "", errBadKeyword},
		{"USER a\x00", "", "", errBadChars},
	} {
		kw, arg, err := parseCommand([]byte(tc.line))
		if kw != tc.kw || arg != tc.arg || !errors.Is(err, tc.err) {
			t.Errorf("parseCommand(%q) = %q, %q, %v; want %q, %q, %v", tc.line, kw, arg, err, tc.kw, tc.arg, tc.err)
		}
	}
	for s, want := range map[string]int{"1": 1, "007": 7, "999999999": 999999999, "": -1, "-1": -1, "+1": -1, "1 ": -1, "1000000000": -1, "x": -1} {
		n, ok := parseNumber(s)
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("parseNumber(%q) = %d, want %d", s, n, want)
		}
	}
}
