package server

// Tests for README claims that no other test backed (the README audit's
// section B, items 4, 6, 7, 8, 9, 10 and 15).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// healthOf returns the health of the target id in lb's group web.
func healthOf(t *testing.T, lb *running, id string) TargetStatus {
	t.Helper()
	for _, h := range lb.Health("web") {
		if h.ID == id {
			return h
		}
	}
	t.Fatalf("no target %s in group web: %+v", id, lb.Health("web"))
	return TargetStatus{}
}

// sealFor seals a live session of group web naming id, as latch would,
// with the group tag of like, a cookie latch issued.
func sealFor(t *testing.T, lb *running, like, id string) string {
	t.Helper()
	now := time.Now().Unix()
	return testRing(t).Encode(sticky.Session{Group: decode(t, like).Group, Target: id,
		Generation: healthOf(t, lb, id).Generation, Issued: now, LastSeen: now})
}

// rawConn is one client connection to latch, for tests that must know
// that requests share it.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialLB(t *testing.T, lb *running) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, br: bufio.NewReader(c)}
}

// send writes s on the connection.
func (rc *rawConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		t.Fatalf("writing %q: %v", s, err)
	}
}

// response reads the next response (an interim one too) with its body,
// waiting at most 5 s.
func (rc *rawConn) response(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a response's body: %v", err)
	}
	return resp, string(body)
}

// TestInitialTargetKeepsItsSessions: a target still initial (its health
// check hangs, so no probe has passed yet) keeps the sessions stuck to
// it, with no X-Latch-Session-Moved, while new sessions go only to the
// healthy targets (README, "Sticky sessions": "A target that is still
// initial ... keeps its sessions ...; only new sessions wait for its first
// passed check").
func TestInitialTargetKeepsItsSessions(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	// c's health check hangs until the probe gives up: each probe fails
	// with Target.Timeout, and with 10 failures needed to turn unhealthy
	// c stays initial for at least 0.4 + 9 x 0.5 s, far longer than the
	// test; a and b pass their first probe within 0.5 s.
	c.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hc" {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		io.WriteString(w, "c")
	})
	lb := startLB(t, lbConfig{targets: []string{a.addr, b.addr, c.addr}, sticky: true, health: `      path: /hc
      interval_seconds: 0.5
      timeout_seconds: 0.4
      healthy_threshold_count: 2
      unhealthy_threshold_count: 10
`})
	lb.waitFor(t, 3*time.Second, "a and b healthy", func() bool { return healthyCount(lb, "web") == 2 })
	initial := func() {
		t.Helper()
		if h := healthOf(t, lb, c.addr); h.State != target.Initial {
			t.Fatalf("the test needs c initial; it is %s %s %q", h.State, h.Reason, h.Description)
		}
	}
	initial()

	// A session stuck to c (as after a restart of latch) stays on c.
	cookie := sealFor(t, lb, get(t, lb.url+"/", "").cookie, c.addr)
	for i := range 5 {
		r := get(t, lb.url+"/", "AWSALB="+cookie)
		if r.status != 200 || r.backend != "c" || r.moved != "" {
			t.Fatalf("request %d of a session on the initial target: %d from %q (moved %q); want 200 from c, not moved",
				i, r.status, r.backend, r.moved)
		}
		if r.cookie == "" || decode(t, r.cookie).Target != c.addr {
			t.Fatalf("request %d: the re-issued cookie %q does not name c", i, r.cookie)
		}
		cookie = r.cookie
	}

	// New sessions wait for c's first passed check.
	seen := map[string]int{}
	for range 20 {
		r := get(t, lb.url+"/", "")
		if r.status != 200 {
			t.Fatalf("a new session: %d %q", r.status, r.body)
		}
		seen[r.backend]++
	}
	if seen["c"] != 0 || seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("20 new sessions went %v; want a and b only", seen)
	}
	initial()
}

