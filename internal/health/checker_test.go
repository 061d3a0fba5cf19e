package health

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/testnet"
)

func testSpec() config.HealthCheck {
	return config.HealthCheck{
		Enabled: true, Protocol: config.HTTP, Path: "/healthz",
		Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond,
		HealthyThreshold: 2, UnhealthyThreshold: 2,
		Matcher:   matcher("200-399"),
		UserAgent: "ELB-HealthChecker/2.0",
	}
}

// untimedSpec is testSpec for probes that test no time: its timeout is
// long enough that a loaded machine does not make them time out.
func untimedSpec() config.HealthCheck {
	s := testSpec()
	s.Timeout = 5 * time.Second
	return s
}

// matcher parses ALB's matcher syntax ("200", "200,202", "200-299").
func matcher(s string) config.Matcher {
	m, err := config.ParseMatcher(s)
	if err != nil {
		panic(err)
	}
	return m
}

// wake is poked by what the tests wait for: a request reaching a test
// server or ending, and every change of a test group's targets.
var wake = make(chan struct{}, 1)

func poke() {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds, checking it again whenever something
// pokes wake (and every 100 ms, for what nothing pokes for, such as
// goroutines ending), and reports whether it did within timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	expired := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-wake:
		case <-tick.C:
		case <-expired:
			return cond()
		}
	}
	return true
}

// server is a real HTTP server on 127.0.0.1 that counts its requests.
// Handlers that block should also wait on release, closed before the
// server is.
type server struct {
	*httptest.Server
	addr     string
	requests atomic.Int64
	inflight atomic.Int64
	release  chan struct{}
}

func newServer(t *testing.T, h func(s *server, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	return newServerProto(t, false, h)
}

// newServerProto is newServer speaking cleartext HTTP/2 with prior
// knowledge if h2, as the targets of a protocol_version HTTP2 group do.
func newServerProto(t *testing.T, h2 bool, h func(s *server, w http.ResponseWriter, r *http.Request)) *server {
	t.Helper()
	s := &server{release: make(chan struct{})}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.inflight.Add(1)
		poke()
		defer poke()
		defer s.inflight.Add(-1)
		h(s, w, r)
	}))
	if h2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		s.Config.Protocols = &p
	}
	s.Start()
	s.addr = s.Listener.Addr().String()
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(s.release) }) // runs before Close
	return s
}

func status(code int) func(*server, http.ResponseWriter, *http.Request) {
	return func(_ *server, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// hang answers nothing until the client goes away or the test ends.
func hang(s *server, _ http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.release:
	}
}

// closedAddr returns an address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string {
	return testnet.RefusingAddr(t)
}

// probe runs c.Probe, failing the test if it does not return within 5 s
// (so that a broken timeout fails rather than hangs).
func probe(t *testing.T, c *Checker, addr string) target.Result {
	t.Helper()
	done := make(chan target.Result, 1)
	go func() { done <- c.Probe(context.Background(), addr) }()
	select {
	case r := <-done:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("Probe(%s) did not return within 5 s", addr)
		return target.Result{}
	}
}

type firstPicker []*target.Target

func (p firstPicker) Pick(exclude *target.Target) *target.Target {
	for _, t := range p {
		if t != exclude {
			return t
		}
	}
	return exclude
}

// newGroup returns a health-checked group over addrs with spec's thresholds.
func newGroup(t *testing.T, spec config.HealthCheck, addrs ...string) (*target.Group, target.Settings, func(string) uint64) {
	t.Helper()
	s := target.Settings{
		HealthChecks:        true,
		HealthyThreshold:    spec.HealthyThreshold,
		UnhealthyThreshold:  spec.UnhealthyThreshold,
		MinHealthyCount:     1,
		DeregistrationDelay: 50 * time.Millisecond,
		NewPicker:           func(ts []*target.Target) target.Picker { return firstPicker(ts) },
		Notify:              func(target.Event) { poke() },
	}
	g := target.NewGroup("web", s, slog.New(slog.DiscardHandler))
	t.Cleanup(g.Close)
	var next atomic.Uint64
	gen := func(string) uint64 { return next.Add(1) }
	g.Reconcile(targets(addrs...), s, gen)
	return g, s, gen
}

func targets(addrs ...string) []config.Target {
	out := make([]config.Target, len(addrs))
	for i, a := range addrs {
		out[i] = config.Target{ID: a, Weight: 1}
	}
	return out
}

