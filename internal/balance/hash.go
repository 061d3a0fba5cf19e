package balance

// Consistent hashing for stickiness.type source_ip and hash: Maglev
// (Eisenbud et al., NSDI 2016) with bounded loads (Mirrokni, Thorup and
// Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2017), as Envoy's
// maglev with hash_balance_factor and HAProxy's hash-balance-factor.
//
// Why Maglev. Rendezvous hashing (HRW, Traefik's and Caddy's) moves exactly
// a target's share when it comes or goes, but scores every target on every
// pick, in time that grows with N. Ring hash (ketama, nginx "consistent")
// also moves exactly the share, but its shares vary by about 1/√points
// (±10% at 100 points a target) and a pick is a binary search. A Maglev
// pick is one table lookup at any N (BenchmarkPickKey, unbounded: 3.5 ns at
// 10 targets, 5.4 ns at 10,000) and every target holds its exact quota of
// the table. Its price is that a change moves somewhat more than the ideal
// share, more so as N/M grows. Measured with 100,000 keys, equal weights,
// one target added, in multiples of the ideal 1/(N+1):
//
//	M        N=10  N=100  N=300  N=1000  N=10000
//	65537    1.03  1.55
//	262147   1.02  1.22   2.0    6.1
//	1048583  1.00  1.09   1.39   3.3     36
//
// In absolute terms the extra is 0.1-0.5% of all keys a change; adding or
// removing 10% of the targets at once moves 1.06 (N=100) to 1.3 (N=10,000)
// times their share. Removing a target moves its keys and about as many
// extra as adding one.
//
// The table. M is the first of the primes 262147 and 1048583 that is at
// least 100·N (Maglev's advice, which keeps every target within 1% of its
// share; 65537, Envoy's default, moves 1.55× at N=100), else 1048583.
// Entries are uint16 target indices (uint32 above 65535 targets): 512 KiB
// up to 2,621 targets, 2 MiB above (4 MiB above 65,535), plus 8 bytes a
// target, so a Hash of 10,000 targets holds 2.1 MiB. NewHash takes about
// 11 ms at 10 targets, 16-20 ms at 1,000 and 73-94 ms at 10,000
// (BenchmarkNewHash: the fill probes about M·ln M slots); it runs when the
// group's snapshot is rebuilt, not on the request path.
//
// M is a pure function of N, so that every latch node and every restart
// builds the same table (hysteresis would depend on history). The price is
// one step: the change that takes N across 2,621 targets changes M, and so
// remaps nearly every key, once (bounded load still holds). Past 10,485
// targets M/N falls below 100: quotas get coarser (±N/M: ±1.5% at 15,000
// targets) and a change moves more than the ideal, as the table shows.
//
// Weights. Each target gets one entry, then the other M−N entries are
// shared in proportion to weight (rounded by cumulative weight, so that the
// quotas sum to M); a target lighter than one entry's worth thus gets one.
// The table is filled as Maglev does, each target taking the next free slot
// of its own permutation of the slots, in turns; heavier targets take more
// turns a round (Envoy's weighted Maglev). Rounds are capped at 4·M/N, so
// that skewed weights (one at 1000 among thousands at 1) cost at most 4·M
// turns rather than weight_max·M/W·N.
//
// Determinism across processes. Nothing depends on a random seed, the
// order of targets, the platform or the Go version: target i's permutation
// comes from XXH64 of its ID (offset = XXH64(id, 1) mod M, skip = XXH64(id,
// 2) mod (M−1) + 1), targets take turns in order of (XXH64(id, 1), id), and
// a key maps to slot ⌊mix(key)·M / 2^64⌋, with mix the splitmix64
// finalizer. XXH64 is the published xxHash (see KeyOf). TestHashPinned pins
// the hashes, TestHashGolden and TestHashGoldenTables picks and tables.
//
// Bounded load. With factor c, a target i of weight w_i (of total W) may
// take a request only if its in-flight count after the pick is within its
// weighted share of c times the total, counting this request:
//
//	inflight_i + 1 ≤ ⌈c · (T + 1) · w_i / W⌉
//
// where T is the number of requests in flight to the group. With equal
// weights that is Mirrokni's ⌈c·m/n⌉. The bounds sum to at least c·(T+1) >
// T, so some target is always within bound, and those within hold more than
// 1 − 1/c of the weight (20% at 1.25). When the key's own target is over its
// bound, the pick walks the slots after the key's slot (the table is an
// interleaving of the targets, so these are the key's next choices, and
// differ between keys of one target) to the first target within bound. The
// walk examines at most maxWalk slots, then takes the least loaded target
// it saw, relative to weight; with more than 20% of the weight within bound
// that is rare (roughly 0.8^64 ≈ 6·10⁻⁷ for large N; for small N the walk
// sees every target). With few requests per target the bound is tight: at
// 1.25 and 4 in flight per target a target may hold 5, so a key stays on
// its target less often (TestHashBoundedLoad reports how often).
//
// T must be cheap to read, so it is not summed over the targets (O(N)): it
// is a counter in a Load that the proxy maintains through Begin and Done.
// It cannot live in the Hash, which is rebuilt on every health change while
// requests begun on the previous snapshot are still in flight; a Load lives
// as long as its target group. Requests still in flight to a target that
// left the group stay in T until they end, which loosens the bound a
// little meanwhile.

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/latch-lb/latch/internal/target"
)

