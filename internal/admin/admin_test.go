package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/target"
)

const testToken = "t0ken-for-tests"

var quiet = slog.New(slog.DiscardHandler)

// harness is a running latch with its admin listener over loopback, its
// config in a file, and real targets.
type harness struct {
	srv     *server.Server
	adm     *Admin
	base    string // http://host:port
	file    string
	targets []string // the file's targets, by index
}

// backend starts a real target on loopback whose /healthz answers
// status.
func backend(t *testing.T, status int) string {
	t.Helper()
	var self string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(status)
			return
		}
		io.WriteString(w, self) // which target answered
	}))
	self = strings.TrimPrefix(ts.URL, "http://")
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func configFile(targets []string, stateDir string) string {
	var b strings.Builder
	b.WriteString(`listeners:
  - name: public
    address: 127.0.0.1:0
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
    targets:
`)
	for _, t := range targets {
		fmt.Fprintf(&b, "      - id: %s\n", t)
	}
	fmt.Fprintf(&b, `    health_check:
      path: /healthz
      interval_seconds: 0.1
      timeout_seconds: 0.05
      healthy_threshold_count: 2
    attributes:
      stickiness.enabled: "true"
      deregistration_delay.timeout_seconds: 0
  - name: api
    targets: []
state_dir: %s
admin:
  address: 127.0.0.1:0
`, stateDir)
	return b.String()
}

// start runs latch with the given targets (their /healthz answering 200
// unless unhealthy says otherwise) and the admin API with testToken.
func start(t *testing.T, statuses ...int) *harness {
	t.Helper()
	leaktest.Check(t)
	dir := t.TempDir()
	h := &harness{file: filepath.Join(dir, "latch.yaml")}
	for _, s := range statuses {
		h.targets = append(h.targets, backend(t, s))
	}
	if err := os.WriteFile(h.file, []byte(configFile(h.targets, filepath.Join(dir, "state"))), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(h.file)
	if err != nil {
		t.Fatal(err)
	}
	h.srv, err = server.New(server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.srv.Shutdown(context.Background()) })
	reload := func(ctx context.Context) error {
		cfg, err := config.Load(h.file)
		if err != nil {
			return err
		}
		return h.srv.Apply(ctx, cfg)
	}
	h.adm, err = Start(Options{Server: h.srv, Address: cfg.Admin.Address, Token: testToken, Reload: reload, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.adm.Shutdown(context.Background()) })
	h.base = "http://" + h.adm.Addr()
	return h
}

// response is one answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response body %q: %v", r.body, err)
	}
}

// errorBody decodes an error answer, failing t if it is not the API's
// JSON error.
func (r response) errorBody(t *testing.T) ErrorBody {
	t.Helper()
	var e ErrorBody
	r.json(t, &e)
	if e.Error == "" {
		t.Fatalf("error body %s has no error message", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type: got %q, want application/json", ct)
	}
	return e
}

type req struct {
	method, path, body string
	token              string // "-" for none
	header             map[string]string
	host               string // the Host header; "": the listener's address
}

func (h *harness) do(t *testing.T, q req) response {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r, err := http.NewRequest(q.method, h.base+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch q.token {
	case "":
		r.Header.Set("Authorization", "Bearer "+testToken)
	case "-":
	default:
		r.Header.Set("Authorization", "Bearer "+q.token)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	if q.host != "" {
		r.Host = q.host
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// want fails t unless r has the status; it shows the body.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status: got %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// waitState waits, on the server's events, until the target reports
// state, or fails t after 10 s.
func (h *harness) waitState(t *testing.T, group, id string, state target.State) {
	t.Helper()
	sub := h.srv.Subscribe(256)
	defer sub.Close()
	deadline := time.After(10 * time.Second)
	for {
		if g := h.srv.Snapshot().Group(group); g != nil {
			for _, ts := range g.Targets {
				if ts.ID == id && ts.State == state {
					return
				}
			}
		}
		select {
		case <-sub.C:
		case <-deadline:
			t.Fatalf("target %s of %s not %s within 10 s: %+v", id, group, state, h.srv.Snapshot().Group(group))
		}
	}
}

func TestAuthorization(t *testing.T) {
	h := start(t, 200)
	write := func(token string) response {
		return h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/" + h.targets[0] + "/weight", body: `{"weight": 2}`, token: token})
	}
	e := write("-").want(t, http.StatusUnauthorized).errorBody(t)
	if !strings.Contains(e.Error, "Authorization: Bearer") {
		t.Errorf("no token: got %q, want it to say how to send the token", e.Error)
	}
	if got := write("-").header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate: got %q, want Bearer", got)
	}
	e = write("wrong").want(t, http.StatusUnauthorized).errorBody(t)
	if strings.Contains(e.Error, "wrong") || strings.Contains(e.Error, testToken) {
		t.Errorf("wrong token: the message %q repeats a token", e.Error)
	}
	// A token that is the right one's prefix is as wrong.
	write(testToken[:len(testToken)-1]).want(t, http.StatusUnauthorized)
	write("").want(t, http.StatusOK)
	r, _ := http.NewRequest("PUT", h.base+"/api/v1/target-groups/web/targets/"+h.targets[0]+"/weight", strings.NewReader(`{"weight": 2}`))
	for _, auth := range []string{"bearer " + testToken, "Basic " + testToken, testToken} {
		r.Body = io.NopCloser(strings.NewReader(`{"weight": 2}`))
		r.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 200, false: 401}[strings.HasPrefix(auth, "bearer ")]; resp.StatusCode != want {
			t.Errorf("Authorization %q: got %d, want %d", strings.Replace(auth, testToken, "<token>", 1), resp.StatusCode, want)
		}
	}

	// Loopback: reads need no token.
	h.do(t, req{method: "GET", path: "/api/v1/target-groups", token: "-"}).want(t, http.StatusOK)
	// Off loopback they do (the listener is loopback here, as every test's;
	// what New decides from the address is below).
	h.adm.openRead = false
	h.do(t, req{method: "GET", path: "/api/v1/target-groups", token: "-"}).want(t, http.StatusUnauthorized).errorBody(t)
	h.do(t, req{method: "GET", path: "/api/v1/target-groups", token: "nope"}).want(t, http.StatusUnauthorized)
	h.do(t, req{method: "GET", path: "/api/v1/target-groups"}).want(t, http.StatusOK)
	h.adm.openRead = true

	// A page of another site cannot write, even with the token.
	e = h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/" + h.targets[0] + "/weight", body: `{"weight": 3}`,
		header: map[string]string{"Origin": "http://evil.example"}}).want(t, http.StatusForbidden).errorBody(t)
	if !strings.Contains(e.Error, "evil.example") {
		t.Errorf("cross-origin: got %q, want the Origin named", e.Error)
	}
	h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/" + h.targets[0] + "/weight", body: `{"weight": 3}`,
		header: map[string]string{"Origin": h.base}}).want(t, http.StatusOK)
}

