package proxy

import (
	"context"
	"io"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/h2"
)

// HTTP/2 on an event loop.
//
// An h2c connection (prior knowledge) that began on a loop stays there:
// the loop reads the socket into the engine, which calls Head for each
// request, and a request without a body is served where it came, as the
// loop serves an HTTP/1.1 one: its exchange forwarded on a target
// connection of the loop's (loopFwd), its response written into the
// stream when its head and body have come, the connection's output
// written once at the end of the loop's turn, for every stream it served
// in that turn. A stream the loop cannot carry (a request body, an HTTP/2
// target, a response body still coming) goes on in a goroutine of its own
// as on Serve's connections, posting its writes to the loop.

// serveH2 makes the loop's connection, which began with the HTTP/2
// preface (pre, and what came after it), an HTTP/2 connection the loop
// serves.
func (c *loopConn) serveH2(pre []byte) {
	c.rd.Close()
	c.wr.Reset(nil)
	var w h2wire = plainWire{&c.sock}
	if c.tls != nil {
		w = *c.tls // HTTP/2 with prior knowledge over TLS, no ALPN
	}
	hc := c.startH2(w)
	if hc == nil {
		return
	}
	for len(pre) > 0 && c.st == stH2 {
		n := copy(hc.c.ReadBuf(), pre)
		hc.c.Received(n)
		pre = pre[n:]
	}
	hc.loopReady()
}

// startH2 makes the loop's connection an HTTP/2 one, on w; nil if the
// handler is shutting down, the connection closed.
func (c *loopConn) startH2(w h2wire) *h2conn {
	hc := newH2conn(c.h, &c.peer)
	hc.ls, hc.lc, hc.wire = c.ls, c, w
	hc.loopRunFn = func() {
		hc.run()
		hc.outReady()
	}
	if !hc.register() {
		hc.c.Close()
		c.closeLoop()
		return nil
	}
	c.h2, c.st = hc, stH2
	hc.setTickHint()
	return hc
}

// h2wire is how an HTTP/2 connection on a loop reads and writes its
// socket: as it is (h2c), or through TLS.
type h2wire interface {
	// Read reads into p; h1.ErrWouldBlock when nothing more has come.
	Read(p []byte) (int, error)
	// write writes p, or as much as it takes; h1.ErrWouldBlock when the
	// socket is full.
	write(p []byte) (int, error)
	// Flush writes what the wire holds of its own (TLS records);
	// h1.ErrWouldBlock when the socket is full.
	Flush() error
	// closeWrite ends the connection's sending side.
	closeWrite() error
}

type plainWire struct{ s *h1.Sock }

func (w plainWire) Read(p []byte) (int, error)  { return w.s.Read(p) }
func (w plainWire) write(p []byte) (int, error) { return w.s.Write(p) }
func (w plainWire) Flush() error                { return nil }
func (w plainWire) closeWrite() error           { return shutWrite(w.s.FD) }

// loopReady reads what the client sent, and has what it caused written
// at the end of the turn.
func (hc *h2conn) loopReady() {
	lc := hc.lc
	if hc.lingerBy > 0 {
		hc.lingerRead()
		return
	}
	for lc.st == stH2 && !hc.c.Done() {
		n, err := hc.wire.Read(hc.c.ReadBuf())
		hc.c.Received(n)
		if err == h1.ErrWouldBlock {
			break
		}
		if err != nil {
			lc.closeLoop() // the client closed, or the socket failed
			return
		}
	}
	if lc.st == stH2 {
		if hc.collecting {
			hc.collectedOff()
		}
		hc.outReady()
	}
}

// outReady has the connection's output written at the end of the loop's
// turn (loopState.after).
func (hc *h2conn) outReady() {
	if !hc.dirty {
		hc.dirty = true
		hc.ls.dirty = append(hc.ls.dirty, hc)
	}
}

