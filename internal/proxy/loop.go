package proxy

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/evloop"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// The event-loop data path.
//
// On Linux, a plain-HTTP client connection is served by one of latch's
// event loops (package evloop, one per CPU) rather than a goroutine of its
// own: the loop reads a request when epoll says it has come, forwards it
// on a target connection the loop also owns, and relays the response when
// it arrives, running the same steps as the goroutine path (begin, pick,
// sendRequest, gotResponse, respond, finish) without ever blocking. It
// keeps what the common request needs on the loop: a body that arrived
// with its head, a response whose body arrived with its head. Anything
// longer (a streamed or large body either way, Expect: 100-continue, an
// upgrade, HTTP/2, an HTTP/2 target, a target named by a host name) hands
// the connection to a goroutine of its own at that step, its target
// connection with it, and the goroutine path carries on from there; the
// connection stays there until it closes.

// useLoops says whether plain-HTTP connections go to event loops.
var useLoops = evloop.Enabled()

// loops are the process's event loops, started when the first connection
// needs one.
var loops struct {
	once sync.Once
	set  []*loopState
	next atomic.Uint32
}

// pickLoop returns the loop for a new connection, round robin, or nil if
// there are none.
func pickLoop() *loopState {
	loops.once.Do(startLoops)
	if len(loops.set) == 0 {
		return nil
	}
	return loops.set[loops.next.Add(1)%uint32(len(loops.set))]
}

func startLoops() {
	for range runtime.GOMAXPROCS(0) {
		ls := &loopState{conns: map[*clientConn]struct{}{}, pools: map[*target.Target]*loopPool{}}
		l, err := evloop.New(ls.tick)
		if err != nil {
			return // the loops made so far serve; with none, the goroutine path
		}
		ls.loop = l
		go l.Run()
		loops.set = append(loops.set, ls)
	}
}

// loopState is what one loop keeps; only its goroutine touches it.
type loopState struct {
	loop  *evloop.Loop
	conns map[*clientConn]struct{}
	pools map[*target.Target]*loopPool
}

// A loop's client connection goes through these stages.
type loopStage uint8

const (
	stRead    loopStage = iota // waiting for a request
	stConnect                  // connecting to the target
	stAwait                    // request sent, waiting for the response
	stFlush                    // the answer written, waiting for the client to take it all
	stGone                     // closed, or handed to a goroutine
)

// Tick bounds: a connection's timeouts are checked every sixteenth of the
// shortest of them, within these.
const (
	minTick = 5 * time.Millisecond
	maxTick = time.Second
)

// serveOnLoop serves nc on an event loop, or reports false (nc untouched)
// if it cannot.
func (h *Handler) serveOnLoop(nc net.Conn) bool {
	ls := pickLoop()
	if ls == nil {
		return false
	}
	addr := nc.RemoteAddr()
	fd, ok := detach(nc)
	if !ok {
		return false
	}
	c := &clientConn{}
	c.sock = h1.Sock{FD: fd, Readable: true, Writable: true}
	c.rd, c.wr = h1.NewSockReader(&c.sock), h1.NewSockWriter(&c.sock)
	c.initExchange(h, addr)
	c.lsShared.Store(ls)
	h.mu.Lock()
	if h.closing.Load() {
		h.mu.Unlock()
		closeFD(fd)
		return true
	}
	h.conns[c] = struct{}{}
	h.done.Add(1)
	h.mu.Unlock()
	h.OnLoop.Add(1)
	ls.loop.Post(func() { c.enterLoop(ls) })
	return true
}

// enterLoop registers the connection with its loop and reads its first
// request, if it is there.
func (c *clientConn) enterLoop(ls *loopState) {
	c.ls = ls
	ls.conns[c] = struct{}{}
	if err := ls.loop.Add(c.sock.FD, c); err != nil {
		c.h.log.Warn("event loop refused a connection", "err", err)
		c.closeLoop()
		return
	}
	c.enterRead()
	c.step()
}

// Ready is the loop's call when the client's socket is ready.
func (c *clientConn) Ready(ev uint32) {
	if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
		c.sock.Readable = true
	}
	if ev&(evloop.Out|evloop.Hup|evloop.Err) != 0 {
		c.sock.Writable = true
	}
	c.step()
}

