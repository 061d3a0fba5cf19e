package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/h2"
	"github.com/latch-lb/latch/internal/upstream"
)

// The HTTP/2 client side. HTTP/2 is served by internal/h2, latch's own
// engine, on the connections latch's accept loop finds speak it (the h2c
// preface, or ALPN h2 over TLS). The connection's goroutine drives the
// engine (h2.Conn.Serve); each stream becomes an exchange like an
// HTTP/1.1 request, run on a goroutine of its own, and goes to the target
// as HTTP/1.1 (target_h1.go), or over HTTP/2 to a group with
// protocol_version HTTP2 (target_h2.go). The engine hands a stream's body
// to a buffer its goroutine reads; the stream's goroutine hands its
// writes to the connection's goroutine (post), the only one that may
// touch the engine.

// maxStreams is ALB's limit on concurrent streams per HTTP/2 connection.
const maxStreams = 128

// h2conn is one HTTP/2 client connection: the engine, and what its
// streams share.
type h2conn struct {
	h     *Handler
	c     *h2.Conn
	burst burst // the connection's first-burst affinity
	// The client, as every exchange of the connection has it.
	ipPort, ip            []byte
	src                   netip.Addr
	tlsVersion, tlsCipher uint16
	sni                   string

	mu        sync.Mutex  // guards queue, scheduled, closed, and h2stream's shared fields
	queue     []*h2stream // streams with work for the connection's goroutine
	scheduled bool        // run is posted and has not taken the queue yet
	closed    bool        // Serve has returned: a stream's work is done at once
	work      []*h2stream // the queue being run (the connection's goroutine's)
	runFn     func()

	// On an event loop (client_h2_loop.go): the loop and the connection
	// it came on, nil on Serve's goroutine; the streams the loop serves
	// itself; whether output waits for the turn's end (dirty); since when
	// the socket takes nothing (stallSince), and the linger once the
	// connection is over, unix ns.
	ls         *loopState
	lc         *loopConn
	wire       h2wire
	loopRunFn  func()
	onLoop     []*h2stream
	dirty      bool
	collecting bool // a stream waits for its body (collect) this turn
	stallSince int64
	lingerBy   int64
	lingered   int
}

// newH2conn returns the HTTP/2 connection of client p.
func newH2conn(h *Handler, p *peer) *h2conn {
	hc := &h2conn{h: h, ipPort: p.ipPort, ip: p.ip, src: p.src,
		tlsVersion: p.tlsVersion, tlsCipher: p.tlsCipher, sni: p.sni}
	hc.runFn = hc.run
	hc.c = h2.NewConn(hc, h2.Config{MaxStreams: maxStreams, IdleTimeout: h.route.Load().IdleTimeout,
		// A client that stops reading holds the connection, its streams
		// and their targets no longer than an idle one.
		WriteTimeout: h.route.Load().IdleTimeout, Counters: h.h2ctr})
	return hc
}

// register adds the connection to the handler's, for its GOAWAY at
// shutdown, unless the handler is shutting down.
func (hc *h2conn) register() bool {
	h := hc.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing.Load() {
		return false
	}
	h.h2conns[hc] = struct{}{}
	return true
}

// closeOut ends the connection's part in the handler once its engine is
// closed: every stream has had its Done, and what they post from now on
// finds them over, and is done at once.
func (hc *h2conn) closeOut() {
	h := hc.h
	h.mu.Lock()
	delete(h.h2conns, hc)
	h.mu.Unlock()
	// The queue is served here until it is empty, and only then is the
	// connection closed for posts: a stream served after that, by its own
	// goroutine (post), may end and go back to the pool at once, and must
	// not be in a queue served here still.
	for {
		hc.mu.Lock()
		q := hc.queue
		hc.queue = nil
		if len(q) == 0 {
			hc.closed = true
			hc.mu.Unlock()
			return
		}
		hc.mu.Unlock()
		for _, st := range q {
			st.service()
		}
	}
}

