package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/latch-lb/latch/internal/cluster/etcdtest"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// app is a real HTTP target that says who it is.
type app struct {
	name string
	addr string
	hits atomic.Int64
}

func startApp(t *testing.T, name string) *app {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{name: name, addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			a.hits.Add(1)
		}
		// latch tells the app, on the request, that a session moved.
		w.Header().Set("X-Moved-From", r.Header.Get("X-Latch-Session-Moved"))
		io.WriteString(w, a.name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

// node is one latch of the cluster, in this process.
type node struct {
	name string
	srv  *server.Server
	cl   *Cluster
	url  string
	dir  string
	cfg  *config.Config
}

func nodeConfig(t *testing.T, dir, endpoint, name string, targets []string, clusterLines ...string) *config.Config {
	t.Helper()
	var ts strings.Builder
	for _, a := range targets {
		fmt.Fprintf(&ts, "      - id: %q\n", a)
	}
	y := fmt.Sprintf(`listeners:
  - name: web
    address: 127.0.0.1:0
    default_action: {type: forward, forward: {target_groups: [{name: app}]}}
target_groups:
  - name: app
    targets:
%s    health_check: {path: /healthz, interval_seconds: 5, timeout_seconds: 2, healthy_threshold_count: 2}
    attributes:
      stickiness.enabled: "true"
      stickiness.type: lb_cookie
state_dir: %s
admin: {enabled: false}
cluster:
  etcd: {endpoints: [%s], prefix: /latch-test}
  node_name: %s
%s`, ts.String(), dir, endpoint, name, strings.Join(clusterLines, ""))
	cfg, err := config.Parse([]byte(y), filepath.Join(dir, "latch.yaml"))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

func startNode(t *testing.T, e *etcdtest.Etcd, name string, targets []string) *node {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "latch-cluster-test-"+name+"-"+fmt.Sprint(time.Now().UnixNano()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return startNodeIn(t, e, name, dir, targets)
}

func startNodeIn(t *testing.T, e *etcdtest.Etcd, name, dir string, targets []string, clusterLines ...string) *node {
	t.Helper()
	return openNode(t, name, dir, nodeConfig(t, dir, e.Endpoint(), name, targets, clusterLines...))
}

func (n *node) stop() {
	n.cl.Close()
	n.srv.Shutdown(context.Background())
}

// targets returns the node's running targets of group app: id -> weight.
func (n *node) targets() map[string]int {
	_, running, _ := n.srv.Configs()
	out := map[string]int{}
	for _, t := range running.TargetGroup("app").Targets {
		out[t.ID] = t.Weight
	}
	return out
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func register(t *testing.T, n *node, id string, weight int) error {
	t.Helper()
	return n.srv.Update(context.Background(), func(cfg *config.Config) error {
		g := cfg.TargetGroup("app")
		if tg := g.Target(id); tg != nil {
			tg.Weight = weight
			return nil
		}
		g.Targets = append(g.Targets, config.Target{ID: id, Weight: weight})
		return nil
	})
}

func TestChangesReachEveryNode(t *testing.T) {
	e := etcdtest.Start(t)
	a1, a2 := startApp(t, "a1"), startApp(t, "a2")
	na := startNode(t, e, "a", []string{a1.addr})
	nb := startNode(t, e, "b", []string{a1.addr, "127.0.0.9:1"}) // b's file differs: the cluster's state wins
	nc := startNode(t, e, "c", nil)
	for _, n := range []*node{na, nb, nc} {
		if got := n.targets(); len(got) != 1 || got[a1.addr] != 1 {
			t.Fatalf("node %s runs %v, want the first node's seed {%s: 1}", n.name, got, a1.addr)
		}
	}
	if err := register(t, na, a2.addr, 3); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, time.Second, "a registration on a reaching c", func() bool { return nc.targets()[a2.addr] == 3 })
	t.Logf("a registration on node a ran on node c after %v", took)
	if err := register(t, nc, a2.addr, 7); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "a weight on c reaching a and b", func() bool { return na.targets()[a2.addr] == 7 && nb.targets()[a2.addr] == 7 })
	gens := map[uint64]bool{}
	for _, n := range []*node{na, nb, nc} {
		for _, g := range n.srv.Snapshot().Groups {
			for _, ts := range g.Targets {
				if ts.ID == a2.addr {
					gens[ts.Generation] = true
				}
			}
		}
	}
	if len(gens) != 1 {
		t.Errorf("the nodes run %s with generations %v, want one", a2.addr, gens)
	}
}

func TestStickinessAcrossNodes(t *testing.T) {
	e := etcdtest.Start(t)
	apps := []*app{startApp(t, "a1"), startApp(t, "a2"), startApp(t, "a3")}
	var ids []string
	for _, a := range apps {
		ids = append(ids, a.addr)
	}
	nodes := []*node{startNode(t, e, "a", ids), startNode(t, e, "b", ids), startNode(t, e, "c", ids)}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "targets healthy on "+n.name, func() bool {
			for _, g := range n.srv.Snapshot().Groups {
				for _, ts := range g.Targets {
					if !ts.Routable {
						return false
					}
				}
			}
			return true
		})
	}
	var cookie, first string
	for i := range 300 {
		n := nodes[i%3]
		req, _ := http.NewRequest("GET", n.url+"/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "AWSALB" {
				cookie = "AWSALB=" + c.Value
			}
		}
		if first == "" {
			first = string(body)
		}
		if string(body) != first || resp.Header.Get("X-Moved-From") != "" {
			t.Fatalf("request %d through node %s reached %s (moved %q), want %s", i, n.name, body, resp.Header.Get("X-Moved-From"), first)
		}
	}
}

