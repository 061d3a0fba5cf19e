package faults

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Scenarios 1-4 and 15 of issue 9: targets that fail their real requests
// while their health checks pass. What latch promises: a target that fails
// passive_health.consecutive_failures (3) requests in a row is ejected
// (unhealthy, Target.PassiveFailures) and its sessions move, within a few
// failed requests rather than health-check intervals; an idempotent
// request that failed before any response byte came back goes once to
// another target; never more than passive_health.max_ejected_percent (50)
// of a group's targets out; retries capped by the retry budget.

func testBigResponseHead(t *testing.T, v variant, r *row) {
	badTarget(t, v, r, modeBigHead, "a target's response heads grow past 32 KiB (40 Set-Cookie fields) on its routes; /healthz stays small")
}

func testResetOnRoutes(t *testing.T, v variant, r *row) {
	badTarget(t, v, r, modeReset, "a target resets connections on its routes; /healthz passes")
}

func testGarbageOnRoutes(t *testing.T, v variant, r *row) {
	badTarget(t, v, r, modeGarbage, "a target answers garbage (not HTTP) on its routes; /healthz passes")
}

func testHangOnRoutes(t *testing.T, v variant, r *row) {
	badTarget(t, v, r, modeHang, "a target hangs on its routes (idle timeout 2 s); /healthz passes")
}