var _ target.Picker = (*Hash)(nil)

// Hash picks a target for a key by consistent hashing (Maglev), with an
// optional bound on each target's load. It is immutable, built per group
// snapshot like the other pickers, and safe for concurrent use; picks take
// no locks and do not allocate.
type Hash struct {
	targets []*target.Target
	// table maps a slot to an index in targets: table16 up to 65535
	// targets, else table32 (the other is nil).
	table16 []uint16
	table32 []uint32
	m       uint64 // len(table), a prime

	// Bounded load (load nil: unbounded). Target i is within bound while
	// inflight_i · den < (T+1) · num[i], with den = W·fixedOne and num[i] =
	// c·fixedOne·w_i: the bound above in exact integer arithmetic.
	load *Load
	den  uint64
	num  []uint64
}

// Load counts the requests in flight to a target group's targets for
// bounded-load hashing: the T of the bound. One Load serves every Hash
// built for the group, for the group's lifetime, so that a request begun on
// one snapshot and done on the next is counted once. The zero value is
// ready to use.
type Load struct {
	n atomic.Int64
	_ [56]byte // a cache line to itself: every request adds to n twice
}

// tableSizes are the table sizes M: the first primes from 2^18 and 2^20.
var tableSizes = [...]uint64{262147, 1048583}

// minShare is Maglev's table size per target: with at least 100 entries
// each, a target's share of the slots is within 1% of its weight's share.
const minShare = 100

// fixedOne is 1.0 in the fixed point that holds the balance factor: c is
// rounded to the nearest 1/2^20.
const fixedOne = 1 << 20

// maxWalk bounds the slots a pick examines past its own when targets are
// over their bound or excluded.
const maxWalk = 64

// maxFactor keeps the fixed-point products far from overflow; config allows
// up to 10.
const maxFactor = 1000