// loopFlush writes the connection's output, as much as the socket takes;
// the rest when it turns writable. A connection that is over is closed
// once all is written.
func (hc *h2conn) loopFlush() {
	lc := hc.lc
	if lc.st != stH2 || hc.lingerBy > 0 {
		return
	}
	if lc.sock.Writable {
		// The socket took something since the last write that found it
		// full (TLS records count too): the client reads.
		hc.stallSince = 0
	}
	err := hc.wire.Flush()
	for p := hc.c.Pending(); len(p) > 0 && err == nil; p = hc.c.Pending() {
		var n int
		n, err = hc.wire.write(p)
		if n > 0 {
			hc.c.Wrote(n) // may let streams write more
			hc.stallSince = 0
		}
	}
	switch {
	case err == h1.ErrWouldBlock:
		if hc.stallSince == 0 {
			hc.stallSince = time.Now().UnixNano()
		}
		return
	case err != nil:
		lc.closeLoop()
		return
	}
	hc.stallSince = 0
	if hc.c.Done() {
		hc.linger()
	}
}

// linger shuts the connection's sending side and reads what the client
// still sends until it closes too, as Serve's linger does, before closing.
func (hc *h2conn) linger() {
	lc := hc.lc
	if hc.wire.closeWrite() != nil {
		lc.closeLoop()
		return
	}
	hc.lingerBy = time.Now().Add(lingerTime).UnixNano()
	hc.lingerRead()
}

func (hc *h2conn) lingerRead() {
	lc := hc.lc
	var buf [512]byte
	for hc.lingered < 64<<10 {
		n, err := lc.sock.Read(buf[:])
		if err == h1.ErrWouldBlock {
			return
		}
		if err != nil {
			break
		}
		hc.lingered += n
	}
	lc.closeLoop()
}

// lingerTime bounds a connection's linger, as h2's Serve.
const lingerTime = time.Second

// loopTick acts on the connection's timeouts, and its streams' waits on
// their targets.
func (hc *h2conn) loopTick(now int64) {
	lc := hc.lc
	switch {
	case hc.lingerBy > 0:
		if now >= hc.lingerBy {
			lc.closeLoop()
		}
		return
	case hc.stallSince > 0 && hc.c.WriteTimeout() > 0 && now-hc.stallSince >= int64(hc.c.WriteTimeout()):
		hc.h.h2ctr.WriteStalls.Add(1)
		lc.closeLoop()
		return
	}
	if due := hc.c.NextDue(); due > 0 && now >= due {
		hc.c.Tick(time.Unix(0, now))
	}
	for i := 0; i < len(hc.onLoop); {
		st := hc.onLoop[i]
		st.fw.checkTimeouts(now)
		if i < len(hc.onLoop) && hc.onLoop[i] == st {
			i++
		}
	}
	hc.setTickHint()
	// What the tick wrote (a GOAWAY, a reset, a 504 for a wait that timed
	// out) goes at the turn's end, as output does.
	hc.outReady()
}

// setTickHint sets how often the loop checks the connection: a
// sixteenth of its shortest timeout, or of its streams' waits on targets.
func (hc *h2conn) setTickHint() {
	d := hc.h.route.Load().IdleTimeout
	for _, st := range hc.onLoop {
		if st.fw.busy() {
			d = min(d, st.x.be.ConnectTimeout)
		}
	}
	hc.lc.tickHint = d / 16
	hc.ls.wantTick(hc.lc.tickHint)
}

// loopClosed ends the HTTP/2 connection whose socket the loop closed:
// every stream is done.
func (hc *h2conn) loopClosed() {
	hc.c.Close()
	hc.closeOut()
}

// exec runs f where the connection's engine may be touched.
func (hc *h2conn) exec(f func()) {
	if hc.ls == nil {
		hc.c.Post(f)
		return
	}
	hc.ls.loop.Post(func() {
		if hc.lc.st == stH2 {
			f()
			hc.outReady()
		}
	})
}

// A stream the loop serves.

// maxLoopBody bounds the request body a stream may have to be served on
// the loop: one that fits the stream's first window, which the client
// sends without waiting for latch.
const maxLoopBody = 64 << 10

