// Package leaktest checks that the servers a test starts leave no
// goroutine behind once they are shut down.
package leaktest

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// label is the pprof label Check marks goroutines with.
const label = "leaktest"

var calls atomic.Uint64

// Check marks the calling goroutine with a label of its own (a pprof
// label: every goroutine it starts from now on inherits it, and those
// start, and so on), and fails t at its end if goroutines so marked are
// still running latch's code once the cleanups registered after this call
// (a server's Shutdown) have run. Call it before starting what it should
// check. Goroutines of latch's tests themselves (a client, a target) and
// of the standard library alone are not latch's code, so are not counted;
// tests that run in parallel do not count each other's.
func Check(t testing.TB) {
	t.Helper()
	id := strconv.FormatUint(calls.Add(1), 10)
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(label, id)))
	t.Cleanup(func() {
		// Goroutines end a little after the calls that stopped them
		// return (a Serve loop after its Shutdown, say): give them time.
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := running(id)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left running 5 s after the shutdown:\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// running returns the stacks of the goroutines marked id that run
// latch's code (a frame in one of its packages' non-test files).
func running(id string) []string {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 1)
	want := fmt.Sprintf(`"%s":"%s"`, label, id)
	var left []string
	for _, block := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(block, "# labels: ") || !strings.Contains(block, want) {
			continue
		}
		if strings.Contains(block, "/internal/leaktest.") {
			continue // the goroutine checking
		}
		if latchCode(block) {
			left = append(left, block)
		}
	}
	return left
}

// latchCode reports whether a stack has a frame in a non-test file of
// latch's packages.
func latchCode(block string) bool {
	for _, line := range strings.Split(block, "\n") {
		if !strings.HasPrefix(line, "#\t") || !strings.Contains(line, "github.com/latch-lb/latch/") {
			continue
		}
		fields := strings.Fields(line)
		file := fields[len(fields)-1]
		if i := strings.LastIndexByte(file, ':'); i >= 0 {
			file = file[:i]
		}
		if !strings.HasSuffix(file, "_test.go") {
			return true
		}
	}
	return false
}