func TestCompactionForcesAResync(t *testing.T) {
	e := etcdtest.Start(t)
	a1, a2, a3 := startApp(t, "a1"), startApp(t, "a2"), startApp(t, "a3")
	na := startNode(t, e, "a", []string{a1.addr})
	nc := startNode(t, e, "c", []string{a1.addr})
	dir := nc.dir
	nc.stop()
	if err := register(t, na, a2.addr, 2); err != nil {
		t.Fatal(err)
	}
	if err := register(t, na, a3.addr, 3); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(context.Background(), "/latch-test/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	// c starts from etcd (up), so it reads everything; to make its watch
	// start behind the compaction, it must start from its snapshot: etcd
	// down at its start, then back.
	e.Stop()
	nc2 := startNodeIn(t, e, "c", dir, []string{a1.addr})
	if got := nc2.targets(); len(got) != 1 {
		t.Fatalf("c from its snapshot runs %v, want only %s", got, a1.addr)
	}
	e.Start()
	waitFor(t, 15*time.Second, "c resyncs after the compaction", func() bool {
		got := nc2.targets()
		return got[a2.addr] == 2 && got[a3.addr] == 3
	})
	if nc2.cl.Resyncs() == 0 {
		t.Errorf("c caught up without a resync")
	}
}

// get sends one request through n, with cookie if not "", and returns the
// app that answered, the AWSALB cookie set, and the moved header.
func get(t *testing.T, n *node, cookie string) (body, setCookie, moved string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.url+"/", nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("through %s: %v", n.name, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("through %s: %d %s", n.name, resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "AWSALB" {
			setCookie = "AWSALB=" + c.Value
		}
	}
	return string(b), setCookie, resp.Header.Get("X-Moved-From")
}

func healthy(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "targets routable on "+n.name, func() bool {
			for _, g := range n.srv.Snapshot().Groups {
				if len(g.Targets) == 0 {
					return false
				}
				for _, ts := range g.Targets {
					if !ts.Routable && ts.Drain == nil {
						return false
					}
				}
			}
			return true
		})
	}
}

// drainStatus is how n sees the drain of id.
func drainStatus(n *node, id string) *server.DrainStatus {
	for _, g := range n.srv.Snapshot().Groups {
		for _, ts := range g.Targets {
			if ts.ID == id {
				return ts.Drain
			}
		}
	}
	return nil
}

