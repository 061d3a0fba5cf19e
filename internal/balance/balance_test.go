package balance

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/target"
)

var algorithms = []config.Algorithm{config.RoundRobin, config.LeastOutstandingRequests, config.WeightedRandom}

func newTargets(weights ...int) []*target.Target {
	ts := make([]*target.Target, len(weights))
	for i, w := range weights {
		ts[i] = target.New(fmt.Sprintf("10.0.%d.%d:80", i/256, i%256), w, 1, false)
	}
	return ts
}

func equalWeights(n, w int) []int {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = w
	}
	return ws
}

// mixedWeights returns n weights from 1 to 1000 (the range config allows).
func mixedWeights(n int) []int {
	ws := make([]int, n)
	for i := range ws {
		ws[i] = i%1000 + 1
	}
	return ws
}

func weightsName(ws []int) string {
	if len(ws) > 8 {
		return fmt.Sprintf("%d mixed weights", len(ws))
	}
	return fmt.Sprint(ws)
}

// pickCounts makes picks picks and returns how often each target came up,
// by index in ts. It fails the test on a nil pick or a target not in ts.
func pickCounts(t *testing.T, p target.Picker, ts []*target.Target, exclude *target.Target, picks int) []int {
	t.Helper()
	index := make(map[*target.Target]int, len(ts))
	for i, tg := range ts {
		index[tg] = i
	}
	counts := make([]int, len(ts))
	for range picks {
		got := p.Pick(exclude)
		i, ok := index[got]
		if !ok {
			t.Fatalf("Pick returned %v, which is not one of the targets", got)
		}
		counts[i]++
	}
	return counts
}

// checkShare fails unless got, out of n draws that each hit with
// probability p, lies within 6 standard deviations of n*p: wide enough never
// to fail by chance (about 2 in a billion), narrow enough to catch a skew.
func checkShare(t *testing.T, what string, got, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	tol := 6 * math.Sqrt(float64(n)*p*(1-p))
	if math.Abs(float64(got)-mean) > tol {
		t.Errorf("%s: got %d of %d picks, want %.0f ± %.0f", what, got, n, mean, tol)
	}
}

func TestNew(t *testing.T) {
	ts := newTargets(1, 2)
	for _, c := range []struct {
		alg  config.Algorithm
		want string
	}{
		{config.RoundRobin, "*balance.RoundRobin"},
		{config.Algorithm(9), "*balance.RoundRobin"}, // out of range: ALB's default
		{config.LeastOutstandingRequests, "*balance.LeastOutstanding"},
		{config.WeightedRandom, "*balance.WeightedRandom"},
	} {
		if got := fmt.Sprintf("%T", New(c.alg, ts)); got != c.want {
			t.Errorf("New(%v): got %s, want %s", c.alg, got, c.want)
		}
	}
}

func TestRoundRobinEqualWeights(t *testing.T) {
	for _, w := range []int{0, 1, 7} { // weight 0 counts as 1
		for _, n := range []int{1, 2, 5, 16} {
			t.Run(fmt.Sprintf("n=%d/weight=%d", n, w), func(t *testing.T) {
				ts := newTargets(equalWeights(n, w)...)
				rr := NewRoundRobin(ts)
				if rr.seq != nil {
					t.Errorf("equal weights built a sequence of %d, want none", len(rr.seq))
				}
				// The targets come in order, each once per n picks, from
				// wherever the cycle starts.
				first := rr.Pick(nil)
				start := slices.Index(ts, first)
				for i := 1; i < 3*n; i++ {
					if got, want := rr.Pick(nil), ts[(start+i)%n]; got != want {
						t.Fatalf("pick %d: got %s, want %s", i, got.ID, want.ID)
					}
				}
				const k = 11
				for i, c := range pickCounts(t, rr, ts, nil, k*n) {
					if c != k {
						t.Errorf("target %d: got %d picks of %d, want %d", i, c, k*n, k)
					}
				}
			})
		}
	}
}

