package target

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
)

// recorder keeps the events a group sends to Settings.Notify.
type recorder struct {
	mu     sync.Mutex
	events []Event
	added  chan struct{} // a token when an event came
}

func (r *recorder) notify(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	select {
	case r.added <- struct{}{}:
	default:
	}
}

// wait waits until n events have come since the last take.
func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.events)
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.added:
		case <-timeout:
			t.Fatalf("%d events in 5 s, want %d", got, n)
		}
	}
}

// take returns the events since the last take, as "kind target" lines.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Kind.String()+" "+e.Target.ID)
	}
	r.events = nil
	return out
}

func recorded(s Settings) (Settings, *recorder) {
	r := &recorder{added: make(chan struct{}, 1)}
	s.Notify = r.notify
	return s, r
}

// TestRegisterDeregisterSetWeight: the group's parts of Reconcile change
// one registration at a time, keep the others as they are, and tell
// Notify each change.
func TestRegisterDeregisterSetWeight(t *testing.T) {
	s, rec := recorded(settings())
	g, gen := newGroup(t, s, "a:1", "b:1")
	if got, want := rec.take(), []string{"registered a:1", "registered b:1"}; !slices.Equal(got, want) {
		t.Errorf("events of the first registration: got %v, want %v", got, want)
	}
	a, b := g.View().Targets[0], g.View().Targets[1]

	g.Register([]config.Target{{ID: "c:1", Weight: 3}}, gen.gen)
	v := g.View()
	if got := ids(v.Targets); !slices.Equal(got, []string{"a:1", "b:1", "c:1"}) {
		t.Fatalf("after Register(c:1): targets %v", got)
	}
	c := v.Targets[2]
	if c.Weight() != 3 || c.Generation != 3 || v.Targets[0] != a || v.Targets[1] != b {
		t.Errorf("c:1 registered with weight %d, generation %d; a:1 and b:1 kept: %v", c.Weight(), c.Generation, v.Targets[0] == a && v.Targets[1] == b)
	}
	if got := rec.take(); !slices.Equal(got, []string{"registered c:1"}) {
		t.Errorf("events of Register: %v", got)
	}
	// Registering one already registered sets its weight: no new
	// registration, no generation asked for.
	g.Register([]config.Target{{ID: "a:1", Weight: 7}}, gen.gen)
	if g.View().Targets[0] != a || a.Weight() != 7 {
		t.Errorf("Register(a:1) again: a new target, or weight %d, want a:1 kept at weight 7", a.Weight())
	}
	if got := gen.asked(); !slices.Equal(got, []string{"a:1", "b:1", "c:1"}) {
		t.Errorf("generations asked for: %v", got)
	}
	if got := rec.take(); !slices.Equal(got, []string{"weight_changed a:1"}) {
		t.Errorf("events of Register again: %v", got)
	}

	if !g.SetWeight("b:1", 5) || b.Weight() != 5 || b.EffectiveWeight() != 5*WeightUnit {
		t.Errorf("SetWeight(b:1, 5): weight %d, effective %d", b.Weight(), b.EffectiveWeight())
	}
	if g.SetWeight("zz:1", 5) || g.SetDrain("zz:1", &config.Drain{Mode: config.DrainImmediate}) {
		t.Errorf("SetWeight or SetDrain of an unknown target reported it found")
	}
	if got := rec.take(); !slices.Equal(got, []string{"weight_changed b:1"}) {
		t.Errorf("events of SetWeight: %v", got)
	}

	g.Deregister("a:1", "zz:1")
	if got := ids(g.View().Targets); !slices.Equal(got, []string{"b:1", "c:1"}) {
		t.Errorf("after Deregister(a:1): targets %v", got)
	}
	if h := a.Health(); h.State != Draining || h.Reason != ReasonDeregistrationInProcess {
		t.Errorf("a:1 after Deregister: %v/%s, want draining", h.State, h.Reason)
	}
	if !g.View().Deregistered("a:1") || g.View().Deregistered("b:1") {
		t.Errorf("Deregistered(a:1), (b:1): %v, %v; want true, false", g.View().Deregistered("a:1"), g.View().Deregistered("b:1"))
	}
	if got := rec.take(); !slices.Equal(got, []string{"deregistered a:1"}) {
		t.Errorf("events of Deregister: %v", got)
	}
}

// TestRemovedEvent: a deregistered target's end, when its delay runs out,
// is an event too.
func TestRemovedEvent(t *testing.T) {
	s, rec := recorded(settings())
	s.DeregistrationDelay = 10 * time.Millisecond
	g, _ := newGroup(t, s, "a:1", "b:1")
	a := g.View().Targets[0]
	rec.take()
	g.Deregister("a:1")
	rec.wait(t, 2)
	if h := a.Health(); h.State != Unused {
		t.Errorf("a:1 %v after its removal, want unused", h.State)
	}
	got := rec.take()
	if !slices.Equal(got, []string{"deregistered a:1", "removed a:1"}) {
		t.Errorf("events: %v, want deregistered then removed", got)
	}
}