// TestDrainWaitsForEveryNodesSessions: a keep_sessions drain started on
// node b is not complete while node a still serves a session on the
// target, though b sees none; it completes once they stop.
func TestDrainWaitsForEveryNodesSessions(t *testing.T) {
	e := etcdtest.Start(t)
	a1, a2 := startApp(t, "a1"), startApp(t, "a2")
	na := startNode(t, e, "a", []string{a1.addr, a2.addr})
	nb := startNode(t, e, "b", nil)
	healthy(t, na, nb)
	// A session on a1, through a only.
	var cookie string
	for cookie == "" {
		body, c, _ := get(t, na, "")
		if body == "a1" {
			cookie = c
		}
	}
	if err := nb.srv.Drain(context.Background(), "app", a1.addr, config.Drain{Mode: config.DrainKeepSessions, Idle: time.Second}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the drain reaching a", func() bool { return drainStatus(na, a1.addr) != nil })
	// The session goes on through a for 3 s: three idle windows.
	var last time.Time
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		last = time.Now()
		body, _, moved := get(t, na, cookie)
		if body != "a1" || moved != "" {
			t.Fatalf("during the drain the session reached %s (moved %q), want a1", body, moved)
		}
		if d := drainStatus(nb, a1.addr); d == nil || d.Complete {
			t.Fatalf("b completed the drain while a still served its session: %+v", d)
		}
	}
	waitFor(t, 5*time.Second, "the drain completing on b", func() bool {
		d := drainStatus(nb, a1.addr)
		return d != nil && d.Complete
	})
	// Each node decides for itself, once the other's report says it
	// saw no session either: a follows within a report or so.
	waitFor(t, 5*time.Second, "the drain completing on a", func() bool {
		d := drainStatus(na, a1.addr)
		return d != nil && d.Complete
	})
	took := time.Since(last)
	t.Logf("the drain completed on b %v after the last session on a (idle window 1 s)", took)
	if took < time.Second {
		t.Errorf("the drain completed %v after the last session, within its idle window of 1 s", took)
	}
	if body, _, moved := get(t, na, cookie); body != "a2" || moved != a1.addr {
		t.Errorf("after the drain the session reached %s (moved %q), want a2, moved from %s", body, moved, a1.addr)
	}
}

// TestEtcdAway: while etcd is away, the nodes serve on with what they
// applied, writes are refused saying why, a node starts from its
// snapshot; once it is back, a change reaches every node.
func TestEtcdAway(t *testing.T) {
	e := etcdtest.Start(t)
	a1, a2 := startApp(t, "a1"), startApp(t, "a2")
	na := startNode(t, e, "a", []string{a1.addr})
	nb := startNode(t, e, "b", nil)
	healthy(t, na, nb)
	dir := nb.dir
	e.Stop()
	waitFor(t, 10*time.Second, "a seeing etcd away", func() bool { return !na.cl.EtcdUp() })
	for range 20 {
		if body, _, _ := get(t, na, ""); body != "a1" {
			t.Fatalf("during the outage: %s", body)
		}
	}
	err := register(t, na, a2.addr, 1)
	if !errors.Is(err, server.ErrStoreUnavailable) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a write during the outage: %v, want ErrStoreUnavailable saying writes are refused", err)
	}
	if got := na.targets(); len(got) != 1 {
		t.Fatalf("the refused write changed a: %v", got)
	}
	nb.stop()
	nb2 := startNodeIn(t, e, "b", dir, nil)
	healthy(t, nb2)
	if body, _, _ := get(t, nb2, ""); body != "a1" {
		t.Fatalf("b from its snapshot: %s", body)
	}
	e.Start()
	waitFor(t, 15*time.Second, "a seeing etcd back", func() bool { return na.cl.EtcdUp() })
	waitFor(t, 15*time.Second, "b seeing etcd back", func() bool { return nb2.cl.EtcdUp() })
	if err := register(t, na, a2.addr, 4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the change after the outage reaching b", func() bool { return nb2.targets()[a2.addr] == 4 })
}

