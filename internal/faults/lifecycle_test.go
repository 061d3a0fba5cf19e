package faults

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Scenarios 9 and 10 of issue 9: latch itself reloaded, restarted and
// stopped under load. What latch promises: a reload drops no connection
// and no request; a restart keeps every session on its target (the cookie
// keys and generations live in state_dir); SIGTERM lets requests in flight
// finish, then latch exits 0.

func testReloadUnderLoad(t *testing.T, v variant, r *row) {
	r.fault = "SIGHUP with a changed config (a fourth target, a new idle timeout, a longer deregistration delay)"
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	d := startTarget(t, led, "d", modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	spec := standardLoad("reload")
	r.load = "3 targets, " + spec.String() + "; 500 requests after the reload"
	ld := startLoad(t, p, spec)
	ld.waitEstablished(t)
	ld.waitMore(t, 250)
	rs, _ := ld.results()
	at := time.Now()
	before := sessionTargets(rs, at)
	p.reload(t, latchOptions{targets: append(addrs(ts), d.addr), idle: "30",
		attrs: map[string]string{"deregistration_delay.timeout_seconds": "5"}})
	ld.waitMore(t, 500)
	ld.stop()
	led.sync(t, append(ts, d)...)
	rs, _ = ld.results()

	r.saw = summary(rs)
	changed := 0
	for _, x := range startedAfter(rs, at) {
		if x.ok() && x.backend != before[x.sess] {
			changed++
		}
	}
	movedHeader := len(led.requests(func(e entry) bool { return e.moved != "-" }))
	r.lost = fmt.Sprintf("nothing: %d requests failed; %d went to another target than their session's", len(failed(rs)), changed)
	if bad := failed(rs); len(bad) > 0 {
		r.errorf(t, "%d of %d requests failed across the reload (%s), want none", len(bad), len(rs), firstErrors(bad))
	}
	if changed > 0 || movedHeader > 0 {
		r.errorf(t, "%d requests after the reload left their session's target, %d carried X-Latch-Session-Moved; want none: every target stayed", changed, movedHeader)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

func testRestartUnderLoad(t *testing.T, v variant, r *row) {
	r.fault = "latch restarted under load: SIGTERM, then started again on the same address and state_dir"
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	spec := standardLoad("restart")
	r.load = "3 targets, " + spec.String() + "; 500 requests after the restart"
	ld := startLoad(t, p, spec)
	ld.waitEstablished(t)
	ld.waitMore(t, 250)
	rs, _ := ld.results()
	down := time.Now()
	before := sessionTargets(rs, down)
	gap := p.restart(t)
	up := time.Now()
	ld.waitMore(t, 500)
	ld.stop()
	led.sync(t, ts...)
	rs, _ = ld.results()

	r.saw = summary(rs)
	changed, refused := 0, 0
	var late []result
	for _, x := range rs {
		switch {
		case x.ok():
			if x.start.After(down) && x.backend != before[x.sess] {
				changed++
			}
		case x.status == 0 && x.start.After(down.Add(-time.Second)) && x.start.Before(up.Add(time.Second)):
			// Sent while latch was away (or on a connection it closed as
			// it stopped): nothing reached a target.
			refused++
		default:
			late = append(late, x)
		}
	}
	movedHeader := len(led.requests(func(e entry) bool { return e.moved != "-" }))
	r.lost = fmt.Sprintf("%d requests refused while latch was away (%.2f s); %d sessions moved", refused, gap.Seconds(), changed)
	if len(late) > 0 {
		r.errorf(t, "%d requests failed other than by finding latch away (%s), want none", len(late), firstErrors(late))
	}
	if changed > 0 || movedHeader > 0 {
		r.errorf(t, "%d requests after the restart left their session's target, %d carried X-Latch-Session-Moved; want none: the keys and generations outlive the process", changed, movedHeader)
	}
	// Every request that reached a target was answered.
	byID := map[string]result{}
	for _, x := range rs {
		byID[x.id] = x
	}
	for id := range led.byID() {
		if x, ok := byID[id]; ok && !x.ok() {
			r.errorf(t, "request %s reached a target but its client got %d %q", id, x.status, x.err)
		}
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

func testGracefulShutdown(t *testing.T, v variant, r *row) {
	const slow = 10
	r.fault = fmt.Sprintf("SIGTERM with %d slow requests in flight (the targets hold them 1.5 s)", slow)
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	spec := standardLoad("shutdown")
	r.load = fmt.Sprintf("3 targets, %s, and %d slow GETs", spec, slow)
	ld := startLoad(t, p, spec)
	ld.waitEstablished(t)
	ld.waitMore(t, 100)
	var cs []*http.Client
	for range slow {
		cs = append(cs, p.client())
	}
	var srs []result
	done := make(chan struct{})
	go func() {
		defer close(done)
		srs = all(cs, http.MethodGet, p.url+"/report", "slow", "*=1500")
	}()
	led.waitFor(t, 10*time.Second, "the slow requests at their targets", func(es []entry) bool {
		return countEntries(es, func(e entry) bool { return e.kind == "REQ" && strings.HasPrefix(e.id, "slow-") }) == slow
	})
	term := time.Now()
	p.stopped = true
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.stop(t)
	exited := time.Since(term)
	<-done
	ld.stop()
	led.sync(t, ts...)
	rs, _ := ld.results()

	byID := map[string]result{}
	for _, x := range append(rs, srs...) {
		byID[x.id] = x
	}
	lost := 0
	for id := range led.byID() {
		if x, ok := byID[id]; ok && !x.ok() {
			lost++
			r.errorf(t, "request %s reached a target but its client got %d %q", id, x.status, x.err)
		}
	}
	r.saw = fmt.Sprintf("slow: %s; load: %s (the failures sent after SIGTERM)", summary(srs), summary(rs))
	r.lost = fmt.Sprintf("%d of %d requests that reached a target; latch exited %d, %.1f s after SIGTERM", lost, len(led.byID()), code, exited.Seconds())
	if bad := failed(srs); len(bad) > 0 {
		r.errorf(t, "%d of %d slow requests in flight at SIGTERM failed (%s), want none", len(bad), slow, firstErrors(bad))
	}
	for _, x := range failed(rs) {
		// A request racing SIGTERM on a kept-alive connection may find it
		// closed; one sent well before must have been answered.
		if x.start.Before(term.Add(-time.Second)) || x.status != 0 {
			r.errorf(t, "%s got %d %q, want 200, or no connection once latch stopped taking requests", x.id, x.status, x.err)
			break
		}
	}
	if code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}
