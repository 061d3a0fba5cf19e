package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/target"
)

// TargetGroupSummary is one group in GET /api/v1/target-groups.
type TargetGroupSummary struct {
	Name            string `json:"name"`
	ProtocolVersion string `json:"protocol_version"`
	Targets         int    `json:"targets"` // registered
	Healthy         int    `json:"healthy"` // ALB's HealthyHostCount
	Unhealthy       int    `json:"unhealthy"`
	Version         string `json:"version"` // the group's ETag
}

// TargetGroup is one group with its attributes and targets.
type TargetGroup struct {
	Name            string            `json:"name"`
	ProtocolVersion string            `json:"protocol_version"`
	HealthCheck     HealthCheck       `json:"health_check"`
	Attributes      map[string]string `json:"attributes"`
	Targets         []Target          `json:"targets"`
	Version         string            `json:"version"`
	// Discovery is the group's DNS discovery as it runs; absent without.
	Discovery *DiscoveryView `json:"discovery,omitempty"`
}

// HealthCheck is a group's health check in the file's terms.
type HealthCheck struct {
	Enabled                 bool    `json:"enabled"`
	Protocol                string  `json:"protocol"`
	Port                    string  `json:"port"` // "traffic-port" or a number
	Path                    string  `json:"path"`
	IntervalSeconds         float64 `json:"interval_seconds"`
	TimeoutSeconds          float64 `json:"timeout_seconds"`
	HealthyThresholdCount   int     `json:"healthy_threshold_count"`
	UnhealthyThresholdCount int     `json:"unhealthy_threshold_count"`
	Matcher                 string  `json:"matcher"`
	UserAgent               string  `json:"user_agent"`
}

// Target is one target with its health as ALB's DescribeTargetHealth
// gives it (TargetHealth.State, Reason, Description: Reason and
// Description empty when healthy), and latch's own state besides.
type Target struct {
	ID          string `json:"id"`
	Weight      int    `json:"weight"`
	State       string `json:"state"`
	Reason      string `json:"reason"`
	Description string `json:"description"`
	InFlight    int64  `json:"in_flight"`
	// Sessions estimates the distinct sticky sessions the target served
	// in the last 5 minutes; LastSession is the last one's time.
	Sessions    int    `json:"sessions"`
	LastSession string `json:"last_session,omitempty"`
	// Drain is the target's runtime drain; null when not drained.
	Drain *Drain `json:"drain"`
	// Registered is false for a deregistered target still draining its
	// requests (state draining, reason Target.DeregistrationInProgress).
	Registered bool   `json:"registered"`
	Since      string `json:"since"` // when State was entered, RFC 3339
	// Checks is what the health checks say, which differs from State
	// while the target is drained.
	Checks string `json:"checks_state"`
	// EffectiveWeight is the weight new picks use now, in
	// target.WeightUnit (64) per unit of Weight: slow start and anomaly
	// mitigation lower it.
	EffectiveWeight int    `json:"effective_weight"`
	Anomaly         string `json:"anomaly,omitempty"`
	Mitigated       bool   `json:"mitigation_in_effect,omitempty"`
	Ejected         bool   `json:"ejected,omitempty"`
	EjectedUntil    string `json:"ejected_until,omitempty"`
	Generation      uint64 `json:"generation"`
	Version         string `json:"version,omitempty"` // the target's ETag; "" once deregistered
	// Nodes, in cluster mode, is each node's health state of the target
	// (every node checks for itself), and NodesDisagree says they differ.
	Nodes         map[string]string `json:"nodes,omitempty"`
	NodesDisagree bool              `json:"nodes_disagree,omitempty"`
	// Discovered says DNS discovery registered the target.
	Discovered bool `json:"discovered,omitempty"`
}

// Drain is a target's runtime drain and its progress.
type Drain struct {
	Mode        string  `json:"mode"`  // keep_sessions or immediate
	Since       string  `json:"since"` // when it began
	IdleSeconds float64 `json:"idle_seconds"`
	// Deadline is when the sessions left move whatever they do; "" for
	// none.
	Deadline string `json:"deadline,omitempty"`
	// SessionsLeft estimates the distinct sessions seen on the target
	// within the idle window; 0 once complete.
	SessionsLeft int    `json:"sessions_left"`
	LastSeen     string `json:"last_seen,omitempty"` // the last sticky request since the drain began
	// Complete says the target may be stopped: no session came for the
	// idle window, the deadline passed, or the drain is immediate and
	// nothing is in flight.
	Complete    bool   `json:"complete"`
	CompletedAt string `json:"completed_at,omitempty"`
	// NodesSessionsLeft, in cluster mode, is each node's estimate of the
	// sessions it saw on the target within the idle window (as of its
	// last report): the drain completes when no node has seen one.
	NodesSessionsLeft map[string]int `json:"nodes_sessions_left,omitempty"`
}