// TestSetDrain: a drained target stays registered and keeps its health
// state underneath, but reads as draining, takes no new requests, keeps no
// session, and is not in the fail-open set; undrained, it is back.
func TestSetDrain(t *testing.T) {
	s, rec := recorded(settings())
	g, _ := newGroup(t, s, "a:1", "b:1")
	a, b := g.View().Targets[0], g.View().Targets[1]
	g.Observe(a, ok)
	g.Observe(b, ok)
	rec.take()

	if !g.SetDrain("a:1", &config.Drain{Mode: config.DrainImmediate}) {
		t.Fatal("SetDrain(a:1) did not find a:1")
	}
	v := g.View()
	if h := a.Health(); h.State != Draining || h.Reason != ReasonDrained || !a.Drained() {
		t.Errorf("drained a:1 reads %v/%s (drained %v), want draining/%s", h.State, h.Reason, a.Drained(), ReasonDrained)
	}
	if got := ids(v.Targets); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Errorf("a drained target stays registered: targets %v", got)
	}
	if got := ids(v.Routable); !slices.Equal(got, []string{"b:1"}) {
		t.Errorf("routable with a:1 drained: %v, want [b:1]", got)
	}
	if tg, sticky := v.Lookup("a:1"); tg != a || sticky {
		t.Errorf("Lookup(a:1) drained: %v, %v; want a:1, not sticky (its sessions move)", tg, sticky)
	}
	// An immediate drain is complete when it begins.
	if got := rec.take(); !slices.Equal(got, []string{"drain_changed a:1", "drain_completed a:1"}) {
		t.Errorf("events of SetDrain: %v", got)
	}

	// Its checks go on: it turns unhealthy underneath, which its drain
	// hides, and healthy again.
	g.Observe(a, Result{Reason: ReasonTimeout})
	g.Observe(a, Result{Reason: ReasonTimeout})
	if st := a.state(); st != Unhealthy {
		t.Errorf("drained a:1's checks: state %v underneath, want unhealthy", st)
	}
	g.Observe(a, ok)
	g.Observe(a, ok)

	// b unhealthy too: the group fails open, but not onto the drained a.
	g.Observe(b, Result{Reason: ReasonTimeout})
	g.Observe(b, Result{Reason: ReasonTimeout})
	if v := g.View(); !v.FailOpen || !slices.Equal(ids(v.Routable), []string{"b:1"}) {
		t.Errorf("b unhealthy, a drained: fail-open %v, routable %v; want true, [b:1]", v.FailOpen, ids(v.Routable))
	}

	g.SetDrain("a:1", nil)
	if h := a.Health(); h.State != Healthy || a.Drained() {
		t.Errorf("undrained a:1 reads %v (drained %v), want healthy", h.State, a.Drained())
	}
	if v := g.View(); v.FailOpen || !slices.Equal(ids(v.Routable), []string{"a:1"}) {
		t.Errorf("a undrained: fail-open %v, routable %v; want false, [a:1]", v.FailOpen, ids(v.Routable))
	}
	if tg, sticky := g.View().Lookup("a:1"); tg != a || !sticky {
		t.Errorf("Lookup(a:1) undrained: %v, %v; want a:1, sticky", tg, sticky)
	}
}

// TestHealthEvents: every health transition is an event with the state
// before and after; a repeated result is none.
func TestHealthEvents(t *testing.T) {
	s, rec := recorded(settings())
	g, _ := newGroup(t, s, "a:1")
	a := g.View().Targets[0]
	rec.take()
	g.Observe(a, ok)
	g.Observe(a, ok)
	g.Observe(a, Result{Reason: ReasonTimeout})
	g.Observe(a, Result{Reason: ReasonTimeout})
	rec.mu.Lock()
	events := rec.events
	rec.mu.Unlock()
	var got []string
	for _, e := range events {
		got = append(got, e.Kind.String()+" "+e.From.String()+">"+e.Health.State.String())
	}
	want := []string{"health_changed initial>healthy", "health_changed healthy>unhealthy"}
	if !slices.Equal(got, want) {
		t.Errorf("events: %v, want %v", got, want)
	}
	if len(events) > 0 && (events[0].Group != "web" || events[0].Weight != 1) {
		t.Errorf("event: group %q weight %d, want web, 1", events[0].Group, events[0].Weight)
	}
}
