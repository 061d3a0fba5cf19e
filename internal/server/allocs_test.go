package server

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
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
// benchmark, and fails t when do fails, or when one place in the code (one
// call stack) allocated once in every maxRequestsPerAlloc requests or
// more: a steady-state allocation on the request path costs one a request
// at the same place, while what the rest of the process allocates now and
// then (the test's goroutines, timers, sync.Pool refilling a P's cache
// after the goroutine that uses it moved to another P or after the
// benchmark's GC) is spread over many places, a few times each, whatever
// the number of requests. Counting the whole process's allocations instead
// made the check fail on a slow machine, where fewer requests fit in the
// benchmark's second beside the same few dozen. To see every allocation,
// the memory profile samples each one while it runs; the process's count
// is checked too, against a looser bound (below). what names the requests
// in the messages.
func steadyAllocs(t *testing.T, what string, do func() error) testing.BenchmarkResult {
	t.Helper()
	const maxRequestsPerAlloc = 100
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	runtime.GC()
	before := allocSites()
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
	runtime.GC() // the profile counts the allocations made before the last GC
	sites := allocSites()
	for stack, n := range before {
		sites[stack] -= n
	}
	t.Logf("%d requests, %d allocations (%d bytes) in the process", res.N, res.MemAllocs, res.MemBytes)
	// The profile sees an allocation smaller than 16 bytes without pointers
	// only when it opens a new 16-byte block; the process's count sees them
	// all, the rest of the process's too, hence its looser bound.
	if res.MemAllocs*maxRequestsPerAlloc/5 >= uint64(res.N) {
		t.Errorf("%d allocations in %d %s (once in every %d requests or more); want none in the steady state",
			res.MemAllocs, res.N, what, maxRequestsPerAlloc/5)
	}
	for stack, n := range sites {
		if n*maxRequestsPerAlloc < int64(res.N) {
			continue
		}
		if where := formatStack(stack); !strings.Contains(where, ".allocSites\n") {
			t.Errorf("%d allocations in %d %s at one place (once in every %d requests or more); want none in the steady state:\n%s",
				n, res.N, what, maxRequestsPerAlloc, where)
		}
	}
	return res
}

// allocSites is the number of allocations the memory profile has counted
// at each call stack, as of the last GC. steadyAllocs leaves out its own
// (the map and records it makes here, after the first reading).
func allocSites() map[[32]uintptr]int64 {
	n, _ := runtime.MemProfile(nil, true)
	for {
		p := make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(p, true); ok {
			sites := make(map[[32]uintptr]int64, n)
			for _, r := range p[:n] {
				sites[r.Stack0] += r.AllocObjects
			}
			return sites
		}
	}
}

// formatStack is a call stack from the memory profile, a function and its
// line a line, innermost first.
func formatStack(stack [32]uintptr) string {
	var b strings.Builder
	frames := runtime.CallersFrames(stack[:])
	for {
		f, more := frames.Next()
		if f.Function != "" {
			fmt.Fprintf(&b, "\t%s\n\t\t%s:%d\n", f.Function, f.File, f.Line)
		}
		if !more {
			return b.String()
		}
	}
}
