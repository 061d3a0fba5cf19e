package server

import (
	"slices"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h2"
	"github.com/latch-lb/latch/internal/target"
)

// published is what Snapshot reads without the server's lock: it is made
// anew, never changed, at every change.
type published struct {
	version   uint64
	cfg       *config.Config
	groups    []*group // by name
	listeners []listenerAddr
}

type listenerAddr struct {
	name, addr string
	h2         *h2.Counters
}

// publish makes what runs now what Snapshot reads. s.mu is held.
func (s *Server) publish() {
	p := &published{version: s.version, cfg: s.running}
	for _, g := range s.groups {
		p.groups = append(p.groups, g)
	}
	slices.SortFunc(p.groups, func(a, b *group) int { return strings.Compare(a.Name, b.Name) })
	for name, l := range s.listeners {
		p.listeners = append(p.listeners, listenerAddr{name, l.Addr(), &l.h2})
	}
	slices.SortFunc(p.listeners, func(a, b listenerAddr) int { return strings.Compare(a.name, b.name) })
	s.published.Store(p)
}

// Snapshot is the running state as one reader sees it: the config that
// runs, and every target's state at the time of the call.
type Snapshot struct {
	// Version counts the changes applied: every Apply and Update that
	// succeeded moves it on, whether or not it changed anything.
	Version uint64
	// Config is the running config (the file's, with the runtime changes
	// made since). It is shared: read it, never change it.
	Config    *config.Config
	Listeners []ListenerStatus
	Groups    []GroupStatus
}

// ListenerStatus is a listener as it runs.
type ListenerStatus struct {
	Name string
	Addr string // the bound address, which tells the port chosen for port 0
}

// GroupStatus is a target group as it runs.
type GroupStatus struct {
	Name    string
	Targets []TargetStatus // registered targets in order, then those still draining
}

// TargetStatus is one target as it runs.
type TargetStatus struct {
	ID         string
	Generation uint64
	Weight     int
	// Drained says the target was drained at run time: Health then says
	// draining, and Checks what its health checks say.
	Drained  bool
	Inflight int64
	target.Health
	Checks target.Health
	// Anomaly is ALB's AnomalyDetection.Result ("normal" or "anomalous"),
	// and Mitigated its MitigationInEffect.
	Anomaly   string
	Mitigated bool
	// EffectiveWeight is the weight new picks use now, in units of
	// target.WeightUnit per unit of configured weight (slow start and
	// anomaly mitigation lower it).
	EffectiveWeight int
	// Routable says the group's view sends requests to the target now. It
	// follows Health: a change of health is in Health a moment before the
	// view that acts on it is published.
	Routable bool
	// Ejected says passive health checking holds the target out
	// (unhealthy, Target.PassiveFailures) at least until EjectedUntil.
	Ejected      bool
	EjectedUntil time.Time
	// Sessions estimates the distinct sticky sessions the target served
	// in the last 5 minutes (see Server.Sessions), and LastSession is
	// when it last served a sticky request (zero: never).
	Sessions    int
	LastSession time.Time
	// Drain is the progress of the target's drain at run time; nil when
	// it is not drained.
	Drain *DrainStatus
}

// DrainStatus is a drain's progress.
type DrainStatus struct {
	Mode     string    // keep_sessions or immediate
	Since    time.Time // when the drain began
	Deadline time.Time // when the sessions left move whatever they do; zero: none
	Idle     time.Duration
	// SessionsLeft estimates the distinct sessions seen on the target
	// within the idle window (in whole minutes); 0 once complete.
	SessionsLeft int
	LastSession  time.Time // the last sticky request since the drain began; zero: none
	// Complete says no session came for Idle (or the deadline passed, or
	// the drain is immediate): the target may be stopped; sessions that
	// come back move.
	Complete    bool
	CompletedAt time.Time
}

// snapshotSessionWindow is the window TargetStatus.Sessions counts.
const snapshotSessionWindow = 5 * time.Minute

// Snapshot returns the running state: the running config, and every
// target's state as its group's view has it now. It takes no lock: during
// a change, the targets may already be the change's while Version and
// Config are still those before it.
func (s *Server) Snapshot() *Snapshot {
	p := s.published.Load()
	sn := &Snapshot{Version: p.version, Config: p.cfg}
	now := time.Now()
	for _, l := range p.listeners {
		sn.Listeners = append(sn.Listeners, ListenerStatus{Name: l.name, Addr: l.addr})
	}
	for _, g := range p.groups {
		gs := GroupStatus{Name: g.Name}
		v := g.View()
		routable := make(map[*target.Target]bool, len(v.Routable))
		for _, t := range v.Routable {
			routable[t] = true
		}
		for _, t := range slices.Concat(v.Targets, v.Draining) {
			a, m := t.Anomaly()
			ts := TargetStatus{ID: t.ID, Generation: t.Generation, Weight: t.Weight(),
				Drained: t.Drained(), Inflight: t.Inflight.Load(), Health: t.Health(), Checks: t.Checks(), Anomaly: a, Mitigated: m,
				EffectiveWeight: t.EffectiveWeight()}
			ts.Routable = routable[t]
			if on, until := t.Ejected(); on {
				ts.Ejected, ts.EjectedUntil = true, until
			}
			ts.Sessions, ts.LastSession = t.SessionsSince(snapshotSessionWindow, now), t.LastSession()
			ts.Drain = drainStatus(t.Drain(now))
			gs.Targets = append(gs.Targets, ts)
		}
		sn.Groups = append(sn.Groups, gs)
	}
	return sn
}

// Group returns the named group's status, or nil.
func (sn *Snapshot) Group(name string) *GroupStatus {
	for i := range sn.Groups {
		if sn.Groups[i].Name == name {
			return &sn.Groups[i]
		}
	}
	return nil
}

func drainStatus(d *target.DrainStatus) *DrainStatus {
	if d == nil {
		return nil
	}
	return &DrainStatus{Mode: d.Mode.String(), Since: d.Since, Deadline: d.Deadline, Idle: d.Idle,
		SessionsLeft: d.SessionsLeft, LastSession: d.LastSession, Complete: d.Complete, CompletedAt: d.CompletedAt}
}

// HTTP2Counters calls f with each listener's HTTP/2 engine counters: the
// connections and streams it served, and what it refused (attacks among
// them). It takes no lock.
func (s *Server) HTTP2Counters(f func(listener string, c *h2.Counters)) {
	for _, l := range s.published.Load().listeners {
		f(l.name, l.h2)
	}
}
