package wire

import (
	"net"
	"testing"
	"time"
)

// TestIdleWhileWorking: the idle timeout does not run out while the server
// is carrying out a command (Begin…End), however long it takes, and runs from
// the command's end.
func TestIdleWhileWorking(t *testing.T) {
	const idle = 200 * time.Millisecond
	conns := make(chan *Conn, 1)
	expired := make(chan time.Time, 1)
	s := NewServer(Options{Protocol: "test", DefaultIdle: idle,
		Handle: func(c *Conn, _ net.Conn) { conns <- c },
		Expire: func(c *Conn, reason string) { expired <- time.Now(); c.Close() }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln) //nolint:errcheck // ends with Close
	defer s.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := <-conns
	c.Begin()
	select {
	case <-expired:
		t.Fatal("expired while a command was being carried out")
	case <-time.After(3 * idle): // a bounded wait for what must not happen
	}
	ended := time.Now()
	c.End()
	select {
	case at := <-expired:
		if took := at.Sub(ended); took < idle/2 {
			t.Errorf("expired %v after the command's end, want about %v", took, idle)
		}
	case <-time.After(10 * idle):
		t.Fatal("not expired after the command ended")
	}
}
