package server

import (
	"bytes"
	"testing"
)

// TestProxyDoesNotAllocate checks what BenchmarkProxy measures and the
// README claims: once its pools are warm, latch proxies a plain HTTP/1.1
// request on a kept-alive client connection without allocating, with or
// without a sticky session, with an observer counting every request, with
// the access log on, writing to a file, and with latch's metrics on. It
// runs the benchmark's serial case (its target, client and requests)
// through steadyAllocs. TestMain runs it on both data paths.
func TestProxyDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random, so latch's pools allocate again")
	}
	for _, c := range proxyCases {
		t.Run(c.name, func(t *testing.T) {
			addr, req, obs := proxyRequest(t, c)
			client := newBenchClient(t, addr, req)
			defer client.c.Close()
			res := steadyAllocs(t, "proxied requests", client.do)
			// The responses were the target's, not latch's own (a 502, say).
			if body := "hello, world\n"; !bytes.HasPrefix(client.buf, []byte(body)) {
				t.Fatalf("the last response body was %q, want the target's %q", client.buf[:len(body)], body)
			}
			if ended := obs.Ended.Load(); ended < uint64(res.N) {
				t.Errorf("the observer saw %d requests end, want at least the benchmark's %d", ended, res.N)
			}
		})
	}
}

// steadyAllocs runs do, 10 times to warm latch's pools and then as a
// benchmark, and fails t when do fails, or when the process allocated
// once in every maxRequestsPerAlloc requests or more: a steady-state
// allocation costs one per request, while the rest of the process (the
// test's other goroutines, timers) may allocate a few times while it
// runs. what names the requests in the messages.
func steadyAllocs(t *testing.T, what string, do func() error) testing.BenchmarkResult {
	t.Helper()
	const maxRequestsPerAlloc = 100
	var err error
	res := testing.Benchmark(func(b *testing.B) {
		for range 10 {
			if err = do(); err != nil {
				return
			}
		}
		for b.Loop() {
			if err = do(); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.N == 0 {
		t.Fatal("the benchmark did not run")
	}
	t.Logf("%d requests, %d allocations (%d bytes) in the process", res.N, res.MemAllocs, res.MemBytes)
	if res.MemAllocs*maxRequestsPerAlloc >= uint64(res.N) {
		t.Errorf("%d allocations in %d %s (%d bytes each); want none in the steady state",
			res.MemAllocs, res.N, what, res.AllocedBytesPerOp())
	}
	return res
}
