package target

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Counting the distinct sticky sessions a target serves, per minute, for
// the last hour, without a lock on the request path.
//
// Each minute has a HyperLogLog sketch of sketchRegs registers (Flajolet et
// al., with linear counting for small counts, as Heule et al.'s HLL++).
// The 60 sketches are a ring indexed by minute mod 60. A register is a
// uint32 that holds the minute it was last written in (its high 24 bits)
// and the rank (its low 8 bits), updated by compare-and-swap: a register
// written in an older minute counts as empty, so a minute's sketch needs
// no clearing when the ring comes round to it again, and no writer can
// lose an update to a clearing. Reading merges the registers of the
// window's minutes (the maximum rank of each) and estimates.
//
// Error: below 640 sessions (2.5 × 256 registers) the estimate is linear
// counting's, whose standard error is √(m(e^t − t − 1)) sessions for n
// sessions, t = n/m: 0.4 at 10 sessions (counts of a few are exact), 1.3
// at 30, 3.6 at 100 (3.6%), 16 at 300 (5.5%); beyond, HyperLogLog's,
// 1.04/√256 = 6.5% of the count. TestSessionCountError holds the estimate
// to three standard errors. The sketch costs 60 × 256 × 4 = 61,440 bytes per target,
// allocated on the target's first sticky request.

const (
	sketchBits    = 8
	sketchRegs    = 1 << sketchBits
	sketchMinutes = 60
	minuteMask    = 1<<24 - 1
)

// sessionSketch is a target's per-minute session counts.
type sessionSketch struct {
	regs [sketchMinutes][sketchRegs]atomic.Uint32
}

// MaxSessionWindow is the longest window SessionsSince counts over.
const MaxSessionWindow = sketchMinutes * time.Minute

// RecordSession counts a sticky request of session id (not 0) served by t
// at now. It takes no lock and allocates nothing but the sketch itself, on
// t's first sticky request.
func (t *Target) RecordSession(id uint64, now time.Time) {
	t.lastSession.Store(now.UnixNano())
	sk := t.sessions.Load()
	if sk == nil {
		sk = new(sessionSketch)
		if !t.sessions.CompareAndSwap(nil, sk) {
			sk = t.sessions.Load()
		}
	}
	sk.record(id, now.Unix()/60)
}

func (sk *sessionSketch) record(id uint64, minute int64) {
	h := mix(id)
	idx := h >> (64 - sketchBits)
	rank := uint32(bits.LeadingZeros64(h<<sketchBits|1<<(sketchBits-1)) + 1)
	tag := uint32(minute&minuteMask) << 8
	r := &sk.regs[minute%sketchMinutes][idx]
	for {
		old := r.Load()
		if old&^0xff == tag && old&0xff >= rank {
			return
		}
		if r.CompareAndSwap(old, tag|rank) {
			return
		}
	}
}

// mix is splitmix64's finalizer: session IDs are random already, but this
// keeps a count honest for IDs that are not.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// SessionsSince estimates the distinct sessions t served in the window
// ending at now: the current minute and the minutes before it, window
// rounded up to whole minutes (at most MaxSessionWindow).
func (t *Target) SessionsSince(window time.Duration, now time.Time) int {
	sk := t.sessions.Load()
	if sk == nil {
		return 0
	}
	return sk.count(window, now.Unix()/60)
}

func (sk *sessionSketch) count(window time.Duration, minute int64) int {
	n := int64(min(max((window+time.Minute-1)/time.Minute, 1), sketchMinutes))
	var merged [sketchRegs]uint8
	for m := minute - n + 1; m <= minute; m++ {
		tag := uint32(m&minuteMask) << 8
		regs := &sk.regs[((m%sketchMinutes)+sketchMinutes)%sketchMinutes]
		for i := range regs {
			if v := regs[i].Load(); v&^0xff == tag {
				merged[i] = max(merged[i], uint8(v))
			}
		}
	}
	return estimate(&merged)
}

// estimate is HyperLogLog's estimate from its registers, with linear
// counting where that is the better estimate (small counts).
func estimate(regs *[sketchRegs]uint8) int {
	const m = float64(sketchRegs)
	var sum float64
	zeros := 0
	for _, r := range regs {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	if zeros == sketchRegs {
		return 0
	}
	alpha := 0.7213 / (1 + 1.079/m)
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return int(math.Round(e))
}

// LastSession is when t last served a sticky request (zero: never).
func (t *Target) LastSession() time.Time {
	if n := t.lastSession.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
