package sticky

// Outcome is what became of a request's session, as metrics and access
// logs report it.
type Outcome uint8

const (
	// NotSticky: the group carries no session in a sealed value
	// (stickiness off, source_ip, hash).
	NotSticky Outcome = iota
	// Stuck: the request's session pinned its target (ALB's hit).
	Stuck
	// Started: the request carried no session of the group; a target
	// was picked and a session starts there.
	Started
	// Moved: the request's session named a target that could not serve
	// it (Reason says why); it moved, and the request carried
	// X-Latch-Session-Moved.
	Moved
	// Invalid: the request carried a value that is no live session of
	// the group (Reason says why); a new session starts.
	Invalid
)

var outcomeNames = [...]string{"none", "hit", "new", "moved", "invalid"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Reason says why a session moved (Moved) or did not hold (Invalid).
type Reason uint8

const (
	NoReason Reason = iota
	// Why a session moved.
	TargetUnhealthy     // its target failed its health checks
	TargetDraining      // its target is drained or deregistering
	TargetDeregistered  // its target was deregistered, or registered anew
	TargetConnectFailed // its target refused the connection
	Rebalanced          // idle, it moved to a target that joined (rebalance_idle_seconds)
	TargetFailed        // its target failed the request (reset, invalid response, timeout), retried elsewhere
	// Why a value is no session.
	BadValue      // undecodable: bad base64, URL-encoded, truncated
	BadKey        // sealed by a key not in the ring
	BadSeal       // failed authentication: tampered with
	OtherGroupKey // issued by another target group
	Stale         // past its duration
	NoSuchTarget  // names a target the group does not have
)

var reasonNames = [...]string{"", "unhealthy", "draining", "deregistered", "connect_failure", "rebalanced",
	"request_failed", "malformed", "unknown_key", "tampered", "other_group", "expired", "unknown_target"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// InvalidReason is the reason for a Miss other than Hit and NoCookie.
func (m Miss) InvalidReason() Reason {
	switch m {
	case Malformed:
		return BadValue
	case UnknownKey:
		return BadKey
	case Tampered:
		return BadSeal
	case OtherGroup:
		return OtherGroupKey
	case Expired:
		return Stale
	case UnknownTarget:
		return NoSuchTarget
	}
	return NoReason
}
