package proxy

import (
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/h1"
)

// h1conn is an HTTP/1.1 client connection, whichever data path serves it
// (a goroutine, goConn; or an event loop, loopConn, which may hand it to a
// goroutine mid-way): its reader and writer, and the exchange on it, all
// reused from one request to the next.
type h1conn struct {
	x      exchange
	h      *Handler
	rd     *h1.Reader
	wr     *h1.Writer
	body   clientBody // x.body: the request's body, read from rd
	served int        // requests answered on this connection
	// path is the data path serving the connection now, for what only it
	// can do (deadlines, interrupting a read).
	path interface {
		touch(now int64, idle time.Duration)
		interruptRead()
	}
}

// init prepares the connection of a client at addr.
func (c *h1conn) init(h *Handler, addr net.Addr) {
	s := addr.String()
	c.h = h
	c.body.c = c
	c.x = exchange{h: h, body: &c.body, ipPort: []byte(s)}
	c.x.ip, c.x.src = peerAddr(s)
}

// touch makes sure the client's deadline leaves idle from now.
func (c *h1conn) touch(now int64, idle time.Duration) { c.path.touch(now, idle) }

// readRequest reads the next request head. An error before the request
// line is no answer to HEAD, hence the reset of Method.
func (c *h1conn) readRequest() (started bool, err error) {
	c.x.req.Method = nil
	return c.rd.ReadRequest(&c.x.req)
}

// admit applies desync mitigation (ALB's classification and the mode's
// action) and checks that the request can be forwarded. It answers the
// requests it refuses, and reports whether to go on; the request body is
// then ready to read.
func (c *h1conn) admit(rt *Route) bool {
	x := &c.x
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
	c.body.b.Reset(c.rd, req.Framing, req.ContentLength, false)
	return true
}

// readFailed answers a request that could not be read: ALB's 400 for a
// malformed one, 408 for one that stalled. A connection that closed or sat
// idle between requests just closes.
func (c *h1conn) readFailed(started bool, err error) {
	c.x.rec.Classified, c.x.rec.Desync, c.x.rec.DesyncBlocked = false, desync.Verdict{}, false
	if e, ok := h1.IsError(err); ok {
		c.reject(e.Status, e.Cause)
		return
	}
	// ALB answers 408 to a client that sends no request in time. Not on a
	// kept-alive connection idle between requests: there a client may be
	// sending its next request as latch closes, and would read the 408 as
	// its answer; it just closes.
	if (started || c.served == 0) && errors.Is(err, os.ErrDeadlineExceeded) && !c.h.closing.Load() {
		c.reject(http.StatusRequestTimeout, "the client sent no complete request within the idle timeout")
	}
}

// reject answers a request latch refuses before it begins with latch's
// own error, and the connection closes after it.
func (c *h1conn) reject(status int, cause string) {
	x := &c.x
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
