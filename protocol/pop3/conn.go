package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/wire"
)

// state is a session state of RFC 1939 §3; a command lists the states it is
// valid in as a bit set.
type state uint8

const (
	stateAuthorization state = 1 << iota
	stateTransaction
	stateUpdate
)

func (s state) String() string {
	switch s {
	case stateAuthorization:
		return "AUTHORIZATION"
	case stateTransaction:
		return "TRANSACTION"
	case stateUpdate:
		return "UPDATE"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

type command struct {
	in  state // the states the command is valid in
	run func(c *conn, arg string) error
}

// commands is the dispatch table: one entry per command, with the states it is
// valid in. A command outside its states gets -ERR and the session goes on.
var commands = map[string]command{
	"CAPA": {stateAuthorization | stateTransaction, (*conn).capa},
	"QUIT": {stateAuthorization | stateTransaction, (*conn).quit},
	"STLS": {stateAuthorization, (*conn).stls},
	"USER": {stateAuthorization, (*conn).userCmd},
	"PASS": {stateAuthorization, (*conn).pass},
	"AUTH": {stateAuthorization, (*conn).authenticate},
	"STAT": {stateTransaction, (*conn).stat},
	"LIST": {stateTransaction, (*conn).list},
	"UIDL": {stateTransaction, (*conn).uidl},
	"RETR": {stateTransaction, (*conn).retr},
	"TOP":  {stateTransaction, (*conn).top},
	"DELE": {stateTransaction, (*conn).dele},
	"NOOP": {stateTransaction, (*conn).noop},
	"RSET": {stateTransaction, (*conn).rset},
}

// commandVerb is the name a command is counted under: one of the commands,
// or OTHER for anything else (a fixed set, as metrics labels must be).
func commandVerb(kw string) string {
	if _, ok := commands[kw]; ok {
		return kw
	}
	return "OTHER"
}

// conn is one POP3 session. Only the session's own goroutine touches it.
type conn struct {
	srv    *Server
	wc     *wire.Conn      // the connection under TLS: timeouts, login counting, policy
	ctx    context.Context // the connection's lifetime (wc's); the one ctx kept in a struct
	log    *slog.Logger
	remote string // client address, for the login delay and logs

	netConn net.Conn // what the session speaks on: wc, or TLS over it (implicit or after STLS)
	br      *bufio.Reader
	bw      *bufio.Writer
	tls     bool // TLS is active: implicit or after STLS

	state    state
	done     bool   // close after the current command
	failed   bool   // the current command was answered -ERR (for the metrics)
	silent   bool   // the current command got no answer: the connection ended first
	userName string // from USER, waiting for PASS
	user     *models.User
	drop     *snapshot // nil outside TRANSACTION
	lease    *lease    // nil unless the maildrop is locked
	buf      []byte    // copy buffer for RETR/TOP
}

// handle runs one session for wire: on nc, which is wc itself or, on the
// implicit-TLS port, TLS over it.
func (s *Server) handle(wc *wire.Conn, nc net.Conn) {
	c := &conn{
		srv: s, wc: wc, ctx: wc.Context(), log: wc.Logger(), remote: wc.RemoteAddr().String(),
		netConn: nc, state: stateAuthorization,
	}
	c.br = bufio.NewReaderSize(nc, 4096)
	c.bw = bufio.NewWriterSize(nc, 32<<10) // wc gives every write a fresh deadline
	c.serve()
}

func (c *conn) serve() {
	defer c.finish()
	if tc, ok := c.netConn.(*tls.Conn); ok {
		// wc's read deadline bounds the handshake by the login timeout.
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
		c.tls = true
	}
	c.log.Debug("connected", "tls", c.tls)
	c.writeLine("+OK " + c.srv.opt.Hostname + " POP3 server ready")
	if c.flush() != nil {
		return
	}
	for !c.done {
		line, err := c.readCommand()
		if err != nil {
			if errors.Is(err, errLineTooLong) || errors.Is(err, errLost) {
				c.wc.Server().Metrics().Command("OTHER", "err") // answered below
			}
			if !c.readFailed(err) {
				return
			}
		} else {
			c.execute(line)
			c.wc.Touch() // the idle timeout counts from the answer, however long it took
		}
		// Under PIPELINING (RFC 2449 §6.6) replies to a batch of commands go
		// out together; a lone command is answered at once.
		if !c.done && !c.pipelined() && c.flush() != nil {
			return
		}
	}
	c.flush()
}

// readCommand reads the next command line. wc's read deadline is the login or
// idle timeout; once the server shuts down, no further command is run.
func (c *conn) readCommand() ([]byte, error) {
	if c.wc.Draining() {
		return nil, errShutdown
	}
	return c.readLine(maxCommandLine)
}

// readLine reads one line from the client; a complete one (even over max)
// counts as activity for the idle timeout.
func (c *conn) readLine(max int) ([]byte, error) {
	line, err := readLine(c.br, max)
	if err == nil || errors.Is(err, errLineTooLong) {
		c.wc.Touch()
	}
	return line, err
}

var errShutdown = errors.New("server shutting down")

// readFailed answers a failed read and tells whether the session goes on. A
// read that timed out is answered with the reason wire gives for it.
func (c *conn) readFailed(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, errLineTooLong):
		c.writeLine(fmt.Sprintf("-ERR Line too long (at most %d octets with CRLF)", maxCommandLine))
		return true
	case errors.Is(err, errLost):
		c.writeLine("-ERR Line too long; closing")
	case errors.Is(err, errShutdown):
		c.writeLine(lineShutdown)
	case errors.As(err, &ne) && ne.Timeout():
		reason := c.wc.ExpiredReason()
		c.log.Debug("timed out", "timeout", reason, "state", c.state)
		switch reason {
		case "shutdown":
			c.writeLine(lineShutdown)
		case "login":
			c.writeLine("-ERR [" + codeAuth + "] Login timeout: no successful login in time; closing")
		default:
			c.writeLine("-ERR Idle for too long; closing")
		}
	case errors.Is(err, io.EOF):
		c.log.Debug("client went away", "state", c.state)
		return false
	default:
		c.log.Debug("read failed", "err", err)
		return false
	}
	c.flush()
	return false
}

