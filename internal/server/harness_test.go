package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// testKey is the cookie key the tests configure, so that they can seal
// cookies of their own (expired, for unknown targets...) as latch would.
var testKey = sticky.Key{ID: 77, Secret: []byte("0123456789abcdef0123456789abcdef")}

func testRing(t testing.TB, keys ...sticky.Key) *sticky.Keyring {
	if len(keys) == 0 {
		keys = []sticky.Key{testKey}
	}
	kr, err := sticky.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func keyYAML(keys ...sticky.Key) string {
	if len(keys) == 0 {
		keys = []sticky.Key{testKey}
	}
	s := "cookie_keys:\n"
	for _, k := range keys {
		s += fmt.Sprintf("  - id: %d\n    secret: %s\n", k.ID, base64.StdEncoding.EncodeToString(k.Secret))
	}
	return s
}

// backend is a real HTTP server standing in for a target. It answers with
// its name and records what it received.
type backend struct {
	name string
	addr string
	srv  *http.Server
	hits atomic.Int64

	mu      sync.Mutex
	last    *http.Request
	healthy atomic.Bool
	handler atomic.Pointer[http.HandlerFunc]
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String()}
	b.healthy.Store(true)
	b.srv = &http.Server{Handler: b}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if !b.healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
		return
	}
	b.hits.Add(1)
	b.mu.Lock()
	b.last = r
	b.mu.Unlock()
	w.Header().Set("X-Backend", b.name)
	if m := r.Header.Get("X-Latch-Session-Moved"); m != "" {
		w.Header().Set("X-Saw-Moved", m)
	}
	if h := b.handler.Load(); h != nil {
		(*h)(w, r)
		return
	}
	io.WriteString(w, b.name)
}

func (b *backend) handle(h http.HandlerFunc) { b.handler.Store(&h) }

func (b *backend) lastRequest() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// lbConfig renders a one-listener, one-group config for the backends.
type lbConfig struct {
	targets     []string
	sticky      bool
	health      string // a health_check block body, or "" for none
	attrs       map[string]string
	listenAttrs map[string]string
	keys        []sticky.Key
	stateDir    string
	extraGroup  string         // more keys of the target group, indented by 4
	observer    proxy.Observer // the data path's, if any
}

func (c lbConfig) yaml() string {
	var b strings.Builder
	b.WriteString("listeners:\n  - name: front\n    address: 127.0.0.1:0\n    default_action:\n      type: forward\n      forward: { target_group: web }\n")
	if len(c.listenAttrs) > 0 {
		b.WriteString("    attributes:\n")
		for k, v := range c.listenAttrs {
			fmt.Fprintf(&b, "      %s: %q\n", k, v)
		}
	}
	b.WriteString("target_groups:\n  - name: web\n    targets:")
	if len(c.targets) == 0 {
		b.WriteString(" []\n")
	} else {
		b.WriteString("\n")
	}
	for _, t := range c.targets {
		fmt.Fprintf(&b, "      - id: %s\n", t)
	}
	b.WriteString(c.extraGroup)
	if c.health != "" {
		b.WriteString("    health_check:\n" + c.health)
	} else {
		b.WriteString("    health_check:\n      enabled: false\n")
	}
	b.WriteString("    attributes:\n")
	fmt.Fprintf(&b, "      stickiness.enabled: %t\n", c.sticky)
	if _, ok := c.attrs["deregistration_delay.timeout_seconds"]; !ok {
		b.WriteString("      deregistration_delay.timeout_seconds: 0\n")
	}
	for k, v := range c.attrs {
		fmt.Fprintf(&b, "      %s: %q\n", k, v)
	}
	b.WriteString(keyYAML(c.keys...))
	if c.stateDir != "" {
		fmt.Fprintf(&b, "state_dir: %s\n", c.stateDir)
	}
	return b.String()
}

// fastHealth is a health check that settles within a few hundred ms.
const fastHealth = `      path: /healthz
      interval_seconds: 0.1
      timeout_seconds: 0.05
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
`

func parse(t testing.TB, yaml, stateDir string) *config.Config {
	t.Helper()
	if !strings.Contains(yaml, "state_dir:") {
		yaml += "state_dir: " + stateDir + "\n"
	}
	cfg, err := config.Parse([]byte(yaml), "")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	return cfg
}

// running is a Server under test with its listener's URL.
type running struct {
	*Server
	url      string
	stateDir string
}

// Health returns every target of the named group, as a snapshot reports
// them.
func (r *running) Health(group string) []TargetStatus {
	if g := r.Snapshot().Group(group); g != nil {
		return g.Targets
	}
	return nil
}

