package server

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/target"
)

// The faults passive health checking and retries are for (README, "Health
// checks, failover and deregistration"), made by a real HTTP target on its
// real routes while its health path passes.
const (
	faultReset   = "reset"   // a TCP reset instead of a response
	faultClose   = "close"   // the connection closed instead of a response
	faultGarbage = "garbage" // bytes that are not HTTP
	faultBigHead = "bighead" // a response head over latch's 32 KiB limit
	faultHang    = "hang"    // no answer at all
	fault500     = "500"     // the target's own 500
)

// misbehave makes b fail every request but its health checks as fault
// says ("" to behave again).
func (b *backend) misbehave(fault string) {
	if fault == "" {
		b.handler.Store(nil)
		return
	}
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		switch fault {
		case faultBigHead:
			w.Header().Set("X-Runaway", strings.Repeat("a", 40<<10))
			w.WriteHeader(http.StatusOK)
			return
		case faultHang:
			<-r.Context().Done()
			return
		case fault500:
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		switch fault {
		case faultReset:
			conn.(*net.TCPConn).SetLinger(0)
		case faultGarbage:
			io.WriteString(conn, "HELLO\r\n\r\n")
		}
		conn.Close()
	})
}

// statusOf returns the named target's status in the group "web".
func statusOf(lb *running, id string) TargetStatus {
	for _, h := range lb.Health("web") {
		if h.ID == id {
			return h
		}
	}
	return TargetStatus{}
}

// ejected reports whether passive health checking has the target out.
func ejected(lb *running, id string) bool {
	h := statusOf(lb, id)
	return h.State == target.Unhealthy && h.Reason == target.ReasonPassiveFailures
}

// waitAllHealthy waits for every target of "web" to be healthy.
func waitAllHealthy(t *testing.T, lb *running) {
	t.Helper()
	lb.waitFor(t, 5*time.Second, "every target healthy", func() bool {
		for _, h := range lb.Health("web") {
			if h.State != target.Healthy {
				return false
			}
		}
		return true
	})
}

// newSessions opens n sessions (new cookies, by round robin), and returns
// each one's cookie by the target it is stuck to.
func newSessions(t *testing.T, lb *running, n int) map[string][]string {
	t.Helper()
	by := map[string][]string{}
	for range n {
		r := get(t, lb.url+"/", "")
		if r.status != 200 || r.cookie == "" {
			t.Fatalf("a new session: %d %q, cookie %q", r.status, r.body, r.cookie)
		}
		by[r.backend] = append(by[r.backend], r.cookie)
	}
	return by
}

// TestPassiveHealthEjectsFailingTarget: a target that fails its real
// routes while its health checks pass is out of rotation within
// passive_health.consecutive_failures requests, not health-check
// intervals; its sessions move with X-Latch-Session-Moved, and no client
// sees an error (each GET that reached it went once more elsewhere).
func TestPassiveHealthEjectsFailingTarget(t *testing.T) {
	for _, fault := range []string{faultReset, faultClose, faultGarbage, faultBigHead} {
		t.Run(fault, func(t *testing.T) {
			a, b, bad := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "bad")
			lb := startLB(t, lbConfig{targets: []string{a.addr, b.addr, bad.addr}, sticky: true, health: fastHealth})
			waitAllHealthy(t, lb)
			sessions := newSessions(t, lb, 30)
			addrOf := map[string]string{"a": a.addr, "b": b.addr}
			bad.misbehave(fault)
			before := bad.hits.Load()

			moved := 0
			for name, cookies := range sessions {
				for _, c := range cookies {
					r := get(t, lb.url+"/", "AWSALB="+c)
					if r.status != 200 || r.backend == "bad" {
						t.Fatalf("a session on %s: %d %q from %q; want 200 from a healthy target", name, r.status, r.body, r.backend)
					}
					if name != "bad" {
						if r.backend != name || r.moved != "" {
							t.Errorf("a session on %s went to %s (moved %q)", name, r.backend, r.moved)
						}
						continue
					}
					moved++
					if r.moved != bad.addr || r.cookie == "" || decode(t, r.cookie).Target != addrOf[r.backend] {
						t.Errorf("a session on bad: moved %q, cookie for %q; want moved %s and a cookie for %s",
							r.moved, decode(t, r.cookie).Target, bad.addr, r.backend)
					}
				}
			}
			if moved == 0 {
				t.Fatal("no session was stuck to the bad target")
			}
			// Three client requests fail on it; each may reach it twice,
			// when the first went on a pooled connection (a request that
			// loses one goes again on a new connection to the same target).
			if got := bad.hits.Load() - before; got > 6 {
				t.Errorf("the bad target got %d requests; want it out of rotation after 3 failed ones", got)
			}
			if !ejected(lb, bad.addr) {
				h := statusOf(lb, bad.addr)
				t.Fatalf("the bad target is %s (%s); want unhealthy (%s)", h.State, h.Reason, target.ReasonPassiveFailures)
			}
			t.Logf("%s: %d sessions moved; health: %q", fault, moved, statusOf(lb, bad.addr).Description)
		})
	}
}

