package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy/proxytest"
)

// TestUpdatesUnderLoad changes a group's registrations while requests flow:
// weights set, targets registered, deregistered and registered again,
// drained and undrained, through Update, each change validated and applied
// whole, for as long as 6 clients with sessions send their 300 requests
// each. Not one
// request may fail, and (run with -race, on both data paths: see TestMain)
// no access may race. Deregistered targets drain for 5 s, longer than the
// test, so that a request in flight on one always finishes.
func TestUpdatesUnderLoad(t *testing.T) {
	var backends []*backend
	var addrs []string
	for i := range 5 {
		b := startBackend(t, fmt.Sprintf("b%d", i))
		backends = append(backends, b)
		addrs = append(addrs, b.addr)
	}
	obs := &proxytest.Counter{}
	lb := startLB(t, lbConfig{targets: addrs[:2], sticky: true, observer: obs,
		attrs: map[string]string{"deregistration_delay.timeout_seconds": "5"}})

	const clients, requests = 6, 300
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var sent int
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer hc.CloseIdleConnections()
			for i := range requests {
				resp, err := hc.Get(fmt.Sprintf("%s/c%d/%d", lb.url, c, i))
				mu.Lock()
				sent++
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case resp.StatusCode != http.StatusOK:
					failures = append(failures, fmt.Sprintf("client %d request %d: %s", c, i, resp.Status))
				}
				mu.Unlock()
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}

	go func() {
		wg.Wait()
		close(done)
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	changes := 0
	for ; !isDone(done); changes++ {
		if changes == 20000 {
			t.Fatalf("the clients are still sending after %d changes", changes)
		}
		err := lb.Update(ctx, func(c *config.Config) error {
			g := c.TargetGroup("web")
			var ids []string
			for _, t := range g.Targets {
				ids = append(ids, t.ID)
			}
			undrained := 0
			for _, t := range g.Targets {
				if t.Drain == nil {
					undrained++
				}
			}
			// One target at least stays in service, undrained.
			switch op, j := rng.IntN(4), rng.IntN(len(g.Targets)); {
			case op == 0 && len(g.Targets) < len(addrs): // register one
				for _, a := range addrs {
					if !slices.Contains(ids, a) {
						g.Targets = append(g.Targets, config.Target{ID: a, Weight: 1 + rng.IntN(5)})
						break
					}
				}
			case op == 1 && len(g.Targets) > 2 && (g.Targets[j].Drain != nil || undrained > 1): // deregister one
				g.Targets = slices.Delete(g.Targets, j, j+1)
			case op == 2 && (g.Targets[j].Drain != nil || undrained > 1): // drain one, or undrain it
				if g.Targets[j].Drain == nil {
					g.Targets[j].Drain = &config.Drain{Mode: config.DrainMode(rng.IntN(2))}
				} else {
					g.Targets[j].Drain = nil
				}
			default: // weigh them all anew
				for j := range g.Targets {
					g.Targets[j].Weight = 1 + rng.IntN(1000)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("change %d: %v", changes, err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed; first: %s", len(failures), sent, failures[0])
	}
	if changes < 50 {
		t.Errorf("only %d changes while the requests went out, want many more", changes)
	}
	// A request's End comes once its answer is written: the client may
	// read the last answer a moment before its End is counted.
	for deadline := time.Now().Add(2 * time.Second); obs.Ended.Load() < uint64(sent) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := obs.Ended.Load(); got != uint64(sent) {
		t.Errorf("the observer saw %d requests end, want the %d sent", got, sent)
	}
	if n := obs.ByLatch.Load(); n != 0 {
		t.Errorf("latch answered %d requests itself, want none", n)
	}
	served := 0
	for _, b := range backends {
		if b.hits.Load() > 0 {
			served++
		}
	}
	if served < 3 {
		t.Errorf("requests reached %d backends, want the registrations to have spread them over at least 3", served)
	}
	t.Logf("%d requests during %d changes; version %d", sent, changes, lb.Snapshot().Version)
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestUpdateRefusedChangesNothing: a change that fails, or that makes an
// invalid config, is refused with its reason and leaves everything as it
// was; a subscriber sees it refused.
func TestUpdateRefusedChangesNothing(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	lb := startLB(t, lbConfig{targets: []string{a.addr}})
	before := lb.Snapshot()
	events := lb.Subscribe(8)
	defer events.Close()

	errOwn := errors.New("the caller changed its mind")
	err := lb.Update(t.Context(), func(c *config.Config) error {
		c.TargetGroup("web").Targets = append(c.TargetGroup("web").Targets, config.Target{ID: b.addr, Weight: 1})
		return errOwn
	})
	if !errors.Is(err, errOwn) {
		t.Errorf("a change that failed: got %v, want its own error", err)
	}
	err = lb.Update(t.Context(), func(c *config.Config) error {
		g := c.TargetGroup("web")
		g.Targets = append(g.Targets, config.Target{ID: b.addr, Weight: 1001}, config.Target{ID: "not an address", Weight: 1})
		g.Name = ""
		return nil
	})
	var probs config.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("an invalid change: got %v, want config.Problems", err)
	}
	for _, want := range []string{"target_groups[0].targets[1].weight", "target_groups[0].targets[2].id", "target_groups[0].name"} {
		if !slices.ContainsFunc(probs, func(p config.Problem) bool { return p.Path == want }) {
			t.Errorf("problems %v: none at %s", err, want)
		}
	}
	after := lb.Snapshot()
	if after.Version != before.Version || after.Config != before.Config {
		t.Errorf("after refused changes: version %d (config %p), want %d (%p)", after.Version, after.Config, before.Version, before.Config)
	}
	if ts := lb.Health("web"); len(ts) != 1 || ts[0].ID != a.addr {
		t.Errorf("targets after refused changes: %+v, want a alone", ts)
	}
	if r := get(t, lb.url+"/", ""); r.backend != "a" {
		t.Errorf("after refused changes a request went to %q, want a", r.backend)
	}
	for i := range 2 {
		select {
		case e := <-events.C:
			if e.Kind != ConfigRefused || e.Source != FromUpdate || e.Err == nil {
				t.Errorf("event %d: got %v from %s (%v), want config_refused from update with its error", i, e.Kind, e.Source, e.Err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d: none within 5 s, want config_refused", i)
		}
	}
}
