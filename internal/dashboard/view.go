package dashboard

import (
	"math"
	"time"

	"github.com/latch-lb/latch/internal/cluster"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/target"
)

// message is one state the stream sends: the running state, with each
// target's rates and response times.
type message struct {
	Time      time.Time      `json:"time"`
	Version   uint64         `json:"version"`
	Cause     string         `json:"cause"`   // "hello", "tick", or the event that prompted it
	Metrics   bool           `json:"metrics"` // rates and response times are known
	Listeners []listenerView `json:"listeners"`
	Groups    []groupView    `json:"groups"`
	// Cluster is this node's view of its cluster; nil for a lone latch.
	Cluster *clusterView `json:"cluster,omitempty"`
}

// clusterView is what the page shows of cluster mode: the nodes, and
// whether etcd answers (while it does not, writes are refused).
type clusterView struct {
	Node      string     `json:"node"`
	Nodes     []string   `json:"nodes"`
	EtcdUp    bool       `json:"etcd_up"`
	DownSince *time.Time `json:"etcd_down_since,omitempty"`
	Revision  int64      `json:"revision"`
	// Disagree lists, per group, the targets whose health the nodes see
	// otherwise: target -> node -> state.
	Disagree map[string]map[string]map[string]string `json:"disagree,omitempty"`
}

func clusterOf(st cluster.Status) *clusterView {
	v := &clusterView{Node: st.Node, Nodes: []string{}, EtcdUp: st.Up, DownSince: when(st.DownSince), Revision: st.Applied}
	seen := map[string]map[string]map[string]string{} // group -> target -> node -> state
	for _, n := range st.Nodes {
		v.Nodes = append(v.Nodes, n.Name)
		for g, ts := range n.Health {
			for id, state := range ts {
				if seen[g] == nil {
					seen[g] = map[string]map[string]string{}
				}
				if seen[g][id] == nil {
					seen[g][id] = map[string]string{}
				}
				seen[g][id][n.Name] = state
			}
		}
	}
	for g, ts := range seen {
		for id, byNode := range ts {
			first, differ := "", false
			for _, state := range byNode {
				if first == "" {
					first = state
				} else if state != first {
					differ = true
				}
			}
			if differ {
				if v.Disagree == nil {
					v.Disagree = map[string]map[string]map[string]string{}
				}
				if v.Disagree[g] == nil {
					v.Disagree[g] = map[string]map[string]string{}
				}
				v.Disagree[g][id] = byNode
			}
		}
	}
	return v
}

type listenerView struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	Protocol string `json:"protocol"`
	Rules    int    `json:"rules"`
	Default  string `json:"default"` // the default action: its group, or its type
}

type groupView struct {
	Name       string       `json:"name"`
	Algorithm  string       `json:"algorithm"`
	Stickiness string       `json:"stickiness"` // its type, or "" when off
	Targets    []targetView `json:"targets"`
}

type targetView struct {
	ID              string    `json:"id"`
	State           string    `json:"state"`
	Reason          string    `json:"reason"`
	Description     string    `json:"description"`
	Since           time.Time `json:"since"`
	Weight          int       `json:"weight"`
	EffectiveWeight float64   `json:"effective_weight"` // in units of Weight: lower during slow start or anomaly mitigation
	Inflight        int64     `json:"inflight"`
	Routable        bool      `json:"routable"`
	Drained         bool      `json:"drained"`
	Ejected         bool      `json:"ejected"`
	Anomaly         string    `json:"anomaly"`
	// Sessions estimates the distinct sticky sessions the target served
	// in the last 5 minutes; LastSession is the last one's time.
	Sessions    int        `json:"sessions"`
	LastSession *time.Time `json:"last_session,omitempty"`
	Drain       *drainView `json:"drain,omitempty"` // nil: not drained
	rates
}

// drainView is a drain's progress.
type drainView struct {
	Mode         string     `json:"mode"`
	Since        time.Time  `json:"since"`
	IdleSeconds  float64    `json:"idle_seconds"`
	Deadline     *time.Time `json:"deadline,omitempty"`
	SessionsLeft int        `json:"sessions_left"`
	LastSeen     *time.Time `json:"last_seen,omitempty"` // the last sticky request since the drain began
	Complete     bool       `json:"complete"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
}

// when is t, or nil for the zero time (never).
func when(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func drainOf(d *server.DrainStatus) *drainView {
	if d == nil {
		return nil
	}
	return &drainView{Mode: d.Mode, Since: d.Since, IdleSeconds: d.Idle.Seconds(), Deadline: when(d.Deadline),
		SessionsLeft: d.SessionsLeft, LastSeen: when(d.LastSession), Complete: d.Complete, CompletedAt: when(d.CompletedAt)}
}

// rates are a target's figures from the metrics' totals; nil where they
// are not known (no metrics, or no request in the window).
type rates struct {
	Rate      *float64 `json:"rate"`       // requests a second over the last tick
	ErrorRate *float64 `json:"error_rate"` // errors a second over the last tick
	P50       *float64 `json:"p50_ms"`     // response time over the window
	P99       *float64 `json:"p99_ms"`
}

// view makes the message of a snapshot, with the rates r has for each
// target.
func view(sn *server.Snapshot, cause string, r map[key]rates) message {
	m := message{Time: time.Now(), Version: sn.Version, Cause: cause, Metrics: r != nil,
		Listeners: []listenerView{}, Groups: []groupView{}}
	byName := map[string]config.Listener{}
	groups := map[string]config.TargetGroup{}
	if sn.Config != nil {
		for _, l := range sn.Config.Listeners {
			byName[l.Name] = l
		}
		for _, g := range sn.Config.TargetGroups {
			groups[g.Name] = g
		}
	}
	for _, l := range sn.Listeners {
		lv := listenerView{Name: l.Name, Addr: l.Addr}
		if c, ok := byName[l.Name]; ok {
			lv.Protocol = c.Protocol.String()
			lv.Rules = len(c.Rules)
			lv.Default = c.DefaultAction.Type.String()
			if c.DefaultAction.TargetGroup != "" {
				lv.Default += " to " + c.DefaultAction.TargetGroup
			}
		}
		m.Listeners = append(m.Listeners, lv)
	}
	for _, g := range sn.Groups {
		gv := groupView{Name: g.Name, Targets: []targetView{}}
		if c, ok := groups[g.Name]; ok {
			gv.Algorithm = c.Algorithm.String()
			if c.Stickiness.Enabled {
				gv.Stickiness = c.Stickiness.Type.String()
			}
		}
		for _, t := range g.Targets {
			tv := targetView{ID: t.ID, State: t.State.String(), Reason: t.Reason, Description: t.Description,
				Since: t.Since, Weight: t.Weight, EffectiveWeight: math.Round(float64(t.EffectiveWeight)/target.WeightUnit*100) / 100, Inflight: t.Inflight,
				Routable: t.Routable, Drained: t.Drained, Ejected: t.Ejected, Anomaly: t.Anomaly,
				Sessions: t.Sessions, LastSession: when(t.LastSession), Drain: drainOf(t.Drain),
				rates: r[key{g.Name, t.ID}]}
			gv.Targets = append(gv.Targets, tv)
		}
		m.Groups = append(m.Groups, gv)
	}
	return m
}
