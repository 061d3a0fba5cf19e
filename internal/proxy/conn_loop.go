package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/evloop"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/upstream"
)

// The event-loop data path.
//
// On Linux, a plain-HTTP client connection is served by one of latch's
// event loops (package evloop, one per CPU) rather than a goroutine of its
// own: the loop reads a request when epoll says it has come, forwards it
// on a target connection the loop also owns (its shard of the target's
// upstream.Pool), and relays the response when it arrives, running the
// exchange's steps (begin, use, stale, failed, gotHead, write, end) without ever blocking. It keeps what the common request needs on
// the loop: a body that arrived with its head, a response whose body
// arrived with its head. Anything longer (a streamed or large body either
// way, Expect: 100-continue, an upgrade, HTTP/2, an HTTP/2 target, a
// target named by a host name) hands the connection to a goroutine of its
// own at that step (a goConn), its target connection with it, and the
// goroutine path carries on from there; the connection stays there until
// it closes.

// Loops are the event loops that serve plain-HTTP connections: made and
// closed by their owner (the server), shared by its listeners.
type Loops struct {
	set  []*loopState
	next atomic.Uint32
	wg   sync.WaitGroup
}

// ErrNoLoops is NewLoops' error on a system without event loops.
var ErrNoLoops = errors.New("event loops are not supported on this system")

// NewLoops starts n event loops, or fails where there are none
// (ErrNoLoops) or none could start.
func NewLoops(n int) (*Loops, error) {
	if !evloop.Supported {
		return nil, ErrNoLoops
	}
	ls := &Loops{}
	for i := range n {
		s := &loopState{index: i, conns: map[*loopConn]struct{}{}}
		l, err := evloop.New(s.tick)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			break // the loops made so far serve
		}
		s.loop = l
		l.SetAfter(s.after)
		ls.set = append(ls.set, s)
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			l.Run()
		}()
	}
	return ls, nil
}

// Close stops the loops and waits for them. Their listeners' handlers
// must have shut down, and the target groups closed (their pools' idle
// connections on the loops are closed by tasks posted to them, which run
// before the loops stop): anything still on a loop is left open.
func (ls *Loops) Close() {
	for _, s := range ls.set {
		s.loop.Close()
	}
	ls.wg.Wait()
}

// pick returns the loop for a new connection, round robin.
func (ls *Loops) pick() *loopState {
	return ls.set[ls.next.Add(1)%uint32(len(ls.set))]
}

// loopState is what one loop keeps; only its goroutine touches it.
type loopState struct {
	index int
	loop  *evloop.Loop
	conns map[*loopConn]struct{}
	// dirty are the HTTP/2 connections with output gathered this turn,
	// written at its end (after).
	dirty []*h2conn
}

// after writes the output the loop's HTTP/2 connections gathered in the
// turn: one write for every response each carried.
func (ls *loopState) after() {
	for i := 0; i < len(ls.dirty); i++ {
		hc := ls.dirty[i]
		hc.dirty = false
		hc.loopFlush()
	}
	clear(ls.dirty)
	ls.dirty = ls.dirty[:0]
}

// A loop's client connection goes through these stages.
type loopStage uint8

const (
	stRead   loopStage = iota // waiting for a request
	stTarget                  // forwarding it: fw waits on the target
	stFlush                   // the answer written, waiting for the client to take it all
	stH2                      // an HTTP/2 connection: h2 serves it
	stGone                    // closed, or handed to a goroutine
)

// Tick bounds: a connection's timeouts are checked every sixteenth of the
// shortest of them, within these.
const (
	minTick = 5 * time.Millisecond
	maxTick = time.Second
)

// loopConn is an HTTP/1.1 client connection an event loop serves.
type loopConn struct {
	*h1conn
	// ls is the loop, nil once the connection has left it; lsShared is
	// the same for other goroutines (Shutdown), and next the goroutine
	// connection it became when it left.
	ls       *loopState
	lsShared atomic.Pointer[loopState]
	next     *goConn
	sock     h1.Sock
	st       loopStage
	fw       loopFwd  // the exchange's target side
	h2       *h2conn  // the HTTP/2 connection it became (stH2)
	tls      *tlsWire // its TLS, for a connection that came over TLS
	// closeWhenFlushed closes the connection once the answer is out.
	closeWhenFlushed bool
	// reporting says the exchange's end is still to be reported, once
	// the answer is written out.
	reporting bool
	// deadline is the client's, unix nanoseconds; the loop checks it
	// every tickHint.
	deadline int64
	tickHint time.Duration
}

