package target

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
)

// Picker chooses a target among a view's routable targets. Pick must not
// return exclude unless it is the only choice; it must be safe for
// concurrent use and take no locks.
type Picker interface {
	Pick(exclude *Target) *Target
}

// Settings are the parts of a target group's config that the group itself
// applies.
type Settings struct {
	HealthChecks        bool
	HealthyThreshold    int
	UnhealthyThreshold  int
	MinHealthyCount     int
	MinHealthyPercent   int // 0: off
	DeregistrationDelay time.Duration
	// SlowStart is slow_start.duration_seconds: how long a target that
	// comes into service takes to ramp up to its full weight (see
	// slowstart.go for ALB's rules). 0: off.
	SlowStart time.Duration
	// AnomalyMitigation is load_balancing.algorithm.anomaly_mitigation:
	// on, ALB's Automatic Target Weights (see anomaly.go). The request path
	// must then report outcomes with Target.Record and
	// Target.RecordConnectFailure.
	AnomalyMitigation bool
	// NewPicker builds the balancing algorithm over a set of targets,
	// weighing them by Target.EffectiveWeight, or, when WeightBlind is set,
	// by their configured Weight only.
	NewPicker func([]*Target) Picker
	// WeightBlind says NewPicker's pickers ignore effective weights
	// (consistent hashing follows the configured weights, so that keys do
	// not move): a rebuild that moves only effective weights (a slow start
	// step, an anomaly evaluation) then keeps the current picker rather
	// than building the same one again.
	WeightBlind bool
	// Checker runs the group's active health checks (nil: none, or the
	// caller feeds results to Observe itself). The group starts a target's
	// probes when it is registered and stops them when it is deregistered,
	// and closes a checker that settings replace, so that no caller has
	// to keep a checker in step with the targets.
	Checker Checker
	// Passive is passive health checking (passive.go); the request path
	// must then report outcomes with Answered and Failed.
	Passive Passive
	// Notify, if set, is called with every change of the group's targets
	// (Event), in order, with the group's lock held: it must not block or
	// call back into the group.
	Notify func(Event)
}

// A Checker probes a group's targets, reporting each result to report
// (the group's Observe).
type Checker interface {
	// Start begins probing t.
	Start(t *Target, report func(*Target, Result))
	// Stop stops probing t; it does not wait.
	Stop(t *Target)
	// Close stops every probe and waits for them to end.
	Close()
}

// View is an immutable snapshot of a group, rebuilt on every registration
// or health change and read by the request path without locks.
type View struct {
	Targets  []*Target // registered and not draining, in config order
	Routable []*Target // those that may take new requests
	FailOpen bool      // too few healthy targets: every registered one is routable
	Picker   Picker    // nil when Routable is empty
	// Draining are the targets deregistered and still draining, by id.
	Draining []*Target
	byID     map[string]entry
	left     map[string]bool // deregistered targets still draining, by id
}

type entry struct {
	t      *Target
	sticky bool
	// keeps: t is drained with keep_sessions and may serve its sessions
	// until the drain completes, which Lookup asks t.
	keeps bool
}

// Lookup finds a registered target by id and says whether it may serve a
// session stuck to it: it is routable, or still initial. A target waiting
// for its first health check keeps its sessions, so that a restart of
// latch (which starts every target initial) moves none; only new sessions
// wait for the check. A dead one is found out on connect and the session
// moved then.
//
// A target drained with keep_sessions keeps its sessions until its drain
// completes (drain.go); that costs a clock read, for such a target only.
func (v *View) Lookup(id string) (t *Target, sticky bool) {
	e := v.byID[id]
	if e.keeps {
		return e.t, e.t.keepsSessions()
	}
	return e.t, e.sticky
}

// Deregistered reports whether a target of that id was deregistered and is
// still draining (a session stuck to it moved because of that).
func (v *View) Deregistered(id string) bool { return v.left[id] }

