package target

import (
	"sync"
	"time"
)

// The retry budget: retries of requests that reached their target may be at
// most a share of the group's requests over the last budgetWindow, plus a
// floor per second, as Finagle's and Linkerd's retry budgets. A fleet that
// fails every request then takes at most that share more; a target that
// dies with many requests in flight has its idempotent ones retried at
// once, on the budget its traffic built up. (A cap on retries in flight as
// a share of requests in flight, Envoy's, refuses that burst: in latch's
// fault suite, a target that began resetting failed 14 GETs within 3 ms,
// and under that cap 13 went back to their clients as 502.)
//
// The group's requests are the sum of its targets' counts (Target.Record,
// RecordConnectFailure): the request path pays nothing for the budget. The
// group samples the sum every budgetSample while it has targets, so that
// the window holds its recent traffic whether or not anything failed; a
// retry asked reads the sum afresh in a group of up to budgetExact
// targets, and takes the latest sample in a larger one.

const (
	budgetWindow = 10 * time.Second
	budgetSample = time.Second
	// budgetExact is the most targets a group may have for its budget to
	// read their counts on every retry asked.
	budgetExact = 64
)

// retryBudget is a group's budget state.
type retryBudget struct {
	// mu guards the budget, and orders a sample with a target's removal
	// (remove moves its count to Group.removedRequests under it).
	mu      sync.Mutex
	granted uint64 // retries granted, ever
	// samples are the group's counts, the oldest first: those within the
	// window, and one before it as the baseline.
	samples []budgetCount
}

type budgetCount struct {
	at       time.Time
	requests uint64
	retries  uint64
}

// AllowRetry reports whether a retry to the group's targets fits its
// budget: at most percent% of its requests over the last 10 s, plus
// perSecond for each second of them. A retry it allows counts against the
// budget from then on.
func (g *Group) AllowRetry(percent, perSecond int) bool {
	now := time.Now()
	b := &g.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(now)
	base := b.samples[0]
	cur := budgetCount{at: now, retries: b.granted}
	if v := g.View(); len(v.Targets)+len(v.Draining) <= budgetExact {
		cur.requests = g.requestCount()
	} else {
		// The latest sample's requests, less the retries made by then.
		last := b.samples[len(b.samples)-1]
		cur.requests, cur.retries = last.requests, last.retries
	}
	// The requests since the baseline, retries aside (they are requests to
	// the targets too). The baseline is the last sample before the window,
	// so up to budgetSample more than it; one older still (the group had
	// no targets for a while) counts for the window's share of its span.
	var requests float64
	if d, r := cur.requests-base.requests, cur.retries-base.retries; cur.requests > base.requests && d > r {
		requests = float64(d - r)
	}
	span := now.Sub(base.at)
	if limit := budgetWindow + budgetSample; span > limit {
		requests *= float64(limit) / float64(span)
		span = limit
	}
	seconds := max(span.Seconds(), 1)
	allowed := requests*float64(percent)/100 + float64(perSecond)*seconds
	if float64(b.granted-base.retries) >= allowed {
		return false
	}
	b.granted++
	return true
}

// sampleBudget records the group's counts for its retry budget; the
// group's budget timer calls it every budgetSample. g.mu is held.
func (g *Group) sampleBudget() {
	now := time.Now()
	b := &g.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	b.samples = append(b.samples, budgetCount{at: now, requests: g.requestCount(), retries: b.granted})
	b.prune(now)
}

// prune drops the samples the window has left behind, keeping one before
// it as the baseline. b.mu is held.
func (b *retryBudget) prune(now time.Time) {
	i := 0
	for i+1 < len(b.samples) && !b.samples[i+1].at.After(now.Add(-budgetWindow)) {
		i++
	}
	if i > 0 {
		b.samples = append(b.samples[:0], b.samples[i:]...)
	}
}

// requestCount is the number of requests the group's targets have had,
// those removed included. It reads every target; the budget's mu is held.
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
