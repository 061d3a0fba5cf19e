package h2

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestIdleConnMemory opens 1,000 connections that each served a browser's
// request and went idle, and measures what an idle connection holds on
// the heap beyond its sockets (measured alike against a listener that
// only holds its connections): no read or write buffer, and the engine's
// state. Serve's goroutine stack is counted apart: an event loop has none.
func TestIdleConnMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("measures memory: not under the race detector or -short")
	}
	const n = 1000
	w := newWire()
	w.buf.WriteString(Preface)
	w.fr.WriteSettings()
	w.fr.WriteSettingsAck()
	w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: w.requestBlock(), EndStream: true, EndHeaders: true})
	hello := bytes.Clone(w.buf.Bytes())

	// open dials n clients, each sending hello and reading until the
	// server has answered (or for the baseline, nothing), and returns the
	// heap and stack growth per connection.
	open := func(addr string, answered bool) (heap, stack float64, clients []net.Conn) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		buf := make([]byte, 4096)
		for range n {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, nc)
			if answered {
				nc.Write(hello)
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				// The answer ends with an empty DATA frame ending stream 1.
				end := []byte{0, 0, 0, byte(FrameData), flagEndStream, 0, 0, 0, 1}
				var got []byte
				for !bytes.HasSuffix(got, end) {
					k, err := nc.Read(buf)
					if err != nil {
						t.Fatalf("reading the answer: %v", err)
					}
					got = append(got, buf[:k]...)
				}
			}
		}
		time.Sleep(100 * time.Millisecond) // no event tells that the servers' goroutines are parked
		runtime.GC()
		runtime.ReadMemStats(&after)
		return float64(after.HeapAlloc-before.HeapAlloc) / n, float64(after.StackInuse-before.StackInuse) / n, clients
	}

	base, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, n)
	go func() {
		for {
			nc, err := base.Accept()
			if err != nil {
				return
			}
			held <- nc
		}
	}()
	baseHeap, _, baseClients := open(base.Addr().String(), false)
	for range n {
		(<-held).Close()
	}
	base.Close()
	for _, c := range baseClients {
		c.Close()
	}

	srv := startServer(t, Config{}, false)
	heap, stack, clients := open(srv.addr, true)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	// Every connection has given its buffers back.
	srv.mu.Lock()
	conns := make([]*Conn, 0, len(srv.conns))
	for c := range srv.conns {
		conns = append(conns, c)
	}
	srv.mu.Unlock()
	holding := make(chan bool, len(conns))
	for _, c := range conns {
		c.Post(func() { holding <- c.inp != nil || c.outp != nil || len(c.streams) > 0 })
	}
	for range conns {
		if <-holding {
			t.Fatal("an idle connection holds a buffer or a stream")
		}
	}
	engine := heap - baseHeap
	t.Logf("an idle HTTP/2 connection: %.0f bytes of heap beyond its sockets (sockets alone: %.0f), and %.0f bytes of goroutine stack on Serve", engine, baseHeap, stack)
	if engine > 8<<10 {
		t.Errorf("an idle connection holds %.0f bytes of heap, want at most 8 KiB", engine)
	}
}