// targets returns the named group's registered targets themselves, for
// tests that look at what a snapshot does not show.
func (r *running) targets(group string) []*target.Target {
	for _, g := range r.published.Load().groups {
		if g.Name == group {
			return g.View().Targets
		}
	}
	return nil
}

// dataPath is the data path of the servers the tests start: TestMain runs
// every test on each.
var dataPath = Loops

// newServer returns a server on this run's data path, with obs its
// observer (if not nil), shut down when the test ends; then none of its
// goroutines may be left.
func newServer(t testing.TB, obs proxy.Observer) *Server {
	t.Helper()
	return newServerWith(t, Options{Observer: obs})
}

// newServerWith is newServer with options; this run's data path, and the
// test's logger unless o has one.
func newServerWith(t testing.TB, o Options) *Server {
	t.Helper()
	leaktest.Check(t)
	o.DataPath = dataPath
	if o.Log == nil {
		o.Log = testLogger(t)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startRunning runs latch on a whole config, whose listener must be
// "front", with its state in dir (a new temporary one if ""), and stops it
// when the test ends. scheme is the listener's, for url.
func startRunning(t testing.TB, yaml, dir, scheme string) *running {
	t.Helper()
	return startObserved(t, yaml, dir, scheme, nil)
}

// startObserved is startRunning with an observer on the data path.
func startObserved(t testing.TB, yaml, dir, scheme string, obs proxy.Observer) *running {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b := newServer(t, obs)
	if err := b.Apply(t.Context(), parse(t, yaml, dir)); err != nil {
		t.Fatal(err)
	}
	return &running{Server: b, url: scheme + "://" + b.Addr("front"), stateDir: dir}
}

// applyYAML reloads r with a whole config.
func (r *running) applyYAML(t testing.TB, yaml string) {
	t.Helper()
	if err := r.Apply(t.Context(), parse(t, yaml, r.stateDir)); err != nil {
		t.Fatal(err)
	}
}

func startLB(t testing.TB, c lbConfig) *running {
	t.Helper()
	return startObserved(t, c.yaml(), c.stateDir, "http", c.observer)
}

func (r *running) reload(t testing.TB, c lbConfig) {
	t.Helper()
	r.applyYAML(t, c.yaml())
}

// client is an HTTP client with no cookie jar: tests manage cookies by hand.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

type result struct {
	status  int
	body    string
	backend string
	moved   string
	cookie  string // the AWSALB value set by the response, if any
	header  http.Header
}

func get(t testing.TB, url, cookie string) result {
	t.Helper()
	r, err := tryGet(url, cookie)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryGet is get for a goroutine other than the test's, which must not call
// t.Fatal.
func tryGet(url, cookie string) (result, error) {
	req, _ := http.NewRequest("GET", url, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, body: string(body), backend: resp.Header.Get("X-Backend"),
		moved: resp.Header.Get("X-Saw-Moved"), header: resp.Header}
	for _, c := range resp.Cookies() {
		if c.Name == "AWSALB" {
			r.cookie = c.Value
		}
	}
	return r, nil
}

// waitFor waits until cond holds, checking it again at every event of the
// server's (a health transition, a registration, a change applied), and
// fails t if it does not within d.
func (r *running) waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	events := r.Subscribe(64)
	defer events.Close()
	timeout := time.After(d)
	for !cond() {
		select {
		case <-events.C:
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// poll waits until cond holds, checking it every 10 ms, for a condition no
// event tells of; it fails t if cond does not hold within d.
func poll(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMain runs every test twice in this one process, first with the
// servers on event loops, then with a goroutine per connection (where
// there are no loops, both runs are on goroutines). It doubles as a target
// process when asked to (see startProcess), so that tests can kill a real
// target with a signal.
func TestMain(m *testing.M) {
	if name := os.Getenv("LATCH_TEST_BACKEND"); name != "" {
		runBackendProcess(name)
		return
	}
	dataPath = Loops
	code := m.Run()
	if code == 0 {
		fmt.Println("=== the same tests with a goroutine per connection (data path goroutines)")
		dataPath = Goroutines
		code = m.Run()
	}
	os.Exit(code)
}

func runBackendProcess(name string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", ln.Addr().String())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		if m := r.Header.Get("X-Latch-Session-Moved"); m != "" {
			w.Header().Set("X-Saw-Moved", m)
		}
		io.WriteString(w, name)
	}))
}

// process is a target running as a separate OS process.
type process struct {
	name, addr string
	cmd        *exec.Cmd
}

func startProcess(t *testing.T, name string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LATCH_TEST_BACKEND="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("backend process %s: %q, %v", name, line, err)
	}
	return &process{name: name, addr: strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")), cmd: cmd}
}