// upgradeTarget answers every request with a 101 and then, on the
// tunnel, does what the request's path says:
//
//	/silent        nothing;
//	/client-talks  reads lines, and answers "bye" to "done";
//	/target-talks  sends "tick" every 50 ms for 1 s, then "end", then reads.
//
// Whatever it does, it then reads until the tunnel ends, and reports when
// on closed (unless closed is full: the handler must never block).
func upgradeTarget(t *testing.T, closed chan<- time.Time) string {
	ended := func() {
		select {
		case closed <- time.Now():
		default:
		}
	}
	return rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		switch req.URL.Path {
		case "/client-talks":
			for line := ""; line != "done\n"; {
				if line, err = br.ReadString('\n'); err != nil {
					ended()
					return
				}
			}
			io.WriteString(c, "bye\n")
		case "/target-talks":
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				time.Sleep(50 * time.Millisecond)
				if _, err := io.WriteString(c, "tick\n"); err != nil {
					break
				}
			}
			io.WriteString(c, "end\n")
		}
		io.Copy(io.Discard, br)
		ended()
	})
}

// TestTunnelIdleTimeout: an upgraded connection (a WebSocket) ends when
// both sides stay silent for the listener's idle timeout, and stays open
// as long as either side sends (README, "Listeners" and "Protocols":
// "tunnelled both ways until either side closes or both stay silent for
// the idle timeout").
func TestTunnelIdleTimeout(t *testing.T) {
	// Ten times the 50 ms between the lines a talking side sends: a busy
	// machine (the race detector, the other tests) may hold a goroutine
	// back for a good part of 200 ms.
	const idle = 500 * time.Millisecond
	closed := make(chan time.Time, 4)
	lb := startLB(t, lbConfig{targets: []string{upgradeTarget(t, closed)},
		listenAttrs: map[string]string{"idle_timeout.timeout_seconds": "0.5"}})

	// open upgrades a new connection to latch on path.
	open := func(t *testing.T, path string) *rawConn {
		rc := dialLB(t, lb)
		rc.send(t, "GET "+path+" HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v, %v; want a 101", resp, err)
		}
		return rc
	}
	// closesWithin expects both ends of rc's tunnel to close between about
	// the idle timeout (less latch's 1/16) after since and a bound above.
	closesWithin := func(t *testing.T, rc *rawConn, since time.Time) {
		t.Helper()
		rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := rc.br.Read(make([]byte, 1))
		elapsed := time.Since(since)
		var ne net.Error
		if n > 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("after %v of silence the client read %d bytes, %v; want the tunnel closed", elapsed, n, err)
		}
		if elapsed < idle*15/16-20*time.Millisecond || elapsed > idle+400*time.Millisecond {
			t.Errorf("the client's side closed after %v of silence; want about %v", elapsed, idle)
		}
		select {
		case at := <-closed:
			if d := at.Sub(since); d > idle+400*time.Millisecond {
				t.Errorf("the target's side closed after %v of silence; want about %v", d, idle)
			}
		case <-time.After(time.Second):
			t.Errorf("the target's side of the tunnel is still open %v after both sides went silent", time.Since(since))
		}
	}

	t.Run("silent", func(t *testing.T) {
		rc := open(t, "/silent")
		closesWithin(t, rc, time.Now())
	})

	t.Run("client sends", func(t *testing.T) {
		rc := open(t, "/client-talks")
		// A line every 50 ms for 1 s, two idle timeouts: the target
		// answers none of them.
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
			rc.send(t, "ping\n")
		}
		rc.send(t, "done\n")
		rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if line, err := rc.br.ReadString('\n'); line != "bye\n" {
			t.Fatalf("after 1 s of the client sending alone, the target's answer: %q, %v; want bye (the tunnel open)", line, err)
		}
		closesWithin(t, rc, time.Now())
	})

	t.Run("target sends", func(t *testing.T) {
		rc := open(t, "/target-talks")
		rc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		ticks := 0
		for {
			line, err := rc.br.ReadString('\n')
			if err != nil {
				t.Fatalf("after %d ticks from the target: %v; want the tunnel open while the target sends", ticks, err)
			}
			if line == "end\n" {
				break
			}
			ticks++
		}
		if ticks < 10 {
			t.Errorf("the target sent %d ticks in 1 s, want about 20", ticks)
		}
		closesWithin(t, rc, time.Now())
	})
}