// TestRoundRobinStart checks that a new picker does not always start at the
// first target, so that rebuilding often does not load it.
func TestRoundRobinStart(t *testing.T) {
	ts := newTargets(1, 1, 1, 1)
	firsts := make([]int, len(ts))
	const builds = 4000
	for range builds {
		firsts[slices.Index(ts, NewRoundRobin(ts).Pick(nil))]++
	}
	for i, c := range firsts {
		checkShare(t, fmt.Sprintf("first pick is target %d", i), c, builds, 0.25)
	}
}

func TestRoundRobinWeights(t *testing.T) {
	for _, c := range []struct {
		weights []int
		cycle   int // length of the sequence after dividing by the weights' gcd
	}{
		{[]int{1, 2, 3}, 6},
		{[]int{3, 2, 1}, 6},
		{[]int{10, 20, 30}, 6},
		{[]int{1, 1, 2}, 4},
		{[]int{1, 1000}, 1001},
		{[]int{2, 3, 5, 7, 11, 13}, 41},
		{[]int{0, 2}, 3}, // weight 0 counts as 1
		{mixedWeights(50), 1275},
	} {
		t.Run(weightsName(c.weights), func(t *testing.T) {
			ts := newTargets(c.weights...)
			rr := NewRoundRobin(ts)
			if len(rr.seq) != c.cycle {
				t.Fatalf("sequence length: got %d, want %d", len(rr.seq), c.cycle)
			}
			g := 0
			for _, w := range c.weights {
				g = gcd(g, max(w, 1))
			}
			// Exact shares over whole cycles, from wherever the picker is.
			const k = 3
			for i, got := range pickCounts(t, rr, ts, nil, k*c.cycle) {
				if want := k * max(c.weights[i], 1) / g; got != want {
					t.Errorf("target %d (weight %d): got %d picks of %d, want %d", i, c.weights[i], got, k*c.cycle, want)
				}
			}
			checkSpread(t, rr.seq, c.weights, g)
		})
	}
}

// checkSpread checks the property of stride scheduling that makes weighted
// round robin smooth: in every prefix of the cycle, no target is a whole
// pick or more behind its share (count_i*total > m*w_i - total). A
// sequence that sends a target its picks in a run breaks it.
func checkSpread(t *testing.T, seq []int32, weights []int, g int) {
	t.Helper()
	total := int64(len(seq))
	counts := make([]int64, len(weights))
	for m, i := range seq {
		counts[i]++
		for j, c := range counts {
			w := int64(max(weights[j], 1) / g)
			if c*total <= int64(m+1)*w-total {
				t.Fatalf("after %d picks target %d (weight %d) has %d picks, a whole pick behind its share %.2f",
					m+1, j, weights[j], c, float64(m+1)*float64(w)/float64(total))
			}
		}
	}
}

// TestRoundRobinInterleaves checks that heavier targets do not get their
// picks in runs: with weights 1, 2, 3 the weight-3 target never comes up
// three times in a row, even across the end of the cycle.
func TestRoundRobinInterleaves(t *testing.T) {
	ts := newTargets(1, 2, 3)
	rr := NewRoundRobin(ts)
	run, maxRun := 0, 0
	var last *target.Target
	for range 4 * len(rr.seq) {
		tg := rr.Pick(nil)
		if tg == last {
			run++
		} else {
			run = 1
		}
		last = tg
		if tg == ts[2] {
			maxRun = max(maxRun, run)
		}
		if tg != ts[2] && run > 1 {
			t.Errorf("target %s (weight %d) picked %d times in a row", tg.ID, tg.Weight(), run)
		}
	}
	if maxRun > 2 {
		t.Errorf("weight-3 target: got runs of %d, want at most 2", maxRun)
	}

	// Two equal heavy targets alternate rather than take turns in runs.
	ts = newTargets(5, 5, 1)
	rr = NewRoundRobin(ts)
	last = nil
	for i := range 2 * len(rr.seq) {
		tg := rr.Pick(nil)
		if tg == last {
			t.Errorf("pick %d: %s twice in a row", i, tg.ID)
		}
		last = tg
	}
}

