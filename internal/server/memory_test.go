package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// TestIdleConnMemory measures what latch holds for an idle HTTP/1.1 client
// connection, in plain HTTP and over TLS: n clients each send a request,
// read the answer and stay connected, and the process's heap and
// goroutine stacks grow by what latch keeps for them beyond what the same
// connections cost against a server that only answers and holds them (the
// test's own clients, the sockets and crypto/tls's state on both sides).
// An idle connection keeps no exchange (taken from a pool for each
// request), no read or write buffer, and over TLS a goroutine with a stack
// no larger than a goroutine's first, not the one its handshake grew.
// bench/run.sh idle measures the same in the process's RSS.
func TestIdleConnMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("measures memory: not under the race detector or -short")
	}
	const n = 1000
	e := newTLSEnv(t)
	b := startBackend(t, "b1")
	cert, err := tls.X509KeyPair(e.pairs["front"].CertPEM, e.pairs["front"].KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	baseTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	clientTLS := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	// The most latch may hold for an idle connection, heap and stack
	// together: in runs here, 0.3-0.4 KiB for HTTP on the loops, 3.9-4.8
	// KiB for HTTP with a goroutine each and for HTTPS (the goroutine's
	// stack, mostly); before the exchange was pooled, the TLS wait unbuffered and
	// the handshake's stack left behind, 3.6 KiB for HTTP on the loops and
	// 27.6 KiB for HTTPS.
	httpBudget := 1 << 10
	if dataPath == Goroutines {
		httpBudget = 6 << 10
	}
	for _, c := range []struct {
		proto  string
		budget float64
	}{
		{"HTTP", float64(httpBudget)},
		{"HTTPS", 6 << 10},
	} {
		t.Run(c.proto, func(t *testing.T) {
			var srvTLS, cliTLS *tls.Config
			if c.proto == "HTTPS" {
				srvTLS, cliTLS = baseTLS, clientTLS
			}
			// Both measured after a warm-up, so that pools and the
			// runtime's caches are the same for both.
			base := startHolder(t, srvTLS)
			closeAll(openAnswered(t, base.addr, cliTLS, 50))
			baseCost, baseClients := measure(t, func() []net.Conn { return openAnswered(t, base.addr, cliTLS, n) })
			closeAll(baseClients)
			base.close()

			var r *running
			if c.proto == "HTTPS" {
				r = startYAML(t, e.yaml("HTTPS", []string{"front"}, "", b.addr))
			} else {
				r = startLB(t, lbConfig{targets: []string{b.addr}, sticky: true})
			}
			closeAll(openAnswered(t, r.Addr("front"), cliTLS, 50))
			cost, clients := measure(t, func() []net.Conn { return openAnswered(t, r.Addr("front"), cliTLS, n) })
			defer closeAll(clients)
			held := (cost - baseCost) / n
			t.Logf("%s on %v: an idle connection holds %.0f bytes of heap and stack in latch (%.0f in all, %.0f against a server that only holds it)",
				c.proto, dataPath, held, cost/n, baseCost/n)
			if held > c.budget {
				t.Errorf("an idle %s connection holds %.0f bytes, want at most %.0f", c.proto, held, c.budget)
			}
		})
	}
}

// measure returns how much the heap and goroutine stacks grew while open
// opened the connections it returns.
func measure(t *testing.T, open func() []net.Conn) (float64, []net.Conn) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := open()
	// No event tells that the servers' goroutines have parked, and two
	// collections let the runtime shrink the stacks they left.
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc+after.StackInuse) - int64(before.HeapAlloc+before.StackInuse)
	return float64(grown), clients
}

// openAnswered opens n connections to addr (over TLS with cfg, unless
// nil), sends a GET on each and reads its answer, and returns them open.
func openAnswered(t *testing.T, addr string, cfg *tls.Config, n int) []net.Conn {
	t.Helper()
	clients := make([]net.Conn, 0, n)
	for range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			closeAll(clients)
			t.Fatal(err)
		}
		if cfg != nil {
			nc = tls.Client(nc, cfg)
		}
		clients = append(clients, nc)
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: a.example.test\r\nUser-Agent: idle\r\n\r\n")); err != nil {
			closeAll(clients)
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			closeAll(clients)
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			closeAll(clients)
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
	}
	return clients
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// holder answers one request on each connection with a fixed answer and
// holds the connection, keeping nothing else.
type holder struct {
	addr  string
	ln    net.Listener
	conns chan net.Conn
}

func startHolder(t *testing.T, cfg *tls.Config) *holder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &holder{addr: ln.Addr().String(), ln: ln, conns: make(chan net.Conn, 1<<14)}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if cfg != nil {
					nc = tls.Server(nc, cfg)
				}
				h.conns <- nc
				var buf [1024]byte
				var got []byte
				for !bytes.Contains(got, []byte("\r\n\r\n")) {
					k, err := nc.Read(buf[:])
					if err != nil {
						return
					}
					got = append(got, buf[:k]...)
				}
				fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nb1")
			}()
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *holder) close() {
	h.ln.Close()
	for {
		select {
		case nc := <-h.conns:
			nc.Close()
		default:
			return
		}
	}
}
