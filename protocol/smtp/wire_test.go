package smtp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
	"github.com/mailgate/mailgate/protocol/smtp"
	"github.com/mailgate/mailgate/protocol/wire"
)

// TestSmuggling sends bare-LF and bare-CR "end of data" lines with a second
// transaction behind them (the 2023 SMTP smuggling attack). Only CRLF.CRLF ends
// DATA: one message is stored, holding the would-be second one as text, with
// every line ending normalized to CRLF.
func TestSmuggling(t *testing.T) {
	smuggled := "MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nFrom: evil@remote.test\r\nSubject: smuggled\r\n\r\nevil\r\n"
	// stored is how each would-be end is kept: normalized to CRLF, and, where
	// the dot starts a line (after CRLF), dot-unstuffed as RFC 5321 §4.5.2 says.
	// ("\r\n.\r" loses its CR too: a quirk of go-smtp's data reader, harmless.)
	for name, tc := range map[string]struct{ end, stored string }{
		"LF.LF":     {"\n.\n", "\r\n.\r\n"},
		"CRLF.LF":   {"\r\n.\n", "\r\n\r\n"},
		"LF.CRLF":   {"\n.\r\n", "\r\n.\r\n"},
		"CR.CR":     {"\r.\r", "\r\n.\r\n"},
		"CRLF.CR":   {"\r\n.\r", "\r\n"},
		"CR.CRLF":   {"\r.\r\n", "\r\n.\r\n"},
		"CRLF.CRCR": {"\r\n.\r\r\n", "\r\n\r\n"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
			c := dial(t, addr, false)
			c.run([]step{
				{"EHLO client.test", "250 "},
				{"MAIL FROM:<someone@remote.test>", "250 "},
				{"RCPT TO:<alice@example.test>", "250 "},
				{"DATA", "354 "},
			})
			head := "From: someone@remote.test\r\nSubject: first\r\n\r\nline one"
			c.send(head + tc.end + smuggled + ".") // the real end: CRLF . CRLF
			c.expect("250 ")
			c.cmd("QUIT", "221 ") // the next reply is QUIT's: no second DATA ran
			if n := len(e.inbox("bob@" + domain)); n != 0 {
				t.Fatalf("a smuggled message reached bob")
			}
			got := e.inbox("alice@" + domain)
			if len(got) != 1 {
				t.Fatalf("alice holds %d messages, want 1", len(got))
			}
			_, _, rest := splitTrace(t, got[0].raw)
			if want := head + tc.stored + smuggled; string(rest) != want {
				t.Errorf("stored\n%q\nwant\n%q", rest, want)
			}
		})
	}
}

// TestStartTLSDiscardsPipelined: commands sent in plaintext behind STARTTLS
// must not run inside the TLS session (RFC 3207 §4.2; CVE-2011-0411).
func TestStartTLSDiscardsPipelined(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	c := dial(t, addr, false)
	c.cmd("EHLO client.test", "250 ")
	c.send("STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.test>")
	c.expect("220 ")
	c.startTLS()
	// Had the injected commands run, the next reply would be one of theirs.
	c.run([]step{
		{"RCPT TO:<alice@example.test>", "502 5.5.1 "},
		{"DATA", "502 5.5.1 "},
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
		{"Subject: after tls\r\n\r\nhi\r\n.", "250 "},
	})
	got := e.inbox("alice@" + domain)
	if len(got) != 1 {
		t.Fatalf("alice holds %d messages", len(got))
	}
	if rp, rcv, _ := splitTrace(t, got[0].raw); rp != "Return-Path: <someone@remote.test>" || !strings.Contains(rcv, "from client.test ") {
		t.Errorf("stored with %q / %q", rp, rcv)
	}
}