// serveH2 serves a connection that speaks HTTP/2 in the calling goroutine
// until it closes, or closes it when the handler is shutting down. pre
// holds what was already read from it; c is the goConn it came on, whose
// client (address, TLS) its streams have.
func (c *goConn) serveH2(nc net.Conn, pre []byte) {
	h := c.h
	// The HTTP/1.1 connection's buffers are not needed any more.
	c.rd.Close()
	c.wr.Reset(nil)
	hc := newH2conn(h, &c.peer)
	defer h.obs.Conn(ConnEvent{Kind: ConnClosed, Listener: h.name})
	if !hc.register() {
		hc.c.Close()
		nc.Close()
		return
	}
	for len(pre) > 0 {
		n := copy(hc.c.ReadBuf(), pre)
		hc.c.Received(n)
		pre = pre[n:]
	}
	hc.c.Serve(nc)
	hc.closeOut()
}

// shutdown sends the client a GOAWAY: the streams open finish, then the
// connection closes.
func (hc *h2conn) shutdown() { hc.exec(hc.c.Shutdown) }

// post has the connection's goroutine serve st's work (service): what it
// has read of the body to give back, and op, if any. The op is set in the
// same hold of the lock as st is queued: set before, it could be served
// by a service for st already queued, and st queued again after that
// service's reply let its goroutine end and put st back in the pool.
func (hc *h2conn) post(st *h2stream, op h2op) {
	hc.mu.Lock()
	if op != opNone {
		st.op = op
	}
	if hc.closed {
		hc.mu.Unlock()
		st.service()
		return
	}
	if !st.queued {
		st.queued = true
		hc.queue = append(hc.queue, st)
	}
	schedule := !hc.scheduled
	hc.scheduled = true
	hc.mu.Unlock()
	switch {
	case !schedule:
	case hc.ls != nil:
		hc.ls.loop.Post(hc.loopRunFn)
	default:
		hc.c.Post(hc.runFn)
	}
}

// run serves the streams' work, in the connection's goroutine.
func (hc *h2conn) run() {
	hc.mu.Lock()
	hc.work, hc.queue = hc.queue, hc.work[:0]
	hc.scheduled = false
	hc.mu.Unlock()
	for i, st := range hc.work {
		st.service()
		hc.work[i] = nil
	}
}

// The engine's callbacks, in the connection's goroutine.

// Head starts a stream's exchange: on the loop, for a request without a
// body on a connection a loop serves, else on a goroutine of its own.
func (hc *h2conn) Head(s *h2.Stream, head *h2.Head) {
	st := h2streams.Get().(*h2stream)
	st.start(hc, s, head)
	s.User = st
	if hc.ls != nil {
		switch {
		case head.End:
			st.loopServe()
			return
		case st.loopBody(head):
			st.collect() // served on the loop once its body is in
			return
		}
	}
	st.goRun()
}

// goRun serves the stream's exchange on a goroutine of its own.
func (st *h2stream) goRun() {
	st.ctx, st.cancel = context.WithCancel(context.Background())
	st.x.ctx = st.ctx
	go st.run()
}

func (hc *h2conn) Data(s *h2.Stream, p []byte, end bool) {
	st := s.User.(*h2stream)
	hc.mu.Lock()
	st.in = append(st.in, p...)
	st.inEnd = st.inEnd || end
	hc.mu.Unlock()
	if st.collecting {
		st.collected()
		return
	}
	st.signal()
}

func (hc *h2conn) Trailers(s *h2.Stream, fields []h2.Field) {
	st := s.User.(*h2stream)
	if st.collecting {
		st.collectOff() // trailers go to the target chunked, from a goroutine
	}
	hc.mu.Lock()
	for _, f := range fields {
		st.trBuf = append(st.trBuf, f.Name...)
		st.trBuf = append(st.trBuf, f.Value...)
	}
	b := st.trBuf
	for _, f := range fields {
		n := len(f.Name)
		st.tr = append(st.tr, h1.Field{Name: b[:n:n], Value: b[n : n+len(f.Value) : n+len(f.Value)]})
		b = b[n+len(f.Value):]
	}
	st.inEnd = true
	hc.mu.Unlock()
	st.signal()
}