// TestKeyRotation: a rotation seals with the new key only once every node
// opens with it; sessions sealed before keep their target on every node.
func TestKeyRotation(t *testing.T) {
	e := etcdtest.Start(t)
	a1, a2, a3 := startApp(t, "a1"), startApp(t, "a2"), startApp(t, "a3")
	ids := []string{a1.addr, a2.addr, a3.addr}
	nodes := []*node{startNode(t, e, "a", ids), startNode(t, e, "b", ids), startNode(t, e, "c", ids)}
	healthy(t, nodes...)
	waitFor(t, 5*time.Second, "every node's record", func() bool { return nodes[0].cl.NodeCount() == 3 })
	type session struct{ cookie, target string }
	var sessions []session
	for i := range 12 {
		body, c, _ := get(t, nodes[i%3], "")
		sessions = append(sessions, session{c, body})
	}
	old := nodes[0].cl.Status().Keys[0].ID
	id, err := nodes[1].cl.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[2].cl.Rotate(context.Background()); !errors.Is(err, errRotating) {
		t.Errorf("a second rotation while one is under way: %v", err)
	}
	check := func(when string) {
		for i, s := range sessions {
			for _, n := range nodes {
				if body, _, moved := get(t, n, s.cookie); body != s.target || moved != "" {
					t.Fatalf("%s: session %d through %s reached %s (moved %q), want %s", when, i, n.name, body, moved, s.target)
				}
			}
		}
	}
	check("during the rotation")
	waitFor(t, 10*time.Second, "the new key sealing", func() bool {
		for _, k := range nodes[0].cl.Status().Keys {
			if k.ID == id && k.State == string(keySealing) {
				return true
			}
		}
		return false
	})
	for _, n := range nodes {
		waitFor(t, 2*time.Second, "node "+n.name+" sealing with the new key", func() bool {
			ids := n.srv.KeyIDs()
			return len(ids) == 2 && ids[0] == id && ids[1] == old
		})
	}
	check("after the rotation")
	// A new session is sealed with the new key: it opens on every node,
	// and the ring of a node without the old key would still open it.
	body, c, _ := get(t, nodes[0], "")
	for _, n := range nodes {
		if got, _, moved := get(t, n, c); got != body || moved != "" {
			t.Errorf("a new session through %s reached %s (moved %q), want %s", n.name, got, moved, body)
		}
	}
	for _, k := range nodes[0].cl.Status().Keys {
		if k.ID == old && (k.State != string(keyOld) || k.Retire.Before(time.Now().Add(23*time.Hour))) {
			t.Errorf("the old key: %+v, want old, retiring a day (the longest stickiness) from now", k)
		}
	}
}

// TestConcurrentWritesNeverOverwrite: two nodes change the same target
// at once; one wins, the other is refused with a conflict, and a change
// to another target on a node behind the cluster does not undo the
// first.
func TestConcurrentWritesNeverOverwrite(t *testing.T) {
	e := etcdtest.Start(t)
	a1, a2 := startApp(t, "a1"), startApp(t, "a2")
	na := startNode(t, e, "a", []string{a1.addr, a2.addr})
	nb := startNode(t, e, "b", nil)
	// Stop b's watch: it falls behind the cluster.
	nb.cl.cancel()
	nb.cl.wg.Wait()
	if err := register(t, na, a1.addr, 5); err != nil {
		t.Fatal(err)
	}
	err := register(t, nb, a1.addr, 9)
	if !errors.Is(err, server.ErrStoreConflict) {
		t.Fatalf("b's write on what a changed: %v, want a conflict", err)
	}
	if err := register(t, nb, a2.addr, 3); err != nil {
		t.Fatalf("b's write on another target: %v", err)
	}
	waitFor(t, time.Second, "b's change reaching a", func() bool { return na.targets()[a2.addr] == 3 })
	if got := na.targets()[a1.addr]; got != 5 {
		t.Errorf("b's change undid a's: a1 weighs %d, want 5", got)
	}
}