// TestPassiveEjectionComesBackAndGrows: an ejected target comes back once
// its ejection time is over and its checks pass, and an ejection soon after
// lasts twice as long.
func TestPassiveEjectionComesBackAndGrows(t *testing.T) {
	a, bad := startBackend(t, "a"), startBackend(t, "bad")
	lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true, health: fastHealth,
		attrs: map[string]string{"passive_health.ejection_seconds": "1", "passive_health.max_ejection_seconds": "60"}})
	waitAllHealthy(t, lb)
	sessions := newSessions(t, lb, 2)
	cookie := "AWSALB=" + sessions["bad"][0]

	eject := func(want string) time.Time {
		t.Helper()
		bad.misbehave(faultReset)
		for i := 0; !ejected(lb, bad.addr); i++ {
			if i == 10 {
				t.Fatalf("the bad target is still %s after 10 failed requests", statusOf(lb, bad.addr).State)
			}
			if r := get(t, lb.url+"/", cookie); r.status != 200 {
				t.Fatalf("request %d: %d %q", i, r.status, r.body)
			}
		}
		h := statusOf(lb, bad.addr)
		if !strings.Contains(h.Description, want) {
			t.Errorf("the ejection's description %q; want it to say %q", h.Description, want)
		}
		return h.Since // when it was ejected
	}

	at := eject("ejected for 1s")
	bad.misbehave("")
	lb.waitFor(t, 10*time.Second, "the bad target back", func() bool { return statusOf(lb, bad.addr).State == target.Healthy })
	if d := time.Since(at); d < time.Second-10*time.Millisecond { // the state's time is set a moment after the ejection's
		t.Errorf("the target came back after %v, before its 1 s ejection was over", d)
	}
	// Again at once: a repeat offender is out twice as long.
	eject("ejected for 2s")
}

// TestPassiveEjectionWithoutHealthChecks: with health checks off, an
// ejected target comes back when its ejection time is over.
func TestPassiveEjectionWithoutHealthChecks(t *testing.T) {
	a, bad := startBackend(t, "a"), startBackend(t, "bad")
	lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true,
		attrs: map[string]string{"passive_health.ejection_seconds": "0.3"}})
	stuck := "AWSALB=" + newSessions(t, lb, 2)["bad"][0]
	bad.misbehave(faultReset)
	var cookie string
	for i := range 3 {
		r := get(t, lb.url+"/", stuck)
		if r.status != 200 || r.backend != "a" {
			t.Fatalf("request %d: %d from %q; want 200 from a", i, r.status, r.backend)
		}
		cookie = "AWSALB=" + r.cookie
	}
	if !ejected(lb, bad.addr) {
		t.Fatalf("the bad target is %s after 3 failed requests; want ejected", statusOf(lb, bad.addr).State)
	}
	bad.misbehave("")
	lb.waitFor(t, 5*time.Second, "the bad target back", func() bool { return statusOf(lb, bad.addr).State == target.Unavailable })
	if r := get(t, lb.url+"/", cookie); r.status != 200 || r.backend != "a" {
		t.Errorf("the session that moved to a: %d from %q; want it to stay on a", r.status, r.backend)
	}
}