// TestIdleTimeout: a silent client is dropped, between commands and inside DATA.
func TestIdleTimeout(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA, Limits: wire.Limits{IdleTimeout: 200 * time.Millisecond}})
	c := dial(t, addr, false)
	c.expect("421 4.4.2 ") // readReply waits up to 10s; the server gives up after 0.2s
	if _, err := c.readReply(); !errors.Is(err, io.EOF) {
		t.Errorf("after the idle reply: %v, want EOF", err)
	}

	c = dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
	})
	c.send("Subject: stalled\r\n\r\nhalf a message")
	var err error
	for err == nil {
		var rep string
		if rep, err = c.readReply(); err == nil && !strings.HasPrefix(rep, "4") {
			t.Fatalf("stalled DATA answered %q", rep)
		}
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("stalled DATA: connection not closed: %v", err)
	}
	if n := len(e.inbox("alice@" + domain)); n != 0 {
		t.Errorf("part of a stalled message was stored")
	}
}

// TestSlowSteadySender: a message that takes many idle timeouts to arrive, but
// never pauses for one, is received: the deadline is per read, not per body.
func TestSlowSteadySender(t *testing.T) {
	const idle = 300 * time.Millisecond
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA, Limits: wire.Limits{IdleTimeout: idle}})
	c := dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
	})
	line := strings.Repeat("z", 998) + "\r\n"
	chunk := strings.Repeat(line, 10)
	start := time.Now()
	tick := time.NewTicker(idle / 5)
	defer tick.Stop()
	io.WriteString(c.conn, "Subject: slow\r\n\r\n")
	const chunks = 40 // 40 × 60ms: 2.4s, eight idle timeouts
	for i := 0; i < chunks; i++ {
		<-tick.C // pacing is what is tested here, not synchronisation
		if _, err := io.WriteString(c.conn, chunk); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	c.send(".")
	c.expect("250 ")
	if took := time.Since(start); took < 4*idle {
		t.Fatalf("sending took %v: too fast to prove anything", took)
	}
	got := e.inbox("alice@" + domain)
	if len(got) != 1 {
		t.Fatalf("alice holds %d messages", len(got))
	}
	if _, _, rest := splitTrace(t, got[0].raw); len(rest) != len("Subject: slow\r\n\r\n")+chunks*len(chunk) {
		t.Errorf("stored %d bytes", len(rest))
	}
}

