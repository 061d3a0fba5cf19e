package proxy

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// Choosing a request's target: the session it carries, a hash key, or the
// group's algorithm, with bounded load, rebalancing after a scale-out,
// and an HTTP/2 connection's first burst kept together.

// pick chooses the request's target: the one its session names, if that
// may still serve it, or else the algorithm's choice. issued is when the
// session first picked the target (0: now), and stuck says whether the
// request carried a live session.
func (x *exchange) pick(view *target.View, now time.Time) (t *target.Target, issued int64, stuck bool) {
	x.moved, x.session = "", 0
	rec := &x.rec
	if k := x.be.Key; k != nil {
		if h, ok := view.Picker.(*balance.Hash); ok {
			if key, ok := x.hashKey(k); ok {
				x.key, x.keyed = key, true
				return h.PickKey(key, nil), 0, false
			}
		}
	}
	if p := x.be.Sticky; p != nil {
		var miss sticky.Miss
		x.sess, miss = p.ReadFields(&x.req, now)
		rec.Sticky = sticky.Started
		switch miss {
		case sticky.Hit:
			// A session keeps its ID wherever it goes: moved, it is one
			// session on its new target.
			x.session = x.sess.ID
			t, ok := view.Lookup(x.sess.Target)
			switch {
			case t == nil:
				x.moved = x.sess.Target
				rec.Sticky, rec.StickyReason = sticky.Invalid, sticky.NoSuchTarget
				x.session = 0
				if view.Deregistered(x.sess.Target) {
					x.session = x.sess.ID
					rec.Sticky, rec.StickyReason = sticky.Moved, sticky.TargetDeregistered
				}
			case t.Generation != x.sess.Generation:
				x.moved = x.sess.Target
				rec.Sticky, rec.StickyReason = sticky.Moved, sticky.TargetDeregistered
			case !ok:
				x.moved = x.sess.Target
				rec.Sticky, rec.StickyReason = sticky.Moved, sticky.TargetUnhealthy
				if t.Drained() {
					rec.StickyReason = sticky.TargetDraining
				}
			default:
				if u := rebalance(view, t, x.sess.LastSeen, x.be.RebalanceIdle, now); u != nil {
					// Idle long enough, with a new target to relieve this one.
					x.moved = t.ID
					rec.Sticky, rec.StickyReason, rec.MovedFrom = sticky.Moved, sticky.Rebalanced, t.ID
					return u, 0, true
				}
				rec.Sticky = sticky.Stuck
				return t, x.sess.Issued, true
			}
			rec.MovedFrom = x.moved
		case sticky.NoCookie:
		default:
			rec.Sticky, rec.StickyReason = sticky.Invalid, miss.InvalidReason()
		}
		if x.burst != nil {
			// No live session: the connection's first-burst target.
			t, issued, id := x.burst.pick(x.be, view, now)
			if x.session == 0 {
				x.session = id
			}
			return t, issued, false
		}
		return boundedPick(view, x.be.BalanceFactor), 0, false
	}
	return view.Picker.Pick(nil), 0, false
}

// alternative picks another target after t refused a connection: the
// key's next choice under hash affinity, the algorithm's otherwise.
func (x *exchange) alternative(view *target.View, t *target.Target) *target.Target {
	if h, ok := view.Picker.(*balance.Hash); ok && x.keyed {
		return h.PickKey(x.key, t)
	}
	return view.Picker.Pick(t)
}

// loadSample bounds how many targets a load estimate looks at: all of them
// up to this many, a random sample beyond, so that the cost stays flat in
// the group's size.
const loadSample = 64

// meanLoad estimates the mean number of requests in flight per target.
func meanLoad(ts []*target.Target) float64 {
	if len(ts) == 0 {
		return 0
	}
	var sum int64
	if len(ts) <= loadSample {
		for _, t := range ts {
			sum += t.Inflight.Load()
		}
		return float64(sum) / float64(len(ts))
	}
	for range loadSample {
		sum += ts[rand.IntN(len(ts))].Inflight.Load()
	}
	return float64(sum) / loadSample
}