// serveOnLoop serves nc on an event loop, or reports false (nc untouched)
// if it cannot.
func (h *Handler) serveOnLoop(nc net.Conn) bool {
	ls := h.loops.pick()
	addr := nc.RemoteAddr()
	fd, ok := detach(nc)
	if !ok {
		return false
	}
	c := &loopConn{h1conn: &h1conn{}}
	c.sock = h1.Sock{FD: fd, Readable: true, Writable: true}
	c.rd, c.wr = h1.NewSockReader(&c.sock), h1.NewSockWriter(&c.sock)
	c.init(h, addr)
	c.path = c
	c.fw = loopFwd{owner: c}
	c.lsShared.Store(ls)
	if !h.track(c) {
		closeFD(fd)
		return true
	}
	h.obs.Conn(ConnEvent{Kind: ConnOpened, Listener: h.name, OnLoop: true})
	ls.loop.Post(func() { c.enterLoop(ls) })
	return true
}

// enterLoop registers the connection with its loop and reads its first
// request, if it is there.
func (c *loopConn) enterLoop(ls *loopState) {
	c.ls, c.fw.ls = ls, ls
	ls.conns[c] = struct{}{}
	if err := ls.loop.Add(c.sock.FD, c); err != nil {
		c.h.log.Warn("event loop refused a connection", "err", err)
		c.closeLoop()
		return
	}
	c.enterRead()
	c.Step()
}

// Ready is the loop's call when the client's socket is ready.
func (c *loopConn) Ready(ev uint32) {
	if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
		c.sock.Readable = true
	}
	c.sock.Shut = c.sock.Shut || ev&(evloop.RdHup|evloop.Hup|evloop.Err) != 0
	if ev&(evloop.Out|evloop.Hup|evloop.Err) != 0 {
		c.sock.Writable = true
	}
	c.Step()
}

// Step moves the connection on as far as it can go without waiting; the
// loop calls it when the client's or the target's socket is ready.
func (c *loopConn) Step() {
	for {
		var more bool
		switch c.st {
		case stRead:
			more = c.loopRead()
		case stTarget:
			more = c.fw.step()
		case stFlush:
			more = c.loopFlush()
		case stH2:
			c.h2.loopReady()
			return
		default:
			return
		}
		if !more {
			return
		}
	}
}

func (c *loopConn) enterRead() {
	c.st = stRead
	c.touch(time.Now().UnixNano(), c.h.route.Load().IdleTimeout)
}

// loopRead reads and starts the next request. It reports whether the
// stage changed (Step goes on) or the connection waits.
func (c *loopConn) loopRead() bool {
	if c.h.closing.Load() {
		c.closeLoop()
		return false
	}
	started, err := c.readRequest()
	if err == h1.ErrWouldBlock {
		return false
	}
	if err != nil {
		c.readFailed(started, err)
		c.endLoopExchange(false)
		return true
	}
	rt := c.h.route.Load()
	if rt.H2C && isH2Preface(&c.x.req) {
		pre := c.preface()
		c.drop() // HTTP/2 serves the connection from here
		c.serveH2(pre)
		return false
	}
	if c.notHTTP1(rt) {
		c.closeLoop()
		return false
	}
	if !c.admit(rt) {
		c.endLoopExchange(false)
		return true
	}
	// A request the loop cannot send whole still has its target picked
	// and its connection found here, so that it goes out on the same
	// connections as the rest; a goroutine sends it.
	c.fw.sendElsewhere = !c.requestFits()
	if !c.x.begin(rt) {
		c.respond()
		return true
	}
	c.st = stTarget
	return c.fw.forward()
}

// requestFits reports whether the loop can forward the request: its body,
// if any, is all in the buffer, and nothing in it needs a conversation.
func (c *loopConn) requestFits() bool {
	req := &c.x.req
	if req.Expect100 || req.Upgrade {
		return false
	}
	return bodyFits(req.Framing, req.ContentLength, c.rd.Buffered())
}

// The loop's exchange in the target's hands (loop_forward.go).

func (c *loopConn) fwWait(d time.Duration) {
	c.tickHint = min(c.tickHint, d)
	c.ls.wantTick(c.tickHint)
}

func (c *loopConn) fwRespond() bool {
	c.respond()
	return true
}

func (c *loopConn) fwOff(send bool) bool {
	x := c.x
	moved := c.handoff(func(g *goConn) bool {
		if send {
			x.roundTrip()
		}
		return x.respond(g) && g.servedOne()
	})
	if !moved {
		x.out.reset()
		x.end(false, errClientGone)
	}
	return false
}

// respond writes the exchange's answer and ends it, then waits for the
// client to take the answer.
func (c *loopConn) respond() {
	keep, err := c.write(c.x)
	keep = c.x.finish(keep, err)
	c.reporting = true // once the client has taken the answer: loopFlush
	c.endLoopExchange(keep)
}

// endLoopExchange moves on to writing out the answer, then the next
// request, or closing.
func (c *loopConn) endLoopExchange(keep bool) {
	c.closeWhenFlushed = !keep
	c.st = stFlush
}

