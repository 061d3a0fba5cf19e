package faults

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Scenarios 5-8 of issue 9: targets killed with SIGKILL. What latch
// promises: an idempotent request in flight on a killed target, on a new
// or a reused connection, goes to another target and succeeds, its
// session moved; a POST that reached the target fails with 502 and never
// runs twice; a POST is never sent on a pooled connection its dead target
// closed (a peek for the FIN before any request that could not be
// replayed), so one sent just after its target died goes to another.

// stickTo returns k clients whose sessions are stuck to the target named
// victim, each with a kept-alive connection to latch.
func stickTo(t *testing.T, p *latchProc, victim string, k int) []*http.Client {
	t.Helper()
	var out []*http.Client
	for i := 0; len(out) < k; i++ {
		if i == 20*k {
			t.Fatalf("%d new sessions, %d of them on %s, want %d", i, len(out), victim, k)
		}
		c := p.client()
		x := send(c, http.MethodGet, p.url+"/", fmt.Sprintf("stick-%d", i), "")
		if !x.ok() {
			t.Fatalf("a new session's first request: %d %s", x.status, x.err)
		}
		if x.backend == victim {
			out = append(out, c)
		} else {
			c.CloseIdleConnections()
		}
	}
	return out
}

// all sends one request on each client at once, and returns what each got.
func all(cs []*http.Client, method, url, idPrefix, hold string) []result {
	rs := make([]result, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = send(c, method, url, fmt.Sprintf("%s-%d", idPrefix, i), hold)
		}()
	}
	wg.Wait()
	return rs
}

// inFlightGETs is how many GETs the killed target holds: more than the
// retry budget's floor for a second (retry.budget.min_per_second, 10), so
// that it is the budget the sessions' traffic built up that lets them all
// go again.
const inFlightGETs = 12

func testKillGETsNewConns(t *testing.T, v variant, r *row) {
	r.fault = fmt.Sprintf("a target SIGKILLed with %d GETs in flight on new connections (the app closes every connection after its response)", inFlightGETs)
	killGETs(t, v, r, modeClose)
}

func testKillGETsReusedConns(t *testing.T, v variant, r *row) {
	r.fault = fmt.Sprintf("a target SIGKILLed with %d GETs in flight on reused keep-alive connections", inFlightGETs)
	killGETs(t, v, r, modeOK)
}