// loadBound is the most requests a target may have in flight, this one
// included, under a balance factor: ceil(factor × the mean with this
// request added), as in consistent hashing with bounded loads (Mirrokni
// et al.) and HAProxy's hash-balance-factor.
func loadBound(ts []*target.Target, factor float64) int64 {
	mean := meanLoad(ts) + 1/float64(len(ts))
	return int64(math.Ceil(factor * mean))
}

// boundedPick picks a target for a new session. With a balance factor, it
// never picks one whose load would exceed the bound (Pick's choice first,
// to keep the algorithm's spread, then the least loaded of a sample):
// sessions already stuck stay where they are; only new ones steer clear.
func boundedPick(view *target.View, factor float64) *target.Target {
	t := view.Picker.Pick(nil)
	if factor == 0 || len(view.Routable) < 2 {
		return t
	}
	bound := loadBound(view.Routable, factor)
	for range 4 {
		if t.Inflight.Load()+1 <= bound {
			return t
		}
		t = view.Picker.Pick(t)
	}
	return leastLoaded(view.Routable, t)
}

// leastLoaded returns the least loaded of the targets (of a sample, beyond
// loadSample), or def when none is less loaded.
func leastLoaded(ts []*target.Target, def *target.Target) *target.Target {
	best, least := def, def.Inflight.Load()
	n := len(ts)
	for i := range min(n, loadSample) {
		t := ts[i]
		if n > loadSample {
			t = ts[rand.IntN(n)]
		}
		if l := t.Inflight.Load(); l < least {
			best, least = t, l
		}
	}
	return best
}

// rebalance decides whether a live session on t, idle since lastSeen, moves
// to a target that joined the group (turned healthy) while it was idle:
// only after it has been idle for the group's rebalance_idle_seconds, and
// with the joined targets' share of the weight as its chance, so that the
// idle sessions spread to the new targets in proportion and the rest stay
// where they are. A scale-out thus relieves the old targets without moving
// sessions for no reason. It returns the new target, or nil.
func rebalance(view *target.View, t *target.Target, lastSeen int64, idle time.Duration, now time.Time) *target.Target {
	if idle == 0 || now.Unix()-lastSeen < int64(idle/time.Second) || len(view.Routable) < 2 {
		return nil
	}
	var joined, total int
	for _, u := range view.Routable {
		w := u.Weight()
		total += w
		if u != t && joinedAfter(u, lastSeen) {
			joined += w
		}
	}
	if joined == 0 || rand.IntN(total) >= joined {
		return nil
	}
	// Among the joined targets, by weight: the least loaded of two draws.
	var pick *target.Target
	for range 2 {
		n := rand.IntN(joined)
		for _, u := range view.Routable {
			if u == t || !joinedAfter(u, lastSeen) {
				continue
			}
			if n -= u.Weight(); n < 0 {
				if pick == nil || u.Inflight.Load() < pick.Inflight.Load() {
					pick = u
				}
				break
			}
		}
	}
	return pick
}

// joinedAfter reports whether u joined the group (came into service,
// but not with the targets latch started with: see Target.Joined) after
// the second lastSeen. A session's times are whole seconds: a target that
// joined in that second may have done so before the session's last
// request, and does not count as joined while it was idle.
func joinedAfter(u *target.Target, lastSeen int64) bool {
	return u.Joined() > lastSeen
}

// KeyKind is where hash affinity finds a request's key.
type KeyKind uint8

const (
	KeySourceIP KeyKind = iota // the client's address (stickiness.type source_ip)
	KeyHeader                  // a request header's value (stickiness.hash.header)
	KeyCookie                  // a request cookie's value (stickiness.hash.cookie)
)

// HashKey is a group's hash affinity: what keys its requests.
type HashKey struct {
	Kind KeyKind
	Name []byte // the header's or cookie's name
	// Trusted are the peers whose X-Forwarded-For names the client; from
	// any other peer the TCP address is the client (KeySourceIP).
	Trusted []netip.Prefix
}

