package proxy

import (
	"os"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/upstream"
)

// loopFwd is the target's side of an exchange on an event loop, whoever
// the client is (an HTTP/1.1 connection of the loop's, or a stream of an
// HTTP/2 connection the loop serves): it forwards the request on a target
// connection of the loop's shard of the target's pool, reads the response
// head, and hands what it got to its owner, never blocking. The owner is
// woken when the target's socket is ready (Step) and checks its timeouts
// at the loop's ticks (checkTimeouts).
type loopFwd struct {
	x     *exchange
	ls    *loopState
	owner fwOwner
	up    *upstream.LoopConn // the target connection in use
	stage fwStage
	// sendElsewhere says a goroutine sends the request (it does not fit
	// the loop).
	sendElsewhere bool
}

// fwOwner is what a loopFwd hands the exchange back to.
type fwOwner interface {
	// fwRespond writes x.out, the target's response head or latch's own
	// answer, and ends the exchange (or goes on with it); it reports
	// whether the owner's Step is to go on.
	fwRespond() bool
	// fwOff carries the exchange on in a goroutine: from sending the
	// request (send; on x.uc when set) or from writing x.out. It reports
	// whether the owner's Step is to go on.
	fwOff(send bool) bool
	// fwWait says the exchange now waits on the target's socket, with a
	// timeout checked every d at most.
	fwWait(d time.Duration)
}

type fwStage uint8

const (
	fwIdle    fwStage = iota
	fwConnect         // connecting to the target
	fwAwait           // request sent, waiting for the response
)

// forward forwards the request to x.t on a connection of the loop's.
func (f *loopFwd) forward() bool {
	x := f.x
	if x.be.H2 != nil || !x.t.Conns.Loopable() {
		// An HTTP/2 target, or not an address the loop can dial (the
		// goroutine path's dialer resolves it).
		return f.owner.fwOff(true)
	}
	s := x.t.Conns.Shard(f.ls.index, f.ls.loop)
	if u := s.Get(!x.replayable()); u != nil {
		return f.send(u)
	}
	return f.dial(s)
}

// dial connects to s's target, and sends the request once connected.
func (f *loopFwd) dial(s *upstream.Shard) bool {
	x := f.x
	u, err := s.Dial(x.be.ConnectTimeout, time.Now().UnixNano())
	if err != nil {
		return f.failed(err)
	}
	if u.Connecting() {
		u.User, f.up = f.owner.(upstream.Waiter), u
		f.stage = fwConnect
		f.owner.fwWait(x.be.ConnectTimeout / 16)
		return false
	}
	return f.send(u)
}

// step moves the exchange on when the target's socket is ready.
func (f *loopFwd) step() bool {
	switch f.stage {
	case fwConnect:
		return f.connected()
	case fwAwait:
		return f.await()
	}
	return false
}

// connected finishes a connect in progress.
func (f *loopFwd) connected() bool {
	u := f.up
	if u.Connecting() {
		return false
	}
	if err := u.Connected(); err != nil {
		f.up, f.stage = nil, fwIdle
		u.Close()
		return f.failed(err)
	}
	return f.send(u)
}

// send sends the request on u.
func (f *loopFwd) send(u *upstream.LoopConn) bool {
	x := f.x
	u.User, f.up, f.stage = f.owner.(upstream.Waiter), u, fwIdle
	x.use(u.Conn)
	if f.sendElsewhere {
		return f.off(false)
	}
	if err := x.sendRequest(); err != nil {
		return f.failed(err)
	}
	f.stage = fwAwait
	return false
}

// await reads the response, and hands it to the owner if it is all there.
func (f *loopFwd) await() bool {
	x, u := f.x, f.up
	if u.W.Pending() > 0 {
		if err := u.W.WritePending(); err != nil {
			if x.stale(false, err) {
				return f.resend(u)
			}
			return f.failed(err)
		}
	}
	started, err := u.R.ReadResponse(&x.resp, string(x.req.Method) == "HEAD")
	if err == h1.ErrWouldBlock {
		return false
	}
	if err != nil && x.stale(started, err) {
		return f.resend(u)
	}
	if err != nil {
		return f.failed(err)
	}
	final, err := x.gotHead()
	switch {
	case !final:
		return true // an interim response: the next head follows
	case err != nil:
		return f.failed(err)
	case x.out.status == 101 || !bodyFits(x.resp.Framing, x.resp.ContentLength, u.R.Buffered()):
		return f.off(true)
	}
	f.up, f.stage = nil, fwIdle
	return f.owner.fwRespond()
}

// resend sends the request again on a new connection to the same target:
// the pooled connection u turned out dead before the request reached the
// target (stale), as the goroutine path's redial.
func (f *loopFwd) resend(u *upstream.LoopConn) bool {
	f.up, f.stage = nil, fwIdle
	f.x.dropConn()
	return f.dial(u.Shard())
}

// failed deals with a request that failed on its target (err) before any
// of its response was written: it goes once more to another target where
// that is safe (retry.go), else latch's error goes to the owner.
func (f *loopFwd) failed(err error) bool {
	f.up, f.stage = nil, fwIdle
	if f.x.failed(err) {
		return f.forward()
	}
	return f.owner.fwRespond()
}

// off hands the exchange, and the target connection in use, to a
// goroutine, which carries it on from where the loop stopped: sending a
// request the loop cannot send whole (a body still coming, Expect:
// 100-continue, an upgrade), or, once headRead, writing a response whose
// body is still coming (or a switch of protocols).
func (f *loopFwd) off(headRead bool) bool {
	x, u := f.x, f.up
	f.up, f.stage = nil, fwIdle
	uc, err := u.Take()
	if err != nil {
		x.uc = nil
		x.fail(err)
		return f.owner.fwRespond()
	}
	x.uc = uc
	return f.owner.fwOff(!headRead)
}

// checkTimeouts acts on the target's timeouts at a tick (now, unix ns).
func (f *loopFwd) checkTimeouts(now int64) bool {
	x := f.x
	switch f.stage {
	case fwConnect:
		if now < f.up.DialBy {
			return false
		}
		u := f.up
		f.up, f.stage = nil, fwIdle
		u.Close()
		return f.failed(&upstream.DialError{Addr: x.t.ID, Err: os.ErrDeadlineExceeded})
	case fwAwait:
		var err error
		switch {
		case x.t.Conns.Closed():
			err = errDeregistered // its deregistration delay ran out
		case now >= f.up.Deadline:
			err = os.ErrDeadlineExceeded
		default:
			return false
		}
		return f.failed(err)
	}
	return false
}

// busy reports whether the exchange waits on the target.
func (f *loopFwd) busy() bool { return f.stage != fwIdle }

// abort ends a wait on the target: the client went away, or the loop's
// connection is cut. A connect in progress is closed; a connection in use
// is the exchange's to drop when it ends.
func (f *loopFwd) abort() {
	if f.up != nil && (f.x.uc == nil || f.x.uc.Loop != f.up) {
		f.up.Close() // a connect in progress
	}
	f.up, f.stage = nil, fwIdle
}
