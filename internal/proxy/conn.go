package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/h1"
)

// h1conn is an HTTP/1.1 client connection, whichever data path serves it
// (a goroutine, goConn; or an event loop, loopConn, which may hand it to a
// goroutine mid-way): its client, its reader and writer, and the request
// it is serving. What serves a request (the exchange, the body's reader
// and their buffers, about 3.5 KiB after a request) is taken from a pool
// when the request's first bytes come, and given back when the connection
// goes idle again, as HAProxy does with its streams: an idle connection
// holds its socket, this struct and its reader and writer, which hold no
// buffer.
type h1conn struct {
	// r is the request being served, nil while the connection is idle;
	// x is &r.x.
	r      *h1req
	x      *exchange
	h      *Handler
	peer   peer
	rd     *h1.Reader
	wr     *h1.Writer
	served int // requests answered on this connection
	// path is the data path serving the connection now, for what only it
	// can do (deadlines, interrupting a read).
	path interface {
		touch(now int64, idle time.Duration)
		interruptRead()
		// setExchange says x is the connection's exchange now (nil:
		// none, the connection idle).
		setExchange(x *exchange)
	}
}

// peer is a client connection's address and TLS, which every exchange on
// it has.
type peer struct {
	// ip is the client's address, for X-Forwarded-For; ipPort is
	// "ip:port" ("[ipv6]:port"); src the same parsed, for source_ip rules
	// and affinity.
	ipPort, ip []byte
	src        netip.Addr
	// The connection's TLS, for the Observer (tlsVersion 0: none).
	tlsVersion, tlsCipher uint16
	sni                   string
}

// h1req is what an HTTP/1.1 connection holds only while it serves a
// request: the exchange, and the reader of the request's body. Pooled
// (h1reqs), so that a warm connection serves its requests without
// allocating, and reused by any connection: take sets everything that is
// the connection's.
type h1req struct {
	x    exchange
	body clientBody
}

var h1reqs = sync.Pool{New: func() any { return new(h1req) }}

// init prepares the connection of a client at addr.
func (c *h1conn) init(h *Handler, addr net.Addr) {
	s := addr.String()
	c.h = h
	c.peer.ipPort = []byte(s)
	c.peer.ip, c.peer.src = peerAddr(s)
}

// take gives the connection the state of a request, from the pool, and
// returns its exchange; the connection's own if it has one.
func (c *h1conn) take() *exchange {
	if c.r != nil {
		return c.x
	}
	r := h1reqs.Get().(*h1req)
	c.r, c.x = r, &r.x
	r.body.c = c
	x, p := &r.x, &c.peer
	x.h, x.body = c.h, &r.body
	x.ipPort, x.ip, x.src, x.tlsVersion, x.tlsCipher, x.sni = p.ipPort, p.ip, p.src, p.tlsVersion, p.tlsCipher, p.sni
	c.path.setExchange(x)
	return x
}

// drop gives the request's state back to the pool once the connection is
// idle (its last answer out, nothing of the next request read) or over.
// The exchange must hold nothing of the request any more: no target
// connection, nothing in flight, its record reported.
func (c *h1conn) drop() {
	r := c.r
	if r == nil {
		return
	}
	c.r, c.x = nil, nil
	c.path.setExchange(nil)
	r.body.c, r.body.b = nil, h1.Body{}
	// Nothing of the connection's, or of a request's that would keep
	// targets or config alive, stays in the pool.
	x := &r.x
	x.h, x.body, x.guard, x.rt, x.act, x.be, x.view, x.t = nil, nil, nil, nil, nil, nil, nil, nil
	x.ipPort, x.ip, x.sni = nil, nil, ""
	// Nor a view of the connection's read buffer, which goes back to its
	// pool too: the next connection to take r may answer before it reads
	// a request (a 408), and must not see this one's method or target.
	x.req.Method, x.req.Target, x.req.Proto, x.req.Host = nil, nil, nil, nil
	x.req.Fields, x.req.Kinds = x.req.Fields[:0], x.req.Kinds[:0]
	// What a huge request or response left is not kept in the pool.
	const keep = 16 << 10
	if cap(x.buf) > keep {
		x.buf = nil
	}
	h1reqs.Put(r)
}

// touch makes sure the client's deadline leaves idle from now.
func (c *h1conn) touch(now int64, idle time.Duration) { c.path.touch(now, idle) }

// readRequest reads the next request head, taking the request's state once
// its first bytes have come. An error before the request line is no answer
// to HEAD, hence the reset of Method.
func (c *h1conn) readRequest() (started bool, err error) {
	if err := c.rd.Wait(); err != nil {
		return false, err
	}
	x := c.take()
	x.req.Method = nil
	started, err = c.rd.ReadRequest(&x.req)
	if err == h1.ErrWouldBlock && c.rd.Buffered() == 0 {
		c.drop() // only empty lines came
	}
	return started, err
}