// TestRoundRobinScaled checks weight sums beyond the sequence bound: the
// sequence is scaled down and stays proportional.
func TestRoundRobinScaled(t *testing.T) {
	t.Run("two targets", func(t *testing.T) {
		ts := newTargets(1_000_000, 3_000_001) // gcd 1, sum about 4<<20
		rr := NewRoundRobin(ts)
		if len(rr.seq) > maxSeq {
			t.Fatalf("sequence length: got %d, want at most %d", len(rr.seq), maxSeq)
		}
		counts := pickCounts(t, rr, ts, nil, len(rr.seq))
		if ratio := float64(counts[1]) / float64(counts[0]); math.Abs(ratio-3.000001) > 0.0001 {
			t.Errorf("got %v picks, ratio %.6f, want 3.000001 ± 0.0001", counts, ratio)
		}
	})
	t.Run("10000 targets", func(t *testing.T) {
		weights := mixedWeights(10_000) // sum 5,005,000
		ts := newTargets(weights...)
		rr := NewRoundRobin(ts)
		total := len(rr.seq)
		if total > maxSeq+len(ts) {
			t.Fatalf("sequence length: got %d, want at most %d", total, maxSeq+len(ts))
		}
		sum := 0
		for _, w := range weights {
			sum += w
		}
		counts := pickCounts(t, rr, ts, nil, total)
		// Each target is within half a pick per cycle of its share of a
		// maxSeq-long cycle, but for those scaled below one pick, which get one.
		for i, c := range counts {
			ideal := float64(weights[i]) * maxSeq / float64(sum)
			if ideal < 1 && c == 1 {
				continue
			}
			if math.Abs(float64(c)-ideal) > 0.5 {
				t.Fatalf("target %d (weight %d): got %d picks of %d, want %.2f ± 0.5", i, weights[i], c, total, ideal)
			}
		}
		// Weights large enough to survive scaling keep their ratios. (The
		// lightest cannot: weights 1-4 all scale to the minimum, one pick.)
		byWeight := map[int]int{}
		for i, c := range counts {
			byWeight[weights[i]] += c
		}
		for _, c := range [][2]int{{1000, 500}, {1000, 100}, {600, 300}} {
			want := float64(c[0]) / float64(c[1])
			if got := float64(byWeight[c[0]]) / float64(byWeight[c[1]]); math.Abs(got-want) > 0.02*want {
				t.Errorf("weight %d against weight %d: got ratio %.3f, want %.1f ± 2%%", c[0], c[1], got, want)
			}
		}
	})
}

func TestExclude(t *testing.T) {
	for _, alg := range algorithms {
		for _, weights := range [][]int{{1, 1}, {1, 1, 1, 1}, {5, 1, 3}, {1000, 1}, mixedWeights(20), equalWeights(40, 1)} {
			t.Run(fmt.Sprintf("%s/%d targets", alg, len(weights)), func(t *testing.T) {
				ts := newTargets(weights...)
				p := New(alg, ts)
				for _, ex := range []int{0, len(ts) - 1} {
					counts := pickCounts(t, p, ts, ts[ex], 2000)
					if counts[ex] != 0 {
						t.Errorf("excluding target %d: it got %d of 2000 picks, want 0", ex, counts[ex])
					}
				}
				// A target that is not in the picker's set excludes nothing.
				other := newTargets(1)[0]
				if got := p.Pick(other); got == other || got == nil {
					t.Errorf("excluding a stranger: got %v", got)
				}
			})
		}
		t.Run(alg.String()+"/only target", func(t *testing.T) {
			ts := newTargets(3)
			p := New(alg, ts)
			for range 10 {
				if got := p.Pick(ts[0]); got != ts[0] {
					t.Fatalf("the only target, excluded: got %v, want it anyway", got)
				}
				if got := p.Pick(nil); got != ts[0] {
					t.Fatalf("the only target: got %v, want it", got)
				}
			}
		})
	}
}