// TestReadsForAForeignHostNeedTheToken: a page whose name its DNS rebinds
// to 127.0.0.1 reaches a loopback listener from the operator's browser as
// its own origin, with its own name in Host: reads for such a Host need
// the token, as off loopback; reads for a loopback address or localhost
// do not.
func TestReadsForAForeignHostNeedTheToken(t *testing.T) {
	h := start(t, 200)
	port := h.adm.Addr()[strings.LastIndex(h.adm.Addr(), ":"):]
	for _, host := range []string{"127.0.0.1" + port, "localhost" + port, "LOCALHOST", "[::1]" + port, "127.0.0.2"} {
		for _, path := range []string{"/api/v1/config", "/api/v1/target-groups/web/targets"} {
			h.do(t, req{method: "GET", path: path, token: "-", host: host}).want(t, http.StatusOK)
		}
	}
	for _, host := range []string{"rebound.example" + port, "rebound.example", "10.0.0.1" + port, "localhost.example.com"} {
		for _, path := range []string{"/api/v1/config", "/api/v1/target-groups/web/targets"} {
			e := h.do(t, req{method: "GET", path: path, token: "-", host: host}).want(t, http.StatusUnauthorized).errorBody(t)
			if !strings.Contains(e.Error, strconv.Quote(host)) || !strings.Contains(e.Error, "needs the admin token") {
				t.Errorf("GET %s for host %s: got %q, want the host named and the token asked for", path, host, e.Error)
			}
			h.do(t, req{method: "GET", path: path, token: "wrong", host: host}).want(t, http.StatusUnauthorized)
			h.do(t, req{method: "GET", path: path, host: host}).want(t, http.StatusOK)
		}
	}

	// With no token set, such a read is refused, saying what to do.
	a, err := Start(Options{Server: h.srv, Address: "127.0.0.1:0", Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	h2 := &harness{srv: h.srv, base: "http://" + a.Addr()}
	h2.do(t, req{method: "GET", path: "/api/v1/config", token: "-"}).want(t, http.StatusOK)
	e := h2.do(t, req{method: "GET", path: "/api/v1/config", token: "-", host: "rebound.example"}).want(t, http.StatusForbidden).errorBody(t)
	if !strings.Contains(e.Error, `"rebound.example"`) || !strings.Contains(e.Error, "localhost") {
		t.Errorf("no token set, foreign host: got %q, want the host named and how to read", e.Error)
	}
}

func TestNoTokenOffLoopbackRefused(t *testing.T) {
	srv, err := server.New(server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	for _, addr := range []string{"0.0.0.0:9901", ":9901", "10.1.2.3:9901"} {
		_, err := New(Options{Server: srv, Address: addr})
		if err == nil || !strings.Contains(err.Error(), "not a loopback address and no admin token is set") {
			t.Errorf("%s with no token: got %v, want a refusal", addr, err)
		}
	}
	a, err := New(Options{Server: srv, Address: "0.0.0.0:9901", Token: "x"})
	if err != nil || a.openRead {
		t.Errorf("0.0.0.0 with a token: got %v (reads open %v), want reads closed", err, a != nil && a.openRead)
	}
	if a, err := New(Options{Server: srv, Address: "127.0.0.1:9901"}); err != nil || !a.openRead {
		t.Errorf("loopback with no token: got %v, want reads open", err)
	}
}

// TestWritesNeedAToken: with no token set, a loopback listener serves
// reads and refuses every write, saying how to allow them.
func TestWritesNeedAToken(t *testing.T) {
	h := start(t, 200)
	a, err := Start(Options{Server: h.srv, Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	h2 := &harness{srv: h.srv, base: "http://" + a.Addr()}
	h2.do(t, req{method: "GET", path: "/api/v1/target-groups/web"}).want(t, http.StatusOK)
	e := h2.do(t, req{method: "POST", path: "/api/v1/reload"}).want(t, http.StatusForbidden).errorBody(t)
	if !strings.Contains(e.Error, "admin.token_file") {
		t.Errorf("got %q, want it to name admin.token_file", e.Error)
	}
}

func TestTargetGroups(t *testing.T) {
	h := start(t, 200, 500)
	h.waitState(t, "web", h.targets[0], target.Healthy)
	h.waitState(t, "web", h.targets[1], target.Unhealthy)

	var list TargetGroupList
	r := h.do(t, req{method: "GET", path: "/api/v1/target-groups", token: "-"}).want(t, http.StatusOK)
	r.json(t, &list)
	if len(list.TargetGroups) != 2 || list.TargetGroups[0].Name != "web" || list.TargetGroups[1].Name != "api" {
		t.Fatalf("groups: got %+v, want web and api", list.TargetGroups)
	}
	if g := list.TargetGroups[0]; g.Targets != 2 || g.Healthy != 1 || g.Unhealthy != 1 || g.Version == "" {
		t.Errorf("web: got %+v, want 2 targets, 1 healthy, 1 unhealthy, a version", g)
	}
	if r.header.Get("ETag") != `"`+list.Version+`"` {
		t.Errorf("ETag %q, want the list's version %q", r.header.Get("ETag"), list.Version)
	}

	var g TargetGroup
	r = h.do(t, req{method: "GET", path: "/api/v1/target-groups/web"}).want(t, http.StatusOK)
	r.json(t, &g)
	if r.header.Get("ETag") != `"`+g.Version+`"` || g.Version == "" {
		t.Errorf("group ETag %q, version %q: want them equal", r.header.Get("ETag"), g.Version)
	}
	if g.Attributes["stickiness.enabled"] != "true" || g.Attributes["deregistration_delay.timeout_seconds"] != "0" ||
		g.HealthCheck.Path != "/healthz" || g.HealthCheck.Port != "traffic-port" {
		t.Errorf("group: got %+v", g)
	}
	// DescribeTargetHealth's fields, as ALB gives them.
	want := []Target{
		{ID: h.targets[0], State: "healthy", Reason: "", Description: ""},
		{ID: h.targets[1], State: "unhealthy", Reason: "Target.ResponseCodeMismatch", Description: "Health checks failed with these codes: [500]"},
	}
	if len(g.Targets) != 2 {
		t.Fatalf("targets: got %+v, want 2", g.Targets)
	}
	for i, w := range want {
		got := g.Targets[i]
		if got.ID != w.ID || got.State != w.State || got.Reason != w.Reason || got.Description != w.Description ||
			got.Weight != 1 || !got.Registered || got.Version == "" || got.Drain != nil {
			t.Errorf("target %d: got %+v, want %+v with weight 1, registered", i, got, w)
		}
	}

	// The targets collection, and one target, as raw JSON: the field names
	// are the contract.
	r = h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/targets/" + h.targets[1]}).want(t, http.StatusOK)
	var raw map[string]any
	r.json(t, &raw)
	for _, k := range []string{"id", "weight", "state", "reason", "description", "in_flight", "sessions", "drain"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("target JSON %s: no %q", r.body, k)
		}
	}
	var tl TargetList
	h.do(t, req{method: "GET", path: "/api/v1/target-groups/api/targets"}).want(t, http.StatusOK).json(t, &tl)
	if tl.Targets == nil || len(tl.Targets) != 0 {
		t.Errorf("api's targets: got %+v, want an empty list", tl.Targets)
	}

	for _, p := range []string{"/api/v1/target-groups/nope", "/api/v1/target-groups/nope/targets", "/api/v1/target-groups/nope/attributes"} {
		e := h.do(t, req{method: "GET", path: p}).want(t, http.StatusNotFound).errorBody(t)
		if e.Error != `target group "nope" does not exist` {
			t.Errorf("%s: got %q", p, e.Error)
		}
	}
	e := h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/targets/10.9.9.9:80"}).want(t, http.StatusNotFound).errorBody(t)
	if e.Error != `target 10.9.9.9:80 is not registered in target group "web"` {
		t.Errorf("unknown target: got %q", e.Error)
	}
}

func TestRegisterWeightDeregister(t *testing.T) {
	h := start(t, 200)
	extra := []string{backend(t, 200), backend(t, 200)}
	body := fmt.Sprintf(`{"targets": [{"id": %q, "weight": 3}, {"id": %q}]}`, extra[0], extra[1])
	var tl TargetList
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: body}).want(t, http.StatusOK).json(t, &tl)
	var ids []string
	for _, x := range tl.Targets {
		ids = append(ids, fmt.Sprintf("%s/%d", x.ID, x.Weight))
	}
	if want := []string{h.targets[0] + "/1", extra[0] + "/3", extra[1] + "/1"}; !slices.Equal(ids, want) {
		t.Errorf("after register: got %v, want %v", ids, want)
	}
	h.waitState(t, "web", extra[0], target.Healthy)

	var tv Target
	h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/" + extra[0] + "/weight", body: `{"weight": 7}`}).
		want(t, http.StatusOK).json(t, &tv)
	if tv.Weight != 7 || tv.ID != extra[0] {
		t.Errorf("after weight: got %+v, want weight 7", tv)
	}
	if w := h.srv.Snapshot().Config.TargetGroup("web").Target(extra[0]).Weight; w != 7 {
		t.Errorf("running config's weight: got %d, want 7", w)
	}

	r := h.do(t, req{method: "DELETE", path: "/api/v1/target-groups/web/targets/" + extra[1]})
	if r.status != http.StatusNoContent && r.status != http.StatusOK {
		t.Fatalf("deregister: got %d %s", r.status, r.body)
	}
	if h.srv.Snapshot().Config.TargetGroup("web").Target(extra[1]) != nil {
		t.Errorf("%s is still registered", extra[1])
	}
	e := h.do(t, req{method: "DELETE", path: "/api/v1/target-groups/web/targets/" + extra[1]}).want(t, http.StatusNotFound).errorBody(t)
	if !strings.Contains(e.Error, extra[1]) {
		t.Errorf("deregister twice: got %q", e.Error)
	}
	h.do(t, req{method: "DELETE", path: "/api/v1/target-groups/nope/targets/" + extra[0]}).want(t, http.StatusNotFound)
	h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/10.9.9.9:1/weight", body: `{"weight": 2}`}).want(t, http.StatusNotFound)
}

// TestInvalidChangeRefused: an invalid change lists every problem with
// its path and changes nothing.
func TestInvalidChangeRefused(t *testing.T) {
	h := start(t, 200)
	before := h.srv.Snapshot().Version
	e := h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets",
		body: `{"targets": [{"id": "nohost", "weight": 2}, {"id": "127.0.0.1:8", "weight": 0}, {"id": "127.0.0.1:9", "weight": 1001}]}`}).
		want(t, http.StatusUnprocessableEntity).errorBody(t)
	want := []ProblemEntry{
		{"target_groups[0].targets[1].id", `"nohost" is not a host:port address`},
		{"target_groups[0].targets[2].weight", "0 is outside 1-1000"},
		{"target_groups[0].targets[3].weight", "1001 is outside 1-1000"},
	}
	if !slices.Equal(e.Problems, want) {
		t.Errorf("problems: got %+v, want %+v", e.Problems, want)
	}
	if !strings.Contains(e.Error, "3 problems") {
		t.Errorf("error: got %q, want the count", e.Error)
	}
	e = h.do(t, req{method: "PATCH", path: "/api/v1/target-groups/web/attributes",
		body: `{"attributes": {"stickness.enabled": "true", "deregistration_delay.timeout_seconds": 3601, "stickiness.type": "app_cookie"}}`}).
		want(t, http.StatusUnprocessableEntity).errorBody(t)
	want = []ProblemEntry{
		{`target_groups[0].attributes["deregistration_delay.timeout_seconds"]`, "3601 is outside 0-3600 seconds"},
		{`target_groups[0].attributes["stickiness.app_cookie.cookie_name"]`, "missing: you must set an application cookie name to enable stickiness of type 'app_cookie' (as ALB)"},
		{`target_groups[0].attributes["stickness.enabled"]`, `unknown attribute; did you mean "stickiness.enabled"?`},
	}
	if !slices.Equal(e.Problems, want) {
		t.Errorf("attribute problems: got %+v, want %+v", e.Problems, want)
	}
	// Valid one by one, invalid together: Validate's problem.
	e = h.do(t, req{method: "PATCH", path: "/api/v1/target-groups/web/attributes",
		body: `{"attributes": {"stickiness.type": "app_cookie"}}`}).want(t, http.StatusUnprocessableEntity).errorBody(t)
	if len(e.Problems) != 1 || !strings.Contains(e.Problems[0].Message, "application cookie name") {
		t.Errorf("app_cookie with no name: got %+v", e.Problems)
	}
	if v := h.srv.Snapshot().Version; v != before {
		t.Errorf("version moved from %d to %d: a refused change changed something", before, v)
	}

	for _, c := range []struct{ body, want string }{
		{`{"targets": [{"id": "127.0.0.1:1", "wieght": 2}]}`, `request body: unknown field "wieght"`},
		{`{"targets": [`, "request body: "},
		{`{"targets": "127.0.0.1:1"}`, "request body: targets: want a []admin.TargetSpec, got a JSON string"},
		{`{"targets": []}`, `request body: "targets" is empty`},
		{`{"targets": [{"weight": 2}]}`, `request body: targets[0]: "id" is missing`},
		{`{"targets": [{"id": "127.0.0.1:1"}]} {}`, "request body: more than one JSON value"},
		{``, "request body: empty; want a JSON object"},
	} {
		e := h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: c.body}).want(t, http.StatusBadRequest).errorBody(t)
		if !strings.HasPrefix(e.Error, c.want) {
			t.Errorf("body %s: got %q, want it to start %q", c.body, e.Error, c.want)
		}
	}
	e = h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/" + h.targets[0] + "/weight", body: `{}`}).
		want(t, http.StatusBadRequest).errorBody(t)
	if !strings.Contains(e.Error, `"weight" is missing`) {
		t.Errorf("weight missing: got %q", e.Error)
	}
}

