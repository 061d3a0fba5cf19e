package target_test

import (
	"fmt"
	"log/slog"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/target"
)

// These tests drive a group with the real pickers and measure what each
// target received from its own counters (Target.Outcomes), as the request
// path reports it with Target.Record.

// testGroup is a group and the settings it is updated with.
type testGroup struct {
	*target.Group
	s target.Settings
}

func groupWith(t *testing.T, algorithm config.Algorithm, slowStart time.Duration, mitigation bool) testGroup {
	t.Helper()
	s := target.Settings{
		HealthChecks:        true,
		HealthyThreshold:    2,
		UnhealthyThreshold:  2,
		MinHealthyCount:     1,
		DeregistrationDelay: time.Hour,
		SlowStart:           slowStart,
		AnomalyMitigation:   mitigation,
		NewPicker:           func(ts []*target.Target) target.Picker { return balance.New(algorithm, ts) },
	}
	g := target.NewGroup("web", s, slog.New(slog.DiscardHandler))
	t.Cleanup(g.Close)
	return testGroup{g, s}
}

// register updates g to the targets ids, of weight 1.
func (g testGroup) register(ids ...string) {
	ts := make([]config.Target, len(ids))
	for i, id := range ids {
		ts[i] = config.Target{ID: id, Weight: 1}
	}
	g.Reconcile(ts, g.s, func(id string) uint64 { return 1 })
}

func (g testGroup) makeHealthy(ids ...string) {
	for _, id := range ids {
		tg, _ := g.View().Lookup(id)
		g.Observe(tg, target.Result{OK: true})
	}
}

// requests returns how many requests each target has recorded.
func requests(ts []*target.Target) []uint64 {
	out := make([]uint64, len(ts))
	for i, tg := range ts {
		out[i], _, _ = tg.Outcomes()
	}
	return out
}

// TestSlowStartRampMeasured adds a target to two healthy ones with slow
// start on and round robin, sends a stream of requests, and checks from the
// targets' counters that the new target's share follows the linear ramp,
// step by step, and is a full third once the duration has elapsed.
func TestSlowStartRampMeasured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 60 * time.Second
		step := d / target.RampSteps
		g := groupWith(t, config.RoundRobin, d, false)
		g.register("a:1", "b:1")
		g.makeHealthy("a:1", "b:1")
		g.register("a:1", "b:1", "c:1")
		g.makeHealthy("c:1")
		ts := g.View().Targets

		const perStep = 10000
		for i := range target.RampSteps + 4 {
			v := g.View()
			before := requests(ts)
			for range perStep {
				v.Picker.Pick(nil).Record(200)
			}
			after := requests(ts)
			n := make([]float64, len(ts))
			for j := range ts {
				n[j] = float64(after[j] - before[j])
			}
			// The ramp: c's weight relative to a's and b's, linear in time,
			// taken at the middle of each step.
			f := min((float64(i)+0.5)/target.RampSteps, 1)
			ratio := n[2] / ((n[0] + n[1]) / 2)
			share := n[2] / perStep
			t.Logf("t=%v: picks %v, c:1 at %.3f of a peer's weight (ramp %.3f), share %.4f", time.Duration(i)*step, n, ratio, f, share)
			if math.Abs(ratio-f) > 0.012 {
				t.Errorf("step %d: c:1 got %.3f of a peer's requests, want %.3f ± 0.012 (the linear ramp)", i, ratio, f)
			}
			if want := f / (2 + f); math.Abs(share-want) > 0.005 {
				t.Errorf("step %d: c:1 got %.4f of the requests, want %.4f ± 0.005", i, share, want)
			}
			if i >= target.RampSteps {
				for j := range ts {
					if math.Abs(n[j]-perStep/3.0) > 1 {
						t.Errorf("step %d, after the duration: %s got %v of %d requests, want a third", i, ts[j].ID, n[j], perStep)
					}
				}
			}
			time.Sleep(step)
			synctest.Wait()
		}
	})
}