// TestRoundRobinExcludeShares checks that skipping an excluded target
// leaves the others their relative shares.
func TestRoundRobinExcludeShares(t *testing.T) {
	ts := newTargets(1, 1, 1)
	rr := NewRoundRobin(ts)
	counts := pickCounts(t, rr, ts, ts[1], 1000)
	if want := []int{500, 0, 500}; !slices.Equal(counts, want) {
		t.Errorf("equal weights, excluding the middle target: got %v, want %v", counts, want)
	}
}

func setLoads(ts []*target.Target, loads ...int64) {
	for i, l := range loads {
		ts[i].Inflight.Store(l)
	}
}

func TestLeastOutstandingExact(t *testing.T) {
	for _, n := range []int{2, 6, exactScan} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			ts := newTargets(equalWeights(n, 1)...)
			lo := New(config.LeastOutstandingRequests, ts)
			// Loads n+3, n+2, ... with the least in the middle.
			least, second := n/2, (n/2+1)%n
			for i, tg := range ts {
				tg.Inflight.Store(int64(n + 3 + i))
			}
			ts[least].Inflight.Store(1)
			ts[second].Inflight.Store(2)
			for i := range 200 {
				if got := lo.Pick(nil); got != ts[least] {
					t.Fatalf("pick %d: got %s (load %d), want %s (load 1)", i, got.ID, got.Inflight.Load(), ts[least].ID)
				}
				if got := lo.Pick(ts[least]); got != ts[second] {
					t.Fatalf("pick %d excluding the least loaded: got %s (load %d), want %s (load 2)",
						i, got.ID, got.Inflight.Load(), ts[second].ID)
				}
			}
			// Load follows the counters as they change.
			ts[least].Inflight.Store(100)
			if got := lo.Pick(nil); got != ts[second] {
				t.Errorf("after the least loaded got busy: got %s, want %s", got.ID, ts[second].ID)
			}
		})
	}
}

// TestLeastOutstandingTies checks that targets tied for the least load
// share the picks evenly, wherever they sit in the list.
func TestLeastOutstandingTies(t *testing.T) {
	const picks = 20000
	for _, c := range []struct {
		name  string
		loads []int64
		tied  []int
	}{
		{"all idle", []int64{0, 0, 0, 0, 0}, []int{0, 1, 2, 3, 4}},
		{"adjacent", []int64{0, 0, 5, 5}, []int{0, 1}},
		{"apart", []int64{3, 1, 4, 1, 5, 9, 2, 6}, []int{1, 3}},
		{"many busy between", []int64{0, 7, 7, 7, 7, 7, 7, 0, 7}, []int{0, 7}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTargets(equalWeights(len(c.loads), 1)...)
			setLoads(ts, c.loads...)
			counts := pickCounts(t, New(config.LeastOutstandingRequests, ts), ts, nil, picks)
			for i, cnt := range counts {
				if !slices.Contains(c.tied, i) {
					if cnt != 0 {
						t.Errorf("target %d (load %d): got %d picks, want 0", i, c.loads[i], cnt)
					}
					continue
				}
				checkShare(t, fmt.Sprintf("tied target %d", i), cnt, picks, 1/float64(len(c.tied)))
			}
		})
	}
}

// TestLeastOutstandingTwoChoices covers more than exactScan targets, where
// the picker takes the less loaded of two random distinct targets.
func TestLeastOutstandingTwoChoices(t *testing.T) {
	const n, picks = 32, 64000
	ts := newTargets(equalWeights(n, 1)...)
	lo := New(config.LeastOutstandingRequests, ts)

	// The single busiest target loses every comparison.
	setLoads(ts, 1000)
	counts := pickCounts(t, lo, ts, nil, picks)
	if counts[0] != 0 {
		t.Errorf("the busiest target: got %d of %d picks, want 0", counts[0], picks)
	}
	for i := 1; i < n; i++ {
		checkShare(t, fmt.Sprintf("idle target %d", i), counts[i], picks, 1/float64(n-1))
	}

	// The single idlest target wins whenever it is one of the two: 2/n.
	for _, tg := range ts {
		tg.Inflight.Store(5)
	}
	ts[7].Inflight.Store(0)
	counts = pickCounts(t, lo, ts, nil, picks)
	checkShare(t, "the idlest target", counts[7], picks, 2.0/n)
	for i, c := range counts {
		if i != 7 {
			// Picked when drawn with another busy target, and then half the time.
			checkShare(t, fmt.Sprintf("busy target %d", i), c, picks, (1-2.0/n)/(n-1))
		}
	}

	// Excluding the idlest, the others share evenly.
	counts = pickCounts(t, lo, ts, ts[7], picks)
	if counts[7] != 0 {
		t.Errorf("excluded idlest target: got %d picks, want 0", counts[7])
	}
	for i, c := range counts {
		if i != 7 {
			checkShare(t, fmt.Sprintf("target %d", i), c, picks, 1/float64(n-1))
		}
	}
}