// TestPassiveHealthHangingTarget: a target that never answers costs each
// request that reaches it the idle timeout (504) until it is ejected; with
// retry.on_timeout, a GET goes to another target instead.
func TestPassiveHealthHangingTarget(t *testing.T) {
	for _, onTimeout := range []bool{false, true} {
		name := "no retry on timeout"
		if onTimeout {
			name = "retry on timeout"
		}
		t.Run(name, func(t *testing.T) {
			a, bad := startBackend(t, "a"), startBackend(t, "bad")
			attrs := map[string]string{}
			if onTimeout {
				attrs["retry.on_timeout.enabled"] = "true"
			}
			lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true, health: fastHealth, attrs: attrs,
				listenAttrs: map[string]string{"idle_timeout.timeout_seconds": "0.3"}})
			waitAllHealthy(t, lb)
			cookie := "AWSALB=" + newSessions(t, lb, 2)["bad"][0]
			bad.misbehave(faultHang)
			for i := range 3 {
				r := get(t, lb.url+"/", cookie)
				want, from := 504, ""
				if onTimeout {
					want, from = 200, "a"
				}
				if r.status != want || r.backend != from {
					t.Fatalf("request %d to the hanging target: %d from %q; want %d from %q", i, r.status, r.backend, want, from)
				}
				if onTimeout {
					cookie = "AWSALB=" + sealFor(t, lb, r.cookie, bad.addr) // stuck to it again
				}
			}
			if !ejected(lb, bad.addr) {
				t.Fatalf("the hanging target is %s after 3 timeouts; want ejected", statusOf(lb, bad.addr).State)
			}
			if r := get(t, lb.url+"/", cookie); r.status != 200 || r.backend != "a" || r.moved != bad.addr {
				t.Errorf("after the ejection: %d from %q (moved %q); want 200 from a, moved from %s", r.status, r.backend, r.moved, bad.addr)
			}
		})
	}
}

// TestPassiveEjectionCap: when every target fails, no more than
// passive_health.max_ejected_percent of them are ejected (one of three at
// 50%), and latch keeps answering.
func TestPassiveEjectionCap(t *testing.T) {
	bs, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs, health: fastHealth})
	waitAllHealthy(t, lb)
	for _, b := range bs {
		b.misbehave(faultReset)
	}
	for i := range 30 {
		if r := get(t, lb.url+"/", ""); r.status != 502 {
			t.Fatalf("request %d: %d %q; want latch's 502", i, r.status, r.body)
		}
	}
	n := 0
	for _, h := range lb.Health("web") {
		if h.Reason == target.ReasonPassiveFailures {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d targets ejected; want 1 (50%% of 3)", n)
	}
	for _, b := range bs {
		b.misbehave("")
	}
	if r := get(t, lb.url+"/", ""); r.status != 200 {
		t.Errorf("once the targets behave: %d %q", r.status, r.body)
	}
}

// TestPassiveHealthTarget5xx: a target's own 5xx answers pass to the
// client; they eject it only with passive_health.target_5xx.enabled.
func TestPassiveHealthTarget5xx(t *testing.T) {
	for _, count := range []bool{false, true} {
		a, bad := startBackend(t, "a"), startBackend(t, "bad")
		lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true,
			attrs: map[string]string{"passive_health.target_5xx.enabled": map[bool]string{false: "false", true: "true"}[count]}})
		cookie := "AWSALB=" + newSessions(t, lb, 2)["bad"][0]
		bad.misbehave(fault500)
		for i := range 3 {
			if r := get(t, lb.url+"/", cookie); r.status != 500 || r.backend != "bad" {
				t.Fatalf("target_5xx %t, request %d: %d from %q; want the target's 500", count, i, r.status, r.backend)
			}
		}
		if got := ejected(lb, bad.addr); got != count {
			t.Errorf("target_5xx %t: ejected %t after 3 answers of 500", count, got)
		}
	}
}

// TestRetryRules: which requests that failed on their target go once more
// to another, per README: idempotent ones without a body, and those with
// an Idempotency-Key; never a POST or a request whose body was sent.
func TestRetryRules(t *testing.T) {
	a, bad := startBackend(t, "a"), startBackend(t, "bad")
	attrs := map[string]string{"passive_health.enabled": "false"}
	lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true, attrs: attrs})
	cookie := "AWSALB=" + newSessions(t, lb, 2)["bad"][0]
	bad.misbehave(faultReset)
	cases := []struct {
		method, body, key string
		want              int
	}{
		{"GET", "", "", 200},
		{"HEAD", "", "", 200},
		{"OPTIONS", "", "", 200},
		{"DELETE", "", "", 200},
		{"PUT", "", "", 200},
		{"PUT", "data", "", 502},
		{"POST", "", "", 502},
		{"POST", "data", "", 502},
		{"PATCH", "", "", 502},
		{"POST", "", "k-1", 200},
	}
	for _, c := range cases {
		aBefore, badBefore := a.hits.Load(), bad.hits.Load()
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, _ := http.NewRequest(c.method, lb.url+"/", body)
		req.Header.Set("Cookie", cookie)
		if c.key != "" {
			req.Header.Set("Idempotency-Key", c.key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s with body %q: %v", c.method, c.body, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// A request that may go twice may reach the failing target twice
		// (again on a new connection when the pooled one failed it); one
		// that may not, once.
		retried, failing := a.hits.Load()-aBefore, bad.hits.Load()-badBefore
		if resp.StatusCode != c.want || failing < 1 || c.want != 200 && failing != 1 ||
			retried != map[bool]int64{true: 1, false: 0}[c.want == 200] {
			t.Errorf("%s (body %q, Idempotency-Key %q): %d, the failing target saw %d and the other %d; want %d",
				c.method, c.body, c.key, resp.StatusCode, bad.hits.Load()-badBefore, retried, c.want)
		}
	}

	// With retry.idempotent.enabled false, only connect failures go again.
	attrs["retry.idempotent.enabled"] = "false"
	lb.reload(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true, attrs: attrs})
	if r := get(t, lb.url+"/", cookie); r.status != 502 {
		t.Errorf("GET with retry.idempotent.enabled false: %d from %q; want 502", r.status, r.backend)
	}
}