func TestIfMatch(t *testing.T) {
	h := start(t, 200, 200)
	path := "/api/v1/target-groups/web/targets/" + h.targets[0]
	v1 := h.do(t, req{method: "GET", path: path}).want(t, http.StatusOK).header.Get("ETag")
	other := h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/targets/" + h.targets[1]}).header.Get("ETag")
	r := h.do(t, req{method: "PUT", path: path + "/weight", body: `{"weight": 2}`, header: map[string]string{"If-Match": v1}}).want(t, http.StatusOK)
	v2 := r.header.Get("ETag")
	if v2 == "" || v2 == v1 {
		t.Fatalf("ETag after the change: got %q, want one other than %q", v2, v1)
	}
	e := h.do(t, req{method: "PUT", path: path + "/weight", body: `{"weight": 3}`, header: map[string]string{"If-Match": v1}}).
		want(t, http.StatusConflict).errorBody(t)
	if !strings.Contains(e.Error, strings.Trim(v2, `"`)) || !strings.Contains(e.Error, "read it again") {
		t.Errorf("stale If-Match: got %q, want the current version and what to do", e.Error)
	}
	if w := h.srv.Snapshot().Config.TargetGroup("web").Target(h.targets[0]).Weight; w != 2 {
		t.Errorf("weight after a stale write: got %d, want 2", w)
	}
	// Another target's version is its own: the change above left it.
	// A bare version, as bodies give it, does as well as the ETag.
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + h.targets[1] + "/drain", header: map[string]string{"If-Match": strings.Trim(other, `"`)}}).want(t, http.StatusOK)
	// The group's version covers its targets and attributes.
	g := h.do(t, req{method: "GET", path: "/api/v1/target-groups/web"}).header.Get("ETag")
	h.do(t, req{method: "PATCH", path: "/api/v1/target-groups/web/attributes", body: `{"attributes": {"deregistration_delay.timeout_seconds": "5"}}`,
		header: map[string]string{"If-Match": g}}).want(t, http.StatusOK)
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: `{"targets": [{"id": "127.0.0.1:7"}]}`,
		header: map[string]string{"If-Match": g}}).want(t, http.StatusConflict).errorBody(t)
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: `{"targets": [{"id": "127.0.0.1:7"}]}`,
		header: map[string]string{"If-Match": "*"}}).want(t, http.StatusOK)
}

