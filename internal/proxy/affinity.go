package proxy

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
	"unsafe"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

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
		w := max(u.Weight, 1)
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
			if n -= max(u.Weight, 1); n < 0 {
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
		for len(v) > 0 {
			var hop []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, nil
			}
			a, ok := parseHop(h1.TrimOWS(hop))
			if !ok {
				return addr // garbage: trust nothing further left
			}
			addr = a.Unmap()
			if !inAny(addr, trusted) {
				return addr
			}
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
