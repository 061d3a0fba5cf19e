package target

import (
	"slices"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
)

// TestKeepSessionsDrain: a target drained with keep_sessions leaves new
// picks but keeps its sessions until no session came for the idle
// window, or until the deadline; the group notifies DrainCompleted once.
func TestKeepSessionsDrain(t *testing.T) {
	s, rec := recorded(settings())
	g, _ := newGroup(t, s, "a:1", "b:1")
	a, b := g.View().Targets[0], g.View().Targets[1]
	g.Observe(a, ok)
	g.Observe(b, ok)
	rec.take()
	now := time.Now()

	// Begun now, idle an hour: its sessions stay.
	g.SetDrain("a:1", &config.Drain{Idle: time.Hour})
	v := g.View()
	if got := ids(v.Routable); !slices.Equal(got, []string{"b:1"}) {
		t.Errorf("routable with a:1 draining: %v, want [b:1]", got)
	}
	if tg, sticky := v.Lookup("a:1"); tg != a || !sticky {
		t.Errorf("Lookup(a:1) draining, keeping sessions: %v, %v; want a:1, sticky", tg, sticky)
	}
	a.RecordSession(42, time.Now())
	d := a.Drain(time.Now())
	if d == nil || d.Complete || d.SessionsLeft != 1 || d.LastSession.IsZero() || d.Idle != time.Hour || !d.Deadline.IsZero() {
		t.Errorf("drain status: got %+v, want 1 session left, incomplete", d)
	}
	if got := rec.take(); !slices.Equal(got, []string{"drain_changed a:1"}) {
		t.Errorf("events: %v, want the drain's change only", got)
	}

	// Begun 2 s ago with a 1 s idle window and no session since: it is
	// complete, the group says so, and its sessions move.
	g.SetDrain("a:1", &config.Drain{Idle: time.Second, Since: now.Add(-2 * time.Second)})
	rec.wait(t, 2)
	if got := rec.take(); !slices.Equal(got, []string{"drain_changed a:1", "drain_completed a:1"}) {
		t.Errorf("events: %v, want the change and the completion", got)
	}
	if _, sticky := g.View().Lookup("a:1"); sticky {
		t.Errorf("Lookup(a:1) after its drain completed: sticky")
	}
	if d := a.Drain(time.Now()); d == nil || !d.Complete || d.CompletedAt.IsZero() || d.SessionsLeft != 0 {
		t.Errorf("completed drain status: %+v", d)
	}

	// A session every moment, but a deadline 1 s after a start 1.5 s ago:
	// complete.
	b.RecordSession(7, time.Now())
	g.SetDrain("b:1", &config.Drain{Idle: time.Second, Deadline: time.Second, Since: now.Add(-1500 * time.Millisecond)})
	if _, sticky := g.View().Lookup("b:1"); sticky {
		t.Errorf("Lookup(b:1) past its deadline: sticky")
	}
	rec.wait(t, 2)
	if got := rec.take(); !slices.Equal(got, []string{"drain_changed b:1", "drain_completed b:1"}) {
		t.Errorf("events: %v, want b's change and completion", got)
	}

	// The group's timer completes a drain when its window passes.
	g.SetDrain("a:1", nil)
	g.SetDrain("a:1", &config.Drain{Idle: time.Second})
	rec.take()
	start := time.Now()
	rec.wait(t, 1)
	if got := rec.take(); !slices.Equal(got, []string{"drain_completed a:1"}) {
		t.Errorf("events: %v, want a's completion", got)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("drain completed %v after it began, before its 1 s idle window", el)
	}
}
