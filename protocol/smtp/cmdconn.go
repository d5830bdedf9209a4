package smtp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/protocol/wire"
)

// cmdConn is what go-smtp reads from and writes to: the connection (a
// wire.Conn, or TLS over it), seen above TLS. It reads each command line
// before go-smtp does, so that mailgate, not the library, decides:
//   - STARTTLS (RFC 3207): cmdConn runs the handshake itself and hands the
//     encrypted connection to go-smtp as a new one, so that nothing said
//     before TLS (greeting name, login, transaction, pipelined commands)
//     survives it;
//   - commands go-smtp does not know get 500 5.5.2 (RFC 5321 §4.2.4), where
//     go-smtp answers some of them 501;
//   - MAIL's AUTH= parameter may carry the address in angle brackets, as curl
//     --mail-auth sends it and Postfix accepts (go-smtp wants a bare mailbox).
//
// It watches the replies to know when what the client sends next is not a
// command: a message body after 354, a BDAT chunk, a SASL response after 334.
type cmdConn struct {
	inner net.Conn      // immutable: wire.Conn, or TLS over it
	r     *bufio.Reader // immutable: over inner
	srv   *Server       // immutable
	tls   bool          // immutable: inner runs TLS

	out []byte // the next bytes for go-smtp: one command line, or raw data

	mu              sync.Mutex
	mode            readMode // guarded by mu
	chunk           int64    // guarded by mu: BDAT bytes still to pass
	lineStart       bool     // guarded by mu: in a body, the next byte starts a line after CRLF
	dataPending     bool     // guarded by mu: DATA went to go-smtp, its reply decides
	ehloPending     bool     // guarded by mu: an EHLO's reply gets STARTTLS added
	swallowGreeting bool     // guarded by mu: go-smtp greets again after our STARTTLS
	handedOff       bool     // guarded by mu: inner now belongs to the connection after STARTTLS
	unknown         int      // unrecognized commands so far
}

type readMode uint8

const (
	modeCommand  readMode = iota
	modeBody              // after 354, until CRLF.CRLF
	modeChunk             // a BDAT chunk
	modeSASL              // after 334: one line that is not a command
	modeLongLine          // the rest of a command line too long to look at
)

// maxUnknown unrecognized commands end a connection (a client that does not
// speak SMTP, or a cross-protocol attack).
const maxUnknown = 10

// knownCommands are the verbs go-smtp handles, answered by it even where it
// refuses them.
var knownCommands = map[string]bool{
	"HELO": true, "EHLO": true, "LHLO": true, "MAIL": true, "RCPT": true, "DATA": true, "BDAT": true,
	"RSET": true, "VRFY": true, "NOOP": true, "QUIT": true, "AUTH": true,
	"SEND": true, "SOML": true, "SAML": true, "EXPN": true, "HELP": true, "TURN": true,
}

func newCmdConn(srv *Server, inner net.Conn, overTLS bool) *cmdConn {
	return &cmdConn{inner: inner, r: bufio.NewReaderSize(inner, 4096), srv: srv, tls: overTLS}
}

// NetConn is the connection below, for wire.ConnOf.
func (c *cmdConn) NetConn() net.Conn { return c.inner }

func (c *cmdConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// next makes the next bytes for go-smtp ready in out.
func (c *cmdConn) next() error {
	c.mu.Lock()
	mode, chunk := c.mode, c.chunk
	c.mu.Unlock()
	switch mode {
	case modeChunk:
		b, err := c.r.Peek(int(min(chunk, int64(c.r.Size()))))
		if len(b) == 0 {
			return err
		}
		c.out = append(c.out[:0], b...)
		c.r.Discard(len(b)) //nolint:errcheck // peeked
		c.mu.Lock()
		if c.chunk -= int64(len(b)); c.chunk <= 0 {
			c.mode = modeCommand
		}
		c.mu.Unlock()
		return nil
	case modeBody, modeSASL, modeLongLine:
		line, err := c.r.ReadSlice('\n')
		if len(line) == 0 && err != nil {
			return err
		}
		complete := line[len(line)-1] == '\n'
		c.mu.Lock()
		switch {
		case mode == modeSASL && complete, mode == modeLongLine && complete:
			c.mode = modeCommand
		case mode == modeBody:
			if c.lineStart && bytes.Equal(line, []byte(".\r\n")) {
				c.mode = modeCommand // only CRLF.CRLF ends a body, as in go-smtp
			}
			c.lineStart = bytes.HasSuffix(line, []byte("\r\n"))
		}
		c.mu.Unlock()
		c.out = append(c.out[:0], line...)
		return nil
	}
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Longer than any command: go-smtp refuses it as such.
		c.mu.Lock()
		c.mode = modeLongLine
		c.mu.Unlock()
		c.out = append(c.out[:0], line...)
		return nil
	}
	if err != nil {
		if len(line) > 0 {
			c.out = append(c.out[:0], line...) // a last line without its end
			return nil
		}
		return err
	}
	return c.command(line)
}

// mailAuthParam is MAIL's AUTH=<addr> (RFC 4954 §5 wants AUTH=addr or AUTH=<>).
var mailAuthParam = regexp.MustCompile(`(?i)(\sAUTH=)<([^<>\s]+)>`)