// step moves the connection on as far as it can go without waiting.
func (c *clientConn) step() {
	for {
		var more bool
		switch c.st {
		case stRead:
			more = c.loopRead()
		case stConnect:
			more = c.loopConnected()
		case stAwait:
			more = c.loopAwait()
		case stFlush:
			more = c.loopFlush()
		default:
			return
		}
		if !more {
			return
		}
	}
}

func (c *clientConn) enterRead() {
	c.st = stRead
	c.touch(c.h.now().UnixNano(), c.h.route.Load().IdleTimeout)
}

// loopRead reads and starts the next request. It reports whether the
// stage changed (step goes on) or the connection waits.
func (c *clientConn) loopRead() bool {
	if c.h.closing.Load() {
		c.closeLoop()
		return false
	}
	c.req.Method = nil // an error before the request line is no answer to HEAD
	started, err := c.rd.ReadRequest(&c.req)
	if err == h1.ErrWouldBlock {
		return false
	}
	if err != nil {
		c.readFailed(started, err)
		c.endLoopExchange(false)
		return true
	}
	rt := c.h.route.Load()
	if rt.H2C && isH2Preface(&c.req) {
		c.handoff(func() bool { return c.handle(rt) })
		return false
	}
	if !c.admit(rt) {
		c.endLoopExchange(false)
		return true
	}
	c.hbody.Reset(c.rd, c.req.Framing, c.req.ContentLength, false)
	// A request the loop cannot send whole still has its target picked
	// and its connection found here, so that it goes out on the same
	// connections as the rest; a goroutine sends it.
	c.sendElsewhere = !c.requestFits()
	c.retried = false
	forward, keep := c.begin(rt)
	if !forward {
		c.endLoopExchange(keep)
		return true
	}
	return c.loopForward(rt)
}

// requestFits reports whether the loop can forward the request: its body,
// if any, is all in the buffer, and nothing in it needs a conversation.
func (c *clientConn) requestFits() bool {
	req := &c.req
	if req.Expect100 || req.Upgrade {
		return false
	}
	return bodyBuffered(req.Framing, req.ContentLength, c.rd.Buffered())
}

// bodyBuffered reports whether a message body so framed is all in a
// buffer holding buffered bytes past the head.
func bodyBuffered(framing h1.Framing, length int64, buffered int) bool {
	switch framing {
	case h1.NoBody:
		return true
	case h1.Length:
		return length <= int64(buffered)
	}
	return false
}

// loopForward forwards the request to c.t on a connection of the loop's.
func (c *clientConn) loopForward(rt *Route) bool {
	var p *loopPool
	if c.be.H2 == nil {
		p = c.ls.pool(c.t)
	}
	if p == nil {
		// An HTTP/2 target, or not an address the loop can dial (the
		// goroutine path's dialer resolves it).
		c.handoff(func() bool { return c.serveForward(rt) && c.served1() })
		return false
	}
	if c.t.Conns.Closed() {
		return c.loopDialFailed(rt, upstream.ErrClosed)
	}
	if u := p.get(); u != nil {
		return c.loopSend(rt, u)
	}
	return c.loopDial(rt, p)
}

// loopDial connects to p's target, and sends the request once connected.
func (c *clientConn) loopDial(rt *Route, p *loopPool) bool {
	u, err := c.ls.dial(p, c.be.ConnectTimeout, c.h.now().UnixNano())
	if err != nil {
		return c.loopDialFailed(rt, err)
	}
	if !u.sock.Writable { // connecting
		u.user, c.up = c, u
		c.st = stConnect
		c.tickHint = min(c.tickHint, c.be.ConnectTimeout/16)
		c.ls.wantTick(c.tickHint)
		return false
	}
	return c.loopSend(rt, u)
}

// loopDialFailed deals with a connect failure as serveForward does: once
// more on another target, else the error to the client.
func (c *clientConn) loopDialFailed(rt *Route, err error) bool {
	c.up = nil
	c.endBegin() // a redial's (loopAwait): the retry may pick another target
	if !c.retried && c.retarget(err) {
		c.retried = true
		return c.loopForward(rt)
	}
	c.endForward(rt, false, err)
	return true
}

// loopConnected finishes a connect in progress.
func (c *clientConn) loopConnected() bool {
	u := c.up
	if !u.sock.Writable {
		return false
	}
	if err := connectResult(u.sock.FD); err != nil {
		c.up = nil
		u.uc.Close()
		return c.loopDialFailed(c.rt, &upstream.DialError{Addr: u.pool.t.ID, Err: err})
	}
	return c.loopSend(c.rt, u)
}

