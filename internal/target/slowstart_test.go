package target

import (
	"testing"
	"testing/synctest"
	"time"
)

const ssDuration = 60 * time.Second // slow start in these tests; steps of 3 s

func ssSettings() Settings {
	s := settings()
	s.SlowStart = ssDuration
	return s
}

// inSlowStart reports whether tg is in slow start in g.
func inSlowStart(g *Group, tg *Target) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ramping(tg, time.Now())
}

// byID returns the registered target with the given id.
func byID(t *testing.T, g *Group, id string) *Target {
	t.Helper()
	tg, _ := g.View().Lookup(id)
	if tg == nil {
		t.Fatalf("%s is not registered", id)
	}
	return tg
}

// healthy makes the targets healthy: one success leaves initial; two
// (HealthyThreshold) leave unhealthy.
func healthy(g *Group, ts ...*Target) {
	for _, tg := range ts {
		g.Observe(tg, ok)
		g.Observe(tg, ok)
	}
}

func unhealthy(g *Group, ts ...*Target) {
	for _, tg := range ts {
		g.Observe(tg, fail503)
		g.Observe(tg, fail503)
	}
}

// wantSlowStart checks which of the group's targets are in slow start, and
// that the others have their full weight and the ramping ones less.
func wantSlowStart(t *testing.T, g *Group, want map[string]bool) {
	t.Helper()
	for id, w := range want {
		tg := byID(t, g, id)
		if got := inSlowStart(g, tg); got != w {
			t.Errorf("%s in slow start: got %v, want %v", id, got, w)
		}
		full := max(tg.Weight(), 1) * WeightUnit
		if got := tg.EffectiveWeight(); w && got >= full || !w && got != full {
			t.Errorf("%s effective weight: got %d, want %s %d", id, got, map[bool]string{true: "below", false: "equal to"}[w], full)
		}
	}
}

