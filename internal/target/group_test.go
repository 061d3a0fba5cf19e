package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/upstream"
)

// firstPicker picks the first routable target that is not excluded.
type firstPicker struct{ targets []*Target }

func (p firstPicker) Pick(exclude *Target) *Target {
	for _, t := range p.targets {
		if t != exclude {
			return t
		}
	}
	return exclude
}

func newFirstPicker(ts []*Target) Picker { return firstPicker{ts} }

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// settings returns health-checked settings with ALB's default thresholds
// for fail-open (at least one healthy target) and a long drain.
func settings() Settings {
	return Settings{
		HealthChecks:        true,
		HealthyThreshold:    2,
		UnhealthyThreshold:  2,
		MinHealthyCount:     1,
		DeregistrationDelay: time.Hour,
		NewPicker:           newFirstPicker,
	}
}

// seqGen hands out generations 1, 2, 3... and records the ids asked for.
type seqGen struct {
	mu   sync.Mutex
	next uint64
	ids  []string
}

func (g *seqGen) gen(id string) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.next++
	g.ids = append(g.ids, id)
	return g.next
}

func (g *seqGen) asked() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.ids)
}

func cfgTargets(ids ...string) []config.Target {
	out := make([]config.Target, len(ids))
	for i, id := range ids {
		out[i] = config.Target{ID: id, Weight: 1}
	}
	return out
}

