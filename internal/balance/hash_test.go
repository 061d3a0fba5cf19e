package balance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latch-lb/latch/internal/target"
)

// TestKeyOf checks KeyOf against published XXH64 digests (seed 0), so that
// another implementation of xxHash maps keys as latch does.
func TestKeyOf(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"as", 0x1c330fb2d66be179},
		{"asd", 0x631c37ce72a97393},
		{"asdf", 0x415872f599cea71e},
		// 63 bytes: a 32-byte stripe, then 8-, 4- and 1-byte tails.
		{"Call me Ishmael. Some years ago--never mind how long precisely-", 0x02a2e85470d6fd96},
	} {
		if got := KeyOf([]byte(c.in)); got != c.want {
			t.Errorf("KeyOf(%q): got %#x, want %#x", c.in, got, c.want)
		}
		if got := xxh64(c.in, 0); got != c.want {
			t.Errorf("xxh64(string %q): got %#x, want %#x", c.in, got, c.want)
		}
	}
}

// hashGoldenTargets are the targets of TestHashGolden.
func hashGoldenTargets() []*target.Target {
	ws := []int{1, 1, 1, 1, 2, 3, 5, 10}
	ts := make([]*target.Target, len(ws))
	for i, w := range ws {
		ts[i] = target.New(fmt.Sprintf("10.1.0.%d:8080", i+1), w, 1, false)
	}
	return ts
}

// TestHashGolden pins the exact target of fixed keys over fixed targets:
// every latch node and every version must agree, so a change here is a
// change of the hashing scheme, which moves every client.
func TestHashGolden(t *testing.T) {
	ts := hashGoldenTargets()
	h := NewHash(ts, 0, nil)
	want := []string{
		"10.1.0.5:8080", "10.1.0.4:8080", "10.1.0.5:8080", "10.1.0.5:8080",
		"10.1.0.8:8080", "10.1.0.8:8080", "10.1.0.7:8080", "10.1.0.8:8080",
		"10.1.0.8:8080", "10.1.0.8:8080", "10.1.0.7:8080", "10.1.0.2:8080",
		"10.1.0.1:8080", "10.1.0.3:8080", "10.1.0.8:8080", "10.1.0.7:8080",
	}
	var got []string
	for i := range want {
		got = append(got, h.PickKey(KeyOf(fmt.Appendf(nil, "client-%d", i)), nil).ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("picks for client-0..%d:\ngot  %q\nwant %q", len(want)-1, got, want)
	}

	// Equal weights, and the second choice (exclude = the first).
	eq := make([]*target.Target, 8)
	for i := range eq {
		eq[i] = target.New(fmt.Sprintf("10.2.0.%d:443", i+1), 1, 1, false)
	}
	h = NewHash(eq, 0, nil)
	wantFirst := []string{
		"10.2.0.5:443", "10.2.0.6:443", "10.2.0.4:443", "10.2.0.4:443", "10.2.0.3:443", "10.2.0.4:443",
		"10.2.0.1:443", "10.2.0.4:443", "10.2.0.5:443", "10.2.0.2:443", "10.2.0.2:443", "10.2.0.2:443",
	}
	wantSecond := []string{
		"10.2.0.2:443", "10.2.0.3:443", "10.2.0.3:443", "10.2.0.3:443", "10.2.0.6:443", "10.2.0.3:443",
		"10.2.0.7:443", "10.2.0.7:443", "10.2.0.4:443", "10.2.0.8:443", "10.2.0.8:443", "10.2.0.4:443",
	}
	var gotFirst, gotSecond []string
	for i := range 12 {
		k := KeyOf(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).AsSlice())
		first := h.PickKey(k, nil)
		gotFirst = append(gotFirst, first.ID)
		gotSecond = append(gotSecond, h.PickKey(k, first).ID)
	}
	if !slices.Equal(gotFirst, wantFirst) || !slices.Equal(gotSecond, wantSecond) {
		t.Errorf("picks for 192.0.2.0-11:\ngot  %q\nwant %q\nsecond choices:\ngot  %q\nwant %q", gotFirst, wantFirst, gotSecond, wantSecond)
	}
}