const lineShutdown = "-ERR [" + codeSysTemp + "] Server shutting down; try again later"

// execute runs one command line and counts its reply. A panic ends the
// session with a generic reply: the session's state cannot be trusted after
// one, and ending it without UPDATE deletes nothing.
func (c *conn) execute(line []byte) {
	kw := ""
	c.failed, c.silent = false, false
	defer func() {
		if r := recover(); r != nil {
			c.srv.panics.Add(1)
			c.log.Error("panic in command", "cmd", kw, "panic", r, "stack", string(debug.Stack()))
			c.writeLine(errTemporary.line())
			c.done = true
		}
		if c.silent {
			return
		}
		result := "ok"
		if c.failed {
			result = "err"
		}
		c.wc.Server().Metrics().Command(commandVerb(kw), result)
	}()
	kw, arg, err := parseCommand(line)
	if err != nil {
		c.fail(kw, err)
		return
	}
	cmd, ok := commands[kw]
	if !ok {
		c.fail(kw, errBadKeyword)
		return
	}
	if cmd.in&c.state == 0 {
		c.fail(kw, &protoError{text: kw + " is not valid in the " + c.state.String() + " state"})
		return
	}
	c.log.Debug("command", "cmd", kw) // never the arguments: PASS and AUTH carry secrets
	if err := cmd.run(c, arg); err != nil {
		c.fail(kw, err)
	}
}

// fail sends the -ERR reply for err, logging it once if it was unexpected.
func (c *conn) fail(kw string, err error) {
	pe, unexpected := reply(err)
	if unexpected {
		c.log.Error("command failed", "cmd", kw, "state", c.state, "err", err)
	}
	c.writeLine(pe.line())
}

// writeLine buffers a reply line; a negative one marks the command failed.
func (c *conn) writeLine(s string) {
	if strings.HasPrefix(s, "-ERR") {
		c.failed = true
	}
	c.bw.WriteString(s)
	c.bw.WriteString("\r\n")
}

func (c *conn) flush() error {
	if err := c.bw.Flush(); err != nil {
		c.log.Debug("write failed", "err", err)
		c.done = true
		return err
	}
	return nil
}

// pipelined reports whether a whole command is already waiting in the buffer.
func (c *conn) pipelined() bool {
	n := c.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := c.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// finish ends the session: a session that did not reach UPDATE deletes
// nothing; its lock is released before wire counts the connection gone.
func (c *conn) finish() {
	c.releaseLease()
	c.netConn.Close() // TLS says close_notify
	c.wc.Close()
}

// plaintextOK reports whether credentials may be sent on this connection
// (wire's one policy: over TLS, from this host, or where the operator allows).
func (c *conn) plaintextOK() bool { return c.wc.PlaintextAuthAllowed(c.tls) }