func TestBodyTooLarge(t *testing.T) {
	h := start(t, 200)
	big := `{"targets": [{"id": "` + strings.Repeat("a", DefaultMaxBody) + `"}]}`
	e := h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: big}).want(t, http.StatusRequestEntityTooLarge).errorBody(t)
	if e.Error != "request body: larger than 1048576 bytes" {
		t.Errorf("got %q", e.Error)
	}
	// Chunked, with no Content-Length: cut at the bound all the same.
	r, _ := http.NewRequest("POST", h.base+"/api/v1/target-groups/web/targets", io.MultiReader(strings.NewReader(big)))
	r.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || r.ContentLength != 0 {
		t.Errorf("chunked: got %d (content length %d), want 413", resp.StatusCode, r.ContentLength)
	}
}

func TestMethodsAndEndpoints(t *testing.T) {
	h := start(t, 200)
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/api/v1/target-groups", "GET, HEAD"},
		{"POST", "/api/v1/config", "GET, HEAD"},
		{"GET", "/api/v1/reload", "POST"},
		{"PUT", "/api/v1/target-groups/web/targets", "GET, HEAD, POST"},
		{"GET", "/api/v1/target-groups/web/targets/" + h.targets[0] + "/weight", "PUT"},
	} {
		r := h.do(t, req{method: c.method, path: c.path}).want(t, http.StatusMethodNotAllowed)
		e := r.errorBody(t)
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
		if !strings.Contains(e.Error, c.method) || !strings.Contains(e.Error, c.allow) {
			t.Errorf("%s %s: got %q", c.method, c.path, e.Error)
		}
	}
	e := h.do(t, req{method: "GET", path: "/api/v1/nothing"}).want(t, http.StatusNotFound).errorBody(t)
	if !strings.Contains(e.Error, "/api/v1/nothing") {
		t.Errorf("unknown endpoint: got %q", e.Error)
	}
	h.do(t, req{method: "GET", path: "/metrics"}).want(t, http.StatusNotFound).errorBody(t)
}