// TestTargetByHostName: a target named by a host name (localhost:port)
// is health-checked, serves requests and keeps its sticky sessions
// (README, "Configuration": "host:port latch connects to"; "Architecture":
// "a target named by a host name").
func TestTargetByHostName(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	byName := func(addr string) string { return "localhost:" + addr[strings.LastIndexByte(addr, ':')+1:] }
	id := map[string]string{"a": byName(a.addr), "b": byName(b.addr)}
	ids := []string{id["a"], id["b"]}
	lb := startLB(t, lbConfig{targets: ids, sticky: true, health: fastHealth})
	lb.waitFor(t, 3*time.Second, "both targets healthy", func() bool { return healthyCount(lb, "web") == 2 })
	for _, id := range ids {
		if h := healthOf(t, lb, id); h.State != target.Healthy {
			t.Errorf("%s: %s, want healthy", id, h.State)
		}
	}
	sessions := map[string]string{}
	for range 6 {
		r := get(t, lb.url+"/", "")
		if r.status != 200 || r.cookie == "" {
			t.Fatalf("a new session: %d %q from %q, cookie %q", r.status, r.body, r.backend, r.cookie)
		}
		sessions[r.backend] = r.cookie
	}
	if len(sessions) != 2 {
		t.Fatalf("6 new sessions went to %v; want both targets", sessions)
	}
	for name, cookie := range sessions {
		if got := decode(t, cookie).Target; got != id[name] {
			t.Errorf("the cookie of a session on %s names %q, want %q", name, got, id[name])
		}
		for i := range 5 {
			r := get(t, lb.url+"/", "AWSALB="+cookie)
			if r.status != 200 || r.backend != name || r.moved != "" {
				t.Fatalf("request %d of a session on %s: %d from %q (moved %q)", i, name, r.status, r.backend, r.moved)
			}
			cookie = r.cookie
		}
	}
}

// TestConnectTimeoutRetriedElsewhere: a connect that times out (the
// request never sent) is retried once on another target, and a session
// stuck to the silent target is re-stuck to the other in the same
// response, which carries X-Latch-Session-Moved (README, "Health checks,
// failover and deregistration": "Connect failures (refused or timed out
// ...) are retried once on another target").
func TestConnectTimeoutRetriedElsewhere(t *testing.T) {
	live := startBackend(t, "live")
	silent := unresponsivePort(t)
	// Passive health checking would eject the silent target after its
	// third failure, and the session below would move without a try.
	lb := startLB(t, lbConfig{targets: []string{silent, live.addr}, sticky: true,
		attrs: map[string]string{"target_connect.timeout_seconds": "0.2", "passive_health.enabled": "false"}})

	// New sessions, by round robin: some first try the silent target.
	var cookie string
	timedOut := 0
	for i := range 4 {
		start := time.Now()
		r := get(t, lb.url+"/", "")
		d := time.Since(start)
		if r.status != 200 || r.backend != "live" {
			t.Fatalf("new session %d: %d %q from %q after %v; want 200 from live", i, r.status, r.body, r.backend, d)
		}
		if d >= 150*time.Millisecond {
			timedOut++
		}
		cookie = r.cookie
	}
	if timedOut == 0 {
		t.Errorf("none of 4 new sessions waited for the connect timeout: round robin never tried the silent target")
	}

	// A session on the silent target.
	start := time.Now()
	r := get(t, lb.url+"/", "AWSALB="+sealFor(t, lb, cookie, silent))
	d := time.Since(start)
	if r.status != 200 || r.backend != "live" || r.moved != silent {
		t.Fatalf("a session on the silent target: %d %q from %q (moved %q); want 200 from live, moved from %s",
			r.status, r.body, r.backend, r.moved, silent)
	}
	if d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("the retried request took %v; want the 200ms connect timeout and then the retry", d)
	}
	if r.cookie == "" || decode(t, r.cookie).Target != live.addr {
		t.Errorf("the retried session was not re-stuck to live in the same response (cookie %q)", r.cookie)
	}
}

