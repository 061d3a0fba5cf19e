// Package target holds targets and target groups at run time: registration,
// weights, health state, in-flight counts, slow start, anomaly mitigation,
// passive health checking, drain and deregistration.
package target

import (
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/upstream"
)

// State is a target's health state, with ALB's names.
type State uint8

const (
	Initial     State = iota // registered, not yet passed a health check
	Healthy                  // passing health checks
	Unhealthy                // failing health checks
	Draining                 // deregistered, in-flight requests finishing
	Unused                   // deregistered and gone
	Unavailable              // health checks are off; routed as healthy
)

var stateNames = [...]string{"initial", "healthy", "unhealthy", "draining", "unused", "unavailable"}

func (s State) String() string { return stateNames[s] }

// ALB's reason codes (TargetHealth.Reason).
const (
	ReasonRegistrationInProgress  = "Elb.RegistrationInProgress"
	ReasonInitialHealthChecking   = "Elb.InitialHealthChecking"
	ReasonResponseCodeMismatch    = "Target.ResponseCodeMismatch"
	ReasonTimeout                 = "Target.Timeout"
	ReasonFailedHealthChecks      = "Target.FailedHealthChecks"
	ReasonInternalError           = "Elb.InternalError"
	ReasonNotRegistered           = "Target.NotRegistered"
	ReasonDeregistrationInProcess = "Target.DeregistrationInProgress"
	ReasonHealthCheckDisabled     = "Target.HealthCheckDisabled"
	// ReasonDrained is latch's own: the target was drained at run time
	// (it stays registered; ALB has no such state).
	ReasonDrained = "Latch.Drained"
)

// Health is a target's health as reported: the state, ALB's reason code
// and a description of the latest failure.
type Health struct {
	State       State
	Reason      string
	Description string
	Since       time.Time // when State was entered
}

// Target is one registered target. A target that is deregistered and
// registered again is a new Target with a new Generation, so that cookies
// issued for the old registration do not pin the new one.
type Target struct {
	ID         string // the address latch connects to, host:port
	Generation uint64
	Conns      *upstream.Pool

	// Inflight is the number of requests sent and not yet answered in full.
	Inflight atomic.Int64

	// Outcomes of requests, counted by Record and RecordConnectFailure for
	// anomaly detection. They only grow.
	requests, errors, connectFailures atomic.Uint64

	// health is what registration and health checks make of the target;
	// Health reports it, or draining while the target is drained.
	health atomic.Pointer[Health]
	// weight is the configured weight (1-1000), which a reload or the
	// admin API may change while requests read it.
	weight atomic.Int32
	// drain is set while the target is drained at run time (drain.go): it
	// stays registered and keeps being checked, but takes no new sessions.
	drain atomic.Pointer[drainState]
	// eff is the weight the balancing algorithms use, in WeightUnit units,
	// set by the owning group on every rebuild; 0 (a target no group
	// manages) means the configured weight.
	eff atomic.Int64
	// joined is when (Unix seconds) the target last came into service,
	// except its first time when registered with its group's founding
	// targets (0: never): what stickiness.rebalance_idle_seconds calls
	// joining the group.
	joined atomic.Int64
	// anomaly is what the last anomaly evaluation found, for reporting:
	// anomalousBit and mitigatedBit.
	anomaly atomic.Uint32
	// failedRun counts the requests that failed in a row, for passive
	// health checking (passive.go); ejectedUntil is when the target's
	// ejection time ends, unix nanoseconds, 0 when it is not ejected.
	failedRun    atomic.Int32
	ejectedUntil atomic.Int64
	// lastSession is when the target last served a sticky request, unix
	// nanoseconds (0: never); sessions counts the distinct sessions it
	// served (sessions.go), nil until its first.
	lastSession atomic.Int64
	// clusterClock, in cluster mode, is the time up to which every other
	// node has reported the sessions it saw on the target (unix
	// nanoseconds; 0: a lone latch): a drain completes no sooner, so that
	// no node moves a session another still serves (drain.go).
	clusterClock atomic.Int64
	sessions     atomic.Pointer[sessionSketch]

	// Guarded by the owning group's mu:
	okRun, failRun int // consecutive probe results
	// slowStart is when the target's slow start began; zero when it is not
	// in slow start.
	slowStart time.Time
	// slowStartExempt marks a target registered in one registration into an
	// empty group: it skips slow start the first time it is in service.
	slowStartExempt bool
	anom            anomalyState
	eject           ejection
}

