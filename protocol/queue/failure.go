package queue

import (
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// failure is why one attempt did not deliver to a recipient.
type failure struct {
	perm   bool              // 5xx or otherwise hopeless: bounce now
	status string            // RFC 3463 status for the DSN
	reply  *gosmtp.SMTPError // the server's reply; nil when none was received
	remote string            // the host that answered (or that we tried)
	stage  string            // what we were doing: "connect", "RCPT TO", …
	err    error             // the cause when there was no reply
	// tlsFailed marks a failed STARTTLS handshake, after which the hop is tried
	// again in plain text.
	tlsFailed bool
	// nonPublic lists the addresses of a hop from DNS none of whose
	// addresses may be dialed (see publicAddr): the next hop is tried, and
	// when no hop is left the delivery fails for good. Nil for other failures.
	nonPublic []string
}

func (f *failure) Error() string {
	if f.reply != nil {
		return fmt.Sprintf("host %s said: %s (in reply to %s)", f.remote, replyText(f.reply), f.stage)
	}
	if f.err != nil {
		return f.err.Error()
	}
	return "delivery failed during " + f.stage
}

// diagnostic is the server's reply for the DSN's Diagnostic-Code, or "".
func (f *failure) diagnostic() string {
	if f.reply == nil {
		return ""
	}
	return replyText(f.reply)
}

func replyText(r *gosmtp.SMTPError) string {
	// Replies are the remote server's bytes: keep them printable UTF-8.
	msg := strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return ' '
		}
		return c
	}, strings.ToValidUTF8(r.Message, "\uFFFD"))
	if validEnhanced(r) {
		return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], msg)
	}
	return fmt.Sprintf("%d %s", r.Code, msg)
}

func validEnhanced(r *gosmtp.SMTPError) bool {
	return r.EnhancedCode[0] == r.Code/100 && r.EnhancedCode[1] >= 0 && r.EnhancedCode[2] >= 0
}

// replyFailure turns an error from an SMTP exchange into a failure. A reply is
// permanent when it is 5xx (RFC 5321 §4.2.1); anything else that went wrong
// (4xx, a broken connection, a timeout) is worth another try.
func replyFailure(err error, remote, stage string) *failure {
	r := asReply(err)
	if r == nil {
		return &failure{status: "4.4.2", remote: remote, stage: stage,
			err: fmt.Errorf("%s with %s: %w", stage, remote, err)}
	}
	f := &failure{perm: r.Code/100 == 5, reply: r, remote: remote, stage: stage}
	switch {
	case validEnhanced(r):
		f.status = fmt.Sprintf("%d.%d.%d", r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2])
	case f.perm:
		f.status = "5.0.0"
	default:
		f.status = "4.0.0"
	}
	if r.Code/100 != 4 && r.Code/100 != 5 {
		// A reply outside the protocol (2xx where 3xx was due…): not the
		// recipient's fault; try again later.
		f.perm, f.status = false, "4.5.0"
	}
	return f
}

// asReply finds an SMTP reply in err: go-smtp's own type, or the
// net/textproto error of the exchanges done before go-smtp takes over.
func asReply(err error) *gosmtp.SMTPError {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		r := &gosmtp.SMTPError{Code: te.Code, Message: te.Msg}
		if code, rest, ok := strings.Cut(te.Msg, " "); ok {
			if ec, ok := parseEnhanced(code); ok && ec[0] == te.Code/100 {
				r.EnhancedCode, r.Message = ec, rest
			}
		}
		return r
	}
	return nil
}

func parseEnhanced(s string) (gosmtp.EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return gosmtp.EnhancedCode{}, false
	}
	var ec gosmtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return gosmtp.EnhancedCode{}, false
		}
		ec[i] = n
	}
	return ec, true
}

// Backoff is the wait after the attempt-th failed attempt: base, 2·base,
// 4·base … and never more than max.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	if base <= 0 {
		return max
	}
	d := base
	for i := 1; i < attempt; i++ {
		if d >= max/2 {
			return max
		}
		d *= 2
	}
	if d > max {
		return max
	}
	return d
}