// startChecker makes a checker for spec the one g runs (in *s, so that
// later Reconciles keep it), which starts probing g's targets; it is
// stopped at cleanup (before the servers close).
func startChecker(t *testing.T, g *target.Group, s *target.Settings, spec config.HealthCheck) *Checker {
	t.Helper()
	c := NewChecker(spec, false)
	t.Cleanup(func() { stop(t, c) })
	s.Checker = c
	var regs []config.Target
	for _, tg := range g.View().Targets {
		regs = append(regs, config.Target{ID: tg.ID, Weight: tg.Weight()})
	}
	g.Reconcile(regs, *s, nil)
	return c
}

// stop closes c, failing the test rather than hanging if Close does not
// return within 5 s.
func stop(t *testing.T, c *Checker) {
	t.Helper()
	stopped := make(chan struct{})
	go func() {
		c.Close()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Errorf("Close did not return within 5 s")
	}
}

func lookup(t *testing.T, g *target.Group, addr string) *target.Target {
	t.Helper()
	tg, _ := g.View().Lookup(addr)
	if tg == nil {
		t.Fatalf("target %s not registered", addr)
	}
	return tg
}

func TestProbeStatus(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		matcher  config.Matcher
		wantOK   bool
		wantDesc string // for failures; reason is ResponseCodeMismatch
	}{
		{"200", 200, matcher("200"), true, ""},
		{"503", 503, matcher("200-399"), false, "Health checks failed with these codes: [503]"},
		{"500 outside 200", 500, matcher("200"), false, "Health checks failed with these codes: [500]"},
		{"302 within 200-399 is not followed", 302, matcher("200-399"), true, ""},
		{"302 outside 200 is not followed", 302, matcher("200"), false, "Health checks failed with these codes: [302]"},
		{"301 outside 200-299", 301, matcher("200-299"), false, "Health checks failed with these codes: [301]"},
		{"404 in a list", 404, matcher("200,404"), true, ""},
		{"200 outside a list", 200, matcher("201-204,404"), false, "Health checks failed with these codes: [200]"},
		{"499 at the end of a range", 499, matcher("200-499"), true, ""},
		{"204 no body", 204, matcher("200-299"), true, ""},
	}
	for _, tc := range tests {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/http2=%v", tc.name, h2), func(t *testing.T) {
				var followed atomic.Int64
				srv := newServerProto(t, h2, func(_ *server, w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/elsewhere" {
						followed.Add(1)
						return
					}
					if tc.code/100 == 3 {
						http.Redirect(w, r, "/elsewhere", tc.code)
						return
					}
					w.WriteHeader(tc.code)
				})
				spec := untimedSpec()
				spec.Matcher = tc.matcher
				r := probe(t, NewChecker(spec, h2), srv.addr)
				want := target.Result{OK: true}
				if !tc.wantOK {
					want = target.Result{Reason: target.ReasonResponseCodeMismatch, Description: tc.wantDesc}
				}
				if r != want {
					t.Errorf("got %+v, want %+v", r, want)
				}
				if n := followed.Load(); n != 0 {
					t.Errorf("redirect followed %d times, want 0", n)
				}
				if n := srv.requests.Load(); n != 1 {
					t.Errorf("server got %d requests, want 1", n)
				}
			})
		}
	}
}

func TestProbeLargeBody(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		srv := newServerProto(t, h2, func(_ *server, w http.ResponseWriter, _ *http.Request) {
			chunk := []byte(strings.Repeat("x", 32<<10))
			for range 64 { // 2 MiB, far past what a probe reads
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		if r := probe(t, NewChecker(untimedSpec(), h2), srv.addr); r != (target.Result{OK: true}) {
			t.Errorf("http2 %v: got %+v, want OK", h2, r)
		}
	}
}

func TestProbeTimeout(t *testing.T) {
	tests := []struct {
		name    string
		handler func(*server, http.ResponseWriter, *http.Request)
	}{
		{"no response", hang},
		{"headers then a stalled body", func(s *server, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			hang(s, w, r)
		}},
	}
	for _, tc := range tests {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/http2=%v", tc.name, h2), func(t *testing.T) {
				srv := newServerProto(t, h2, tc.handler)
				r := probe(t, NewChecker(testSpec(), h2), srv.addr)
				want := target.Result{Reason: target.ReasonTimeout, Description: "Request timed out"}
				if r != want {
					t.Errorf("got %+v, want %+v", r, want)
				}
			})
		}
	}
}

