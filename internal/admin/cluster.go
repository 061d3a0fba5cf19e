package admin

import (
	"context"
	"net/http"
	"slices"

	"github.com/latch-lb/latch/internal/cluster"
)

// Cluster is cluster mode's part of the API (cluster.Cluster).
type Cluster interface {
	Status() cluster.Status
	Rotate(ctx context.Context) (uint32, error)
}

func (a *Admin) registerCluster(mux *http.ServeMux) {
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