// loopSend sends the request on u.
func (c *clientConn) loopSend(rt *Route, u *loopUpstream) bool {
	u.user, c.up = c, u
	if !c.began {
		c.hp, _ = c.view.Picker.(*balance.Hash)
		c.hp.Begin(c.t)
		c.began = true
	}
	if c.sendElsewhere {
		return c.handoffExchange(rt, u, false)
	}
	if err := c.sendRequest(rt, c.t, u.uc); err != nil {
		c.up = nil
		c.endForward(rt, false, err)
		return true
	}
	c.st = stAwait
	return false
}

// loopAwait reads the response, and relays it if it is all there.
func (c *clientConn) loopAwait() bool {
	u := c.up
	if u.uc.W.Pending() > 0 {
		if err := u.uc.W.WritePending(); err != nil {
			c.up = nil
			u.uc.Close()
			c.endForward(c.rt, false, err)
			return true
		}
	}
	rt := c.rt
	started, err := u.uc.R.ReadResponse(&c.resp, string(c.req.Method) == "HEAD")
	if err == h1.ErrWouldBlock {
		return false
	}
	if err != nil && !started && u.uc.Reused && isEOF(err) && c.replayable() {
		// The target closed this pooled connection while it was idle;
		// the request never reached it. Send it again on a new one.
		c.up = nil
		u.uc.Close()
		return c.loopDial(rt, u.pool)
	}
	if err != nil {
		c.up = nil
		u.uc.Close()
		c.endForward(rt, false, err)
		return true
	}
	if s := c.resp.Status; s >= 100 && s < 200 && s != 101 {
		return true // an interim response: the next head follows
	}
	if c.resp.Status == 101 || !c.responseFits(u) {
		return c.handoffExchange(rt, u, true)
	}
	c.up = nil
	_, keep, err := c.gotResponse(rt, c.t, u.uc, c.issued)
	c.endForward(rt, keep, err)
	return true
}

// responseFits reports whether the response's body is all in the buffer.
func (c *clientConn) responseFits(u *loopUpstream) bool {
	return bodyBuffered(c.resp.Framing, c.resp.ContentLength, u.uc.R.Buffered())
}

// endForward ends a forwarded exchange as serveForward does.
func (c *clientConn) endForward(rt *Route, keep bool, err error) {
	c.endBegin()
	c.endLoopExchange(c.finish(rt, c.t, keep, err))
}

// endBegin ends the count loopSend's Begin started, if it has not ended.
func (c *clientConn) endBegin() {
	if c.began {
		c.hp.Done(c.t)
		c.began = false
	}
}

// endLoopExchange moves on to writing out the answer, then the next
// request, or closing.
func (c *clientConn) endLoopExchange(keep bool) {
	if keep {
		c.served1()
	} else {
		c.closeWhenFlushed = true
	}
	c.st = stFlush
}

func (c *clientConn) loopFlush() bool {
	if err := c.wr.WritePending(); err != nil {
		c.closeLoop()
		return false
	}
	if c.wr.Pending() > 0 {
		return false
	}
	if c.closeWhenFlushed {
		c.closeLoop()
		return false
	}
	c.enterRead()
	return true
}

// checkTimeouts acts on the connection's timeouts at a tick.
func (c *clientConn) checkTimeouts(now int64) {
	switch c.st {
	case stRead:
		if c.h.closing.Load() && c.rd.Buffered() == 0 {
			c.closeLoop()
			return
		}
		if now < c.deadline {
			return
		}
		c.readFailed(c.rd.Buffered() > 0, os.ErrDeadlineExceeded)
		c.endLoopExchange(false)
	case stConnect:
		if now < c.up.dialBy {
			return
		}
		u := c.up
		c.up = nil
		u.uc.Close()
		c.loopDialFailed(c.rt, &upstream.DialError{Addr: u.pool.t.ID, Err: os.ErrDeadlineExceeded})
	case stAwait:
		var err error
		switch {
		case c.t.Conns.Closed():
			err = errDeregistered // its deregistration delay ran out
		case now >= c.up.uc.Deadline:
			err = os.ErrDeadlineExceeded
		default:
			return
		}
		u := c.up
		c.up = nil
		u.uc.Close()
		c.endForward(c.rt, false, err)
	case stFlush:
		if now >= c.deadline {
			c.closeLoop()
		}
		return
	default:
		return
	}
	c.step()
}

