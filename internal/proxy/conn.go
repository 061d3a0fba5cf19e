package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/upstream"
)

// clientConn is one client connection and the state of the exchange on it.
// Everything here is reused from one request to the next.
type clientConn struct {
	exchange // the request being served; reused for the next one

	nc    net.Conn
	rd    *h1.Reader
	wr    *h1.Writer
	hbody h1.Body // the request's body, read from rd

	idle     atomic.Bool // waiting for a request: Shutdown may close it
	deadline int64       // the deadline last set on nc, unix nanoseconds
	handedOn bool        // nc went to the HTTP/2 server
	served   int         // requests answered on this connection

	// On an event loop (loop.go): ls is the loop, nil once the connection
	// has left it (nc is then set); lsShared is the same for other
	// goroutines (Shutdown). The loop keeps the deadline itself, checking
	// it every tickHint.
	ls               *loopState
	lsShared         atomic.Pointer[loopState]
	sock             h1.Sock
	st               loopStage
	up               *loopUpstream // the target connection in use
	hp               *balance.Hash // the picker whose Begin the exchange called
	began            bool          // Begin called, Done not yet
	retried          bool          // the request went to a second target
	sendElsewhere    bool          // a goroutine sends the request (loop.go)
	closeWhenFlushed bool
	tickHint         time.Duration
}

var _ client = (*clientConn)(nil)

func newClientConn(h *Handler, nc net.Conn) *clientConn {
	c := &clientConn{nc: nc, rd: h1.NewReader(nc, true), wr: h1.NewWriter(nc)}
	c.initExchange(h, nc.RemoteAddr())
	return c
}

// initExchange prepares the exchange of a connection from addr.
func (c *clientConn) initExchange(h *Handler, addr net.Addr) {
	s := addr.String()
	c.exchange = exchange{h: h, cl: c, body: &c.hbody, ipPort: []byte(s)}
	c.ip, c.src = peerAddr(s)
}

func (c *clientConn) serve() {
	defer c.cleanup()
	if tc, ok := c.nc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
	for c.next() {
	}
}

// cleanup releases what a connection holds once it is done.
func (c *clientConn) cleanup() {
	c.rd.Close()
	c.wr.Reset(nil)
	if !c.handedOn {
		c.nc.Close()
	}
	c.h.forget(c)
}

// next reads the next request and serves it; it reports whether the
// connection may carry another.
func (c *clientConn) next() bool {
	c.touch(c.h.now().UnixNano(), c.h.route.Load().IdleTimeout)
	c.idle.Store(true)
	if c.h.closing.Load() {
		return false
	}
	c.req.Method = nil // an error before the request line is no answer to HEAD
	started, err := c.rd.ReadRequest(&c.req)
	c.idle.Store(false)
	if err != nil {
		c.readFailed(started, err)
		return false
	}
	// The route is read once the request is in, so that a request that
	// arrives after a reload is served by the new config.
	return c.handle(c.h.route.Load())
}

// handle serves the request just read.
func (c *clientConn) handle(rt *Route) bool {
	if rt.H2C && isH2Preface(&c.req) {
		// HTTP/2 with prior knowledge: the HTTP/2 server reads the
		// preface again, and everything after it.
		pre := make([]byte, len(h2Preface)+c.rd.Buffered())
		c.rd.ReadBuffered(pre[copy(pre, h2Preface):])
		c.handedOn = true
		c.h.serveH2(c.nc, pre, rt.IdleTimeout)
		return false
	}
	if !c.admit(rt) {
		return false
	}
	c.hbody.Reset(c.rd, c.req.Framing, c.req.ContentLength, false)
	return c.exchange.serve(rt) && c.served1()
}

// served1 counts a request answered, with the connection to be kept.
func (c *clientConn) served1() bool {
	c.served++
	c.rd.Release()
	return true
}

// handshakeTimeout bounds a TLS handshake, as ALB's 10 s for its own.
const handshakeTimeout = 10 * time.Second

// handshake completes a TLS connection's handshake in the connection's own
// goroutine (never the accept loop's), and hands a connection that chose
// HTTP/2 by ALPN to the HTTP/2 server. It reports whether to serve
// HTTP/1.1 on it.
func (c *clientConn) handshake(tc *tls.Conn) bool {
	c.idle.Store(true) // shutdown may cut a handshake short
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	err := tc.Handshake()
	c.idle.Store(false)
	if err != nil {
		c.h.log.Debug("TLS handshake failed", "client", c.nc.RemoteAddr().String(), "err", err)
		return false
	}
	c.deadline = 0 // the handshake's deadline is not the idle one
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		c.handedOn = true
		c.h.serveH2(tc, nil, c.h.route.Load().IdleTimeout)
		return false
	}
	return true
}