func TestProbeConnectionRefused(t *testing.T) {
	addr := closedAddr(t)
	r := probe(t, NewChecker(testSpec(), false), addr)
	if r.OK || r.Reason != target.ReasonFailedHealthChecks {
		t.Errorf("got OK %v reason %q, want a failure with %q", r.OK, r.Reason, target.ReasonFailedHealthChecks)
	}
	if !strings.HasPrefix(r.Description, "Health checks failed: ") || !strings.Contains(r.Description, "connection refused") {
		t.Errorf("got description %q, want \"Health checks failed: \" and the refusal", r.Description)
	}
	if strings.Contains(r.Description, "Get ") {
		t.Errorf("got description %q, want the cause without url.Error's prefix", r.Description)
	}
}

func TestProbeCanceled(t *testing.T) {
	srv := newServer(t, status(200))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := NewChecker(testSpec(), false).Probe(ctx, srv.addr); r.OK {
		t.Errorf("probe with a canceled context: got %+v, want a failure", r)
	}
}

func TestProbeRequest(t *testing.T) {
	tests := []struct {
		name      string
		userAgent string
		path      string
		wantUA    string
		wantPath  string
		wantQuery string
	}{
		{"ALB user agent", "ELB-HealthChecker/2.0", "/healthz", "ELB-HealthChecker/2.0", "/healthz", ""},
		{"custom user agent", "latch-probe/1.0 (test)", "/healthz", "latch-probe/1.0 (test)", "/healthz", ""},
		{"no user agent: ALB's", "", "/healthz", "ELB-HealthChecker/2.0", "/healthz", ""},
		{"path with query", "ELB-HealthChecker/2.0", "/status/deep?full=1&who=latch", "ELB-HealthChecker/2.0", "/status/deep", "full=1&who=latch"},
		{"root", "ELB-HealthChecker/2.0", "/", "ELB-HealthChecker/2.0", "/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan *http.Request, 1)
			srv := newServer(t, func(_ *server, w http.ResponseWriter, r *http.Request) {
				got <- r.Clone(context.Background())
			})
			spec := untimedSpec()
			spec.UserAgent, spec.Path = tc.userAgent, tc.path
			if r := probe(t, NewChecker(spec, false), srv.addr); !r.OK {
				t.Fatalf("probe failed: %+v", r)
			}
			r := <-got
			if r.Method != http.MethodGet {
				t.Errorf("method: got %s, want GET", r.Method)
			}
			if ua := r.Header.Values("User-Agent"); len(ua) != 1 || ua[0] != tc.wantUA {
				t.Errorf("User-Agent: got %q, want [%q]", ua, tc.wantUA)
			}
			if r.Host != srv.addr {
				t.Errorf("Host: got %q, want %q", r.Host, srv.addr)
			}
			if r.URL.Path != tc.wantPath || r.URL.RawQuery != tc.wantQuery {
				t.Errorf("path: got %q ? %q, want %q ? %q", r.URL.Path, r.URL.RawQuery, tc.wantPath, tc.wantQuery)
			}
			if r.ProtoMajor != 1 || r.ProtoMinor != 1 {
				t.Errorf("protocol: got %s, want HTTP/1.1", r.Proto)
			}
			if !r.Close {
				t.Errorf("request does not ask to close the connection (Connection: close), want keep-alives off")
			}
			if r.ContentLength != 0 {
				t.Errorf("request body: got %d bytes, want none", r.ContentLength)
			}
		})
	}
}

func TestProbeNewConnectionEach(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := NewChecker(untimedSpec(), false)
	const probes = 5
	for i := range probes {
		if r := probe(t, c, srv.Listener.Addr().String()); !r.OK {
			t.Fatalf("probe %d: %+v", i, r)
		}
	}
	if n := conns.Load(); n != probes {
		t.Errorf("got %d connections for %d probes, want %d", n, probes, probes)
	}
}