// TestHashRetriesOnTheKeysNextChoice: under hash affinity, a request
// whose key's target refuses connections goes to the key's next choice,
// the same one for every request with that key, and keys of the other
// targets do not move (README, "Source-IP and hash affinity": "A refused
// connection retries on the key's next choice").
func TestHashRetriesOnTheKeysNextChoice(t *testing.T) {
	_, addrs := threeBackends(t)
	d := startBackend(t, "d")
	lb := startLB(t, lbConfig{targets: append(addrs, d.addr), sticky: true,
		// Passive health checking would eject d after three refusals and
		// rebuild the table without it, and a Maglev table rebuilt moves a
		// few keys of the other targets too (balance/hash.go): off here,
		// d stays in the table and only the retries are at work.
		attrs: map[string]string{"stickiness.type": "hash", "stickiness.hash.header": "X-User", "passive_health.enabled": "false"}})
	of := func(user string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", lb.url+"/", nil)
		req.Header.Set("X-User", user)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", user, resp.StatusCode)
		}
		return resp.Header.Get("X-Backend")
	}
	const keys = 120
	before := map[string]string{}
	onD := 0
	for i := range keys {
		u := fmt.Sprintf("user-%d", i)
		if before[u] = of(u); before[u] == "d" {
			onD++
		}
	}
	if onD < 10 {
		t.Fatalf("only %d of %d keys map to d; the test needs some", onD, keys)
	}

	d.srv.Close() // d now refuses connections (health checks are off)
	next := map[string]int{}
	for i := range keys {
		u := fmt.Sprintf("user-%d", i)
		first := of(u)
		for range 2 {
			if again := of(u); again != first {
				t.Fatalf("%s went to %s, then %s: not one next choice", u, first, again)
			}
		}
		switch {
		case before[u] != "d" && first != before[u]:
			t.Errorf("%s moved from %s to %s, though its target is live", u, before[u], first)
		case before[u] == "d" && first == "d":
			t.Errorf("%s was answered by d, which is closed", u)
		case before[u] == "d":
			next[first]++
		}
	}
	t.Logf("the %d keys of the refusing target went to %v", onD, next)
}

// TestRebalancedSessionIsMarkedMoved: with
// stickiness.rebalance_idle_seconds, a session that moves to a target that
// joined while it was idle carries X-Latch-Session-Moved naming its old
// target, on that request only; the sessions that stay carry none
// (README, "Bounded load for sticky sessions": "The moved session's
// request carries X-Latch-Session-Moved").
func TestRebalancedSessionIsMarkedMoved(t *testing.T) {
	bs, addrs := threeBackends(t)
	d := startBackend(t, "d")
	c := lbConfig{targets: addrs, sticky: true, health: fastHealth,
		attrs: map[string]string{"stickiness.rebalance_idle_seconds": "1"}}
	lb := startLB(t, c)
	lb.waitFor(t, 3*time.Second, "3 healthy", func() bool { return healthyCount(lb, "web") == 3 })
	name := map[string]string{}
	for _, b := range append(bs, d) {
		name[b.addr] = b.name
	}
	var cookies []string
	for range 40 {
		cookies = append(cookies, get(t, lb.url+"/", "").cookie)
	}
	// A session's times are whole seconds: a target joins while it idles
	// only if it turns healthy after the second of its last request.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	c.targets = append(addrs, d.addr)
	lb.reload(t, c)
	lb.waitFor(t, 3*time.Second, "4 healthy", func() bool { return healthyCount(lb, "web") == 4 })
	time.Sleep(1200 * time.Millisecond) // every session idle past 1 s

	moved := 0
	for i, ck := range cookies {
		was := decode(t, ck).Target
		r := get(t, lb.url+"/", "AWSALB="+ck)
		switch {
		case r.status != 200:
			t.Fatalf("session %d: %d %q", i, r.status, r.body)
		case r.backend == "d":
			moved++
			if r.moved != was {
				t.Errorf("session %d, rebalanced from %s to d: the target saw X-Latch-Session-Moved %q, want %q",
					i, name[was], r.moved, was)
			}
			if again := get(t, lb.url+"/", "AWSALB="+r.cookie); again.backend != "d" || again.moved != "" {
				t.Errorf("session %d after its move: served by %s with moved %q; want d, no moved header",
					i, again.backend, again.moved)
			}
		case r.backend != name[was] || r.moved != "":
			t.Errorf("session %d of %s went to %s with moved %q; want it kept, or rebalanced to d",
				i, name[was], r.backend, r.moved)
		}
	}
	// Each session moves with d's share of the weight, a quarter: none of
	// 40 moving has odds of 1 in 100,000.
	if moved == 0 {
		t.Fatal("no session of 40 was rebalanced to d")
	}
	t.Logf("%d of 40 sessions rebalanced to d", moved)
}

