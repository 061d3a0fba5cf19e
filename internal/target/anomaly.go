package target

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sort"
	"time"
)

// Anomaly mitigation (load_balancing.algorithm.anomaly_mitigation = on, with
// weighted_random), ALB's Automatic Target Weights. ALB publishes the shape
// but not the numbers; latch's are these:
//
//   - Every anomalyInterval, while mitigation is on and at least
//     anomalyMinTargets targets are in service, the group takes each
//     in-service target's error ratio over the last anomalyWindow intervals:
//     (5xx answers + connect failures) / requests, from the counts of
//     Target.Record and Target.RecordConnectFailure.
//   - A target with fewer than anomalyMinRequests requests in the window is
//     not judged (a quiet target proves nothing either way), and the others
//     are judged only if at least anomalyMinTargets are.
//   - A judged target is anomalous when its ratio is above both twice the
//     median of the other judged targets' ratios and that median plus 5
//     percentage points. The relative test keeps a uniformly bad group (every
//     target at 20% because a shared database fails) from condemning its
//     slightly worse members; the absolute one keeps noise at a low baseline
//     (1 error in 200 against 0) from counting. With a median of 0, the
//     usual case, a target is anomalous above 5% errors. Chance alone rarely
//     gets there: in a group whose targets all fail 1% of requests, a target
//     judged on the minimum 100 requests exceeds the threshold (6 points
//     then) with probability 7*10^-5, on 500 requests under 10^-10. Measured
//     against the median of the others, no more than half the targets can
//     be anomalous at once.
//   - Mitigation halves an anomalous target's effective weight at every
//     evaluation it stays anomalous, down to 1/64 of its weight
//     (maxMitigation halvings: ALB's "negligible"); from full to the floor
//     takes 12 s. Once it is no longer anomalous (or no longer judged: the
//     evidence has aged out) the weight doubles back at every evaluation.
//     A mitigated target still gets a little traffic, so its recovery is
//     seen; where that traffic is below anomalyMinRequests it is not judged,
//     ramps back, and is judged again once it gets enough.
//   - At most half the in-service targets are mitigated at once (ALB's 50%),
//     counting those still ramping back; anomalous targets beyond that are
//     reported anomalous but not mitigated, worst first when a slot frees.
//   - Below anomalyMinTargets in-service targets there is nothing to compare:
//     every target goes back to its full weight at once.
//
// Mitigation changes only effective weights, so new picks: a sticky session
// stays on a mitigated target unless it turns unhealthy, as with ALB.
const anomalyInterval = 2 * time.Second // how often the group evaluates

const (
	anomalyWindow      = 5    // evaluations in the sliding window (10 s)
	anomalyMinRequests = 100  // requests in the window for a target to be judged
	anomalyMinTargets  = 3    // ALB detects anomalies with at least 3 healthy targets
	anomalyRelative    = 2.0  // anomalous above this times the others' median,
	anomalyAbsolute    = 0.05 // and above the others' median plus this
	maxMitigation      = 6    // halvings at most: down to 1/64 of the weight
)

// Target.anomaly bits.
const (
	anomalousBit = 1 << iota
	mitigatedBit
)

// anomalyState is a target's anomaly detection and mitigation state,
// guarded by the group's mu.
type anomalyState struct {
	armed            bool   // lastReq and lastErr are set
	lastReq, lastErr uint64 // the counters at the last evaluation
	window           [anomalyWindow]outcomes
	next             int   // the window slot to fill next
	level            uint8 // mitigation: the weight is divided by 2^level
}

type outcomes struct{ requests, failures uint64 }

func (t *Target) resetAnomaly() {
	t.anom = anomalyState{}
	t.anomaly.Store(0)
}

// mitigation is the fraction of its weight anomaly mitigation leaves t.
func (t *Target) mitigation() float64 { return 1 / float64(uint64(1)<<t.anom.level) }