func TestProbeCustomPort(t *testing.T) {
	traffic := newServer(t, status(http.StatusServiceUnavailable))
	hosts := make(chan string, 1)
	healthSrv := newServer(t, func(_ *server, w http.ResponseWriter, r *http.Request) { hosts <- r.Host })
	_, port, _ := net.SplitHostPort(healthSrv.addr)

	spec := untimedSpec()
	spec.Port, _ = strconv.Atoi(port)
	if r := probe(t, NewChecker(spec, false), traffic.addr); r != (target.Result{OK: true}) {
		t.Errorf("got %+v, want OK from the health check port", r)
	}
	if n := traffic.requests.Load(); n != 0 {
		t.Errorf("traffic port got %d requests, want 0", n)
	}
	if n := healthSrv.requests.Load(); n != 1 {
		t.Fatalf("health check port got %d requests, want 1", n)
	}
	if h := <-hosts; h != healthSrv.addr {
		t.Errorf("Host: got %q, want %q", h, healthSrv.addr)
	}
}

// TestCheckerStateMachine runs probes against a scripted server. Probes of
// one target are sequential and each result is observed before the next
// probe starts, so the state a request finds is the state after all the
// earlier probes: the trace is exact.
func TestCheckerStateMachine(t *testing.T) {
	script := []int{200, 503, 503, 200, 200, 200} // then 200
	var tg atomic.Pointer[target.Target]
	var mu sync.Mutex
	var seen []target.Health // seen[i]: the target's health when request i arrived
	srv := newServer(t, func(_ *server, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		i := len(seen)
		seen = append(seen, tg.Load().Health())
		mu.Unlock()
		code := 200
		if i < len(script) {
			code = script[i]
		}
		w.WriteHeader(code)
	})

	spec := testSpec()
	spec.Interval = 50 * time.Millisecond
	// Longer than the interval (which the config forbids but the checker
	// allows) so that a loaded machine cannot turn a late 200 into a timeout.
	spec.Timeout = 2 * time.Second
	spec.HealthyThreshold, spec.UnhealthyThreshold = 3, 2
	g, s, _ := newGroup(t, spec, srv.addr)
	tg.Store(lookup(t, g, srv.addr))
	startChecker(t, g, &s, spec)

	want := []target.State{
		target.Initial,   // before any probe
		target.Healthy,   // one 200 leaves initial
		target.Healthy,   // one 503: below the unhealthy threshold
		target.Unhealthy, // two 503s
		target.Unhealthy, // one 200
		target.Unhealthy, // two 200s
		target.Healthy,   // three 200s: the healthy threshold
		target.Healthy,
	}
	if !waitFor(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= len(want) }) {
		t.Fatalf("server got %d probes in 5 s, want %d", srv.requests.Load(), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	for i, w := range want {
		if got := seen[i].State; got != w {
			t.Errorf("state before probe %d: got %v, want %v", i+1, got, w)
		}
	}
	if h := seen[3]; h.Reason != target.ReasonResponseCodeMismatch || h.Description != "Health checks failed with these codes: [503]" {
		t.Errorf("unhealthy: got reason %q description %q, want %q, %q", h.Reason, h.Description,
			target.ReasonResponseCodeMismatch, "Health checks failed with these codes: [503]")
	}
	if h := seen[6]; h.Reason != "" || h.Description != "" {
		t.Errorf("healthy again: got reason %q description %q, want none", h.Reason, h.Description)
	}
}

func TestCheckerFailureReasons(t *testing.T) {
	slow := newServer(t, hang)
	failing := newServer(t, status(http.StatusBadGateway))
	refused := closedAddr(t)

	spec := testSpec() // interval 100 ms, timeout 50 ms, thresholds 2
	g, s, _ := newGroup(t, spec, slow.addr, failing.addr, refused)
	startChecker(t, g, &s, spec)

	tests := []struct {
		addr       string
		wantReason string
		wantDesc   string // substring
	}{
		{slow.addr, target.ReasonTimeout, "Request timed out"},
		{failing.addr, target.ReasonResponseCodeMismatch, "Health checks failed with these codes: [502]"},
		{refused, target.ReasonFailedHealthChecks, "connection refused"},
	}
	for _, tc := range tests {
		tg := lookup(t, g, tc.addr)
		if !waitFor(t, 5*time.Second, func() bool { return tg.Health().State == target.Unhealthy }) {
			t.Errorf("%s: still %v after 5 s, want unhealthy", tc.addr, tg.Health().State)
			continue
		}
		if h := tg.Health(); h.Reason != tc.wantReason || !strings.Contains(h.Description, tc.wantDesc) {
			t.Errorf("%s: got %q / %q, want %q / containing %q", tc.addr, h.Reason, h.Description, tc.wantReason, tc.wantDesc)
		}
	}
	// Every target failing: the group fails open.
	if v := g.View(); !v.FailOpen || len(v.Routable) != 3 {
		t.Errorf("all unhealthy: got fail-open %v with %d routable, want true with 3", v.FailOpen, len(v.Routable))
	}
}

func TestCheckerSyncStopsRemovedTargets(t *testing.T) {
	a := newServer(t, status(200))
	b := newServer(t, status(200))
	spec := testSpec()
	spec.Interval, spec.Timeout = 50*time.Millisecond, 2*time.Second
	g, s, gen := newGroup(t, spec, a.addr, b.addr)
	startChecker(t, g, &s, spec)
	oldA := lookup(t, g, a.addr)

	if !waitFor(t, 5*time.Second, func() bool { return a.requests.Load() >= 2 && b.requests.Load() >= 2 }) {
		t.Fatalf("got %d and %d probes in 5 s, want at least 2 each", a.requests.Load(), b.requests.Load())
	}

	g.Reconcile(targets(b.addr), s, gen) // the group stops a's probes
	// b's probes measure time. A probe of a already under way may still
	// land during the first two of them; none may start after.
	waitB := func(n int64) {
		t.Helper()
		want := b.requests.Load() + n
		if !waitFor(t, 5*time.Second, func() bool { return b.requests.Load() >= want }) {
			t.Fatalf("b got no more probes")
		}
	}
	waitB(2)
	settled := a.requests.Load()
	waitB(5)
	if got := a.requests.Load(); got != settled {
		t.Errorf("a got %d more probes after its deregistration, want none", got-settled)
	}
	if h := oldA.Health(); h.State != target.Draining && h.State != target.Unused {
		t.Errorf("removed a: got %v, want draining or unused", h.State)
	}

	// Registered again: a new target, probed from initial.
	g.Reconcile(targets(a.addr, b.addr), s, gen)
	newA := lookup(t, g, a.addr)
	if newA == oldA {
		t.Fatalf("re-registered a is the old *Target")
	}
	if !waitFor(t, 5*time.Second, func() bool { return newA.Health().State == target.Healthy }) {
		t.Errorf("re-registered a: still %v after 5 s, want healthy", newA.Health().State)
	}
	if got := a.requests.Load(); got <= settled {
		t.Errorf("re-registered a got no probes")
	}
}

// TestCheckerStartIdempotent checks that starting a target already probed
// starts no second probe loop: with a server that never answers, each loop
// holds exactly one request open.
func TestCheckerStartIdempotent(t *testing.T) {
	stuck := newServer(t, hang)
	clock := newServer(t, status(200))
	spec := testSpec()
	spec.Interval, spec.Timeout = 50*time.Millisecond, time.Minute
	g, s, _ := newGroup(t, spec, stuck.addr, clock.addr)
	c := startChecker(t, g, &s, spec)
	for range 3 {
		for _, tg := range g.View().Targets {
			c.Start(tg, g.Observe)
		}
	}

	// Every loop's first probe comes within one interval; wait for several.
	if !waitFor(t, 5*time.Second, func() bool { return clock.requests.Load() >= 6 && stuck.inflight.Load() >= 1 }) {
		t.Fatalf("got %d probes of the clock target, %d requests in flight, want 6 and 1", clock.requests.Load(), stuck.inflight.Load())
	}
	if n := stuck.requests.Load(); n != 1 {
		t.Errorf("the hanging target got %d requests, want 1 (one probe loop)", n)
	}
}

func TestCheckerStop(t *testing.T) {
	stuck := newServer(t, hang)
	a := newServer(t, status(200))
	b := newServer(t, status(503))
	before := runtime.NumGoroutine()

	spec := testSpec()
	spec.Interval, spec.Timeout = 50*time.Millisecond, time.Minute
	g, s, _ := newGroup(t, spec, stuck.addr, a.addr, b.addr)
	c := startChecker(t, g, &s, spec)
	if !waitFor(t, 5*time.Second, func() bool {
		return stuck.inflight.Load() == 1 && a.requests.Load() >= 2 && b.requests.Load() >= 2
	}) {
		stop(t, c)
		t.Fatalf("probes did not start")
	}

	stop(t, c) // with a probe in flight whose timeout is 1 min
	if t.Failed() {
		t.FailNow()
	}
	stop(t, c) // a second Close is harmless

	// The probe in flight was cut: the server sees its client go away.
	if !waitFor(t, 5*time.Second, func() bool { return stuck.inflight.Load() == 0 }) {
		t.Errorf("the hanging probe is still in flight after Stop")
	}
	var now int
	if !waitFor(t, 5*time.Second, func() bool { now = runtime.NumGoroutine(); return now <= before }) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutines: %d before the checker, %d after Stop\n%s", before, now, buf)
	}
}

