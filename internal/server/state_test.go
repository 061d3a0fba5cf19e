package server

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/target"
)

// TestApplyConfigBuiltInGo builds a config in Go, as the admin API and
// cluster mode will, without YAML: Validate finds every problem with its
// path; fixed, it applies and serves.
func TestApplyConfigBuiltInGo(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	g := config.DefaultTargetGroup()
	g.Name = "web"
	g.HealthCheck.Enabled = false
	g.Targets = []config.Target{{ID: a.addr, Weight: 1}, {ID: b.addr, Weight: 0}, {ID: a.addr, Weight: 2}}
	g.Stickiness.Enabled = true
	g.Stickiness.Type = config.AppCookie // without its cookie name
	g.DeregistrationDelay = 2 * time.Hour
	l := config.DefaultListener()
	l.Name, l.Address = "front", "127.0.0.1:0"
	l.DefaultAction = config.Action{Type: config.ActionForward, TargetGroup: "wbe"}
	cfg := &config.Config{Listeners: []config.Listener{l}, TargetGroups: []config.TargetGroup{g}, StateDir: t.TempDir()}

	err := cfg.Validate()
	var probs config.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Validate: got %v, want config.Problems", err)
	}
	want := map[string]string{
		"target_groups[0].targets[1].weight":                                  "0 is outside 1-1000",
		"target_groups[0].targets[2].id":                                      "listed twice",
		`target_groups[0].attributes["stickiness.app_cookie.cookie_name"]`:    "missing",
		`target_groups[0].attributes["deregistration_delay.timeout_seconds"]`: "outside 0-3600",
		"listeners[0].default_action.forward.target_group":                    `did you mean "web"?`,
	}
	for path, msg := range want {
		if !slices.ContainsFunc(probs, func(p config.Problem) bool { return p.Path == path && strings.Contains(p.Msg, msg) }) {
			t.Errorf("no problem at %s saying %q; got:\n%v", path, msg, err)
		}
	}
	if len(probs) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(probs), len(want), err)
	}
	srv := newServer(t, nil)
	if err := srv.Apply(t.Context(), cfg); !errors.As(err, &probs) {
		t.Errorf("Apply of the invalid config: got %v, want its problems", err)
	}
	if v := srv.Snapshot().Version; v != 0 {
		t.Errorf("version %d after a refused Apply, want 0", v)
	}

	cfg.TargetGroups[0].Targets = []config.Target{{ID: a.addr, Weight: 1}, {ID: b.addr, Weight: 1}}
	cfg.TargetGroups[0].Stickiness.AppCookie = "SESSION"
	cfg.TargetGroups[0].DeregistrationDelay = 0
	cfg.Listeners[0].DefaultAction.TargetGroup = "web"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate after the fixes: %v", err)
	}
	if err := srv.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr("front")
	seen := map[string]bool{}
	for range 4 {
		seen[get(t, url+"/", "").backend] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("requests reached %v, want a and b", seen)
	}
	if sn := srv.Snapshot(); sn.Version != 1 || len(sn.Groups) != 1 || len(sn.Groups[0].Targets) != 2 ||
		len(sn.Listeners) != 1 || sn.Listeners[0].Addr != srv.Addr("front") {
		t.Errorf("snapshot: %+v", sn)
	}
}