func (hc *h2conn) Writable(s *h2.Stream) {
	st := s.User.(*h2stream)
	if st.onLoop {
		st.loopGoOn()
		return
	}
	st.goOn()
}

// Done aborts the stream's exchange: the client reset it, or the
// connection went away.
func (hc *h2conn) Done(s *h2.Stream, code h2.ErrCode) {
	st, ok := s.User.(*h2stream)
	if !ok {
		return // never had its Head (the engine does not say Done for those)
	}
	if st.onLoop {
		st.loopDone()
		return
	}
	st.ended = true
	st.cancel()
	writing := st.writing
	st.writing = false
	hc.mu.Lock()
	st.gone = true
	if st.watched != nil {
		// Under the lock: once unwatch has it, the connection may serve
		// another exchange.
		st.watched.Abort()
		st.watched, st.fired = nil, true
	}
	hc.mu.Unlock()
	if writing {
		st.reply(errClientGone) // a write waiting for Writable
	}
	// Last, and nothing of st touched after: the stream's goroutine waits
	// for it before st goes back to the pool (release).
	hc.mu.Lock()
	st.doneOver = true
	st.signal()
	hc.mu.Unlock()
}

// An h2stream's ops: what its goroutine asks the connection's to do.
type h2op uint8

const (
	opNone     h2op = iota
	opSync          // nothing: every earlier post has been served
	opContinue      // WriteHead 100
	opHead          // WriteHead(status, fields, opEnd)
	opData          // Write(opData, opEnd), waiting for Writable as need be
	opTrailers      // WriteTrailers(fields)
	opReset         // Reset(InternalError)
)

// h2stream is one HTTP/2 request: the source of its exchange's body, and
// the writer of its answer.
type h2stream struct {
	x  exchange
	hc *h2conn

	// The connection goroutine's: the engine's stream, nil once over for
	// the engine (ended).
	s       *h2.Stream
	ended   bool
	writing bool // an opData waits for Writable

	// Shared, under hc.mu.
	in          []byte // body bytes received and not yet read
	inEnd       bool   // the body has ended (tr holds its trailers)
	gone        bool   // the stream is over: reset, or the connection closed
	doneOver    bool   // Done, which set gone, has returned
	interrupted bool
	consumed    int // read from in, not yet given back to the client's window
	queued      bool
	op          h2op           // set by the stream's goroutine before post, taken by service
	watched     *upstream.Conn // the target connection to cut when the client goes away
	fired       bool           // it was cut

	// The op's arguments, set before post (the stream's goroutine waits
	// for the reply, so the connection's goroutine may read them).
	status int
	fields []h1.Field
	data   []byte
	end    bool
	done   chan error // the op's reply

	wake      chan struct{} // the body has news
	unwatchFn func() bool   // unwatch, made once
	ctx       context.Context
	cancel    context.CancelFunc

	// On the loop (client_h2_loop.go): the target's side, the stream's
	// place in hc.onLoop, the body the client's windows have not taken
	// yet (and whether it ends the stream), and whether the exchange's
	// end is still to be reported, once that is written.
	onLoop     bool
	collecting bool // its body is coming, to be served on the loop once in
	fw         loopFwd
	loopIndex  int
	pend       []byte
	pendEnd    bool
	reporting  bool

	// The stream goroutine's.
	bodyTimer  *time.Timer // bounds Next's waits for the client
	buf        *relayBuf   // what Next returns, from relayBufs once needed
	over       bool        // an op ended the stream, or found it over
	refuse     *h1.Error   // the engine's reason to refuse the request
	bodyDone   bool
	expect     bool // Expect: 100-continue, not yet answered
	tr         []h1.Field
	trBuf      []byte
	headBuf    []byte // the request head's bytes
	outBuf     []byte // the response head's and trailers' bytes
	cookieJoin []byte
}

var h2streams = sync.Pool{New: func() any {
	st := &h2stream{done: make(chan error, 1), wake: make(chan struct{}, 1)}
	st.unwatchFn = st.unwatch
	return st
}}

var (
	_ bodySource  = (*h2stream)(nil)
	_ writer      = (*h2stream)(nil)
	_ connWatcher = (*h2stream)(nil)
)