// TestTargetIDsRoute: host:port and bracketed IPv6 IDs route, written
// plainly or percent-encoded.
func TestTargetIDsRoute(t *testing.T) {
	h := start(t, 200)
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: `{"targets": [{"id": "[::1]:9"}, {"id": "localhost:9"}]}`}).want(t, http.StatusOK)
	for _, p := range []string{"[::1]:9", "%5B%3A%3A1%5D%3A9", "%5B::1%5D:9"} {
		var tv Target
		h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/targets/" + p}).want(t, http.StatusOK).json(t, &tv)
		if tv.ID != "[::1]:9" {
			t.Errorf("%s: got %q", p, tv.ID)
		}
	}
	h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/localhost:9/weight", body: `{"weight": 4}`}).want(t, http.StatusOK)
	r := h.do(t, req{method: "DELETE", path: "/api/v1/target-groups/web/targets/%5B::1%5D:9"})
	if r.status >= 300 {
		t.Fatalf("deregister [::1]:9: %d %s", r.status, r.body)
	}
	if h.srv.Snapshot().Config.TargetGroup("web").Target("[::1]:9") != nil {
		t.Error("[::1]:9 is still registered")
	}
}

func TestDrainUndrain(t *testing.T) {
	h := start(t, 200, 200)
	id := h.targets[0]
	h.waitState(t, "web", id, target.Healthy)
	var tv Target
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + id + "/drain"}).want(t, http.StatusOK).json(t, &tv)
	if tv.State != "draining" || tv.Reason != target.ReasonDrained || tv.Drain == nil || tv.Checks != "healthy" {
		t.Errorf("drained: got %+v", tv)
	}
	e := h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + id + "/drain", body: `{"mode": "slow"}`}).
		want(t, http.StatusBadRequest).errorBody(t)
	if !strings.Contains(e.Error, `"slow" is not one of keep_sessions, immediate`) {
		t.Errorf("bad mode: got %q", e.Error)
	}
	h.do(t, req{method: "DELETE", path: "/api/v1/target-groups/web/targets/" + id + "/drain"}).want(t, http.StatusOK).json(t, &tv)
	if tv.Drain != nil || tv.State == "draining" {
		t.Errorf("undrained: got %+v", tv)
	}
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/10.0.0.1:1/drain"}).want(t, http.StatusNotFound)
}