// TestHashGoldenTables pins whole tables, of both sizes, by a checksum of
// their entries (target indices, in the order the targets are listed).
func TestHashGoldenTables(t *testing.T) {
	for _, c := range []struct {
		n    int
		m    uint64
		want uint64
	}{
		{8, 262147, 0xdce6b710f1fb7d48},
		{3000, 1048583, 0xa4081e940c6fb1f5},
	} {
		ts := make([]*target.Target, c.n)
		for i := range ts {
			ts[i] = &target.Target{ID: fmt.Sprintf("10.3.%d.%d:8443", i/256, i%256), Weight: i%7 + 1}
		}
		h := NewHash(ts, 0, nil)
		var sum uint64
		for s := range h.m {
			sum = mix(sum ^ uint64(h.at(s)))
		}
		if h.m != c.m || sum != c.want {
			t.Errorf("%d targets: got a table of %d entries with checksum %#x, want %d and %#x", c.n, h.m, sum, c.m, c.want)
		}
	}
}

// TestHashDeterministic checks that the table depends only on the targets'
// IDs and weights: not on their order, nor on which *Target values carry
// them, nor on the build.
func TestHashDeterministic(t *testing.T) {
	ws := mixedWeights(300)
	a := NewHash(newTargets(ws...), 0, nil)
	shuffled := newTargets(ws...)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b := NewHash(shuffled, 0, nil)
	for k := range uint64(20000) {
		if x, y := a.PickKey(k, nil), b.PickKey(k, nil); x.ID != y.ID {
			t.Fatalf("key %d: got %s from one build and %s from another of the same targets", k, x.ID, y.ID)
		}
	}
}

// hashKeys returns n random keys from a fixed seed.
func hashKeys(n int) []uint64 {
	r := rand.New(rand.NewPCG(1, 2))
	ks := make([]uint64, n)
	for i := range ks {
		ks[i] = r.Uint64()
	}
	return ks
}

// TestHashStability checks that a change of targets moves about the keys
// it must: adding a target moves about 1/(N+1) of them (Maglev moves a
// little more than ring hash would: see the file comment), removing one
// moves its own and few others.
func TestHashStability(t *testing.T) {
	keys := hashKeys(100_000)
	for _, n := range []int{10, 100} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			ts := newTargets(equalWeights(n+1, 1)...)
			before := NewHash(ts[:n], 0, nil)

			added := NewHash(ts, 0, nil)
			moved, toOthers := 0, 0
			for _, k := range keys {
				if x, y := before.PickKey(k, nil), added.PickKey(k, nil); x != y {
					moved++
					if y != ts[n] {
						toOthers++
					}
				}
			}
			share := float64(moved) / float64(len(keys)) * float64(n+1)
			t.Logf("adding a target moved %.4f of keys, %.2f × 1/(N+1); %.4f between old targets", float64(moved)/float64(len(keys)), share, float64(toOthers)/float64(len(keys)))
			if share < 0.7 || share > 1.3 {
				t.Errorf("adding a target to %d moved %d of %d keys: %.2f × 1/(N+1), want 0.7-1.3", n, moved, len(keys), share)
			}

			gone := ts[n/2]
			removed := NewHash(slices.Delete(slices.Clone(ts[:n]), n/2, n/2+1), 0, nil)
			own, others := 0, 0
			for _, k := range keys {
				x, y := before.PickKey(k, nil), removed.PickKey(k, nil)
				switch {
				case x == gone:
					own++
				case x != y:
					others++
				}
			}
			t.Logf("removing a target moved its %d keys and %d others (%.4f of keys)", own, others, float64(others)/float64(len(keys)))
			// Its own keys must all move; of the rest, fewer than a third of
			// its share (Maglev's price for exact shares).
			if limit := len(keys) / n / 3; others > limit {
				t.Errorf("removing a target of %d moved %d keys of other targets, want at most %d", n, others, limit)
			}
		})
	}
}