// handoff moves the connection from its loop to a goroutine of its own,
// which runs run and, if it says to go on, the goroutine path's next
// requests. It reports false, run not run and the connection closed, if
// the connection could not be moved.
func (c *clientConn) handoff(run func() bool) bool {
	ls := c.ls
	c.st = stGone
	ls.loop.Remove(c.sock.FD)
	delete(ls.conns, c)
	nc, err := fileConn(c.sock.FD)
	if err != nil {
		c.h.log.Warn("event loop could not hand a connection on", "err", err)
		c.ls = nil
		c.lsShared.Store(nil)
		c.rd.Close()
		c.wr.Reset(nil)
		c.h.forget(c)
		return false
	}
	c.h.HandedOff.Add(1)
	c.nc = nc
	c.rd.Attach(nc)
	c.wr.Attach(nc)
	c.deadline = 0
	c.ls = nil
	c.lsShared.Store(nil) // after c.nc: Shutdown reads c.nc once it sees nil
	go func() {
		defer c.cleanup()
		if run() {
			for c.next() {
			}
		}
	}()
	return true
}

// handoffExchange hands the connection and its target connection u to a
// goroutine, which carries the exchange on from where the loop stopped:
// sending a request the loop cannot send whole (a body still coming,
// Expect: 100-continue, an upgrade), or, once headRead, relaying a
// response whose body is still coming (or a switch of protocols). It
// reports whether the connection is still the loop's.
func (c *clientConn) handoffExchange(rt *Route, u *loopUpstream, headRead bool) bool {
	t, issued, hp := c.t, c.issued, c.hp
	uc, err := c.takeUpstream(u)
	if err != nil {
		hp.Done(t)
		c.endLoopExchange(c.finish(rt, t, false, err))
		return true
	}
	moved := c.handoff(func() bool {
		var keep bool
		var err error
		if headRead {
			keep, err = c.continueResponse(rt, t, uc, issued)
		} else {
			keep, err = c.roundTrip(rt, t, uc, issued)
		}
		hp.Done(t)
		if isDialFailure(err) && !c.retried && c.retarget(err) {
			keep, err = c.forward(rt, c.t, c.issued)
		}
		return c.finish(rt, c.t, keep, err) && c.served1()
	})
	if !moved {
		hp.Done(t)
		uc.Close()
	}
	return false
}

// takeUpstream moves the loop's target connection u in use by c to a
// goroutine: it becomes a connection of its target's pool.
func (c *clientConn) takeUpstream(u *loopUpstream) (*upstream.Conn, error) {
	uc := u.uc
	c.up, c.began = nil, false
	u.ls.loop.Remove(u.sock.FD)
	u.closed = true
	unc, err := fileConn(u.sock.FD)
	if err != nil {
		uc.R.Close()
		uc.W.Reset(nil)
		return nil, err
	}
	u.pool.t.Conns.Adopt(uc, unc)
	return uc, nil
}