func (st *h2stream) watch(uc *upstream.Conn) func() bool {
	if st.onLoop {
		return nil // the loop's Done aborts the exchange itself
	}
	st.hc.mu.Lock()
	defer st.hc.mu.Unlock()
	st.watched, st.fired = uc, false
	if st.gone {
		st.watched, st.fired = nil, true
		uc.Abort()
	}
	return st.unwatchFn
}

// unwatch ends watch, reporting false if the client went away first.
func (st *h2stream) unwatch() bool {
	st.hc.mu.Lock()
	defer st.hc.mu.Unlock()
	st.watched = nil
	return !st.fired
}

// start readies st for the request whose head came, copying what it needs
// of it: the head's slices are the decoder's, valid only during Head.
func (st *h2stream) start(hc *h2conn, s *h2.Stream, head *h2.Head) {
	x := &st.x
	*x = exchange{h: hc.h, body: st, burst: &hc.burst, http2: true, buf: x.buf[:0], xff: x.xff[:0], trace: x.trace[:0],
		req: h1.Request{Fields: x.req.Fields[:0], Kinds: x.req.Kinds[:0]}, resp: x.resp,
		out:    response{fields: x.out.fields[:0], kinds: x.out.kinds[:0], fixed: x.out.fixed[:0]},
		ipPort: hc.ipPort, ip: hc.ip, src: hc.src, tlsVersion: hc.tlsVersion, tlsCipher: hc.tlsCipher, sni: hc.sni}
	st.hc, st.s, st.ended, st.writing = hc, s, false, false
	st.in, st.inEnd, st.gone, st.interrupted, st.consumed, st.queued, st.op = st.in[:0], head.End, false, false, 0, false, opNone
	st.watched, st.fired, st.doneOver = nil, false, false
	st.bodyDone, st.expect, st.tr, st.trBuf, st.over = false, false, st.tr[:0], st.trBuf[:0], false
	st.loopIndex, st.onLoop, st.reporting, st.pendEnd, st.collecting = -1, false, false, false, false
	st.head(head)
}

// head puts the HTTP/2 request in HTTP/1.1 form, as the target gets it:
// :authority is the Host field, split cookies one field (RFC 9113
// §8.2.3), TE and Expect latch's to act on.
func (st *h2stream) head(head *h2.Head) {
	n := len(head.Method) + len(head.Path) + len(head.Authority)
	cookies := 0
	for _, f := range head.Fields {
		n += len(f.Name) + len(f.Value)
		if h1.KindOf(f.Name) == h1.KindCookie {
			n += 2
			cookies++
		}
	}
	if cap(st.headBuf) < n {
		st.headBuf = make([]byte, 0, n)
	}
	// Copies into room reserved above: the slices never move.
	b := st.headBuf[:0]
	cp := func(p []byte) []byte {
		b = append(b, p...)
		return b[len(b)-len(p) : len(b) : len(b)]
	}
	req := &st.x.req
	req.Method, req.Target, req.Host = cp(head.Method), cp(head.Path), cp(head.Authority)
	req.Proto, req.Minor, req.KeepAlive = http11, 1, true
	req.Fields = append(req.Fields, h1.Field{Name: nameHost, Value: req.Host})
	req.Kinds = append(req.Kinds, h1.KindHost)
	if cookies > 1 {
		// One field, where the first came, joined with "; ".
		start := len(b)
		for _, f := range head.Fields {
			if h1.KindOf(f.Name) == h1.KindCookie {
				if len(b) > start {
					b = append(b, "; "...)
				}
				b = append(b, f.Value...)
			}
		}
		st.cookieJoin = b[start:len(b):len(b)]
	}
	joined := false
	for _, f := range head.Fields {
		k := h1.KindOf(f.Name)
		switch k {
		case h1.KindCookie:
			if cookies > 1 {
				if !joined {
					joined = true
					req.Fields = append(req.Fields, h1.Field{Name: cp(f.Name), Value: st.cookieJoin})
					req.Kinds = append(req.Kinds, k)
				}
				continue
			}
		case h1.KindExpect:
			// latch answers 100-continue itself (Continue); any other
			// expectation is refused, as over HTTP/1.1.
			if h1.EqualLower(h1.TrimOWS(f.Value), "100-continue") {
				req.Expect100 = true
			} else {
				req.ExpectOther = true
			}
			continue
		case h1.KindTE:
			req.WantsTrailers = true // the engine lets "trailers" alone through
			continue
		case h1.KindXForwardedFor:
			req.XFFCount += h1.ListEntries(f.Value)
		}
		req.Fields = append(req.Fields, h1.Field{Name: cp(f.Name), Value: cp(f.Value)})
		req.Kinds = append(req.Kinds, k)
	}
	st.headBuf = b
	switch {
	case head.End:
		req.Framing = h1.NoBody
	case head.ContentLength > 0:
		req.Framing, req.ContentLength = h1.Length, head.ContentLength
	case head.ContentLength < 0:
		req.Framing = h1.Chunked
	}
	st.expect = req.Expect100 && req.Framing != h1.NoBody
	st.refuse = head.Refuse
}

