package server

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/target"
)

// TestKilledTargetCostsNoClientAnError kills a real target process with
// SIGKILL while clients are stuck to it. Every client's next GET succeeds on
// another target with a new cookie, the new target is told the session
// moved, and health reports the dead target unhealthy with ALB's reason.
func TestKilledTargetCostsNoClientAnError(t *testing.T) {
	procs := []*process{startProcess(t, "p1"), startProcess(t, "p2"), startProcess(t, "p3")}
	var addrs []string
	for _, p := range procs {
		addrs = append(addrs, p.addr)
	}
	// A slow health check, so that the connect-failure path (not the probe)
	// is what protects the clients in the first instants.
	lb := startLB(t, lbConfig{targets: addrs, sticky: true, health: `      path: /healthz
      interval_seconds: 0.5
      timeout_seconds: 0.2
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
`})
	lb.waitFor(t, 5*time.Second, "all targets healthy", func() bool {
		n := 0
		for _, h := range lb.Health("web") {
			if h.State == target.Healthy {
				n++
			}
		}
		return n == 3
	})

	// 30 clients, 10 stuck to each target.
	type clientState struct{ cookie, backend string }
	var clients []clientState
	for len(clients) < 30 {
		r := get(t, lb.url+"/", "")
		clients = append(clients, clientState{r.cookie, r.backend})
	}
	victim := procs[0]
	var stuck []clientState
	for _, c := range clients {
		if c.backend == victim.name {
			stuck = append(stuck, c)
		}
	}
	if len(stuck) == 0 {
		t.Fatal("no client is stuck to the victim")
	}

	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()

	// Every stuck client, at once, sends its next GET.
	var wg sync.WaitGroup
	results := make([]result, len(stuck))
	for i, c := range stuck {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = get(t, lb.url+"/", "AWSALB="+c.cookie)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.status != 200 {
			t.Errorf("client %d got %d %q", i, r.status, r.body)
			continue
		}
		if r.backend == victim.name || r.backend == "" {
			t.Errorf("client %d served by %q", i, r.backend)
		}
		if r.cookie == "" || r.cookie == stuck[i].cookie {
			t.Errorf("client %d got no new cookie", i)
		}
		if r.moved != victim.addr {
			t.Errorf("client %d: the new target saw X-Latch-Session-Moved %q, want %q", i, r.moved, victim.addr)
		}
		// The new cookie holds: the session now lives on the new target.
		if again := get(t, lb.url+"/", "AWSALB="+r.cookie); again.backend != r.backend {
			t.Errorf("client %d: next request went to %s, want %s", i, again.backend, r.backend)
		}
	}
	lb.waitFor(t, 5*time.Second, "the killed target reported unhealthy", func() bool {
		for _, h := range lb.Health("web") {
			if h.ID == victim.addr {
				return h.State == target.Unhealthy && h.Reason == target.ReasonFailedHealthChecks
			}
		}
		return false
	})
	for _, h := range lb.Health("web") {
		if h.ID == victim.addr {
			t.Logf("victim health: %s %s %q", h.State, h.Reason, h.Description)
		}
	}
}