// newGroup returns a group with the given targets registered.
func newGroup(t *testing.T, s Settings, ids ...string) (*Group, *seqGen) {
	t.Helper()
	g := NewGroup("web", s, discardLog())
	t.Cleanup(g.Close)
	gen := &seqGen{}
	g.Reconcile(cfgTargets(ids...), s, gen.gen)
	return g, gen
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(ts []*Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

var (
	ok       = Result{OK: true}
	fail503  = Result{Reason: ReasonResponseCodeMismatch, Description: "Health checks failed with these codes: [503]"}
	fail500  = Result{Reason: ReasonResponseCodeMismatch, Description: "Health checks failed with these codes: [500]"}
	timeout  = Result{Reason: ReasonTimeout, Description: "Request timed out"}
	refused  = Result{Reason: ReasonFailedHealthChecks, Description: "Health checks failed: dial tcp 10.0.0.1:80: connect: connection refused"}
	resultOf = map[string]Result{"ok": ok, "503": fail503, "500": fail500, "timeout": timeout, "refused": refused}
)

func TestStateNames(t *testing.T) {
	for s, want := range map[State]string{
		Initial: "initial", Healthy: "healthy", Unhealthy: "unhealthy",
		Draining: "draining", Unused: "unused", Unavailable: "unavailable",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestNewTarget(t *testing.T) {
	before := time.Now()
	for _, tc := range []struct {
		checked    bool
		wantState  State
		wantReason string
	}{
		{true, Initial, ReasonInitialHealthChecking},
		{false, Unavailable, ReasonHealthCheckDisabled},
	} {
		tg := New("10.0.0.1:80", 3, 7, tc.checked)
		h := tg.Health()
		if h.State != tc.wantState || h.Reason != tc.wantReason || h.Description != "" {
			t.Errorf("New(checked=%v): got %v/%q/%q, want %v/%q/\"\"", tc.checked, h.State, h.Reason, h.Description, tc.wantState, tc.wantReason)
		}
		if h.Since.Before(before) {
			t.Errorf("New(checked=%v): Since = %v, want at or after %v", tc.checked, h.Since, before)
		}
		if tg.ID != "10.0.0.1:80" || tg.Weight() != 3 || tg.Generation != 7 {
			t.Errorf("New: got id %q weight %d generation %d, want 10.0.0.1:80, 3, 7", tg.ID, tg.Weight(), tg.Generation)
		}
		if tg.Conns == nil {
			t.Errorf("New(checked=%v): Conns is nil", tc.checked)
		}
		tg.Conns.Close()
	}
}

func TestObserveStateMachine(t *testing.T) {
	tests := []struct {
		name      string
		healthy   int // HealthyThreshold
		unhealthy int // UnhealthyThreshold
		seq       []string
		wantState State
		wantRsn   string
		wantDesc  string
	}{
		{"no results", 5, 2, nil, Initial, ReasonInitialHealthChecking, ""},
		{"one success leaves initial", 5, 2, []string{"ok"}, Healthy, "", ""},
		{"one success leaves initial after failures", 5, 3, []string{"503", "503", "ok"}, Healthy, "", ""},
		{"failures below threshold stay initial", 2, 3, []string{"503", "503"}, Initial, ReasonInitialHealthChecking, ""},
		{"initial to unhealthy at threshold", 2, 2, []string{"503", "503"}, Unhealthy, ReasonResponseCodeMismatch, fail503.Description},
		{"initial to unhealthy at threshold 3", 2, 3, []string{"timeout", "timeout", "timeout"}, Unhealthy, ReasonTimeout, "Request timed out"},
		{"initial failure run reset by success", 2, 2, []string{"503", "ok", "503"}, Healthy, "", ""},
		{"healthy stays healthy below threshold", 2, 3, []string{"ok", "503", "503"}, Healthy, "", ""},
		{"healthy to unhealthy at threshold", 2, 3, []string{"ok", "503", "503", "503"}, Unhealthy, ReasonResponseCodeMismatch, fail503.Description},
		{"healthy failure run reset by success", 2, 2, []string{"ok", "503", "ok", "503", "ok", "503"}, Healthy, "", ""},
		{"reason of the last failure", 2, 2, []string{"ok", "503", "timeout"}, Unhealthy, ReasonTimeout, "Request timed out"},
		{"unhealthy stays below healthy threshold", 3, 2, []string{"ok", "503", "503", "ok", "ok"}, Unhealthy, ReasonResponseCodeMismatch, fail503.Description},
		{"unhealthy to healthy at threshold", 3, 2, []string{"ok", "503", "503", "ok", "ok", "ok"}, Healthy, "", ""},
		{"unhealthy success run reset by failure", 2, 2, []string{"ok", "503", "503", "ok", "503", "ok"}, Unhealthy, ReasonResponseCodeMismatch, fail503.Description},
		{"unhealthy success run reset, then recovers", 2, 2, []string{"ok", "503", "503", "ok", "503", "ok", "ok"}, Healthy, "", ""},
		{"initial unhealthy recovers at healthy threshold", 2, 2, []string{"503", "503", "ok"}, Unhealthy, ReasonResponseCodeMismatch, fail503.Description},
		{"initial unhealthy recovered", 2, 2, []string{"503", "503", "ok", "ok"}, Healthy, "", ""},
		{"unhealthy reason updates", 2, 2, []string{"503", "503", "timeout"}, Unhealthy, ReasonTimeout, "Request timed out"},
		{"unhealthy reason updates twice", 2, 2, []string{"503", "503", "timeout", "refused"}, Unhealthy, ReasonFailedHealthChecks, refused.Description},
		{"unhealthy description updates with same reason", 2, 2, []string{"503", "503", "500"}, Unhealthy, ReasonResponseCodeMismatch, fail500.Description},
		{"unhealthy after a success keeps updating", 2, 2, []string{"503", "503", "ok", "500"}, Unhealthy, ReasonResponseCodeMismatch, fail500.Description},
		{"healthy again clears reason", 2, 2, []string{"503", "503", "ok", "ok", "503"}, Healthy, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := settings()
			s.HealthyThreshold, s.UnhealthyThreshold = tc.healthy, tc.unhealthy
			g, _ := newGroup(t, s, "a:1")
			tg := g.View().Targets[0]
			for _, r := range tc.seq {
				g.Observe(tg, resultOf[r])
			}
			h := tg.Health()
			if h.State != tc.wantState || h.Reason != tc.wantRsn || h.Description != tc.wantDesc {
				t.Errorf("after %v: got %v/%q/%q, want %v/%q/%q", tc.seq, h.State, h.Reason, h.Description, tc.wantState, tc.wantRsn, tc.wantDesc)
			}
		})
	}
}

func TestObserveSinceAndViews(t *testing.T) {
	g, _ := newGroup(t, settings(), "a:1", "b:1")
	a := g.View().Targets[0]

	v0 := g.View()
	g.Observe(a, fail503) // below threshold: no change
	if g.View() != v0 {
		t.Errorf("a failure below the threshold published a new view")
	}
	g.Observe(a, fail503) // initial -> unhealthy
	v1 := g.View()
	if v1 == v0 {
		t.Fatalf("initial -> unhealthy did not publish a new view")
	}
	since := a.Health().Since

	g.Observe(a, timeout) // unhealthy, new reason: same state, same Since
	if h := a.Health(); h.Since != since || h.Reason != ReasonTimeout {
		t.Errorf("reason change: got Since %v reason %q, want Since %v reason %q", h.Since, h.Reason, since, ReasonTimeout)
	}
	g.Observe(a, fail500) // same reason as neither, new description
	if h := a.Health(); h.Since != since {
		t.Errorf("description change: got Since %v, want %v", h.Since, since)
	}

	g.Observe(a, ok)
	if g.View() != v1 {
		t.Errorf("one success while unhealthy (threshold 2) published a new view")
	}
	g.Observe(a, ok) // unhealthy -> healthy
	if g.View() == v1 {
		t.Errorf("unhealthy -> healthy did not publish a new view")
	}
	if h := a.Health(); !h.Since.After(since) {
		t.Errorf("state change: got Since %v, want after %v", h.Since, since)
	}
	if _, routable := g.View().Lookup("a:1"); !routable {
		t.Errorf("healthy target a:1 not routable in the new view")
	}
}

func TestObserveIgnored(t *testing.T) {
	t.Run("health checks off", func(t *testing.T) {
		s := settings()
		s.HealthChecks = false
		g, _ := newGroup(t, s, "a:1")
		tg := g.View().Targets[0]
		v := g.View()
		for _, r := range []Result{fail503, fail503, fail503, ok} {
			g.Observe(tg, r)
		}
		if h := tg.Health(); h.State != Unavailable || h.Reason != ReasonHealthCheckDisabled {
			t.Errorf("got %v/%q, want unavailable/%q", h.State, h.Reason, ReasonHealthCheckDisabled)
		}
		if g.View() != v {
			t.Errorf("Observe published a new view with health checks off")
		}
	})
	t.Run("draining and unused", func(t *testing.T) {
		g, _ := newGroup(t, settings(), "a:1", "b:1")
		a, b := g.View().Targets[0], g.View().Targets[1]
		g.Reconcile(cfgTargets("b:1"), settings(), (&seqGen{}).gen)
		for _, r := range []Result{ok, fail503, fail503, fail503} {
			g.Observe(a, r)
		}
		if h := a.Health(); h.State != Draining || h.Reason != ReasonDeregistrationInProcess {
			t.Errorf("draining target after Observe: got %v/%q, want draining/%q", h.State, h.Reason, ReasonDeregistrationInProcess)
		}
		g.Close()
		for _, r := range []Result{ok, fail503, fail503, fail503} {
			g.Observe(a, r)
			g.Observe(b, r)
		}
		for _, tg := range []*Target{a, b} {
			if h := tg.Health(); h.State != Unused || h.Reason != ReasonNotRegistered {
				t.Errorf("%s after Close and Observe: got %v/%q, want unused/%q", tg.ID, h.State, h.Reason, ReasonNotRegistered)
			}
		}
	})
}

// setStates drives the targets of g into the given states with Observe
// ('h' healthy, 'u' unhealthy, 'i' left initial).
func setStates(t *testing.T, g *Group, states string) {
	t.Helper()
	targets := g.View().Targets
	if len(targets) != len(states) {
		t.Fatalf("setStates: %d targets, %d states", len(targets), len(states))
	}
	for i, c := range states {
		switch c {
		case 'h':
			g.Observe(targets[i], ok)
		case 'u':
			for range g.settings.UnhealthyThreshold {
				g.Observe(targets[i], fail503)
			}
		case 'i':
		default:
			t.Fatalf("setStates: unknown state %q", c)
		}
	}
}

func TestViewFailOpen(t *testing.T) {
	tests := []struct {
		name         string
		states       string // per target: h, u or i
		checksOff    bool
		minCount     int
		minPercent   int
		wantFailOpen bool
		wantRoutable string // per target: r routable, - not
	}{
		{"all healthy", "hhhh", false, 1, 0, false, "rrrr"},
		{"one healthy is enough", "uhuu", false, 1, 0, false, "-r--"},
		{"all unhealthy routes to all", "uuuu", false, 1, 0, true, "rrrr"},
		{"all initial routes to all", "iii", false, 1, 0, true, "rrr"},
		{"initial does not count as healthy", "hii", false, 2, 0, true, "rrr"},
		{"below count", "hhuu", false, 3, 0, true, "rrrr"},
		{"at count", "hhhu", false, 3, 0, false, "rrr-"},
		{"count capped at targets, all healthy", "hh", false, 5, 0, false, "rr"},
		{"count capped at targets, one unhealthy", "hu", false, 5, 0, true, "rr"},
		{"count 0 never fails open", "uu", false, 0, 0, false, "--"},
		{"at percent", "hhuu", false, 1, 50, false, "rr--"},
		{"below percent", "hhuu", false, 1, 51, true, "rrrr"},
		{"percent rounds up: 1 of 3 below 34%", "huu", false, 1, 34, true, "rrr"},
		{"percent: 1 of 3 meets 33%", "huu", false, 1, 33, false, "r--"},
		{"percent 100 with one unhealthy", "hhhu", false, 1, 100, true, "rrrr"},
		{"percent met, count not", "hhuu", false, 3, 50, true, "rrrr"},
		{"count met, percent not", "hhuu", false, 2, 75, true, "rrrr"},
		{"health checks off: unavailable is routable", "iii", true, 1, 0, false, "rrr"},
		{"health checks off: 100 percent", "iii", true, 3, 100, false, "rrr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := settings()
			s.MinHealthyCount, s.MinHealthyPercent = tc.minCount, tc.minPercent
			s.HealthChecks = !tc.checksOff
			var names []string
			for i := range tc.states {
				names = append(names, fmt.Sprintf("10.0.0.%d:80", i+1))
			}
			g, _ := newGroup(t, s, names...)
			setStates(t, g, tc.states)
			v := g.View()

			if got := ids(v.Targets); !slices.Equal(got, names) {
				t.Errorf("Targets: got %v, want %v", got, names)
			}
			if v.FailOpen != tc.wantFailOpen {
				t.Errorf("FailOpen: got %v, want %v", v.FailOpen, tc.wantFailOpen)
			}
			var wantRoutable []string
			for i, c := range tc.wantRoutable {
				if c == 'r' {
					wantRoutable = append(wantRoutable, names[i])
				}
			}
			if got := ids(v.Routable); !slices.Equal(got, wantRoutable) {
				t.Errorf("Routable: got %v, want %v", got, wantRoutable)
			}
			for i, c := range tc.wantRoutable {
				got, routable := v.Lookup(names[i])
				if got != v.Targets[i] {
					t.Errorf("Lookup(%s): got target %p, want %p", names[i], got, v.Targets[i])
				}
				if routable != (c == 'r') {
					t.Errorf("Lookup(%s): got routable %v, want %v", names[i], routable, c == 'r')
				}
			}
			if got, want := v.Picker != nil, len(wantRoutable) > 0; got != want {
				t.Errorf("Picker != nil: got %v, want %v", got, want)
			}
			if v.Picker != nil {
				if p := v.Picker.Pick(nil); p == nil || !slices.Contains(v.Routable, p) {
					t.Errorf("Picker.Pick(nil) = %v, want one of %v", p, ids(v.Routable))
				}
			}
		})
	}
}

func TestEmptyGroup(t *testing.T) {
	check := func(t *testing.T, v *View) {
		t.Helper()
		if len(v.Targets) != 0 || len(v.Routable) != 0 {
			t.Errorf("got %d targets, %d routable, want 0, 0", len(v.Targets), len(v.Routable))
		}
		if v.Picker != nil {
			t.Errorf("got Picker %v, want nil", v.Picker)
		}
		if v.FailOpen {
			t.Errorf("got FailOpen true, want false")
		}
		if tg, routable := v.Lookup("10.0.0.1:80"); tg != nil || routable {
			t.Errorf("Lookup: got %v, %v, want nil, false", tg, routable)
		}
	}
	t.Run("new", func(t *testing.T) {
		g := NewGroup("web", settings(), discardLog())
		t.Cleanup(g.Close)
		if g.View() == nil {
			t.Fatal("View() of a new group is nil")
		}
		check(t, g.View())
		if d := g.Draining(); len(d) != 0 {
			t.Errorf("Draining: got %v, want none", ids(d))
		}
	})
	t.Run("all removed", func(t *testing.T) {
		g, gen := newGroup(t, settings(), "10.0.0.1:80")
		g.Reconcile(nil, settings(), gen.gen)
		check(t, g.View())
	})
	t.Run("nil NewPicker", func(t *testing.T) {
		s := settings()
		s.NewPicker = nil
		g, _ := newGroup(t, s, "10.0.0.1:80")
		if v := g.View(); len(v.Routable) != 1 || v.Picker != nil {
			t.Errorf("got %d routable and picker %v, want 1 and nil", len(v.Routable), v.Picker)
		}
	})
}

func TestUpdateKeepAddRemove(t *testing.T) {
	var pickerWeights [][]int // weights seen by NewPicker, at the time it ran
	s := settings()
	s.NewPicker = func(ts []*Target) Picker {
		w := make([]int, len(ts))
		for i, t := range ts {
			w[i] = t.Weight()
		}
		pickerWeights = append(pickerWeights, w)
		return firstPicker{ts}
	}
	g, gen := newGroup(t, s, "a:1", "b:1")
	if got, want := gen.asked(), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
		t.Fatalf("generations asked for: got %v, want %v", got, want)
	}
	v := g.View()
	a, b := v.Targets[0], v.Targets[1]
	if a.Generation != 1 || b.Generation != 2 {
		t.Errorf("generations: got %d, %d, want 1, 2", a.Generation, b.Generation)
	}
	g.Observe(b, ok) // b healthy, a initial

	g.Reconcile([]config.Target{{ID: "c:1", Weight: 1}, {ID: "b:1", Weight: 5}}, s, gen.gen)
	v = g.View()
	if got, want := ids(v.Targets), []string{"c:1", "b:1"}; !slices.Equal(got, want) {
		t.Fatalf("Targets after update: got %v, want %v", got, want)
	}
	c := v.Targets[0]
	if v.Targets[1] != b {
		t.Errorf("b:1 is a new *Target, want the same one kept")
	}
	if b.Generation != 2 {
		t.Errorf("b:1 generation: got %d, want 2", b.Generation)
	}
	if b.Weight() != 5 {
		t.Errorf("b:1 weight: got %d, want 5", b.Weight())
	}
	if h := b.Health(); h.State != Healthy {
		t.Errorf("b:1 state: got %v, want healthy (kept)", h.State)
	}
	if c.Generation != 3 {
		t.Errorf("c:1 generation: got %d, want 3", c.Generation)
	}
	if h := c.Health(); h.State != Initial || h.Reason != ReasonInitialHealthChecking {
		t.Errorf("c:1 health: got %v/%q, want initial/%q", h.State, h.Reason, ReasonInitialHealthChecking)
	}
	if got, want := gen.asked(), []string{"a:1", "b:1", "c:1"}; !slices.Equal(got, want) {
		t.Errorf("generations asked for: got %v, want %v (none for kept targets)", got, want)
	}
	if got := pickerWeights[len(pickerWeights)-1]; !slices.Equal(got, []int{5}) {
		t.Errorf("weights seen by the picker over the routable b:1: got %v, want [5]", got)
	}

	// a is draining: out of the view, listed by Draining, pool still open.
	if h := a.Health(); h.State != Draining || h.Reason != ReasonDeregistrationInProcess {
		t.Errorf("a:1 health: got %v/%q, want draining/%q", h.State, h.Reason, ReasonDeregistrationInProcess)
	}
	if tg, routable := v.Lookup("a:1"); tg != nil || routable {
		t.Errorf("Lookup(a:1): got %v, %v, want nil, false", tg, routable)
	}
	if got := g.Draining(); len(got) != 1 || got[0] != a {
		t.Errorf("Draining: got %v, want [a:1]", ids(got))
	}
	if poolClosed(a) {
		t.Errorf("a:1 pool closed while draining (delay 1h)")
	}
	if !slices.Equal(ids(v.Routable), []string{"b:1"}) {
		t.Errorf("Routable: got %v, want [b:1]", ids(v.Routable))
	}
}

func TestUpdateSameListKeepsEverything(t *testing.T) {
	g, gen := newGroup(t, settings(), "a:1", "b:1")
	before := slices.Clone(g.View().Targets)
	g.Observe(before[0], ok)
	g.Observe(before[1], fail503)
	g.Observe(before[1], fail503)
	g.Reconcile(cfgTargets("a:1", "b:1"), settings(), gen.gen)
	after := g.View().Targets
	if !slices.Equal(after, before) {
		t.Errorf("targets: got %p, want %p", after, before)
	}
	if s0, s1 := after[0].Health().State, after[1].Health().State; s0 != Healthy || s1 != Unhealthy {
		t.Errorf("states: got %v, %v, want healthy, unhealthy", s0, s1)
	}
	if d := g.Draining(); len(d) != 0 {
		t.Errorf("Draining: got %v, want none", ids(d))
	}
	if n := len(gen.asked()); n != 2 {
		t.Errorf("gen called %d times, want 2", n)
	}
}

func TestDrainThenUnused(t *testing.T) {
	s := settings()
	s.DeregistrationDelay = 50 * time.Millisecond
	addr, peerClosed := listen(t)
	g, gen := newGroup(t, s, addr, "b:1")
	a := g.View().Targets[0]
	g.Observe(a, ok)
	c, err := a.Conns.Dial(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	a.Conns.Put(c, time.Now().UnixNano()) // an idle connection the drain must cut

	g.Reconcile(cfgTargets("b:1"), s, gen.gen)
	if h := a.Health(); h.State != Draining {
		t.Fatalf("a:1 right after removal: got %v, want draining", h.State)
	}
	// Its health turns unused a moment before the view without it is
	// published: wait for both.
	if !waitFor(t, 5*time.Second, func() bool { return a.Health().State == Unused && len(g.Draining()) == 0 }) {
		t.Fatalf("a:1 still %v (draining %v) after 5 s, want unused and gone (delay 50 ms)", a.Health().State, ids(g.Draining()))
	}
	if h := a.Health(); h.Reason != ReasonNotRegistered {
		t.Errorf("a:1 reason: got %q, want %q", h.Reason, ReasonNotRegistered)
	}
	if d := g.Draining(); len(d) != 0 {
		t.Errorf("Draining: got %v, want none", ids(d))
	}
	if _, err := a.Conns.Get(canceled(), time.Second, time.Now().UnixNano(), false); !errors.Is(err, upstream.ErrClosed) {
		t.Errorf("a:1 Conns.Get after drain: got %v, want %v", err, upstream.ErrClosed)
	}
	if n := a.Conns.Len(); n != 0 {
		t.Errorf("a:1 open connections after drain: got %d, want 0", n)
	}
	select {
	case <-peerClosed:
	case <-time.After(5 * time.Second):
		t.Errorf("the idle connection to a:1 was not closed by the drain")
	}

	// Registered again: a new target with a new generation.
	g.Reconcile(cfgTargets(addr, "b:1"), s, gen.gen)
	a2 := g.View().Targets[0]
	if a2 == a {
		t.Fatalf("re-added a:1 is the old *Target")
	}
	if a2.Generation == a.Generation {
		t.Errorf("re-added a:1 generation: got %d, the old one's", a2.Generation)
	}
	if h := a2.Health(); h.State != Initial {
		t.Errorf("re-added a:1: got %v, want initial", h.State)
	}
	if poolClosed(a2) {
		t.Errorf("re-added a:1 has a closed pool")
	}
	if h := a.Health(); h.State != Unused {
		t.Errorf("old a:1 after re-adding: got %v, want unused", h.State)
	}
}

func TestReAddWhileDraining(t *testing.T) {
	g, gen := newGroup(t, settings(), "a:1") // delay 1h
	a := g.View().Targets[0]
	g.Observe(a, ok)
	g.Reconcile(nil, settings(), gen.gen)
	g.Reconcile(cfgTargets("a:1"), settings(), gen.gen)
	a2 := g.View().Targets[0]
	if a2 == a || a2.Generation == a.Generation {
		t.Errorf("re-added while draining: got same target %v / generation %d, want a new one", a2 == a, a2.Generation)
	}
	if h := a2.Health(); h.State != Initial {
		t.Errorf("re-added a:1: got %v, want initial", h.State)
	}
	if h := a.Health(); h.State != Draining {
		t.Errorf("old a:1: got %v, want still draining", h.State)
	}
	if d := g.Draining(); len(d) != 1 || d[0] != a {
		t.Errorf("Draining: got %v, want the old a:1", d)
	}
	if tg, _ := g.View().Lookup("a:1"); tg != a2 {
		t.Errorf("Lookup(a:1) returned the draining target, want the new one")
	}
}

// canceled returns a context that is already done, so that Pool.Get fails
// at once instead of dialing: with ErrClosed if the pool is closed, with a
// dial error otherwise.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// poolClosed reports whether t's connection pool has been closed.
func poolClosed(t *Target) bool {
	_, err := t.Conns.Get(canceled(), time.Second, time.Now().UnixNano(), false)
	return errors.Is(err, upstream.ErrClosed)
}

// listen starts a TCP listener on 127.0.0.1 that accepts one connection and
// reads from it; the returned channel is closed when the peer closes it.
func listen(t *testing.T) (addr string, peerClosed <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	done := make(chan struct{})
	closed := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c
		io.Copy(io.Discard, c) // returns when latch closes its end (or cleanup does)
		close(closed)
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-accepted:
			c.Close()
			<-done
		case <-done:
		}
	})
	return ln.Addr().String(), closed
}

