package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/target"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// TargetRegistered: a target joined its group.
	TargetRegistered EventKind = iota
	// TargetDeregistered: a target left its group; it drains for the
	// deregistration delay.
	TargetDeregistered
	// TargetRemoved: a deregistered target's delay ended; it is gone.
	TargetRemoved
	// TargetHealth: a target's health state changed (From the state before).
	TargetHealth
	// TargetWeight: a target's configured weight changed.
	TargetWeight
	// TargetDrain: a target was drained at run time, or undrained.
	TargetDrain
	// TargetAnomaly: anomaly detection found a target anomalous, or normal
	// again.
	TargetAnomaly
	// ConfigApplied: a change was applied (Version is the new one).
	ConfigApplied
	// ConfigRefused: a change was refused (Err says why); nothing changed.
	ConfigRefused
	// DrainCompleted: a drained target's drain completed (keep_sessions:
	// no session came for its idle window, or its deadline passed;
	// immediate: at once). A waiter needs no poll.
	DrainCompleted
)

var eventNames = [...]string{"target_registered", "target_deregistered", "target_removed", "target_health",
	"target_weight", "target_drain", "target_anomaly", "config_applied", "config_refused", "drain_completed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one change of the running state, as subscribers receive them:
// health transitions, registrations, weights, drains, and changes applied
// or refused. Metrics, the dashboard and cluster mode follow latch through
// them.
type Event struct {
	Time time.Time
	Kind EventKind
	// The target's group and id, generation, health after the change (and
	// the state before), weight and drain (Target* kinds).
	Group      string
	Target     string
	Generation uint64
	Health     target.Health
	Checks     target.Health // the target's health checks' say, which differs from Health while it is drained
	From       target.State
	Weight     int
	Drained    bool
	// The running state's version and the change's source, and why it was
	// refused (Config* kinds).
	Version uint64
	Source  Source
	Err     error
}

var targetKinds = [...]EventKind{
	target.Registered:     TargetRegistered,
	target.Deregistered:   TargetDeregistered,
	target.Removed:        TargetRemoved,
	target.HealthChanged:  TargetHealth,
	target.WeightChanged:  TargetWeight,
	target.DrainChanged:   TargetDrain,
	target.AnomalyChanged: TargetAnomaly,
	target.DrainCompleted: DrainCompleted,
}

// notify is every group's target.Settings.Notify.
func (s *Server) notify(e target.Event) {
	kind := TargetHealth
	if int(e.Kind) < len(targetKinds) {
		kind = targetKinds[e.Kind]
	}
	s.events.publish(Event{Kind: kind, Group: e.Group, Target: e.Target.ID, Generation: e.Target.Generation,
		Health: e.Health, Checks: e.Checks, From: e.From, Weight: e.Weight, Drained: e.Target.Drained()})
}

// Subscription receives the server's events from the time it subscribed.
type Subscription struct {
	// C delivers the events in order. It is closed when the subscription
	// or the server ends.
	C       <-chan Event
	c       chan Event
	dropped atomic.Uint64
	ev      *events
}

// Dropped counts the events that found C full and were dropped: a
// subscriber that fell behind should read a Snapshot to catch up.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// Close ends the subscription.
func (sub *Subscription) Close() { sub.ev.remove(sub) }

// Subscribe returns a subscription to the server's events, buffering up
// to buffer of them. Events are never waited for: one that finds the
// buffer full is dropped and counted (Dropped).
func (s *Server) Subscribe(buffer int) *Subscription {
	return s.events.add(buffer)
}

// events fans the server's events out to its subscribers, without ever
// blocking the publisher (a group holding its lock, a change in progress).
type events struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

func (ev *events) add(buffer int) *Subscription {
	c := make(chan Event, buffer)
	sub := &Subscription{C: c, c: c, ev: ev}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.closed {
		close(c)
		return sub
	}
	if ev.subs == nil {
		ev.subs = map[*Subscription]struct{}{}
	}
	ev.subs[sub] = struct{}{}
	return sub
}

func (ev *events) remove(sub *Subscription) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if _, ok := ev.subs[sub]; ok {
		delete(ev.subs, sub)
		close(sub.c)
	}
}

func (ev *events) publish(e Event) {
	e.Time = time.Now()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for sub := range ev.subs {
		select {
		case sub.c <- e:
		default:
			sub.dropped.Add(1)
		}
	}
}

// close ends every subscription, and those made after.
func (ev *events) close() {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.closed = true
	for sub := range ev.subs {
		close(sub.c)
	}
	ev.subs = nil
}