func TestWeightedRandom(t *testing.T) {
	const picks = 200000
	for _, weights := range [][]int{{1, 1, 1, 1}, {1, 2, 3, 4}, {1, 1000}, {0, 1}, mixedWeights(20)} {
		t.Run(weightsName(weights), func(t *testing.T) {
			ts := newTargets(weights...)
			wr := NewWeightedRandom(ts)
			sum := 0
			for _, w := range weights {
				sum += max(w, 1)
			}
			counts := pickCounts(t, wr, ts, nil, picks)
			for i, c := range counts {
				checkShare(t, fmt.Sprintf("target %d (weight %d)", i, weights[i]), c, picks, float64(max(weights[i], 1))/float64(sum))
			}
		})
	}
	t.Run("exclude keeps the others' proportions", func(t *testing.T) {
		ts := newTargets(1, 2, 3)
		counts := pickCounts(t, NewWeightedRandom(ts), ts, ts[2], picks)
		if counts[2] != 0 {
			t.Errorf("excluded target: got %d picks, want 0", counts[2])
		}
		checkShare(t, "target 0 (weight 1 of 3)", counts[0], picks, 1.0/3)
	})
}

// TestConcurrentPick runs pickers from several goroutines (run with -race).
// Round robin's shared counter hands every pick its own slot, so even
// concurrent picks give exact shares.
func TestConcurrentPick(t *testing.T) {
	const goroutines, each = 8, 3000
	for _, alg := range algorithms {
		for _, weights := range [][]int{equalWeights(5, 1), {1, 2, 3, 2, 1, 3}, mixedWeights(40)} {
			t.Run(fmt.Sprintf("%s/%d targets", alg, len(weights)), func(t *testing.T) {
				ts := newTargets(weights...)
				p := New(alg, ts)
				index := make(map[*target.Target]int, len(ts))
				for i, tg := range ts {
					index[tg] = i
				}
				counts := make([][]int, goroutines)
				var wg sync.WaitGroup
				for g := range goroutines {
					counts[g] = make([]int, len(ts))
					wg.Go(func() {
						for range each {
							tg := p.Pick(nil)
							i, ok := index[tg]
							if !ok {
								t.Errorf("Pick returned %v, not one of the targets", tg)
								return
							}
							// As the request path does around a request.
							tg.Inflight.Add(1)
							counts[g][i]++
							tg.Inflight.Add(-1)
						}
					})
				}
				wg.Wait()
				total := make([]int, len(ts))
				picks := 0
				for _, cs := range counts {
					for i, c := range cs {
						total[i] += c
						picks += c
					}
				}
				if picks != goroutines*each {
					t.Fatalf("got %d picks, want %d", picks, goroutines*each)
				}
				rr, ok := p.(*RoundRobin)
				if !ok {
					return
				}
				cycle := len(ts)
				if rr.seq != nil {
					cycle = len(rr.seq)
				}
				if picks%cycle != 0 {
					return
				}
				g := 0
				for _, w := range weights {
					g = gcd(g, w)
				}
				for i, c := range total {
					if want := picks / cycle * (weights[i] / g); rr.seq == nil && c != picks/cycle || rr.seq != nil && c != want {
						t.Errorf("target %d (weight %d): got %d of %d concurrent picks, want an exact share", i, weights[i], c, picks)
					}
				}
			})
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, alg := range algorithms {
		for _, n := range []int{10, 1000} {
			ts := newTargets(mixedWeights(n)...)
			for i, tg := range ts {
				tg.Inflight.Store(int64(i % 7))
			}
			p := New(alg, ts)
			if allocs := testing.AllocsPerRun(1000, func() { p.Pick(ts[1]) }); allocs != 0 {
				t.Errorf("%s with %d targets: got %v allocations per Pick, want 0", alg, n, allocs)
			}
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, alg := range algorithms {
		variants := []string{"equal", "unequal"}
		if alg == config.LeastOutstandingRequests {
			variants = variants[:1] // it ignores weights
		}
		for _, weights := range variants {
			for _, n := range []int{10, 1000, 10000} {
				b.Run(fmt.Sprintf("%s/%s/n=%d", alg, weights, n), func(b *testing.B) {
					ws := equalWeights(n, 1)
					if weights == "unequal" {
						ws = mixedWeights(n)
					}
					ts := newTargets(ws...)
					for i, tg := range ts {
						tg.Inflight.Store(int64(i % 13)) // for least_outstanding_requests
					}
					p := New(alg, ts)
					b.ReportAllocs()
					for b.Loop() {
						p.Pick(nil)
					}
				})
			}
		}
	}
}

// BenchmarkPickParallel shows contention on shared state (round robin's
// counter) when every core picks at once.
func BenchmarkPickParallel(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(alg.String(), func(b *testing.B) {
			ts := newTargets(mixedWeights(1000)...)
			p := New(alg, ts)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.Pick(nil)
				}
			})
		})
	}
}