// TestReloadKeepsRuntimeChanges: what Update changed survives a reload of
// the file, unless the file changed the same thing (README, "Runtime
// changes and reloads").
func TestReloadKeepsRuntimeChanges(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	base := lbConfig{targets: []string{a.addr, b.addr}}
	lb := startLB(t, base)
	err := lb.Update(t.Context(), func(cfg *config.Config) error {
		g := cfg.TargetGroup("web")
		g.Target(a.addr).Weight = 7
		g.Target(b.addr).Drain = &config.Drain{Mode: config.DrainImmediate}
		g.Targets = append(g.Targets, config.Target{ID: c.addr, Weight: 3})
		return g.SetAttribute("load_balancing.algorithm.type", "least_outstanding_requests")
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]TargetStatus, alg config.Algorithm) {
		t.Helper()
		got := map[string]TargetStatus{}
		for _, ts := range lb.Health("web") {
			if ts.State != target.Unused && !(ts.State == target.Draining && !ts.Drained) {
				got[ts.ID] = TargetStatus{Weight: ts.Weight, Drained: ts.Drained}
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: targets %v, want %v", when, got, want)
		}
		for id, w := range want {
			if g, ok := got[id]; !ok || g.Weight != w.Weight || g.Drained != w.Drained {
				t.Errorf("%s: target %s is %+v (registered %v), want %+v", when, id, g, ok, w)
			}
		}
		if got := lb.Snapshot().Config.TargetGroup("web").Algorithm; got != alg {
			t.Errorf("%s: algorithm %v, want %v", when, got, alg)
		}
	}
	runtime := map[string]TargetStatus{a.addr: {Weight: 7}, b.addr: {Weight: 1, Drained: true}, c.addr: {Weight: 3}}
	check("after the runtime changes", runtime, config.LeastOutstandingRequests)

	lb.reload(t, base) // the file as it was: nothing of the runtime changes is lost
	check("after a reload of the same file", runtime, config.LeastOutstandingRequests)

	// The file changes what the runtime changed: the file wins, there.
	changed := base
	changed.targets = []string{a.addr, b.addr}
	changed.extraGroup = ""
	changed.attrs = map[string]string{"load_balancing.algorithm.type": "weighted_random"}
	yaml := strings.Replace(changed.yaml(), "      - id: "+a.addr+"\n", "      - id: "+a.addr+"\n        weight: 2\n", 1)
	lb.applyYAML(t, yaml)
	check("after the file changed a's weight and the algorithm",
		map[string]TargetStatus{a.addr: {Weight: 2}, b.addr: {Weight: 1, Drained: true}, c.addr: {Weight: 3}}, config.WeightedRandom)
}

// TestEvents: a subscriber sees registrations, health transitions and
// changes applied, in order.
func TestEvents(t *testing.T) {
	a := startBackend(t, "a")
	srv := newServer(t, nil)
	events := srv.Subscribe(64)
	defer events.Close()
	c := lbConfig{targets: []string{a.addr}, health: fastHealth}
	if err := srv.Apply(t.Context(), parse(t, c.yaml(), t.TempDir())); err != nil {
		t.Fatal(err)
	}
	next := func(want EventKind) Event {
		t.Helper()
		for timeout := time.After(5 * time.Second); ; {
			select {
			case e := <-events.C:
				if e.Kind == want {
					return e
				}
			case <-timeout:
				t.Fatalf("no %v event within 5 s", want)
			}
		}
	}
	if e := next(TargetRegistered); e.Group != "web" || e.Target != a.addr || e.Generation == 0 || e.Health.State != target.Initial {
		t.Errorf("registration: %+v", e)
	}
	if e := next(ConfigApplied); e.Version != 1 || e.Source != FromFile {
		t.Errorf("applied: %+v", e)
	}
	if e := next(TargetHealth); e.Target != a.addr || e.From != target.Initial || e.Health.State != target.Healthy {
		t.Errorf("health: %+v", e)
	}
	a.healthy.Store(false)
	if e := next(TargetHealth); e.From != target.Healthy || e.Health.State != target.Unhealthy ||
		e.Health.Reason != target.ReasonResponseCodeMismatch {
		t.Errorf("health: %+v", e)
	}
	if err := srv.Update(t.Context(), func(cfg *config.Config) error {
		cfg.TargetGroup("web").Targets[0].Weight = 4
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if e := next(TargetWeight); e.Weight != 4 {
		t.Errorf("weight: %+v", e)
	}
	if e := next(ConfigApplied); e.Version != 2 || e.Source != FromUpdate {
		t.Errorf("applied: %+v", e)
	}
	if events.Dropped() != 0 {
		t.Errorf("%d events dropped from a buffer of 64", events.Dropped())
	}
}
