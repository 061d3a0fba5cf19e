package target

import (
	"math"
	"time"
)

// Slow start (slow_start.duration_seconds), with ALB's rules: a target
// enters slow start when the group considers it healthy (in service) and
// leaves it when the duration elapses or it leaves service (unhealthy,
// deregistered). It does not apply
//   - to targets already in service when slow start is turned on (only a
//     transition into service starts it);
//   - to targets registered in one Update into a group with no registered
//     targets (their first time in service);
//   - unless another target is in service and not in slow start. ALB states
//     this for new targets; latch applies it to every entry, since with no
//     target at full weight a ramp would only shift shares among ramping
//     targets.
//
// While in slow start a target's effective weight grows linearly from
// nearly nothing to its full weight. Views are immutable, so the group
// rebuilds its view every rampStep while any target ramps; each view uses
// the ramp's value in the middle of the step it serves, so that the share a
// target gets over a step is the linear ramp's average over it.

// rampSteps is how many views a ramp is divided into.
const rampSteps = 20

// minRampStep bounds how often a ramp rebuilds the view (and so the round
// robin sequence: about 150 ms at 1,000 ramping targets,
// BenchmarkNewPickerRamping).
const minRampStep = time.Second

// rampFloor is the smallest fraction of its weight a target in slow start
// gets. With rampSteps views the first already gets 1/40; the floor only
// matters for durations shorter than rampSteps*minRampStep.
const rampFloor = 1.0 / WeightUnit

// rampStep is how often the view is rebuilt while a target ramps.
func rampStep(d time.Duration) time.Duration { return max(d/rampSteps, minRampStep) }

// rampFactor returns the fraction of its weight t gets at now: 1 when t is
// not in slow start.
func (g *Group) rampFactor(t *Target, now time.Time) float64 {
	d := g.settings.SlowStart
	if t.slowStart.IsZero() || d <= 0 {
		return 1
	}
	f := float64(now.Sub(t.slowStart)+rampStep(d)/2) / float64(d)
	return math.Max(rampFloor, math.Min(f, 1))
}

// ramping reports whether t is in slow start at now.
func (g *Group) ramping(t *Target, now time.Time) bool {
	return !t.slowStart.IsZero() && now.Sub(t.slowStart) < g.settings.SlowStart
}

// fullPeer reports whether a target other than those in except is in
// service and not in slow start: the condition for slow start to apply.
func (g *Group) fullPeer(now time.Time, except func(*Target) bool) bool {
	for _, t := range g.active {
		if !except(t) && t.inService() && !g.ramping(t, now) {
			return true
		}
	}
	return false
}

// enterService applies the transition of t into service: slow start, if
// the rules allow it (fullPeer: see Group.fullPeer), and a fresh anomaly
// state.
func (g *Group) enterService(t *Target, now time.Time, fullPeer bool) {
	exempt := t.slowStartExempt
	t.slowStartExempt = false
	if !exempt {
		t.joined.Store(now.Unix())
	}
	t.slowStart = time.Time{}
	if g.settings.SlowStart > 0 && !exempt && fullPeer {
		t.slowStart = now
		g.log.Info("target in slow start", "target", t.ID, "duration", g.settings.SlowStart)
	}
	t.resetAnomaly()
}

// leaveService applies the transition of t out of service (unhealthy,
// initial again, draining): it ends slow start and anomaly mitigation.
func (g *Group) leaveService(t *Target) {
	t.slowStart = time.Time{}
	t.resetAnomaly()
}

// expireSlowStarts ends the slow starts whose duration has elapsed (all of
// them when slow start is off).
func (g *Group) expireSlowStarts(now time.Time) {
	for _, t := range g.active {
		if !g.ramping(t, now) {
			t.slowStart = time.Time{}
		}
	}
}
