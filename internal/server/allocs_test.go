package server

import (
	"bytes"
	"testing"
)

// TestProxyDoesNotAllocate checks what BenchmarkProxy measures and the
// README claims: once its pools are warm, latch proxies a plain HTTP/1.1
// request on a kept-alive client connection without allocating, with or
// without a sticky session, and with an observer counting every request
// (as metrics will), and with the access log on, writing to a file. It runs the benchmark's serial case (its
// target, client and requests) through testing.Benchmark and fails when
// latch allocates once in every maxRequestsPerAlloc requests or more: a
// steady-state allocation costs one per request, while the rest of the
// process (the test's other goroutines, timers) may allocate a few times
// while it runs. TestMain runs it on both data paths.
func TestProxyDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random, so latch's pools allocate again")
	}
	const maxRequestsPerAlloc = 100
	for _, c := range proxyCases {
		t.Run(c.name, func(t *testing.T) {
			addr, req, obs := proxyRequest(t, c.sticky, c.cookie, c.post, c.accessLog)

			var client *benchClient
			var err error
			res := testing.Benchmark(func(b *testing.B) {
				client = newBenchClient(b, addr, req)
				for range 10 { // warm the pools
					if err = client.do(); err != nil {
						return
					}
				}
				for b.Loop() {
					if err = client.do(); err != nil {
						return
					}
				}
			})
			if client != nil {
				defer client.c.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.N == 0 || client == nil {
				t.Fatal("the benchmark did not run")
			}
			// The responses were the target's, not latch's own (a 502, say).
			if body := "hello, world\n"; !bytes.HasPrefix(client.buf, []byte(body)) {
				t.Fatalf("the last response body was %q, want the target's %q", client.buf[:len(body)], body)
			}
			t.Logf("%d requests, %d allocations (%d bytes) in the process", res.N, res.MemAllocs, res.MemBytes)
			if ended := obs.Ended.Load(); ended < uint64(res.N) {
				t.Errorf("the observer saw %d requests end, want at least the benchmark's %d", ended, res.N)
			}
			if res.MemAllocs*maxRequestsPerAlloc >= uint64(res.N) {
				t.Errorf("%d allocations in %d proxied requests (%d bytes each); want none in the steady state",
					res.MemAllocs, res.N, res.AllocedBytesPerOp())
			}
		})
	}
}