// TestReloadReachesKeptAliveConnection: on an HTTP/1.1 connection kept
// alive across a reload, the next request sees the new config: a rule
// added by the reload answers it, and one removed no longer does (README,
// "Running latch": "the next request on every kept-alive connection sees
// the new config").
func TestReloadReachesKeptAliveConnection(t *testing.T) {
	web := startBackend(t, "web")
	yaml := func(rules string) string {
		return "listeners:\n  - name: front\n    address: 127.0.0.1:0\n" + rules +
			"    default_action: { type: forward, forward: { target_group: web } }\ntarget_groups:\n" +
			groupYAML("web", false, web.addr)
	}
	const ping = `    rules:
      - priority: 1
        conditions: [ { path_pattern: ["/ping"] } ]
        action:
          type: fixed-response
          fixed_response: { status_code: "200", content_type: text/plain, message_body: "pong" }
`
	lb := startLBYAML(t, yaml(""))
	rc := dialLB(t, lb)
	exchange := func(step string) (from, body string) {
		t.Helper()
		rc.send(t, "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, body := rc.response(t, "GET")
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("%s: %d %q, close %v; want 200 on a kept-alive connection", step, resp.StatusCode, body, resp.Close)
		}
		return resp.Header.Get("X-Backend"), body
	}
	if from, body := exchange("before the reload"); from != "web" || body != "web" {
		t.Fatalf("before the reload: %q from %q, want the target's answer", body, from)
	}
	lb.reloadYAML(t, yaml(ping))
	if from, body := exchange("after adding the rule"); from != "" || body != "pong" {
		t.Errorf("after adding the rule, the same connection got %q from %q; want the rule's pong", body, from)
	}
	lb.reloadYAML(t, yaml(""))
	if from, body := exchange("after removing the rule"); from != "web" || body != "web" {
		t.Errorf("after removing the rule, the same connection got %q from %q; want the target's answer", body, from)
	}
}

// TestExpectContinueAnsweredByLatch: latch answers Expect: 100-continue
// itself once the target is connected, and never forwards Expect; when
// the target refuses the connection, the client gets a 502 and no 100
// (README, "Protocols": "Expect: 100-continue is answered by latch once
// the target is connected").
func TestExpectContinueAnsweredByLatch(t *testing.T) {
	const head = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
	t.Run("connected", func(t *testing.T) {
		b := startBackend(t, "a")
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got %s", body)
		})
		lb := startLB(t, lbConfig{targets: []string{b.addr}})
		rc := dialLB(t, lb)
		rc.send(t, head)
		if resp, _ := rc.response(t, "POST"); resp.StatusCode != 100 {
			t.Fatalf("to the head alone latch answered %d, want 100", resp.StatusCode)
		}
		rc.send(t, "hello")
		resp, body := rc.response(t, "POST")
		if resp.StatusCode != 200 || body != "got hello" {
			t.Fatalf("after the body: %d %q, want 200 \"got hello\"", resp.StatusCode, body)
		}
		if v, ok := b.lastRequest().Header["Expect"]; ok {
			t.Errorf("the target saw Expect: %q", v)
		}
	})
	t.Run("refused", func(t *testing.T) {
		lb := startLB(t, lbConfig{targets: []string{closedPort(t)}})
		rc := dialLB(t, lb)
		rc.send(t, head)
		resp, body := rc.response(t, "POST")
		if resp.StatusCode != 502 || !strings.Contains(body, "refused the connection") {
			t.Errorf("with the target refusing, latch answered %d %q to the head; want 502 and no 100", resp.StatusCode, body)
		}
	})
}

