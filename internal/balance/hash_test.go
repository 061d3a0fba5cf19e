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
		if got := hashID(c.in, 0); got != c.want {
			t.Errorf("hashID(%q, 0): got %#x, want %#x", c.in, got, c.want)
		}
	}
}

// TestHashPinned pins KeyOf, KeyOfAddr and the seeded hashes of target IDs
// (Maglev's permutations: seeds 1 and 2) to the values of the XXH64 latch
// carried before it used github.com/cespare/xxhash/v2: a key of every
// length up to 40 bytes (each tail path: 1-, 4- and 8-byte, and a 32-byte
// stripe), target IDs, and client addresses in their 16-byte form. A change
// here moves clients between targets.
func TestHashPinned(t *testing.T) {
	for _, c := range []struct {
		in                string
		key, seed1, seed2 uint64
	}{
		{"", 0xef46db3751d8e999, 0xd5afba1336a3be4b, 0x5a68f3b1643c966f},
		{"C", 0x13fc4b62f74907d4, 0xbb9cff53b7445da8, 0x0157fd2793ba9753},
		{"Ca", 0x4f09e1e6adb35342, 0xa62172f6c1fdf971, 0xd279fcacf2ec80c2},
		{"Cal", 0x64b783f4c3f182a5, 0x7f6bd307e1f6135c, 0x31c1817b8aa348ed},
		{"Call", 0x714afec372c31f26, 0x821b8caa6255365f, 0x08fa85a0aa8c8b74},
		{"Call ", 0xaf6e6af1be40b218, 0x3a178ebc48c15139, 0xdf5ca70a83889efd},
		{"Call m", 0x777a06d5ad2b1934, 0xed112860e0d25547, 0x4438f4c60178572e},
		{"Call me", 0xd360cf6efa3e0ef9, 0x437ce754cec5c925, 0x7086fe5df0daf435},
		{"Call me ", 0x61b25793fa1f1b73, 0xfd067ef560f1da1f, 0xf0949737233c127d},
		{"Call me I", 0xf04cd7abdbca65eb, 0xeade0e0595d2c902, 0x684025b3b5e87023},
		{"Call me Is", 0xf2c0fcd1ec9d11d0, 0x3634d9787434dcad, 0xc8bb0c22d2a1e0d3},
		{"Call me Ish", 0xdc8bab9dd6947eae, 0x918d7fdb3e22725c, 0x5e71580b121c8228},
		{"Call me Ishm", 0xa613063ccea0efd7, 0xc8237e0c09f3b13e, 0xaeb66bf768341b1f},
		{"Call me Ishma", 0xe70a414a164605b9, 0xe354e20039e79743, 0xdb3b410de8a6a464},
		{"Call me Ishmae", 0x08eeca210c147ab7, 0x15cd70132805ad73, 0xc7a95c1af5f2404b},
		{"Call me Ishmael", 0x1654d079acb28108, 0xadfc5179a5e29904, 0x3207d77f1f71b01f},
		{"Call me Ishmael.", 0x6d04390fc9d61a90, 0xbc70a11a9d107695, 0xa25abe124fe1de7d},
		{"Call me Ishmael. ", 0x99bfdc6fcddffd25, 0xcb373b014ff1c132, 0x2e6cedb19de2c74f},
		{"Call me Ishmael. S", 0xed20b435389031e3, 0xaf5140b8be74e425, 0x27acdef6b507a15d},
		{"Call me Ishmael. So", 0xdbc024680988e5f9, 0x9003ea7ae9d3bc09, 0x05e07bdda1c67d2c},
		{"Call me Ishmael. Som", 0x27b977cac7f6dce1, 0xcf88f05960664b8d, 0x00a1ccfc0562ee81},
		{"Call me Ishmael. Some", 0x47e7a1083b056392, 0x54f98631aeafee7c, 0x83ded77a369e7068},
		{"Call me Ishmael. Some ", 0x6da9681a4fd22e49, 0xf3fca3c56a935bdb, 0x5dd2864cff3c3cd4},
		{"Call me Ishmael. Some y", 0x34bbbc4f69e6aa9c, 0x88997dc4a5058373, 0xbcdbfa585bcbf858},
		{"Call me Ishmael. Some ye", 0xeb89ea1384fe2b63, 0xf42a9b4e45b34463, 0x6bdeb63b18d40902},
		{"Call me Ishmael. Some yea", 0x358b30fa1e781308, 0x78b3b79638281e97, 0x7a49fc25dfc9d8e2},
		{"Call me Ishmael. Some year", 0x41c6e0a2a8e393ff, 0x134b2daa2d1ee7ea, 0x637aeaaba1642aa7},
		{"Call me Ishmael. Some years", 0x698affbc630f6483, 0x9b4b04ebcaf9705e, 0xa5742bf498cd0e64},
		{"Call me Ishmael. Some years ", 0xe1f1d0d7e9ddcb83, 0x7f6dcbd17e47c194, 0xf0c781ba9cfe8732},
		{"Call me Ishmael. Some years a", 0x2d8e6f9bc62a685a, 0x6573be66a96893f5, 0xf340eb815adbb55b},
		{"Call me Ishmael. Some years ag", 0x6378411258f0552f, 0x82e5065ef691ffd3, 0x26ee67f3d3349076},
		{"Call me Ishmael. Some years ago", 0xa437e222793a0549, 0xbc376795beaf6e4c, 0x4dc23837fa2e2699},
		{"Call me Ishmael. Some years ago-", 0xce0d12f5fe4d4fb9, 0xc599a68bb710ade5, 0x358e3faad9a3aebe},
		{"Call me Ishmael. Some years ago--", 0xb674223397590005, 0x227a5497bc60f2ff, 0xe8f003d8e0970666},
		{"Call me Ishmael. Some years ago--n", 0x9cfb6ecfc87fd953, 0xa713ea9037294a4e, 0xd38e997956f87bb8},
		{"Call me Ishmael. Some years ago--ne", 0x88e3ee58ecf72413, 0x138b04f4f1109b15, 0x6867dbe389f5ed95},
		{"Call me Ishmael. Some years ago--nev", 0xf2fa3e470d600575, 0xba5649d2cc11239b, 0x4abd137052ec4c88},
		{"Call me Ishmael. Some years ago--neve", 0x751e34e18c5bb4cf, 0xad425e156945820e, 0x1544f0c3c9f2d5cd},
		{"Call me Ishmael. Some years ago--never", 0xef38d34eb7ba812a, 0xbf60b0b9fee35f46, 0x30ccee5fd3f02e46},
		{"Call me Ishmael. Some years ago--never ", 0x49eb5329bdb14ec7, 0xa10b5cfaad18f9e7, 0x53650a73606d3b36},
		{"Call me Ishmael. Some years ago--never m", 0x0960f1368e3d18ce, 0x4c398770f0012adc, 0x2b58541c3b145a86},
		{"10.1.0.1:8080", 0x0c3ea6e53c760385, 0x0baf96014c0f807d, 0x7884902e8438aea3},
		{"[2001:db8::1]:443", 0xf75f72bb0be4ee5e, 0x70d609cd1d041672, 0xba4fba41312b38e2},
		{"backend-7.eu-west-1.compute.internal:8443", 0x8f18ad40fd549627, 0x834baa22372ad3b5, 0x4b22dc35e3b46574},
	} {
		if got := KeyOf([]byte(c.in)); got != c.key {
			t.Errorf("KeyOf(%q): got %#x, want %#x", c.in, got, c.key)
		}
		if got := hashID(c.in, 1); got != c.seed1 {
			t.Errorf("hashID(%q, 1): got %#x, want %#x", c.in, got, c.seed1)
		}
		if got := hashID(c.in, 2); got != c.seed2 {
			t.Errorf("hashID(%q, 2): got %#x, want %#x", c.in, got, c.seed2)
		}
	}
	for _, c := range []struct {
		addr              string
		key, seed1, seed2 uint64
	}{
		{"0.0.0.0", 0x87776d87f704d188, 0x2586d1012712729c, 0x895078d6aad14ea3},
		{"192.0.2.1", 0xde3cbbe5a2240bf0, 0x6b21cfb43d984e03, 0x43229d2352fb0022},
		{"::ffff:192.0.2.1", 0xde3cbbe5a2240bf0, 0x6b21cfb43d984e03, 0x43229d2352fb0022},
		{"10.1.0.1", 0x1d1b9c64dbdb4dc6, 0x4a913cfaefe517ba, 0x10f0b8a131ff7976},
		{"255.255.255.255", 0xd2b449471d99272d, 0x0e7752f99fa9d09e, 0x1718d3f07f32f92b},
		{"::", 0xaf09f71516247c32, 0xf5a590185dc0e90c, 0x66dc0701cbbd4f2f},
		{"::1", 0xf1dd97d1b9d614c7, 0x6d3a40b86ac14eb2, 0xda7e2c7af511c918},
		{"2001:db8::1", 0x97f11e0685f67ae8, 0x745491ef31c8347e, 0xe3cf4d0dc80f31ec},
		{"fe80::1ff:fe23:4567:890a", 0x792c96dc1a867467, 0x802b2f6a24f0e0bd, 0xe2de963292e2abbd},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0xa721445d6a57c444, 0xb3e95c50c6465085, 0x30a719301e775a6c},
	} {
		a := netip.MustParseAddr(c.addr)
		b := a.Unmap().As16()
		if got := KeyOfAddr(a); got != c.key {
			t.Errorf("KeyOfAddr(%s): got %#x, want %#x", a, got, c.key)
		}
		if got := KeyOf(b[:]); got != c.key {
			t.Errorf("KeyOf(%s as 16 bytes): got %#x, want %#x", a, got, c.key)
		}
		if got := hashID(string(b[:]), 1); got != c.seed1 {
			t.Errorf("hashID(%s as 16 bytes, 1): got %#x, want %#x", a, got, c.seed1)
		}
		if got := hashID(string(b[:]), 2); got != c.seed2 {
			t.Errorf("hashID(%s as 16 bytes, 2): got %#x, want %#x", a, got, c.seed2)
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
			ts[i] = target.New(fmt.Sprintf("10.3.%d.%d:8443", i/256, i%256), i%7+1, 0, false)
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
		checkShare(t, fmt.Sprintf("target %s (weight %d)", tg.ID, tg.Weight()), counts[tg], len(keys), float64(tg.Weight())/8)
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
					num := 5 * int64(tg.Weight()) * (total + 1)
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
							picks, got.ID, got.Weight(), after, b, total)
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
						mean := float64(total+1) * float64(got.Weight()) / float64(totalWeight)
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
		ts[i] = target.New(fmt.Sprintf("10.%d.%d.%d:80", i>>16, i>>8&0xff, i&0xff), 1+i%3, 0, false)
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
	addr := netip.MustParseAddr("2001:db8::1")
	ip := addr.As16()
	cookie := []byte("0123456789abcdef0123456789abcdef01234567")
	var k uint64
	for name, f := range map[string]func(){
		"PickKey unbounded": func() { k++; free.PickKey(k, ts[3]) },
		"PickKey bounded":   func() { k++; bounded.PickKey(k, ts[3]) },
		"Pick":              func() { bounded.Pick(ts[3]) },
		"Begin and Done":    func() { bounded.Begin(ts[5]); bounded.Done(ts[5]) },
		"KeyOf IP":          func() { KeyOf(ip[:]) },
		"KeyOf cookie":      func() { KeyOf(cookie) },
		"KeyOfAddr":         func() { KeyOfAddr(addr) },
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
					tg.Inflight.Store(l * int64(tg.Weight()))
					load.n.Add(l * int64(tg.Weight()))
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