func TestDeregister(t *testing.T) {
	s := settings()
	s.DeregistrationDelay = 50 * time.Millisecond
	g, _ := newGroup(t, s, "a:1", "b:1")
	targets := slices.Clone(g.View().Targets)
	g.Observe(targets[0], ok)

	g.DeregisterAll()
	v := g.View()
	if len(v.Targets) != 0 || v.Picker != nil || v.FailOpen {
		t.Errorf("view after Deregister: got %d targets, picker %v, fail-open %v, want 0, nil, false", len(v.Targets), v.Picker, v.FailOpen)
	}
	for _, tg := range targets {
		if h := tg.Health(); h.State != Draining {
			t.Errorf("%s right after Deregister: got %v, want draining", tg.ID, h.State)
		}
	}
	if d := g.Draining(); len(d) != 2 {
		t.Errorf("Draining: got %v, want both targets", ids(d))
	}
	if !waitFor(t, 5*time.Second, func() bool { return len(g.Draining()) == 0 }) {
		t.Fatalf("still draining after 5 s: %v", ids(g.Draining()))
	}
	for _, tg := range targets {
		if h := tg.Health(); h.State != Unused {
			t.Errorf("%s after the delay: got %v, want unused", tg.ID, h.State)
		}
		if _, err := tg.Conns.Get(canceled(), time.Second, time.Now().UnixNano(), false); !errors.Is(err, upstream.ErrClosed) {
			t.Errorf("%s Conns.Get: got %v, want %v", tg.ID, err, upstream.ErrClosed)
		}
	}
}