// etagOf is a resource's version (its ETag, unquoted): a hash of what its config holds, so
// that a change to one target does not make a client's version of
// another stale.
func etagOf(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// configETag is the running config's version, for what spans the whole
// config (lists, the config, the diff).
func configETag(version uint64) string { return fmt.Sprintf("v%d", version) }

func seconds(d time.Duration) float64 { return d.Seconds() }

func healthCheckView(hc config.HealthCheck) HealthCheck {
	port := "traffic-port"
	if hc.Port != 0 {
		port = fmt.Sprint(hc.Port)
	}
	return HealthCheck{Enabled: hc.Enabled, Protocol: hc.Protocol.String(), Port: port, Path: hc.Path,
		IntervalSeconds: seconds(hc.Interval), TimeoutSeconds: seconds(hc.Timeout),
		HealthyThresholdCount: hc.HealthyThreshold, UnhealthyThresholdCount: hc.UnhealthyThreshold,
		Matcher: hc.Matcher.String(), UserAgent: hc.UserAgent}
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// targetView renders ts; ct is its config entry, nil once deregistered.
func targetView(ts *server.TargetStatus, ct *config.Target) Target {
	t := Target{ID: ts.ID, Registered: ct != nil, Weight: ts.Weight,
		State: ts.State.String(), Reason: ts.Reason, Description: ts.Health.Description,
		Since: timeString(ts.Since), Checks: ts.Checks.State.String(),
		InFlight: ts.Inflight, EffectiveWeight: ts.EffectiveWeight,
		Anomaly: ts.Anomaly, Mitigated: ts.Mitigated, Generation: ts.Generation}
	if ts.State == target.Healthy {
		t.Reason, t.Description = "", "" // ALB gives neither for a healthy target
	}
	if ts.Ejected {
		t.Ejected, t.EjectedUntil = true, timeString(ts.EjectedUntil)
	}
	t.Sessions, t.LastSession = ts.Sessions, timeString(ts.LastSession)
	if d := ts.Drain; d != nil {
		t.Drain = &Drain{Mode: d.Mode, Since: timeString(d.Since), IdleSeconds: d.Idle.Seconds(),
			Deadline: timeString(d.Deadline), SessionsLeft: d.SessionsLeft, LastSeen: timeString(d.LastSession),
			Complete: d.Complete, CompletedAt: timeString(d.CompletedAt)}
	}
	if ct != nil {
		t.Version = etagOf(ct)
		t.Discovered = ct.Discovered
	}
	return t
}

// groupTargets renders a group's targets: registered ones in the config's
// order, then deregistered ones still draining.
func groupTargets(gc *config.TargetGroup, gs *server.GroupStatus) []Target {
	out := []Target{}
	if gs == nil {
		return out
	}
	for i := range gs.Targets {
		ts := &gs.Targets[i]
		out = append(out, targetView(ts, gc.Target(ts.ID)))
	}
	return out
}

func groupView(gc *config.TargetGroup, gs *server.GroupStatus) TargetGroup {
	return TargetGroup{Name: gc.Name, ProtocolVersion: gc.ProtocolVersion.String(),
		HealthCheck: healthCheckView(gc.HealthCheck), Attributes: gc.Attributes(),
		Targets: groupTargets(gc, gs), Version: etagOf(gc)}
}

func groupSummary(gc *config.TargetGroup, gs *server.GroupStatus) TargetGroupSummary {
	s := TargetGroupSummary{Name: gc.Name, ProtocolVersion: gc.ProtocolVersion.String(),
		Targets: len(gc.Targets), Version: etagOf(gc)}
	if gs != nil {
		for _, t := range gs.Targets {
			if gc.Target(t.ID) == nil {
				continue
			}
			switch t.State {
			case target.Healthy, target.Unavailable:
				s.Healthy++
			case target.Unhealthy:
				s.Unhealthy++
			}
		}
	}
	return s
}