// TestCheckerJitter checks that targets registered together are not probed
// in step: their first probes are spread over the interval. Eight uniform
// draws over 1 s all land within 100 ms of each other with a probability
// of about 1e-6.
func TestCheckerJitter(t *testing.T) {
	const n = 8
	var mu sync.Mutex
	first := map[string]time.Time{}
	var addrs []string
	for range n {
		srv := newServer(t, func(s *server, w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			if _, ok := first[s.addr]; !ok {
				first[s.addr] = time.Now()
			}
			mu.Unlock()
		})
		addrs = append(addrs, srv.addr)
	}
	spec := testSpec()
	spec.Interval, spec.Timeout = time.Second, 500*time.Millisecond
	g, s, _ := newGroup(t, spec, addrs...)
	startChecker(t, g, &s, spec)

	if !waitFor(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(first) == n }) {
		t.Fatalf("only %d of %d targets probed in 5 s", len(first), n)
	}
	mu.Lock()
	defer mu.Unlock()
	var lo, hi time.Time
	for _, at := range first {
		if lo.IsZero() || at.Before(lo) {
			lo = at
		}
		if at.After(hi) {
			hi = at
		}
	}
	if spread := hi.Sub(lo); spread < spec.Interval/10 {
		t.Errorf("first probes of %d targets spread over %v, want at least %v (jitter)", n, spread, spec.Interval/10)
	}
}