func (c *loopConn) loopFlush() bool {
	if err := c.wr.WritePending(); err != nil {
		if c.reporting {
			c.x.clientFailed(errClientGone)
		}
		c.closeLoop()
		return false
	}
	if c.wr.Pending() > 0 {
		return false
	}
	if c.reporting {
		c.reporting = false
		c.x.report()
	}
	if c.closeWhenFlushed {
		c.closeLoop()
		return false
	}
	c.servedOne() // after report: the record's bytes are the reader's
	c.enterRead()
	return true
}

// checkTimeouts acts on the connection's timeouts at a tick.
func (c *loopConn) checkTimeouts(now int64) {
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
	case stTarget:
		if !c.fw.checkTimeouts(now) && c.st == stTarget {
			return
		}
	case stH2:
		c.h2.loopTick(now)
		return
	case stFlush:
		if now >= c.deadline {
			c.closeLoop()
		}
		return
	default:
		return
	}
	c.Step()
}

// touch sets the client's deadline; the loop checks it on its ticks.
func (c *loopConn) touch(now int64, idle time.Duration) {
	c.deadline, c.tickHint = now+int64(idle), idle/16
	c.ls.wantTick(c.tickHint)
}

// interruptRead is never needed on a loop: it reads nothing it would wait
// for.
func (c *loopConn) interruptRead() {}

func (c *loopConn) setExchange(x *exchange) {
	if x != nil {
		x.guard = nil // the loop cuts its own exchanges
	}
	c.fw.x = x
}

// handoff moves the connection from its loop to a goroutine of its own (a
// goConn), which runs run and, if it says to go on, the goroutine path's
// next requests. It reports false, run not run and the connection closed,
// if the connection could not be moved.
func (c *loopConn) handoff(run func(g *goConn) bool) bool {
	ls := c.ls
	c.st = stGone
	ls.loop.Remove(c.sock.FD)
	delete(ls.conns, c)
	nc, err := upstream.FileConn(c.sock.FD)
	if err != nil {
		c.h.log.Warn("event loop could not hand a connection on", "err", err)
		c.ls = nil
		c.lsShared.Store(nil)
		c.rd.Close()
		c.wr.Reset(nil)
		c.h.forget(c, false)
		return false
	}
	if c.tls != nil {
		nc = c.tls.offLoop(nc)
	}
	g := &goConn{h1conn: c.h1conn, nc: nc}
	c.path, c.x.guard = g, &g.guard
	g.guard.set(c.x.uc, nil) // a target connection the loop handed on
	c.rd.Attach(nc)
	c.wr.Attach(nc)
	c.next = g
	c.h.replace(c, g)
	c.ls = nil
	c.lsShared.Store(nil) // after next: Shutdown's task reads next once it sees nil
	c.h.obs.Conn(ConnEvent{Kind: ConnHandedOff, Listener: c.h.name})
	go func() {
		defer g.cleanup()
		if run(g) {
			for g.next() {
			}
		}
	}()
	return true
}

// closeLoop closes a loop's connection.
func (c *loopConn) closeLoop() {
	prev := c.st
	if prev == stGone {
		return
	}
	c.st = stGone
	ls := c.ls
	ls.loop.Remove(c.sock.FD)
	closeFD(c.sock.FD)
	delete(ls.conns, c)
	if prev == stH2 {
		c.h2.loopClosed()
	}
	c.fw.abort()
	switch {
	case prev == stTarget:
		// Cut mid-exchange (Shutdown's deadline): it ends here.
		c.x.out.reset()
		c.x.end(false, errCut)
	case c.reporting:
		// Closed before the client took the whole answer.
		c.reporting = false
		c.x.clientFailed(errClientGone)
		c.x.report()
	}
	c.drop()
	c.rd.Close()
	c.wr.Reset(nil)
	c.ls = nil
	c.lsShared.Store(nil)
	c.h.forget(c, false)
}

// wakeIfIdle makes a connection waiting for a request give up the wait, so
// that it sees the handler shutting down.
func (c *loopConn) wakeIfIdle() {
	if ls := c.lsShared.Load(); ls != nil {
		ls.loop.Post(func() {
			if c.ls == ls && c.st == stRead && c.rd.Buffered() == 0 {
				c.closeLoop()
			}
		})
	}
}

// cut closes the connection at once, whatever it is doing.
func (c *loopConn) cut() {
	if ls := c.lsShared.Load(); ls != nil {
		ls.loop.Post(func() {
			if c.ls == ls {
				c.closeLoop()
			} else if c.next != nil {
				c.next.cut() // it left the loop meanwhile
			}
		})
	}
}

// tick checks every connection's timeouts.
func (ls *loopState) tick(now time.Time) {
	n := now.UnixNano()
	hint := maxTick
	for c := range ls.conns {
		c.checkTimeouts(n)
		if c.st != stGone {
			hint = min(hint, c.tickHint)
		}
	}
	if len(ls.conns) == 0 {
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
