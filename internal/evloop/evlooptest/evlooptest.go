// Package evlooptest helps test packages run their tests on both of
// latch's data paths: the event loops, and a goroutine per connection.
package evlooptest

import (
	"os"
	"os/exec"
	"testing"

	"github.com/latch-lb/latch/internal/evloop"
)

// On reports whether this run serves plain-HTTP connections on event loops.
func On() bool { return evloop.Enabled() }

// RunWithoutLoops runs the test binary's other tests again in a child
// process with LATCH_DATA_PATH=goroutines, and fails t if they fail. Call
// it from a test of its own; it skips when the loops are off already, and
// under -short.
func RunWithoutLoops(t *testing.T) {
	t.Helper()
	if !On() {
		t.Skip("this run is on the goroutine path already")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	args := []string{"-test.count=1", "-test.skip=^" + t.Name() + "$"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LATCH_DATA_PATH=goroutines")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tests on the goroutine path failed (%v):\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("on the goroutine path:\n%s", out)
	}
}