// TestShutdown: an idle client gets 421 at once, a message in transfer is
// still stored and acknowledged, and Serve returns ErrServerClosed.
func TestShutdown(t *testing.T) {
	e := newEnv(t)
	srv := smtp.New(e.authn, e.dlv, smtp.Options{Mode: smtp.ModeMTA, Hostname: hostname, Logger: e.logger()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dial(t, addr, false)
	idle.cmd("EHLO idle.test", "250 ")
	busy := dial(t, addr, false)
	busy.run([]step{
		{"EHLO busy.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
	})
	busy.send("Subject: in flight\r\n\r\nfirst half")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	idle.expect("421 ")
	busy.send("second half\r\n.")
	busy.expect("250 ")
	busy.expect("421 ") // then it is told to go
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, smtp.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	if n := len(e.inbox("alice@" + domain)); n != 1 {
		t.Errorf("alice holds %d messages, want the one in flight", n)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("still accepting after Shutdown")
	}
}

// TestShutdownDeadline: when ctx ends first, connections are closed and the
// message in transfer is not acknowledged.
func TestShutdownDeadline(t *testing.T) {
	e := newEnv(t)
	addr, srv := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	busy := dial(t, addr, false)
	busy.run([]step{
		{"EHLO busy.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
	})
	busy.send("Subject: never finished\r\n\r\npart")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	rep, err := busy.readReply()
	for err == nil && !strings.HasPrefix(rep, "250") {
		rep, err = busy.readReply()
	}
	if err == nil {
		t.Errorf("message acknowledged although the server closed: %q", rep)
	}
	if n := len(e.inbox("alice@" + domain)); n != 0 {
		t.Errorf("alice holds %d messages", n)
	}
}

// TestMaxConnections: a client over the server's cap, or over the cap per
// address, is refused in SMTP terms at once; a freed slot takes the next.
func TestMaxConnections(t *testing.T) {
	e := newEnv(t)
	// greeting is the first line a new client gets, and whether the server
	// then closed the connection.
	greeting := func(addr string) (string, bool) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(nc)
		line, _ := r.ReadString('\n')
		nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = r.ReadByte()
		return line, errors.Is(err, io.EOF)
	}
	for _, lim := range []wire.Limits{{MaxConnections: 2}, {MaxConnectionsPerIP: 2}} {
		addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA, Limits: lim})
		a := dial(t, addr, false)
		dial(t, addr, false)
		if g, closed := greeting(addr); !strings.HasPrefix(g, "421 4.7.0 ") || !closed {
			t.Errorf("%+v: third client got %q (closed: %v), want 421 and a close", lim, g, closed)
		}
		a.cmd("QUIT", "221 ")
		deadline := time.Now().Add(5 * time.Second)
		for {
			g, _ := greeting(addr)
			if strings.HasPrefix(g, "220 ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%+v: no slot after QUIT: %q", lim, g)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestBDAT: CHUNKING (advertised by go-smtp) goes through the same Data path:
// the message is normalized, trace-stamped and checked like one sent by DATA,
// and RSET in the middle of chunks stores nothing.
func TestBDAT(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeSubmission})
	c := dial(t, addr, false)
	c.run([]step{{"EHLO client.test", "250 "}, {alicePlain, "235 "}})
	part1 := "From: alice@example.test\nSubject: chunked\r\n\r\n"
	part2 := "line\rbare CR\n.\nend\r\n"
	c.cmd("MAIL FROM:<alice@example.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1[:len(part1)-2])) // send adds the last CRLF
	c.expect("250 ")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2[:len(part2)-2]))
	c.expect("250 2.0.0 OK: queued as ")

	forged := "From: bob@example.test\r\n\r\nx\r\n"
	c.cmd("MAIL FROM:<alice@example.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(forged), forged[:len(forged)-2]))
	c.expect("553 5.7.1 ")

	c.cmd("MAIL FROM:<alice@example.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.test>", "250 ")
	c.send("BDAT 5\r\nabc")
	c.expect("250 ")
	c.cmd("RSET", "250 ")
	c.cmd("QUIT", "221 ")

	got := e.inbox("bob@" + domain)
	if len(got) != 1 {
		t.Fatalf("bob holds %d messages, want 1", len(got))
	}
	want := "From: alice@example.test\r\nSubject: chunked\r\n\r\nline\r\nbare CR\r\n.\r\nend\r\n"
	if _, _, rest := splitTrace(t, got[0].raw); string(rest) != want {
		t.Errorf("stored %q, want %q", rest, want)
	}
}

// TestPartBomb: a 0.9 MB message of 100,000 empty MIME parts, sent to port
// 25 without login, is accepted and stored byte for byte, while the server's
// memory grows by less than 20 MB and the stored structure stays bounded.
func TestPartBomb(t *testing.T) {
	e := newEnv(t)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	var b strings.Builder
	b.WriteString("Subject: bomb\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 0; i < 100000; i++ {
		b.WriteString("--b\r\n\r\n")
	}
	b.WriteString("--b--\r\n")
	bomb := b.String()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := dial(t, addr, false)
	c.run([]step{
		{"EHLO client.test", "250 "},
		{"MAIL FROM:<someone@remote.test>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
		{bomb + ".", "250 "},
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	// HeapSys is what the heap took from the system: it does not shrink
	// between the two readings, so it shows the peak the message caused.
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > 20<<20 {
		t.Errorf("the heap grew by %d MB for one part bomb", grew>>20)
	}
	got := e.inbox("alice@" + domain)
	if len(got) != 1 {
		t.Fatalf("alice holds %d messages", len(got))
	}
	if _, _, rest := splitTrace(t, got[0].raw); string(rest) != bomb {
		t.Error("the bomb was not stored byte for byte")
	}
	rows, err := e.store.FetchPage(context.Background(), got[0].msg.MailboxID, models.All, 0, 10, models.FetchContent)
	if err != nil || len(rows) != 1 {
		t.Fatalf("fetch: %v, %d rows", err, len(rows))
	}
	if n := len(rows[0].Content.BodyStructure); n > message.MaxStructureSize {
		t.Errorf("stored structure of %d bytes, over the %d-byte bound", n, message.MaxStructureSize)
	}
}