// loopBody reports whether a request with a body may be served on the
// loop once the body is in: one of a stated length within maxLoopBody,
// without Expect: 100-continue (which waits for latch's word) or a reason
// to refuse it.
func (st *h2stream) loopBody(head *h2.Head) bool {
	return head.Refuse == nil && !st.x.req.Expect100 && head.ContentLength > 0 && head.ContentLength <= maxLoopBody
}

// collect waits on the loop for the stream's body, which must have come
// with its head, in what the loop read this turn (a client's form or API
// call, in one write): one still coming streams from a goroutine
// (collectOff), as it arrives.
func (st *h2stream) collect() {
	hc := st.hc
	st.toLoop()
	st.collecting, hc.collecting = true, true
}

// toLoop makes the loop the stream's server: its target side, and its
// place among the streams the loop serves (for their timeouts).
func (st *h2stream) toLoop() {
	hc := st.hc
	st.onLoop, st.fw = true, loopFwd{x: &st.x, ls: hc.ls, owner: st}
	st.loopIndex = len(hc.onLoop)
	hc.onLoop = append(hc.onLoop, st)
}

// collectedOff gives the streams whose body has not all come this turn to
// goroutines.
func (hc *h2conn) collectedOff() {
	hc.collecting = false
	for i := 0; i < len(hc.onLoop); {
		st := hc.onLoop[i]
		if st.collecting {
			st.collectOff() // takes st off hc.onLoop
			continue
		}
		i++
	}
}

// collected serves the stream on the loop once its whole body is in.
func (st *h2stream) collected() {
	if !st.inEnd {
		return
	}
	st.collecting = false
	st.loopServe()
}

// collectOff gives a stream whose body is still coming, or came with
// trailers, to a goroutine, which streams it to the target (chunked, the
// trailers after it).
func (st *h2stream) collectOff() {
	st.collecting = false
	st.hc.dropOnLoop(st)
	st.onLoop = false
	st.goRun()
}

// loopNext is Next on the loop: the whole body, which is in.
func (st *h2stream) loopNext() ([]byte, error) {
	p := st.in
	st.in = st.in[:0]
	st.bodyDone = true
	if len(p) == 0 {
		return nil, io.EOF
	}
	st.s.Consume(len(p))
	return p, nil
}

// loopServe serves the stream's request, whose body, if any, is in, on
// the loop.
func (st *h2stream) loopServe() {
	x := &st.x
	if !st.onLoop {
		st.toLoop()
	}
	if st.refuse != nil {
		st.refusal()
		if st.loopWrite(x) != nil || len(st.pend) == 0 {
			st.loopEnd()
		}
		return
	}
	if !x.begin(x.h.route.Load()) {
		st.fwRespond()
		return
	}
	// st may be over, and back in the pool, once forward returns.
	st.fw.forward()
}

// Step is the target connection's call when its socket is ready.
func (st *h2stream) Step() {
	hc := st.hc
	for st.fw.step() {
	}
	hc.outReady()
}

// fwWait makes the loop check the connection's streams often enough for
// the target's timeout.
func (st *h2stream) fwWait(d time.Duration) {
	lc := st.hc.lc
	lc.tickHint = min(lc.tickHint, d)
	st.hc.ls.wantTick(lc.tickHint)
}

// fwRespond writes x.out into the stream and ends the exchange.
func (st *h2stream) fwRespond() bool {
	x := &st.x
	err := st.loopWrite(x)
	x.finish(err == nil, err)
	if len(st.pend) == 0 || err != nil {
		x.report()
		st.loopEnd()
		return false
	}
	st.reporting = true // once the rest is written (loopGoOn)
	return false
}

// fwOff carries the exchange on in a goroutine of the stream's own, as on
// Serve's connections, from sending the request (send) or from writing
// its response.
func (st *h2stream) fwOff(send bool) bool {
	x, hc := &st.x, st.hc
	hc.dropOnLoop(st)
	st.onLoop = false // before watch: the goroutine's way from now on
	st.ctx, st.cancel = context.WithCancel(context.Background())
	x.ctx = st.ctx
	if x.uc != nil {
		x.unwatch = st.watch(x.uc)
	}
	go func() {
		if send {
			x.roundTrip()
		}
		st.respond()
		st.close()
	}()
	return false
}