// evaluate runs one anomaly evaluation over the in-service targets and
// reports whether an effective weight changed. g.mu is held.
func (g *Group) evaluate(in []*Target) (changed bool) {
	type judged struct {
		t     *Target
		ratio float64
	}
	var js []judged
	for _, t := range in {
		a := &t.anom
		req, errs, conns := t.Outcomes()
		fail := errs + conns
		if !a.armed {
			a.armed, a.lastReq, a.lastErr = true, req, fail
			continue
		}
		a.window[a.next] = outcomes{req - a.lastReq, fail - a.lastErr}
		a.next = (a.next + 1) % anomalyWindow
		a.lastReq, a.lastErr = req, fail
		var sum outcomes
		for _, o := range a.window {
			sum.requests += o.requests
			sum.failures += o.failures
		}
		if sum.requests >= anomalyMinRequests {
			js = append(js, judged{t, float64(sum.failures) / float64(sum.requests)})
		}
	}

	bad := map[*Target]float64{}
	if len(js) >= anomalyMinTargets {
		ratios := make([]float64, len(js))
		for i, j := range js {
			ratios[i] = j.ratio
		}
		slices.Sort(ratios)
		for _, j := range js {
			m := medianWithout(ratios, j.ratio)
			if j.ratio > max(anomalyRelative*m, m+anomalyAbsolute) {
				bad[j.t] = j.ratio
			}
		}
	}

	// Step the mitigated targets first, so that a target back at full weight
	// frees its slot for this evaluation's new ones.
	used := 0
	for _, t := range in {
		a := &t.anom
		if a.level > 0 {
			old := a.level
			if _, ok := bad[t]; ok {
				a.level = min(a.level+1, maxMitigation)
			} else {
				a.level--
			}
			changed = changed || a.level != old
			if a.level == 0 {
				g.log.Info("target anomaly mitigation ended", "target", t.ID)
			}
		}
		if a.level > 0 {
			used++
		}
	}
	var fresh []*Target
	for _, t := range in {
		if _, ok := bad[t]; ok && t.anom.level == 0 {
			fresh = append(fresh, t)
		}
	}
	// Worst first; ties in config order, so that runs are repeatable.
	slices.SortStableFunc(fresh, func(a, b *Target) int { return cmp.Compare(bad[b], bad[a]) })
	for _, t := range fresh {
		if used >= len(in)/2 {
			break
		}
		t.anom.level = 1
		used++
		changed = true
	}

	for _, t := range in {
		var bits uint32
		if _, ok := bad[t]; ok {
			bits |= anomalousBit
		}
		if t.anom.level > 0 {
			bits |= mitigatedBit
		}
		if old := t.anomaly.Swap(bits); old&anomalousBit != bits&anomalousBit {
			level := slog.LevelInfo
			if bits&anomalousBit != 0 {
				level = slog.LevelWarn
			}
			g.log.Log(context.Background(), level, "target anomaly detection changed", "target", t.ID,
				"anomalous", bits&anomalousBit != 0, "error_ratio", bad[t], "mitigated", bits&mitigatedBit != 0)
			g.notify(Event{Kind: AnomalyChanged, Target: t})
		}
	}
	return changed
}

// medianWithout returns the median of sorted without one occurrence of r,
// which it holds: the median of a target's peers.
func medianWithout(sorted []float64, r float64) float64 {
	skip := sort.SearchFloat64s(sorted, r)
	at := func(i int) float64 {
		if i >= skip {
			i++
		}
		return sorted[i]
	}
	n := len(sorted) - 1
	if n%2 == 1 {
		return at(n / 2)
	}
	return (at(n/2-1) + at(n/2)) / 2
}

// anomalyTick runs an evaluation and publishes its weights. g.mu is held.
func (g *Group) anomalyTick() {
	in := g.inService()
	if !g.detecting(len(in)) || g.evaluate(in) {
		g.rebuild(true) // resets the states, or publishes the new weights
		return
	}
	g.schedule(time.Now(), len(in))
	g.flush()
}