func TestListenersAndConfig(t *testing.T) {
	h := start(t, 200)
	var ll ListenerList
	h.do(t, req{method: "GET", path: "/api/v1/listeners"}).want(t, http.StatusOK).json(t, &ll)
	if len(ll.Listeners) != 1 {
		t.Fatalf("listeners: got %+v", ll)
	}
	l := ll.Listeners[0]
	if l.Name != "public" || l.Address != "127.0.0.1:0" || l.BoundAddress != h.srv.Addr("public") ||
		l.DefaultAction.Type != "forward" || l.DefaultAction.Forward == nil || l.DefaultAction.Forward.TargetGroup != "web" ||
		l.Attributes["idle_timeout.timeout_seconds"] != "60" {
		t.Errorf("listener: got %+v", l)
	}
	h.do(t, req{method: "GET", path: "/api/v1/listeners/public"}).want(t, http.StatusOK)
	h.do(t, req{method: "GET", path: "/api/v1/listeners/nope"}).want(t, http.StatusNotFound).errorBody(t)

	r := h.do(t, req{method: "GET", path: "/api/v1/config"}).want(t, http.StatusOK)
	var c Config
	r.json(t, &c)
	if len(c.TargetGroups) != 2 || c.Admin.Address != "127.0.0.1:0" || r.header.Get("ETag") != fmt.Sprintf(`"v%d"`, c.Version) {
		t.Errorf("config: got %+v, ETag %q", c, r.header.Get("ETag"))
	}
	if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), testToken) {
		t.Errorf("config shows a secret: %s", r.body)
	}
}