// wakeIfIdle makes a connection waiting for a request give up the wait, so
// that it sees the handler shutting down.
func (c *clientConn) wakeIfIdle() {
	if ls := c.lsShared.Load(); ls != nil {
		ls.loop.Post(func() {
			if c.ls == ls && c.st == stRead && c.rd.Buffered() == 0 {
				c.closeLoop()
			}
		})
		return
	}
	if c.idle.Load() {
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// cut closes the connection at once, whatever it is doing.
func (c *clientConn) cut() {
	if ls := c.lsShared.Load(); ls != nil {
		ls.loop.Post(func() {
			if c.ls == ls {
				c.closeLoop()
			} else if c.nc != nil {
				c.nc.Close() // it left the loop meanwhile
			}
		})
		return
	}
	c.nc.Close()
}

// aLongTimeAgo is a deadline in the past, to unblock reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// touch makes sure the connection's deadline is at least the idle timeout
// less a sixteenth away, touching the socket only when it has come nearer:
// a deadline costs a timer update, too much to pay on every request. The
// idle timeout is so enforced to within a sixteenth.
func (c *clientConn) touch(now int64, idle time.Duration) {
	if c.ls != nil {
		c.deadline, c.tickHint = now+int64(idle), idle/16
		c.ls.wantTick(c.tickHint)
		return
	}
	if c.deadline-now < int64(idle-idle/16) {
		c.deadline = now + int64(idle)
		c.nc.SetDeadline(time.Unix(0, c.deadline))
	}
}

// admit applies desync mitigation (ALB's classification and the mode's
// action) and checks that the request can be forwarded. It answers the
// requests it refuses, and reports whether to go on.
func (c *clientConn) admit(rt *Route) bool {
	req := &c.req
	v := desync.Classify(req.Method, req.Target, req.Proto, req.Fields)
	c.h.Classified[v.Reason%32].Add(1)
	c.closeAfter = false
	switch rt.Desync.Action(v.Tier) {
	case desync.Block:
		c.h.Blocked[v.Reason%32].Add(1)
		c.h.log.Debug("request blocked by desync mitigation", "mode", rt.Desync.String(),
			"classification", v.Tier.String(), "reason", v.Reason.String(), "detail", v.Message)
		c.reject(http.StatusBadRequest, "request refused by desync mitigation ("+v.Reason.String()+")")
		return false
	case desync.AllowAndClose:
		c.closeAfter = true
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
	return true
}

// h2Preface is the part of HTTP/2's connection preface that reads as an
// HTTP/1.1 request head (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\n"

func isH2Preface(req *h1.Request) bool {
	return string(req.Method) == "PRI" && string(req.Target) == "*" && string(req.Proto) == "HTTP/2.0" && len(req.Fields) == 0
}

func (c *clientConn) watch(*upstream.Conn) func() bool { return noStop }

// watchContext does nothing for an HTTP/1.1 client: latch notices it gone
// when writing to it, as HAProxy does without abortonclose.
func (c *clientConn) watchContext(func()) func() bool { return noStop }

// noStop stops a watch that watches nothing: nothing fired.
func noStop() bool { return true }

func (c *clientConn) gone() bool { return false }

func (c *clientConn) interruptRead() { c.nc.SetReadDeadline(aLongTimeAgo) }

func (c *clientConn) bodyAtHand() bool { return c.rd.Buffered() > 0 }

func (c *clientConn) continue100() error {
	c.wr.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return c.wr.Flush()
}

// readFailed answers a request that could not be read: ALB's 400 for a
// malformed one, 408 for one that stalled. A connection that closed or sat
// idle between requests just closes.
func (c *clientConn) readFailed(started bool, err error) {
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

// reject answers with latch's own error and closes the connection.
func (c *clientConn) reject(status int, cause string) {
	c.touch(c.h.now().UnixNano(), c.h.route.Load().IdleTimeout)
	c.writeError(status, cause, false)
}

// writeError writes latch's own answer: a status and a short text body
// naming the cause, as ALB's errors (never a target's address).
func (c *clientConn) writeError(status int, cause string, keep bool) {
	w := c.wr
	w.WriteString("HTTP/1.1 ")
	w.WriteInt(int64(status))
	w.WriteByte(' ')
	w.WriteString(statusText(status))
	w.WriteString("\r\nServer: latch\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
	body := 4 + len(statusText(status)) + 2 + len(cause) + 1 // "503 " + text + ": " + cause + "\n"
	w.WriteInt(int64(body))
	if !keep {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	if string(c.req.Method) == "HEAD" {
		// A response to HEAD has no content (RFC 9110 §9.3.2).
		w.Flush()
		return
	}
	w.WriteInt(int64(status))
	w.WriteByte(' ')
	w.WriteString(statusText(status))
	w.WriteString(": ")
	w.WriteString(cause)
	w.WriteByte('\n')
	w.Flush()
}

// writeReply writes a redirect or a fixed response.
func (c *clientConn) writeReply(status int, contentType string, location []byte, body string, keep bool) {
	w := c.wr
	w.WriteString("HTTP/1.1 ")
	w.WriteInt(int64(status))
	w.WriteByte(' ')
	w.WriteString(statusText(status))
	w.WriteString("\r\nServer: latch\r\nContent-Type: ")
	w.WriteString(contentType)
	if location != nil {
		w.WriteString("\r\nLocation: ")
		w.Write(location)
	}
	w.WriteString("\r\nContent-Length: ")
	w.WriteInt(int64(len(body)))
	if !keep {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	if string(c.req.Method) != "HEAD" {
		w.WriteString(body)
	}
	w.Flush()
}

// statusText is net/http's, plus ALB's own codes.
func statusText(code int) string {
	switch code {
	case 460:
		return "Client Closed Request"
	case 463:
		return "Too Many Forwarded Addresses"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Status " + strconv.Itoa(code)
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// isEOF reports whether err means the peer closed the connection.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
