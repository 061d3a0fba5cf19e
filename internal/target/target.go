// Package target holds targets and target groups at run time: registration,
// health state, in-flight counts and deregistration (drain).
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
	Weight     int
	Generation uint64
	Conns      *upstream.Pool

	// Inflight is the number of requests sent and not yet answered in full.
	Inflight atomic.Int64

	health atomic.Pointer[Health]
	// Consecutive probe results, guarded by the owning group's mu.
	okRun, failRun int
}

// New returns a target in state initial (or unavailable when its group has
// no health checks).
func New(id string, weight int, gen uint64, checked bool) *Target {
	t := &Target{ID: id, Weight: weight, Generation: gen, Conns: upstream.NewPool(id, upstream.DefaultMaxIdle)}
	h := Health{State: Initial, Reason: ReasonInitialHealthChecking, Since: time.Now()}
	if !checked {
		h = Health{State: Unavailable, Reason: ReasonHealthCheckDisabled, Since: time.Now()}
	}
	t.health.Store(&h)
	return t
}

// Health returns the target's current health.
func (t *Target) Health() Health { return *t.health.Load() }

func (t *Target) setHealth(h Health) {
	h.Since = time.Now()
	t.health.Store(&h)
}

// inService reports whether a state counts toward a group's healthy targets.
func (s State) inService() bool { return s == Healthy || s == Unavailable }