func TestClose(t *testing.T) {
	g, gen := newGroup(t, settings(), "a:1", "b:1", "c:1") // delay 1h
	targets := slices.Clone(g.View().Targets)
	g.Reconcile(cfgTargets("b:1", "c:1"), settings(), gen.gen) // a draining
	if d := g.Draining(); len(d) != 1 {
		t.Fatalf("Draining: got %v, want [a:1]", ids(d))
	}
	g.Close()
	if d := g.Draining(); len(d) != 0 {
		t.Errorf("Draining after Close: got %v, want none", ids(d))
	}
	v := g.View()
	if len(v.Targets) != 0 || v.Picker != nil {
		t.Errorf("view after Close: got %d targets, picker %v, want 0, nil", len(v.Targets), v.Picker)
	}
	for _, tg := range targets {
		if h := tg.Health(); h.State != Unused || h.Reason != ReasonNotRegistered {
			t.Errorf("%s after Close: got %v/%q, want unused/%q", tg.ID, h.State, h.Reason, ReasonNotRegistered)
		}
		if _, err := tg.Conns.Get(canceled(), time.Second, time.Now().UnixNano(), false); !errors.Is(err, upstream.ErrClosed) {
			t.Errorf("%s Conns.Get after Close: got %v, want %v", tg.ID, err, upstream.ErrClosed)
		}
	}
}