func killGETs(t *testing.T, v variant, r *row, mode string) {
	const k = inFlightGETs
	led := newLedger()
	ts := startTargets(t, led, 3, mode)
	victim := ts[0]
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	r.load = fmt.Sprintf("3 targets, %d sticky sessions, one GET each held by the target", k)
	cs := stickTo(t, p, victim.name, k)
	if mode == modeOK {
		// k GETs at once, held a moment: latch opens k connections to the
		// victim, which then wait in its pool for the GETs to kill.
		for _, x := range all(cs, http.MethodGet, p.url+"/warm", "warm", victim.name+"=100") {
			if !x.ok() {
				t.Fatalf("warming the connections: %d %s", x.status, x.err)
			}
		}
	}
	var rs []result
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs = all(cs, http.MethodGet, p.url+"/inflight", "inflight", victim.name+"=10000")
	}()
	led.waitFor(t, 10*time.Second, fmt.Sprintf("%d GETs at the victim", k), func(es []entry) bool {
		return countEntries(es, func(e entry) bool {
			return e.kind == "REQ" && e.target == victim.name && strings.HasPrefix(e.id, "inflight-")
		}) == k
	})
	held := led.requests(func(e entry) bool { return e.target == victim.name && strings.HasPrefix(e.id, "inflight-") })
	reused := countEntries(held, func(e entry) bool { return e.connSeq > 1 })
	victim.kill(t)
	<-done
	led.sync(t, ts...)

	r.saw = summary(rs)
	movedOK := 0
	elsewhere := led.requests(func(e entry) bool { return e.target != victim.name && strings.HasPrefix(e.id, "inflight-") })
	for _, x := range rs {
		if !x.ok() {
			continue
		}
		for _, e := range elsewhere {
			if e.id == x.id && e.target == x.backend && e.moved == victim.addr {
				movedOK++
				break
			}
		}
	}
	r.lost = fmt.Sprintf("%d of %d answered by another target with X-Latch-Session-Moved; %d of the %d were on reused connections", movedOK, k, reused, k)
	if mode == modeOK && reused != k {
		r.errorf(t, "%d of the %d GETs held by the victim came on reused connections, want all (the scenario's set-up)", reused, k)
	}
	if mode == modeClose && reused != 0 {
		r.errorf(t, "%d of the %d GETs held by the victim came on reused connections, want none: the app closes each", reused, k)
	}
	if bad := failed(rs); len(bad) > 0 {
		r.errorf(t, "%d of %d GETs in flight on the killed target failed (%s), want none: a GET that got no response byte goes to another target",
			len(bad), k, firstErrors(bad))
	}
	if movedOK < len(rs)-len(failed(rs)) {
		r.errorf(t, "%d of the %d answered GETs reached their new target with X-Latch-Session-Moved: %s, want all", movedOK, len(rs)-len(failed(rs)), victim.addr)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

func testKillPOSTInFlight(t *testing.T, v variant, r *row) {
	const k = 4
	r.fault = fmt.Sprintf("a target SIGKILLed with %d POSTs in flight (received, bodies read)", k)
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	victim := ts[0]
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	r.load = fmt.Sprintf("3 targets, %d sticky sessions, one POST each held by the target", k)
	cs := stickTo(t, p, victim.name, k)
	var rs []result
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs = all(cs, http.MethodPost, p.url+"/checkout", "post", victim.name+"=10000")
	}()
	led.waitFor(t, 10*time.Second, fmt.Sprintf("%d POSTs read whole by the victim", k), func(es []entry) bool {
		return countEntries(es, func(e entry) bool {
			return e.kind == "END" && e.target == victim.name && strings.HasPrefix(e.id, "post-") && e.end == "ok"
		}) == k
	})
	victim.kill(t)
	<-done
	led.sync(t, ts...)

	r.saw = summary(rs)
	ids := led.byID()
	twice := 0
	for _, x := range rs {
		if n := len(ids[x.id]); n != 1 {
			twice++
			r.errorf(t, "POST %s reached targets %d times, want once", x.id, n)
		}
	}
	r.lost = fmt.Sprintf("%d POSTs that reached the killed target; %d ran twice", k, twice)
	for _, x := range rs {
		if x.status != http.StatusBadGateway {
			r.errorf(t, "POST %s in flight on the killed target got %d %q, want 502: it may have run, so it is never sent again", x.id, x.status, x.err)
		}
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

// testPOSTAfterDeath is the SAML login of issue 9: a session's GET (the
// login, which leaves a kept-alive connection from the client and a pooled
// one to the target), the target killed, and at once the POST (the IdP's
// answer) on the same client connection.
func testPOSTAfterDeath(t *testing.T, v variant, r *row) {
	const tries = 8
	r.fault = "a POST sent just after its sticky target was SIGKILLed, on a kept-alive client connection (a SAML login whose IdP answers at once)"
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	r.load = fmt.Sprintf("3 targets; %d tries, each a new session: GET, SIGKILL its target, POST", tries)
	var posts []result
	for i := range tries {
		c := p.client()
		g := send(c, http.MethodGet, p.url+"/login", fmt.Sprintf("login-%d", i), "")
		if !g.ok() {
			t.Fatalf("try %d: the login GET: %d %s", i, g.status, g.err)
		}
		victim := byName(ts, g.backend)
		victim.kill(t)
		x := send(c, http.MethodPost, p.url+"/acs", fmt.Sprintf("acs-%d", i), "")
		posts = append(posts, x)
		c.CloseIdleConnections()
		led.sync(t, ts...)
		switch n := len(led.byID()[x.id]); {
		case n > 1:
			r.errorf(t, "try %d: the POST reached targets %d times, want once at most", i, n)
		case x.ok() && n != 1:
			r.errorf(t, "try %d: the POST was answered 200 but reached %d targets", i, n)
		}
		if x.ok() && x.backend == victim.name {
			r.errorf(t, "try %d: the POST was answered by the killed target %s", i, victim.name)
		}
		victim.restart(t)
		p.waitHealthy(t, victim.addr)
	}
	good := tries - len(failed(posts))
	r.saw = summary(posts)
	r.lost = fmt.Sprintf("%d of %d logins lost", tries-good, tries)
	if good != tries {
		r.errorf(t, "%d of %d POSTs sent after their target died failed (%s), want none: a POST goes on a new connection when its pooled one was closed, and a connect failure goes to another target",
			tries-good, tries, firstErrors(posts))
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

// testKillUnderLoad kills one of three targets under the standard load,
// one request in four a POST, each request taking the target 100 ms, so that some
// are in flight on the target when it dies.
func testKillUnderLoad(t *testing.T, v variant, r *row) {
	r.fault = "a target SIGKILLed under load (each request takes it 100 ms)"
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK, "LATCH_FAULT_HOLD=100ms")
	victim := ts[0]
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	spec := standardLoad("kill")
	spec.post = func(seq int) bool { return seq%4 == 3 }
	r.load = "3 targets, " + spec.String() + " (1 in 4); 750 requests after the kill"
	ld := startLoad(t, p, spec)
	ld.waitEstablished(t)
	ld.waitMore(t, 250)
	rs, _ := ld.results()
	at := time.Now()
	stuck := sessionsOn(rs, at, victim.name)
	signalled, gone := victim.kill(t)
	ld.waitMore(t, 750)
	ld.stop()
	led.sync(t, ts...)
	rs, _ = ld.results()

	// The requests that ended after the kill, those in flight on the
	// victim among them: the requests of its sessions sent before it was
	// gone and answered after the signal.
	onVictim := map[int]bool{}
	for _, s := range stuck {
		onVictim[s] = true
	}
	var after []result
	inFlight := 0
	for _, x := range rs {
		if x.end.After(signalled) {
			after = append(after, x)
			if onVictim[x.sess] && x.method == http.MethodGet && x.start.Before(gone) {
				inFlight++
			}
		}
	}
	ids := led.byID()
	// A POST sent before the target was gone may have reached it: a 502
	// is its due. One sent after must not go on a connection the dead
	// target closed, so it cannot fail.
	var getsFailed, postsLost, postsAfter []result
	for _, x := range failed(after) {
		switch {
		case x.method == http.MethodGet:
			getsFailed = append(getsFailed, x)
		case x.start.Before(gone):
			postsLost = append(postsLost, x)
		default:
			postsAfter = append(postsAfter, x)
		}
	}
	twice := 0
	for _, x := range rs {
		if x.method == http.MethodPost && len(ids[x.id]) > 1 {
			twice++
		}
	}
	moved, strays := sessionsMoved(led, rs, at, stuck, victim)
	reachedDead := 0
	for _, x := range postsLost {
		if es := ids[x.id]; len(es) == 1 && es[0].target == victim.name {
			reachedDead++
		}
	}
	r.saw = summary(after) + " from the kill on"
	r.lost = fmt.Sprintf("%d of %d GETs in flight failed; %d POSTs in flight at the kill (502; %d had reached the target's handler), %d POSTs sent after it; %d ran twice; %d of its %d sessions moved",
		len(getsFailed), inFlight, len(postsLost), reachedDead, len(postsAfter), twice, moved, len(stuck))
	// The GETs in flight on the killed target go once more to another
	// target, on the retry budget the load built up.
	for _, x := range getsFailed {
		if !onVictim[x.sess] || !x.start.Before(gone) {
			r.errorf(t, "GET %s failed (%d %q) though it was not in flight on the killed target", x.id, x.status, x.err)
		}
	}
	if len(getsFailed) > 0 {
		r.errorf(t, "%d of the %d GETs in flight on the killed target failed (%s), want none: each goes to another target",
			len(getsFailed), inFlight, firstErrors(getsFailed))
	}
	if len(postsAfter) > 0 {
		r.errorf(t, "%d POSTs sent after the target died failed (%s), want none: a POST never goes on a connection its dead target closed",
			len(postsAfter), firstErrors(postsAfter))
	}
	for _, x := range postsLost {
		if es := ids[x.id]; x.status != http.StatusBadGateway || len(es) > 1 || len(es) == 1 && es[0].target != victim.name {
			r.errorf(t, "POST %s in flight at the kill got %d %q having reached %v, want 502, and the killed target alone", x.id, x.status, x.err, es)
		}
	}
	if len(postsLost) > len(stuck) {
		r.errorf(t, "%d POSTs failed, want at most one for each of the %d sessions on the killed target", len(postsLost), len(stuck))
	}
	if twice > 0 {
		r.errorf(t, "%d POSTs reached targets twice, want none", twice)
	}
	if moved < len(stuck) {
		r.errorf(t, "%d of the %d sessions on the killed target moved with X-Latch-Session-Moved, want all", moved, len(stuck))
	}
	if strays > 0 {
		r.errorf(t, "%d requests of sessions on live targets carried X-Latch-Session-Moved", strays)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}