func BenchmarkNewRoundRobin(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("unequal/n=%d", n), func(b *testing.B) {
			ts := newTargets(mixedWeights(n)...)
			b.ReportAllocs()
			for b.Loop() {
				NewRoundRobin(ts)
			}
		})
	}
}

func BenchmarkNewWeightedRandom(b *testing.B) {
	ts := newTargets(mixedWeights(10000)...)
	b.ReportAllocs()
	for b.Loop() {
		NewWeightedRandom(ts)
	}
}

// rampingTargets returns n targets of mixed weights, the second half of
// them just into slow start in a group without health checks: their
// effective weights are 1/40 of their weights (the middle of the first of
// 20 ramp steps), fractions of a configured weight.
func rampingTargets(tb testing.TB, n int) []*target.Target {
	tb.Helper()
	s := target.Settings{MinHealthyCount: 1, DeregistrationDelay: time.Hour, SlowStart: 900 * time.Second}
	g := target.NewGroup("web", s, slog.New(slog.DiscardHandler))
	tb.Cleanup(g.Close)
	cts := make([]config.Target, n)
	for i, w := range mixedWeights(n) {
		cts[i] = config.Target{ID: fmt.Sprintf("10.1.%d.%d:80", i/256, i%256), Weight: w}
	}
	gen := func(string) uint64 { return 1 }
	g.Reconcile(cts[:n/2], s, gen) // registered into an empty group: no slow start
	g.Reconcile(cts, s, gen)       // in service at once, and in slow start
	ts := g.View().Routable
	for _, tg := range ts[n/2:] {
		// Exactly, on a frozen clock (synctest); within the time the
		// registration took, on a real one.
		want := max(1, int(math.Round(float64(tg.Weight()*target.WeightUnit)/40)))
		if got := tg.EffectiveWeight(); got < want || got > want+1+want/50 {
			tb.Fatalf("%s: effective weight %d, want %d", tg.ID, got, want)
		}
	}
	return ts
}

func effectiveWeights(ts []*target.Target) []int {
	ws := make([]int, len(ts))
	for i, tg := range ts {
		ws[i] = tg.EffectiveWeight()
	}
	return ws
}