// continueResponse relays the response whose head is in x.resp, then, for
// an interim one, what follows.
func (x *exchange) continueResponse(rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (bool, error) {
	if done, keep, err := x.gotResponse(rt, t, uc, issued); done {
		return keep, err
	}
	return x.readResponse(rt, t, uc, issued)
}

// closeLoop closes a loop's connection.
func (c *clientConn) closeLoop() {
	if c.st == stGone {
		return
	}
	c.st = stGone
	ls := c.ls
	ls.loop.Remove(c.sock.FD)
	closeFD(c.sock.FD)
	delete(ls.conns, c)
	if c.up != nil {
		c.up.uc.Close()
		c.up = nil
	}
	c.endBegin()
	c.rd.Close()
	c.wr.Reset(nil)
	c.ls = nil
	c.lsShared.Store(nil)
	c.h.forget(c)
}

// tick checks every connection's timeouts, and drops the idle target
// connections of deregistered targets.
func (ls *loopState) tick(now time.Time) {
	n := now.UnixNano()
	hint := maxTick
	for c := range ls.conns {
		c.checkTimeouts(n)
		if c.st != stGone {
			hint = min(hint, c.tickHint)
		}
	}
	for t, p := range ls.pools {
		if t.Conns.Closed() {
			for len(p.idle) > 0 {
				p.idle[len(p.idle)-1].discard()
			}
			delete(ls.pools, t)
		}
	}
	if len(ls.conns) == 0 && len(ls.pools) == 0 {
		ls.loop.SetTick(0)
		return
	}
	ls.loop.SetTick(max(hint, minTick))
}

// wantTick makes sure the loop ticks at least every d.
func (ls *loopState) wantTick(d time.Duration) {
	d = min(max(d, minTick), maxTick)
	if e := ls.loop.Every(); e == 0 || d < e {
		ls.loop.SetTick(d)
	}
}

// loopPool is a loop's idle connections to one target.
type loopPool struct {
	t    *target.Target
	addr netip.AddrPort
	idle []*loopUpstream
}

// maxLoopIdle bounds a loop's idle connections to one target.
const maxLoopIdle = upstream.DefaultMaxIdle

// pool returns the loop's pool for t, or nil when t's id is not an
// address the loop can dial (a host name).
func (ls *loopState) pool(t *target.Target) *loopPool {
	if p := ls.pools[t]; p != nil {
		return p
	}
	ap, err := netip.ParseAddrPort(t.ID)
	if err != nil {
		return nil
	}
	p := &loopPool{t: t, addr: ap}
	ls.pools[t] = p
	return p
}

// get returns an idle connection, the one used last.
func (p *loopPool) get() *loopUpstream {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	u := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	u.uc.Reused = true
	return u
}

// loopUpstream is a target connection a loop owns.
type loopUpstream struct {
	uc     *upstream.Conn
	sock   h1.Sock
	ls     *loopState
	pool   *loopPool
	user   *clientConn // the exchange it serves; nil while idle
	closed bool
	dialBy int64 // when a connect in progress (not yet writable) times out
}

// dial starts a connection to p's target.
func (ls *loopState) dial(p *loopPool, timeout time.Duration, now int64) (*loopUpstream, error) {
	fd, connecting, err := dialSocket(p.addr)
	if err != nil {
		return nil, &upstream.DialError{Addr: p.t.ID, Err: err}
	}
	u := &loopUpstream{ls: ls, pool: p, dialBy: now + int64(timeout)}
	u.sock = h1.Sock{FD: fd, Writable: !connecting}
	u.uc = upstream.NewOwned(u, h1.NewSockReader(&u.sock), h1.NewSockWriter(&u.sock))
	if err := ls.loop.Add(fd, u); err != nil {
		closeFD(fd)
		return nil, &upstream.DialError{Addr: p.t.ID, Err: err}
	}
	return u, nil
}

// Ready is the loop's call when the target connection's socket is ready.
func (u *loopUpstream) Ready(ev uint32) {
	if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
		u.sock.Readable = true
	}
	if ev&(evloop.Out|evloop.Hup|evloop.Err) != 0 {
		u.sock.Writable = true
	}
	if u.user == nil {
		if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
			// Idle: the target closed it, or sent something out of turn.
			u.discard()
		}
		return
	}
	u.user.step()
}

// Release takes back a connection whose response was read to its end.
func (u *loopUpstream) Release(c *upstream.Conn, now int64) {
	u.user = nil
	p := u.pool
	if u.closed || p.t.Conns.Closed() || c.R.Buffered() > 0 || c.W.Pending() > 0 || len(p.idle) >= maxLoopIdle {
		u.discard()
		return
	}
	c.R.Release()
	p.idle = append(p.idle, u)
}

// Discard closes the connection.
func (u *loopUpstream) Discard(*upstream.Conn) { u.discard() }

func (u *loopUpstream) discard() {
	if u.closed {
		return
	}
	u.closed = true
	u.user = nil
	u.ls.loop.Remove(u.sock.FD)
	closeFD(u.sock.FD)
	u.uc.R.Close()
	u.uc.W.Reset(nil)
	for i, v := range u.pool.idle {
		if v == u {
			u.pool.idle = append(u.pool.idle[:i], u.pool.idle[i+1:]...)
			break
		}
	}
}

// fileConn makes a net.Conn of a loop's socket, for a goroutine; fd itself
// is closed (the net.Conn has its own copy).
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	return net.FileConn(f)
}