// Group is a target group at run time.
type Group struct {
	Name string
	log  *slog.Logger

	view atomic.Pointer[View]
	// passive is settings.Passive for the request path; nil when off.
	// ejected and ejectCap are how many targets are ejected and may be,
	// so that a failure beyond the cap takes no lock; capWarned says the
	// cap's refusal was logged since an ejection last ended.
	passive           atomic.Pointer[Passive]
	ejected, ejectCap atomic.Int32
	capWarned         atomic.Bool
	// budget is the retry budget (budget.go); removedRequests the
	// requests of the targets removed, for its count of the group's.
	budget          retryBudget
	removedRequests atomic.Uint64

	// mu guards everything below. The request path takes it only on
	// failures: Observe on a failed connect, and Failed when a run of
	// failures ejects a target (not when the cap stops it); a rebuild holds
	// it while it builds the picker (up to about 150 ms for a round robin of
	// 1,000 ramping targets).
	mu       sync.Mutex
	settings Settings
	active   []*Target
	draining map[*Target]*time.Timer
	// rampTimer rebuilds the view while a target is in slow start;
	// anomalyTimer runs anomaly evaluations; budgetTimer samples the
	// retry budget's counts. Each is nil when not needed.
	rampTimer, anomalyTimer, budgetTimer *time.Timer
	// drainTimer completes keep_sessions drains (drain.go).
	drainTimer *time.Timer
	// pending are the events waiting for the view that goes with them.
	pending []Event
}

// NewGroup returns an empty group.
func NewGroup(name string, s Settings, log *slog.Logger) *Group {
	g := &Group{Name: name, log: log.With("group", name), settings: s, draining: map[*Target]*time.Timer{}}
	g.budget.samples = []budgetCount{{at: time.Now()}}
	g.setPassive(s.Passive)
	g.rebuild(false)
	return g
}

// View returns the group's current snapshot.
func (g *Group) View() *View { return g.view.Load() }

// Reconcile makes the group's registrations what targets lists, with new
// settings: ids not registered yet are registered, with the generation gen
// returns (targets registered together into an empty group are one
// registration, which matters to slow start); ids no longer listed are
// deregistered and drain for the deregistration delay; the others keep
// their state, connections, sessions and generation, and take the listed
// weight and drain state. It is what applying a config does; Register,
// Deregister, SetWeight and SetDrain are its parts, for a group used on its
// own. A server's groups change only through its config (server.Update),
// which it applies with Reconcile: a part called on one would be undone by
// the next change.
func (g *Group) Reconcile(targets []config.Target, s Settings, gen func(id string) uint64) {
	g.mu.Lock()
	stale := g.reconcile(targets, s, gen)
	g.mu.Unlock()
	if stale != nil {
		stale.Close() // outside the lock: its probes may be waiting for it in Observe
	}
}

// Register registers targets, or sets the weight and drain state of those
// already registered; the others stay as they are.
func (g *Group) Register(targets []config.Target, gen func(id string) uint64) {
	g.edit(func(list []config.Target) []config.Target {
		for _, ct := range targets {
			if i := slices.IndexFunc(list, func(c config.Target) bool { return c.ID == ct.ID }); i >= 0 {
				list[i] = ct
			} else {
				list = append(list, ct)
			}
		}
		return list
	}, gen)
}

// Deregister deregisters the targets with these ids: each drains for the
// deregistration delay. Unknown ids are ignored.
func (g *Group) Deregister(ids ...string) {
	g.edit(func(list []config.Target) []config.Target {
		return slices.DeleteFunc(list, func(c config.Target) bool { return slices.Contains(ids, c.ID) })
	}, nil)
}

// SetWeight sets a registered target's weight (1-1000). It reports false
// when no target has that id.
func (g *Group) SetWeight(id string, weight int) bool {
	return g.set(id, func(c *config.Target) { c.Weight = weight })
}

// SetDrain drains a registered target (d), or ends its drain (nil): a
// drained target stays registered and checked, but takes no new sessions;
// its sticky sessions move at once (immediate, as a deregistered one's),
// or once its drain completes (keep_sessions). It reports false when no
// target has that id.
func (g *Group) SetDrain(id string, d *config.Drain) bool {
	return g.set(id, func(c *config.Target) { c.Drain = d })
}