// admit applies desync mitigation (ALB's classification and the mode's
// action) and checks that the request can be forwarded. It answers the
// requests it refuses, and reports whether to go on; the request body is
// then ready to read.
func (c *h1conn) admit(rt *Route) bool {
	x := c.x
	req := &x.req
	v := desync.Classify(req.Method, req.Target, req.Proto, req.Fields)
	x.rec.Classified, x.rec.Desync, x.rec.DesyncBlocked = true, v, false
	x.closeAfter = false
	switch rt.Desync.Action(v.Tier) {
	case desync.Block:
		x.rec.DesyncBlocked = true
		c.h.log.Debug("request blocked by desync mitigation", "mode", rt.Desync.String(),
			"classification", v.Tier.String(), "reason", v.Reason.String(), "detail", v.Message)
		c.reject(http.StatusBadRequest, "request refused by desync mitigation ("+v.Reason.String()+")")
		return false
	case desync.AllowAndClose:
		x.closeAfter = true
	}
	if v.Tier != desync.Compliant {
		c.h.log.Debug("non-compliant request", "mode", rt.Desync.String(),
			"classification", v.Tier.String(), "reason", v.Reason.String(), "detail", v.Message)
	}
	if err := req.Frame(); err != nil {
		e, _ := h1.IsError(err)
		c.reject(e.Status, e.Cause)
		return false
	}
	c.r.body.b.Reset(c.rd, req.Framing, req.ContentLength, false)
	return true
}

// readFailed answers a request that could not be read: ALB's 400 for a
// malformed one, 408 for one that stalled. A connection that closed or sat
// idle between requests just closes.
func (c *h1conn) readFailed(started bool, err error) {
	if e, ok := h1.IsError(err); ok {
		c.rejectUnread(e.Status, e.Cause)
		return
	}
	// ALB answers 408 to a client that sends no request in time. Not on a
	// kept-alive connection idle between requests: there a client may be
	// sending its next request as latch closes, and would read the 408 as
	// its answer; it just closes.
	if (started || c.served == 0) && errors.Is(err, os.ErrDeadlineExceeded) && !c.h.closing.Load() {
		c.rejectUnread(http.StatusRequestTimeout, "the client sent no complete request within the idle timeout")
	}
}

// rejectUnread answers a request that could not be read, unclassified.
func (c *h1conn) rejectUnread(status int, cause string) {
	x := c.take()
	x.rec.Classified, x.rec.Desync, x.rec.DesyncBlocked = false, desync.Verdict{}, false
	c.reject(status, cause)
}

// reject answers a request latch refuses before it begins with latch's
// own error, and the connection closes after it.
func (c *h1conn) reject(status int, cause string) {
	x := c.x
	now := time.Now()
	x.rt = c.h.route.Load()
	c.touch(now.UnixNano(), x.rt.IdleTimeout)
	x.now = now
	x.newRecord(now)
	x.answerError(status, cause, false)
	x.rec.Status, x.rec.BytesOut = status, x.out.bodyLength()
	c.h.obs.Refused(&x.rec) // before the answer: a client that reads it finds it counted
	c.write(x)
}

// servedOne counts a request answered, with the connection to be kept for
// the next.
func (c *h1conn) servedOne() bool {
	c.served++
	c.rd.Release()
	if c.rd.Buffered() == 0 {
		c.drop() // idle: nothing of the next request came yet
	}
	return true
}

// clientBody is an HTTP/1.1 client's request body, as the exchange reads
// it.
type clientBody struct {
	c *h1conn
	b h1.Body
}

func (b *clientBody) Next() ([]byte, error) { return b.b.Next() }

// Touch moves the client's deadline on: the exchange is about to wait for
// more of the body. (Not Next's own doing: an HTTP/2 target's client reads
// the body in a goroutine of its own, which must not touch the
// connection.)
func (b *clientBody) Touch(now int64) { b.c.touch(now, b.c.x.rt.IdleTimeout) }

func (b *clientBody) Done() bool           { return b.b.Done() }
func (b *clientBody) Trailers() []h1.Field { return b.b.Trailers() }
func (b *clientBody) AtHand() bool         { return b.c.rd.Buffered() > 0 }
func (b *clientBody) Interrupt()           { b.c.path.interruptRead() }

// Continue answers Expect: 100-continue, unless the body is coming
// already.
func (b *clientBody) Continue() error {
	if b.AtHand() {
		return nil
	}
	c := b.c
	c.touch(time.Now().UnixNano(), c.x.rt.IdleTimeout)
	c.wr.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return c.wr.Flush()
}

// h2Preface is the part of HTTP/2's connection preface that reads as an
// HTTP/1.1 request head (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\n"

// notHTTP1 reports whether the connection's first request, on a listener
// that takes HTTP/2 with prior knowledge too, names no HTTP/1 version: an
// HTTP/2 client whose preface is broken (RFC 9113 §3.4: a connection
// error), which an HTTP/1.1 answer would not help. The connection is
// closed without one, and counted as a bad preface.
func (c *h1conn) notHTTP1(rt *Route) bool {
	p := string(c.x.req.Proto)
	if !rt.H2C || c.served > 0 || p == "HTTP/1.1" || p == "HTTP/1.0" {
		return false
	}
	c.h.h2ctr.BadPreface.Add(1)
	return true
}

func isH2Preface(req *h1.Request) bool {
	return string(req.Method) == "PRI" && string(req.Target) == "*" && string(req.Proto) == "HTTP/2.0" && len(req.Fields) == 0
}

// preface returns the HTTP/2 preface and what the client sent after it,
// for the HTTP/2 server to read again.
func (c *h1conn) preface() []byte {
	pre := make([]byte, len(h2Preface)+c.rd.Buffered())
	c.rd.ReadBuffered(pre[copy(pre, h2Preface):])
	return pre
}