// TestHashWeights checks that table entries follow weight: each target
// holds its quota, within one entry, and keys follow.
func TestHashWeights(t *testing.T) {
	for _, ws := range [][]int{{1, 3}, {3, 1, 3, 1, 3, 1}, mixedWeights(1000), {1000, 1, 1}} {
		t.Run(weightsName(ws), func(t *testing.T) {
			ts := newTargets(ws...)
			h := NewHash(ts, 0, nil)
			entries := make([]int, len(ts))
			for s := range h.m {
				entries[h.at(s)]++
			}
			total := 0
			for _, w := range ws {
				total += w
			}
			for i, e := range entries {
				// One entry each, the rest by weight.
				want := 1 + float64(int(h.m)-len(ts))*float64(ws[i])/float64(total)
				if math.Abs(float64(e)-want) > 1 {
					t.Errorf("target %d (weight %d): got %d table entries of %d, want %.1f ± 1", i, ws[i], e, h.m, want)
				}
			}
		})
	}

	// Keys: a weight-3 target gets three times the keys of a weight-1.
	ts := newTargets(1, 3, 1, 3)
	h := NewHash(ts, 0, nil)
	counts := make(map[*target.Target]int)
	keys := hashKeys(200_000)
	for _, k := range keys {
		counts[h.PickKey(k, nil)]++
	}
	for _, tg := range ts {
		checkShare(t, fmt.Sprintf("target %s (weight %d)", tg.ID, tg.Weight), counts[tg], len(keys), float64(tg.Weight)/8)
	}
	if r := float64(counts[ts[1]]+counts[ts[3]]) / float64(counts[ts[0]]+counts[ts[2]]); math.Abs(r-3) > 0.1 {
		t.Errorf("weight 3 to weight 1 keys: got ratio %.3f, want 3 ± 0.1", r)
	}
}

func TestHashExclude(t *testing.T) {
	t.Run("single target", func(t *testing.T) {
		ts := newTargets(1)
		for _, c := range []float64{0, 1.25} {
			h := NewHash(ts, c, new(Load))
			if got := h.PickKey(42, ts[0]); got != ts[0] {
				t.Errorf("factor %v: PickKey(exclude the only target): got %v, want it", c, got)
			}
			if got := h.Pick(nil); got != ts[0] {
				t.Errorf("factor %v: Pick(nil): got %v, want the only target", c, got)
			}
		}
	})
	for _, ws := range [][]int{{1, 1}, equalWeights(10, 1), {1000, 1}, {1, 1000}, mixedWeights(100)} {
		for _, c := range []float64{0, 1.25} {
			t.Run(fmt.Sprintf("%s/factor=%v", weightsName(ws), c), func(t *testing.T) {
				ts := newTargets(ws...)
				h := NewHash(ts, c, new(Load))
				for k := range uint64(20000) {
					home := h.PickKey(k, nil)
					alt := h.PickKey(k, home)
					if alt == home {
						t.Fatalf("key %d: PickKey(exclude %s) returned it", k, home.ID)
					}
					if again := h.PickKey(k, home); again != alt {
						t.Fatalf("key %d: second choice %s, then %s: want the same", k, alt.ID, again.ID)
					}
					if other := ts[int(k)%len(ts)]; h.Pick(other) == other {
						t.Fatalf("Pick(exclude %s) returned it", other.ID)
					}
				}
			})
		}
	}
}

func TestHashAllOverloaded(t *testing.T) {
	// Every target far over its bound (inconsistent with the total, as
	// racing Begins could briefly make it): a pick still returns a
	// target, the least loaded of those it examined, never exclude.
	ts := newTargets(equalWeights(5, 1)...)
	for i, tg := range ts {
		tg.Inflight.Store(int64(100 + i))
	}
	h := NewHash(ts, 1.25, new(Load))
	for k := range uint64(1000) {
		got := h.PickKey(k, ts[0])
		if got == nil || got == ts[0] {
			t.Fatalf("key %d: got %v, want a target other than %s", k, got, ts[0].ID)
		}
		if got != ts[1] { // the least loaded but for the excluded one
			t.Fatalf("key %d: got %s (%d in flight), want the least loaded %s", k, got.ID, got.Inflight.Load(), ts[1].ID)
		}
	}
}

func TestNewHashPanics(t *testing.T) {
	for _, c := range []struct {
		name    string
		targets []*target.Target
		factor  float64
		load    *Load
	}{
		{"no targets", nil, 0, nil},
		{"factor 1", newTargets(1), 1, new(Load)},
		{"factor 0.5", newTargets(1), 0.5, new(Load)},
		{"negative factor", newTargets(1), -2, new(Load)},
		{"NaN factor", newTargets(1), math.NaN(), new(Load)},
		{"infinite factor", newTargets(1), math.Inf(1), new(Load)},
		{"factor without a load", newTargets(1), 1.25, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewHash: got no panic, want one")
				}
			}()
			NewHash(c.targets, c.factor, c.load)
		})
	}
}