// TestReloadPushesTheFilesChanges: a reload of one node's file shares
// what the file changed since the node read it, and leaves the rest as
// the cluster has it.
func TestReloadPushesTheFilesChanges(t *testing.T) {
	e := etcdtest.Start(t)
	a1, a2, a3 := startApp(t, "a1"), startApp(t, "a2"), startApp(t, "a3")
	na := startNode(t, e, "a", []string{a1.addr})
	nb := startNode(t, e, "b", []string{a1.addr})
	// A runtime change through b...
	if err := register(t, nb, a2.addr, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "b's change reaching a", func() bool { return na.targets()[a2.addr] == 2 })
	// ...then a's file adds a3: the reload shares a3, and keeps a2.
	file := nodeConfig(t, na.dir, e.Endpoint(), "a", []string{a1.addr, a3.addr})
	if err := na.srv.Apply(context.Background(), file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "a's file change reaching b", func() bool {
		got := nb.targets()
		return got[a3.addr] == 1 && got[a2.addr] == 2 && got[a1.addr] == 1
	})
	if got := na.targets(); len(got) != 3 {
		t.Errorf("a runs %v after its reload, want a1, a2 and a3", got)
	}
}

// TestScheduledKeyRotation: with cluster.key_rotation_days, a sealing key
// older than that is rotated without anyone asking.
func TestScheduledKeyRotation(t *testing.T) {
	e := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// A ring whose key has sealed for two days.
	twoDaysAgo := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	ring := fmt.Sprintf(`{"keys": [{"id": 7, "secret": "%s", "state": "sealing", "added": %q, "sealing": %q}]}`,
		strings.Repeat("A", 43)+"=", twoDaysAgo.Format(time.RFC3339), twoDaysAgo.Format(time.RFC3339))
	if _, err := cli.Put(context.Background(), "/latch-test/keys", ring); err != nil {
		t.Fatal(err)
	}
	a1 := startApp(t, "a1")
	dir := filepath.Join(t.TempDir(), "state")
	n := startNodeIn(t, e, "a", dir, []string{a1.addr}, "  key_rotation_days: 1\n")
	waitFor(t, 10*time.Second, "the scheduled rotation", func() bool {
		ks := n.cl.Status().Keys
		return len(ks) == 2 && ks[0].ID == 7 && ks[0].State == string(keyOld) && ks[1].State == string(keySealing)
	})
	if ids := n.srv.KeyIDs(); len(ids) != 2 || ids[1] != 7 {
		t.Errorf("the node seals with %v, want the new key first, then 7", ids)
	}
}