func (g *Group) set(id string, change func(*config.Target)) bool {
	found := false
	g.edit(func(list []config.Target) []config.Target {
		for i := range list {
			if list[i].ID == id {
				change(&list[i])
				found = true
			}
		}
		return list
	}, nil)
	return found
}

// edit reconciles the group with change applied to its registrations, in
// its current settings.
func (g *Group) edit(change func([]config.Target) []config.Target, gen func(id string) uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	list := make([]config.Target, len(g.active))
	for i, t := range g.active {
		list[i] = config.Target{ID: t.ID, Weight: t.Weight(), Drain: t.DrainConfig()}
	}
	g.reconcile(change(list), g.settings, gen) // same settings: no checker to close
}

// reconcile is Reconcile with g.mu held. It returns the checker the new
// settings replaced, for the caller to close once it has let go of g.mu.
func (g *Group) reconcile(targets []config.Target, s Settings, gen func(id string) uint64) (stale Checker) {
	now := time.Now()
	checksChanged := s.HealthChecks != g.settings.HealthChecks
	if s.SlowStart != g.settings.SlowStart {
		disarm(&g.rampTimer) // its step may change
	}
	newChecker := s.Checker != g.settings.Checker
	if newChecker {
		stale = g.settings.Checker
	}
	g.settings = s
	// Before the targets' service states are read below: turning passive
	// health off brings ejected targets back (without health checks).
	g.setPassive(s.Passive)
	empty := len(g.active) == 0
	old := make(map[string]*Target, len(g.active))
	for _, t := range g.active {
		old[t.ID] = t
	}
	active := make([]*Target, 0, len(targets))
	wasInService := make(map[*Target]bool, len(targets))
	var added []*Target
	for _, ct := range targets {
		t := old[ct.ID]
		if t != nil {
			delete(old, ct.ID)
			wasInService[t] = t.inService()
			if ct.Weight != t.Weight() {
				t.weight.Store(int32(ct.Weight))
				g.notify(Event{Kind: WeightChanged, Target: t})
			}
			if cur := t.drain.Load(); (ct.Drain == nil) != (cur == nil) || cur != nil && !cur.same(ct.Drain) {
				if ct.Drain == nil {
					t.drain.Store(nil)
					g.log.Info("target drain changed", "target", t.ID, "drained", false)
				} else {
					t.drain.Store(newDrainState(ct.Drain, now))
					g.log.Info("target drain changed", "target", t.ID, "drained", true, "mode", ct.Drain.Mode.String())
				}
				g.notify(Event{Kind: DrainChanged, Target: t})
			}
			if checksChanged {
				from := t.state()
				g.endEjection(t, now)
				t.okRun, t.failRun = 0, 0
				if s.HealthChecks {
					t.setHealth(Health{State: Initial, Reason: ReasonInitialHealthChecking})
				} else {
					t.setHealth(Health{State: Unavailable, Reason: ReasonHealthCheckDisabled})
				}
				g.notify(Event{Kind: HealthChanged, Target: t, From: from})
			}
		} else {
			t = New(ct.ID, ct.Weight, gen(ct.ID), s.HealthChecks)
			if ct.Drain != nil {
				t.drain.Store(newDrainState(ct.Drain, now))
			}
			// Slow start skips targets registered together into an empty
			// group (ALB: "in a single registration call").
			t.slowStartExempt = empty
			g.log.Info("target registered", "target", t.ID, "generation", t.Generation)
			added = append(added, t)
		}
		active = append(active, t)
	}
	g.active = active
	for _, t := range added {
		g.notify(Event{Kind: Registered, Target: t})
	}
	for _, t := range old {
		g.drain(t)
	}
	// Targets that came into service here (registered, undrained, or
	// switched to unavailable with health checks off) are judged against
	// those that already were, not against each other.
	full := g.fullPeer(now, func(t *Target) bool { return !wasInService[t] })
	for _, t := range active {
		switch was, is := wasInService[t], t.inService(); {
		case !was && is:
			g.enterService(t, now, full)
		case was && !is:
			g.leaveService(t)
		}
	}
	// The checker follows the registrations: a new one probes every
	// target, the same one the targets registered here.
	if c := s.Checker; c != nil {
		probe := added
		if newChecker || checksChanged {
			probe = active
		}
		for _, t := range probe {
			c.Start(t, g.Observe)
		}
	}
	g.rebuild(false)
	return stale
}