// loopWrite writes x.out into the stream: its head, and its body, all of
// which has come (bodyFits). What the client's windows do not take now
// waits in st.pend for Writable.
func (st *h2stream) loopWrite(x *exchange) error {
	r := &x.out
	if r.status == 0 {
		return errClientGone
	}
	st.responseHead(x)
	s := st.s
	if err := s.WriteHead(st.status, st.fields, st.end); err != nil {
		return st.loopFailed()
	}
	if st.end {
		st.ended = true
		return nil
	}
	if r.body == nil {
		x.rec.BytesOut += int64(len(r.fixed))
		return st.loopData(r.fixed, true)
	}
	for {
		p, err := r.body.Next()
		if err != nil && err != io.EOF {
			x.failure = err
			st.abort()
			return errCut
		}
		x.rec.BytesOut += int64(len(p))
		last := err == io.EOF || x.rbody.Done()
		if err := st.loopData(p, last); err != nil || last {
			return err
		}
	}
}

// loopData writes p into the stream, keeping in st.pend what it does not
// take now.
func (st *h2stream) loopData(p []byte, end bool) error {
	if len(st.pend) > 0 {
		st.pend, st.pendEnd = append(st.pend, p...), end
		return nil
	}
	n, err := st.s.Write(p, end)
	if err != nil {
		return st.loopFailed()
	}
	if n < len(p) {
		st.pend, st.pendEnd = append(st.pend[:0], p[n:]...), end
		return nil
	}
	if end {
		st.ended = true
	}
	return nil
}

// loopFailed resets a stream whose write failed.
func (st *h2stream) loopFailed() error {
	st.abort()
	return errClientGone
}

// loopGoOn writes what waits in st.pend, now that the stream is writable.
func (st *h2stream) loopGoOn() {
	n, err := st.s.Write(st.pend, st.pendEnd)
	if err != nil {
		st.loopFailed()
		st.x.clientFailed(errClientGone)
	} else {
		st.pend = st.pend[:copy(st.pend, st.pend[n:])]
		if len(st.pend) > 0 {
			return
		}
		if st.pendEnd {
			st.ended = true
		}
	}
	if st.reporting {
		st.reporting = false
		st.x.report()
	}
	st.loopEnd()
}

// loopDone ends a stream the loop serves that the client reset, or whose
// connection went away.
func (st *h2stream) loopDone() {
	x := &st.x
	st.ended = true
	switch {
	case st.collecting:
		// Reset before its body was in: it never began, and is
		// recorded as a request the client gave up on.
		st.collecting = false
		x.start(x.h.route.Load())
		x.out.reset()
		x.clientFailed(errClientGone)
		x.report()
	case st.fw.busy():
		st.fw.abort()
		x.out.reset()
		x.end(false, errClientGone)
	case st.reporting:
		st.reporting = false
		x.clientFailed(errClientGone)
		x.report()
	}
	st.loopEnd()
}

// loopEnd is the end of a stream the loop served: it goes back to the
// pool. The engine's stream is over (ended, or reset) by now.
func (st *h2stream) loopEnd() {
	if !st.ended {
		st.abort()
	}
	st.hc.dropOnLoop(st)
	st.onLoop = false
	st.pend = st.pend[:0]
	if cap(st.pend) > 64<<10 {
		st.pend = nil
	}
	st.reset()
	h2streams.Put(st)
}

// dropOnLoop takes st off the streams the loop serves.
func (hc *h2conn) dropOnLoop(st *h2stream) {
	i := st.loopIndex
	if i < 0 || i >= len(hc.onLoop) || hc.onLoop[i] != st {
		return
	}
	last := len(hc.onLoop) - 1
	hc.onLoop[i] = hc.onLoop[last]
	hc.onLoop[i].loopIndex = i
	hc.onLoop[last] = nil
	hc.onLoop = hc.onLoop[:last]
	st.loopIndex = -1
}