// TestNodeNamesAreUnique: a node whose name a live node holds does not
// start, saying why; once that node left, the name is free.
func TestNodeNamesAreUnique(t *testing.T) {
	e := etcdtest.Start(t)
	a1 := startApp(t, "a1")
	na := startNode(t, e, "a", []string{a1.addr})
	waitFor(t, 5*time.Second, "a's record", func() bool { return na.cl.NodeCount() == 1 })
	dir := t.TempDir()
	cfg := nodeConfig(t, dir, e.Endpoint(), "a", nil)
	start := time.Now()
	_, err := Open(context.Background(), Options{Config: cfg.Cluster, Node: "a", StateDir: dir, Timeout: time.Second}, cfg)
	if err == nil || !strings.Contains(err.Error(), `a live node already uses the name "a"`) {
		t.Fatalf("a second node named a: %v, want it refused", err)
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	na.stop()
	cl, err := Open(context.Background(), Options{Config: cfg.Cluster, Node: "a", StateDir: dir, Timeout: time.Second}, cfg)
	if err != nil {
		t.Fatalf("after a left cleanly: %v", err)
	}
	cl.Close()
}

// TestAwayNodeHoldsRotations: a node whose lease expired (cut off from
// etcd, perhaps still serving) still counts until memberTimeout: a
// rotation does not seal a key it has not reported.
func TestAwayNodeHoldsRotations(t *testing.T) {
	e := etcdtest.Start(t)
	a1 := startApp(t, "a1")
	na := startNode(t, e, "a", []string{a1.addr})
	nc := startNode(t, e, "c", nil)
	waitFor(t, 5*time.Second, "both records", func() bool { return na.cl.NodeCount() == 2 })
	// c is cut off: its loops stop and its lease expires, but it does
	// not leave.
	nc.cl.cancel()
	nc.cl.wg.Wait()
	waitFor(t, (nodeTTL+5)*time.Second, "c's lease expiring", func() bool { return na.cl.NodeCount() == 1 })
	if away := na.cl.Status().Away; len(away) != 1 || away[0].Name != "c" {
		t.Fatalf("away: %+v, want c", away)
	}
	id, err := na.cl.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // ten of a's rounds
	for _, k := range na.cl.Status().Keys {
		if k.ID == id && k.State != string(keyAdded) {
			t.Fatalf("the new key is %s while c, away, has not reported it", k.State)
		}
	}
}

// TestOneChangeOfManyKeys: a change that writes several keys in one
// transaction (one revision) reaches the other nodes whole.
func TestOneChangeOfManyKeys(t *testing.T) {
	e := etcdtest.Start(t)
	a1 := startApp(t, "a1")
	na := startNode(t, e, "a", []string{a1.addr})
	nb := startNode(t, e, "b", nil)
	err := na.srv.Update(context.Background(), func(cfg *config.Config) error {
		g := cfg.TargetGroup("app")
		for i := range 5 {
			g.Targets = append(g.Targets, config.Target{ID: fmt.Sprintf("127.0.0.1:%d", 7001+i), Weight: 1 + i})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the five registrations on b", func() bool { return len(nb.targets()) == 6 })
	for i := range 5 {
		if w := nb.targets()[fmt.Sprintf("127.0.0.1:%d", 7001+i)]; w != 1+i {
			t.Errorf("target %d weighs %d on b, want %d", i, w, 1+i)
		}
	}
}

// withGroup returns cfg with a second group, extra, of targets ids.
func withGroup(t *testing.T, cfg *config.Config, ids ...string) *config.Config {
	t.Helper()
	g := cfg.Clone().TargetGroup("app")
	g.Name = "extra"
	g.Targets = []config.Target{}
	for _, id := range ids {
		g.Targets = append(g.Targets, config.Target{ID: id, Weight: 1})
	}
	cfg.TargetGroups = append(cfg.TargetGroups, *g)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func openNode(t *testing.T, name, dir string, cfg *config.Config) *node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, err := Open(context.Background(), Options{Config: cfg.Cluster, Node: name, StateDir: dir, Log: log, Timeout: time.Second,
		NodeInterval: 100 * time.Millisecond}, cfg)
	if err != nil {
		t.Fatalf("node %s: %v", name, err)
	}
	srv, err := server.New(server.Options{Store: cl, DataPath: server.Goroutines, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Apply(context.Background(), cfg); err != nil {
		t.Fatalf("node %s: apply: %v", name, err)
	}
	cl.Run(srv)
	n := &node{name: name, srv: srv, cl: cl, url: "http://" + srv.Addr("web"), dir: dir, cfg: cfg}
	t.Cleanup(n.stop)
	return n
}

func groupTargets(n *node, group string) []string {
	_, running, _ := n.srv.Configs()
	var ids []string
	if g := running.TargetGroup(group); g != nil {
		for _, t := range g.Targets {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

// TestSnapshotStartWithANewGroup: a node that starts from its snapshot
// while etcd is away, with a group new in its file, serves it, and shares
// it whole when etcd returns; a node that starts later takes it.
func TestSnapshotStartWithANewGroup(t *testing.T) {
	e := etcdtest.Start(t)
	a1 := startApp(t, "a1")
	dir := t.TempDir()
	nx := openNode(t, "x", dir, nodeConfig(t, dir, e.Endpoint(), "x", []string{a1.addr}))
	nx.stop()
	e.Stop()
	nx2 := openNode(t, "x", dir, withGroup(t, nodeConfig(t, dir, e.Endpoint(), "x", []string{a1.addr}), "127.0.0.1:7001", "127.0.0.1:7002"))
	if got := groupTargets(nx2, "extra"); len(got) != 2 {
		t.Fatalf("x from its snapshot runs extra as %v", got)
	}
	e.Start()
	dirY := t.TempDir()
	waitFor(t, 15*time.Second, "x sharing extra", func() bool {
		nx2.cl.mu.Lock()
		defer nx2.cl.mu.Unlock()
		g := nx2.cl.m.Groups["extra"]
		return g != nil && g.Attributes != nil && len(g.Targets) == 2
	})
	ny := openNode(t, "y", dirY, withGroup(t, nodeConfig(t, dirY, e.Endpoint(), "y", []string{a1.addr}), "127.0.0.1:7009"))
	if got := groupTargets(ny, "extra"); len(got) != 2 || got[0] != "127.0.0.1:7001" {
		t.Errorf("y runs extra as %v, want the cluster's 7001 and 7002", got)
	}
}

// TestQuickSecondWrite: a node's second write to a target it just wrote
// is not refused as a conflict with itself.
func TestQuickSecondWrite(t *testing.T) {
	e := etcdtest.Start(t)
	a1 := startApp(t, "a1")
	na := startNode(t, e, "a", []string{a1.addr})
	startNode(t, e, "b", nil) // its records move the revision on
	for i := range 20 {
		id := fmt.Sprintf("127.0.0.1:%d", 7100+i)
		if err := register(t, na, id, 1); err != nil {
			t.Fatal(err)
		}
		if err := register(t, na, id, 2); err != nil {
			t.Fatalf("re-weighting %s just after registering it: %v", id, err)
		}
	}
}

// TestOldKeysRetire: an old key leaves the ring once its retire time (the
// longest stickiness duration after it stopped sealing) has passed; a key
// still within it stays.
func TestOldKeysRetire(t *testing.T) {
	e := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	now := time.Now().UTC().Truncate(time.Second)
	secret := strings.Repeat("A", 43) + "="
	ring := fmt.Sprintf(`{"keys": [
		{"id": 1, "secret": %q, "state": "sealing", "added": %q, "sealing": %q},
		{"id": 2, "secret": %q, "state": "old", "added": %q, "sealing": %q, "retire": %q},
		{"id": 3, "secret": %q, "state": "old", "added": %q, "sealing": %q, "retire": %q}]}`,
		secret, now.Format(time.RFC3339), now.Format(time.RFC3339),
		secret, now.Add(-72*time.Hour).Format(time.RFC3339), now.Add(-72*time.Hour).Format(time.RFC3339), now.Add(-time.Minute).Format(time.RFC3339),
		secret, now.Add(-48*time.Hour).Format(time.RFC3339), now.Add(-48*time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	if _, err := cli.Put(context.Background(), "/latch-test/keys", ring); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, e, "a", []string{startApp(t, "a1").addr})
	waitFor(t, 10*time.Second, "key 2 retiring", func() bool { return len(n.cl.Status().Keys) == 2 })
	if ids := n.srv.KeyIDs(); len(ids) != 2 || ids[0] != 1 || ids[1] != 3 {
		t.Errorf("the node's ring: %v, want 1 sealing, then 3 (2 retired)", ids)
	}
}

// TestDeregistrationIsNotUndone: a node behind the cluster that changes a
// target another node deregistered meanwhile gets a conflict, and one that
// changes another target does not bring the deregistered one back.
func TestDeregistrationIsNotUndone(t *testing.T) {
	e := etcdtest.Start(t)
	a1 := startApp(t, "a1")
	na := startNode(t, e, "a", []string{a1.addr, "127.0.0.1:7001", "127.0.0.1:7002"})
	nb := startNode(t, e, "b", nil)
	// b falls behind.
	nb.cl.cancel()
	nb.cl.wg.Wait()
	err := na.srv.Update(context.Background(), func(cfg *config.Config) error {
		g := cfg.TargetGroup("app")
		g.Targets = slices.DeleteFunc(g.Targets, func(t config.Target) bool { return t.ID == "127.0.0.1:7001" })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := register(t, nb, "127.0.0.1:7001", 5); !errors.Is(err, server.ErrStoreConflict) {
		t.Errorf("b re-weighting the target a deregistered: %v, want a conflict", err)
	}
	if err := register(t, nb, "127.0.0.1:7002", 3); err != nil {
		t.Fatalf("b re-weighting another target: %v", err)
	}
	waitFor(t, time.Second, "b's change reaching a", func() bool { return na.targets()["127.0.0.1:7002"] == 3 })
	if _, ok := na.targets()["127.0.0.1:7001"]; ok {
		t.Errorf("b's change brought back the target a deregistered: %v", na.targets())
	}
}