// TestProbeRequestHead reads the HTTP/1.1 probe's request head as it comes
// off the wire.
func TestProbeRequestHead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heads := make(chan string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var head []byte
			buf := make([]byte, 4096)
			for !strings.HasSuffix(string(head), "\r\n\r\n") {
				n, err := c.Read(buf)
				head = append(head, buf[:n]...)
				if err != nil {
					break
				}
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
			heads <- string(head)
		}
	}()
	addr := ln.Addr().String()
	tests := []struct{ path, target string }{
		{"/healthz", "/healthz"},
		{"/status?full=1&who=latch", "/status?full=1&who=latch"},
		{"/h\u00e9alth", "/h%C3%A9alth"}, // escaped, as net/http sent it
		{"//double", "//double"},
	}
	for _, tc := range tests {
		spec := untimedSpec()
		spec.Path = tc.path
		if r := probe(t, NewChecker(spec, false), addr); !r.OK {
			t.Fatalf("path %q: probe failed: %+v", tc.path, r)
		}
		want := "GET " + tc.target + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: ELB-HealthChecker/2.0\r\nConnection: close\r\n\r\n"
		if got := <-heads; got != want {
			t.Errorf("path %q: got request head\n%q, want\n%q", tc.path, got, want)
		}
	}
}

// TestProbeUnsendable checks that a path or user agent no request can
// carry is latch's own error, found before any connection is made.
func TestProbeUnsendable(t *testing.T) {
	srv := newServer(t, status(200))
	tests := []struct {
		name, path, userAgent, want string
	}{
		{"NUL in the path", "/a\x00b", "", `the health check path "/a\x00b" cannot be sent: net/url: invalid control character in URL`},
		{"control character in the user agent", "/", "probe\x01", `the health check user agent "probe\x01" cannot be sent: it holds a control character`},
	}
	for _, tc := range tests {
		for _, h2 := range []bool{false, true} {
			spec := untimedSpec()
			spec.Path, spec.UserAgent = tc.path, tc.userAgent
			want := target.Result{Reason: target.ReasonInternalError, Description: tc.want}
			if r := probe(t, NewChecker(spec, h2), srv.addr); r != want {
				t.Errorf("%s (http2 %v): got %+v, want %+v", tc.name, h2, r, want)
			}
		}
	}
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("server got %d requests, want none", n)
	}
}
