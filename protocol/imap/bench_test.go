package imap_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// seed puts n messages into a mailbox fast: one transaction per thousand,
// every message of a batch sharing one content (as delivery to many users
// shares it), cycling through the given bodies.
func seed(tb testing.TB, e *env, mailbox string, n int, bodies []string) {
	tb.Helper()
	ctx := context.Background()
	mb, err := e.mbox.Get(ctx, e.user.ID, mailbox)
	if err != nil {
		tb.Fatal(err)
	}
	for done, k := 0, 0; done < n; k++ {
		batch := min(1000, n-done)
		body := bodies[k%len(bodies)]
		p, err := e.mbox.Prepare(message.Bytes(body))
		if err != nil {
			tb.Fatal(err)
		}
		targets := make([]models.AppendTarget, batch)
		for i := range targets {
			targets[i] = models.AppendTarget{MailboxID: mb.ID, UserID: e.user.ID, Flags: models.Flags{Seen: (done+i)%3 == 0}}
		}
		err = e.store.Tx(ctx, func(tx *models.Store) error {
			_, err := e.mbox.AppendTx(ctx, tx, p, targets)
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
		done += batch
	}
}

// benchConn is a minimal IMAP client that reads responses without keeping
// them, so the allocations measured are the server's.
type benchConn struct {
	tb   testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
	tag  []byte
	last string // the last ESEARCH response
}

func benchDial(tb testing.TB, e *env) *benchConn {
	tb.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	bc := &benchConn{tb: tb, conn: c, r: bufio.NewReaderSize(c, 4096)}
	bc.r.ReadSlice('\n')
	bc.cmd(fmt.Sprintf("LOGIN %s %q", testUser, testPass))
	return bc
}

// cmd runs a command and returns how many untagged responses it got.
func (c *benchConn) cmd(line string) int {
	c.n++
	c.tag = fmt.Appendf(c.tag[:0], "b%d ", c.n)
	fmt.Fprintf(c.conn, "%s%s\r\n", c.tag, line)
	untagged := 0
	for {
		l, err := c.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			c.tb.Fatalf("%s: %v", line, err)
		}
		if bytes.HasPrefix(l, c.tag) {
			if !bytes.HasPrefix(l[len(c.tag):], []byte("OK")) {
				c.tb.Fatalf("%s: %s", line, l)
			}
			return untagged
		}
		if bytes.HasPrefix(l, []byte("* ")) {
			untagged++
			if bytes.HasPrefix(l, []byte("* ESEARCH")) {
				c.last = strings.TrimSpace(string(l))
			}
		}
	}
}

var headerBodies = func() []string {
	var out []string
	for i := 0; i < 10; i++ {
		out = append(out, fmt.Sprintf("Return-Path: <bob@remote.example>\r\nReceived: from mx.remote.example by mx.example.com; Mon, 02 Jan 2006 15:04:05 +0000\r\n"+
			"From: Bob Sender <bob@remote.example>\r\nTo: Alice <alice@example.com>, team@example.com\r\nCc: carol@remote.example\r\n"+
			"Subject: Weekly report number %d\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <r%d@remote.example>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s", i, i, bytes.Repeat([]byte("All good this week.\r\n"), 200)))
	}
	return out
}()

// BenchmarkFetchHeaders fetches what a mail client lists for 1,000 messages.
func BenchmarkFetchHeaders(b *testing.B) {
	e := newEnv(b)
	seed(b, e, "INBOX", 1000, headerBodies)
	c := benchDial(b, e)
	c.cmd("SELECT INBOX")
	for _, q := range []string{
		"FETCH 1:1000 (UID FLAGS RFC822.SIZE ENVELOPE)",
		"FETCH 1:1000 (UID BODY.PEEK[HEADER])",
		"FETCH 1:1000 (UID BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])",
		"FETCH 1:1000 (UID BODYSTRUCTURE)",
	} {
		b.Run(q[14:], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if n := c.cmd(q); n != 1000 {
					b.Fatalf("%d responses", n)
				}
			}
		})
	}
}