func TestToggleHealthChecks(t *testing.T) {
	on := settings()
	off := settings()
	off.HealthChecks = false

	g, gen := newGroup(t, on, "a:1", "b:1")
	a, b := g.View().Targets[0], g.View().Targets[1]
	g.Observe(a, ok)
	g.Observe(a, fail503) // a healthy, one failure in its run
	g.Observe(b, fail503)
	g.Observe(b, fail503) // b unhealthy

	g.Reconcile(cfgTargets("a:1", "b:1"), off, gen.gen)
	v := g.View()
	if v.Targets[0] != a || v.Targets[1] != b {
		t.Fatalf("toggling checks replaced the targets")
	}
	for _, tg := range v.Targets {
		if h := tg.Health(); h.State != Unavailable || h.Reason != ReasonHealthCheckDisabled || h.Description != "" {
			t.Errorf("%s with checks off: got %v/%q/%q, want unavailable/%q/\"\"", tg.ID, h.State, h.Reason, h.Description, ReasonHealthCheckDisabled)
		}
	}
	if v.FailOpen || len(v.Routable) != 2 {
		t.Errorf("checks off: got fail-open %v, %d routable, want false, 2", v.FailOpen, len(v.Routable))
	}
	g.Observe(a, fail503)
	g.Observe(a, fail503)
	if h := a.Health(); h.State != Unavailable {
		t.Errorf("Observe with checks off changed a:1 to %v", h.State)
	}

	g.Reconcile(cfgTargets("a:1", "b:1"), on, gen.gen)
	for _, tg := range g.View().Targets {
		if h := tg.Health(); h.State != Initial || h.Reason != ReasonInitialHealthChecking {
			t.Errorf("%s with checks back on: got %v/%q, want initial/%q", tg.ID, h.State, h.Reason, ReasonInitialHealthChecking)
		}
	}
	// The failure runs were reset: one more failure (threshold 2) leaves a
	// initial; a second makes it unhealthy.
	g.Observe(a, fail503)
	if h := a.Health(); h.State != Initial {
		t.Errorf("a:1 after one failure with checks back on: got %v, want initial", h.State)
	}
	g.Observe(a, fail503)
	if h := a.Health(); h.State != Unhealthy {
		t.Errorf("a:1 after two failures with checks back on: got %v, want unhealthy", h.State)
	}
	if a.Generation != 1 || b.Generation != 2 {
		t.Errorf("generations after toggling: got %d, %d, want 1, 2", a.Generation, b.Generation)
	}
	if n := len(gen.asked()); n != 2 {
		t.Errorf("gen called %d times, want 2", n)
	}
}