// TestRuntimeChangesSurviveReload: changes made through the API stay
// through a reload of the unchanged file (the path SIGHUP takes), the diff
// shows them before and after, and a file with a problem is refused with
// the running config kept.
func TestRuntimeChangesSurviveReload(t *testing.T) {
	h := start(t, 200, 200)
	extra := backend(t, 200)
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets", body: `{"targets": [{"id": "` + extra + `", "weight": 5}]}`}).want(t, http.StatusOK)
	h.do(t, req{method: "PUT", path: "/api/v1/target-groups/web/targets/" + h.targets[0] + "/weight", body: `{"weight": 9}`}).want(t, http.StatusOK)
	h.do(t, req{method: "DELETE", path: "/api/v1/target-groups/web/targets/" + h.targets[1]})
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + extra + "/drain"}).want(t, http.StatusOK)
	h.do(t, req{method: "PATCH", path: "/api/v1/target-groups/web/attributes", body: `{"attributes": {"load_balancing.algorithm.type": "least_outstanding_requests"}}`}).want(t, http.StatusOK)

	want := Diff{TargetGroups: []GroupDiff{{
		Name:         "web",
		Registered:   []TargetWeight{{extra, 5}},
		Deregistered: []TargetWeight{{h.targets[1], 1}},
		Reweighted:   []Reweighted{{h.targets[0], 1, 9}},
		Drained:      []Drained{{extra, "keep_sessions"}},
		Attributes:   []AttributeDiff{{"load_balancing.algorithm.type", "round_robin", "least_outstanding_requests"}},
	}}}
	checkDiff := func(when string) {
		t.Helper()
		var d Diff
		h.do(t, req{method: "GET", path: "/api/v1/diff"}).want(t, http.StatusOK).json(t, &d)
		d.Version = 0
		gotJSON, _ := json.Marshal(d)
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("diff %s:\ngot  %s\nwant %s", when, gotJSON, wantJSON)
		}
	}
	checkDiff("before the reload")
	before := h.srv.Snapshot().Version
	var rr ReloadResult
	h.do(t, req{method: "POST", path: "/api/v1/reload"}).want(t, http.StatusOK).json(t, &rr)
	if rr.Version != before+1 {
		t.Errorf("reload: version %d, want %d", rr.Version, before+1)
	}
	checkDiff("after the reload")
	if g := h.srv.Snapshot().Config.TargetGroup("web"); g.Target(extra) == nil || g.Target(h.targets[1]) != nil || g.Algorithm != config.LeastOutstandingRequests {
		t.Errorf("after the reload: got %+v", g)
	}

	// A broken file: refused, every problem listed, nothing changed.
	data, _ := os.ReadFile(h.file)
	bad := strings.Replace(string(data), "interval_seconds: 0.1", "interval_seconds: 0", 1)
	bad = strings.Replace(bad, `stickiness.enabled: "true"`, `stickiness.enabled: "yes please"`, 1)
	os.WriteFile(h.file, []byte(bad), 0o644)
	e := h.do(t, req{method: "POST", path: "/api/v1/reload"}).want(t, http.StatusUnprocessableEntity).errorBody(t)
	if len(e.Problems) != 2 || !strings.Contains(e.Error, "reload refused; the running config stays") {
		t.Errorf("broken file: got %+v", e)
	}
	if v := h.srv.Snapshot().Version; v != before+1 {
		t.Errorf("a refused reload moved the version to %d", v)
	}
	checkDiff("after a refused reload")
}

// TestDashboardAndMetricsMount: the dashboard gets every path but the
// API's and /metrics, so the API keeps its JSON 404s and 405s; /metrics
// and the dashboard's stream follow the read rule.
func TestDashboardAndMetricsMount(t *testing.T) {
	h := start(t, 200)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.Method+" "+r.URL.Path) })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "latch_up 1\n") })
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "data: {}\n\n") })
	a, err := Start(Options{Server: h.srv, Address: "127.0.0.1:0", Token: testToken, Dashboard: page, Metrics: metrics, Stream: stream, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	h2 := &harness{srv: h.srv, base: "http://" + a.Addr()}
	if r := h2.do(t, req{method: "GET", path: "/"}).want(t, http.StatusOK); string(r.body) != "page GET /" {
		t.Errorf("/: got %q", r.body)
	}
	if r := h2.do(t, req{method: "GET", path: "/static/app.js"}).want(t, http.StatusOK); string(r.body) != "page GET /static/app.js" {
		t.Errorf("/static/app.js: got %q", r.body)
	}
	h2.do(t, req{method: "GET", path: "/api/v1/nothing"}).want(t, http.StatusNotFound).errorBody(t)
	r := h2.do(t, req{method: "DELETE", path: "/api/v1/target-groups"}).want(t, http.StatusMethodNotAllowed)
	if r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("405 with a dashboard: Allow %q", r.header.Get("Allow"))
	}
	if r := h2.do(t, req{method: "GET", path: "/metrics", token: "-"}).want(t, http.StatusOK); string(r.body) != "latch_up 1\n" {
		t.Errorf("/metrics: got %q", r.body)
	}
	h2.do(t, req{method: "POST", path: "/metrics"}).want(t, http.StatusMethodNotAllowed).errorBody(t)
	if r := h2.do(t, req{method: "GET", path: "/api/v1/stream", token: "-"}).want(t, http.StatusOK); string(r.body) != "data: {}\n\n" {
		t.Errorf("/api/v1/stream: got %q", r.body)
	}
	a.openRead = false
	h2.do(t, req{method: "GET", path: "/api/v1/stream", token: "-"}).want(t, http.StatusUnauthorized).errorBody(t)
	h2.do(t, req{method: "GET", path: "/metrics", token: "-"}).want(t, http.StatusUnauthorized).errorBody(t)
	h2.do(t, req{method: "GET", path: "/metrics"}).want(t, http.StatusOK)
}

