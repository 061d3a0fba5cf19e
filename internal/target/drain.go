package target

import (
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
)

// Session-aware drain. A target drained with keep_sessions takes no new
// sessions, while those stuck to it go on there; the drain is complete
// once no sticky request has reached it for the idle window (counted from
// the drain's start or its last session), or at the deadline. From then
// its remaining sessions move, as an immediate drain's move at once.
//
// Completion is decided on whichever comes first: the request path, which
// finds the window passed when a session comes back (and moves it), or the
// group's drain timer, which notifies DrainCompleted. Both mark it with
// one compare-and-swap on done, so that it is decided once and for good: a
// session that raced the decision and reached the target does not undo it.

// drainState is a target's drain. Everything but done is fixed.
type drainState struct {
	mode     config.DrainMode
	idle     time.Duration
	deadline time.Duration // 0: none
	since    time.Time
	// done is when the drain completed, unix nanoseconds; 0 until then.
	done atomic.Int64
	// reported says DrainCompleted was notified. The group's mu guards it.
	reported bool
}

func newDrainState(d *config.Drain, now time.Time) *drainState {
	dd := d.WithDefaults()
	ds := &drainState{mode: dd.Mode, idle: dd.Idle, deadline: dd.Deadline, since: dd.Since}
	if ds.since.IsZero() {
		ds.since = now
	}
	if ds.mode == config.DrainImmediate {
		ds.done.Store(ds.since.UnixNano())
	}
	return ds
}

// same reports whether d describes this drain.
func (ds *drainState) same(d *config.Drain) bool {
	dd := d.WithDefaults()
	return dd.Mode == ds.mode && dd.Idle == ds.idle && dd.Deadline == ds.deadline &&
		(dd.Since.IsZero() || dd.Since.Equal(ds.since))
}

// due is when the drain completes if no sticky request comes: the end of
// the idle window after last (the later of its start and its last
// session), or the deadline, whichever is first.
func (ds *drainState) due(last int64) time.Time {
	start := max(ds.since.UnixNano(), last)
	d := time.Unix(0, start).Add(ds.idle)
	if ds.deadline > 0 {
		if dl := ds.since.Add(ds.deadline); dl.Before(d) {
			return dl
		}
	}
	return d
}

// complete reports whether the drain is complete at now, and marks it so
// when it just became so.
func (ds *drainState) complete(t *Target, now time.Time) bool {
	if ds.done.Load() != 0 {
		return true
	}
	// The cluster clock first: holdDrains sets a session it learns of
	// before the clock that covers it, so a clock read first never pairs
	// with a last session older than what it covers.
	cc := t.clusterClock.Load()
	due := ds.due(t.lastSession.Load())
	if now.Before(due) || ds.held(cc, due, now) {
		return false
	}
	ds.done.CompareAndSwap(0, now.UnixNano())
	return true
}

// held reports whether a drain due at due waits for the other nodes of a
// cluster: until each has reported its sessions as of due, one of them may
// have served one since. A deadline does not wait.
func (ds *drainState) held(cc int64, due, now time.Time) bool {
	if cc == 0 || cc >= due.UnixNano() {
		return false
	}
	return ds.deadline == 0 || now.Before(ds.since.Add(ds.deadline))
}

// NoteSession records that another node of the cluster served a sticky
// request of t at at: a drain counts its idle window from the latest
// session any node saw.
func (t *Target) NoteSession(at time.Time) {
	n := at.UnixNano()
	for {
		cur := t.lastSession.Load()
		if cur >= n || t.lastSession.CompareAndSwap(cur, n) {
			return
		}
	}
}

// SetClusterClock says that every other node of the cluster has reported
// the sessions it saw on t up to at (cluster mode): a drain of t completes
// no sooner (but at its deadline).
func (t *Target) SetClusterClock(at time.Time) { t.clusterClock.Store(at.UnixNano()) }

// keepsSessions reports whether t, drained, still serves the sessions
// stuck to it: a keep_sessions drain not yet complete.
func (t *Target) keepsSessions() bool {
	ds := t.drain.Load()
	return ds != nil && ds.mode == config.DrainKeepSessions && !ds.complete(t, time.Now())
}

// DrainStatus is a drain's progress.
type DrainStatus struct {
	Mode     config.DrainMode
	Since    time.Time
	Deadline time.Time // zero: none
	Idle     time.Duration
	// SessionsLeft estimates the distinct sessions seen within the idle
	// window (whole minutes: see SessionsSince).
	SessionsLeft int
	LastSession  time.Time // zero: none since the drain began
	Complete     bool
	CompletedAt  time.Time
}

// Drain returns t's drain and its progress at now, or nil when t is not
// drained.
func (t *Target) Drain(now time.Time) *DrainStatus {
	ds := t.drain.Load()
	if ds == nil {
		return nil
	}
	st := &DrainStatus{Mode: ds.mode, Since: ds.since, Idle: ds.idle}
	if ds.deadline > 0 {
		st.Deadline = ds.since.Add(ds.deadline)
	}
	if last := t.LastSession(); !last.Before(ds.since) {
		st.LastSession = last
	}
	if ds.mode == config.DrainKeepSessions {
		st.Complete = ds.complete(t, now)
	} else {
		st.Complete = true
	}
	if st.Complete {
		st.CompletedAt = time.Unix(0, ds.done.Load())
	} else if !st.LastSession.IsZero() {
		st.SessionsLeft = t.SessionsSince(ds.idle, now)
	}
	return st
}

// DrainConfig returns t's drain as a config holds it, or nil.
func (t *Target) DrainConfig() *config.Drain {
	ds := t.drain.Load()
	if ds == nil {
		return nil
	}
	return &config.Drain{Mode: ds.mode, Idle: ds.idle, Deadline: ds.deadline, Since: ds.since}
}

// drainTick completes the drains that are due, notifies DrainCompleted for
// each, and arms the timer for the next. g.mu is held.
func (g *Group) drainTick() {
	now := time.Now()
	var next time.Time
	for _, t := range g.active {
		ds := t.drain.Load()
		if ds == nil || ds.reported {
			continue
		}
		if ds.complete(t, now) {
			ds.reported = true
			g.log.Info("target drain complete", "target", t.ID, "mode", ds.mode.String())
			g.notify(Event{Kind: DrainCompleted, Target: t})
			continue
		}
		due := ds.due(t.lastSession.Load())
		if due.Before(now) {
			// Held for the cluster's reports: look again shortly.
			due = now.Add(250 * time.Millisecond)
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	disarm(&g.drainTimer)
	if !next.IsZero() {
		// A little past due: the request path may record a session up to
		// the very instant.
		g.arm(&g.drainTimer, next.Sub(now)+time.Millisecond, func() { g.drainTick(); g.flush() })
	}
}