func TestHashBeginDone(t *testing.T) {
	ts := newTargets(1, 1)
	load := new(Load)
	h1 := NewHash(ts, 1.25, load)
	h1.Begin(ts[0])
	h1.Begin(ts[1])
	h2 := NewHash(ts[:1], 1.25, load) // a later snapshot
	h2.Done(ts[1])                    // a request begun on h1 ends
	if got := load.n.Load(); got != 1 {
		t.Errorf("load after two Begins and a Done on another snapshot: got %d, want 1", got)
	}
	var nilHash *Hash
	nilHash.Begin(ts[1])
	if got := ts[1].Inflight.Load(); got != 1 {
		t.Errorf("in flight after Begin on a nil *Hash: got %d, want 1", got)
	}
	nilHash.Done(ts[1])
	h1.Done(ts[0])
	if got := load.n.Load(); got != 0 || ts[0].Inflight.Load() != 0 || ts[1].Inflight.Load() != 0 {
		t.Errorf("after every Done: load %d, in flight %d and %d, want 0", got, ts[0].Inflight.Load(), ts[1].Inflight.Load())
	}
}

// TestHashBoundedLoad runs sessions of skewed popularity (a Zipf law: a few
// hot keys send most requests) through a Hash with factor 1.25: requests
// arrive, hold a slot and end, one at a time, so that the test knows the
// exact loads. At every pick, the target's load with the new request must
// be within ⌈1.25 · w_i/W · (T+1)⌉, and a key whose own target is within its
// bound must get it.
func TestHashBoundedLoad(t *testing.T) {
	type workload struct {
		name string
		key  func(r *rand.Rand, z *rand.Zipf) uint64 // a session number
	}
	workloads := []workload{
		{"uniform", func(r *rand.Rand, _ *rand.Zipf) uint64 { return r.Uint64N(100_000) }},
		{"5 hot keys", func(r *rand.Rand, _ *rand.Zipf) uint64 { // 30% of requests
			if r.IntN(10) < 3 {
				return r.Uint64N(5)
			}
			return r.Uint64N(100_000)
		}},
		{"zipf", func(_ *rand.Rand, z *rand.Zipf) uint64 { return z.Uint64() }},
	}
	for _, c := range []struct {
		name    string
		weights []int
		perTgt  int // requests in flight per target, on average
	}{
		{"20 equal", equalWeights(20, 1), 8},
		{"20 equal busy", equalWeights(20, 1), 64},
		{"200 equal", equalWeights(200, 1), 4},
		{"10 weighted", []int{1, 2, 3, 4, 1, 2, 3, 4, 10, 10}, 20},
	} {
		for _, wl := range workloads {
			t.Run(c.name+"/"+wl.name, func(t *testing.T) {
				const factor = 1.25
				ts := newTargets(c.weights...)
				load := new(Load)
				h := NewHash(ts, factor, load)
				free := NewHash(ts, 0, nil) // the keys' own targets
				var totalWeight int64
				for _, w := range c.weights {
					totalWeight += int64(w)
				}
				// bound is ⌈5/4 · w/W · (T+1)⌉ in integers.
				bound := func(tg *target.Target, total int64) int64 {
					num := 5 * int64(tg.Weight) * (total + 1)
					den := 4 * totalWeight
					return (num + den - 1) / den
				}
				r := rand.New(rand.NewPCG(3, 4))
				zipf := rand.NewZipf(r, 1.1, 1, 1<<20)
				var inflight []*target.Target
				steady := len(ts) * c.perTgt
				var picks, home, homeWithin, steadyPicks, steadyHome int
				worst := 0.0
				for step := range 100_000 {
					// Grow to the steady level (ending a request every third
					// step), then end one for each that arrives, at random.
					if len(inflight) >= steady || step%3 == 2 && len(inflight) > 0 {
						j := r.IntN(len(inflight))
						h.Done(inflight[j])
						inflight[j] = inflight[len(inflight)-1]
						inflight = inflight[:len(inflight)-1]
						continue
					}
					key := KeyOf(fmt.Appendf(nil, "session-%d", wl.key(r, zipf)))
					total := load.n.Load()
					got := h.PickKey(key, nil)
					own := free.PickKey(key, nil)
					picks++
					after, b := got.Inflight.Load()+1, bound(got, total)
					if after > b {
						t.Fatalf("pick %d: %s (weight %d) would hold %d requests, over its bound %d (%d in flight in all)",
							picks, got.ID, got.Weight, after, b, total)
					}
					if own.Inflight.Load()+1 <= bound(own, total) {
						homeWithin++
						if got != own {
							t.Fatalf("pick %d: got %s, but the key's own %s is within its bound", picks, got.ID, own.ID)
						}
					}
					if got == own {
						home++
					}
					if int(total) >= steady-1 {
						steadyPicks++
						if got == own {
							steadyHome++
						}
						mean := float64(total+1) * float64(got.Weight) / float64(totalWeight)
						worst = max(worst, float64(after)/mean)
					}
					h.Begin(got)
					inflight = append(inflight, got)
				}
				var sum int64
				for _, tg := range ts {
					sum += tg.Inflight.Load()
				}
				if got := load.n.Load(); got != sum || got != int64(len(inflight)) {
					t.Errorf("load: got %d, want the %d in flight (targets say %d)", got, len(inflight), sum)
				}
				if worst > factor*1.5 {
					t.Errorf("highest load after a pick: %.2f × the weighted mean, want about %v at most", worst, factor)
				}
				t.Logf("%d picks, %.1f%% to the key's own target (always when it was within bound); at the steady %d in flight: %.1f%% home, highest load %.2f × weighted mean",
					picks, 100*float64(home)/float64(picks), steady, 100*float64(steadyHome)/float64(steadyPicks), worst)
				if home != homeWithin {
					t.Errorf("%d picks went home, but home was within bound %d times", home, homeWithin)
				}
			})
		}
	}
}

