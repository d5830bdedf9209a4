package smtp_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/models/modelstest"
	"github.com/mailgate/mailgate/protocol/smtp"
)

// Benchmarks of SMTP ingest through the real server, store and delivery path.
// They run on SQLite, or on PostgreSQL with MAILGATE_TEST_DATABASE_URL set:
//
//	go test -mod=mod ./protocol/smtp/ -run '^$' -bench . -benchtime 3000x
//
// msgs/s is messages acknowledged (250, committed) per second of wall time;
// allocations are those of client and server together.

// benchMessage is a message of about size bytes, CRLF line ends.
func benchMessage(size int) []byte {
	var b strings.Builder
	b.WriteString("From: Sender <someone@remote.test>\r\nTo: alice@example.test\r\nSubject: benchmark\r\n" +
		"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <bench@remote.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n")
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// benchEnv is newEnv with a store whose PostgreSQL connections carry an
// application name, so that the CPU time of their backends can be measured.
func benchEnv(b *testing.B) *env {
	b.Helper()
	url := modelstest.URL(b)
	if strings.HasPrefix(url, "postgres") {
		url += "&application_name=" + benchApp
	}
	return newEnvStore(b, modelstest.Open(b, url))
}

const benchApp = "mailgate-smtp-bench"

// cpuTimes returns the CPU time used so far by this process and by the
// PostgreSQL backends serving it (0 on SQLite, which runs in process, or when
// /proc cannot be read). Wall time on a shared machine says little; CPU time per
// message says what the path costs.
func cpuTimes(e *env) (self, db time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if e.store.Dialect() != models.Postgres {
		return self, 0
	}
	rows, err := e.store.DB().Query(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, benchApp)
	if err != nil {
		return self, 0
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields 14 and 15 (utime, stime, in clock ticks) follow the ")" that
		// ends the command name.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			db += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
		}
	}
	return self, db
}

// ingest sends b.N messages over conns connections, each reusing its
// connection (RSET, MAIL, RCPT, DATA), recipients chosen per connection.
func ingest(b *testing.B, e *env, addr string, conns int, rcpts func(conn int) []string, msg []byte) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	clients := make([]*gosmtp.Client, conns)
	for i := range clients {
		c, err := gosmtp.Dial(addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Hello("bench.test"); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	self0, db0 := cpuTimes(e)
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := sendBench(c, rcpts(i), msg); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	self1, db1 := cpuTimes(e)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for _, c := range clients {
		c.Quit()
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64((self1-self0).Microseconds())/float64(b.N), "go-cpu-µs/msg")
	if db1 > 0 {
		b.ReportMetric(float64((db1-db0).Microseconds())/float64(b.N), "db-cpu-µs/msg")
	}
}

func sendBench(c *gosmtp.Client, rcpts []string, msg []byte) error {
	if err := c.Reset(); err != nil {
		return fmt.Errorf("RSET: %w", err)
	}
	if err := c.Mail("someone@remote.test", nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return fmt.Errorf("RCPT %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

// benchUsers adds n users u0…u(n-1) and a group "many" of them all.
func benchUsers(b *testing.B, e *env, n int) []string {
	b.Helper()
	ctx := context.Background()
	hash := e.user("alice@" + domain).PasswordHash
	var addrs []string
	for i := 0; i < n; i++ {
		a := fmt.Sprintf("u%d@%s", i, domain)
		if _, err := e.store.CreateUser(ctx, newUser(a, hash)); err != nil {
			b.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	if _, _, err := e.store.CreateGroup(ctx, "many@"+domain, "Many", addrs); err != nil {
		b.Fatal(err)
	}
	return addrs
}

// BenchmarkIngest4K is the throughput target: 4 KB messages, one recipient,
// eight connections. "8-inboxes" spreads them over eight users (each
// connection its own); "1-inbox" sends all to one user, so every delivery
// waits for the previous one's lock on that INBOX.
func BenchmarkIngest4K(b *testing.B) {
	msg := benchMessage(4 << 10)
	b.Run("8-inboxes", func(b *testing.B) {
		e := benchEnv(b)
		users := benchUsers(b, e, 8)
		addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
		ingest(b, e, addr, 8, func(i int) []string { return []string{users[i]} }, msg)
	})
	b.Run("1-inbox", func(b *testing.B) {
		e := benchEnv(b)
		addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
		ingest(b, e, addr, 8, func(int) []string { return []string{"alice@" + domain} }, msg)
	})
}

// BenchmarkGroup50 delivers 4 KB messages to a group of 50 users: one stored
// content, fifty mailbox entries per message.
func BenchmarkGroup50(b *testing.B) {
	msg := benchMessage(4 << 10)
	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			e := benchEnv(b)
			benchUsers(b, e, 50)
			addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
			ingest(b, e, addr, conns, func(int) []string { return []string{"many@" + domain} }, msg)
		})
	}
}

// BenchmarkIngest1M: 1 MiB messages, one recipient each, eight connections.
func BenchmarkIngest1M(b *testing.B) {
	msg := benchMessage(1 << 20)
	e := benchEnv(b)
	users := benchUsers(b, e, 8)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	ingest(b, e, addr, 8, func(i int) []string { return []string{users[i]} }, msg)
}

// BenchmarkReceive25M reports how far the heap grows above its level before
// the transfer while a 25 MB message is received and stored (peak-heap-MB,
// sampled every 5 ms). It must be a fraction of the message, not copies of it.
// The collector runs at GOGC=10 here, so that the figure is memory held, not
// garbage waiting for a collection the default GOGC=100 would allow to pile up
// to the size of the live heap (which includes the client's copy of the message).
func BenchmarkReceive25M(b *testing.B) {
	msg := benchMessage(25 << 20)
	e := benchEnv(b)
	addr, _ := e.serve(smtp.Options{Mode: smtp.ModeMTA})
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}
	}()
	ingest(b, e, addr, 1, func(int) []string { return []string{"alice@" + domain} }, msg)
	close(stop)
	<-sampled
	growth := float64(0)
	if p := peak.Load(); p > base {
		growth = float64(p-base) / (1 << 20)
	}
	b.ReportMetric(growth, "peak-heap-MB")
	if growth > 25 {
		b.Errorf("heap grew by %.0f MB while receiving a 25 MB message: a whole copy of it", growth)
	}
}