// TestConcurrentViews reads views from several goroutines while others
// observe results and re-register targets; run with -race.
func TestConcurrentViews(t *testing.T) {
	s := settings()
	s.DeregistrationDelay = time.Millisecond // drains end while readers run
	all := []string{"a:1", "b:1", "c:1", "d:1"}
	g, gen := newGroup(t, s, all...)

	var stop atomic.Bool
	var readers, writers sync.WaitGroup
	var reads atomic.Int64
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for !stop.Load() {
				v := g.View()
				if (v.Picker != nil) != (len(v.Routable) > 0) {
					t.Errorf("view with %d routable targets has picker %v", len(v.Routable), v.Picker)
					return
				}
				if v.Picker != nil {
					if p := v.Picker.Pick(nil); !slices.Contains(v.Routable, p) {
						t.Errorf("picked %v, not among the routable targets", p)
						return
					}
				}
				for _, tg := range v.Routable {
					if !slices.Contains(v.Targets, tg) {
						t.Errorf("routable %s not among the view's targets", tg.ID)
						return
					}
					if got, routable := v.Lookup(tg.ID); got != tg || !routable {
						t.Errorf("Lookup(%s): got %p, %v, want %p, true", tg.ID, got, routable, tg)
						return
					}
					_ = tg.Health().State
					_ = tg.Generation
				}
				reads.Add(1)
			}
		}()
	}
	writers.Add(2)
	go func() {
		defer writers.Done()
		results := []Result{ok, fail503, fail503, timeout, ok, ok}
		for i := range 2000 {
			v := g.View()
			for _, tg := range v.Targets {
				g.Observe(tg, results[i%len(results)])
			}
		}
	}()
	go func() {
		defer writers.Done()
		for i := range 200 {
			n := 1 + i%len(all)
			ts := cfgTargets(all[:n]...)
			for j := range ts {
				ts[j].Weight = 1 + i%3
			}
			g.Reconcile(ts, s, gen.gen)
			_ = g.Draining()
		}
	}()
	writers.Wait()
	// Let readers see the final state too.
	enough := waitFor(t, 5*time.Second, func() bool { return reads.Load() > 100 })
	stop.Store(true)
	readers.Wait()
	if !enough {
		t.Errorf("readers made only %d reads, want more than 100", reads.Load())
	}
}
