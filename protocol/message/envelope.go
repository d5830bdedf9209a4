package message

import (
	"mime"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// The IMAP ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) of a header.
//
// go-message parses one mailbox well (display names, quoted strings, encoded
// words, a legacy "addr-spec (Name)"), but its list parser flattens groups,
// losing their names and bounds, and refuses a whole field over one obsolete or
// commented address. So the list structure is read here: the field is split
// into tokens (RFC 5322 §3.2), groups are found, and each mailbox goes to
// go-message first; what it refuses is read from the tokens, leniently.
//
// A group becomes the markers RFC 9051 prescribes: a start address whose
// mailbox is the group's display name (host NIL), its members, then an end
// address (all NIL). The group name is kept decoded, as go-imap keeps every
// string of an envelope; DecodeEnvelope encodes it for the wire (see
// wireEnvelope).

// wordDecoder decodes RFC 2047 encoded words with every charset go-message
// knows (package charset, imported by parse.go).
var wordDecoder = &mime.WordDecoder{CharsetReader: gomessage.CharsetReader}

// ExtractEnvelope computes the envelope of a message or attached message from
// its header. Date, subject and message identifiers are read as go-imap reads
// them; the address fields by envelopeAddresses.
func ExtractEnvelope(hdr textproto.Header) *imap.Envelope {
	mh := mail.Header{Header: gomessage.Header{Header: hdr}}
	date, _ := mh.Date()
	subject, _ := mh.Subject()
	inReplyTo, _ := mh.MsgIDList("In-Reply-To")
	messageID, _ := mh.MessageID()
	return &imap.Envelope{
		Date:      date,
		Subject:   subject,
		From:      envelopeAddresses(hdr.Get("From")),
		Sender:    envelopeAddresses(hdr.Get("Sender")),
		ReplyTo:   envelopeAddresses(hdr.Get("Reply-To")),
		To:        envelopeAddresses(hdr.Get("To")),
		Cc:        envelopeAddresses(hdr.Get("Cc")),
		Bcc:       envelopeAddresses(hdr.Get("Bcc")),
		InReplyTo: inReplyTo,
		MessageID: messageID,
	}
}

// tokKind is the kind of one lexical token of an address field.
type tokKind int

const (
	tokAtom    tokKind = iota // a run of atext, dots included (dot-atom, obs-phrase)
	tokQuoted                 // a quoted-string; text is its content, unescaped
	tokComment                // a comment; text is its content, unescaped
	tokLiteral                // a domain-literal, brackets included
	tokSpecial                // one of < > @ , : ;
)

type token struct {
	kind       tokKind
	text       string
	start, end int // the token's bytes in the field
}

// isSpecial reports the specials that structure an address list. The others of
// RFC 5322 (the dot, brackets, quote, parentheses, backslash) are either part of
// atoms here (the dot: obs-phrase and dot-atom alike) or open their own tokens.
func isSpecial(c byte) bool {
	return strings.IndexByte("<>@,:;", c) >= 0
}

func isWSP(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// maxFieldTokens bounds the tokens read from one address field, and so the
// memory its parsing takes (a token is some 50 octets) whatever the size of
// the header: some ten thousand addresses. The addresses past it are left out
// of the envelope, and so is the one it cuts.
const maxFieldTokens = 1 << 15

// lex splits a field body into tokens, at most maxFieldTokens of them; more
// reports whether the field goes on past them. It never fails: an unterminated
// quoted string, comment or literal runs to the end of the field.
func lex(s string) (toks []token, more bool) {
	for i := 0; i < len(s); {
		if len(toks) == maxFieldTokens {
			return toks, strings.TrimLeft(s[i:], " \t\r\n") != ""
		}
		c := s[i]
		switch {
		case isWSP(c):
			i++
		case c == '"':
			text, end := lexQuoted(s, i+1, '"')
			toks = append(toks, token{kind: tokQuoted, text: text, start: i, end: end})
			i = end
		case c == '(':
			text, end := lexComment(s, i+1)
			toks = append(toks, token{kind: tokComment, text: text, start: i, end: end})
			i = end
		case c == '[':
			text, end := lexQuoted(s, i+1, ']')
			toks = append(toks, token{kind: tokLiteral, text: "[" + text + "]", start: i, end: end})
			i = end
		case isSpecial(c):
			toks = append(toks, token{kind: tokSpecial, text: s[i : i+1], start: i, end: i + 1})
			i++
		default:
			j := i
			for j < len(s) && !isWSP(s[j]) && !isSpecial(s[j]) && strings.IndexByte(`"([`, s[j]) < 0 {
				j++
			}
			toks = append(toks, token{kind: tokAtom, text: s[i:j], start: i, end: j})
			i = j
		}
	}
	return toks, false
}

// lexQuoted reads a quoted string or domain literal from i (past its opening
// character) to the closing one; quoted pairs are unescaped and folding line
// breaks removed. It returns the content and the index past the close.
func lexQuoted(s string, i int, closing byte) (string, int) {
	var b strings.Builder
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == closing:
			return b.String(), i + 1
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '\r' || c == '\n':
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), i
}

// lexComment reads a comment from i (past its "("), nested comments kept as
// text, and returns its content and the index past its ")".
func lexComment(s string, i int) (string, int) {
	var b strings.Builder
	depth := 1
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
			continue
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return b.String(), i + 1
			}
		case c == '\r' || c == '\n':
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), i
}