// TestAnomalyMitigationMeasured runs weighted_random with anomaly mitigation
// over 4 healthy targets, one of which answers 500 to 30% of its requests:
// it is found anomalous within two evaluations, its share of new requests
// halves at each evaluation down to the floor while the others are left
// alone; once it stops failing, its share climbs back to a full quarter.
func TestAnomalyMitigationMeasured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := groupWith(t, config.WeightedRandom, 0, true)
		g.register("a:1", "b:1", "c:1", "d:1")
		g.makeHealthy("a:1", "b:1", "c:1", "d:1")
		ts := g.View().Targets
		bad := ts[0]

		const perInterval = 20000
		failing := true
		var answered uint64 // bad's requests so far: every 10, 3 fail while failing
		// interval sends a stream of requests through the current view and
		// waits for the next evaluation. It returns bad's share of the
		// stream and the weight the view gave it.
		interval := func() (share float64, weight int) {
			v := g.View()
			weight = bad.EffectiveWeight()
			before := requests(ts)
			for range perInterval {
				tg := v.Picker.Pick(nil)
				status := 200
				if tg == bad {
					if failing && answered%10 < 3 {
						status = 500
					}
					answered++
				}
				tg.Record(status)
			}
			after := requests(ts)
			time.Sleep(target.AnomalyInterval)
			synctest.Wait()
			return float64(after[0]-before[0]) / perInterval, weight
		}
		checkShare := func(when string, share float64, weight int) {
			t.Helper()
			p := float64(weight) / float64(weight+3*target.WeightUnit)
			if tol := 6 * math.Sqrt(p*(1-p)/perInterval); math.Abs(share-p) > tol {
				t.Errorf("%s: a:1 got %.4f of the requests at weight %d, want %.4f ± %.4f", when, share, weight, p, tol)
			}
		}
		checkOthers := func(when string) {
			t.Helper()
			for _, tg := range ts[1:] {
				if r, m := tg.Anomaly(); r != "normal" || m || tg.EffectiveWeight() != target.WeightUnit {
					t.Errorf("%s: %s is %s, mitigated %v, weight %d; want normal, false, %d", when, tg.ID, r, m, tg.EffectiveWeight(), target.WeightUnit)
				}
			}
		}

		interval() // the first evaluation takes the counters' baseline
		var weights []int
		for i := range target.MaxMitigation + 3 {
			share, w := interval()
			checkShare(fmt.Sprintf("failing, interval %d", i), share, w)
			checkOthers(fmt.Sprintf("failing, interval %d", i))
			weights = append(weights, w)
			t.Logf("failing: a:1 at weight %d got %.4f of the requests", w, share)
			if r, m := bad.Anomaly(); r != "anomalous" || !m {
				t.Fatalf("after evaluation %d: a:1 is %s, mitigated %v; want anomalous, true", i+2, r, m)
			}
		}
		if want := []int{64, 32, 16, 8, 4, 2, 1, 1, 1}; fmt.Sprint(weights) != fmt.Sprint(want) {
			t.Errorf("a:1's weight while failing: got %v, want %v (halved per evaluation down to 1/64)", weights, want)
		}

		failing = false
		weights = weights[:0]
		for i := 0; ; i++ {
			share, w := interval()
			checkShare(fmt.Sprintf("recovered, interval %d", i), share, w)
			checkOthers(fmt.Sprintf("recovered, interval %d", i))
			t.Logf("recovered: a:1 at weight %d got %.4f of the requests", w, share)
			if len(weights) > 0 && w < weights[len(weights)-1] {
				t.Errorf("recovered, interval %d: a:1's weight fell from %d to %d", i, weights[len(weights)-1], w)
			}
			weights = append(weights, w)
			if w == target.WeightUnit {
				break
			}
			if i > 16 {
				t.Fatalf("a:1 not back at full weight after %d evaluations: weights %v", i, weights)
			}
		}
		if r, m := bad.Anomaly(); r != "normal" || m {
			t.Errorf("recovered: a:1 is %s, mitigated %v; want normal, false", r, m)
		}
	})
}
