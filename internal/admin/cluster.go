package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/cluster"
)

// Cluster is cluster mode's part of the API (cluster.Cluster).
type Cluster interface {
	Status() cluster.Status
	Rotate(ctx context.Context) (uint32, error)
}

func (a *Admin) registerCluster(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/health", a.endpoint(false, a.health))
	mux.Handle("GET /api/v1/cluster", a.endpoint(false, a.clusterStatus))
	mux.Handle("GET /api/v1/cluster/nodes", a.endpoint(false, a.clusterNodes))
	mux.Handle("GET /api/v1/cluster/keys", a.endpoint(false, a.clusterKeys))
	mux.Handle("POST /api/v1/cluster/keys/rotate", a.endpoint(true, a.rotateKeys))
}

// errNoCluster answers the cluster's endpoints on a lone latch.
var errNoCluster = notFound("cluster mode is off on this node (the config file has no cluster section)")

// clusterStatus is GET /api/v1/cluster: this node's view of the cluster,
// etcd's state, every node's record and the cookie key ring (no secret).
func (a *Admin) clusterStatus(*http.Request) (reply, error) {
	if a.o.Cluster == nil {
		return reply{}, errNoCluster
	}
	return reply{body: a.o.Cluster.Status()}, nil
}

// NodeList is GET /api/v1/cluster/nodes.
type NodeList struct {
	Node  string               `json:"node"` // the node answering
	Nodes []cluster.NodeRecord `json:"nodes"`
}

func (a *Admin) clusterNodes(*http.Request) (reply, error) {
	if a.o.Cluster == nil {
		return reply{}, errNoCluster
	}
	st := a.o.Cluster.Status()
	return reply{body: NodeList{Node: st.Node, Nodes: st.Nodes}}, nil
}

// KeyList is GET /api/v1/cluster/keys, and POST .../keys/rotate's answer
// (with the key it added).
type KeyList struct {
	Added uint32              `json:"added,omitempty"`
	Keys  []cluster.KeyStatus `json:"keys"`
}

func (a *Admin) clusterKeys(*http.Request) (reply, error) {
	if a.o.Cluster == nil {
		return reply{}, errNoCluster
	}
	return reply{body: KeyList{Keys: a.o.Cluster.Status().Keys}}, nil
}

// rotateKeys starts a key rotation: a new key opens cookies on every node
// first, then seals.
func (a *Admin) rotateKeys(r *http.Request) (reply, error) {
	if a.o.Cluster == nil {
		return reply{}, errNoCluster
	}
	id, err := a.o.Cluster.Rotate(r.Context())
	if err != nil {
		if ae := asAPIError(err); ae.status != http.StatusInternalServerError {
			return reply{}, ae
		}
		return reply{}, &apiError{status: http.StatusConflict, msg: err.Error()}
	}
	a.o.Log.Info("admin: cookie key rotation started", "key", id)
	return reply{status: http.StatusAccepted, body: KeyList{Added: id, Keys: a.o.Cluster.Status().Keys}}, nil
}

// nodesView fills each target's per-node health: every node runs its own
// health checks, as ALB's do, and the view says where they disagree.
func (a *Admin) nodesView(group string, ts []Target) {
	if a.o.Cluster == nil {
		return
	}
	nodes := a.o.Cluster.Status().Nodes
	for i := range ts {
		t := &ts[i]
		t.Nodes = map[string]string{}
		for _, n := range nodes {
			if s, ok := n.Health[group][t.ID]; ok {
				t.Nodes[n.Name] = s
			}
		}
		states := slices.Collect(func(yield func(string) bool) {
			for _, s := range t.Nodes {
				if !yield(s) {
					return
				}
			}
		})
		slices.Sort(states)
		t.NodesDisagree = len(slices.Compact(states)) > 1
		if t.Drain != nil {
			t.Drain.NodesSessionsLeft = map[string]int{}
			for _, n := range nodes {
				if s, ok := n.Sessions[group][t.ID]; ok {
					t.Drain.NodesSessionsLeft[n.Name] = s.Left
				}
			}
		}
	}
}

// Health is GET /api/v1/health: whether the node serves, and what is
// wrong that does not stop it (etcd away in cluster mode). It answers 200
// while the node serves, degraded or not, so that a balancer in front of
// latch nodes keeps a node that serves on while etcd is away; read
// "status" to tell.
type Health struct {
	Status   string   `json:"status"` // "ok" or "degraded"
	Problems []string `json:"problems"`
	// Version is the running config's version (the number of changes
	// applied since start).
	Version uint64 `json:"config_version"`
	// Cluster is the cluster's state as this node sees it (cluster mode).
	Cluster *HealthCluster `json:"cluster,omitempty"`
}

// HealthCluster is the cluster part of Health.
type HealthCluster struct {
	Node      string `json:"node"`
	EtcdUp    bool   `json:"etcd_up"`
	DownSince string `json:"etcd_down_since,omitempty"`
	Revision  int64  `json:"revision_applied"`
	Nodes     int    `json:"nodes"`
}

func (a *Admin) health(*http.Request) (reply, error) {
	h := Health{Status: "ok", Problems: []string{}, Version: a.o.Server.Snapshot().Version}
	if a.o.Cluster != nil {
		st := a.o.Cluster.Status()
		h.Cluster = &HealthCluster{Node: st.Node, EtcdUp: st.Up, Revision: st.Applied, Nodes: len(st.Nodes)}
		if !st.Up {
			h.Status = "degraded"
			h.Cluster.DownSince = st.DownSince.Format(time.RFC3339)
			h.Problems = append(h.Problems, fmt.Sprintf("etcd at %s cannot be reached since %s: this node serves the state it last applied (revision %d) and refuses admin writes until etcd returns",
				strings.Join(st.Endpoints, ", "), h.Cluster.DownSince, st.Applied))
		}
	}
	return reply{body: h}, nil
}