// envelopeAddresses reads an address-list field (RFC 5322 §3.4, with the obsolete
// forms of §4.4) into envelope addresses, groups as start and end markers. An
// element that holds no address (no "@") is left out, as are empty elements
// (obs-addr-list); every other address of the field is kept, up to
// maxFieldTokens. An empty or address-less field is nil: RFC 9051 sends NIL.
func envelopeAddresses(field string) []imap.Address {
	if strings.TrimSpace(field) == "" {
		return nil
	}
	toks, more := lex(field)
	var out []imap.Address
	inGroup := false
	for len(toks) > 0 {
		elem, stop, rest := nextElement(toks)
		toks = rest
		if stop == "" && more {
			break // the element the token limit cuts
		}
		if stop == ":" && !inGroup {
			if name := phrase(elem); name != "" {
				out = append(out, imap.Address{Mailbox: name})
				inGroup = true
				continue
			}
			// A group without a name cannot be marked (its start would read as
			// an end): its members are listed as plain mailboxes.
		}
		if a, ok := mailbox(field, elem); ok {
			out = append(out, a)
		}
		if stop == ";" && inGroup {
			out = append(out, imap.Address{})
			inGroup = false
		}
	}
	if inGroup {
		out = append(out, imap.Address{}) // a group the field left open
	}
	return out
}

// nextElement returns the tokens of the next element of an address list, the
// special that ends it ("," ";" ":" or "" at the end) and the tokens after it.
// Inside an angle-addr that begins with an obs-route ("<@a,@b:x@y>"), a "," or
// ":" is the route's and does not end the element.
func nextElement(toks []token) (elem []token, stop string, rest []token) {
	route := false
	for i, t := range toks {
		if t.kind != tokSpecial {
			continue
		}
		switch t.text {
		case "<":
			route = startsRoute(toks[i+1:])
		case ">":
			route = false
		case ",", ":":
			if route {
				continue
			}
			return toks[:i], t.text, toks[i+1:]
		case ";":
			return toks[:i], t.text, toks[i+1:]
		}
	}
	return toks, "", nil
}

// startsRoute reports whether the tokens after a "<" begin with an obs-route:
// an "@", comments aside.
func startsRoute(toks []token) bool {
	for _, t := range toks {
		if t.kind != tokComment {
			return isSpecialTok(t, "@")
		}
	}
	return false
}

// mailbox reads one element of an address list. go-message parses it when it
// can; the obsolete and heavily commented forms it refuses are read from the
// tokens by mailboxFromTokens.
func mailbox(field string, elem []token) (imap.Address, bool) {
	if !hasContent(elem) {
		return imap.Address{}, false
	}
	src := field[elem[0].start:elem[len(elem)-1].end]
	if a, err := mail.ParseAddress(src); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i > 0 && i < len(a.Address)-1 {
			return imap.Address{Name: a.Name, Mailbox: localPart(a.Address[:i]), Host: a.Address[i+1:]}, true
		}
	}
	return mailboxFromTokens(elem)
}

// hasContent reports whether an element has anything but comments.
func hasContent(elem []token) bool {
	for _, t := range elem {
		if t.kind != tokComment {
			return true
		}
	}
	return false
}

