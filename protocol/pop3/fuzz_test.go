package pop3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mailgate/mailgate/models"
)

// FuzzReadCommand checks the command reader and parser against a model of
// what they must do: every line ending in LF comes back without its line
// ending, or errLineTooLong when it is over 255 octets (and the next line is
// read normally after it); a last line without LF is EOF. Parsing never
// panics, and accepted keywords are 1-4 letters, upper-cased.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"USER alice@example.com\r\nPASS secret with spaces\r\n",
		"RETR 1\r\nTOP 1 0\r\nLIST\nUIDL 3\r\nQUIT",
		"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
		strings.Repeat("x", 300) + "\r\nNOOP\r\n",
		strings.Repeat("y", 5000) + "\nSTAT\r\n",
		"\r\n\r\n \r\nCAPA \r\n",
		"dele 0001\r\nLIST 99999999999\r\n\x00\x01\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		segs := bytes.SplitAfter(data, []byte("\n"))
		for _, seg := range segs {
			if len(seg) > maxDiscard {
				return // the reader gives up on such a line; TestLongLines covers it
			}
			line, err := readLine(r, maxCommandLine)
			if len(seg) == 0 || seg[len(seg)-1] != '\n' {
				if len(seg) > 0 && err == nil {
					t.Fatalf("partial last line %q read as %q", seg, line)
				}
				continue
			}
			if len(seg) > maxCommandLine {
				if !errors.Is(err, errLineTooLong) {
					t.Fatalf("%d-octet line: got %q, %v; want errLineTooLong", len(seg), line, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("line %q: %v", seg, err)
			}
			if want := trimEOL(seg); !bytes.Equal(line, want) {
				t.Fatalf("line %q read as %q", seg, line)
			}
			kw, arg, perr := parseCommand(line)
			if perr != nil {
				continue
			}
			if len(kw) < 1 || len(kw) > 4 || strings.ToUpper(kw) != kw || strings.ContainsAny(kw, " \t") {
				t.Fatalf("keyword %q from %q", kw, line)
			}
			kw2, arg2, _ := parseCommand(bytes.ToLower(line[:len(kw)]))
			if kw2 != kw || arg2 != "" {
				t.Fatalf("keyword case matters: %q vs %q", kw, kw2)
			}
			if n, ok := parseNumber(arg); ok && n < 0 {
				t.Fatalf("parseNumber(%q) = %d", arg, n)
			}
		}
		if _, err := readLine(r, maxCommandLine); !errors.Is(err, io.EOF) {
			t.Fatalf("after the input: %v, want EOF", err)
		}
	})
}

// FuzzSession sends arbitrary input to a real server over loopback, logged in
// or not. The server must never panic or hang, must keep serving, and must
// delete nothing unless the input says QUIT.
func FuzzSession(f *testing.F) {
	for _, s := range []struct {
		login  bool
		script string
	}{
		{false, "CAPA\r\nUSER x\r\nPASS y\r\nAUTH PLAIN\r\n*\r\nSTLS x\r\n"},
		{false, "AUTH PLAIN\r\n" + "AGFsaWNlQGV4YW1wbGUuY29tAGNvcnJlY3QgaG9yc2UgYmF0dGVyeQ==\r\nSTAT\r\n"},
		{true, "STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nNOOP\r\n"},
		{true, "DELE 1\r\nDELE 2\r\nDELE 1\r\nRETR 2\r\nLIST 0\r\nTOP 1 999999999\r\n"},
		{true, "dele 1\r\nquit\r\n"},
		{true, strings.Repeat("z", 400) + "\r\nRETR 1\r\n\x00\r\n"},
	} {
		f.Add(s.login, s.script)
	}
	e := newEnv(f, withOptions(func(o *Options) {
		o.Logger = nil // fuzzing runs far too many sessions to log
		o.Limits.MaxLoginFailures = 1000
	}))
	// A cheap hash keeps logins fast enough to fuzz.
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	user, err := e.store.CreateUser(ctx, models.NewUser{Email: "fuzz@example.com", PasswordHash: string(hash)})
	if err != nil {
		f.Fatal(err)
	}
	inbox, err := e.mbox.Get(ctx, user.ID, models.Inbox)
	if err != nil {
		f.Fatal(err)
	}
	count := func(t *testing.T) int {
		msgs, err := e.mbox.MaildropMessages(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	f.Fuzz(func(t *testing.T, login bool, script string) {
		e := *e // the fuzz target must report through its own t
		e.t = t
		for n := count(t); n < 3; n++ {
			e.deliverTo(user, testMessage(n))
		}
		before := count(t)
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if login {
			io.WriteString(nc, "USER fuzz@example.com\r\nPASS "+testPassword+"\r\n")
		}
		io.WriteString(nc, script)
		nc.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("server did not end the session: %v (output %.200q)", err, out)
		}
		if !bytes.HasPrefix(out, []byte("+OK ")) {
			t.Fatalf("no greeting: %.200q", out)
		}
		e.waitIdle()
		if n := e.srv.panics.Load(); n != 0 {
			t.Fatalf("%d panics", n)
		}
		if after := count(t); !strings.Contains(strings.ToUpper(script), "QUIT") && after != before {
			t.Fatalf("messages deleted without QUIT: %d → %d", before, after)
		}
	})
}

// FuzzDotWriter holds dotWriter to net/textproto's DotWriter: the same bytes
// for any body, however it is split across writes. (The one intended
// difference: an empty body is ".CRLF" alone, not an empty line and ".CRLF".)
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{
		"Subject: x\r\n\r\nbody\r\n", ".\r\n..\r\n.x\r\n", "a\nb\n.c\n", "a\rb\r\r\n\r.x", "no end", "\r", "\n", ".", "x\r\n\r\n.\r\n",
	} {
		f.Add([]byte(s), uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		if len(body) == 0 {
			var got bytes.Buffer
			w := bufio.NewWriter(&got)
			d := newDotWriter(w)
			d.Close()
			w.Flush()
			if got.String() != ".\r\n" {
				t.Fatalf("empty body → %q", got.String())
			}
			return
		}
		at := int(split) % (len(body) + 1)
		var want, got bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want))
		dw := tw.DotWriter()
		dw.Write(body[:at])
		dw.Write(body[at:])
		dw.Close() // flushes
		w := bufio.NewWriter(&got)
		d := newDotWriter(w)
		if n, err := d.Write(body[:at]); n != at || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if n, err := d.Write(body[at:]); n != len(body)-at || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("body %q split at %d:\n got %q\nwant %q", body, at, got.Bytes(), want.Bytes())
		}
	})
}
