package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/state"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// movingStore is a Store whose generations another node may move: moveGen
// makes a registration a new one, as a cluster's store does after a peer
// deregistered and registered the target again.
type movingStore struct {
	mu   sync.Mutex
	next uint64
	gens map[string]uint64 // group/id -> generation
}

func (s *movingStore) Registrations(_ context.Context, current map[string][]state.Registration) (map[string]map[string]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]uint64{}
	for g, regs := range current {
		out[g] = map[string]uint64{}
		for _, r := range regs {
			k := g + "/" + r.ID
			if _, ok := s.gens[k]; !ok {
				s.next++
				s.gens[k] = s.next
			}
			out[g][r.ID] = s.gens[k]
		}
	}
	return out, nil
}

func (s *movingStore) Keys(context.Context) ([]sticky.Key, error) { return []sticky.Key{testKey}, nil }

func (s *movingStore) moveGen(group, id string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	s.gens[group+"/"+id] = s.next
	return s.next
}

// TestStoreRegistersAnew: a registration the store made anew (a peer
// deregistered and registered the target again) is a new registration
// here too: the running target drains, and a new one, with the store's
// generation, takes its place, so that the nodes agree on it.
func TestStoreRegistersAnew(t *testing.T) {
	a := startBackend(t, "a")
	store := &movingStore{gens: map[string]uint64{}}
	srv := newServerWith(t, Options{Store: store})
	// A deregistration delay long enough for the snapshot below to see
	// the old registration still draining.
	c := lbConfig{targets: []string{a.addr}, attrs: map[string]string{"deregistration_delay.timeout_seconds": "60"}}
	if err := srv.Apply(t.Context(), parse(t, c.yaml(), t.TempDir())); err != nil {
		t.Fatal(err)
	}
	was := srv.Snapshot().Group("web").Targets[0].Generation
	want := store.moveGen("web", a.addr)
	if err := srv.Update(t.Context(), func(c *config.Config) error {
		c.TargetGroup("web").Targets[0].Weight = 2
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ts := srv.Snapshot().Group("web").Targets
	if len(ts) != 2 || ts[0].Generation != want || ts[0].Weight != 2 || ts[1].Generation != was || ts[1].State.String() != "draining" {
		t.Errorf("targets after the store registered %s anew as %d: %+v; want it registered anew and generation %d draining", a.addr, want, ts, was)
	}
}

// TestShutdownBoundsRetiredListeners: requests waiting on a target do not
// hold Shutdown past its deadline, on a listener retired by a change (it
// moved to another address) or on one still running; Shutdown then says
// so.
func TestShutdownBoundsRetiredListeners(t *testing.T) {
	a := startBackend(t, "a")
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})
	defer close(release)
	srv := newServer(t, nil)
	c := lbConfig{targets: []string{a.addr}}
	hang := func() {
		t.Helper()
		go http.Get("http://" + srv.Addr("front") + "/hang")
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the request did not reach the target")
		}
	}
	if err := srv.Apply(t.Context(), parse(t, c.yaml(), t.TempDir())); err != nil {
		t.Fatal(err)
	}
	hang()
	moved := strings.Replace(c.yaml(), "address: 127.0.0.1:0", "address: 127.0.0.2:0", 1)
	if err := srv.Apply(t.Context(), parse(t, moved, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	hang()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown with a request still running: %v, want the deadline's error", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown with a 200 ms deadline is still running after 3 s")
	}
}

// TestRemovedGroupClosedAtShutdown: a group a change removed drains its
// targets for its deregistration delay, but Shutdown closes what is left
// of it: its connections, its timers.
func TestRemovedGroupClosedAtShutdown(t *testing.T) {
	var open atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	go be.Serve(ln)
	defer be.Close()
	addr := ln.Addr().String()
	srv := newServer(t, nil)
	two := fmt.Sprintf(`listeners:
  - name: front
    address: 127.0.0.1:0
    default_action: { type: forward, forward: { target_group: old } }
target_groups:
  - name: old
    targets: [{ id: %s }]
    health_check: { enabled: false }
    attributes: { deregistration_delay.timeout_seconds: "60" }
  - name: new
    targets: [{ id: %s }]
    health_check: { enabled: false }
`, addr, addr) + keyYAML()
	dir := t.TempDir()
	if err := srv.Apply(t.Context(), parse(t, two, dir)); err != nil {
		t.Fatal(err)
	}
	if r := get(t, "http://"+srv.Addr("front")+"/", ""); r.status != 200 {
		t.Fatalf("got %d", r.status)
	}
	poll(t, 5*time.Second, "a pooled connection to the target", func() bool { return open.Load() == 1 })
	one := strings.Replace(two, "target_group: old", "target_group: new", 1)
	one = one[:strings.Index(one, "  - name: old")] + one[strings.Index(one, "  - name: new"):]
	if err := srv.Apply(t.Context(), parse(t, one, dir)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll(t, 5*time.Second, "the removed group's connection to close", func() bool { return open.Load() == 0 })
}

// TestUpdateRefusesWhatTheFileOwns: a runtime change may change targets
// and attributes; a change to what the file owns is refused, each path
// named, rather than kept until a reload silently undoes it.
func TestUpdateRefusesWhatTheFileOwns(t *testing.T) {
	a := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{a.addr}})
	before := lb.Snapshot().Version
	err := lb.Update(t.Context(), func(c *config.Config) error {
		c.Listeners[0].IdleTimeout = 5 * time.Second
		c.TargetGroup("web").HealthCheck.Path = "/up"
		c.TargetGroup("web").Targets[0].Weight = 1001
		return nil
	})
	var probs config.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("got %v, want config.Problems", err)
	}
	var paths []string
	for _, p := range probs {
		paths = append(paths, p.Path)
	}
	for _, want := range []string{"listeners[0]", "target_groups[0].health_check", "target_groups[0].targets[0].weight"} {
		if !strings.Contains(strings.Join(paths, " "), want) {
			t.Errorf("problems at %v, none at %s", paths, want)
		}
	}
	if v := lb.Snapshot().Version; v != before {
		t.Errorf("version %d after a refused change, want %d", v, before)
	}
}

