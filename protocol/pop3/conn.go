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
	"sync"
	"time"

	"github.com/mailgate/mailgate/models"
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

// conn is one POP3 session. Apart from mu's fields, only the session's own
// goroutine touches it.
type conn struct {
	srv    *Server
	ctx    context.Context // the connection's lifetime; the one ctx kept in a struct
	cancel context.CancelFunc
	log    *slog.Logger
	remote string // client address, for the login delay and logs

	mu      sync.Mutex
	netConn net.Conn // guarded by mu for other goroutines; STLS replaces it
	waiting bool     // guarded by mu: blocked reading the next command

	br  *bufio.Reader
	bw  *bufio.Writer
	tls bool // TLS is active: implicit or after STLS

	state    state
	done     bool   // close after the current command
	userName string // from USER, waiting for PASS
	failures int    // failed logins in this session
	user     *models.User
	drop     *snapshot // nil outside TRANSACTION
	lease    *lease    // nil unless the maildrop is locked
	buf      []byte    // copy buffer for RETR/TOP
}

func (s *Server) newConn(nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	id := s.nextConn.Add(1)
	c := &conn{
		srv: s, ctx: ctx, cancel: cancel, netConn: nc, state: stateAuthorization,
		remote: nc.RemoteAddr().String(),
		log:    s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
	}
	c.br = bufio.NewReaderSize(nc, 4096)
	c.bw = bufio.NewWriterSize(deadlineWriter{c}, 32<<10)
	return c
}

// deadlineWriter gives every write to the network a fresh deadline, so a slow
// but live client can take a large message while a stuck one is dropped.
type deadlineWriter struct{ c *conn }

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.netConn.SetWriteDeadline(time.Now().Add(w.c.srv.opt.IdleTimeout))
	return w.c.netConn.Write(p)
}

func (c *conn) serve() {
	defer c.finish()
	if tc, ok := c.netConn.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(c.ctx, c.srv.opt.AuthTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
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
			if !c.readFailed(err) {
				return
			}
		} else {
			c.execute(line)
		}
		// Under PIPELINING (RFC 2449 §6.6) replies to a batch of commands go
		// out together; a lone command is answered at once.
		if !c.done && !c.pipelined() && c.flush() != nil {
			return
		}
	}
	c.flush()
}

// readCommand waits for the next command line, with the timeout of the state
// the session is in.
func (c *conn) readCommand() ([]byte, error) {
	timeout := c.srv.opt.AuthTimeout
	if c.state == stateTransaction {
		timeout = c.srv.opt.IdleTimeout
	}
	return c.waitLine(maxCommandLine, timeout)
}

// waitLine reads a line from the client, marked as waiting so that Shutdown
// can interrupt it.
func (c *conn) waitLine(max int, timeout time.Duration) ([]byte, error) {
	c.mu.Lock()
	if c.srv.isClosing() {
		c.mu.Unlock()
		return nil, errShutdown
	}
	c.netConn.SetReadDeadline(time.Now().Add(timeout))
	c.waiting = true
	c.mu.Unlock()
	line, err := readLine(c.br, max)
	c.mu.Lock()
	c.waiting = false
	c.mu.Unlock()
	return line, err
}

var errShutdown = errors.New("server shutting down")

// readFailed answers a failed read and tells whether the session goes on.
func (c *conn) readFailed(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, errLineTooLong):
		c.writeLine(fmt.Sprintf("-ERR Line too long (at most %d octets with CRLF)", maxCommandLine))
		return true
	case errors.Is(err, errLost):
		c.writeLine("-ERR Line too long; closing")
	case errors.Is(err, errShutdown), errors.As(err, &ne) && ne.Timeout() && c.srv.isClosing():
		c.writeLine("-ERR [" + codeSysTemp + "] Server shutting down; try again later")
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Debug("idle timeout", "state", c.state)
		c.writeLine("-ERR Idle for too long; closing")
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

// execute runs one command line. A panic ends the session with a generic
// reply: the session's state cannot be trusted after one, and ending it
// without UPDATE deletes nothing.
func (c *conn) execute(line []byte) {
	kw := ""
	defer func() {
		if r := recover(); r != nil {
			c.srv.panics.Add(1)
			c.log.Error("panic in command", "cmd", kw, "panic", r, "stack", string(debug.Stack()))
			c.writeLine(errTemporary.line())
			c.done = true
		}
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

func (c *conn) writeLine(s string) {
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

// interruptIdle wakes a session waiting for a command, for Shutdown.
func (c *conn) interruptIdle() {
	c.mu.Lock()
	if c.waiting {
		c.netConn.SetReadDeadline(time.Now())
	}
	c.mu.Unlock()
}

// abort closes the connection from another goroutine.
func (c *conn) abort() {
	c.mu.Lock()
	c.netConn.Close()
	c.mu.Unlock()
}

// finish ends the session: a session that did not reach UPDATE deletes
// nothing; its lock is released before the server counts it gone.
func (c *conn) finish() {
	c.releaseLease()
	c.cancel()
	c.mu.Lock()
	c.netConn.Close()
	c.mu.Unlock()
	c.srv.removeConn(c)
	c.log.Debug("closed")
}

// secure reports whether credentials may be sent on this connection: over TLS,
// from loopback, or anywhere when the operator allows it.
func (c *conn) secure() bool {
	if c.tls || c.srv.opt.AllowInsecureAuth {
		return true
	}
	if !c.srv.exemptLoopback {
		return false
	}
	var ip net.IP
	switch a := c.netConn.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		return false
	}
	return ip.IsLoopback()
}

// opCtx bounds one short store operation of a command.
func (c *conn) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, 30*time.Second)
}