// TestHashConcurrent picks, begins and ends requests from many goroutines
// while the snapshot is rebuilt, as the proxy and a group do: picks are
// valid and the load returns to zero.
func TestHashConcurrent(t *testing.T) {
	ts := newTargets(mixedWeights(50)...)
	load := new(Load)
	var cur atomic.Pointer[Hash]
	cur.Store(NewHash(ts, 1.25, load))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // health changes: the routable set shrinks and grows
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cur.Store(NewHash(ts[i%2:], 1.25, load))
		}
	})
	var workers sync.WaitGroup
	for g := range 8 {
		workers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			held := make([]*target.Target, 0, 16)
			for range 5000 {
				h := cur.Load()
				k := r.Uint64() % 1000
				var exclude *target.Target
				if k%7 == 0 {
					exclude = ts[1]
				}
				tg := h.PickKey(k, exclude)
				if tg == nil || tg == exclude || !slices.Contains(ts, tg) {
					t.Errorf("PickKey(%d, %v) = %v", k, exclude, tg)
					return
				}
				h.Begin(tg)
				held = append(held, tg)
				if len(held) == cap(held) {
					for _, x := range held {
						cur.Load().Done(x) // on whichever snapshot is current
					}
					held = held[:0]
				}
			}
			for _, x := range held {
				cur.Load().Done(x)
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	if got := load.n.Load(); got != 0 {
		t.Errorf("load after every request ended: got %d, want 0", got)
	}
	for _, tg := range ts {
		if got := tg.Inflight.Load(); got != 0 {
			t.Errorf("%s: %d in flight after every request ended, want 0", tg.ID, got)
		}
	}
}

// TestHashManyTargets checks the uint32 table, for more than 65535 targets.
func TestHashManyTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a table of 1048583 entries for 70000 targets")
	}
	ts := make([]*target.Target, 70_000)
	for i := range ts {
		ts[i] = &target.Target{ID: fmt.Sprintf("10.%d.%d.%d:80", i>>16, i>>8&0xff, i&0xff), Weight: 1 + i%3}
	}
	h := NewHash(ts, 1.25, new(Load))
	if h.table32 == nil || h.table16 != nil {
		t.Fatalf("got a %d-entry uint16 table, want a uint32 one", len(h.table16))
	}
	entries := make([]int, len(ts))
	for s := range h.m {
		entries[h.at(s)]++
	}
	for i, e := range entries {
		if e == 0 {
			t.Fatalf("target %d has no table entry", i)
		}
	}
	for k := range uint64(1000) {
		if got := h.PickKey(k, ts[0]); got == nil || got == ts[0] {
			t.Fatalf("PickKey(%d, exclude %s) = %v", k, ts[0].ID, got)
		}
	}
}

