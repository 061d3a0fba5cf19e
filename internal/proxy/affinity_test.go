package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/target"
)

// group returns a group of n routable targets (health checks off).
func group(t testing.TB, n int, alg config.Algorithm) *target.Group {
	var ts []config.Target
	for i := range n {
		ts = append(ts, config.Target{ID: fmt.Sprintf("10.0.0.%d:80", i), Weight: 1})
	}
	s := target.Settings{MinHealthyCount: 1, NewPicker: func(ts []*target.Target) target.Picker { return balance.New(alg, ts) }}
	g := target.NewGroup("web", s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	gen := uint64(0)
	g.Reconcile(ts, s, func(string) uint64 { gen++; return gen })
	t.Cleanup(g.Close)
	return g
}

// TestBoundedPickNeverExceedsTheBound: sessions arrive one after another
// and hold their requests; the first target never finishes any (a stuck
// target), the others finish at random. At every pick, the chosen target's
// load, this request included, stays within ceil(factor × mean), and the
// stuck target ends up holding a few requests, where without a factor
// round robin and weighted random give it a tenth of all 5000.
func TestBoundedPickNeverExceedsTheBound(t *testing.T) {
	// run makes 5000 picks with the factor (none if 0) and returns what
	// the stuck target holds at the end.
	run := func(t *testing.T, alg config.Algorithm, factor float64) int64 {
		g := group(t, 10, alg)
		view := g.View()
		stuck := view.Routable[0]
		for i := range 5000 {
			tg := boundedPick(view, factor)
			if factor > 0 {
				bound := loadBound(view.Routable, factor)
				if got := tg.Inflight.Load() + 1; got > bound {
					t.Fatalf("pick %d: %s would hold %d in flight, over the bound %d", i, tg.ID, got, bound)
				}
			}
			tg.Inflight.Add(1)
			for _, u := range view.Routable {
				if u != stuck && u.Inflight.Load() > 0 && rand.IntN(3) == 0 {
					u.Inflight.Add(-1)
				}
			}
		}
		return stuck.Inflight.Load()
	}
	for _, alg := range []config.Algorithm{config.RoundRobin, config.LeastOutstandingRequests, config.WeightedRandom} {
		t.Run(alg.String(), func(t *testing.T) {
			if alg != config.LeastOutstandingRequests { // which avoids the stuck target by itself
				if got := run(t, alg, 0); got < 300 {
					t.Fatalf("without a factor the stuck target holds only %d; the test needs the algorithm to pile about 500 on it", got)
				}
			}
			// New sessions stopped piling on it: the others keep up, so
			// the mean and ceil(1.25 × mean) stay small.
			if got := run(t, alg, 1.25); got > 10 {
				t.Errorf("with a factor of 1.25 the stuck target holds %d of 5000 requests, want a few", got)
			}
		})
	}
}

func TestBoundedPickWithoutFactorFollowsTheAlgorithm(t *testing.T) {
	g := group(t, 3, config.RoundRobin)
	view := g.View()
	view.Routable[0].Inflight.Store(1000)
	seen := map[*target.Target]int{}
	for range 300 {
		seen[boundedPick(view, 0)]++
	}
	if seen[view.Routable[0]] != 100 {
		t.Errorf("without a factor, round robin gave the loaded target %d of 300, want 100", seen[view.Routable[0]])
	}
}

func TestRebalanceOnlyToJoinedTargetsAfterIdle(t *testing.T) {
	// One target founds the group (as at a latch start: it never counts as
	// joined); three join it, just now.
	var ts []config.Target
	for i := range 4 {
		ts = append(ts, config.Target{ID: fmt.Sprintf("10.0.0.%d:80", i), Weight: 1})
	}
	s := target.Settings{MinHealthyCount: 1, NewPicker: func(ts []*target.Target) target.Picker { return balance.New(config.RoundRobin, ts) }}
	g := target.NewGroup("web", s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(g.Close)
	gen := uint64(0)
	next := func(string) uint64 { gen++; return gen }
	g.Reconcile(ts[:1], s, next)
	view := g.View()
	old := view.Routable[0]
	now := time.Now()
	before := now.Unix() - 10
	if u := rebalance(view, old, before, time.Second, now); u != nil {
		t.Errorf("a session moved within a group of its founding target alone")
	}
	g.Reconcile(ts, s, next)
	view = g.View()
	if u := rebalance(view, old, before, 0, now); u != nil {
		t.Errorf("rebalance off moved a session")
	}
	if u := rebalance(view, old, now.Unix(), time.Second, now); u != nil {
		t.Errorf("a session idle for 0 s moved")
	}
	moved := 0
	for range 3000 {
		if u := rebalance(view, old, before, time.Second, now); u != nil {
			if u == old {
				t.Fatal("rebalance returned the session's own target")
			}
			moved++
		}
	}
	// Three of the four targets joined after the session went idle: three
	// quarters of the weight, so about three quarters of the sessions move.
	if moved < 2000 || moved > 2500 {
		t.Errorf("%d of 3000 idle sessions moved, want about 2250", moved)
	}
	// No target joined since the session was last seen: none moves; nor
	// when they joined in the second it was last seen (maybe before its
	// last request: times in a session are whole seconds).
	for _, last := range []int64{now.Unix() + 5, now.Unix()} {
		for range 300 {
			if u := rebalance(view, old, last, time.Second, now.Add(10*time.Second)); u != nil {
				t.Fatalf("a session last seen at %+d s moved, though no target joined after that second", last-now.Unix())
			}
		}
	}
}

func BenchmarkBoundedPick(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			g := group(b, n, config.RoundRobin)
			view := g.View()
			for i, t := range view.Routable {
				t.Inflight.Store(int64(i % 7))
			}
			b.ReportAllocs()
			for b.Loop() {
				boundedPick(view, 1.25)
			}
		})
	}
}
