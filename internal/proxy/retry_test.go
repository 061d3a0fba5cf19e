package proxy

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/upstream"
)

// TestClassify: what a failure on a target means, for passive health and
// retries (retry.go).
func TestClassify(t *testing.T) {
	g := group(t, 2, config.RoundRobin)
	live := g.View().Targets[0]
	dial := &upstream.DialError{Addr: live.ID, Err: syscall.ECONNREFUSED}
	cases := []struct {
		name string
		err  error
		cut  bool
		want failureKind
	}{
		{"connect refused", dial, false, connectFailed},
		{"pool closed", upstream.ErrClosed, false, notSent},
		{"reset", syscall.ECONNRESET, false, targetFailed},
		{"closed", io.EOF, false, targetFailed},
		{"invalid response", &h1.Error{Status: 502, Cause: "the target sent an invalid response"}, false, targetFailed},
		{"the client's body", &h1.Error{Status: 400, Cause: "the body was cut short"}, false, noOnesFault},
		{"timeout", os.ErrDeadlineExceeded, false, timedOut},
		{"the client went away", errClientGone, false, noOnesFault},
		{"deregistration delay over", errDeregistered, false, noOnesFault},
		{"Shutdown's cut", os.ErrDeadlineExceeded, true, noOnesFault},
	}
	for _, c := range cases {
		x := &exchange{t: live, guard: &cutGuard{}}
		if c.cut {
			x.guard.interrupt()
		}
		if got := x.classify(c.err); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}

	// A target removed under the request: its pool closed, its state
	// unused. The request never reached it, and goes elsewhere.
	gone := g.View().Targets[1]
	g.Close()
	if x := (&exchange{t: gone}); x.classify(upstream.ErrClosed) != notSent {
		t.Errorf("a removed target's closed pool: got %d, want notSent", x.classify(upstream.ErrClosed))
	}
	if x := (&exchange{t: gone}); x.classify(errors.New("anything")) != noOnesFault {
		t.Errorf("a removed target's other failure: want noOnesFault")
	}
}
