package metrics_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/net/http2"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/metrics"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/testnet"
	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// backend is a real HTTP target: it names itself in X-Backend, answers 500
// on /fail, and fails its health checks while sick.
type backend struct {
	name, addr string
	sick       atomic.Bool
}

func startBackend(t *testing.T, name string) *backend {
	b := &backend{name: name}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		switch {
		case r.URL.Path == "/healthz" && b.sick.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	b.addr = strings.TrimPrefix(s.URL, "http://")
	return b
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	return testnet.RefusingAddr(t)
}

// lb is a latch server with metrics on, and the metrics served over HTTP
// as the admin listener serves them.
type lb struct {
	srv     *server.Server
	m       *metrics.Metrics
	front   string // http://addr of listener front
	secure  string // addr of listener secure (HTTPS)
	scrape  string // the metrics URL
	clients *http.Client
}

func start(t *testing.T, path server.DataPath, yaml string) *lb {
	t.Helper()
	leaktest.Check(t)
	m := metrics.New()
	srv, err := server.New(server.Options{DataPath: path, Observer: m.Observer(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	m.Watch(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		m.Close()
	})
	cfg, err := config.Parse([]byte(yaml), "")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	if err := srv.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(m.Handler())
	t.Cleanup(h.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &lb{srv: srv, m: m, front: "http://" + srv.Addr("front"), secure: srv.Addr("secure"),
		scrape: h.URL + "/metrics", clients: &http.Client{Transport: tr, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status          int
	backend, cookie string
}

func (l *lb) get(t *testing.T, path, cookie string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", l.front+path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", "AWSALB="+cookie)
	}
	resp, err := l.clients.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	a := answer{status: resp.StatusCode, backend: resp.Header.Get("X-Backend")}
	for _, c := range resp.Cookies() {
		if c.Name == "AWSALB" {
			a.cookie = c.Value
		}
	}
	return a
}

// waitState waits, on the server's events, until target id of group is in
// state.
func (l *lb) waitState(t *testing.T, group, id, state string) {
	t.Helper()
	sub := l.srv.Subscribe(64)
	defer sub.Close()
	timeout := time.After(10 * time.Second)
	for {
		if g := l.srv.Snapshot().Group(group); g != nil {
			for _, ts := range g.Targets {
				if ts.ID == id && ts.State.String() == state {
					return
				}
			}
		}
		select {
		case <-sub.C:
		case <-timeout:
			t.Fatalf("timed out waiting for %s/%s to be %s", group, id, state)
		}
	}
}

// families scrapes the metrics over HTTP and parses them.
func (l *lb) families(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(l.scrape)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels are labels
// (as "k=v" pairs; a histogram's count), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

const yamlTemplate = `listeners:
  - name: front
    address: 127.0.0.1:0
    rules:
      - priority: 1
        conditions: [ { path_pattern: ["/old/*"] } ]
        action:
          type: redirect
          redirect: { path: "/new/#{path}", status_code: HTTP_301 }
      - priority: 2
        conditions: [ { path_pattern: ["/fixed"] } ]
        action:
          type: fixed-response
          fixed_response: { status_code: "200", content_type: text/plain, message_body: "fixed" }
      - priority: 3
        conditions: [ { path_pattern: ["/down"] } ]
        action: { type: forward, forward: { target_group: down } }
      - priority: 4
        conditions: [ { path_pattern: ["/pair"] } ]
        action: { type: forward, forward: { target_group: pair } }
    default_action: { type: forward, forward: { target_group: web } }
  - name: secure
    address: 127.0.0.1:0
    protocol: HTTPS
    certificates:
      - cert_file: %[4]s
        key_file: %[5]s
    default_action:
      type: fixed-response
      fixed_response: { status_code: "200", content_type: text/plain, message_body: "secure" }
target_groups:
  - name: web
    targets:
      - id: %[1]s
      - id: %[2]s
    health_check:
      path: /healthz
      interval_seconds: 0.1
      timeout_seconds: 0.05
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
    attributes:
      stickiness.enabled: true
      deregistration_delay.timeout_seconds: 0
  - name: down
    targets:
      - id: %[3]s
    health_check: { enabled: false }
  - name: pair
    targets:
      - id: %[3]s
      - id: %[2]s
    health_check: { enabled: false }
state_dir: %[6]s
`

// TestMetrics sends latch known traffic over real HTTP and HTTPS, scrapes
// /metrics with a real client and checks every count: target and latch
// responses, sticky outcomes and reasons, connect failures and retries,
// desync classifications, TLS handshakes, health and reloads.
func TestMetrics(t *testing.T) {
	for _, path := range []server.DataPath{server.Loops, server.Goroutines} {
		name := map[server.DataPath]string{server.Loops: "loops", server.Goroutines: "goroutines"}[path]
		t.Run(name, func(t *testing.T) { testMetrics(t, path) })
	}
}

func testMetrics(t *testing.T, path server.DataPath) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	dead := deadAddr(t)
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, tlstest.Options{DNSNames: []string{"secure.example.test"}}).Write(t, dir, "secure")
	l := start(t, path, fmt.Sprintf(yamlTemplate, a.addr, b.addr, dead, certFile, keyFile, filepath.Join(dir, "state")))
	l.waitState(t, "web", a.addr, "healthy")
	l.waitState(t, "web", b.addr, "healthy")

	if got := l.get(t, "/fixed", ""); got.status != 200 {
		t.Fatalf("fixed response: got %d, want 200", got.status)
	}
	if got := l.get(t, "/old/x", ""); got.status != 301 {
		t.Fatalf("redirect: got %d, want 301", got.status)
	}
	first := l.get(t, "/", "") // a new session
	if first.status != 200 || first.cookie == "" {
		t.Fatalf("first request: got %d, cookie %q; want 200 and a session cookie", first.status, first.cookie)
	}
	stuck, other := a, b
	if first.backend == "b" {
		stuck, other = b, a
	}
	if got := l.get(t, "/", first.cookie); got.backend != stuck.name { // a hit
		t.Fatalf("sticky request went to %q, want %q", got.backend, stuck.name)
	}
	if got := l.get(t, "/fail", first.cookie); got.status != 500 || got.backend != stuck.name { // a hit, the target's 500
		t.Fatalf("/fail: got %d from %q, want 500 from %q", got.status, got.backend, stuck.name)
	}
	c := []byte(first.cookie)
	if c[len(c)/2] == 'A' {
		c[len(c)/2] = 'B'
	} else {
		c[len(c)/2] = 'A'
	}
	if got := l.get(t, "/", string(c)); got.status != 200 || got.cookie == "" { // tampered: a new session
		t.Fatalf("tampered cookie: got %d, cookie %q; want 200 and a new session", got.status, got.cookie)
	}
	stuck.sick.Store(true)
	l.waitState(t, "web", stuck.addr, "unhealthy")
	moved := l.get(t, "/", first.cookie) // moved: unhealthy
	if moved.backend != other.name || moved.cookie == "" {
		t.Fatalf("session of an unhealthy target went to %q (cookie %q), want %q and a cookie", moved.backend, moved.cookie, other.name)
	}
	if got := l.get(t, "/down", ""); got.status != 502 {
		t.Fatalf("/down: got %d, want 502", got.status)
	}
	const pairs = 4
	for range pairs {
		if got := l.get(t, "/pair", ""); got.status != 200 || got.backend != "b" {
			t.Fatalf("/pair: got %d from %q, want 200 from b (retried when the dead target was picked)", got.status, got.backend)
		}
	}
	// A request desync mitigation blocks (severe: a Content-Length that is
	// no number); latch answers 400 and closes.
	raw(t, strings.TrimPrefix(l.front, "http://"), "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n")

	// HTTPS: one good handshake and request, one handshake that fails.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "secure.example.test"}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + l.secure + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	raw(t, l.secure, "this is no ClientHello\r\n\r\n")

	const front, secure = "listener=front", "listener=secure"
	web, stuckT, otherT := "target_group=web", "target="+stuck.addr, "target="+other.addr
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		// fixed, redirect, new, hit, 500, tampered, moved, down, 4 pairs, blocked
		{"latch_listener_requests_total", []string{front}, 13},
		{"latch_listener_target_responses_total", []string{front, "code=2xx"}, 4 + pairs},
		{"latch_listener_target_responses_total", []string{front, "code=5xx"}, 1},
		{"latch_listener_latch_responses_total", []string{front, "code=2xx", "cause=fixed_response"}, 1},
		{"latch_listener_latch_responses_total", []string{front, "code=3xx", "cause=redirect"}, 1},
		{"latch_listener_latch_responses_total", []string{front, "code=5xx", "cause=connect_failed"}, 1},
		{"latch_listener_latch_responses_total", []string{front, "code=4xx", "cause=desync_blocked"}, 1},
		{"latch_listener_desync_requests_total", []string{front, "classification=compliant"}, 12},
		{"latch_listener_desync_requests_total", []string{front, "classification=severe"}, 1},
		{"latch_listener_desync_blocked_requests_total", []string{front}, 1},
		{"latch_listener_unanswered_requests_total", []string{front}, 0},
		{"latch_listener_requests_total", []string{secure}, 1},
		{"latch_listener_latch_responses_total", []string{secure, "code=2xx", "cause=fixed_response"}, 1},
		{"latch_listener_tls_handshakes_total", []string{secure}, 1},
		{"latch_listener_tls_handshake_errors_total", []string{secure}, 1},
		{"latch_listener_connections_total", []string{secure}, 2},
		{"latch_listener_tls_handshakes_total", []string{front}, 0},

		{"latch_sticky_requests_total", []string{web, "outcome=new", "reason="}, 1},
		{"latch_sticky_requests_total", []string{web, "outcome=hit", "reason="}, 2},
		{"latch_sticky_requests_total", []string{web, "outcome=invalid", "reason=tampered"}, 1},
		{"latch_sticky_requests_total", []string{web, "outcome=moved", "reason=unhealthy"}, 1},
		{"latch_sticky_requests_total", []string{web, "outcome=invalid", "reason=expired"}, 0},
		{"latch_sticky_requests_total", []string{web, "outcome=moved", "reason=draining"}, 0},

		{"latch_target_responses_total", []string{web, stuckT, "code=5xx"}, 1},
		{"latch_target_responses_total", []string{web, otherT, "code=5xx"}, 0},
		{"latch_target_state", []string{web, stuckT, "state=unhealthy"}, 1},
		{"latch_target_state", []string{web, stuckT, "state=healthy"}, 0},
		{"latch_target_state", []string{web, otherT, "state=healthy"}, 1},
		{"latch_target_group_healthy_targets", []string{web}, 1},
		{"latch_target_group_unhealthy_targets", []string{web}, 1},
		{"latch_target_weight", []string{web, stuckT}, 1},
		{"latch_target_inflight_requests", []string{web, stuckT}, 0},

		{"latch_target_requests_total", []string{"target_group=down", "target=" + dead}, 1},
		{"latch_target_errors_total", []string{"target_group=down", "target=" + dead, "cause=connect_failed"}, 1},
		{"latch_target_connect_failures_total", []string{"target_group=down", "target=" + dead}, 1},
		{"latch_target_response_time_seconds", []string{"target_group=down", "target=" + dead}, 0},
		{"latch_target_requests_total", []string{"target_group=pair", "target=" + b.addr}, pairs},
		{"latch_target_response_time_seconds", []string{"target_group=pair", "target=" + b.addr}, pairs},

		{"latch_config_reloads_total", []string{"source=file", "result=success"}, 1},
		{"latch_config_reloads_total", []string{"source=file", "result=failure"}, 0},
	}
	// latch tells the observer of a request once its answer is written,
	// which a client may read a moment before: look again until every
	// count is in (or 10 s have passed).
	fams := settle(t, l, func(fams map[string]*dto.MetricFamily) (bad []string) {
		for _, c := range checks {
			got, ok := value(fams, c.name, c.labels...)
			if !ok {
				bad = append(bad, fmt.Sprintf("%s{%s}: no such series", c.name, strings.Join(c.labels, ",")))
			} else if got != c.want {
				bad = append(bad, fmt.Sprintf("%s{%s} = %v, want %v", c.name, strings.Join(c.labels, ","), got, c.want))
			}
		}
		// Of the web group's 5 requests, the stuck target took the new
		// session's, the hit's, the 500 and perhaps the tampered one's; every
		// one had a response head timed.
		var reqs, timed float64
		for _, id := range []string{stuckT, otherT} {
			r, _ := value(fams, "latch_target_requests_total", web, id)
			h, _ := value(fams, "latch_target_response_time_seconds", web, id)
			reqs, timed = reqs+r, timed+h
		}
		if reqs != 5 || timed != 5 {
			bad = append(bad, fmt.Sprintf("web's targets took %v requests, %v timed; want 5 and 5", reqs, timed))
		}
		// Every pair request that found the dead target first was retried:
		// as many retries as connect failures there.
		retries, _ := value(fams, "latch_target_group_retries_total", "target_group=pair")
		fails, _ := value(fams, "latch_target_connect_failures_total", "target_group=pair", "target="+dead)
		if retries < 1 || retries != fails {
			bad = append(bad, fmt.Sprintf("pair: %v retries, %v connect failures on the dead target; want as many, at least 1", retries, fails))
		}
		if last, _ := value(fams, "latch_config_last_reload_success_timestamp_seconds"); last < float64(time.Now().Add(-time.Minute).Unix()) {
			bad = append(bad, fmt.Sprintf("latch_config_last_reload_success_timestamp_seconds = %v, want within the last minute", last))
		}
		return bad
	})

	// Every connection closed, none is open: latch tells the observer of a
	// close after the client sees it, so look again until it has.
	l.clients.Transport.(*http.Transport).CloseIdleConnections()
	tr.CloseIdleConnections()
	settle(t, l, func(f map[string]*dto.MetricFamily) (bad []string) {
		for _, ln := range []string{front, secure} {
			if n, _ := value(f, "latch_listener_connections_open", ln); n != 0 {
				bad = append(bad, fmt.Sprintf("latch_listener_connections_open{%s} = %v after every client closed, want 0", ln, n))
			}
		}
		return bad
	})

	// The target the session moved to served one or two sessions (the
	// moved one, and the tampered cookie's new one if it went there).
	testDrain(t, l, other, moved.cookie)

	// The dashboard's read agrees with the scrape.
	for _, tt := range l.m.Targets() {
		if tt.Group == "web" && tt.Target == stuck.addr {
			var n uint64
			for _, c := range tt.Buckets {
				n += c
			}
			r, _ := value(fams, "latch_target_requests_total", web, stuckT)
			if float64(tt.Requests) != r || n != tt.Requests || tt.Errors != 1 {
				t.Errorf("Targets(): %d requests, %d timed, %d errors; want %v, as many, and 1", tt.Requests, n, tt.Errors, r)
			}
		}
	}
}

// testDrain drains target b of group web, which served sticky sessions,
// keeping them; after one more request of the session cookie pins there,
// it checks the drain's progress and the change's count.
func testDrain(t *testing.T, l *lb, b *backend, cookie string) {
	t.Helper()
	id := b.addr
	d := config.Drain{Mode: config.DrainKeepSessions, Idle: time.Hour, Deadline: 2 * time.Hour}
	if err := l.srv.Drain(t.Context(), "web", id, d); err != nil {
		t.Fatal(err)
	}
	if got := l.get(t, "/", cookie); got.backend != b.name {
		t.Fatalf("a session of a target drained with keep_sessions went to %q, want %q", got.backend, b.name)
	}
	// The change is counted on the metrics' own goroutine, the request
	// once its answer is written.
	fams := settle(t, l, func(fams map[string]*dto.MetricFamily) []string {
		n, _ := value(fams, "latch_config_reloads_total", "source=update", "result=success")
		hits, _ := value(fams, "latch_sticky_requests_total", "target_group=web", "outcome=hit", "reason=")
		if n != 1 || hits != 3 {
			return []string{fmt.Sprintf("after the drain and a request of the drained target's session: %v update successes, %v sticky hits; want 1 and 3", n, hits)}
		}
		return nil
	})
	labels := []string{"target_group=web", "target=" + id}
	for _, c := range []struct {
		name     string
		min, max float64
	}{
		{"latch_target_drained", 1, 1},
		{"latch_target_state", 1, 1}, // state=draining, below
		{"latch_target_sessions", 1, 2},
		{"latch_target_drain_sessions_left", 1, 2},
		{"latch_target_drain_complete", 0, 0},
	} {
		ls := labels
		if c.name == "latch_target_state" {
			ls = append(ls[:2:2], "state=draining")
		}
		got, ok := value(fams, c.name, ls...)
		if !ok || got < c.min || got > c.max {
			t.Errorf("%s{%s} = %v (there: %v), want %v to %v", c.name, strings.Join(ls, ","), got, ok, c.min, c.max)
		}
	}
	dl, _ := value(fams, "latch_target_drain_deadline_timestamp_seconds", labels...)
	if want := float64(time.Now().Add(2 * time.Hour).Unix()); dl < want-60 || dl > want+60 {
		t.Errorf("latch_target_drain_deadline_timestamp_seconds = %v, want about %v", dl, want)
	}
}

// settle scrapes until check finds nothing wrong, and fails t with what it
// found if that takes over 10 s. Counts come a moment after what they
// count, with no event to wait for: an answer is counted once written, a
// close once done, a config change on the metrics' own goroutine.
func settle(t *testing.T, l *lb, check func(map[string]*dto.MetricFamily) []string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := l.families(t)
		bad := check(fams)
		if len(bad) == 0 {
			return fams
		}
		if time.Now().After(deadline) {
			for _, b := range bad {
				t.Error(b)
			}
			t.FailNow()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// raw sends req on a new connection and reads until latch closes it.
func raw(t *testing.T, addr, req string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	if _, err := io.Copy(io.Discard, bufio.NewReader(c)); err != nil {
		t.Fatalf("reading until latch closed the connection: %v", err)
	}
}

// TestOpenMetrics checks that a scraper asking for OpenMetrics gets it.
func TestOpenMetrics(t *testing.T) {
	m := metrics.New()
	h := httptest.NewServer(m.Handler())
	defer h.Close()
	req, _ := http.NewRequest("GET", h.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type %q, want application/openmetrics-text", ct)
	}
	if !strings.HasSuffix(string(body), "# EOF\n") || !strings.Contains(string(body), "latch_config_reloads_total") {
		t.Errorf("body does not look like OpenMetrics with latch's metrics:\n%s", body)
	}
}

// TestMetricsFollowChanges checks that series follow the running config:
// a group renamed by a reload loses its old series and starts the new ones
// at zero, and changes applied and refused are counted by source.
func TestMetricsFollowChanges(t *testing.T) {
	a := startBackend(t, "a")
	dir := t.TempDir()
	yaml := func(group string) string {
		return fmt.Sprintf(`listeners:
  - name: front
    address: 127.0.0.1:0
    default_action: { type: forward, forward: { target_group: %[1]s } }
target_groups:
  - name: %[1]s
    targets: [ { id: %[2]s } ]
    health_check: { enabled: false }
    attributes: { deregistration_delay.timeout_seconds: 0 }
state_dir: %[3]s
`, group, a.addr, dir)
	}
	l := start(t, server.Goroutines, yaml("web"))
	if got := l.get(t, "/", ""); got.status != 200 {
		t.Fatalf("got %d, want 200", got.status)
	}
	settle(t, l, func(fams map[string]*dto.MetricFamily) []string {
		if got, _ := value(fams, "latch_target_requests_total", "target_group=web", "target="+a.addr); got != 1 {
			return []string{fmt.Sprintf("web/a took %v requests, want 1", got)}
		}
		return nil
	})

	cfg, err := config.Parse([]byte(yaml("shop")), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	err = l.srv.Update(t.Context(), func(c *config.Config) error {
		c.TargetGroups[0].Targets[0].Weight = 5000
		return nil
	})
	if err == nil {
		t.Fatal("an update to weight 5000 was applied, want it refused")
	}
	// The counts come from the server's events, which the metrics read
	// on their own goroutine.
	fams := settle(t, l, func(fams map[string]*dto.MetricFamily) []string {
		ok, _ := value(fams, "latch_config_reloads_total", "source=file", "result=success")
		refused, _ := value(fams, "latch_config_reloads_total", "source=update", "result=failure")
		_, web := value(fams, "latch_target_requests_total", "target_group=web", "target="+a.addr)
		if ok != 2 || refused != 1 || web {
			return []string{fmt.Sprintf("after a reload and a refused update: %v file successes, %v update failures,"+
				" web's series there: %v; want 2, 1, false", ok, refused, web)}
		}
		return nil
	})
	if got, ok := value(fams, "latch_target_requests_total", "target_group=shop", "target="+a.addr); !ok || got != 0 {
		t.Errorf("shop/a: %v requests (series there: %v), want 0 before any request", got, ok)
	}
	if _, ok := value(fams, "latch_target_group_retries_total", "target_group=web"); ok {
		t.Errorf("the renamed group web still has series")
	}
	if got := l.get(t, "/", ""); got.status != 200 {
		t.Fatalf("got %d, want 200", got.status)
	}
	settle(t, l, func(fams map[string]*dto.MetricFamily) []string {
		if got, _ := value(fams, "latch_target_requests_total", "target_group=shop", "target="+a.addr); got != 1 {
			return []string{fmt.Sprintf("shop/a took %v requests, want 1", got)}
		}
		return nil
	})
}

// TestHTTP2Metrics: HTTP/2 connections and streams through a real latch
// over h2c are counted per listener, the refusals' series are there from
// the start, and a closed connection leaves the gauge. (internal/h2's
// attack tests count each refusal in the engine's counters, which these
// series read.)
func TestHTTP2Metrics(t *testing.T) {
	b := startBackend(t, "a")
	l := start(t, server.Goroutines, fmt.Sprintf(`listeners:
  - name: front
    address: 127.0.0.1:0
    default_action: {type: forward, forward: {target_group: web}}
    attributes: {routing.http2.h2c.enabled: "true"}
target_groups:
  - name: web
    targets: [{id: %q}]
state_dir: %s
`, b.addr, t.TempDir()))
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range 5 {
		resp, err := c.Get(l.front + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("GET over h2c: %s %s", resp.Proto, resp.Status)
		}
	}
	fams := l.families(t)
	if v, _ := value(fams, "latch_listener_http2_streams_total", "listener=front"); v != 5 {
		t.Errorf("latch_listener_http2_streams_total = %v, want 5", v)
	}
	if v, _ := value(fams, "latch_listener_http2_connections_open", "listener=front"); v != 1 {
		t.Errorf("latch_listener_http2_connections_open = %v, want 1", v)
	}
	if v, ok := value(fams, "latch_listener_http2_refusals_total", "listener=front", "cause=rapid_reset"); !ok || v != 0 {
		t.Errorf("latch_listener_http2_refusals_total{cause=rapid_reset} = %v (%v), want a 0 series", v, ok)
	}
	tr.CloseIdleConnections()
	settle(t, l, func(f map[string]*dto.MetricFamily) []string {
		if v, _ := value(f, "latch_listener_http2_connections_open", "listener=front"); v != 0 {
			return []string{fmt.Sprintf("connections open %v, want 0 once the client closed", v)}
		}
		return nil
	})
}
