package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"
)

// traceInfo is what the Received: field of one message records.
type traceInfo struct {
	helo   string   // the client's HELO/EHLO argument, untrusted
	remote net.Addr // the peer, as connected
	host   string   // this server
	proto  string   // RFC 3848 "with" keyword
	id     string   // this message's id, also in the 250 reply and the log
	rcpt   string   // the one recipient, or "" (several are not listed: privacy)
	at     time.Time
}

// withProtocol is the RFC 3848 protocol type of a session.
func withProtocol(tls, authenticated bool) string {
	p := "ESMTP"
	if tls {
		p += "S"
	}
	if authenticated {
		p += "A"
	}
	return p
}

// receivedHeader formats the trace field of RFC 5321 §4.4:
//
//	Received: from HELO ([ip])
//		by HOST with ESMTPSA id ID
//		for <rcpt>;
//		DATE
//
// mailgate does no reverse DNS lookup, so TCP-info is the address literal only.
// Every client-supplied part is reduced to characters that cannot end the field,
// open a comment or forge another clause.
func receivedHeader(t traceInfo) string {
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(traceToken(t.helo, "unknown"))
	b.WriteString(" (")
	b.WriteString(addressLiteral(t.remote))
	b.WriteString(")\r\n\tby ")
	b.WriteString(traceToken(t.host, "localhost"))
	b.WriteString(" with ")
	b.WriteString(traceToken(t.proto, "ESMTP"))
	b.WriteString(" id ")
	b.WriteString(traceToken(t.id, "unknown"))
	if rcpt := traceAddress(t.rcpt); rcpt != "" {
		b.WriteString("\r\n\tfor <")
		b.WriteString(rcpt)
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(t.at.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// traceToken keeps the characters of domains and address literals; anything
// else becomes '?'. Empty input gives fallback.
func traceToken(s, fallback string) string {
	const max = 255
	if len(s) > max {
		s = s[:max]
	}
	out := []byte(s)
	for i, c := range out {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".-_:[]", c) >= 0:
		default:
			out[i] = '?'
		}
	}
	if len(out) == 0 {
		return fallback
	}
	return string(out)
}

// traceAddress keeps an address printable and unable to close the angle
// brackets or the clause; UTF-8 stays (RFC 6532).
func traceAddress(s string) string {
	const max = 320
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '<' || r == '>' || r == ';' || r == '(' || r == ')' || r == '\\' || r == '"' || r == ' ' || r == '\uFFFD' {
			return '?'
		}
		return r
	}, s)
}

// addressLiteral is an RFC 5321 address literal for the peer.
func addressLiteral(a net.Addr) string {
	var ip net.IP
	switch x := a.(type) {
	case *net.TCPAddr:
		ip = x.IP
	case nil:
	default:
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			ip = net.ParseIP(host)
		}
	}
	switch {
	case ip == nil:
		return "[unknown]"
	case ip.To4() != nil:
		return "[" + ip.To4().String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// Limits of headerFields.
const (
	maxHeaderLine  = 1 << 20  // one physical header line
	maxFieldsBytes = 64 << 10 // all the wanted fields together
)

var errHeaderTooLarge = errors.New("header field too large")

// headerFields returns the unfolded values of every field called name in the
// header of the message read from r (CRLF or LF line ends; the header ends at
// the first empty line). It reads no further than the header. Lines that are
// not fields are skipped rather than ending the header, so that no field a
// lenient reader would see is missed.
func headerFields(r io.Reader, name string) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxHeaderLine)
	sc.Split(scanLines)
	var (
		out   []string
		cur   = -1 // index in out of the field being continued, or -1
		total int
	)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur >= 0 {
				total += len(line)
				if total > maxFieldsBytes {
					return nil, errHeaderTooLarge
				}
				out[cur] += line // unfolding removes only the line break
			}
			continue
		}
		cur = -1
		fname, value, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimRight(fname, " \t"), name) {
			continue
		}
		total += len(value)
		if total > maxFieldsBytes {
			return nil, errHeaderTooLarge
		}
		out = append(out, value)
		cur = len(out) - 1
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	return out, nil
}

// scanLines splits at CRLF, LF or a lone CR: the ends message.Spool turns
// into CRLF, so the fields seen here are those that will be stored.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil
	case data[i] == '\n':
		return i + 1, data[:i], nil
	case i+1 < len(data):
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	case atEOF:
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a CR at the end of data: wait for what follows
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// fromAddresses returns the addresses a From: field value names. ok is false
// when the value cannot be parsed but might name an address (it contains "@",
// raw or RFC 2047-encoded): such a field cannot be checked. A value without any
// address, like a bare display name, names nobody: ok with no addresses.
func fromAddresses(value string) (addrs []string, ok bool) {
	p := mail.AddressParser{WordDecoder: wordDecoder}
	list, err := p.ParseList(value)
	if err == nil {
		for _, a := range list {
			addrs = append(addrs, a.Address)
		}
		return addrs, true
	}
	if strings.Contains(value, "@") {
		return nil, false
	}
	decoded, err := wordDecoder.DecodeHeader(value)
	if err != nil || strings.Contains(decoded, "@") {
		return nil, false
	}
	return nil, true
}
