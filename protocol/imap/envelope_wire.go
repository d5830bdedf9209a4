package imap

import (
	"mime"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// go-imap v2.0.0-beta.8 writes an ENVELOPE's address lists with a space between
// two addresses, "((...) (...))". RFC 9051 §9 (as RFC 3501 before it) has
// env-from = "(" 1*address ")", with none: RFC 3501 §7.4.2's own example reads
// "((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL ...))". The
// library gives no way to write the item otherwise, so it is rewritten on its
// way out by the fetch filter (see fetchFilter), as BINARY items are:
// envelopeFix gives the item as the library writes it and as the RFC does.

// envelopeDateLayout is the date form the library writes (RFC 5322 §3.3).
const envelopeDateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// envelopeFix is the rewrite of the ENVELOPE item of env. It applies when every
// string of the envelope goes out as a quoted string of ASCII, which is all an
// envelope of real mail holds (display names and subjects are RFC 2047
// encoded); otherwise (a string the library sends as a literal, or quoted UTF-8
// after UTF8=ACCEPT) there is no fix and the library's form stands. No fix is
// needed either when no list has two addresses.
func envelopeFix(env *imap.Envelope) (binaryFix, bool) {
	lib, ok1 := renderEnvelope(env, " ")
	rfc, ok2 := renderEnvelope(env, "")
	if !ok1 || !ok2 || lib == rfc {
		return binaryFix{}, false
	}
	return binaryFix{from: []byte("ENVELOPE " + lib), to: []byte("ENVELOPE " + rfc)}, true
}

// renderEnvelope writes env as RFC 9051 §7.5.2 lays it out, with sep between
// two addresses of a list. Like the library, it sends a missing Sender or
// Reply-To as From, and display names and the subject RFC 2047 encoded. It
// reports false if some string cannot be a quoted string of ASCII.
func renderEnvelope(env *imap.Envelope, sep string) (string, bool) {
	w := &envWriter{ok: true}
	w.b.WriteByte('(')
	if env.Date.IsZero() {
		w.b.WriteString("NIL")
	} else {
		w.str(env.Date.Format(envelopeDateLayout))
	}
	w.b.WriteByte(' ')
	w.nstr(mime.QEncoding.Encode("utf-8", env.Subject))
	sender, replyTo := env.Sender, env.ReplyTo
	if sender == nil {
		sender = env.From
	}
	if replyTo == nil {
		replyTo = env.From
	}
	for _, l := range [][]imap.Address{env.From, sender, replyTo, env.To, env.Cc, env.Bcc} {
		w.b.WriteByte(' ')
		w.addresses(l, sep)
	}
	w.b.WriteByte(' ')
	if len(env.InReplyTo) > 0 {
		w.str("<" + strings.Join(env.InReplyTo, "> <") + ">")
	} else {
		w.b.WriteString("NIL")
	}
	w.b.WriteByte(' ')
	if env.MessageID != "" {
		w.str("<" + env.MessageID + ">")
	} else {
		w.b.WriteString("NIL")
	}
	w.b.WriteByte(')')
	return w.b.String(), w.ok
}

type envWriter struct {
	b  strings.Builder
	ok bool
}

func (w *envWriter) addresses(l []imap.Address, sep string) {
	if len(l) == 0 {
		w.b.WriteString("NIL")
		return
	}
	w.b.WriteByte('(')
	for i, a := range l {
		if i > 0 {
			w.b.WriteString(sep)
		}
		w.b.WriteByte('(')
		w.nstr(mime.QEncoding.Encode("utf-8", a.Name))
		w.b.WriteString(" NIL ")
		w.nstr(a.Mailbox)
		w.b.WriteByte(' ')
		w.nstr(a.Host)
		w.b.WriteByte(')')
	}
	w.b.WriteByte(')')
}

// nstr writes NIL for an empty string, as the library does.
func (w *envWriter) nstr(s string) {
	if s == "" {
		w.b.WriteString("NIL")
		return
	}
	w.str(s)
}

// str writes a quoted string (RFC 9051 §9: quoted), or marks the rendering
// unusable for a string that cannot be one in ASCII.
func (w *envWriter) str(s string) {
	if len(s) > 4096 {
		w.ok = false
	}
	w.b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0 || c == '\r' || c == '\n' || c > 0x7f:
			w.ok = false
		case c == '"' || c == '\\':
			w.b.WriteByte('\\')
		}
		w.b.WriteByte(c)
	}
	w.b.WriteByte('"')
}
