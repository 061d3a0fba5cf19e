package target

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// record counts n answered requests on the group's first target.
func record(g *Group, n int) {
	tg := g.View().Targets[0]
	for range n {
		tg.Record(200)
	}
}

// ask asks the group's budget for n retries and returns how many it
// allowed; each allowed retry is a request too.
func ask(g *Group, n, percent, perSecond int) int {
	got := 0
	for range n {
		if g.AllowRetry(percent, perSecond) {
			got++
			record(g, 1)
		}
	}
	return got
}

// TestRetryBudgetBurst: a target that fails many requests at once has them
// all retried on the budget the group's traffic built up.
func TestRetryBudgetBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newGroup(t, settings(), "a", "b")
		for range 10 {
			record(g, 100) // 100 requests a second for 10 s
			time.Sleep(time.Second)
		}
		if got := ask(g, 150, 20, 0); got != 150 {
			t.Errorf("a burst of 150 failures after 1000 requests in 10 s: %d retried; want all (the budget is 200)", got)
		}
		if got := ask(g, 100, 20, 0); got != 50 {
			t.Errorf("100 more at once: %d retried; want the 50 left", got)
		}
	})
}

// TestRetryBudgetSteady: a group whose every request fails gets at most
// the budget's share of them retried, plus the floor per second; in a
// group of 2 targets (counts read on every retry) and of 100 (sampled once a
// second).
func TestRetryBudgetSteady(t *testing.T) {
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprint("t", i))
	}
	for _, c := range []struct{ percent, perSecond, wantMin, wantMax int }{
		{20, 0, 1900, 2000},   // 20% of 10,000 requests
		{20, 10, 2300, 2400},  // and 10 a second for 40 s
		{0, 10, 370, 400},     // the floor alone
		{100, 0, 9500, 10000}, // every one
	} {
		for _, ids := range [][]string{{"a", "b"}, many} {
			synctest.Test(t, func(t *testing.T) {
				g, _ := newGroup(t, settings(), ids...)
				granted := 0
				// 50 requests every 200 ms for 40 s: every one fails and
				// asks for a retry.
				for range 200 {
					record(g, 50)
					granted += ask(g, 50, c.percent, c.perSecond)
					time.Sleep(200 * time.Millisecond)
				}
				wantMin := c.wantMin
				if len(ids) > budgetExact {
					// A large group's count is its latest sample, up to a
					// second old: the share of that second's requests
					// comes late.
					wantMin = wantMin * 85 / 100
				}
				if granted < wantMin || granted > c.wantMax {
					t.Errorf("%d targets, %d%% and %d a second: %d retries of 10,000 failed requests; want %d-%d",
						len(ids), c.percent, c.perSecond, granted, wantMin, c.wantMax)
				}
			})
		}
	}
}

// TestRetryBudgetWindow: the budget counts the window's requests, sampled
// whether or not anything failed: after an hour at 10 a second, failures
// get 20% of the last 10 s, not of the hour; after an hour of nothing, a
// surge's requests count as they come.
func TestRetryBudgetWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newGroup(t, settings(), "a", "b")
		for range 3600 {
			record(g, 10)
			time.Sleep(time.Second)
		}
		if got := ask(g, 100, 20, 0); got < 17 || got > 21 {
			t.Errorf("failures after an hour at 10 a second: %d retried; want about 20 (20%% of the window's 100)", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		g, _ := newGroup(t, settings(), "a", "b")
		time.Sleep(time.Hour)
		for range 5 {
			record(g, 100)
			time.Sleep(time.Second)
		}
		if got := ask(g, 150, 20, 0); got != 100 {
			t.Errorf("failures after an hour of nothing and 5 s at 100 a second: %d retried; want 100 (20%% of 500)", got)
		}
	})
}

// BenchmarkAllowRetry is the budget's cost to a failed request.
func BenchmarkAllowRetry(b *testing.B) {
	g := NewGroup("web", settings(), discardLog())
	defer g.Close()
	g.Reconcile(cfgTargets("a", "b", "c"), settings(), (&seqGen{}).gen)
	record(g, 1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		g.AllowRetry(20, 10)
	}
}