// badTarget runs the standard load on three targets until every session
// is stuck, turns one target's fault on, and keeps the load on for about
// 3 s (750 more requests).
func badTarget(t *testing.T, v variant, r *row, mode, fault string) {
	r.fault = fault
	led := newLedger()
	ts := startTargets(t, led, 3, mode)
	victim := ts[0]
	o := latchOptions{targets: addrs(ts)}
	if mode == modeHang {
		// Short, and long enough that no healthy target's answer takes
		// that long on a busy machine.
		o.idle = "2"
	}
	p := startLatch(t, r, v, o)
	spec := standardLoad(mode)
	r.load = "3 targets, " + spec.String() + "; 750 requests after the fault"
	if mode == modeHang {
		r.load = "3 targets, " + spec.String() + "; 1500 requests after the fault"
	}
	ld := startLoad(t, p, spec)
	ld.waitEstablished(t)
	ld.waitMore(t, 100)
	rs, _ := ld.results()
	at := time.Now()
	stuck := sessionsOn(rs, at, victim.name)
	victim.fault(t)
	if mode == modeHang {
		// A session whose 504 came just before the ejection may wait out
		// a second idle timeout before it moves: time for both.
		ld.waitMore(t, 1500)
	} else {
		ld.waitMore(t, 750)
	}
	ld.stop()
	led.sync(t, ts...)
	rs, _ = ld.results()
	after := startedAfter(rs, at)

	faulty := led.requests(func(e entry) bool { return e.target == victim.name && e.faulty })
	bad := failed(after)
	r.saw = summary(after) + " after the fault"
	moved, strays := sessionsMoved(led, rs, at, stuck, victim)
	ejected := p.passiveEjections(victim.addr)
	r.lost = fmt.Sprintf("the target got %d requests after its fault; ejected %d× (Target.PassiveFailures); %d of its %d sessions moved with X-Latch-Session-Moved",
		len(faulty), ejected, moved, len(stuck))

	if len(stuck) == 0 {
		r.fatalf(t, "no session was stuck to the faulty target")
	}
	if mode == modeHang {
		// Not retried by default (retry.on_timeout.enabled is false): a 504
		// for each request the target held when its fault came on, one a
		// session at most, and none once it is out.
		for _, f := range bad {
			if f.status != http.StatusGatewayTimeout {
				r.errorf(t, "%s got %d %q, want 200, or 504 for a request the hung target held", f.id, f.status, f.err)
				break
			}
		}
		if len(bad) > len(stuck)+3 {
			r.errorf(t, "%d requests after the fault got 504, want at most %d (one for each of the %d sessions on the hung target, and 3)", len(bad), len(stuck)+3, len(stuck))
		}
		if len(faulty) > len(stuck)+3 {
			r.errorf(t, "the hung target got %d requests after its fault, want at most %d: out after 3 timeouts in a row", len(faulty), len(stuck)+3)
		}
	} else {
		// Each goes once more to another target, on the retry budget
		// the traffic before the fault built up (20% of the last 10 s).
		if len(bad) > 0 {
			r.errorf(t, "%d of %d GETs after the fault failed (%s), want none: a GET that failed before any response byte goes to another target",
				len(bad), len(after), firstErrors(bad))
		}
		if len(faulty) > 10 {
			r.errorf(t, "the faulty target got %d requests after its fault, want at most 10: out of rotation after 3 failures in a row", len(faulty))
		}
	}
	if ejected == 0 {
		r.errorf(t, "latch did not log target %s unhealthy with reason Target.PassiveFailures; its transitions: %v", victim.addr, p.transitions(victim.addr))
	}
	if moved < len(stuck) {
		r.errorf(t, "%d of the %d sessions on the faulty target moved with X-Latch-Session-Moved: %s, want all", moved, len(stuck), victim.addr)
	}
	if strays > 0 {
		r.errorf(t, "%d requests of sessions on healthy targets carried X-Latch-Session-Moved", strays)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

// sessionsMoved counts the sessions of stuck (on victim at at) that moved
// after at: a later request reached another target with
// X-Latch-Session-Moved naming the victim, and the session's 200s after
// that came from one target. strays counts the requests of other sessions
// that carried the header.
func sessionsMoved(led *ledger, rs []result, at time.Time, stuck []int, victim *targetProc) (moved, strays int) {
	onVictim := map[int]bool{}
	for _, s := range stuck {
		onVictim[s] = true
	}
	sessOf := map[string]int{}
	for _, x := range rs {
		sessOf[x.id] = x.sess
	}
	movedTo := map[int]string{}
	for _, e := range led.requests(func(e entry) bool { return e.moved != "-" }) {
		s, ok := sessOf[e.id]
		switch {
		case !ok:
		case !onVictim[s]:
			strays++
		case e.moved == victim.addr && e.target != victim.name:
			if _, seen := movedTo[s]; !seen {
				movedTo[s] = e.target
			}
		}
	}
	for _, s := range stuck {
		to, ok := movedTo[s]
		if !ok {
			continue
		}
		held := true
		for _, x := range startedAfter(rs, at) {
			// A session that moves once stays where it moved (the victim's
			// own 200s came before its fault or death).
			if x.sess == s && x.ok() && x.backend != to && x.backend != victim.name {
				held = false
			}
		}
		if held {
			moved++
		}
	}
	return moved, strays
}

func testFleetResets(t *testing.T, v variant, r *row) {
	r.fault = "every target resets its real requests after 200 ms; /healthz passes"
	fleet(t, v, r, modeReset, nil)
}

func testFleet5xx(t *testing.T, v variant, r *row) {
	r.fault = "every target answers 500 on its routes (passive_health.target_5xx.enabled); /healthz passes"
	fleet(t, v, r, mode5xx, map[string]string{"passive_health.target_5xx.enabled": "true"})
}

// fleet runs the standard load for 4 s on three targets that all fail.
func fleet(t *testing.T, v variant, r *row, mode string, attrs map[string]string) {
	led := newLedger()
	env := []string{"LATCH_FAULT_NOW=1"}
	if mode == modeReset {
		// Failures that take as long as answers, so that requests are in
		// flight together and the retry budget's share has something to
		// bite on.
		env = append(env, "LATCH_FAULT_HOLD=200ms")
	}
	ts := startTargets(t, led, 3, mode, env...)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts), attrs: attrs})
	spec := standardLoad("fleet-" + mode)
	spec.limit = 4 * time.Second
	r.load = "3 targets, " + spec.String() + ", 4 s"
	ld := startLoad(t, p, spec)
	ld.wait()
	led.sync(t, ts...)
	rs, _ := ld.results()

	r.saw = summary(rs)
	var ejected []string
	for _, tp := range ts {
		if p.passiveEjections(tp.addr) > 0 {
			ejected = append(ejected, tp.name)
		}
	}
	received := len(led.requests(nil))
	retried := 0
	for _, es := range led.byID() {
		if len(es) > 1 {
			retried += len(es) - 1
		}
	}
	r.lost = fmt.Sprintf("targets ejected: %d of 3 (max_ejected_percent 50); targets received %d for %d client requests (%d retries)",
		len(ejected), received, len(rs), retried)

	want := http.StatusBadGateway
	if mode == mode5xx {
		want = http.StatusInternalServerError
	}
	for _, x := range rs {
		if x.status != want {
			r.errorf(t, "%s got %d %q, want %d: latch answers every request, the targets' failures its only cause", x.id, x.status, x.err, want)
			break
		}
	}
	if len(ejected) != 1 {
		r.errorf(t, "%d targets ejected for passive failures (%s), want 1: at most 50%% of 3, and at least one of a group of two or more",
			len(ejected), strings.Join(ejected, ", "))
	}
	if mode == mode5xx && retried > 0 {
		r.errorf(t, "%d requests reached a second target, want none: a target's own 500 is an answer, never retried", retried)
	}
	// The budget lets retries be 20% of the group's requests over the
	// last 10 s, plus 10 a second (retry.budget.min_per_second) for as
	// many seconds of the window as latch has run: N/5, and 100 at most.
	// Without a budget, every GET would go twice.
	if limit := len(rs)/5 + 100; retried > limit {
		r.errorf(t, "%d retries for %d client requests, want at most %d: retry.budget.percent 20 of the requests, and 10 a second", retried, len(rs), limit)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}