// Close deregisters every target at once, cutting requests still in flight,
// and stops the health checks.
func (g *Group) Close() {
	g.mu.Lock()
	for _, t := range g.active {
		g.drain(t)
	}
	g.active = nil
	for t, timer := range g.draining {
		timer.Stop()
		g.remove(t)
	}
	g.rebuild(false) // with no target active, this stops the timers too
	c := g.settings.Checker
	g.settings.Checker = nil
	g.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// DeregisterAll deregisters every target gracefully, as when its group
// leaves the config: each drains for the deregistration delay. The group
// takes no new requests, and its health checks stop. Close it once
// Draining is empty (or to cut what is left).
func (g *Group) DeregisterAll() {
	g.mu.Lock()
	for _, t := range g.active {
		g.drain(t)
	}
	g.active = nil
	g.rebuild(false)
	c := g.settings.Checker
	g.settings.Checker = nil
	g.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// drain starts deregistering t. It takes no new requests; requests in flight
// have the deregistration delay to finish, then their connections are cut
// (the client gets a 502, as with ALB).
func (g *Group) drain(t *Target) {
	if c := g.settings.Checker; c != nil {
		c.Stop(t)
	}
	g.endEjection(t, time.Now())
	g.leaveService(t)
	from := t.state()
	t.setHealth(Health{State: Draining, Reason: ReasonDeregistrationInProcess})
	g.log.Info("target deregistering", "target", t.ID, "inflight", t.Inflight.Load(), "delay", g.settings.DeregistrationDelay)
	g.notify(Event{Kind: Deregistered, Target: t, From: from})
	g.draining[t] = time.AfterFunc(g.settings.DeregistrationDelay, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if _, ok := g.draining[t]; ok {
			g.remove(t)
		}
	})
}

func (g *Group) remove(t *Target) {
	delete(g.draining, t)
	t.setHealth(Health{State: Unused, Reason: ReasonNotRegistered})
	t.Conns.Close()
	g.log.Info("target deregistered", "target", t.ID)
	g.notify(Event{Kind: Removed, Target: t, From: Draining})
	// The view loses it from its draining targets; nothing else changed.
	// Its requests move to the removed ones' count at the same time, for
	// the retry budget's sum (budget.go).
	g.budget.mu.Lock()
	r, _, _ := t.Outcomes()
	g.removedRequests.Add(r)
	if old := g.view.Load(); old != nil {
		v := *old
		v.Draining, v.left = g.drainingList()
		g.view.Store(&v)
	}
	g.budget.mu.Unlock()
	g.flush()
}

// drainingList returns the targets still draining, by id, and the set of
// their ids. g.mu is held.
func (g *Group) drainingList() ([]*Target, map[string]bool) {
	if len(g.draining) == 0 {
		return nil, nil
	}
	list := make([]*Target, 0, len(g.draining))
	ids := make(map[string]bool, len(g.draining))
	for t := range g.draining {
		list = append(list, t)
		ids[t.ID] = true
	}
	slices.SortFunc(list, func(a, b *Target) int { return strings.Compare(a.ID, b.ID) })
	return list, ids
}

// notify records e, completed with the group's name and the target's state
// now, for Settings.Notify, which flush calls once the view that goes with
// it is published. g.mu is held.
func (g *Group) notify(e Event) {
	if g.settings.Notify == nil {
		return
	}
	e.Group = g.Name
	e.Health, e.Checks = e.Target.Health(), e.Target.Checks()
	e.Weight = e.Target.Weight()
	g.pending = append(g.pending, e)
}

// flush passes the events notify recorded to Settings.Notify, in order.
// g.mu is held.
func (g *Group) flush() {
	for i, e := range g.pending {
		g.settings.Notify(e)
		g.pending[i] = Event{}
	}
	g.pending = g.pending[:0]
}

// Draining returns the targets deregistered and still draining, by id.
func (g *Group) Draining() []*Target { return g.View().Draining }

// Result is one observation of a target's health: an active probe, or a
// failed connect on the request path (which counts as a failed check, so a
// dead target leaves rotation before the next probe).
type Result struct {
	OK          bool
	Reason      string // for failures: an ALB reason code
	Description string
}

// Observe feeds one result into t's health state machine: one success moves
// a new target out of initial; after that the healthy and unhealthy
// thresholds apply as consecutive counts.
func (g *Group) Observe(t *Target, r Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.settings.HealthChecks {
		return
	}
	wasIn := t.inService()
	h := *t.health.Load()
	next := h
	switch h.State {
	case Draining, Unused, Unavailable:
		return
	}
	if t.eject.on {
		g.observeEjected(t, r)
		return
	}
	if r.OK {
		t.failRun = 0
		t.okRun++
		if h.State == Initial || (h.State == Unhealthy && t.okRun >= g.settings.HealthyThreshold) {
			next = Health{State: Healthy}
		}
	} else {
		t.okRun = 0
		t.failRun++
		if h.State == Unhealthy || t.failRun >= g.settings.UnhealthyThreshold {
			next = Health{State: Unhealthy, Reason: r.Reason, Description: r.Description}
		}
	}
	if next.State == h.State && next.Reason == h.Reason && next.Description == h.Description {
		return
	}
	if next.State == h.State {
		next.Since = h.Since
		t.health.Store(&next)
		return
	}
	t.setHealth(next)
	switch was, is := wasIn, t.inService(); {
	case !was && is:
		now := time.Now()
		g.enterService(t, now, g.fullPeer(now, func(o *Target) bool { return o == t }))
	case was && !is:
		g.leaveService(t)
	}
	level := slog.LevelInfo
	if next.State == Unhealthy {
		level = slog.LevelWarn
	}
	g.log.Log(context.Background(), level, "target health changed", "target", t.ID, "from", h.State.String(), "to", next.State.String(),
		"reason", next.Reason, "description", next.Description)
	g.notify(Event{Kind: HealthChanged, Target: t, From: h.State})
	g.rebuild(false) // and tells Notify
}

// rebuild publishes a new View, with the targets' effective weights as of
// now, and arms or stops the group's timers. weightsOnly says that only
// effective weights can have changed since the last view (a slow start
// step, an anomaly evaluation: health changes rebuild through Observe or
// Update): with Settings.WeightBlind the view then keeps the last view's
// picker. g.mu must be held (or g not yet shared).
func (g *Group) rebuild(weightsOnly bool) {
	now := time.Now()
	g.expireSlowStarts(now)
	v := &View{Targets: g.active, byID: make(map[string]entry, len(g.active))}
	healthy := g.inService()
	if !g.detecting(len(healthy)) {
		for _, t := range g.active {
			t.resetAnomaly()
		}
	}
	for _, t := range g.active {
		t.eff.Store(g.effectiveWeight(t, now))
	}
	n := len(g.active) - countFunc(g.active, (*Target).Drained)
	v.FailOpen = n > 0 && (len(healthy) < min(g.settings.MinHealthyCount, n) ||
		g.settings.MinHealthyPercent > 0 && len(healthy)*100 < g.settings.MinHealthyPercent*n)
	v.Routable = healthy
	if v.FailOpen {
		// Every registered target, but those drained on purpose.
		v.Routable = slices.DeleteFunc(slices.Clone(g.active), (*Target).Drained)
	}
	routable := make(map[*Target]bool, len(v.Routable))
	for _, t := range v.Routable {
		routable[t] = true
	}
	v.Draining, v.left = g.drainingList()
	for _, t := range g.active {
		e := entry{t: t, sticky: routable[t] || t.state() == Initial && !t.Drained()}
		if ds := t.drain.Load(); ds != nil && ds.mode == config.DrainKeepSessions {
			st := t.state()
			e.keeps = st.inService() || st == Initial
		}
		v.byID[t.ID] = e
	}
	if len(v.Routable) > 0 && g.settings.NewPicker != nil {
		if last := g.view.Load(); weightsOnly && g.settings.WeightBlind && last != nil && last.Picker != nil &&
			slices.Equal(last.Routable, v.Routable) {
			v.Picker = last.Picker
		} else {
			v.Picker = g.settings.NewPicker(v.Routable)
		}
	}
	g.view.Store(v)
	g.ejectCap.Store(int32(g.ejectionCap()))
	g.schedule(now, len(healthy))
	g.flush()
}

// inService returns the active targets that count as healthy.
func (g *Group) inService() []*Target {
	var in []*Target
	for _, t := range g.active {
		if t.inService() {
			in = append(in, t)
		}
	}
	return in
}

// detecting reports whether anomaly evaluation applies to a group with
// healthy targets in service.
func (g *Group) detecting(healthy int) bool {
	return g.settings.AnomalyMitigation && healthy >= anomalyMinTargets
}

// effectiveWeight is t's weight for new picks at now, in WeightUnit units.
func (g *Group) effectiveWeight(t *Target, now time.Time) int64 {
	w := float64(t.Weight()*WeightUnit) * g.rampFactor(t, now) * t.mitigation()
	return max(1, int64(math.Round(w)))
}

// schedule arms the timers the group's state needs and stops the others:
// the ramp timer while a target is in slow start (at every ramp step, and
// when the earliest slow start ends), the anomaly timer while anomaly
// evaluation applies. now is the time of the last expireSlowStarts, or
// later: a target is in slow start while its slowStart is set, and one
// that has ended since has the ramp timer fire at once to expire it.
// inService is how many active targets are in service. g.mu is held.
func (g *Group) schedule(now time.Time, inService int) {
	var end time.Time
	for _, t := range g.active {
		if !t.slowStart.IsZero() {
			if e := t.slowStart.Add(g.settings.SlowStart); end.IsZero() || e.Before(end) {
				end = e
			}
		}
	}
	if end.IsZero() {
		disarm(&g.rampTimer)
	} else {
		g.arm(&g.rampTimer, min(rampStep(g.settings.SlowStart), end.Sub(now)), func() { g.rebuild(true) })
	}
	if g.detecting(inService) {
		g.arm(&g.anomalyTimer, anomalyInterval, g.anomalyTick)
	} else {
		disarm(&g.anomalyTimer)
	}
	if len(g.active) > 0 {
		g.arm(&g.budgetTimer, budgetSample, g.budgetTick)
	} else {
		disarm(&g.budgetTimer)
	}
	g.drainTick()
}

// budgetTick samples the retry budget's counts, and arms the next sample.
// g.mu is held.
func (g *Group) budgetTick() {
	g.sampleBudget()
	if len(g.active) > 0 {
		g.arm(&g.budgetTimer, budgetSample, g.budgetTick)
	}
}

// arm makes *slot a timer that runs task under g.mu after d, unless it
// already holds one. g.mu is held.
func (g *Group) arm(slot **time.Timer, d time.Duration, task func()) {
	if *slot != nil {
		return
	}
	var timer *time.Timer
	timer = time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if *slot != timer {
			return // stopped, or stopped and armed again, while this waited for g.mu
		}
		*slot = nil
		task()
	})
	// Assigned under g.mu, before the callback can read it.
	*slot = timer
}

// disarm stops the timer in *slot, if any. g.mu is held.
func disarm(slot **time.Timer) {
	if *slot != nil {
		(*slot).Stop()
		*slot = nil
	}
}

func countFunc[T any](s []T, f func(T) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}