// NewHash builds the Maglev table for targets, which must not be empty
// (NewHash panics, as the other pickers' constructors need targets too; a
// group builds no picker when none is routable). Weights below 1 count as 1.
// NewHash follows the configured Weight, not EffectiveWeight: a weight that
// ramps up (slow start) or is held back (anomaly mitigation) would remap
// keys at every rebuild. (So a group whose pickers are Hashes sets
// target.Settings.WeightBlind, and keeps its Hash through such rebuilds.)
//
// balanceFactor 0 means unbounded: a key always goes to its own target
// (unless excluded), and load may be nil. Otherwise it must be more than 1
// (config allows 1 < c ≤ 10) and load must be the group's Load, shared by
// every Hash built for the group, with every request to its targets counted
// through Begin and Done; NewHash panics on a nil load then, since the bound
// would be silently wrong.
func NewHash(targets []*target.Target, balanceFactor float64, load *Load) *Hash {
	n := len(targets)
	switch {
	case n == 0:
		panic("balance: NewHash with no targets")
	case balanceFactor != 0 && !(balanceFactor > 1 && balanceFactor <= maxFactor):
		panic(fmt.Sprintf("balance: hash balance factor %v is not 0 or in (1, %d]", balanceFactor, maxFactor))
	case balanceFactor != 0 && load == nil:
		panic("balance: NewHash with a balance factor needs the group's Load")
	}
	m := tableSize(n)
	if uint64(n) > m {
		panic(fmt.Sprintf("balance: %d targets is more than the %d a hash table holds", n, m))
	}
	h := &Hash{targets: targets, m: m}

	weights := make([]uint64, n)
	var total uint64
	for i, t := range targets {
		weights[i] = uint64(t.Weight())
		total += weights[i]
	}
	if balanceFactor != 0 {
		h.load = load
		h.den = total * fixedOne
		c := uint64(math.Round(balanceFactor * fixedOne))
		h.num = make([]uint64, n)
		for i, w := range weights {
			h.num[i] = c * w
		}
	}

	// Turn order and permutations from the IDs only, so that neither the
	// order of targets nor anything local to this process matters.
	perms := make([]perm, n)
	ids := make([]uint64, n)
	order := make([]int32, n)
	for i, t := range targets {
		ids[i] = hashID(t.ID, 1)
		perms[i] = perm{next: ids[i] % m, skip: hashID(t.ID, 2)%(m-1) + 1}
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if ids[a] != ids[b] {
			if ids[a] < ids[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(targets[a].ID, targets[b].ID)
	})

	// Quotas: one entry each, the rest by cumulative weight in turn order.
	quota := make([]uint64, n)
	rest := m - uint64(n)
	var cum uint64
	var qmax uint64
	for _, i := range order {
		lo := mulDiv(rest, cum, total)
		cum += weights[i]
		quota[i] = 1 + mulDiv(rest, cum, total) - lo
		qmax = max(qmax, quota[i])
	}
	rounds := min(qmax, 4*m/uint64(n)+1)

	if n <= math.MaxUint16 { // MaxUint16 itself marks a free slot
		h.table16 = fill(make([]uint16, m), perms, order, quota, rounds)
	} else {
		h.table32 = fill(make([]uint32, m), perms, order, quota, rounds)
	}
	return h
}

// tableSize returns M for n targets.
func tableSize(n int) uint64 {
	for _, m := range tableSizes {
		if uint64(n)*minShare <= m {
			return m
		}
	}
	return tableSizes[len(tableSizes)-1]
}

// perm is a target's walk through the slots: next, next+skip, ... mod M.
// M is prime, so the walk visits every slot.
type perm struct{ next, skip uint64 }

// fill fills table with target indices: in each of rounds rounds, each
// target in turn order takes the next free slots of its permutation until
// it holds its share of quota so far (⌈round·quota/rounds⌉).
func fill[E uint16 | uint32](table []E, perms []perm, order []int32, quota []uint64, rounds uint64) []E {
	free := ^E(0)
	for i := range table {
		table[i] = free
	}
	m := uint64(len(table))
	held := make([]uint64, len(perms))
	for r := uint64(1); r <= rounds; r++ {
		for _, i := range order {
			want := (r*quota[i] + rounds - 1) / rounds
			p := &perms[i]
			for ; held[i] < want; held[i]++ {
				for table[p.next] != free {
					if p.next += p.skip; p.next >= m {
						p.next -= m
					}
				}
				table[p.next] = E(i)
				if p.next += p.skip; p.next >= m {
					p.next -= m
				}
			}
		}
	}
	return table
}

// mulDiv returns ⌊a·b/c⌋ without overflow; a·b/c must fit in 64 bits.
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// PickKey returns the target for key: the key's own target, unless it is
// exclude or over its load bound; then the next target in the key's
// preference order that is neither (see the file comment). It returns
// exclude only when it is the only target. Any 64-bit key works (PickKey
// mixes it again), but KeyOf is the way to make one from bytes.
func (h *Hash) PickKey(key uint64, exclude *target.Target) *target.Target {
	s, _ := bits.Mul64(mix(key), h.m)
	i := h.at(s)
	t := h.targets[i]
	var total uint64
	if h.load != nil {
		total = h.total()
	}
	if t != exclude && (h.load == nil || h.within(i, total)) {
		return t
	}
	return h.walk(key, s, i, total, exclude)
}

// Pick returns the target of a random key (never exclude, unless it is the
// only target), so that a *Hash is a target.Picker for requests that carry
// no key.
func (h *Hash) Pick(exclude *target.Target) *target.Target {
	return h.PickKey(rand.Uint64(), exclude)
}

// Begin counts a request to t, a target of h's group, in t.Inflight and
// in the group's Load. The proxy calls it instead of t.Inflight.Add(1) for
// every request it sends to the group, whichever way t was chosen (hash,
// retry, session), and Done when the request ends. Begin and Done on a nil
// *Hash touch only t.Inflight, so callers need not check which kind of
// picker the group has.
func (h *Hash) Begin(t *target.Target) {
	t.Inflight.Add(1)
	if h != nil && h.load != nil {
		h.load.n.Add(1)
	}
}

// Done ends a request counted by Begin. It may be called on any Hash built
// with the same Load (the snapshot may have changed meanwhile).
func (h *Hash) Done(t *target.Target) {
	t.Inflight.Add(-1)
	if h != nil && h.load != nil {
		h.load.n.Add(-1)
	}
}

func (h *Hash) at(s uint64) int {
	if h.table16 != nil {
		return int(h.table16[s])
	}
	return int(h.table32[s])
}

// total returns T, never below 0 (a pick may see a Done's decrement before
// the matching Begin's increment elsewhere).
func (h *Hash) total() uint64 {
	return uint64(max(h.load.n.Load(), 0))
}

// within reports whether target i may take one more request while total
// are in flight.
func (h *Hash) within(i int, total uint64) bool {
	l := uint64(max(h.targets[i].Inflight.Load(), 0))
	ahi, alo := bits.Mul64(l, h.den)
	bhi, blo := bits.Mul64(total+1, h.num[i])
	return ahi < bhi || ahi == bhi && alo < blo
}

// walk is PickKey's slow path: it examines the maxWalk slots after s
// (whose target is home) for a target that is not exclude and within bound
// while total (T, read once by PickKey; 0 when unbounded) are in flight.
func (h *Hash) walk(key, s uint64, home int, total uint64, exclude *target.Target) *target.Target {
	best, bestLoad := -1, math.Inf(1)
	consider := func(i int) {
		if h.load == nil {
			return
		}
		// Load per unit of allowance, for the fallback.
		if l := float64(h.targets[i].Inflight.Load()) / float64(h.num[i]); l < bestLoad {
			best, bestLoad = i, l
		}
	}
	if h.targets[home] != exclude {
		consider(home)
	}
	prev := home
	for range maxWalk {
		if s++; s == h.m {
			s = 0
		}
		i := h.at(s)
		if i == prev {
			continue
		}
		prev = i
		t := h.targets[i]
		if t == exclude {
			continue
		}
		if h.load == nil || h.within(i, total) {
			return t
		}
		consider(i)
	}
	if best >= 0 {
		return h.targets[best]
	}
	// Every slot examined was exclude's (it holds nearly all the weight):
	// take another target, the same one for the same key.
	n := uint64(len(h.targets))
	if n == 1 {
		return h.targets[0]
	}
	j, _ := bits.Mul64(mix(key^0x9e3779b97f4a7c15), n)
	if h.targets[j] == exclude {
		j = (j + 1) % n
	}
	return h.targets[j]
}

// KeyOf returns the hash key of b (a client IP's bytes, a header or cookie
// value) for PickKey: XXH64 of b with seed 0, the published xxHash
// (xxhash.com; `xxhsum -H1` prints it), so that every latch node, every
// restart and any future version maps a key to the same target. It is
// github.com/cespare/xxhash/v2's (assembly on amd64 and arm64) and does not
// allocate; 16 bytes take about 4.5 ns, 40 bytes 10 ns (BenchmarkKeyOf).
// Callers should hash IP addresses in one form (netip.Addr.As16 of the
// unmapped address, say) so that IPv4 and IPv4-mapped IPv6 clients agree.
func KeyOf(b []byte) uint64 {
	return xxhash.Sum64(b)
}

// KeyOfAddr is KeyOf of a's 16-byte form, unmapped (so that IPv4 and
// IPv4-mapped IPv6 clients agree); unlike a caller's a.As16()[:], it keeps
// the bytes off the heap.
func KeyOfAddr(a netip.Addr) uint64 {
	b := a.Unmap().As16()
	return xxhash.Sum64(b[:])
}

// hashID returns XXH64 of a target's ID with seed, 1 or 2 (its
// permutation's offset and skip). Only NewHash calls it, off the request
// path; the Digest stays on the stack all the same.
func hashID(id string, seed uint64) uint64 {
	d := xxhash.NewWithSeed(seed)
	d.WriteString(id)
	return d.Sum64()
}

// mix is the splitmix64 finalizer (Stafford's variant 13): a bijection
// that spreads every input bit over the output.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
