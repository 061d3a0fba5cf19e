package target

import (
	"sync"
	"time"
)

// The retry budget: retries of requests that reached their target may be at
// most a share of the group's requests over the last budgetWindow seconds,
// plus a floor per second, as Finagle's and Linkerd's retry budgets. A
// fleet that fails every request then takes at most that share more; a
// target that dies with many requests in flight has its idempotent ones
// retried at once, on the budget its traffic built up. (A cap on retries
// in flight as a share of requests in flight, Envoy's, refuses that burst:
// in latch's fault suite, 13 of the 17 GETs a resetting target failed at
// once went back to their clients as 502.)
//
// The group's requests are the sum of its targets' counts (Target.Record,
// RecordConnectFailure), read on the failure path (at most once a
// budgetTick in a group of more than budgetExact targets): the request
// path pays nothing for the budget.

// budgetWindow is the budget's window, budgetTick how often it reads the
// group's count of requests.
const (
	budgetWindow = 10 * time.Second
	budgetTick   = 100 * time.Millisecond
)

// budgetExact is the most targets a group may have for its budget to read
// their counts on every retry asked; beyond, once a tick.
const budgetExact = 64

// retryBudget is a group's budget state.
type retryBudget struct {
	mu      sync.Mutex
	granted uint64 // retries granted, ever
	// samples are the group's counts at the start of each tick a retry
	// was asked in (the oldest first), within the window and one before.
	samples []budgetSample
}

type budgetSample struct {
	tick     int64 // unix time in budgetTicks
	requests uint64
	retries  uint64
}

// AllowRetry reports whether a retry to the group's targets fits its
// budget: at most percent% of its requests over the last 10 s, plus
// perSecond for each second of them. A retry it allows counts against the
// budget from then on.
func (g *Group) AllowRetry(percent, perSecond int) bool {
	tick := time.Now().UnixNano() / int64(budgetTick)
	const window = int64(budgetWindow / budgetTick)
	b := &g.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	// The count now: read afresh in a small group, at most once a tick
	// in a large one.
	cur := budgetSample{tick: tick, retries: b.granted}
	last := &b.samples[len(b.samples)-1]
	switch v := g.View(); {
	case len(v.Targets)+len(v.Draining) <= budgetExact || last.tick < tick:
		cur.requests = g.requestCount()
	default:
		cur.requests = last.requests
	}
	if last.tick < tick {
		b.samples = append(b.samples, cur)
	}
	// Drop the samples the window has left behind, keeping one before it
	// as the baseline.
	for len(b.samples) > 2 && b.samples[1].tick <= tick-window {
		b.samples = b.samples[1:]
	}
	base := b.samples[0]
	// The requests since the baseline, retries aside (they are requests
	// to the targets too), as many ticks of them as the window holds: a
	// baseline older than the window counts its share of them.
	span := max(cur.tick-base.tick, 1)
	var requests float64
	if d, r := cur.requests-base.requests, cur.retries-base.retries; cur.requests > base.requests && d > r {
		requests = float64(d - r)
	}
	if span > window {
		requests *= float64(window) / float64(span)
	}
	seconds := float64(min(span, window)) * budgetTick.Seconds()
	allowed := requests*float64(percent)/100 + float64(perSecond)*max(seconds, 1)
	if float64(b.granted-base.retries) >= allowed {
		return false
	}
	b.granted++
	return true
}

// requestCount is the number of requests the group's targets have had,
// those deregistered included. It reads every target.
func (g *Group) requestCount() uint64 {
	v := g.View()
	n := g.removedRequests.Load()
	for _, t := range v.Targets {
		r, _, _ := t.Outcomes()
		n += r
	}
	for _, t := range v.Draining {
		r, _, _ := t.Outcomes()
		n += r
	}
	return n
}
