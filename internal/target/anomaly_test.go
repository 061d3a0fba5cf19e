package target

import (
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func amSettings() Settings {
	s := settings()
	s.AnomalyMitigation = true
	return s
}

// newAMGroup returns a group with anomaly mitigation on and the given
// targets healthy.
func newAMGroup(t *testing.T, ids ...string) (*Group, *seqGen) {
	t.Helper()
	g, gen := newGroup(t, amSettings(), ids...)
	healthy(g, g.View().Targets...)
	return g, gen
}

// flow simulates n requests spread over the view's routable targets in
// proportion to their effective weights (as a weighted picker would), each
// target failing the given fraction of its requests with a 500.
func flow(g *Group, n int, fail map[string]float64) {
	v := g.View()
	sum := 0
	for _, tg := range v.Routable {
		sum += tg.EffectiveWeight()
	}
	for _, tg := range v.Routable {
		req := int(math.Round(float64(n) * float64(tg.EffectiveWeight()) / float64(sum)))
		errs := int(math.Round(float64(req) * fail[tg.ID]))
		for i := range req {
			if i < errs {
				tg.Record(500)
			} else {
				tg.Record(200)
			}
		}
	}
}

// evaluation waits for the group's next anomaly evaluation.
func evaluation() {
	time.Sleep(anomalyInterval)
	synctest.Wait()
}

// anomalies describes every target's reported state and effective weight:
// "a:1=anomalous/mitigated/16 b:1=normal/-/64 ...".
func anomalies(g *Group) string {
	s := ""
	for i, tg := range g.View().Targets {
		result, mitigated := tg.Anomaly()
		m := "-"
		if mitigated {
			m = "mitigated"
		}
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%s/%s/%d", tg.ID, result, m, tg.EffectiveWeight())
	}
	return s
}

func timerArmed(g *Group, slot **time.Timer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return *slot != nil
}

func TestMedianWithout(t *testing.T) {
	for _, c := range []struct {
		sorted []float64
		r      float64
		want   float64
	}{
		{[]float64{0, 0, 0.3}, 0.3, 0},
		{[]float64{0, 0, 0.3}, 0, 0.15},
		{[]float64{0, 0.1, 0.2, 0.3}, 0.3, 0.1},
		{[]float64{0, 0.1, 0.2, 0.3}, 0, 0.2},
		{[]float64{0, 0.1, 0.2, 0.3}, 0.1, 0.2},
		{[]float64{0.1, 0.2, 0.3, 0.4, 0.5}, 0.3, 0.3},
		{[]float64{0.1, 0.2, 0.3, 0.4, 0.5}, 0.1, 0.35},
		{[]float64{0.2, 0.2, 0.2}, 0.2, 0.2},
	} {
		if got := medianWithout(c.sorted, c.r); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("medianWithout(%v, %v) = %v, want %v", c.sorted, c.r, got, c.want)
		}
	}
}

// TestAnomalyMitigationSteps follows one target failing 30% of its requests
// evaluation by evaluation: anomalous at the first evaluation that judges
// it, its weight halved at each one down to 1/64, the others untouched;
// then it recovers, and once its errors have left the window its weight
// doubles back at each evaluation.
func TestAnomalyMitigationSteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newAMGroup(t, "a:1", "b:1", "c:1", "d:1")
		a := byID(t, g, "a:1")
		const n = 20000
		bad := map[string]float64{"a:1": 0.3}

		flow(g, n, bad)
		evaluation() // takes the counters' baseline
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64 c:1=normal/-/64 d:1=normal/-/64"; got != want {
			t.Errorf("after the first evaluation: got %s, want %s", got, want)
		}
		for i, w := range []int{32, 16, 8, 4, 2, 1, 1, 1} {
			flow(g, n, bad)
			evaluation()
			want := fmt.Sprintf("a:1=anomalous/mitigated/%d b:1=normal/-/64 c:1=normal/-/64 d:1=normal/-/64", w)
			if got := anomalies(g); got != want {
				t.Fatalf("evaluation %d with a:1 failing: got %s, want %s", i+2, got, want)
			}
		}

		// Recovered: anomalous until its errors leave the window, then
		// mitigation eases, doubling the weight at each evaluation.
		var seen []int
		for range anomalyWindow + maxMitigation + 2 {
			flow(g, n, nil)
			evaluation()
			seen = append(seen, a.EffectiveWeight())
			result, mitigated := a.Anomaly()
			if w := a.EffectiveWeight(); mitigated != (w < WeightUnit) || result == "anomalous" && !mitigated {
				t.Errorf("recovering: result %s, mitigated %v with weight %d", result, mitigated, w)
			}
		}
		want := []int{1, 1, 1, 1, 2, 4, 8, 16, 32, 64, 64, 64, 64}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Errorf("weights while recovering: got %v, want %v", seen, want)
		}
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64 c:1=normal/-/64 d:1=normal/-/64"; got != want {
			t.Errorf("recovered: got %s, want %s", got, want)
		}
	})
}