// seedDistinct puts n messages, each with content of its own, into INBOX.
func seedDistinct(tb testing.TB, e *env, n int, body func(i int) string) {
	tb.Helper()
	ctx := context.Background()
	mb, err := e.mbox.Get(ctx, e.user.ID, "INBOX")
	if err != nil {
		tb.Fatal(err)
	}
	for start := 0; start < n; start += 100 {
		err := e.store.Tx(ctx, func(tx *models.Store) error {
			for i := start; i < min(start+100, n); i++ {
				p, err := e.mbox.Prepare(message.Bytes(body(i)))
				if err != nil {
					return err
				}
				if _, err := e.mbox.AppendTx(ctx, tx, p, []models.AppendTarget{{MailboxID: mb.ID, UserID: e.user.ID}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkSearchText searches the text of 10,000 messages, each with its
// own content (1% of them contain the word searched for).
func BenchmarkSearchText(b *testing.B) {
	e := newEnv(b)
	seedDistinct(b, e, 10000, func(i int) string {
		word := "ordinary"
		if i%100 == 42 {
			word = "needle"
		}
		return fmt.Sprintf("From: s%d@remote.example\r\nSubject: message %d\r\n\r\nSome %s text, number %d.\r\n%s", i, i, word, i,
			bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"), 30))
	})
	c := benchDial(b, e)
	c.cmd("SELECT INBOX")
	for _, q := range []string{"SEARCH TEXT needle", "SEARCH BODY needle", "SEARCH UNSEEN SUBJECT \"message 4242\""} {
		c.cmd("SEARCH RETURN (COUNT) " + q[7:])
		want := "COUNT 100"
		if strings.Contains(q, "4242") {
			want = "COUNT 1"
		}
		if !strings.HasSuffix(c.last, want) {
			b.Fatalf("%s: %q, want %s", q, c.last, want)
		}
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.cmd(q)
			}
		})
	}
}

// BenchmarkSelect and FETCH 1:* (FLAGS UID) at three mailbox sizes: SELECT
// costs the same at each (the first SELECT in a process loads the UIDs as
// ranges, reported as first-select-ms); FETCH costs the same per message.
// B/session is the heap one more session with the mailbox selected holds.
func BenchmarkMailboxSize(b *testing.B) {
	for _, n := range benchSizes {
		e := newEnv(b)
		seed(b, e, "INBOX", n, headerBodies[:1])
		// Punch a few holes, as expunges leave them.
		ctx := context.Background()
		inbox, _ := e.mbox.Get(ctx, e.user.ID, "INBOX")
		if _, err := e.mbox.Expunge(ctx, inbox.ID, models.UIDs(10, 20, 30), false); err != nil {
			b.Fatal(err)
		}
		c := benchDial(b, e)
		start := time.Now()
		c.cmd("SELECT INBOX")
		cold := time.Since(start)
		b.Run(fmt.Sprintf("SELECT/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.cmd("SELECT INBOX")
			}
			b.ReportMetric(float64(cold.Microseconds())/1000, "first-select-ms")
		})
		b.Run(fmt.Sprintf("FETCH-FLAGS-UID/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if got := c.cmd("FETCH 1:* (FLAGS UID)"); got != n-3 {
					b.Fatalf("%d responses", got)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n-3), "ns/msg")
		})
		b.Run(fmt.Sprintf("session-memory/%d", n), func(b *testing.B) {
			const k = 20
			var perSession float64
			for i := 0; i < b.N; i++ {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				conns := make([]*benchConn, k)
				for j := range conns {
					conns[j] = benchDial(b, e)
					conns[j].cmd("SELECT INBOX")
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perSession = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / k
				for _, x := range conns {
					x.cmd("LOGOUT")
					x.conn.Close()
				}
			}
			b.ReportMetric(perSession, "B/session")
		})
	}
}

var benchSizes = []int{1000, 10000, 100000}