var http11 = []byte("HTTP/1.1")

// run serves the stream's exchange, in its own goroutine.
func (st *h2stream) run() {
	x := &st.x
	if st.refuse != nil {
		st.refusal()
		st.write(x)
	} else {
		rt := x.h.route.Load()
		if x.begin(rt) {
			x.roundTrip()
		}
		st.respond()
	}
	st.close()
}

// respond writes the answer and ends the exchange, in the stream's
// goroutine.
func (st *h2stream) respond() {
	x := &st.x
	keep, err := st.write(x)
	x.end(keep, err)
	if err == errCut {
		st.sync(opReset)
	}
}

// close ends the stream's goroutine: the stream is over for the engine,
// and goes back to the pool.
func (st *h2stream) close() {
	st.hc.mu.Lock()
	queued, gone := st.queued, st.gone
	st.hc.mu.Unlock()
	switch {
	case !st.over && !gone:
		// Not ended by a write (which cannot be): reset, so that the
		// engine calls nothing more with st, which is to be reused.
		st.sync(opReset)
	case queued:
		st.sync(opSync) // nothing of st may stay in the queue once it is reused
	}
	st.cancel()
	st.release()
}

// release readies st for the pool, once the connection's goroutine is
// done with it.
func (st *h2stream) release() {
	hc := st.hc
	hc.mu.Lock()
	for st.gone && !st.doneOver {
		hc.mu.Unlock()
		<-st.wake
		hc.mu.Lock()
	}
	hc.mu.Unlock()
	select {
	case <-st.wake:
	default:
	}
	if st.buf != nil {
		relayBufs.Put(st.buf)
		st.buf = nil
	}
	const keep = 16 << 10 // a stream that took a large body keeps no large buffer
	if cap(st.in) > keep {
		st.in = nil
	}
	if cap(st.headBuf) > 4*keep {
		st.headBuf = nil
	}
	st.reset()
	h2streams.Put(st)
}

// reset drops what st holds of the request it served.
func (st *h2stream) reset() {
	st.hc, st.s, st.ctx, st.cancel, st.x.ctx, st.x.burst, st.cookieJoin = nil, nil, nil, nil, nil, nil, nil
	st.fw, st.x.unwatch = loopFwd{}, nil
	clear(st.fields)
	st.fields, st.data = st.fields[:0], nil
}

// refusal makes latch's own error the answer to a stream latch refuses
// before it begins (a malformed request, one over the head limits).
func (st *h2stream) refusal() {
	x := &st.x
	status, cause := st.refuse.Status, st.refuse.Cause
	x.now = time.Now()
	x.newRecord(x.now)
	x.answerError(status, cause, false)
	x.rec.Status, x.rec.BytesOut = status, x.out.bodyLength()
	x.h.obs.Refused(&x.rec)
}

// sync has the connection's goroutine do op, and waits for it.
func (st *h2stream) sync(op h2op) error {
	st.hc.post(st, op)
	err := <-st.done
	if err != nil || op == opTrailers || op == opReset || (op == opHead || op == opData) && st.end {
		st.over = true // the stream is over for the engine
	}
	return err
}

