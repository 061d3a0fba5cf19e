package cluster_test

// The admin API's cluster endpoints against a real cluster node: here, in
// an external test package, so that admin's own test binary (fuzzed in
// CI) does not carry an etcd server.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/cluster"
	"github.com/latch-lb/latch/internal/cluster/etcdtest"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

const testToken = "t0ken-for-tests"

var quiet = slog.New(slog.DiscardHandler)

type harness struct {
	srv     *server.Server
	adm     *admin.Admin
	base    string
	targets []string
}

type req struct {
	method, path, body string
	token              string // "-" for none
}

type response struct {
	status int
	body   []byte
}

func (h *harness) do(t *testing.T, q req) response {
	t.Helper()
	r, err := http.NewRequest(q.method, h.base+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	if q.token != "-" {
		r.Header.Set("Authorization", "Bearer "+testToken)
	}
	if q.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: b}
}

func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status: got %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response body %q: %v", r.body, err)
	}
}

func (r response) errorBody(t *testing.T) admin.ErrorBody {
	t.Helper()
	var e admin.ErrorBody
	r.json(t, &e)
	if e.Error == "" {
		t.Fatalf("error body %s has no error message", r.body)
	}
	return e
}

// backend starts a real target on loopback whose /healthz answers 200.
func backend(t *testing.T) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// clusterHarness is one cluster node with its admin API, in this process.
func clusterHarness(t *testing.T, e *etcdtest.Etcd, interval time.Duration) (*harness, *cluster.Cluster) {
	t.Helper()
	dir := t.TempDir()
	h := &harness{targets: []string{backend(t)}}
	file := filepath.Join(dir, "latch.yaml")
	y := `listeners:
  - name: public
    address: 127.0.0.1:0
    default_action: {type: forward, forward: {target_group: web}}
target_groups:
  - name: web
    targets: [{id: "` + h.targets[0] + `"}]
    health_check: {path: /healthz, interval_seconds: 0.1, timeout_seconds: 0.05, healthy_threshold_count: 2}
    attributes: {stickiness.enabled: "true"}
state_dir: state
admin: {address: 127.0.0.1:0}
cluster:
  etcd: {endpoints: [` + e.Endpoint() + `]}
  node_name: n1
`
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := cluster.Open(context.Background(), cluster.Options{Config: cfg.Cluster, Node: "n1", StateDir: cfg.StateDir,
		Timeout: time.Second, NodeInterval: interval, Log: quiet}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if h.srv, err = server.New(server.Options{Store: cl, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cl.Run(h.srv)
	t.Cleanup(func() {
		cl.Close()
		h.srv.Shutdown(context.Background())
	})
	if h.adm, err = admin.Start(admin.Options{Server: h.srv, Address: "127.0.0.1:0", Token: testToken, Log: quiet, Cluster: cl}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.adm.Shutdown(context.Background()) })
	h.base = "http://" + h.adm.Addr()
	return h, cl
}

func TestClusterEndpoints(t *testing.T) {
	e := etcdtest.Start(t)
	// No tick after the first: a rotation stays under way.
	h, cl := clusterHarness(t, e, time.Hour)
	// The node's record comes back through its watch.
	for deadline := time.Now().Add(10 * time.Second); cl.NodeCount() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no node record within 10 s")
		}
	}
	var st cluster.Status
	h.do(t, req{method: "GET", path: "/api/v1/cluster", token: "-"}).want(t, http.StatusOK).json(t, &st)
	if st.Node != "n1" || !st.Up || len(st.Nodes) != 1 || len(st.Keys) != 1 || st.Keys[0].State != "sealing" {
		t.Errorf("GET /api/v1/cluster: %+v, want node n1, etcd up, one node, one sealing key", st)
	}
	var nl admin.NodeList
	h.do(t, req{method: "GET", path: "/api/v1/cluster/nodes", token: "-"}).want(t, http.StatusOK).json(t, &nl)
	if nl.Node != "n1" || len(nl.Nodes) != 1 || nl.Nodes[0].Health["web"][h.targets[0]] == "" {
		t.Errorf("GET /api/v1/cluster/nodes: %+v, want n1 with its view of %s", nl, h.targets[0])
	}
	h.do(t, req{method: "POST", path: "/api/v1/cluster/keys/rotate", token: "-"}).want(t, http.StatusUnauthorized)
	var kl admin.KeyList
	h.do(t, req{method: "POST", path: "/api/v1/cluster/keys/rotate"}).want(t, http.StatusAccepted).json(t, &kl)
	if kl.Added == 0 || len(kl.Keys) != 2 {
		t.Fatalf("rotate: %+v, want a key added and two in the ring", kl)
	}
	e2 := h.do(t, req{method: "POST", path: "/api/v1/cluster/keys/rotate"}).want(t, http.StatusConflict).errorBody(t)
	if !strings.Contains(e2.Error, "rotation is under way") {
		t.Errorf("a second rotation: %q, want it to say one is under way", e2.Error)
	}
	var tl admin.TargetList
	h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/targets", token: "-"}).want(t, http.StatusOK).json(t, &tl)
	if len(tl.Targets) != 1 || tl.Targets[0].Nodes["n1"] == "" || tl.Targets[0].NodesDisagree {
		t.Errorf("targets in cluster mode: %+v, want n1's view and no disagreement", tl.Targets)
	}
}

func TestClusterEtcdAwayInTheAPI(t *testing.T) {
	e := etcdtest.Start(t)
	h, cl := clusterHarness(t, e, 100*time.Millisecond)
	e.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for cl.EtcdUp() {
		if time.Now().After(deadline) {
			t.Fatal("the node still sees etcd up 15 s after it stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var hl admin.Health
	h.do(t, req{method: "GET", path: "/api/v1/health", token: "-"}).want(t, http.StatusOK).json(t, &hl)
	if hl.Status != "degraded" || len(hl.Problems) != 1 || !strings.Contains(hl.Problems[0], e.Endpoint()) ||
		hl.Cluster == nil || hl.Cluster.EtcdUp {
		t.Errorf("health with etcd away: %+v, want degraded, naming %s", hl, e.Endpoint())
	}
	body := `{"targets": [{"id": "127.0.0.1:1", "weight": 2}]}`
	eb := h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: body}).want(t, http.StatusServiceUnavailable).errorBody(t)
	if !strings.Contains(eb.Error, "nothing changed") || !strings.Contains(eb.Error, e.Endpoint()) || !strings.Contains(eb.Error, "refused") {
		t.Errorf("a write with etcd away: %q, want it to name etcd and say the write is refused", eb.Error)
	}
	_, running, _ := h.srv.Configs()
	if running.TargetGroup("web").Target("127.0.0.1:1") != nil {
		t.Error("the refused write was applied")
	}
}