// TestRetryBudget: when every target fails, the retry budget holds the
// retries to its share of the requests; with a budget too large to bind,
// every failed GET goes once more.
func TestRetryBudget(t *testing.T) {
	const clients, each = 12, 15
	for _, budget := range []string{"20%", "none"} {
		bs, addrs := threeBackends(t)
		for _, b := range bs {
			b.misbehave(faultReset)
		}
		attrs := map[string]string{"passive_health.enabled": "false", "retry.budget.percent": "20", "retry.budget.min_per_second": "0"}
		if budget == "none" {
			attrs["retry.budget.percent"], attrs["retry.budget.min_per_second"] = "100", "10000"
		}
		lb := startLB(t, lbConfig{targets: addrs, attrs: attrs})
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if r, err := tryGet(lb.url+"/", ""); err != nil || r.status != 502 {
						t.Errorf("got %d, %v; want latch's 502", r.status, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		var hits int64
		for _, b := range bs {
			hits += b.hits.Load()
		}
		retries := hits - clients*each
		t.Logf("budget %s: %d requests reached the targets for %d client requests", budget, hits, clients*each)
		switch budget {
		case "none":
			if retries != clients*each {
				t.Errorf("with no budget to bind: %d retries; want every one of %d requests retried", retries, clients*each)
			}
		default:
			if retries <= 0 || retries > clients*each/5 {
				t.Errorf("with a 20%% budget: %d retries of %d requests; want some, and at most 20%%", retries, clients*each)
			}
		}
	}
}

// TestHTTP2TargetFailures: the same rules hold for a group spoken to over
// HTTP/2: a target that resets its streams on its real routes has its GETs
// retried elsewhere and is ejected; a POST is answered 502 and not retried.
func TestHTTP2TargetFailures(t *testing.T) {
	var badHits atomic.Int64
	good := serveH2C(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "good")
		w.Header().Set("X-Saw-Moved", r.Header.Get("X-Latch-Session-Moved"))
	})
	bad := serveH2C(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		badHits.Add(1)
		panic(http.ErrAbortHandler) // the stream is reset
	})
	lb := startLB(t, lbConfig{targets: []string{good, bad}, sticky: true, health: fastHealth,
		extraGroup: "    protocol_version: HTTP2\n"})
	lb.waitFor(t, 5*time.Second, "both targets healthy", func() bool { return healthyCount(lb, "web") == 2 })
	var like string
	for like == "" {
		like = get(t, lb.url+"/", "").cookie
	}
	cookie := "AWSALB=" + sealFor(t, lb, like, bad)
	badHits.Store(0)

	req, _ := http.NewRequest("POST", lb.url+"/", strings.NewReader("once"))
	req.Header.Set("Cookie", cookie)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || badHits.Load() != 1 {
		t.Errorf("a POST to the resetting target: %d, the target saw %d; want 502, seen once", resp.StatusCode, badHits.Load())
	}
	for i := range 3 {
		r := get(t, lb.url+"/", cookie)
		if r.status != 200 || r.backend != "good" || r.moved != bad {
			t.Fatalf("GET %d to the resetting target: %d from %q (moved %q); want 200 from good, moved from %s", i, r.status, r.backend, r.moved, bad)
		}
		if ejected(lb, bad) {
			break
		}
	}
	if !ejected(lb, bad) {
		t.Errorf("the resetting target is %s after 3 failed requests; want ejected", statusOf(lb, bad).State)
	}
}
