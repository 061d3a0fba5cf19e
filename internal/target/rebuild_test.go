package target

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/latch-lb/latch/internal/config"
)

// builtPicker is a picker whose identity tells the builds apart.
type builtPicker struct{ targets []*Target }

func (p *builtPicker) Pick(exclude *Target) *Target {
	for _, t := range p.targets {
		if t != exclude {
			return t
		}
	}
	return exclude
}

// TestWeightOnlyRebuildPicker checks that a rebuild that moves only
// effective weights (a slow start step, an anomaly tick) keeps the view's
// picker when Settings.WeightBlind is set, and builds a new one when it is
// not; and that any other rebuild builds a new one either way.
func TestWeightOnlyRebuildPicker(t *testing.T) {
	const slowStart = 60 * time.Second // ramp steps of 3 s
	targets := func(ids ...string) []config.Target {
		out := make([]config.Target, len(ids))
		for i, id := range ids {
			out[i] = config.Target{ID: id, Weight: 2}
		}
		return out
	}
	for _, blind := range []bool{true, false} {
		t.Run(map[bool]string{true: "weight blind", false: "weighted"}[blind], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var builds atomic.Int64 // on the ramp timer's goroutine too
				s := Settings{
					MinHealthyCount:     1,
					DeregistrationDelay: time.Hour,
					SlowStart:           slowStart,
					NewPicker: func(ts []*Target) Picker {
						builds.Add(1)
						return &builtPicker{ts}
					},
					WeightBlind: blind,
				}
				var gen uint64
				next := func(string) uint64 { gen++; return gen }
				// Health checks off: every target is in service at once; a
				// and b, registered into the empty group, skip slow start,
				// and c, registered after them, ramps.
				g := NewGroup("g", s, slog.New(slog.DiscardHandler))
				defer g.Close()
				g.Reconcile(targets("a:1", "b:1"), s, next)
				g.Reconcile(targets("a:1", "b:1", "c:1"), s, next)
				v := g.View()
				c, _ := v.Lookup("c:1")
				if c == nil || len(v.Routable) != 3 || v.Picker == nil {
					t.Fatalf("after registering c:1: routable %d, picker %v", len(v.Routable), v.Picker)
				}
				w, n := c.EffectiveWeight(), builds.Load()

				// A ramp step: the ramp timer rebuilds the view.
				time.Sleep(slowStart / 20)
				synctest.Wait()
				v2 := g.View()
				if v2 == v || c.EffectiveWeight() <= w {
					t.Fatalf("a ramp step did not publish a new view with c:1 heavier (%d, was %d)", c.EffectiveWeight(), w)
				}
				if got := v2.Picker == v.Picker; got != blind {
					t.Errorf("ramp step: same picker %v, want %v", got, blind)
				}
				if got, want := builds.Load()-n, map[bool]int64{true: 0, false: 1}[blind]; got != want {
					t.Errorf("ramp step: %d picker builds, want %d", got, want)
				}

				// An anomaly tick, as with mitigation off it goes: it
				// resets the anomaly states and publishes the weights.
				g.mu.Lock()
				g.anomalyTick()
				g.mu.Unlock()
				v3 := g.View()
				if v3 == v2 {
					t.Fatalf("the anomaly tick did not publish a new view")
				}
				if got := v3.Picker == v2.Picker; got != blind {
					t.Errorf("anomaly tick: same picker %v, want %v", got, blind)
				}

				// A registration change always builds a new picker.
				g.Reconcile(targets("a:1", "b:1", "c:1", "d:1"), s, next)
				if v4 := g.View(); v4.Picker == v3.Picker {
					t.Errorf("registering d:1 kept the picker")
				}
			})
		})
	}
}