func TestHashDoesNotAllocate(t *testing.T) {
	ts := newTargets(mixedWeights(1000)...)
	load := new(Load)
	for i, tg := range ts {
		tg.Inflight.Store(int64(i % 13))
		load.n.Add(int64(i % 13))
	}
	bounded := NewHash(ts, 1.25, load)
	free := NewHash(ts, 0, nil)
	ip := netip.MustParseAddr("2001:db8::1").As16()
	cookie := []byte("0123456789abcdef0123456789abcdef01234567")
	var k uint64
	for name, f := range map[string]func(){
		"PickKey unbounded": func() { k++; free.PickKey(k, ts[3]) },
		"PickKey bounded":   func() { k++; bounded.PickKey(k, ts[3]) },
		"Pick":              func() { bounded.Pick(ts[3]) },
		"Begin and Done":    func() { bounded.Begin(ts[5]); bounded.Done(ts[5]) },
		"KeyOf IP":          func() { KeyOf(ip[:]) },
		"KeyOf cookie":      func() { KeyOf(cookie) },
	} {
		if allocs := testing.AllocsPerRun(1000, f); allocs != 0 {
			t.Errorf("%s: got %v allocations, want 0", name, allocs)
		}
	}
}

func BenchmarkNewHash(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		for _, weights := range []string{"equal", "mixed"} {
			b.Run(fmt.Sprintf("%s/n=%d", weights, n), func(b *testing.B) {
				ws := equalWeights(n, 1)
				if weights == "mixed" {
					ws = mixedWeights(n)
				}
				ts := newTargets(ws...)
				b.ReportAllocs()
				for b.Loop() {
					NewHash(ts, 1.25, new(Load))
				}
			})
		}
	}
}

// BenchmarkPickKey picks for distinct keys, so that at 10,000 targets the
// table (2 MiB) and the targets do not all sit in cache.
func BenchmarkPickKey(b *testing.B) {
	for _, mode := range []string{"unbounded", "bounded", "at bound"} {
		for _, n := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/n=%d", mode, n), func(b *testing.B) {
				ts := newTargets(mixedWeights(n)...)
				load := new(Load)
				for i, tg := range ts {
					// bounded: every target at 3 in flight, well within;
					// at bound: 0-12, so about a third are over 1.25 × mean.
					l := int64(3)
					if mode == "at bound" {
						l = int64(i % 13)
					}
					tg.Inflight.Store(l * int64(tg.Weight))
					load.n.Add(l * int64(tg.Weight))
				}
				h := NewHash(ts, 1.25, load)
				if mode == "unbounded" {
					h = NewHash(ts, 0, nil)
				}
				b.ReportAllocs()
				var k uint64
				for b.Loop() {
					k++
					h.PickKey(k, nil)
				}
			})
		}
	}
}

func BenchmarkHashPick(b *testing.B) {
	ts := newTargets(mixedWeights(1000)...)
	h := NewHash(ts, 0, nil)
	b.ReportAllocs()
	for b.Loop() {
		h.Pick(nil)
	}
}

func BenchmarkKeyOf(b *testing.B) {
	ip := netip.MustParseAddr("2001:db8::1").As16()
	for _, c := range []struct {
		name string
		key  []byte
	}{
		{"ip=16B", ip[:]},
		{"cookie=40B", []byte("0123456789abcdef0123456789abcdef01234567")},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.key)))
			b.ReportAllocs()
			for b.Loop() {
				KeyOf(c.key)
			}
		})
	}
}

// BenchmarkBeginDone shows the cost of the group-wide counter when every
// core starts and ends requests at once, each on its own target; "targets
// only" is the Inflight counting the proxy does without it.
func BenchmarkBeginDone(b *testing.B) {
	ts := newTargets(equalWeights(64, 1)...)
	for _, c := range []struct {
		name string
		h    *Hash
	}{
		{"targets only", nil},
		{"with load", NewHash(ts, 1.25, new(Load))},
	} {
		b.Run(c.name, func(b *testing.B) {
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				tg := ts[next.Add(1)%uint64(len(ts))]
				for pb.Next() {
					c.h.Begin(tg)
					c.h.Done(tg)
				}
			})
		})
	}
}
