package target

// EventKind says what changed in a group.
type EventKind uint8

const (
	// Registered: a target joined the group (initial, or unavailable
	// when the group has no health checks).
	Registered EventKind = iota
	// Deregistered: a target left the group; it drains for the
	// deregistration delay.
	Deregistered
	// Removed: a deregistered target's delay ended (or its group
	// closed); it is unused and its connections are closed.
	Removed
	// HealthChanged: a target's health state changed (From holds the
	// state before).
	HealthChanged
	// WeightChanged: a target's configured weight changed.
	WeightChanged
	// DrainChanged: a target was drained at run time, or its drain ended.
	DrainChanged
	// AnomalyChanged: anomaly detection found a target anomalous, or
	// normal again.
	AnomalyChanged
	// DrainCompleted: a drained target's drain completed: no session came
	// for its idle window, or its deadline passed (keep_sessions), or it
	// began (immediate).
	DrainCompleted
)

var eventNames = [...]string{"registered", "deregistered", "removed", "health_changed", "weight_changed",
	"drain_changed", "anomaly_changed", "drain_completed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one change of a group's target, as Settings.Notify receives it:
// what changed, and the target's state after the change.
type Event struct {
	Kind   EventKind
	Group  string
	Target *Target
	// Health, Weight are the target's after the change (Checks its
	// health checks' say, which differs from Health while it is drained);
	// From is its state before a HealthChanged, Deregistered or Removed
	// (by its checks, while drained).
	Health Health
	Checks Health
	From   State
	Weight int
}