// New returns a target in state initial (or unavailable when its group has
// no health checks).
func New(id string, weight int, gen uint64, checked bool) *Target {
	t := &Target{ID: id, Generation: gen, Conns: upstream.NewPool(id, upstream.DefaultMaxIdle)}
	t.weight.Store(int32(weight))
	h := Health{State: Initial, Reason: ReasonInitialHealthChecking, Since: time.Now()}
	if !checked {
		h = Health{State: Unavailable, Reason: ReasonHealthCheckDisabled, Since: time.Now()}
	}
	t.health.Store(&h)
	return t
}

// WeightUnit is how many units of EffectiveWeight make one unit of
// configured weight. Slow start and anomaly mitigation scale a weight down
// to 1/64 of itself (ALB's "negligible"), which this keeps an integer even
// for weight 1.
const WeightUnit = 64

// EffectiveWeight is the weight new picks follow, in WeightUnit units: the
// configured weight, scaled down while the target ramps up in slow start or
// while anomaly mitigation holds it back. It is at least 1. Sessions stuck
// to the target do not depend on it.
func (t *Target) EffectiveWeight() int {
	if e := t.eff.Load(); e > 0 {
		return int(e)
	}
	return t.Weight() * WeightUnit
}

// Weight is the target's configured weight, at least 1.
func (t *Target) Weight() int { return max(int(t.weight.Load()), 1) }

// Drained reports whether the target is drained at run time.
func (t *Target) Drained() bool { return t.drain.Load() != nil }

// Record counts a request the target answered with status: a 5xx counts as
// an error for anomaly detection. A failure after the request reached the
// target (reset, response timeout, invalid response) should be recorded as
// the 502 or 504 latch answers. It costs one or two atomic adds.
func (t *Target) Record(status int) {
	t.requests.Add(1)
	if status >= 500 {
		t.errors.Add(1)
	}
}

// RecordConnectFailure counts a request that could not connect to the
// target (it counts as a request and a failure for anomaly detection).
func (t *Target) RecordConnectFailure() {
	t.requests.Add(1)
	t.connectFailures.Add(1)
}

// Outcomes returns the counts Record and RecordConnectFailure have made:
// requests (connect failures included), 5xx answers and connect failures.
func (t *Target) Outcomes() (requests, errors, connectFailures uint64) {
	// Failures first: Record counts the request before the error, so every
	// failure read here has its request in the count read after it.
	errors, connectFailures = t.errors.Load(), t.connectFailures.Load()
	return t.requests.Load(), errors, connectFailures
}

// Anomaly reports the target as ALB's DescribeTargetHealth reports
// AnomalyDetection: result is "normal" or "anomalous" (the last
// evaluation's finding), mitigated says whether mitigation holds back its
// share of new requests (MitigationInEffect: it stays true while the target
// ramps back after recovering). Both are "normal", false unless the group
// has anomaly mitigation on and at least 3 healthy targets.
func (t *Target) Anomaly() (result string, mitigated bool) {
	a := t.anomaly.Load()
	result = "normal"
	if a&anomalousBit != 0 {
		result = "anomalous"
	}
	return result, a&mitigatedBit != 0
}

// Joined returns when (Unix seconds) the target last came into service
// other than with its group's founding registration (a latch start), or 0.
func (t *Target) Joined() int64 { return t.joined.Load() }

// Health returns the target's current health, as reported: a target
// drained at run time reads as draining (reason Latch.Drained) whatever its
// checks say.
func (t *Target) Health() Health {
	h := *t.health.Load()
	if d := t.drain.Load(); d != nil && h.State != Draining && h.State != Unused {
		return Health{State: Draining, Reason: ReasonDrained, Description: "Target drained at run time",
			Since: d.since}
	}
	return h
}

// Checks returns the target's health as its registration and health
// checks make it, drain aside: a drained target is still checked, and this
// is what the checks say (Health says draining).
func (t *Target) Checks() Health { return *t.health.Load() }

// state is the target's health state as its checks and registration make
// it, drain aside.
func (t *Target) state() State { return t.health.Load().State }

// inService reports whether the target counts toward its group's healthy
// targets and may take new requests: healthy (or unchecked) and not
// drained.
func (t *Target) inService() bool { return !t.Drained() && t.state().inService() }

func (t *Target) setHealth(h Health) {
	h.Since = time.Now()
	t.health.Store(&h)
}

// inService reports whether a state counts toward a group's healthy targets.
func (s State) inService() bool { return s == Healthy || s == Unavailable }