// TestUpdateReadsNoFiles: a runtime change applies with the certificates
// and the key ring the last Apply loaded: a certificate file half renewed
// on disk does not refuse a weight change, and a key ring file gone does
// not make a new ring (which would move every session).
func TestUpdateReadsNoFiles(t *testing.T) {
	t.Run("certificates", func(t *testing.T) {
		be := startBackend(t, "a")
		e := newTLSEnv(t)
		r := startYAML(t, e.yaml("HTTPS", allCerts, "", be.addr))
		tlstest.WriteFile(t, filepath.Join(e.dir, "a.key"), e.pairs["front"].KeyPEM) // a renewal half done
		if err := r.Update(t.Context(), func(c *config.Config) error {
			c.TargetGroup("web").Targets[0].Weight = 3
			return nil
		}); err != nil {
			t.Errorf("a weight change refused for a certificate file: %v", err)
		}
	})
	t.Run("key ring", func(t *testing.T) {
		a, b := startBackend(t, "a"), startBackend(t, "b")
		dir := t.TempDir()
		y := lbConfig{targets: []string{a.addr, b.addr}, sticky: true}.yaml()
		y = y[:strings.Index(y, "cookie_keys:")] // the ring of state_dir
		srv := newServer(t, nil)
		if err := srv.Apply(t.Context(), parse(t, y, dir)); err != nil {
			t.Fatal(err)
		}
		url := "http://" + srv.Addr("front") + "/"
		first := get(t, url, "")
		if err := os.Remove(filepath.Join(dir, state.KeysFile)); err != nil {
			t.Fatal(err)
		}
		if err := srv.Update(t.Context(), func(cfg *config.Config) error {
			cfg.TargetGroup("web").Targets[0].Weight = 2
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			if r := get(t, url, "AWSALB="+first.cookie); r.backend != first.backend {
				t.Fatalf("request %d of a session on %s went to %s after a weight change", i, first.backend, r.backend)
			}
		}
	})
}

// TestOverridesLoggedOnlyWhenApplied: the warning that a reload overrode a
// runtime change comes only once the reload applied; a refused reload
// overrode nothing.
func TestOverridesLoggedOnlyWhenApplied(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	var mu sync.Mutex
	var logs bytes.Buffer
	srv := newServerWith(t, Options{Log: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))})
	c := lbConfig{targets: []string{a.addr, b.addr}}
	dir := t.TempDir()
	if err := srv.Apply(t.Context(), parse(t, c.yaml(), dir)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Update(t.Context(), func(cfg *config.Config) error {
		cfg.TargetGroup("web").Target(a.addr).Weight = 9
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	warned := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "overrides a runtime change")
	}
	// The file changes a's weight, overriding the runtime change, and
	// names an address already taken: the reload is refused.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	y := strings.Replace(c.yaml(), "      - id: "+a.addr+"\n", "      - id: "+a.addr+"\n        weight: 2\n", 1)
	refused := strings.Replace(y, "address: 127.0.0.1:0", "address: "+busy.Addr().String(), 1)
	if err := srv.Apply(t.Context(), parse(t, refused, dir)); err == nil {
		t.Fatal("the reload applied; want it refused")
	}
	if w := srv.Snapshot().Config.TargetGroup("web").Target(a.addr).Weight; w != 9 || warned() {
		t.Errorf("after a refused reload: weight %d, override logged %v; want 9, none", w, warned())
	}
	if err := srv.Apply(t.Context(), parse(t, y, dir)); err != nil {
		t.Fatal(err)
	}
	if w := srv.Snapshot().Config.TargetGroup("web").Target(a.addr).Weight; w != 2 || !warned() {
		t.Errorf("after the reload: weight %d, override logged %v; want 2, logged", w, warned())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
