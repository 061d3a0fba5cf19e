package target

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func passiveSettings(checks bool) Settings {
	s := settings()
	s.HealthChecks = checks
	s.Passive = Passive{Failures: 2, Ejection: 10 * time.Second, MaxEjection: 35 * time.Second, MaxEjectedPercent: 50}
	return s
}

// fail reports n failed requests on tg.
func fail(g *Group, tg *Target, n int) {
	for range n {
		g.Failed(tg, "the target reset the connection")
	}
}

func isEjected(tg *Target) bool {
	on, _ := tg.Ejected()
	return on
}

// TestPassiveEjectionLengths: an ejection lasts Ejection times the
// target's level, up to MaxEjection; the level falls by one for every
// Ejection spent in service; without health checks the target comes back
// when the time is over.
func TestPassiveEjectionLengths(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newGroup(t, passiveSettings(false), "a", "b")
		a := g.View().Targets[0]
		ejectFor := func(want time.Duration) {
			t.Helper()
			start := time.Now()
			fail(g, a, 2)
			if h := a.Health(); h.State != Unhealthy || h.Reason != ReasonPassiveFailures {
				t.Fatalf("after 2 failures: %s (%s); want unhealthy (%s)", h.State, h.Reason, ReasonPassiveFailures)
			}
			if _, until := a.Ejected(); until.Sub(start) != want {
				t.Fatalf("ejected for %v; want %v", until.Sub(start), want)
			}
			time.Sleep(want - time.Nanosecond)
			synctest.Wait()
			if !isEjected(a) {
				t.Fatalf("back before the %v ejection was over", want)
			}
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			if h := a.Health(); isEjected(a) || h.State != Unavailable {
				t.Fatalf("after the %v ejection: %s (%s); want unavailable", want, h.State, h.Reason)
			}
		}
		ejectFor(10 * time.Second)
		ejectFor(20 * time.Second) // again at once: twice as long
		ejectFor(30 * time.Second)
		ejectFor(35 * time.Second) // capped
		// 25 s in service take the level from 4 down to 2: the next is 30 s.
		time.Sleep(25 * time.Second)
		ejectFor(30 * time.Second)
		// A success between failures ends the run: no ejection.
		g.Failed(a, "x")
		g.Answered(a, 200)
		g.Failed(a, "x")
		if isEjected(a) {
			t.Errorf("ejected after two failures that a success separated")
		}
	})
}

// TestPassiveEjectionWaitsForChecks: with health checks on, an ejected
// target comes back once its ejection time is over and its latest check
// since the ejection passed, whichever is later; checks that fail
// unhealthy_threshold_count times meanwhile hand it to them.
func TestPassiveEjectionWaitsForChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newGroup(t, passiveSettings(true), "a", "b")
		healthy(g, g.View().Targets...)
		a := g.View().Targets[0]
		fail(g, a, 2)
		if !isEjected(a) {
			t.Fatal("not ejected after 2 failures")
		}
		g.Observe(a, ok) // within the ejection time
		if h := a.Health(); h.State != Unhealthy {
			t.Fatalf("a check passed during the ejection: %s; want unhealthy until it is over", h.State)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if h := a.Health(); h.State != Healthy {
			t.Fatalf("after the ejection time, its check having passed: %s (%s); want healthy", h.State, h.Reason)
		}

		// Ejected again; no check passes before the time is over.
		fail(g, a, 2)
		g.Observe(a, fail503)
		time.Sleep(time.Minute)
		synctest.Wait()
		if h := a.Health(); !isEjected(a) || h.State != Unhealthy || h.Reason != ReasonPassiveFailures {
			t.Fatalf("after the ejection time, its latest check failed: %s (%s); want still ejected", h.State, h.Reason)
		}
		g.Observe(a, ok)
		if h := a.Health(); h.State != Healthy || isEjected(a) {
			t.Fatalf("after a check passed: %s; want healthy", h.State)
		}

		// Ejected again; its checks fail the unhealthy threshold (2)
		// meanwhile: it is unhealthy for them, and needs the healthy
		// threshold (2) to come back.
		fail(g, a, 2)
		g.Observe(a, fail503)
		g.Observe(a, fail503)
		if h := a.Health(); isEjected(a) || h.State != Unhealthy || h.Reason != ReasonResponseCodeMismatch {
			t.Fatalf("two checks failed while ejected: %s (%s), ejected %t; want unhealthy for the checks", h.State, h.Reason, isEjected(a))
		}
		g.Observe(a, ok)
		if a.Health().State != Unhealthy {
			t.Fatal("back after one check; want the healthy threshold (2)")
		}
		g.Observe(a, ok)
		if a.Health().State != Healthy {
			t.Fatalf("after two checks: %s; want healthy", a.Health().State)
		}
	})
}

// TestPassiveEjectionCap: at most MaxEjectedPercent of the targets are out
// at once, at least one of two or more, none of one.
func TestPassiveEjectionCap(t *testing.T) {
	for _, c := range []struct{ targets, percent, want int }{
		{1, 50, 0}, {2, 50, 1}, {3, 50, 1}, {4, 50, 2}, {10, 10, 1}, {10, 0, 0}, {3, 100, 3}, {4, 1, 1},
	} {
		t.Run(fmt.Sprintf("%d targets at %d%%", c.targets, c.percent), func(t *testing.T) {
			s := passiveSettings(false)
			s.Passive.MaxEjectedPercent = c.percent
			var ids []string
			for i := range c.targets {
				ids = append(ids, fmt.Sprint("t", i))
			}
			g, _ := newGroup(t, s, ids...)
			for _, tg := range g.View().Targets {
				fail(g, tg, 2)
			}
			n := 0
			for _, tg := range g.View().Targets {
				if isEjected(tg) {
					n++
				}
			}
			if n != c.want {
				t.Errorf("%d ejected; want %d", n, c.want)
			}
		})
	}
}

// TestPassiveTarget5xx: a target's own 5xx counts only with Target5xx;
// deregistration and turning passive health off end an ejection.
func TestPassiveTarget5xx(t *testing.T) {
	s := passiveSettings(false)
	g, _ := newGroup(t, s, "a", "b")
	a := g.View().Targets[0]
	g.Answered(a, 503)
	g.Answered(a, 503)
	if isEjected(a) {
		t.Fatal("ejected by the target's own 5xx without Target5xx")
	}
	s.Passive.Target5xx = true
	g.Reconcile(cfgTargets("a", "b"), s, nil)
	g.Answered(a, 503)
	g.Answered(a, 503)
	if !isEjected(a) {
		t.Fatal("not ejected by two 5xx answers with Target5xx")
	}
	s.Passive = Passive{}
	g.Reconcile(cfgTargets("a", "b"), s, nil)
	if h := a.Health(); isEjected(a) || h.State != Unavailable {
		t.Errorf("passive health turned off: %s, ejected %t; want unavailable", h.State, isEjected(a))
	}
}

// BenchmarkAnswered is what passive health checking costs a request the
// target answered: one atomic load.
func BenchmarkAnswered(b *testing.B) {
	g := NewGroup("web", passiveSettings(false), discardLog())
	defer g.Close()
	g.Reconcile(cfgTargets("a", "b"), passiveSettings(false), (&seqGen{}).gen)
	a := g.View().Targets[0]
	b.ReportAllocs()
	for b.Loop() {
		g.Answered(a, 200)
	}
}