// TestAnomalyFewTargets checks that nothing is judged or mitigated with
// fewer than 3 healthy targets, and that a group falling below 3 gives its
// mitigated targets their full weight back at once.
func TestAnomalyFewTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, gen := newAMGroup(t, "a:1", "b:1")
		bad := map[string]float64{"a:1": 1}
		for range 10 {
			flow(g, 20000, bad)
			evaluation()
		}
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64"; got != want {
			t.Errorf("2 healthy targets: got %s, want %s", got, want)
		}
		if timerArmed(g, &g.anomalyTimer) {
			t.Errorf("anomaly timer armed with 2 healthy targets")
		}

		g.Reconcile(cfgTargets("a:1", "b:1", "c:1", "d:1"), amSettings(), gen.gen)
		c, d := byID(t, g, "c:1"), byID(t, g, "d:1")
		healthy(g, c)
		if !timerArmed(g, &g.anomalyTimer) {
			t.Fatalf("anomaly timer not armed with 3 healthy targets")
		}
		healthy(g, d)
		for range 4 {
			flow(g, 20000, bad)
			evaluation()
		}
		if r, m := byID(t, g, "a:1").Anomaly(); r != "anomalous" || !m {
			t.Fatalf("a:1 failing every request among 4: got %s/%v, want anomalous/true", r, m)
		}
		unhealthy(g, c, d)
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64 c:1=normal/-/64 d:1=normal/-/64"; got != want {
			t.Errorf("down to 2 healthy targets: got %s, want %s", got, want)
		}
		if timerArmed(g, &g.anomalyTimer) {
			t.Errorf("anomaly timer armed with 2 healthy targets")
		}
	})
}

// TestAnomalyQuietTarget checks that a target with too few requests in the
// window is not judged, however bad its ratio, and that nothing is judged
// when fewer than 3 targets have enough requests.
func TestAnomalyQuietTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newAMGroup(t, "a:1", "b:1", "c:1", "d:1")
		ts := g.View().Targets
		send := func(tg *Target, n, errs int) {
			for i := range n {
				if i < errs {
					tg.Record(500)
				} else {
					tg.Record(200)
				}
			}
		}
		per := anomalyMinRequests/anomalyWindow - 1 // just short of judged
		for range 2 * anomalyWindow {
			send(ts[0], per, per) // every request fails
			send(ts[1], 1000, 0)
			send(ts[2], 1000, 0)
			send(ts[3], 1000, 0)
			evaluation()
		}
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64 c:1=normal/-/64 d:1=normal/-/64"; got != want {
			t.Errorf("a:1 quiet: got %s, want %s", got, want)
		}

		// Only 2 judged targets: a busy failing one is not compared either.
		for range 2 * anomalyWindow {
			send(ts[0], 1000, 500)
			send(ts[1], 1000, 0)
			send(ts[2], per, 0)
			send(ts[3], per, 0)
			evaluation()
		}
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64 c:1=normal/-/64 d:1=normal/-/64"; got != want {
			t.Errorf("2 targets judged: got %s, want %s", got, want)
		}

		// Enough requests everywhere: a:1 stands out.
		send(ts[2], 1000, 0)
		send(ts[3], 1000, 0)
		send(ts[0], 1000, 500)
		send(ts[1], 1000, 0)
		evaluation()
		if r, m := ts[0].Anomaly(); r != "anomalous" || !m {
			t.Errorf("a:1 judged: got %s/%v, want anomalous/true", r, m)
		}
	})
}