// lastHealthy returns when the last of group web's targets turned healthy.
func lastHealthy(lb *running) time.Time {
	var last time.Time
	for _, h := range lb.Health("web") {
		if h.Since.After(last) {
			last = h.Since
		}
	}
	return last
}

// TestRebalanceNeedsAJoinedTarget: with stickiness.rebalance_idle_seconds
// and no target joining the group, no idle session moves, whenever it
// began (README, "Bounded load for sticky sessions": "a session idle that
// long may move to a target that joined the group (turned healthy) while
// it was idle ...; the others stay"). The sessions here begin in the
// second their targets turned healthy, after they did.
func TestRebalanceNeedsAJoinedTarget(t *testing.T) {
	_, addrs := threeBackends(t)
	// Start just after a second begins, so that the targets turn healthy
	// and the sessions begin within it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	lb := startLB(t, lbConfig{targets: addrs, sticky: true, health: fastHealth,
		attrs: map[string]string{"stickiness.rebalance_idle_seconds": "1"}})
	lb.waitFor(t, 3*time.Second, "3 healthy", func() bool { return healthyCount(lb, "web") == 3 })
	var cookies []string
	for range 30 {
		cookies = append(cookies, get(t, lb.url+"/", "").cookie)
	}
	healthy := lastHealthy(lb).Unix()
	if seen := decode(t, cookies[len(cookies)-1]).LastSeen; seen != healthy {
		t.Skipf("the sessions began at %d, not in the second the targets turned healthy (%d): the case is not set up", seen, healthy)
	}
	time.Sleep(1200 * time.Millisecond) // every session idle past 1 s
	for i, ck := range cookies {
		was := decode(t, ck).Target
		if r := get(t, lb.url+"/", "AWSALB="+ck); r.status != 200 || r.moved != "" || decode(t, r.cookie).Target != was {
			t.Errorf("session %d of %s, with no target joined: %d, moved %q, re-stuck to %s; want it kept",
				i, was, r.status, r.moved, decode(t, r.cookie).Target)
		}
	}
}

// TestRestartDoesNotRebalance: the targets latch starts with do not count
// as joining their group, so a restart of latch with
// stickiness.rebalance_idle_seconds moves no idle session (README: a
// restart "moves none"), though every target turns healthy after the
// sessions were last seen.
func TestRestartDoesNotRebalance(t *testing.T) {
	bs, addrs := threeBackends(t)
	name := map[string]string{}
	for _, b := range bs {
		name[b.addr] = b.name
	}
	c := lbConfig{targets: addrs, sticky: true, health: fastHealth, stateDir: t.TempDir(),
		attrs: map[string]string{"stickiness.rebalance_idle_seconds": "1"}}
	first := startLB(t, c)
	first.waitFor(t, 3*time.Second, "3 healthy", func() bool { return healthyCount(first, "web") == 3 })
	var cookies []string
	for range 30 {
		cookies = append(cookies, get(t, first.url+"/", "").cookie)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	first.Shutdown(ctx)
	cancel()

	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	second := startLB(t, c)
	second.waitFor(t, 3*time.Second, "3 healthy again", func() bool { return healthyCount(second, "web") == 3 })
	time.Sleep(1200 * time.Millisecond) // every session idle past 1 s
	for i, ck := range cookies {
		was := name[decode(t, ck).Target]
		if r := get(t, second.url+"/", "AWSALB="+ck); r.status != 200 || r.backend != was || r.moved != "" {
			t.Errorf("session %d of %s after the restart: %d from %s, moved %q; want it kept", i, was, r.status, r.backend, r.moved)
		}
	}
}