// reply ends the op under way.
func (st *h2stream) reply(err error) { st.done <- err }

// signal wakes a Next waiting for the body.
func (st *h2stream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// service does st's work in the connection's goroutine (or, once the
// connection is closed, in the stream's: it is over for the engine).
func (st *h2stream) service() {
	hc := st.hc
	hc.mu.Lock()
	n, op := st.consumed, st.op
	st.consumed, st.queued, st.op = 0, false, opNone
	// Read under the lock: with no op to reply to, st is its goroutine's
	// again once queued is false, and may go back to the pool (release)
	// and serve another stream at once; s stays this connection's until
	// it is over (ended).
	ended, s := st.ended, st.s
	hc.mu.Unlock()
	if ended {
		if op != opNone {
			st.reply(errClientGone)
		}
		return
	}
	if n > 0 {
		s.Consume(n)
	}
	var err error
	switch op {
	case opNone:
		return
	case opSync:
	case opContinue:
		err = st.s.WriteHead(100, nil, false)
	case opHead:
		err = st.s.WriteHead(st.status, st.fields, st.end)
		if st.end {
			st.ended = true
		}
	case opData:
		st.writing = true
		st.goOn()
		return
	case opTrailers:
		err = st.s.WriteTrailers(st.fields)
		st.ended = true
	case opReset:
		st.s.Reset(h2.InternalError)
		st.ended = true
	}
	if err != nil {
		st.abort()
		err = errClientGone
	}
	st.reply(err)
}

// abort resets a stream whose write failed, unless it is over already:
// its goroutine is about to end, and st to be reused.
func (st *h2stream) abort() {
	if !st.ended {
		st.s.Reset(h2.InternalError)
		st.ended = true
	}
}

// goOn goes on with an opData: as much as the client's windows take,
// the rest when the engine says it is Writable.
func (st *h2stream) goOn() {
	if !st.writing {
		return
	}
	n, err := st.s.Write(st.data, st.end)
	st.data = st.data[n:]
	switch {
	case err != nil:
		st.abort()
		err = errClientGone
	case len(st.data) > 0:
		return // Writable goes on
	case st.end:
		st.ended = true
	}
	st.writing = false
	st.reply(err)
}

// waitBody waits for news of the body, at most the listener's idle
// timeout; it reports false when that passed first.
func (st *h2stream) waitBody() bool {
	idle := st.x.rt.IdleTimeout
	if idle <= 0 {
		<-st.wake
		return true
	}
	if st.bodyTimer == nil {
		st.bodyTimer = time.NewTimer(idle) // once for the pooled stream
	} else {
		st.bodyTimer.Reset(idle)
	}
	select {
	case <-st.wake:
		st.bodyTimer.Stop()
		return true
	case <-st.bodyTimer.C:
		return false
	}
}

// Next reads the request body: what the client's DATA frames carried.
func (st *h2stream) Next() ([]byte, error) {
	if st.bodyDone || st.x.req.Framing == h1.NoBody {
		return nil, io.EOF
	}
	if st.onLoop {
		return st.loopNext()
	}
	if st.buf == nil {
		st.buf = relayBufs.Get().(*relayBuf)
	}
	hc := st.hc
	hc.mu.Lock()
	for len(st.in) == 0 && !st.inEnd && !st.gone && !st.interrupted {
		hc.mu.Unlock()
		if !st.waitBody() {
			// The client sent nothing for the idle timeout: as over
			// HTTP/1.1, the request is answered 400.
			return nil, h1.ErrBodyTooShort
		}
		hc.mu.Lock()
	}
	if len(st.in) == 0 && !st.inEnd {
		st.interrupted = false
		hc.mu.Unlock()
		return nil, h1.ErrBodyTooShort
	}
	n := copy(st.buf[:], st.in)
	st.in = st.in[:copy(st.in, st.in[n:])]
	if len(st.in) == 0 && st.inEnd {
		st.bodyDone = true
	}
	st.consumed += n
	post := n > 0 && !st.inEnd
	hc.mu.Unlock()
	if post {
		hc.post(st, opNone) // the window back, now that the bytes are out of st.in
	}
	if n == 0 {
		return nil, io.EOF
	}
	return st.buf[:n], nil
}

func (st *h2stream) Done() bool { return st.bodyDone || st.x.req.Framing == h1.NoBody }

func (st *h2stream) Trailers() []h1.Field {
	if !st.bodyDone {
		return nil
	}
	return st.tr
}

func (st *h2stream) AtHand() bool {
	st.hc.mu.Lock()
	defer st.hc.mu.Unlock()
	return len(st.in) > 0 || st.inEnd
}

func (st *h2stream) Touch(int64) {}

// Continue answers Expect: 100-continue, once, unless the body has come
// already.
func (st *h2stream) Continue() error {
	if !st.expect {
		return nil
	}
	st.expect = false
	if st.AtHand() {
		return nil
	}
	return st.sync(opContinue)
}

func (st *h2stream) Interrupt() {
	st.hc.mu.Lock()
	st.interrupted = true
	st.hc.mu.Unlock()
	st.signal()
}

// write writes x.out to the stream: its header (the session's fields
// added), its body as it arrives, then its trailers. A body the target cut
// short returns errCut, for the caller to reset the stream.
func (st *h2stream) write(x *exchange) (bool, error) {
	r := &x.out
	if r.status == 0 {
		return false, nil // the client went away
	}
	st.responseHead(x)
	if st.sync(opHead) != nil {
		return false, errClientGone
	}
	switch {
	case st.end:
		return true, nil
	case r.body == nil:
		st.data, st.end = r.fixed, true
		if st.sync(opData) != nil {
			return false, errClientGone
		}
		x.rec.BytesOut += int64(len(r.fixed))
		return true, nil
	}
	for {
		p, err := r.body.Next()
		if len(p) > 0 {
			st.data, st.end = p, false
			if st.sync(opData) != nil {
				return false, errClientGone
			}
			x.rec.BytesOut += int64(len(p))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			x.failure = err // the target's: it failed mid-response
			return false, errCut
		}
	}
	if tr := r.body.Trailers(); len(tr) > 0 {
		st.fields = append(st.fields[:0], tr...)
		if st.sync(opTrailers) != nil {
			return false, errClientGone
		}
		return true, nil
	}
	st.data, st.end = nil, true
	if st.sync(opData) != nil {
		return false, errClientGone
	}
	return true, nil
}

// responseHead readies x.out's head for the stream: st.status and
// st.fields (the session's fields added, a length stated when known), and
// st.end when no body follows.
func (st *h2stream) responseHead(x *exchange) {
	r := &x.out
	st.fields, st.outBuf = st.fields[:0], st.outBuf[:0]
	for i, f := range r.fields {
		switch k := r.kinds[i]; {
		case k == h1.KindContentLength, k == h1.KindTrailer, k.HopByHop():
			continue
		}
		st.fields = append(st.fields, f)
	}
	if r.sticky {
		x.writeSticky(st)
	}
	// A 304's Content-Length describes a body it does not carry, which Go's
	// HTTP/2 client (and others) read as a body cut short: left out.
	n := int64(-1)
	switch {
	case r.body == nil && !r.noBody:
		n = int64(len(r.fixed))
	case r.length >= 0 && (!r.noBody || r.hasLength && r.status != 204 && r.status != 304):
		n = r.length
	}
	if n >= 0 {
		start := len(st.outBuf)
		st.outBuf = strconv.AppendInt(st.outBuf, n, 10)
		st.fields = append(st.fields, h1.Field{Name: nameContentLengthLower, Value: st.outBuf[start:]})
	}
	st.status = r.status
	st.end = r.noBody || r.body == nil && len(r.fixed) == 0
}

// WriteField adds one of the session's fields to the response head. The
// values may be views of x.buf, which the next field may move: copied.
func (st *h2stream) WriteField(name, value []byte) {
	st.outBuf = append(st.outBuf, value...)
	st.fields = append(st.fields, h1.Field{Name: name, Value: st.outBuf[len(st.outBuf)-len(value):]})
}

var nameContentLengthLower = []byte("content-length")