// mailboxFromTokens reads a mailbox leniently: a display name (any words before
// "<"), the addr-spec inside the angle brackets or the whole element, with
// comments and white space dropped and an obs-route ignored (RFC 5322 §4.4).
// Without a display name, comments after a bare addr-spec are taken for it, as
// legacy mail writes "user@host (Full Name)" (RFC 5322 §3.4 notes the form; its
// meaning is left open, and go-message reads it the same way).
func mailboxFromTokens(elem []token) (imap.Address, bool) {
	name, spec, angle := "", elem, false
	for i, t := range elem {
		if isSpecialTok(t, "<") {
			name, spec, angle = phrase(elem[:i]), elem[i+1:], true
			break
		}
	}
	if angle {
		spec = angleAddr(spec)
	}
	at := -1
	for i, t := range spec {
		if isSpecialTok(t, "@") {
			at = i
		}
	}
	if at < 0 {
		return imap.Address{}, false
	}
	local, domain := joinLocal(spec[:at]), joinDomain(spec[at+1:])
	if local == "" || domain == "" {
		return imap.Address{}, false
	}
	if !angle {
		name = trailingComments(spec)
	}
	return imap.Address{Name: name, Mailbox: localPart(local), Host: domain}, true
}

// angleAddr returns the addr-spec of the tokens after "<": up to ">" (or the
// end, if it is missing), past an obs-route ("@a,@b:") if there is one.
func angleAddr(toks []token) []token {
	for i, t := range toks {
		if isSpecialTok(t, ">") {
			toks = toks[:i]
			break
		}
	}
	for i := len(toks) - 1; i >= 0; i-- {
		if isSpecialTok(toks[i], ":") {
			return toks[i+1:]
		}
	}
	return toks
}

func isSpecialTok(t token, s string) bool {
	return t.kind == tokSpecial && t.text == s
}

// phrase reads a display name or group name: its words (atoms and quoted
// strings) joined by one space, comments dropped. Encoded words (RFC 2047) are
// decoded, and adjacent ones joined without the space between them (RFC 2047
// §6.2); one that cannot be decoded (an unknown charset) is kept as written.
// Inside a quoted string an encoded word is text (RFC 2047 §5).
func phrase(toks []token) string {
	var b strings.Builder
	prevEncoded := false
	for _, t := range toks {
		if t.kind != tokAtom && t.kind != tokQuoted && t.kind != tokLiteral {
			continue
		}
		word, encoded := t.text, false
		if t.kind == tokAtom && strings.HasPrefix(word, "=?") && strings.HasSuffix(word, "?=") {
			if dec, err := wordDecoder.Decode(word); err == nil {
				word, encoded = dec, true
			}
		}
		if b.Len() > 0 && !(encoded && prevEncoded) {
			b.WriteByte(' ')
		}
		b.WriteString(word)
		prevEncoded = encoded
	}
	return b.String()
}

// trailingComments is the text of the comments after the last word of a bare
// addr-spec, encoded words decoded (RFC 2047 §5 allows them in comments).
func trailingComments(toks []token) string {
	i := len(toks)
	for i > 0 && toks[i-1].kind == tokComment {
		i--
	}
	var words []string
	for _, t := range toks[i:] {
		text := strings.Join(strings.Fields(t.text), " ")
		if dec, err := wordDecoder.DecodeHeader(text); err == nil {
			text = dec
		}
		if text != "" {
			words = append(words, text)
		}
	}
	return strings.Join(words, " ")
}

// joinLocal reads a local part: its words (atoms, dots included, and quoted
// strings) joined without the comments and white space obs-local-part allows.
func joinLocal(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		if t.kind == tokAtom || t.kind == tokQuoted {
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// joinDomain reads a domain (atoms or a domain literal) without the comments
// and white space obs-domain allows.
func joinDomain(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		if t.kind == tokAtom || t.kind == tokLiteral {
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// localPart renders a local part as RFC 5322 §3.4.1 writes it: a dot-atom as
// is, anything else as a quoted string. Quoting that is not needed is dropped
// ("john"@x and john@x are one address), and quoting that is needed is kept, so
// that mailbox "@" host is the address again ("john doe"@x).
func localPart(s string) string {
	if isDotAtom(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isDotAtom reports whether s is a dot-atom-text (RFC 5322 §3.2.3), UTF-8
// allowed in it (RFC 6532 §3.2).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
