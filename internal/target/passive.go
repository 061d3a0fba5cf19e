package target

import (
	"fmt"
	"time"
)

// Passive health checking (outlier detection), latch's own: a target that
// fails real requests leaves rotation within a few of them, whatever its
// active checks say. A health path that passes while the real routes
// fail (a reset on every request, a response head over the limit, a hang)
// would otherwise keep a target, its sticky sessions and its share of new
// ones until the checks notice, and forever if they never do.
//
//   - The request path reports every outcome: Answered for a response the
//     target sent, Failed for latch's own 5xx for it (a connect failure, a
//     reset or close before the response, an invalid response, a response
//     timeout). A target's own 5xx is a failure when Passive.Target5xx is
//     set. A success costs one atomic load; a failure one atomic add.
//   - Passive.Failures in a row eject the target: it turns unhealthy, with
//     reason Target.PassiveFailures, so its sessions move (as an unhealthy
//     target's do) and new requests go elsewhere.
//   - An ejection lasts Passive.Ejection times the target's ejection level,
//     up to Passive.MaxEjection, as Envoy's outlier detection: the level
//     grows by one at each ejection and falls by one for every
//     Passive.Ejection the target then spends in service, so a repeat
//     offender stays out longer and a target that recovered for good is
//     forgiven.
//   - The target comes back once its ejection time has passed and its
//     latest active check, made after the ejection, passed (whichever comes
//     later); with health checks off, when the time has passed. Should its
//     checks fail unhealthy_threshold_count times in a row meanwhile, it is
//     unhealthy for them: the ejection ends, and it comes back as any
//     unhealthy target, after healthy_threshold_count passed checks.
//   - At most Passive.MaxEjectedPercent of the group's targets (drained
//     ones aside) are ejected at once, and at least one of a group of two
//     or more when the percentage is not 0, as Envoy's
//     max_ejection_percent: a bad deploy of every target does not empty
//     the group. A failure beyond the cap is counted; the next threshold
//     of failures tries again.

// ReasonPassiveFailures is latch's reason code for a target ejected by
// passive health checking (its state is unhealthy).
const ReasonPassiveFailures = "Target.PassiveFailures"

// Passive is a group's passive health checking. The zero value is off.
type Passive struct {
	// Failures is how many requests failed in a row eject a target (0:
	// passive health checking is off).
	Failures int
	// Target5xx counts the target's own 5xx answers as failures.
	Target5xx bool
	// Ejection is a first ejection's length, MaxEjection the longest.
	Ejection, MaxEjection time.Duration
	// MaxEjectedPercent caps the share of targets ejected at once.
	MaxEjectedPercent int
}

// ejection is a target's passive-health state, guarded by its group's mu.
type ejection struct {
	on     bool
	passed bool      // the latest check since the ejection passed
	until  time.Time // when the ejection time ends
	level  int       // the ejection multiplier
	back   time.Time // when the target last came back (zero: never ejected)
	timer  *time.Timer
}

// Answered reports a response t sent, with its status: a 5xx is a failure
// when the group counts the target's own (Passive.Target5xx); any other
// ends t's run of failures. It takes no lock.
func (g *Group) Answered(t *Target, status int) {
	if status >= 500 {
		if p := g.passive.Load(); p != nil && p.Target5xx {
			g.Failed(t, "the target answered with a 5xx status")
			return
		}
	}
	if t.failedRun.Load() != 0 {
		t.failedRun.Store(0)
	}
}

// Failed reports a request that failed on t for cause (a phrase: "the
// target reset the connection"): latch answered 5xx for it, or t did and
// the group counts that. After Passive.Failures in a row, t is ejected.
// It takes the group's lock only then.
func (g *Group) Failed(t *Target, cause string) {
	p := g.passive.Load()
	if p == nil || p.Failures == 0 {
		return
	}
	n := t.failedRun.Add(1)
	if n < int32(p.Failures) || (n-int32(p.Failures))%int32(p.Failures) != 0 {
		return
	}
	if g.ejected.Load() >= g.ejectCap.Load() {
		g.capReached(t, int(n), p.MaxEjectedPercent)
		return
	}
	g.eject(t, int(n), cause)
}

// capReached logs, once until an ejection ends, that t was not ejected
// after n failures because the cap on ejected targets is reached.
func (g *Group) capReached(t *Target, n, percent int) {
	if g.capWarned.Swap(true) {
		return
	}
	g.log.Warn("target not ejected: the cap on ejected targets is reached", "target", t.ID, "failures", n,
		"ejected", g.ejected.Load(), "max_ejected_percent", percent)
}

// eject takes t out of rotation after n failed requests in a row, unless it
// is out already or the cap on ejected targets is reached.
func (g *Group) eject(t *Target, n int, cause string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.settings.Passive
	if p.Failures == 0 || t.eject.on || t.Drained() || !g.isActive(t) {
		return
	}
	from := t.state()
	switch from {
	case Healthy, Unavailable, Initial:
	default:
		return // out of rotation already (unhealthy by its checks)
	}
	if g.ejectedCount() >= g.ejectionCap() {
		g.capReached(t, n, p.MaxEjectedPercent)
		return
	}
	now := time.Now()
	e := &t.eject
	if !e.back.IsZero() && p.Ejection > 0 {
		e.level = max(0, e.level-int(now.Sub(e.back)/p.Ejection))
	}
	e.level++
	d := p.MaxEjection
	if e.level <= int(p.MaxEjection/max(p.Ejection, 1)) {
		d = min(p.Ejection*time.Duration(e.level), p.MaxEjection)
	}
	e.on, e.passed, e.until = true, false, now.Add(d)
	g.ejected.Add(1)
	t.ejectedUntil.Store(e.until.UnixNano())
	t.failedRun.Store(0)
	t.okRun, t.failRun = 0, 0
	t.setHealth(Health{State: Unhealthy, Reason: ReasonPassiveFailures,
		Description: fmt.Sprintf("%d requests in a row failed, the last because %s; ejected for %v", n, cause, d)})
	g.leaveService(t)
	g.log.Warn("target health changed", "target", t.ID, "from", from.String(), "to", Unhealthy.String(),
		"reason", ReasonPassiveFailures, "description", t.health.Load().Description)
	g.notify(Event{Kind: HealthChanged, Target: t, From: from})
	var timer *time.Timer
	timer = time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if t.eject.timer == timer {
			t.eject.timer = nil
			if g.ejectionOver(t) {
				g.rebuild(false)
			}
		}
	})
	e.timer = timer
	g.rebuild(false)
}

