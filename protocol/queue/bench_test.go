package queue_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// BenchmarkRelay measures how many queue entries per second one instance
// relays to a local receiver, one recipient per message or ten (one
// transaction per message then). Queueing happens before the clock starts.
func BenchmarkRelay(b *testing.B) {
	for _, rcpts := range []int{1, 10} {
		b.Run(fmt.Sprintf("rcpts=%d", rcpts), func(b *testing.B) { benchRelay(b, rcpts) })
	}
}

func benchRelay(b *testing.B, rcpts int) {
	e := newEnv(b, lifetime)
	r := startReceiver(b, "", nil, func(r *receiver) { r.discard = true })
	text := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 64) // 4 KiB
	msgs := (b.N + rcpts - 1) / rcpts
	for i := 0; i < msgs; i++ {
		to := make([]string, rcpts)
		for k := range to {
			to[k] = fmt.Sprintf("r%d-%d@remote.test", i, k)
		}
		e.send(b, body(fmt.Sprint("bench", i), text), to...)
	}
	want := int64(msgs * rcpts)
	opt := options(b, route(b, "remote.test", r.addr))
	opt.Logger = slog.New(slog.DiscardHandler)
	b.ReportAllocs()
	b.ResetTimer()
	stop := e.run(b, opt)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Minute)
	for r.delivered.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("relayed %d of %d", r.delivered.Load(), want)
		}
		<-tick.C
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "entries/s")
	stop()
}
