package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/state"
	"github.com/latch-lb/latch/internal/sticky"
)

// runtimeChange makes one of each runtime change: a weight, a drain, a
// registration and an attribute.
func runtimeChange(t *testing.T, lb *running, a, b, c string) {
	t.Helper()
	err := lb.Update(t.Context(), func(cfg *config.Config) error {
		g := cfg.TargetGroup("web")
		g.Target(a).Weight = 7
		g.Target(b).Drain = &config.Drain{Mode: config.DrainKeepSessions, Idle: 2 * time.Minute, Deadline: time.Hour}
		g.Targets = append(g.Targets, config.Target{ID: c, Weight: 3})
		return g.SetAttribute("load_balancing.algorithm.type", "least_outstanding_requests")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkRuntime checks that the running config holds runtimeChange's
// changes, but a's weight, which must be wantA.
func checkRuntime(t *testing.T, what string, cfg *config.Config, a, b, c string, wantA int, since time.Time) {
	t.Helper()
	g := cfg.TargetGroup("web")
	if ta := g.Target(a); ta == nil || ta.Weight != wantA {
		t.Errorf("%s: target a: got %+v, want weight %d", what, ta, wantA)
	}
	tb := g.Target(b)
	if tb == nil || tb.Drain == nil || tb.Drain.Mode != config.DrainKeepSessions || tb.Drain.Idle != 2*time.Minute ||
		tb.Drain.Deadline != time.Hour || !tb.Drain.Since.Equal(since) {
		t.Errorf("%s: target b: got %+v (drain %+v), want drained keeping sessions since %v", what, tb, tb.Drain, since)
	}
	if tc := g.Target(c); tc == nil || tc.Weight != 3 {
		t.Errorf("%s: target c: got %+v, want registered with weight 3", what, tc)
	}
	if got := g.Attributes()["load_balancing.algorithm.type"]; got != "least_outstanding_requests" {
		t.Errorf("%s: algorithm: got %s, want least_outstanding_requests", what, got)
	}
}

// TestRuntimeChangesSurviveRestart: changes made with Update come back
// in a new Server on the same state_dir, and stay through a reload;
// where the file changed the same item meanwhile, the file wins.
func TestRuntimeChangesSurviveRestart(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	dir := t.TempDir()
	cfg := lbConfig{targets: []string{a.addr, b.addr}, sticky: true, stateDir: dir}
	lb := startLB(t, cfg)
	runtimeChange(t, lb, a.addr, b.addr, c.addr)
	since := lb.Snapshot().Config.TargetGroup("web").Target(b.addr).Drain.Since
	if since.IsZero() {
		t.Fatal("the drain's start was not stamped")
	}
	gen := lb.Health("web")[2].Generation
	if err := lb.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, state.RuntimeFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("runtime state file: %v, %v; want one, mode 0600", fi, err)
	}

	// A restart: the same file, a new server.
	lb2 := startLB(t, cfg)
	checkRuntime(t, "after a restart", lb2.Snapshot().Config, a.addr, b.addr, c.addr, 7, since)
	for _, st := range lb2.Health("web") {
		switch st.ID {
		case b.addr:
			if st.Drain == nil || !st.Drain.Since.Equal(since) || st.Drain.Mode != "keep_sessions" {
				t.Errorf("b after a restart: drain %+v, want keep_sessions since %v", st.Drain, since)
			}
		case c.addr:
			if st.Generation != gen {
				t.Errorf("c after a restart: generation %d, want %d (its sessions hold)", st.Generation, gen)
			}
		}
	}
	// New sessions avoid b, drained before the restart.
	for i := range 12 {
		if r := get(t, lb2.url+"/", ""); r.backend == "b" {
			t.Fatalf("new session %d went to b, drained before the restart", i)
		}
	}
	// A reload of the same file (SIGHUP) keeps them.
	lb2.reload(t, cfg)
	checkRuntime(t, "after a reload", lb2.Snapshot().Config, a.addr, b.addr, c.addr, 7, since)
	if err := lb2.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The file changed a's weight while latch was down: the file wins
	// there, the other changes come back.
	changed := cfg
	changed.extraGroup = ""
	yaml := strings.Replace(changed.yaml(), "      - id: "+a.addr+"\n", "      - id: "+a.addr+"\n        weight: 2\n", 1)
	lb3 := startRunning(t, yaml, dir, "http")
	checkRuntime(t, "after a restart on a changed file", lb3.Snapshot().Config, a.addr, b.addr, c.addr, 2, since)
}

// TestCorruptRuntimeStateRefusesToStart: a state file latch cannot read
// stops the start with an error that names it and says what to do.
func TestCorruptRuntimeStateRefusesToStart(t *testing.T) {
	a := startBackend(t, "a")
	for _, tt := range []struct{ name, content string }{
		{"not json", "{\"version\": 1, \"file\": ["},
		{"unknown field", `{"version": 1, "file": [], "running": [], "extra": 1}`},
		{"other version", `{"version": 9, "file": [], "running": []}`},
		{"bad drain", `{"version": 1, "file": [], "running": [{"name": "web", "targets": [{"id": "` + a.addr + `", "weight": 1, "drain": {"mode": "slow", "idle": "1m", "deadline": "0s"}}], "attributes": {}}]}`},
		{"bad attribute", `{"version": 1, "file": [], "running": [{"name": "web", "targets": [], "attributes": {"stickiness.type": "lb_cookies"}}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, state.RuntimeFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := newServer(t, nil)
			err := s.Apply(t.Context(), parse(t, lbConfig{targets: []string{a.addr}}.yaml(), dir))
			if err == nil {
				t.Fatal("Apply started on a corrupt runtime state file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete it") {
				t.Errorf("got %q, want it to name %s and say to delete it", err, path)
			}
		})
	}
}

// TestStoreWithoutRuntimeState: a Store that does not keep runtime
// changes works as before; they last as long as the process.
func TestStoreWithoutRuntimeState(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	dir := t.TempDir()
	store := plainStore{state.NewDir(dir)}
	yaml := lbConfig{targets: []string{a.addr, b.addr}}.yaml()
	s := newServerWith(t, Options{Store: store})
	if err := s.Apply(t.Context(), parse(t, yaml, dir)); err != nil {
		t.Fatal(err)
	}
	if err := s.Drain(t.Context(), "web", b.addr, config.Drain{Mode: config.DrainImmediate}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, state.RuntimeFile)); !os.IsNotExist(err) {
		t.Errorf("a store without runtime state: got %v, want no runtime file", err)
	}
}

// plainStore is a Store and nothing more.
type plainStore struct{ d *state.Dir }

func (p plainStore) Registrations(ctx context.Context, cur map[string][]state.Registration) (map[string]map[string]uint64, error) {
	return p.d.Registrations(ctx, cur)
}
func (p plainStore) Keys(ctx context.Context) ([]sticky.Key, error) { return p.d.Keys(ctx) }