// hashKey returns the request's affinity key, or false when it has none
// (no such header or cookie): such a request goes where the picker's
// random key sends it.
func (x *exchange) hashKey(k *HashKey) (uint64, bool) {
	switch k.Kind {
	case KeySourceIP:
		return balance.KeyOfAddr(x.clientAddr(k.Trusted)), true
	case KeyHeader:
		if v := x.field(k.Name); v != nil {
			return balance.KeyOf(v), true
		}
	case KeyCookie:
		for i, f := range x.req.Fields {
			if !sticky.IsCookie(&x.req, i) {
				continue
			}
			if v, ok := cookieValue(f.Value, k.Name); ok {
				return balance.KeyOf(v), true
			}
		}
	}
	return 0, false
}

// cookieValue finds a cookie in one Cookie field.
func cookieValue(line, name []byte) ([]byte, bool) {
	for n, v, rest, ok := sticky.NextCookie(line); ok; n, v, rest, ok = sticky.NextCookie(rest) {
		if string(n) == string(name) {
			return v, true
		}
	}
	return nil, false
}

// clientAddr is the client's address for source-IP affinity: the TCP peer,
// unless the peer is a trusted proxy; then the rightmost X-Forwarded-For
// address that is not itself a trusted proxy (the nearest untrusted hop:
// anything left of it the client could have forged).
func (x *exchange) clientAddr(trusted []netip.Prefix) netip.Addr {
	addr := x.src
	if !inAny(addr, trusted) {
		return addr
	}
	req := &x.req
	for i := len(req.Fields) - 1; i >= 0; i-- {
		if req.Kinds[i] != h1.KindXForwardedFor {
			continue
		}
		v := req.Fields[i].Value
		if len(v) == 0 {
			continue // an empty field names no hop
		}
		for {
			// Every element counts, an empty one too ("a,,b", ",b"):
			// it is not an address, so the walk ends there.
			j := bytes.LastIndexByte(v, ',')
			a, ok := parseHop(h1.TrimOWS(v[j+1:]))
			if !ok {
				return addr // garbage: trust nothing further left
			}
			addr = a.Unmap()
			if !inAny(addr, trusted) {
				return addr
			}
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return addr
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses an X-Forwarded-For address without copying it to a
// string: netip keeps nothing of its input but a zone (and, on an error
// dropped here, the input), and an address with a zone is refused, as no
// hop has one.
func parseHop(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	return a, err == nil
}

// burst is an HTTP/2 connection's first-burst affinity: a browser's first
// page load sends many requests at once on one connection before it holds
// a sticky cookie, which would otherwise land on different targets (and
// get different cookies). Every request of the connection without a live
// session goes to the target the first one picked, as the same session.
type burst struct {
	mu     sync.Mutex
	group  *target.Group
	t      *target.Target
	issued int64
	id     uint64 // the session's ID, random (rand.Uint64 takes no lock nor syscall)
}

type burstKey struct{}

// pick returns the connection's target for a request without a session,
// picking it (under the lock, so that concurrent streams agree) the first
// time, or again when it can no longer serve, with the session's issue
// time and ID.
func (b *burst) pick(be *Backend, view *target.View, now time.Time) (*target.Target, int64, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.t != nil && b.group == be.Group {
		// A drained target keeps the sessions it has, not the new ones of
		// a connection whose client holds no cookie yet.
		if t, ok := view.Lookup(b.t.ID); ok && t == b.t && !t.Drained() {
			return t, b.issued, b.id
		}
	}
	b.group, b.t, b.issued = be.Group, view.Picker.Pick(nil), now.Unix()
	if b.id == 0 {
		b.id = max(rand.Uint64(), 1)
	}
	return b.t, b.issued, b.id
}

// repin moves the connection's session from old, which refused a
// connection, to alt, and returns the session's issue time there.
func (b *burst) repin(be *Backend, old, alt *target.Target, now time.Time) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.t == old || b.t == nil {
		b.group, b.t, b.issued = be.Group, alt, now.Unix()
	}
	if b.t == alt {
		return b.issued
	}
	return 0
}
