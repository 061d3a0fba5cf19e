package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"slices"
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
	return h.Ejected && h.State == target.Unhealthy && h.Reason == target.ReasonPassiveFailures
}

// settle waits until latch is done with every request it was sent: a
// client has its answer a moment before latch counts the request's outcome
// and ends its count in flight.
func settle(t *testing.T, lb *running) {
	t.Helper()
	poll(t, 5*time.Second, "no request in flight", func() bool {
		for _, h := range lb.Health("web") {
			if h.Inflight != 0 {
				return false
			}
		}
		return true
	})
}

// waitAllHealthy waits for every target of "web" to be healthy, in the
// view that routes requests.
func waitAllHealthy(t *testing.T, lb *running) {
	t.Helper()
	lb.waitFor(t, 5*time.Second, "every target healthy", func() bool {
		for _, h := range lb.Health("web") {
			if h.State != target.Healthy || !h.Routable {
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
// its ejection time is over and a check has passed since, and an ejection
// soon after (within one ejection time) lasts twice as long.
func TestPassiveEjectionComesBackAndGrows(t *testing.T) {
	a, bad := startBackend(t, "a"), startBackend(t, "bad")
	lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true, health: fastHealth,
		attrs: map[string]string{"passive_health.ejection_seconds": "2", "passive_health.max_ejection_seconds": "60"}})
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

	at := eject("ejected for 2s")
	bad.misbehave("")
	lb.waitFor(t, 10*time.Second, "the bad target back", func() bool { return statusOf(lb, bad.addr).State == target.Healthy })
	if d := time.Since(at); d < 2*time.Second-10*time.Millisecond { // the state's time is set a moment after the ejection's
		t.Errorf("the target came back after %v, before its 2 s ejection was over", d)
	}
	// Again at once: a repeat offender is out twice as long.
	eject("ejected for 4s")
}

// TestPassiveEjectionWithoutHealthChecks: with health checks off, an
// ejected target comes back when its ejection time is over.
func TestPassiveEjectionWithoutHealthChecks(t *testing.T) {
	a, bad := startBackend(t, "a"), startBackend(t, "bad")
	lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true,
		attrs: map[string]string{"passive_health.ejection_seconds": "1"}})
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
		settle(t, lb)
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

// TestPassiveHealthEveryAlgorithmAndStickiness: passive health checking
// and retries work alike whatever picks the target: for each balancing
// algorithm and each kind of stickiness, a target that starts resetting
// its real requests is out after a few of them, and no GET fails.
func TestPassiveHealthEveryAlgorithmAndStickiness(t *testing.T) {
	kinds := []struct {
		name  string
		attrs map[string]string
	}{
		{"none", nil},
		{"lb_cookie", map[string]string{"stickiness.type": "lb_cookie"}},
		{"app_cookie", map[string]string{"stickiness.type": "app_cookie", "stickiness.app_cookie.cookie_name": "APPSESSION"}},
		{"header", map[string]string{"stickiness.type": "header", "stickiness.header.name": "X-Session"}},
		{"source_ip", map[string]string{"stickiness.type": "source_ip"}},
		{"hash", map[string]string{"stickiness.type": "hash", "stickiness.hash.header": "X-User"}},
	}
	for _, alg := range []string{"round_robin", "least_outstanding_requests", "weighted_random"} {
		for _, k := range kinds {
			t.Run(alg+"/"+k.name, func(t *testing.T) {
				bs, addrs := threeBackends(t)
				for _, b := range bs {
					b.handle(func(w http.ResponseWriter, r *http.Request) {
						http.SetCookie(w, &http.Cookie{Name: "APPSESSION", Value: "s"})
						io.WriteString(w, r.Host)
					})
				}
				attrs := map[string]string{"load_balancing.algorithm.type": alg}
				for key, v := range k.attrs {
					attrs[key] = v
				}
				lb := startLB(t, lbConfig{targets: addrs, sticky: k.name != "none", health: fastHealth, attrs: attrs})
				waitAllHealthy(t, lb)

				// Thirty sessions, each a client of its own with a cookie
				// jar, its session header and its hash key.
				type session struct {
					c      *http.Client
					header string
					user   string
				}
				var ss []*session
				for i := range 30 {
					jar, _ := cookiejar.New(nil)
					ss = append(ss, &session{c: &http.Client{Jar: jar, Transport: client.Transport, Timeout: 10 * time.Second},
						user: fmt.Sprint("user-", i)})
				}
				// Hash affinity bounds each target's load, and a request
				// still counted in flight after its client has the answer
				// (latch has not yet counted it done) sends the next one of
				// its key elsewhere: requests of one key wait for none to be
				// in flight, so that each goes to its key's own target.
				keyed := k.name == "source_ip" || k.name == "hash"
				send := func(s *session) (int, string) {
					if keyed {
						settle(t, lb)
					}
					req, _ := http.NewRequest("GET", lb.url+"/", nil)
					if s.header != "" {
						req.Header.Set("X-Session", s.header)
					}
					req.Header.Set("X-User", s.user)
					resp, err := s.c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if h := resp.Header.Get("X-Session"); h != "" {
						s.header = h
					}
					return resp.StatusCode, resp.Header.Get("X-Backend")
				}
				on := map[string]int{}
				for _, s := range ss {
					_, from := send(s)
					on[from]++
				}
				// The target with the most sessions (every session's, with
				// source_ip) starts resetting: its sessions fail on it once
				// each, then move, so it needs 3 of them to be ejected.
				name := ""
				for n, c := range on {
					if c > on[name] {
						name = n
					}
				}
				if k.name != "none" && on[name] < 3 {
					t.Fatalf("sessions by target %v: none holds 3", on)
				}
				bad := bs[slices.IndexFunc(bs, func(b *backend) bool { return b.name == name })]
				bad.misbehave(faultReset)
				before := bad.hits.Load()
				for round := range 3 {
					for i, s := range ss {
						if status, from := send(s); status != 200 || from == name {
							t.Fatalf("round %d, session %d: %d from %q; want 200 from a healthy target", round, i, status, from)
						}
					}
				}
				if got := bad.hits.Load() - before; got > 6 {
					t.Errorf("the resetting target got %d requests; want it out after 3 failed ones", got)
				}
				if !ejected(lb, bad.addr) {
					t.Errorf("the resetting target is %s (%s); want ejected", statusOf(lb, bad.addr).State, statusOf(lb, bad.addr).Reason)
				}
			})
		}
	}
}

// TestPassiveHealthCutBodies: a target that sends a response's head and
// then resets before its body is whole fails it as much as one that sends
// nothing: it is out after 3 such responses.
func TestPassiveHealthCutBodies(t *testing.T) {
	a, bad := startBackend(t, "a"), startBackend(t, "bad")
	lb := startLB(t, lbConfig{targets: []string{a.addr, bad.addr}, sticky: true, health: fastHealth})
	waitAllHealthy(t, lb)
	cookie := "AWSALB=" + newSessions(t, lb, 2)["bad"][0]
	bad.handle(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := http.NewResponseController(w).Hijack()
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 1000))
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	})
	for i := range 3 {
		req, _ := http.NewRequest("GET", lb.url+"/", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil {
			t.Fatalf("request %d: %d, body error %v; want the target's 200 cut short", i, resp.StatusCode, err)
		}
	}
	settle(t, lb)
	if !ejected(lb, bad.addr) {
		h := statusOf(lb, bad.addr)
		t.Fatalf("after 3 responses cut short the target is %s (%s); want ejected", h.State, h.Reason)
	}
	if r := get(t, lb.url+"/", cookie); r.status != 200 || r.backend != "a" || r.moved != bad.addr {
		t.Errorf("the session after the ejection: %d from %q (moved %q); want 200 from a, moved from %s", r.status, r.backend, r.moved, bad.addr)
	}
}
