// Package balance implements the balancing algorithms that pick a target
// for a request that no session pins: round_robin (weighted),
// least_outstanding_requests and weighted_random, and, for source_ip and
// hash stickiness, consistent hashing (Hash, in hash.go).
//
// A picker is built once per group snapshot (on registration and health
// changes, and every few seconds while slow start or anomaly mitigation
// moves a weight) and then picks without locks, in time that does not grow
// with the number of targets (weighted_random: log n). The algorithms'
// weights are the targets' effective weights
// (target.Target.EffectiveWeight), in units of 1/64 of a configured weight;
// Hash's are the configured weights, so a group keeps its Hash when only
// effective weights move (target.Settings.WeightBlind).
package balance

import (
	"container/heap"
	"math/rand/v2"
	"sort"
	"sync/atomic"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/target"
)

// New returns the picker of algorithm over targets, which must not be
// empty. An algorithm out of range (config.Validate refuses them) is round
// robin, ALB's default.
func New(algorithm config.Algorithm, targets []*target.Target) target.Picker {
	switch algorithm {
	case config.LeastOutstandingRequests:
		return &LeastOutstanding{targets: targets}
	case config.WeightedRandom:
		return NewWeightedRandom(targets)
	}
	return NewRoundRobin(targets)
}

var (
	_ target.Picker = (*RoundRobin)(nil)
	_ target.Picker = (*LeastOutstanding)(nil)
	_ target.Picker = (*WeightedRandom)(nil)
)

// RoundRobin cycles through the targets, each appearing in proportion to
// its effective weight, spread out rather than in runs (a weight-3 target
// gets every third or so request, not three in a row).
type RoundRobin struct {
	targets []*target.Target
	seq     []int32 // order of picks by index; nil when all weights are equal
	next    atomic.Uint64
}

// maxSeq bounds the precomputed sequence; larger weight sums are scaled down.
const maxSeq = 1 << 20

// NewRoundRobin builds the pick sequence for targets.
func NewRoundRobin(targets []*target.Target) *RoundRobin {
	rr := &RoundRobin{targets: targets}
	rr.next.Store(rand.Uint64N(uint64(len(targets)))) // do not send every rebuild's first request to target 0
	weights := make([]int, len(targets))
	equal, sum, g := true, 0, 0
	for i, t := range targets {
		weights[i] = t.EffectiveWeight()
		equal = equal && weights[i] == weights[0]
		sum += weights[i]
		g = gcd(g, weights[i])
	}
	if equal {
		return rr
	}
	for i := range weights {
		weights[i] /= g
	}
	sum /= g
	if sum > maxSeq {
		// Round to nearest: rounding down would cost every target up to a
		// pick per cycle, a share error that grows as weights get lighter.
		for i, w := range weights {
			weights[i] = max(1, (w*maxSeq+sum/2)/sum)
		}
	}
	rr.seq = interleave(weights)
	return rr
}

// interleave returns each index i weights[i] times, ordered by earliest
// virtual finish time (i.e. stride scheduling), so picks are spread evenly.
func interleave(weights []int) []int32 {
	total := 0
	for _, w := range weights {
		total += w
	}
	h := make(strideHeap, len(weights))
	for i, w := range weights {
		h[i] = stride{pass: 1 / float64(w), step: 1 / float64(w), i: int32(i)}
	}
	heap.Init(&h)
	seq := make([]int32, 0, total)
	for len(seq) < total {
		s := &h[0]
		seq = append(seq, s.i)
		s.pass += s.step
		heap.Fix(&h, 0)
	}
	return seq
}

type stride struct {
	pass, step float64
	i          int32
}

type strideHeap []stride