// command looks at one command line before go-smtp gets it.
func (c *cmdConn) command(line []byte) error {
	text := strings.TrimRight(string(line), "\r\n")
	verb, arg, _ := strings.Cut(text, " ")
	verb = strings.ToUpper(verb)
	switch {
	case verb == "STARTTLS":
		return c.startTLS(strings.TrimSpace(arg))
	case text == "":
		// go-smtp's own "bad syntax" answer is right for an empty line.
	case !knownCommands[verb]:
		c.unknown++
		c.srv.wire.Metrics().Command("OTHER", "5xx")
		if c.unknown >= maxUnknown {
			c.reply("421 4.7.0 Too many unrecognized commands, closing connection")
			return io.EOF
		}
		c.reply("500 5.5.2 Command unrecognized")
		return nil
	case verb == "MAIL":
		line = mailAuthParam.ReplaceAll(line, []byte("${1}${2}"))
	case verb == "DATA":
		c.mu.Lock()
		c.dataPending = true
		c.mu.Unlock()
	case verb == "EHLO":
		c.mu.Lock()
		c.ehloPending = !c.tls && c.srv.opt.TLSConfig != nil
		c.mu.Unlock()
	case verb == "BDAT":
		fields := strings.Fields(arg)
		if len(fields) > 0 {
			if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil && n > 0 {
				c.mu.Lock()
				c.mode, c.chunk = modeChunk, n
				c.mu.Unlock()
			}
		}
	}
	c.out = append(c.out[:0], line...)
	return nil
}

// startTLS runs STARTTLS. On success the connection goes on, encrypted, as a
// new go-smtp connection; this one reads EOF and ends.
func (c *cmdConn) startTLS(arg string) error {
	m := c.srv.wire.Metrics()
	switch {
	case arg != "":
		m.Command("STARTTLS", "5xx")
		c.reply("501 5.5.4 STARTTLS takes no parameters")
		return nil
	case c.tls:
		m.Command("STARTTLS", "5xx")
		c.reply("503 5.5.1 TLS already active")
		return nil
	case c.srv.opt.TLSConfig == nil:
		m.Command("STARTTLS", "5xx")
		c.reply("502 5.5.1 TLS not supported")
		return nil
	}
	m.Command("STARTTLS", "2xx")
	c.reply("220 2.0.0 Ready to start TLS")
	// Whatever the client sent after STARTTLS in the clear is not to be
	// believed once TLS is on (RFC 3207 §4.2).
	c.r.Discard(c.r.Buffered()) //nolint:errcheck // buffered bytes
	tc := tls.Server(c.inner, c.srv.opt.TLSConfig)
	wc := wire.ConnOf(c.inner)
	if err := tc.HandshakeContext(wc.Context()); err != nil {
		wc.Logger().Debug("STARTTLS handshake failed", "err", err)
		c.inner.Close()
		return io.EOF
	}
	next := newCmdConn(c.srv, tc, true)
	next.swallowGreeting = true
	c.mu.Lock()
	c.handedOff = true
	c.mu.Unlock()
	if !c.srv.conns.Give(next) {
		tc.Close()
	}
	return io.EOF
}

// reply writes a reply of cmdConn's own.
func (c *cmdConn) reply(s string) {
	io.WriteString(c.inner, s+"\r\n") //nolint:errcheck // a broken connection fails the next read
}

// Write passes go-smtp's replies on, adding STARTTLS to EHLO's list and
// noting what the client is to send next. go-smtp writes a reply's lines one
// call each.
func (c *cmdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.swallowGreeting && bytes.HasPrefix(p, []byte("220 ")) {
		// go-smtp greets the connection it takes for new: the client, in the
		// middle of STARTTLS, expects no greeting.
		c.swallowGreeting = false
		c.mu.Unlock()
		return len(p), nil
	}
	c.swallowGreeting = false
	extra := ""
	final := len(p) > 3 && p[3] == ' ' // the last line of a reply
	if c.ehloPending && bytes.HasPrefix(p, []byte("250")) && len(p) > 3 {
		c.ehloPending = false
		if p[3] == '-' {
			extra = "250-STARTTLS\r\n"
		} else {
			// A one-line EHLO reply: STARTTLS becomes its last line.
			p = append([]byte("250-"), p[4:]...)
			extra = "250 STARTTLS\r\n"
		}
	}
	if final {
		c.ehloPending = false // an EHLO refused
	}
	if c.dataPending && final {
		c.dataPending = false
		if bytes.HasPrefix(p, []byte("354")) {
			c.mode, c.lineStart = modeBody, true
		}
	}
	if bytes.HasPrefix(p, []byte("334 ")) {
		c.mode = modeSASL
	}
	c.mu.Unlock()
	n := len(p)
	if extra != "" {
		p = append(p[:len(p):len(p)], extra...)
	}
	if _, err := c.inner.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// Close closes the connection, unless it went on under TLS.
func (c *cmdConn) Close() error {
	c.mu.Lock()
	handedOff := c.handedOff
	c.mu.Unlock()
	if handedOff {
		return nil
	}
	return c.inner.Close()
}

func (c *cmdConn) LocalAddr() net.Addr                { return c.inner.LocalAddr() }
func (c *cmdConn) RemoteAddr() net.Addr               { return c.inner.RemoteAddr() }
func (c *cmdConn) SetDeadline(t time.Time) error      { return c.inner.SetDeadline(t) }
func (c *cmdConn) SetReadDeadline(t time.Time) error  { return c.inner.SetReadDeadline(t) }
func (c *cmdConn) SetWriteDeadline(t time.Time) error { return c.inner.SetWriteDeadline(t) }
