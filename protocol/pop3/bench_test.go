package pop3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/mailbox"
	"github.com/mailgate/mailgate/protocol/message"
)

// bodyOf returns a message of about size octets, CRLF lines, none starting
// with a dot: on the wire its RETR body is then exactly size+3 octets.
func bodyOf(n, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: bench@remote.test\r\nTo: alice@example.com\r\nSubject: bench %d\r\nMessage-ID: <b%d@remote.test>\r\n\r\n", n, n)
	line := fmt.Sprintf("%07d ", n) + strings.Repeat("abcdefghij", 7) + "\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return b.String()
}

// fill stores n messages of about size octets in the test user's INBOX, many
// per transaction, and returns their total size.
func (e *env) fill(n, size int) int64 {
	e.t.Helper()
	ctx := context.Background()
	inbox := e.inbox()
	var total int64
	for start := 0; start < n; start += 100 {
		var ps []*mailbox.Prepared
		err := e.store.Tx(ctx, func(tx *models.Store) error {
			ps = ps[:0]
			for i := start; i < min(start+100, n); i++ {
				p, err := e.mbox.Prepare(message.Bytes(bodyOf(i, size)))
				if err != nil {
					return err
				}
				res, err := e.mbox.AppendTx(ctx, tx, p, []models.AppendTarget{{MailboxID: inbox.ID, UserID: e.user.ID}})
				if err != nil {
					return err
				}
				if res[0].Err != nil {
					return res[0].Err
				}
				ps = append(ps, p)
			}
			return nil
		})
		if err != nil {
			e.t.Fatalf("fill: %v", err)
		}
		for _, p := range ps {
			total += p.Size()
		}
	}
	return total
}

// retrDiscard retrieves message i and throws it away, checking its framing.
func (c *client) retrDiscard(i int) int64 {
	c.send("RETR " + strconv.Itoa(i))
	ok := c.line()
	var size int64
	if _, err := fmt.Sscanf(ok, "+OK %d octets", &size); err != nil {
		c.t.Fatalf("RETR %d = %q", i, ok)
	}
	if _, err := io.CopyN(io.Discard, c.r, size); err != nil {
		c.t.Fatal(err)
	}
	var end [3]byte
	if _, err := io.ReadFull(c.r, end[:]); err != nil || string(end[:]) != ".\r\n" {
		c.t.Fatalf("RETR %d ends with %q, %v", i, end, err)
	}
	return size
}

// BenchmarkRETR measures throughput of whole sessions' worth of RETR: 1,000
// messages of 4 KB and 10 of 1 MB, read back from the store each time.
func BenchmarkRETR(b *testing.B) {
	for _, bc := range []struct {
		name    string
		n, size int
	}{
		{"4KBx1000", 1000, 4 << 10},
		{"1MBx10", 10, 1 << 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, withOptions(func(o *Options) { o.Logger = nil }))
			total := e.fill(bc.n, bc.size)
			c := dial(b, e.addr)
			mustPrefix(b, "login", c.login(testUser, testPassword), fmt.Sprintf("+OK Maildrop has %d messages (%d octets)", bc.n, total))
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				c.nc.SetDeadline(time.Now().Add(5 * time.Minute))
				for i := 1; i <= bc.n; i++ {
					c.retrDiscard(i)
				}
			}
			b.StopTimer()
			mustPrefix(b, "QUIT", c.cmd("QUIT"), "+OK")
		})
	}
}

// TestRetrMemoryFlat sends a 25 MB message and checks that the live heap
// never grows by more than a few storage chunks while it goes out: the
// message is streamed, never held whole.
func TestRetrMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("stores and sends 25 MB")
	}
	e := newEnv(t, withOptions(func(o *Options) { o.Logger = nil }))
	const size = 25 << 20
	raw := bodyOf(1, size)
	want := len(raw)
	if _, err := e.mbox.Append(context.Background(), e.user.ID, models.Inbox, strings.NewReader(raw), models.Flags{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.addr)
	mustPrefix(t, "login", c.login(testUser, testPassword), "+OK Maildrop has 1 messages")
	raw = "" // let the copy go

	// Two measures at each sample, after a forced collection: the heap the
	// collector found live (asserted), and MemStats' HeapAlloc (reported),
	// which also counts what the sender allocated since. The sender keeps
	// filling the socket buffers for a moment after the client stops reading,
	// and what it allocates meanwhile counts as live, so each sample is the
	// least of three collections in a row.
	var ms runtime.MemStats
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	sample := func() (uint64, uint64) {
		l, a := uint64(1<<63), uint64(1<<63)
		for range 3 {
			runtime.GC()
			metrics.Read(live)
			runtime.ReadMemStats(&ms)
			l, a = min(l, live[0].Value.Uint64()), min(a, ms.HeapAlloc)
		}
		return l, a
	}
	liveBase, allocBase := sample()
	totalBase := ms.TotalAlloc
	livePeak, allocPeak := liveBase, allocBase

	c.send("RETR 1")
	mustPrefix(t, "RETR", c.line(), fmt.Sprintf("+OK %d octets", want))
	buf := make([]byte, 64<<10)
	var got, nextSample int64
	tail := make([]byte, 0, len(buf)+8)
	for {
		n, err := c.r.Read(buf)
		got += int64(n)
		tail = append(tail, buf[:n]...)
		tail = tail[:copy(tail, tail[max(0, len(tail)-8):])]
		if bytes.HasSuffix(tail, []byte("\r\n.\r\n")) {
			break
		}
		if err != nil {
			t.Fatalf("after %d octets: %v", got, err)
		}
		if got >= nextSample {
			nextSample += 1 << 20
			l, a := sample()
			livePeak, allocPeak = max(livePeak, l), max(allocPeak, a)
		}
	}
	runtime.ReadMemStats(&ms)
	mb := func(n uint64, base uint64) float64 { return (float64(n) - float64(base)) / (1 << 20) }
	t.Logf("sent %d MB; live heap grew by at most %.2f MB (HeapAlloc %.2f MB); %.1f MB allocated in all",
		got>>20, mb(livePeak, liveBase), mb(allocPeak, allocBase), mb(ms.TotalAlloc, totalBase))
	// A storage chunk or two in flight (256 KiB, which the driver copies once
	// more) and the buffers: about a megabyte, however large the message.
	if growth := mb(livePeak, liveBase); growth > 8 {
		t.Errorf("live heap grew by %.1f MB while sending a 25 MB message; want it flat (< 8 MB)", growth)
	}
	mustPrefix(t, "QUIT", c.cmd("QUIT"), "+OK")
}