// TestKeepSessionsDrain: a keep_sessions drain through the API shows its
// progress and completes once no session came for its idle window; bad
// windows are refused with their paths.
func TestKeepSessionsDrain(t *testing.T) {
	h := start(t, 200, 200)
	id := h.targets[0]
	h.waitState(t, "web", id, target.Healthy)
	sub := h.srv.Subscribe(256)
	defer sub.Close()
	var tv Target
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + id + "/drain", body: `{"mode": "keep_sessions", "idle": "1s", "deadline": "1m"}`}).
		want(t, http.StatusOK).json(t, &tv)
	if d := tv.Drain; d == nil || d.Mode != "keep_sessions" || d.IdleSeconds != 1 || d.Deadline == "" || d.Since == "" || d.Complete {
		t.Fatalf("drain: got %+v", tv.Drain)
	}
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case e := <-sub.C:
			done = e.Kind == server.DrainCompleted && e.Target == id
		case <-timeout:
			t.Fatal("the drain did not complete within 10 s")
		}
	}
	h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/targets/" + id}).want(t, http.StatusOK).json(t, &tv)
	if d := tv.Drain; d == nil || !d.Complete || d.CompletedAt == "" || d.SessionsLeft != 0 {
		t.Errorf("after the idle window: got %+v", tv.Drain)
	}

	for _, c := range []struct{ body, path, msg string }{
		{`{"idle": "500ms"}`, "target_groups[0].targets[1].drain.idle", "idle 500ms is not between 1s and 24h0m0s"},
		{`{"idle": "10s", "deadline": "5s"}`, "target_groups[0].targets[1].drain.deadline", "deadline 5s is neither 0 (none) nor between the idle window (10s) and 168h0m0s"},
	} {
		e := h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + h.targets[1] + "/drain", body: c.body}).
			want(t, http.StatusUnprocessableEntity).errorBody(t)
		want := fmt.Sprintf("target %s of group %q: %s", h.targets[1], "web", c.msg)
		if len(e.Problems) != 1 || e.Problems[0].Path != c.path || e.Problems[0].Message != want {
			t.Errorf("%s: got %+v, want %s: %s", c.body, e.Problems, c.path, c.msg)
		}
	}
	for _, c := range []struct{ body, want string }{
		{`{"mode": "slow"}`, `request body: mode: `},
		{`{"mode": "immediate", "idle": "5s"}`, "request body: idle applies to mode keep_sessions only"},
		{`{"idle": "soon"}`, `request body: idle: "soon" is not a duration`},
	} {
		e := h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + h.targets[1] + "/drain", body: c.body}).
			want(t, http.StatusBadRequest).errorBody(t)
		if !strings.HasPrefix(e.Error, c.want) {
			t.Errorf("%s: got %q, want it to start %q", c.body, e.Error, c.want)
		}
	}
}

// TestSessionsAndMintedCookie: sessions counted per target after real
// requests, and a minted cookie that takes requests through latch to the
// target it names.
func TestSessionsAndMintedCookie(t *testing.T) {
	h := start(t, 200, 200)
	h.waitState(t, "web", h.targets[0], target.Healthy)
	h.waitState(t, "web", h.targets[1], target.Healthy)
	lb := "http://" + h.srv.Addr("public") + "/"
	get := func(cookie string) string {
		t.Helper()
		r, _ := http.NewRequest("GET", lb, nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	const fresh = 6
	for range fresh { // no cookie: a new session each
		get("")
	}
	var ss Sessions
	h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/sessions?window=5m"}).want(t, http.StatusOK).json(t, &ss)
	total := ss.Targets[h.targets[0]] + ss.Targets[h.targets[1]]
	if ss.Window != "5m0s" || len(ss.Targets) != 2 || total < fresh-1 || total > fresh+1 {
		t.Errorf("sessions: got %+v, want %d in all (±1)", ss, fresh)
	}
	h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/sessions?window=30s"}).want(t, http.StatusBadRequest).errorBody(t)
	h.do(t, req{method: "GET", path: "/api/v1/target-groups/web/sessions?window=later"}).want(t, http.StatusBadRequest).errorBody(t)
	h.do(t, req{method: "GET", path: "/api/v1/target-groups/nope/sessions"}).want(t, http.StatusNotFound).errorBody(t)

	for _, id := range h.targets {
		var c Cookie
		h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + id + "/cookie"}).want(t, http.StatusOK).json(t, &c)
		if c.Kind != "lb_cookie" || c.Header != "Cookie" || c.Name != "AWSALB" || !strings.HasPrefix(c.Cookie, "AWSALB=") {
			t.Fatalf("minted: got %+v", c)
		}
		for range 4 {
			if got := get(c.Cookie); got != id {
				t.Errorf("with the cookie minted for %s: served by %q", id, got)
			}
		}
	}
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/10.9.9.9:1/cookie"}).want(t, http.StatusNotFound).errorBody(t)
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/web/targets/" + h.targets[0] + "/cookie", token: "-"}).want(t, http.StatusUnauthorized).errorBody(t)
	// The api group has no target and no stickiness.
	h.do(t, req{method: "POST", path: "/api/v1/target-groups/api/targets", body: `{"targets": [{"id": "127.0.0.1:9"}]}`}).want(t, http.StatusOK)
	e := h.do(t, req{method: "POST", path: "/api/v1/target-groups/api/targets/127.0.0.1:9/cookie"}).want(t, http.StatusConflict).errorBody(t)
	if !strings.Contains(e.Error, "stickiness") {
		t.Errorf("no stickiness: got %q", e.Error)
	}
}