// TestReloadUnderLoadDropsNothing swaps configs repeatedly (adding,
// removing and re-weighting targets, changing the idle timeout, which swaps
// the listener's server) while clients send requests without pause.
func TestReloadUnderLoadDropsNothing(t *testing.T) {
	_, addrs := threeBackends(t)
	extra := startBackend(t, "d")
	slow := startBackend(t, "slow")
	slow.handle(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond)
		w.Header().Set("X-Backend", "slow")
		io.WriteString(w, "slow")
	})
	base := lbConfig{targets: append(addrs, slow.addr), sticky: true, health: fastHealth,
		attrs: map[string]string{"deregistration_delay.timeout_seconds": "5"}}
	lb := startLB(t, base)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			cookie := ""
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				req, _ := http.NewRequest("GET", lb.url+"/", nil)
				if cookie != "" && w%2 == 0 {
					req.Header.Set("Cookie", "AWSALB="+cookie)
				}
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
					continue
				}
				ok.Add(1)
				for _, ck := range resp.Cookies() {
					if ck.Name == "AWSALB" {
						cookie = ck.Value
					}
				}
			}
		}()
	}
	configs := []struct {
		targets    []string
		listenIdle string
	}{
		{targets: append(addrs, slow.addr, extra.addr)},       // add a target
		{targets: []string{addrs[0], addrs[1], slow.addr}},    // remove two (they drain)
		{targets: append(addrs, slow.addr), listenIdle: "30"}, // new server settings
		{targets: []string{addrs[2], extra.addr, slow.addr}},
		{targets: append(addrs, slow.addr)},
	}
	for round := range 3 {
		for _, c := range configs {
			next := base
			next.targets = c.targets
			if c.listenIdle != "" && round%2 == 0 {
				next.listenAttrs = map[string]string{"idle_timeout.timeout_seconds": c.listenIdle}
			}
			lb.reload(t, next)
			time.Sleep(40 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Errorf("only %d requests ran; the load did not overlap the reloads", ok.Load())
	}
	t.Logf("%d requests, 15 reloads, no failures", ok.Load())
}

// TestDrainLetsInflightFinish deregisters a target with a request in flight:
// the request completes, new requests and sticky sessions go elsewhere.
func TestDrainLetsInflightFinish(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	started := make(chan struct{}, 1)
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("X-Backend", "a")
		if m := r.Header.Get("X-Latch-Session-Moved"); m != "" {
			w.Header().Set("X-Saw-Moved", m)
		}
		io.WriteString(w, "a")
	})
	c := lbConfig{targets: []string{a.addr, b.addr}, sticky: true, attrs: map[string]string{"deregistration_delay.timeout_seconds": "5"}}
	lb := startLB(t, c)
	var cookieA string
	for cookieA == "" {
		if r := get(t, lb.url+"/", ""); r.backend == "a" {
			cookieA = r.cookie
		}
	}
	slowDone := make(chan result, 1)
	go func() { slowDone <- get(t, lb.url+"/slow", "AWSALB="+cookieA) }()
	<-started

	c.targets = []string{b.addr}
	lb.reload(t, c)
	var drainingSeen bool
	for _, h := range lb.Health("web") {
		if h.ID == a.addr && h.State == target.Draining && h.Reason == target.ReasonDeregistrationInProcess {
			drainingSeen = true
			if h.Inflight != 1 {
				t.Errorf("draining target has %d requests in flight, want 1", h.Inflight)
			}
		}
	}
	if !drainingSeen {
		t.Errorf("health after deregistration: %+v, want a draining", lb.Health("web"))
	}
	r := get(t, lb.url+"/", "AWSALB="+cookieA)
	if r.backend != "b" || r.moved != a.addr {
		t.Errorf("sticky request during drain went to %q (moved %q), want b told it moved from a", r.backend, r.moved)
	}
	if s := <-slowDone; s.status != 200 || s.body != "a" {
		t.Errorf("in-flight request on the draining target: %d %q, want 200 a", s.status, s.body)
	}
}

// TestDrainDelayCutsLongRequests: when the deregistration delay runs out,
// requests still in flight are cut with a 502, as ALB does.
func TestDrainDelayCutsLongRequests(t *testing.T) {
	a := startBackend(t, "a")
	started := make(chan struct{}, 1)
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(3 * time.Second)
	})
	b := startBackend(t, "b")
	c := lbConfig{targets: []string{a.addr}, attrs: map[string]string{"deregistration_delay.timeout_seconds": "0.2"}}
	lb := startLB(t, c)
	done := make(chan result, 1)
	go func() { done <- get(t, lb.url+"/", "") }()
	<-started
	c.targets = []string{b.addr}
	lb.reload(t, c)
	select {
	case r := <-done:
		if r.status != 502 || r.body != "502 Bad Gateway: the target was deregistered and its deregistration delay elapsed\n" {
			t.Errorf("got %d %q", r.status, r.body)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the request outlived the deregistration delay")
	}
}

// TestShutdownWaitsForRequests: Shutdown stops accepting but lets a request
// in flight finish.
func TestShutdownWaitsForRequests(t *testing.T) {
	a := startBackend(t, "a")
	started := make(chan struct{}, 1)
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "finished")
	})
	lb := startLB(t, lbConfig{targets: []string{a.addr}})
	done := make(chan result, 1)
	go func() { done <- get(t, lb.url+"/", "") }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lb.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if r := <-done; r.status != 200 || r.body != "finished" {
		t.Errorf("in-flight request: %d %q", r.status, r.body)
	}
	if _, err := http.Get(lb.url + "/"); err == nil {
		t.Error("latch still accepts connections after Shutdown")
	}
}

func TestFailOpenWhenAllUnhealthy(t *testing.T) {
	bs, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs, health: fastHealth})
	for _, b := range bs {
		b.healthy.Store(false)
	}
	lb.waitFor(t, 5*time.Second, "all targets unhealthy", func() bool {
		for _, h := range lb.Health("web") {
			if h.State != target.Unhealthy {
				return false
			}
		}
		return true
	})
	seen := map[string]bool{}
	for range 6 {
		r := get(t, lb.url+"/", "")
		if r.status != 200 {
			t.Fatalf("fail-open: got %d %q", r.status, r.body)
		}
		seen[r.backend] = true
	}
	if len(seen) != 3 {
		t.Errorf("fail-open reached %d targets, want all 3", len(seen))
	}
}