// TestAnomalyThreshold checks the rule: anomalous above both twice the
// median of the others and that median plus 5 points.
func TestAnomalyThreshold(t *testing.T) {
	for _, c := range []struct {
		rates []float64 // per target; the first is the one judged
		want  string
	}{
		{[]float64{0.04, 0, 0, 0}, "normal"},         // below 5 points
		{[]float64{0.06, 0, 0, 0}, "anomalous"},      // above 5 points, twice 0
		{[]float64{0.20, 0.12, 0.1, 0.11}, "normal"}, // 5 points above, not twice
		{[]float64{0.25, 0.12, 0.1, 0.11}, "anomalous"},
		{[]float64{0.3, 0.3, 0, 0}, "anomalous"}, // two bad among four: each stands out
		{[]float64{0.3, 0.3, 0.3, 0}, "normal"},  // three bad among four: the good one is the odd one
		{[]float64{0.3, 0.3, 0}, "normal"},       // two bad among three
	} {
		t.Run(fmt.Sprint(c.rates), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var names []string
				for i := range c.rates {
					names = append(names, fmt.Sprintf("t%d:1", i))
				}
				g, _ := newAMGroup(t, names...)
				evaluation() // baseline
				ts := g.View().Targets
				for i, tg := range ts {
					for j := range 1000 {
						if j < int(c.rates[i]*1000) {
							tg.Record(500)
						} else {
							tg.Record(200)
						}
					}
				}
				evaluation()
				if r, _ := ts[0].Anomaly(); r != c.want {
					t.Errorf("got %s, want %s (%s)", r, c.want, anomalies(g))
				}
			})
		})
	}
}

// TestAnomalyAtMostHalf checks that no more than half the healthy targets
// are mitigated at once, counting one still ramping back: a second and a
// third target failing while the first recovers get one slot between them,
// the worst first, and the other waits, reported anomalous but not
// mitigated, until the first is back at full weight.
func TestAnomalyAtMostHalf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newAMGroup(t, "a:1", "b:1", "c:1", "d:1")
		a, c, d := byID(t, g, "a:1"), byID(t, g, "c:1"), byID(t, g, "d:1")
		const n = 20000
		check := func(when string) {
			t.Helper()
			mitigated := 0
			for _, tg := range g.View().Targets {
				if _, m := tg.Anomaly(); m {
					mitigated++
				}
			}
			if mitigated > 2 {
				t.Fatalf("%s: %d of 4 targets mitigated: %s", when, mitigated, anomalies(g))
			}
		}
		evaluation()
		for range maxMitigation + 1 {
			flow(g, n, map[string]float64{"a:1": 0.3})
			evaluation()
			check("a:1 failing")
		}
		// a:1 recovers; once it is no longer anomalous, c:1 and d:1 fail.
		for i := 0; ; i++ {
			if r, _ := a.Anomaly(); r == "normal" {
				break
			}
			if i > anomalyWindow+1 {
				t.Fatalf("a:1 still anomalous after recovering: %s", anomalies(g))
			}
			flow(g, n, nil)
			evaluation()
		}
		waited := false
		for i := 0; ; i++ {
			flow(g, n, map[string]float64{"c:1": 0.3, "d:1": 0.4})
			evaluation()
			check("c:1 and d:1 failing")
			rc, mc := c.Anomaly()
			rd, md := d.Anomaly()
			if rc != "anomalous" || rd != "anomalous" || !md {
				t.Fatalf("evaluation %d: got %s, want c:1 and d:1 anomalous, d:1 (the worse) mitigated", i, anomalies(g))
			}
			if _, ma := a.Anomaly(); ma == mc {
				t.Fatalf("evaluation %d: got %s, want c:1 mitigated only once a:1 is not", i, anomalies(g))
			}
			if !mc {
				waited = true
				continue
			}
			break
		}
		if !waited {
			t.Errorf("c:1 was mitigated at once; want it to wait for a:1's slot")
		}
	})
}

