package dashboard

import (
	"math"
	"slices"
	"time"

	"github.com/latch-lb/latch/internal/metrics"
)

type key struct{ group, target string }

// sample is one target's totals at one tick; counts is its histogram,
// cumulative, by the sampler's bounds.
type sample struct {
	at               time.Time
	requests, errors uint64
	counts           []uint64
}

// sampler turns the metrics' totals, which only grow, into what a person
// watches: the rate of requests over the last tick, and response-time
// quantiles over the last window (from the histogram's growth in it). One
// stream owns it; it is not safe for concurrent use.
type sampler struct {
	totals  Totals
	bounds  []float64 // the histogram's upper bounds, in seconds, the last +Inf
	keep    int       // samples kept per target: the window's ticks, and one
	history map[key][]sample
	latest  map[key]rates
}

func newSampler(totals Totals, tick, window time.Duration) *sampler {
	keep := int(window/tick) + 1
	return &sampler{totals: totals, bounds: append(metrics.Buckets(), math.Inf(1)), keep: max(keep, 2),
		history: map[key][]sample{}}
}

// rates returns the figures of the latest sample, or nil with no totals.
func (s *sampler) rates() map[key]rates {
	if s.totals == nil {
		return nil
	}
	return s.latest
}

// sample reads the totals at now and works out every target's figures.
func (s *sampler) sample(now time.Time) {
	if s.totals == nil {
		return
	}
	seen := map[key]bool{}
	latest := map[key]rates{}
	for _, t := range s.totals.Targets() {
		k := key{t.Group, t.Target}
		seen[k] = true
		cur := sample{at: now, requests: t.Requests, errors: t.Errors, counts: cumulative(t.Buckets)}
		h := s.history[k]
		if len(h) > 0 && !follows(h[len(h)-1], cur) {
			// The totals started anew (the target registered again):
			// what was kept no longer subtracts.
			h = nil
		}
		h = append(h, cur)
		if len(h) > s.keep {
			h = slices.Delete(h, 0, len(h)-s.keep)
		}
		s.history[k] = h
		latest[k] = figures(h, s.bounds)
	}
	for k := range s.history {
		if !seen[k] {
			delete(s.history, k)
		}
	}
	s.latest = latest
}

// cumulative returns the running sums of buckets, which count each bucket
// on its own.
func cumulative(buckets []uint64) []uint64 {
	out := make([]uint64, len(buckets))
	var acc uint64
	for i, c := range buckets {
		acc += c
		out[i] = acc
	}
	return out
}

// follows reports whether cur can be the totals that came after prev: none
// went down.
func follows(prev, cur sample) bool {
	if cur.requests < prev.requests || cur.errors < prev.errors || len(prev.counts) != len(cur.counts) {
		return false
	}
	for i := range cur.counts {
		if cur.counts[i] < prev.counts[i] {
			return false
		}
	}
	return true
}

// figures works out a target's rates from its samples, oldest first.
func figures(h []sample, bounds []float64) rates {
	var r rates
	if len(h) < 2 {
		return r
	}
	prev, cur := h[len(h)-2], h[len(h)-1]
	if dt := cur.at.Sub(prev.at).Seconds(); dt > 0 {
		r.Rate = ptr(float64(cur.requests-prev.requests) / dt)
		r.ErrorRate = ptr(float64(cur.errors-prev.errors) / dt)
	}
	first := h[0]
	grew := make([]uint64, len(cur.counts))
	for i := range grew {
		grew[i] = cur.counts[i] - first.counts[i]
	}
	if p, ok := quantile(0.5, bounds, grew); ok {
		r.P50 = ptr(p * 1000)
	}
	if p, ok := quantile(0.99, bounds, grew); ok {
		r.P99 = ptr(p * 1000)
	}
	return r
}

func ptr(f float64) *float64 { return &f }

// quantile estimates the q-quantile of a cumulative histogram as
// Prometheus's histogram_quantile does: linearly within the bucket the
// rank falls in, from the bucket below's bound (0 for the first). A rank
// in the +Inf bucket gives the highest finite bound. ok is false when the
// histogram holds nothing.
func quantile(q float64, bounds []float64, counts []uint64) (v float64, ok bool) {
	if len(counts) == 0 || len(bounds) != len(counts) || counts[len(counts)-1] == 0 {
		return 0, false
	}
	total := counts[len(counts)-1]
	rank := q * float64(total)
	for i, c := range counts {
		if float64(c) < rank {
			continue
		}
		if math.IsInf(bounds[i], 1) {
			if i == 0 {
				return 0, false
			}
			return bounds[i-1], true
		}
		lower, below := 0.0, uint64(0)
		if i > 0 {
			lower, below = bounds[i-1], counts[i-1]
		}
		in := c - below
		if in == 0 {
			return bounds[i], true
		}
		return lower + (bounds[i]-lower)*(rank-float64(below))/float64(in), true
	}
	return bounds[len(bounds)-1], true
}