// ejectionOver brings t back at the end of its ejection time if its latest
// check since the ejection passed (or its group has no health checks);
// otherwise Observe brings it back when one does. It reports whether t
// came back (the caller rebuilds the view). g.mu is held.
func (g *Group) ejectionOver(t *Target) bool {
	if !t.eject.on || !g.isActive(t) {
		return false
	}
	switch {
	case !g.settings.HealthChecks:
		g.comeBack(t, Health{State: Unavailable, Reason: ReasonHealthCheckDisabled})
	case t.eject.passed:
		g.comeBack(t, Health{State: Healthy})
	default:
		return false
	}
	return true
}

// observeEjected feeds a check's result on an ejected target: a pass after
// the ejection time brings it back; unhealthy_threshold_count failures in
// a row make it unhealthy for its checks, which then decide when it comes
// back. g.mu is held.
func (g *Group) observeEjected(t *Target, r Result) {
	now := time.Now()
	if r.OK {
		t.failRun = 0
		t.okRun++
		t.eject.passed = true
		if !now.Before(t.eject.until) {
			g.comeBack(t, Health{State: Healthy})
			g.rebuild(false)
		}
		return
	}
	t.okRun = 0
	t.failRun++
	t.eject.passed = false
	if t.failRun < g.settings.UnhealthyThreshold {
		return
	}
	g.endEjection(t, now)
	h := Health{State: Unhealthy, Reason: r.Reason, Description: r.Description, Since: t.health.Load().Since}
	t.health.Store(&h)
	g.log.Warn("target unhealthy for its checks while ejected", "target", t.ID, "reason", r.Reason, "description", r.Description)
	g.notify(Event{Kind: HealthChanged, Target: t, From: Unhealthy})
	g.rebuild(false)
}

// comeBack ends t's ejection, putting it in service in state h; the caller
// rebuilds the view. g.mu is held.
func (g *Group) comeBack(t *Target, h Health) {
	from := t.state()
	now := time.Now()
	g.endEjection(t, now)
	t.setHealth(h)
	if t.inService() {
		g.enterService(t, now, g.fullPeer(now, func(o *Target) bool { return o == t }))
	}
	g.log.Info("target health changed", "target", t.ID, "from", from.String(), "to", h.State.String(),
		"reason", h.Reason, "description", "the ejection ended")
	g.notify(Event{Kind: HealthChanged, Target: t, From: from})
}

// endEjection clears t's ejection (the target came back, or left the
// group, or passive health checking was turned off). g.mu is held.
func (g *Group) endEjection(t *Target, now time.Time) {
	e := &t.eject
	if !e.on {
		return
	}
	e.on, e.back = false, now
	g.ejected.Add(-1)
	g.capWarned.Store(false)
	t.ejectedUntil.Store(0)
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	t.failedRun.Store(0)
}

// ejectionCap is how many targets may be ejected at once. g.mu is held.
func (g *Group) ejectionCap() int {
	n := len(g.active) - countFunc(g.active, (*Target).Drained)
	pct := g.settings.Passive.MaxEjectedPercent
	limit := n * pct / 100
	if limit < 1 && n >= 2 && pct > 0 {
		limit = 1
	}
	return limit
}

// ejectedCount is how many active targets are ejected. g.mu is held.
func (g *Group) ejectedCount() int {
	return countFunc(g.active, func(t *Target) bool { return t.eject.on })
}

// isActive reports whether t is one of the group's registered targets.
// g.mu is held.
func (g *Group) isActive(t *Target) bool {
	for _, a := range g.active {
		if a == t {
			return true
		}
	}
	return false
}

// Ejected reports whether passive health checking has t out of rotation,
// and until when at least.
func (t *Target) Ejected() (bool, time.Time) {
	u := t.ejectedUntil.Load()
	return u != 0, time.Unix(0, u)
}

// setPassive applies a group's new passive settings (g.settings holds the
// rest of them); the caller rebuilds the view. g.mu is held.
func (g *Group) setPassive(p Passive) {
	if p == (Passive{}) || p.Failures == 0 {
		g.passive.Store(nil)
	} else {
		g.passive.Store(&p)
	}
	if p.Failures > 0 {
		return
	}
	// Turned off: ejected targets are no longer held out by it. Without
	// health checks they come back now; with them, their checks decide,
	// as for any unhealthy target.
	now := time.Now()
	for _, t := range g.active {
		if !t.eject.on {
			continue
		}
		if !g.settings.HealthChecks {
			g.comeBack(t, Health{State: Unavailable, Reason: ReasonHealthCheckDisabled})
			continue
		}
		g.endEjection(t, now)
	}
}