// TestAnomalyOff checks that with mitigation off nothing is evaluated, and
// that turning it off ends mitigation at once.
func TestAnomalyOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, gen := newGroup(t, settings(), "a:1", "b:1", "c:1")
		healthy(g, g.View().Targets...)
		if timerArmed(g, &g.anomalyTimer) {
			t.Errorf("anomaly timer armed with mitigation off")
		}
		bad := map[string]float64{"a:1": 1}
		for range 5 {
			flow(g, 20000, bad)
			evaluation()
		}
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64 c:1=normal/-/64"; got != want {
			t.Errorf("mitigation off: got %s, want %s", got, want)
		}

		g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), amSettings(), gen.gen)
		for range 3 {
			flow(g, 20000, bad)
			evaluation()
		}
		if r, m := byID(t, g, "a:1").Anomaly(); r != "anomalous" || !m {
			t.Fatalf("mitigation on: a:1 got %s/%v, want anomalous/true", r, m)
		}
		if tg, sticky := g.View().Lookup("a:1"); tg == nil || !sticky {
			t.Errorf("Lookup(a:1) while mitigated: got %v, %v, want the target, true", tg, sticky)
		}

		g.Reconcile(cfgTargets("a:1", "b:1", "c:1"), settings(), gen.gen)
		if got, want := anomalies(g), "a:1=normal/-/64 b:1=normal/-/64 c:1=normal/-/64"; got != want {
			t.Errorf("mitigation turned off: got %s, want %s", got, want)
		}
		if timerArmed(g, &g.anomalyTimer) {
			t.Errorf("anomaly timer armed after mitigation was turned off")
		}
	})
}

// TestAnomalyTimerStops checks that Close and Deregister stop the anomaly
// timer and that no evaluation runs afterwards.
func TestAnomalyTimerStops(t *testing.T) {
	for _, stop := range []string{"Close", "Deregister"} {
		t.Run(stop, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, _ := newAMGroup(t, "a:1", "b:1", "c:1")
				targets := g.View().Targets
				for range 3 {
					flow(g, 20000, map[string]float64{"a:1": 1})
					evaluation()
				}
				// What the stop must undo: a:1 mitigated, the timer armed.
				if r, m := targets[0].Anomaly(); r != "anomalous" || !m {
					t.Fatalf("before %s: a:1 got %s/%v, want anomalous/true", stop, r, m)
				}
				if !timerArmed(g, &g.anomalyTimer) {
					t.Fatalf("before %s: anomaly timer not armed", stop)
				}
				if stop == "Close" {
					g.Close()
				} else {
					g.DeregisterAll()
				}
				if timerArmed(g, &g.anomalyTimer) {
					t.Errorf("anomaly timer armed after %s", stop)
				}
				v := g.View()
				for range 10 {
					targets[0].Record(500)
					evaluation()
				}
				if g.View() != v {
					t.Errorf("view rebuilt after %s", stop)
				}
				if r, m := targets[0].Anomaly(); r != "normal" || m {
					t.Errorf("a:1 after %s: got %s/%v, want normal/false", stop, r, m)
				}
			})
		})
	}
}

// TestRecordDoesNotAllocate keeps the request path's cost at atomic adds.
func TestRecordDoesNotAllocate(t *testing.T) {
	tg := New("10.0.0.1:80", 1, 1, true)
	defer tg.Conns.Close()
	if allocs := testing.AllocsPerRun(1000, func() {
		tg.Record(200)
		tg.Record(503)
		tg.RecordConnectFailure()
	}); allocs != 0 {
		t.Errorf("got %v allocations, want 0", allocs)
	}
	if req, errs, conns := tg.Outcomes(); req != 3003 || errs != 1001 || conns != 1001 {
		// AllocsPerRun runs f once more to warm up.
		t.Errorf("Outcomes: got %d, %d, %d, want 3003, 1001, 1001", req, errs, conns)
	}
}

func BenchmarkRecord(b *testing.B) {
	tg := New("10.0.0.1:80", 1, 1, true)
	defer tg.Conns.Close()
	b.Run("200", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tg.Record(200)
		}
	})
	b.Run("500", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tg.Record(500)
		}
	})
	b.Run("connect failure", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tg.RecordConnectFailure()
		}
	})
	b.Run("200 parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tg.Record(200)
			}
		})
	})
}