// TestSlowStartRules covers ALB's rules on when slow start applies.
func TestSlowStartRules(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T) (*Group, map[string]bool)
	}{
		{"registered in one call to an empty group", func(t *testing.T) (*Group, map[string]bool) {
			g, _ := newGroup(t, ssSettings(), "a:1", "b:1", "c:1")
			healthy(g, g.View().Targets...)
			return g, map[string]bool{"a:1": false, "b:1": false, "c:1": false}
		}},
		{"registered to an empty group, healthy after being unhealthy", func(t *testing.T) (*Group, map[string]bool) {
			g, _ := newGroup(t, ssSettings(), "a:1", "b:1")
			a, b := byID(t, g, "a:1"), byID(t, g, "b:1")
			healthy(g, a)
			unhealthy(g, b) // initial -> unhealthy: never in service yet
			healthy(g, b)
			return g, map[string]bool{"a:1": false, "b:1": false}
		}},
		{"a new target with a healthy peer", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1", "b:1")
			healthy(g, g.View().Targets...)
			g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), ssSettings(), gen.gen)
			healthy(g, byID(t, g, "c:1"))
			return g, map[string]bool{"a:1": false, "b:1": false, "c:1": true}
		}},
		{"a new target while initial is not yet in slow start", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1")
			healthy(g, byID(t, g, "a:1"))
			g.Reconcile(cfgTargets("a:1", "c:1"), ssSettings(), gen.gen)
			return g, map[string]bool{"a:1": false, "c:1": false}
		}},
		{"re-registering into a group emptied by the previous update", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1")
			healthy(g, byID(t, g, "a:1"))
			g.Reconcile(nil, ssSettings(), gen.gen)
			g.Reconcile(cfgTargets("b:1", "c:1"), ssSettings(), gen.gen)
			healthy(g, g.View().Targets...)
			return g, map[string]bool{"b:1": false, "c:1": false}
		}},
		{"no healthy peer: the only peer is unhealthy", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1")
			a := byID(t, g, "a:1")
			healthy(g, a)
			unhealthy(g, a)
			g.Reconcile(cfgTargets("a:1", "b:1"), ssSettings(), gen.gen)
			healthy(g, byID(t, g, "b:1"))
			return g, map[string]bool{"b:1": false}
		}},
		{"no healthy peer out of slow start", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1")
			a := byID(t, g, "a:1")
			healthy(g, a)
			g.Reconcile(cfgTargets("a:1", "b:1"), ssSettings(), gen.gen)
			healthy(g, byID(t, g, "b:1")) // b ramps against a
			unhealthy(g, a)
			g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), ssSettings(), gen.gen)
			healthy(g, byID(t, g, "c:1")) // only b is healthy, and it ramps
			return g, map[string]bool{"b:1": true, "c:1": false}
		}},
		{"already healthy when slow start is turned on", func(t *testing.T) (*Group, map[string]bool) {
			off := settings()
			g, gen := newGroup(t, off, "a:1", "b:1")
			healthy(g, g.View().Targets...)
			g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), off, gen.gen)
			healthy(g, byID(t, g, "c:1")) // healthy with slow start off
			g.Reconcile(cfgTargets("a:1", "b:1", "c:1", "d:1"), ssSettings(), gen.gen)
			healthy(g, byID(t, g, "d:1")) // initial when it was turned on
			return g, map[string]bool{"a:1": false, "b:1": false, "c:1": false, "d:1": true}
		}},
		{"unhealthy ends it", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1")
			healthy(g, byID(t, g, "a:1"))
			g.Reconcile(cfgTargets("a:1", "c:1"), ssSettings(), gen.gen)
			c := byID(t, g, "c:1")
			healthy(g, c)
			unhealthy(g, c)
			return g, map[string]bool{"a:1": false, "c:1": false}
		}},
		{"turned off ends it", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1")
			healthy(g, byID(t, g, "a:1"))
			g.Reconcile(cfgTargets("a:1", "c:1"), ssSettings(), gen.gen)
			healthy(g, byID(t, g, "c:1"))
			g.Reconcile(cfgTargets("a:1", "c:1"), settings(), gen.gen)
			return g, map[string]bool{"a:1": false, "c:1": false}
		}},
		{"health checks off: registered targets ramp at once", func(t *testing.T) (*Group, map[string]bool) {
			s := ssSettings()
			s.HealthChecks = false
			g, gen := newGroup(t, s, "a:1")
			g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), s, gen.gen)
			return g, map[string]bool{"a:1": false, "b:1": true, "c:1": true}
		}},
		{"health checks off: targets registered together do not count as peers", func(t *testing.T) (*Group, map[string]bool) {
			s := ssSettings()
			s.HealthChecks = false
			g, gen := newGroup(t, s, "a:1")
			g.Reconcile(cfgTargets("b:1", "c:1"), s, gen.gen) // a leaves as they come
			return g, map[string]bool{"b:1": false, "c:1": false}
		}},
		{"health checks turned off: unhealthy targets come into service", func(t *testing.T) (*Group, map[string]bool) {
			g, gen := newGroup(t, ssSettings(), "a:1", "b:1")
			healthy(g, g.View().Targets...)
			unhealthy(g, byID(t, g, "b:1"))
			s := ssSettings()
			s.HealthChecks = false
			g.Reconcile(cfgTargets("a:1", "b:1"), s, gen.gen)
			return g, map[string]bool{"a:1": false, "b:1": true}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, want := tc.run(t)
				wantSlowStart(t, g, want)
			})
		})
	}
}

func TestSlowStartLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, gen := newGroup(t, ssSettings(), "a:1", "b:1")
		healthy(g, g.View().Targets...)
		g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), ssSettings(), gen.gen)
		c := byID(t, g, "c:1")
		healthy(g, c)
		if !inSlowStart(g, c) {
			t.Fatalf("c:1 not in slow start after turning healthy")
		}

		// Deregistering ends it; registering again starts it once healthy.
		time.Sleep(ssDuration / 3)
		g.Reconcile(cfgTargets("a:1", "b:1"), ssSettings(), gen.gen)
		if inSlowStart(g, c) {
			t.Errorf("deregistered c:1 still in slow start")
		}
		g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), ssSettings(), gen.gen)
		c2 := byID(t, g, "c:1")
		if inSlowStart(g, c2) {
			t.Errorf("re-registered c:1 in slow start while initial")
		}
		healthy(g, c2)
		if !inSlowStart(g, c2) {
			t.Fatalf("re-registered c:1 not in slow start once healthy")
		}
		start := time.Now()

		// Unhealthy ends it; healthy again starts it again, from the start.
		time.Sleep(ssDuration / 2)
		w := c2.EffectiveWeight()
		unhealthy(g, c2)
		if inSlowStart(g, c2) {
			t.Errorf("unhealthy c:1 still in slow start")
		}
		time.Sleep(ssDuration)
		healthy(g, c2)
		if !inSlowStart(g, c2) {
			t.Fatalf("c:1 healthy again: not in slow start")
		}
		if got := c2.EffectiveWeight(); got >= w {
			t.Errorf("c:1 healthy again: effective weight %d, want below %d (the ramp starts over)", got, w)
		}
		if since := time.Since(start); since < ssDuration {
			t.Fatalf("test clock: %v since the first ramp began", since)
		}

		// The duration elapses: full weight, and the ramp timer stops.
		time.Sleep(ssDuration)
		synctest.Wait()
		if inSlowStart(g, c2) || c2.EffectiveWeight() != WeightUnit {
			t.Errorf("after the duration: in slow start %v, effective weight %d, want false, %d", inSlowStart(g, c2), c2.EffectiveWeight(), WeightUnit)
		}
		g.mu.Lock()
		armed := g.rampTimer != nil
		g.mu.Unlock()
		if armed {
			t.Errorf("ramp timer still armed with no target in slow start")
		}
	})
}

// TestSlowStartRamp checks the effective weight, view by view: linear from
// the middle of the first step to the full weight, one view per step.
func TestSlowStartRamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, gen := newGroup(t, ssSettings(), "a:1", "b:1")
		healthy(g, g.View().Targets...)
		ts := cfgTargets("a:1", "b:1", "c:1")
		ts[2].Weight = 10
		g.Reconcile(ts, ssSettings(), gen.gen)
		c := byID(t, g, "c:1")
		healthy(g, c)
		step := ssDuration / rampSteps
		for i := range rampSteps + 3 {
			f := min((float64(i)+0.5)/rampSteps, 1)
			want := int(10*WeightUnit*f + 0.5)
			if got := c.EffectiveWeight(); got != want {
				t.Errorf("step %d: effective weight %d, want %d", i, got, want)
			}
			v := g.View()
			time.Sleep(step)
			synctest.Wait()
			if rebuilt := g.View() != v; rebuilt != (i < rampSteps) {
				t.Errorf("step %d: view rebuilt %v, want %v", i, rebuilt, i < rampSteps)
			}
		}
	})
}

// TestSlowStartSticky checks that slow start leaves sessions alone: a
// ramping target serves the sessions stuck to it.
func TestSlowStartSticky(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, gen := newGroup(t, ssSettings(), "a:1")
		healthy(g, byID(t, g, "a:1"))
		g.Reconcile(cfgTargets("a:1", "c:1"), ssSettings(), gen.gen)
		c := byID(t, g, "c:1")
		healthy(g, c)
		if tg, sticky := g.View().Lookup("c:1"); tg != c || !sticky {
			t.Errorf("Lookup(c:1) while ramping: got %p, %v, want %p, true", tg, sticky, c)
		}
	})
}

// TestSlowStartTimers checks that the ramp's timer stops on Close and on
// Deregister, and that nothing rebuilds the view afterwards.
func TestSlowStartTimers(t *testing.T) {
	for _, stop := range []string{"Close", "Deregister", "slow start off"} {
		t.Run(stop, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, gen := newGroup(t, ssSettings(), "a:1")
				healthy(g, byID(t, g, "a:1"))
				g.Reconcile(cfgTargets("a:1", "c:1"), ssSettings(), gen.gen)
				healthy(g, byID(t, g, "c:1"))
				time.Sleep(ssDuration / 4)
				switch stop {
				case "Close":
					g.Close()
				case "Deregister":
					g.DeregisterAll()
				default:
					g.Reconcile(cfgTargets("a:1", "c:1"), settings(), gen.gen)
				}
				g.mu.Lock()
				armed := g.rampTimer != nil
				g.mu.Unlock()
				if armed {
					t.Errorf("ramp timer armed after %s", stop)
				}
				v := g.View()
				time.Sleep(2 * ssDuration)
				synctest.Wait()
				if g.View() != v {
					t.Errorf("view rebuilt after %s", stop)
				}
			})
		})
	}
}
