package server

import "github.com/latch-lb/latch/internal/target"

// EachTarget calls f for every target of every group, as Snapshot lists
// them (registered, then still draining), with the target itself: metrics
// keep counters per target and read what the target counts for anomaly
// detection (Target.Outcomes), which a Snapshot does not carry. It takes no
// lock; f must not keep t past the target's removal.
func (s *Server) EachTarget(f func(group string, t *target.Target)) {
	for _, g := range s.published.Load().groups {
		v := g.View()
		for _, t := range v.Targets {
			f(g.Name, t)
		}
		for _, t := range v.Draining {
			f(g.Name, t)
		}
	}
}
