package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/cluster"
	"github.com/latch-lb/latch/internal/cluster/etcdtest"
)

// Cluster mode against real processes: three `latch serve` nodes, each with
// its own config file, listener, admin API and state_dir, sharing one etcd
// (embedded in the test process, go.etcd.io/etcd's own server), in front of
// real HTTP targets on 127.0.0.1.

const clusterToken = "cluster-test-token"

// clusterNode is one node of the cluster: latch serve as its own process.
type clusterNode struct {
	*latchProcess
	name    string
	addr    string // the listener's
	admin   string // the admin API's URL
	dir     string // state_dir, with the config file and the token
	cfgPath string
	token   string // the token file
}

// latchCluster is three nodes and their etcd.
type latchCluster struct {
	etcd  *etcdtest.Etcd
	nodes []*clusterNode
}

// clusterConfig is a node's config file. The health checks probe every
// 200 ms (a new target serves after its first pass, within that) and take
// 5 failures in a row (a second) to call a target unhealthy: a loaded CI
// machine stalls for a moment, and a session moved by a stall would fail
// tests that check no session moves.
func clusterConfig(name, addr, dir, endpoint string, targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listeners:
  - name: public
    address: %s
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
    targets:
`, addr)
	for _, t := range targets {
		fmt.Fprintf(&b, "      - id: %s\n", t)
	}
	fmt.Fprintf(&b, `    health_check:
      path: /healthz
      interval_seconds: 0.2
      timeout_seconds: 0.15
      unhealthy_threshold_count: 5
    attributes:
      stickiness.enabled: "true"
      stickiness.type: lb_cookie
      deregistration_delay.timeout_seconds: "2"
state_dir: %s
admin:
  address: 127.0.0.1:0
  token_file: admin.token
cluster:
  etcd:
    endpoints: [%s]
  node_name: %s
`, dir, endpoint, name)
	return b.String()
}

// startCluster starts etcd and nodes node-a, node-b and node-c whose files
// list targets, and returns once every node runs every target healthy and
// sees the other two.
func startCluster(t *testing.T, targets ...string) *latchCluster {
	t.Helper()
	c := &latchCluster{etcd: etcdtest.Start(t)}
	for _, name := range []string{"node-a", "node-b", "node-c"} {
		n := &clusterNode{name: name, addr: freeAddr(t), dir: t.TempDir()}
		n.cfgPath, n.token = filepath.Join(n.dir, "latch.yaml"), filepath.Join(n.dir, "admin.token")
		if err := os.WriteFile(n.token, []byte(clusterToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.cfgPath, []byte(clusterConfig(name, n.addr, n.dir, c.etcd.Endpoint(), targets)), 0o644); err != nil {
			t.Fatal(err)
		}
		n.start(t)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.waitHealthy(t, targets...)
		poll(t, 10*time.Second, n.name+" sees three nodes", func() bool { return len(n.status(t).Nodes) == 3 })
	}
	return c
}

// start runs the node's latch serve, and finds its admin API.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.latchProcess = startLatch(t, n.cfgPath, n.addr)
	m := adminAddrRE.FindStringSubmatch(n.logs.String())
	if m == nil {
		t.Fatalf("%s did not log its admin API's address:\n%s", n.name, n.logs.String())
	}
	n.admin = "http://" + m[1]
}

// stop ends the node with SIGTERM, which must exit 0.
func (n *clusterNode) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	if code := n.wait(t); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM:\n%s", n.name, code, n.logs.String())
	}
}

// api calls the node's admin API with the token; out, if not nil, takes
// the JSON answer of a 2xx.
func (n *clusterNode) api(t *testing.T, method, path string, body, out any) (status int, raw string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.admin+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+clusterToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s on %s: %v\n%s", method, path, n.name, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// targets returns the node's targets of group web, by id.
func (n *clusterNode) targets(t *testing.T) map[string]admin.Target {
	t.Helper()
	var l admin.TargetList
	if code, raw := n.api(t, "GET", "/api/v1/target-groups/web/targets", nil, &l); code != 200 {
		t.Fatalf("targets on %s: %d %s", n.name, code, raw)
	}
	m := map[string]admin.Target{}
	for _, tg := range l.Targets {
		m[tg.ID] = tg
	}
	return m
}

// status is GET /api/v1/cluster on the node.
func (n *clusterNode) status(t *testing.T) cluster.Status {
	t.Helper()
	var st cluster.Status
	if code, raw := n.api(t, "GET", "/api/v1/cluster", nil, &st); code != 200 {
		t.Fatalf("cluster status on %s: %d %s", n.name, code, raw)
	}
	return st
}

// metric reads one unlabelled metric from the node's /metrics.
func (n *clusterNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	code, raw := n.api(t, "GET", "/metrics", nil, nil)
	if code != 200 {
		t.Fatalf("/metrics on %s: %d", n.name, code)
	}
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics on %s: %s: %v", n.name, sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("/metrics on %s has no %s", n.name, name)
	return 0
}

// waitHealthy waits until the node runs each of ids healthy.
func (n *clusterNode) waitHealthy(t *testing.T, ids ...string) {
	t.Helper()
	poll(t, 10*time.Second, "targets healthy on "+n.name, func() bool {
		ts := n.targets(t)
		for _, id := range ids {
			if ts[id].State != "healthy" {
				return false
			}
		}
		return true
	})
}

// ctl runs latch ctl against the node.
func (n *clusterNode) ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return ctlRun(t, []string{"LATCH_ADMIN=" + n.admin}, append([]string{"-token-file", n.token}, args...)...)
}

// mustCtl runs latch ctl against the node and fails t unless it exits 0.
func (n *clusterNode) mustCtl(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := n.ctl(t, args...)
	if code != 0 {
		t.Fatalf("latch ctl %s on %s: exit %d\n%s%s", strings.Join(args, " "), n.name, code, out, errs)
	}
	return out
}

// poll checks cond every 10 ms until it holds, and returns how long that
// took; it fails t if cond has not held within limit.
func poll(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// clusterApp is a target that answers with its address, and tells in
// X-Moved whether latch moved the request's session
// (X-Latch-Session-Moved, which latch adds to the request it forwards).
func clusterApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Moved", r.Header.Get("X-Latch-Session-Moved"))
		io.WriteString(w, addr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return addr
}

// session is one sticky client: its AWSALB cookie, and the target its
// first request reached.
type session struct {
	cookie, target string
}

// answer is what one request through latch got.
type answer struct {
	target, moved string
}

// get sends one request of s through the node at base, and keeps the
// cookie latch sets.
func (s *session) get(cl *http.Client, base string) (answer, error) {
	req, _ := http.NewRequest("GET", base+"/", nil)
	if s.cookie != "" {
		req.Header.Set("Cookie", "AWSALB="+s.cookie)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return answer{}, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return answer{}, err
	}
	if resp.StatusCode != 200 {
		return answer{}, fmt.Errorf("%s: %s", resp.Status, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "AWSALB" {
			s.cookie = c.Value
		}
	}
	a := answer{target: string(b), moved: resp.Header.Get("X-Moved")}
	if s.target == "" {
		s.target = a.target
	}
	return a, nil
}

// cookieKey is the id of the key that sealed an AWSALB value: version(1),
// key id(4), ... (internal/sticky's wire format).
func cookieKey(t *testing.T, value string) uint32 {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(raw) < 5 {
		t.Fatalf("AWSALB %q is not a sealed value: %v", value, err)
	}
	return binary.BigEndian.Uint32(raw[1:5])
}

func TestClusterStickinessAcrossNodes(t *testing.T) {
	targets := []string{clusterApp(t), clusterApp(t), clusterApp(t)}
	c := startCluster(t, targets...)
	cl := &http.Client{Timeout: 10 * time.Second}
	// Three clients, each beginning on another node, each sending request
	// i to node i mod 3: every cookie one node sets, the next opens.
	reached := map[string]bool{}
	for start := range 3 {
		var s session
		for i := range 300 {
			n := c.nodes[(start+i)%3]
			a, err := s.get(cl, n.url)
			if err != nil {
				t.Fatalf("client %d, request %d through %s: %v", start, i, n.name, err)
			}
			if a.target != s.target || a.moved != "" {
				t.Fatalf("client %d, request %d through %s: reached %s (moved %q), want %s as before",
					start, i, n.name, a.target, a.moved, s.target)
			}
		}
		reached[s.target] = true
	}
	t.Logf("3 clients, 300 requests each over the 3 nodes in turn, none moved; their targets: %d distinct", len(reached))

	// latch ctl nodes on any node lists the three, with their admin APIs.
	rows := fields(c.nodes[1].mustCtl(t, "nodes"))
	if len(rows) != 4 || strings.Join(rows[0][:4], " ") != "NAME ADMIN VERSION REVISION" {
		t.Fatalf("latch ctl nodes on node-b:\n%q", rows)
	}
	for i, n := range c.nodes {
		name := n.name
		if i == 1 {
			name += " (this)"
		}
		if got := strings.Join(rows[i+1][:len(strings.Fields(name))+1], " "); got != name+" "+strings.TrimPrefix(n.admin, "http://") {
			t.Errorf("latch ctl nodes on node-b, row %d: %q, want %s at %s", i+1, rows[i+1], name, n.admin)
		}
	}
}

func TestClusterChangeReachesEveryNodeWithinASecond(t *testing.T) {
	first := clusterApp(t)
	c := startCluster(t, first)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	added := clusterApp(t)
	cl := &http.Client{Timeout: 10 * time.Second}

	begin := time.Now()
	a.mustCtl(t, "register", "web", added)
	registered := time.Now()
	// New sessions through C (no cookie) until one reaches the new target.
	took := poll(t, 10*time.Second, "a target registered on node-a serving from node-c", func() bool {
		var s session
		got, err := s.get(cl, cn.url)
		if err != nil {
			t.Fatalf("through node-c: %v", err)
		}
		return got.target == added
	})
	fromCtl := registered.Sub(begin) + took
	t.Logf("registered through node-a (latch ctl took %v); node-c served it %v later (%v from latch ctl's start)",
		registered.Sub(begin).Round(time.Millisecond), took.Round(time.Millisecond), fromCtl.Round(time.Millisecond))
	if took >= time.Second {
		t.Errorf("node-c served a target registered on node-a %v after the registration, want < 1 s", took)
	}
	b.waitHealthy(t, added)

	begin = time.Now()
	a.mustCtl(t, "weight", "web", added, "7")
	weighted := time.Now()
	took = poll(t, 10*time.Second, "a weight set on node-a running on node-b and node-c", func() bool {
		return cn.targets(t)[added].Weight == 7 && b.targets(t)[added].Weight == 7
	})
	t.Logf("weight 7 set through node-a (latch ctl took %v); node-b and node-c ran it %v later",
		weighted.Sub(begin).Round(time.Millisecond), took.Round(time.Millisecond))
	if took >= time.Second {
		t.Errorf("node-b and node-c ran a weight set on node-a %v after, want < 1 s", took)
	}
	// The weight is the one C's picks use: of new sessions through C, the
	// target of weight 7 takes about 7 in 8.
	var onAdded int
	for range 80 {
		var s session
		got, err := s.get(cl, cn.url)
		if err != nil {
			t.Fatal(err)
		}
		if got.target == added {
			onAdded++
		}
	}
	if onAdded < 55 || onAdded == 80 {
		t.Errorf("of 80 new sessions through node-c, %d reached the target of weight 7 (the other has 1), want about 70", onAdded)
	}
	// Each node runs the registration with the one generation etcd gave.
	gen := a.targets(t)[added].Generation
	for _, n := range c.nodes {
		if g := n.targets(t)[added].Generation; g != gen || g == 0 {
			t.Errorf("%s runs %s with generation %d, node-a %d", n.name, added, g, gen)
		}
	}
}

func TestClusterDrainWaitsForSessionsOnEveryNode(t *testing.T) {
	targets := []string{clusterApp(t), clusterApp(t)}
	c := startCluster(t, targets...)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	cl := &http.Client{Timeout: 10 * time.Second}

	// A session that only ever goes through node-a.
	var s session
	if _, err := s.get(cl, a.url); err != nil {
		t.Fatal(err)
	}
	drained := s.target
	// The drain, started on node-b, which sees none of the session's
	// requests: latch ctl drain -wait, as its own process.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, latchBin, "ctl", "-admin", b.admin, "-token-file", b.token,
		"drain", "web", drained, "-mode", "keep_sessions", "-idle", "1s", "-deadline", "30s", "-wait")
	cmd.Env = append(os.Environ(), "LATCH_ADMIN=", "LATCH_ADMIN_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for _, n := range c.nodes {
		poll(t, 5*time.Second, "the drain running on "+n.name, func() bool { return n.targets(t)[drained].Drain != nil })
	}

	// The session goes on through node-a every 200 ms for 3 s, three
	// times the idle window: node-b alone would have called the drain
	// complete after 1 s.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastSent time.Time
	for i := range 15 {
		<-tick.C
		lastSent = time.Now()
		got, err := s.get(cl, a.url)
		if err != nil {
			t.Fatalf("session request %d during the drain: %v", i, err)
		}
		if got.target != drained || got.moved != "" {
			t.Fatalf("session request %d during the drain reached %s (moved %q), want the drained %s", i, got.target, got.moved, drained)
		}
		// New sessions, through node-c, go elsewhere.
		var fresh session
		if got, err := fresh.get(cl, cn.url); err != nil || got.target == drained {
			t.Fatalf("a new session through node-c during the drain: %v, %v", got, err)
		}
		select {
		case err := <-exited:
			t.Fatalf("latch ctl drain -wait returned (%v) while the session went on, %v after it began:\n%s%s",
				err, time.Since(began).Round(time.Millisecond), out.String(), errb.String())
		default:
		}
		if d := b.targets(t)[drained].Drain; d == nil || d.Complete {
			t.Fatalf("node-b says the drain is %+v while the session goes on through node-a", d)
		}
		if i == 7 {
			// As an operator sees it on node-b: draining, not complete.
			for _, row := range fields(b.mustCtl(t, "targets", "web")) {
				if row[0] == drained && (!strings.Contains(strings.Join(row, " "), "keep_sessions,") || strings.Contains(strings.Join(row, " "), "complete")) {
					t.Fatalf("latch ctl targets on node-b during the drain: %q", row)
				}
			}
		}
	}
	tick.Stop()

	// The session ends: the drain completes once no node has seen it for
	// the idle window.
	var done time.Time
	select {
	case err := <-exited:
		done = time.Now()
		if err != nil {
			t.Fatalf("latch ctl drain -wait: %v\n%s%s", err, out.String(), errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the drain was not complete 10 s after the session's last request")
	}
	after := done.Sub(lastSent)
	t.Logf("drain on node-b with a session going on through node-a: complete %v after the session's last request (idle 1s), %v after it began",
		after.Round(time.Millisecond), done.Sub(began).Round(time.Millisecond))
	if after < time.Second {
		t.Errorf("the drain completed %v after the session's last request, within its idle window of 1 s", after)
	}
	if after > 4*time.Second {
		t.Errorf("the drain completed %v after the session's last request, want within 4 s", after)
	}
	if !strings.Contains(out.String(), "keep_sessions, complete") {
		t.Errorf("latch ctl drain -wait printed:\n%s", out.String())
	}
	if d := b.targets(t)[drained].Drain; d == nil || !d.Complete {
		t.Errorf("node-b says the drain is %+v after latch ctl -wait returned", d)
	}
}

// load is steady traffic through the cluster: sticky clients, each sending
// its requests to the nodes in turn.
type load struct {
	t       *testing.T
	slots   []*nodeSlot
	clients []*loadClient
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	ended   chan struct{} // a request ended
}

// nodeSlot is one node as the load sees it; away takes it out of the
// rotation, as an L4 balancer in front does with a node that restarts.
type nodeSlot struct {
	mu    sync.RWMutex // held for reading by each request through it
	name  string
	url   string // "" while away
	epoch int    // new after a restart: the clients' connections to it are gone
	ok    atomic.Int64
}

type loadClient struct {
	mu       sync.Mutex
	s        session
	ok       int
	failures []string
	moved    []string
}

// startLoad starts n clients; client i begins on node i mod 3 and pauses
// pause between requests, for at most 3,000 requests or 90 s.
func startLoad(t *testing.T, c *latchCluster, n int, pause time.Duration) *load {
	l := &load{t: t, stop: make(chan struct{}), ended: make(chan struct{}, 1)}
	for _, nd := range c.nodes {
		l.slots = append(l.slots, &nodeSlot{name: nd.name, url: nd.url})
	}
	for i := range n {
		lc := &loadClient{}
		l.clients = append(l.clients, lc)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			trs := make([]*http.Transport, len(l.slots))
			epochs := make([]int, len(l.slots))
			for j := range trs {
				trs[j] = &http.Transport{}
				defer trs[j].CloseIdleConnections()
			}
			deadline := time.Now().Add(90 * time.Second)
			for k := 0; k < 3000 && time.Now().Before(deadline); k++ {
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
				j := (i + k) % len(l.slots)
				sl := l.slots[j]
				sl.mu.RLock()
				if sl.url == "" {
					sl.mu.RUnlock()
					continue
				}
				if sl.epoch != epochs[j] {
					trs[j].CloseIdleConnections()
					epochs[j] = sl.epoch
				}
				lc.mu.Lock()
				s := lc.s
				lc.mu.Unlock()
				got, err := s.get(&http.Client{Transport: trs[j], Timeout: 10 * time.Second}, sl.url)
				sl.mu.RUnlock()
				lc.mu.Lock()
				switch {
				case err != nil:
					lc.failures = append(lc.failures, fmt.Sprintf("%s through %s: %v", time.Now().Format("15:04:05.000"), sl.name, err))
				case got.target != s.target || got.moved != "":
					lc.moved = append(lc.moved, fmt.Sprintf("through %s to %s (moved %q), want %s", sl.name, got.target, got.moved, s.target))
				default:
					lc.ok++
					sl.ok.Add(1)
				}
				lc.s = s
				lc.mu.Unlock()
				select {
				case l.ended <- struct{}{}:
				default:
				}
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

// counts returns each client's requests answered so far.
func (l *load) counts() []int {
	out := make([]int, len(l.clients))
	for i, lc := range l.clients {
		lc.mu.Lock()
		out[i] = lc.ok
		lc.mu.Unlock()
	}
	return out
}

// progress waits until every client has had n more requests answered.
func (l *load) progress(n int, what string) {
	l.t.Helper()
	from := l.counts()
	timeout := time.After(30 * time.Second)
	for {
		behind := 0
		for i, c := range l.counts() {
			if c < from[i]+n {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		select {
		case <-l.ended:
		case <-timeout:
			l.t.Fatalf("%s: %d of %d clients did not get %d more requests answered within 30 s", what, behind, len(l.clients), n)
		}
	}
}

// away takes node i out of the load's rotation, once its requests in
// flight have ended.
func (l *load) away(i int) {
	sl := l.slots[i]
	sl.mu.Lock()
	sl.url = ""
	sl.mu.Unlock()
}

// back puts node i back, listening at url.
func (l *load) back(i int, url string) {
	sl := l.slots[i]
	sl.mu.Lock()
	sl.url = url
	sl.epoch++
	sl.mu.Unlock()
}

// end stops the clients and waits for them.
func (l *load) end() {
	l.stopped.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// check ends the load and fails t for every request that failed or moved;
// it returns the requests answered.
func (l *load) check(t *testing.T) int {
	t.Helper()
	l.end()
	total := 0
	for i, lc := range l.clients {
		total += lc.ok
		if len(lc.failures) > 0 {
			t.Errorf("client %d: %d requests failed; first: %s", i, len(lc.failures), lc.failures[0])
		}
		if len(lc.moved) > 0 {
			t.Errorf("client %d: %d requests left the session's target; first: %s", i, len(lc.moved), lc.moved[0])
		}
	}
	return total
}

func TestClusterKeyRotationUnderLoadKeepsSessions(t *testing.T) {
	targets := []string{clusterApp(t), clusterApp(t), clusterApp(t)}
	c := startCluster(t, targets...)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	keys := func() admin.KeyList {
		var l admin.KeyList
		if err := json.Unmarshal([]byte(a.mustCtl(t, "-o", "json", "keys")), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := keys()
	if len(before.Keys) != 1 || before.Keys[0].State != "sealing" {
		t.Fatalf("the key ring before a rotation: %+v, want one sealing key", before.Keys)
	}
	old := before.Keys[0].ID

	l := startLoad(t, c, 20, 25*time.Millisecond)
	l.progress(5, "before the rotation")
	out := b.mustCtl(t, "keys", "rotate")
	var added uint32
	if _, err := fmt.Sscanf(out, "# key %d added", &added); err != nil || added == 0 || added == old {
		t.Fatalf("latch ctl keys rotate printed:\n%s", out)
	}
	took := poll(t, 10*time.Second, "the new key sealing and the old one old", func() bool {
		st := map[uint32]string{}
		for _, k := range keys().Keys {
			st[k.ID] = k.State
		}
		return len(st) == 2 && st[added] == "sealing" && st[old] == "old"
	})
	t.Logf("key %d sealing and key %d old %v after latch ctl keys rotate on node-b", added, old, took.Round(time.Millisecond))
	// The table says so too, and that every node opens with both.
	for _, row := range fields(cn.mustCtl(t, "keys"))[1:] {
		if want := map[string]string{fmt.Sprint(added): "sealing", fmt.Sprint(old): "old"}[row[0]]; want == "" || row[1] != want ||
			row[len(row)-1] != "node-a,node-b,node-c" {
			t.Errorf("latch ctl keys on node-c after the rotation: row %q", row)
		}
	}
	// Every client's cookie is sealed again by whichever node answers it
	// next; the sessions go on through every node.
	l.progress(6, "after the rotation")
	total := l.check(t)
	for i, lc := range l.clients {
		if k := cookieKey(t, lc.s.cookie); k != added {
			t.Errorf("client %d's cookie, set after the rotation, is sealed with key %d, want %d", i, k, added)
		}
	}
	t.Logf("20 sticky clients over the 3 nodes: %d requests during the rotation, none failed or moved", total)

	// A new session's cookie is sealed with the new key, and opens on
	// every node.
	cl := &http.Client{Timeout: 10 * time.Second}
	var s session
	if _, err := s.get(cl, cn.url); err != nil {
		t.Fatal(err)
	}
	if k := cookieKey(t, s.cookie); k != added {
		t.Errorf("a new session's cookie is sealed with key %d, want the new key %d", k, added)
	}
	for _, n := range []*clusterNode{a, b} {
		if got, err := s.get(cl, n.url); err != nil || got.target != s.target || got.moved != "" {
			t.Errorf("a new session from node-c through %s: %+v, %v; want %s", n.name, got, err, s.target)
		}
	}
	if len(keys().Keys) != 2 {
		t.Errorf("the ring %v after the rotation, want the new key and the old one (which retires after the longest stickiness)", keys().Keys)
	}
}

func TestClusterEtcdOutageUnderLoad(t *testing.T) {
	targets := []string{clusterApp(t), clusterApp(t), clusterApp(t)}
	c := startCluster(t, targets...)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	l := startLoad(t, c, 9, 25*time.Millisecond)
	l.progress(5, "before the outage")

	stopped := time.Now()
	c.etcd.Stop()
	for _, n := range c.nodes {
		poll(t, 10*time.Second, n.name+" reporting etcd down", func() bool { return n.metric(t, "latch_cluster_etcd_up") == 0 })
		t.Logf("%s: latch_cluster_etcd_up 0 within %v of the outage", n.name, time.Since(stopped).Round(time.Millisecond))
	}

	// Admin writes are refused, with the reason.
	extra := clusterApp(t)
	code, out, errs := a.ctl(t, "register", "web", extra)
	if code != 1 || !strings.Contains(errs, "etcd at "+c.etcd.Endpoint()) || !strings.Contains(errs, "admin writes are refused") {
		t.Errorf("latch ctl register during the outage: exit %d, stdout %q, stderr %q; want exit 1 naming etcd and saying writes are refused", code, out, errs)
	}
	t.Logf("latch ctl register during the outage: exit %d: %s", code, strings.TrimSpace(errs))
	status, raw := b.api(t, "PUT", "/api/v1/target-groups/web/targets/"+url.PathEscape(targets[0])+"/weight", map[string]int{"weight": 3}, nil)
	var eb admin.ErrorBody
	json.Unmarshal([]byte(raw), &eb)
	if status != http.StatusServiceUnavailable || !strings.Contains(eb.Error, "etcd") || !strings.Contains(eb.Error, "refused") {
		t.Errorf("PUT weight on node-b during the outage: %d %s; want 503 naming etcd", status, raw)
	}
	for _, n := range c.nodes {
		if w := n.targets(t)[targets[0]].Weight; w != 1 {
			t.Errorf("%s runs weight %d after a refused write, want 1", n.name, w)
		}
	}
	if st := a.status(t); st.Up || st.DownSince.IsZero() {
		t.Errorf("GET /api/v1/cluster on node-a during the outage: etcd_up %t, down since %v", st.Up, st.DownSince)
	}

	// node-c restarts during the outage: out of the load's rotation while
	// it is away, then back, serving from its snapshot.
	l.away(2)
	cn.stop(t)
	cn.start(t)
	if !strings.Contains(cn.logs.String(), "serving the cluster's state from the snapshot") {
		t.Errorf("node-c did not say it started from its snapshot:\n%s", cn.logs.String())
	}
	l.back(2, cn.url)
	served := cn.targets(t)
	for _, id := range targets {
		if _, ok := served[id]; !ok {
			t.Errorf("node-c restarted during the outage runs %v, lacking %s", served, id)
		}
	}
	if st := cn.status(t); st.Up || cn.metric(t, "latch_cluster_etcd_up") != 0 {
		t.Errorf("node-c, restarted during the outage, says etcd is up")
	}
	from := l.slots[2].ok.Load()
	l.progress(5, "node-c back during the outage")
	t.Logf("node-c restarted %v into the outage, served %d requests of the load from its snapshot",
		time.Since(stopped).Round(time.Millisecond), l.slots[2].ok.Load()-from)

	// The outage lasts 10 s, a fixed span: nothing to wait for but time.
	if rest := 10*time.Second - time.Since(stopped); rest > 0 {
		time.Sleep(rest)
	} else {
		t.Logf("the outage took %v (detection and node-c's restart)", time.Since(stopped).Round(time.Millisecond))
	}
	c.etcd.Start()
	returned := time.Now()
	t.Logf("etcd back after %v", returned.Sub(stopped).Round(time.Millisecond))
	for _, n := range c.nodes {
		poll(t, 15*time.Second, n.name+" reporting etcd up", func() bool { return n.metric(t, "latch_cluster_etcd_up") == 1 })
	}
	// A node tries etcd again at most a second after a failed attempt,
	// however long the outage (gRPC's own backoff grows to 2 minutes), and
	// publishes its record every 500 ms.
	back := time.Since(returned)
	t.Logf("every node reaches etcd again %v after it returned", back.Round(time.Millisecond))
	if back > 2*time.Second {
		t.Errorf("the nodes reached etcd again %v after it returned, want within 2 s", back.Round(time.Millisecond))
	}

	// A change after etcd returns reaches every node, node-c too.
	a.mustCtl(t, "register", "web", extra, "-weight", "2")
	took := poll(t, 10*time.Second, "a registration after the outage reaching every node", func() bool {
		for _, n := range c.nodes {
			if n.targets(t)[extra].Weight != 2 {
				return false
			}
		}
		return true
	})
	t.Logf("a registration on node-a after the outage ran on every node within %v", took.Round(time.Millisecond))
	l.progress(5, "after the outage")
	total := l.check(t)
	t.Logf("9 sticky clients over the 3 nodes: %d requests across the outage, none failed or moved", total)
	for _, n := range c.nodes {
		if got := n.metric(t, "latch_cluster_nodes"); got != 3 {
			t.Errorf("%s: latch_cluster_nodes %v after the outage, want 3", n.name, got)
		}
	}
}

func TestClusterCompactionForcesAResyncThatLosesNothing(t *testing.T) {
	t0, t1 := clusterApp(t), clusterApp(t)
	c := startCluster(t, t0, t1)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]

	cn.stop(t)
	t2, t3 := clusterApp(t), clusterApp(t)
	a.mustCtl(t, "register", "web", t2, "-weight", "2")
	a.mustCtl(t, "register", "web", t3, "-weight", "3")
	a.mustCtl(t, "weight", "web", t1, "4")
	a.mustCtl(t, "deregister", "web", t0)
	want := map[string]int{t1: 4, t2: 2, t3: 3}
	runs := func(n *clusterNode) bool {
		got := map[string]int{}
		for id, tg := range n.targets(t) {
			if tg.Registered {
				got[id] = tg.Weight
			}
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	}
	poll(t, 10*time.Second, "node-b running node-a's changes", func() bool { return runs(b) })

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.etcd.Endpoint()}, Logger: zap.NewNop(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/latch/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	var snap struct {
		State struct {
			Revision int64 `json:"revision"`
		} `json:"state"`
	}
	if b, err := os.ReadFile(filepath.Join(cn.dir, cluster.SnapshotFile)); err != nil || json.Unmarshal(b, &snap) != nil {
		t.Fatalf("node-c's snapshot: %v", err)
	}
	t.Logf("etcd compacted to revision %d; node-c's snapshot is of revision %d", resp.Header.Revision, snap.State.Revision)

	// node-c starts from its snapshot while etcd is away, so that its
	// watch begins at its own revision, which etcd no longer has.
	c.etcd.Stop()
	cn.start(t)
	if runs(cn) {
		t.Fatalf("node-c started from its snapshot already runs the changes made while it was stopped")
	}
	if _, ok := cn.targets(t)[t0]; !ok {
		t.Fatalf("node-c started from its snapshot lacks %s, which its snapshot has", t0)
	}
	c.etcd.Start()
	took := poll(t, 15*time.Second, "node-c running every change after the resync", func() bool { return runs(cn) })
	st := cn.status(t)
	t.Logf("node-c ran every change %v after etcd returned: resyncs %d, revision %d", took.Round(time.Millisecond), st.Resyncs, st.Applied)
	if st.Resyncs == 0 {
		t.Errorf("node-c caught up without a resync: %+v", st)
	}
	if got := cn.metric(t, "latch_cluster_resyncs_total"); got < 1 {
		t.Errorf("node-c: latch_cluster_resyncs_total %v, want at least 1", got)
	}
	if !strings.Contains(cn.logs.String(), "etcd compacted the revisions after this node's") {
		t.Errorf("node-c did not log the resync:\n%s", cn.logs.String())
	}
	// The same generations everywhere: nothing re-registered afresh.
	for _, id := range []string{t1, t2, t3} {
		if ga, gc := a.targets(t)[id].Generation, cn.targets(t)[id].Generation; ga != gc {
			t.Errorf("%s: generation %d on node-a, %d on node-c", id, ga, gc)
		}
	}
	// node-c serves the targets registered while it was stopped.
	cn.waitHealthy(t, t2, t3)
}
