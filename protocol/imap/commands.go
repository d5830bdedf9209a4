package imap

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/protocol/wire"
)

// The library calls one session method per command (LOGIN, SELECT, FETCH…);
// NOOP and CHECK are a Poll alone, CLOSE and UNSELECT end with one, and most
// other commands are followed by one. The session counts each command in the
// front end's metrics, under a verb from the fixed set below, and tells wire
// of it (Touch), which is what the idle timeout counts from.

// countedVerbs are the command labels of the metrics; any other is OTHER.
// Commands the session does not see (STARTTLS, LOGOUT, and anything before
// login but LOGIN and AUTHENTICATE) are not counted; CAPABILITY and ENABLE
// after login are a poll alone, counted as NOOP.
var countedVerbs = map[string]bool{
	"LOGIN": true, "AUTHENTICATE": true, "SELECT": true, "EXAMINE": true,
	"CREATE": true, "DELETE": true, "RENAME": true, "SUBSCRIBE": true, "UNSUBSCRIBE": true,
	"LIST": true, "STATUS": true, "APPEND": true, "NAMESPACE": true, "ID": true, "IDLE": true, "NOOP": true,
	"CLOSE": true, "UNSELECT": true, "EXPUNGE": true, "UID EXPUNGE": true,
	"SEARCH": true, "UID SEARCH": true, "FETCH": true, "UID FETCH": true,
	"STORE": true, "UID STORE": true, "COPY": true, "UID COPY": true, "MOVE": true, "UID MOVE": true,
}

// begin starts a command: it is activity for the idle timeout, and ends what
// the previous command left (a hook whose reply never came, an APPEND's end).
func (s *session) begin() {
	s.wc.Begin()
	s.cc.fire()
	if fn := s.staged; fn != nil {
		s.staged = nil
		fn()
	}
	s.answered, s.pending, s.closing = false, "", false
}

// end counts a command; the poll the library runs after a successful one
// (but after SELECT, EXAMINE and a login) is then part of it, not a NOOP.
func (s *session) end(verb string, err error) {
	s.wc.End()
	s.count(verb, err)
	switch verb {
	case "SELECT", "EXAMINE", "LOGIN", "AUTHENTICATE":
		s.answered = false
	default:
		s.answered = err == nil
	}
}

// count counts a command by verb and result class.
func (s *session) count(verb string, err error) {
	countCommand(s.srv.metrics(), verb, resultOf(err))
}

// countCommand counts a command under its label (OTHER for a verb outside
// countedVerbs) and result class.
func countCommand(m *wire.Metrics, verb, result string) {
	if !countedVerbs[verb] {
		verb = "OTHER"
	}
	m.Command(verb, result)
}

// resultOf is the class of a command's reply: ok, no or bad. An error that
// is not an *imap.Error is answered NO by the library.
func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeBad {
		return "bad"
	}
	return "no"
}

// uidVerb is verb, or UID verb when the command names messages by UID.
func uidVerb(verb string, numSet imap.NumSet) string {
	if _, ok := numSet.(imap.UIDSet); ok {
		return "UID " + verb
	}
	return verb
}