// TestEffectiveWeights checks that both weighted pickers follow the
// targets' effective weights, fractions of a configured weight included.
func TestEffectiveWeights(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // a frozen clock: the ramps stay put
		ts := rampingTargets(t, 20)
		ws := effectiveWeights(ts)
		sum, g := 0, 0
		for _, w := range ws {
			sum += w
			g = gcd(g, w)
		}

		rr := NewRoundRobin(ts)
		if len(rr.seq) != sum/g {
			t.Fatalf("round robin sequence: got %d, want %d", len(rr.seq), sum/g)
		}
		for i, got := range pickCounts(t, rr, ts, nil, 2*len(rr.seq)) {
			if want := 2 * ws[i] / g; got != want {
				t.Errorf("round robin, target %d (weight %d, effective %d): got %d picks, want %d", i, ts[i].Weight(), ws[i], got, want)
			}
		}
		checkSpread(t, rr.seq, ws, g)

		const picks = 200000
		for i, c := range pickCounts(t, NewWeightedRandom(ts), ts, nil, picks) {
			checkShare(t, fmt.Sprintf("weighted random, target %d (effective weight %d)", i, ws[i]), c, picks, float64(ws[i])/float64(sum))
		}
	})
}

// TestEqualWeightsNeedNoTable checks that equal effective weights take the
// pickers' fast paths, and unequal ones do not.
func TestEqualWeightsNeedNoTable(t *testing.T) {
	for _, c := range []struct {
		weights []int
		equal   bool
	}{
		{[]int{1, 1, 1}, true},
		{[]int{5, 5}, true},
		{[]int{2, 1, 1}, false},
		{[]int{1, 1, 2}, false},
	} {
		ts := newTargets(c.weights...)
		if got := NewWeightedRandom(ts).cum == nil; got != c.equal {
			t.Errorf("weighted random over %v: no cumulative table %v, want %v", c.weights, got, c.equal)
		}
		if got := NewRoundRobin(ts).seq == nil; got != c.equal {
			t.Errorf("round robin over %v: no sequence %v, want %v", c.weights, got, c.equal)
		}
	}
}

// TestRampingSequenceBounded checks that fractional weights, which no longer
// share the factor WeightUnit, keep the round robin sequence within its
// bound and shares within half a pick per cycle.
func TestRampingSequenceBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := rampingTargets(t, 1000)
		ws := effectiveWeights(ts)
		rr := NewRoundRobin(ts)
		if len(rr.seq) > maxSeq+len(ts) {
			t.Fatalf("sequence length: got %d, want at most %d", len(rr.seq), maxSeq+len(ts))
		}
		sum := 0
		for _, w := range ws {
			sum += w
		}
		counts := make([]int, len(ts))
		for _, i := range rr.seq {
			counts[i]++
		}
		for i, c := range counts {
			// As in TestRoundRobinScaled: within half a pick of a maxSeq
			// cycle's share, but for weights scaled below one pick.
			ideal := float64(ws[i]) * maxSeq / float64(sum)
			if ideal < 1 && c == 1 {
				continue
			}
			if math.Abs(float64(c)-ideal) > 0.5 {
				t.Fatalf("target %d (effective weight %d): got %d picks of %d, want %.2f", i, ws[i], c, len(rr.seq), ideal)
			}
		}
	})
}

// BenchmarkPickEffective picks over targets half of which ramp (fractional
// effective weights).
func BenchmarkPickEffective(b *testing.B) {
	for _, alg := range []config.Algorithm{config.RoundRobin, config.WeightedRandom} {
		for _, n := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/n=%d", alg, n), func(b *testing.B) {
				p := New(alg, rampingTargets(b, n))
				b.ReportAllocs()
				for b.Loop() {
					p.Pick(nil)
				}
			})
		}
	}
}

// BenchmarkNewPickerRamping is the cost of the view rebuild a ramp step
// makes (once per step, every duration/20 or 1 s at least).
func BenchmarkNewPickerRamping(b *testing.B) {
	for _, alg := range []config.Algorithm{config.RoundRobin, config.WeightedRandom} {
		for _, n := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/n=%d", alg, n), func(b *testing.B) {
				ts := rampingTargets(b, n)
				b.ReportAllocs()
				for b.Loop() {
					New(alg, ts)
				}
			})
		}
	}
}