func (h strideHeap) Len() int { return len(h) }
func (h strideHeap) Less(a, b int) bool {
	return h[a].pass < h[b].pass || h[a].pass == h[b].pass && h[a].i < h[b].i
}
func (h strideHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *strideHeap) Push(x any)   { *h = append(*h, x.(stride)) }
func (h *strideHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Pick returns the next target in the cycle.
func (rr *RoundRobin) Pick(exclude *target.Target) *target.Target {
	for range maxTries {
		if t := rr.at(rr.next.Add(1)); t != exclude {
			return t
		}
	}
	return other(rr.targets, exclude)
}

func (rr *RoundRobin) at(n uint64) *target.Target {
	if rr.seq == nil {
		return rr.targets[n%uint64(len(rr.targets))]
	}
	return rr.targets[rr.seq[n%uint64(len(rr.seq))]]
}

// maxTries bounds how often Pick draws again to avoid exclude, which keeps
// the other targets' proportions, before it settles for any other target.
const maxTries = 8

// other returns a target other than exclude, uniformly at random (exclude
// itself when it is the only one): the bounded end of a retry's rare path,
// however much of the weight exclude holds.
func other(targets []*target.Target, exclude *target.Target) *target.Target {
	if len(targets) == 1 {
		return targets[0]
	}
	for {
		if t := targets[rand.IntN(len(targets))]; t != exclude {
			return t
		}
	}
}

// LeastOutstanding picks the target with the fewest requests in flight. Up
// to exactScan targets it scans them all and picks at random among those
// tied for the least (so ties spread evenly); beyond that it takes the
// better of two random choices, which keeps the cost flat and is nearly as
// good (Mitzenmacher's power of two choices, as Envoy's LEAST_REQUEST).
type LeastOutstanding struct {
	targets []*target.Target
}

const exactScan = 16

// Pick returns a least loaded target.
func (lo *LeastOutstanding) Pick(exclude *target.Target) *target.Target {
	n := len(lo.targets)
	if n == 1 {
		return lo.targets[0]
	}
	if n <= exactScan {
		// Not the first least loaded target from a random start: a tied
		// target would then get a share in proportion to the busy ones
		// listed before it.
		var tied [exactScan]*target.Target
		k := 0
		var least int64
		for _, t := range lo.targets {
			if t == exclude {
				continue
			}
			l := t.Inflight.Load()
			if k == 0 || l < least {
				least, k = l, 0
			}
			if l == least {
				tied[k] = t
				k++
			}
		}
		if k == 0 { // every entry is exclude
			return exclude
		}
		return tied[rand.IntN(k)]
	}
	a := lo.targets[rand.IntN(n)]
	b := lo.targets[rand.IntN(n)]
	for a == exclude {
		a = lo.targets[rand.IntN(n)]
	}
	for b == exclude || b == a {
		b = lo.targets[rand.IntN(n)]
	}
	if b.Inflight.Load() < a.Inflight.Load() {
		return b
	}
	return a
}

// WeightedRandom picks a target at random in proportion to its effective
// weight.
type WeightedRandom struct {
	targets []*target.Target
	cum     []int // running sums of weights; nil when all weights are equal
}

// NewWeightedRandom builds the cumulative weights for targets.
func NewWeightedRandom(targets []*target.Target) *WeightedRandom {
	wr := &WeightedRandom{targets: targets}
	equal, sum := true, 0
	cum := make([]int, len(targets))
	w0 := targets[0].EffectiveWeight()
	for i, t := range targets {
		w := t.EffectiveWeight()
		equal = equal && w == w0
		sum += w
		cum[i] = sum
	}
	if !equal {
		wr.cum = cum
	}
	return wr
}

// Pick returns a random target.
func (wr *WeightedRandom) Pick(exclude *target.Target) *target.Target {
	for range maxTries {
		var t *target.Target
		if wr.cum == nil {
			t = wr.targets[rand.IntN(len(wr.targets))]
		} else {
			t = wr.targets[sort.SearchInts(wr.cum, rand.IntN(wr.cum[len(wr.cum)-1])+1)]
		}
		if t != exclude {
			return t
		}
	}
	return other(wr.targets, exclude)
}
