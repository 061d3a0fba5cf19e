package proxy

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// goConn is an HTTP/1.1 client connection served by a goroutine of its
// own, which forwards each request on a pooled target connection in the
// same goroutine: HTTPS connections, connections an event loop handed on,
// and every connection where there are no loops.
type goConn struct {
	*h1conn
	nc       net.Conn
	idle     atomic.Bool // waiting for a request: Shutdown may close it
	deadline int64       // the deadline last set on nc, unix nanoseconds
	handedOn bool        // nc served HTTP/2 (serveH2), which closed it
	// movedToLoop says the connection moved to an event loop (HTTP/2
	// over TLS), which has it among the handler's connections now.
	movedToLoop bool
	guard       cutGuard // what the exchange waits on, for cut
}

var _ writer = (*goConn)(nil)

func newGoConn(h *Handler, nc net.Conn) *goConn {
	c := &goConn{h1conn: &h1conn{rd: h1.NewReader(nc, true), wr: h1.NewWriter(nc)}, nc: nc}
	c.init(h, nc.RemoteAddr())
	c.path = c
	return c
}

func (c *goConn) setExchange(x *exchange) {
	if x != nil {
		x.guard = &c.guard
	}
}

func (c *goConn) serve() {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		c.serveRequests()
		return
	}
	if !c.handshake(tc) {
		c.cleanup()
		return
	}
	// The first request is served here, in the goroutine that did the
	// handshake: its client Finished and the request most often came in
	// one read. Only a connection that stays, idle between requests,
	// moves to a loop; one that closes after its request (a handshake per
	// request) never pays for the move, nor for the wake of a loop.
	if !c.next() {
		c.cleanup()
		return
	}
	if c.toLoop(tc) {
		return
	}
	// Not moved (no loops, or bytes of the next request already read):
	// the handshake grew this goroutine's stack to 8 KiB or more, which
	// the connection would keep while idle, so a new goroutine, with a
	// stack as small as a goroutine's starts, serves the rest.
	go c.serveRequests()
}

func (c *goConn) serveRequests() {
	defer c.cleanup()
	tc, _ := c.nc.(*tls.Conn)
	for c.next() {
		if tc != nil && c.toLoop(tc) {
			return
		}
	}
}

// toLoop moves a TLS connection that carries HTTP/1.1 to an event loop
// between two requests, when nothing of the next one has been read yet
// (what TLS holds of it moves along, in tc).
func (c *goConn) toLoop(tc *tls.Conn) bool {
	return c.rd.Buffered() == 0 && c.moveToLoop(tc, false)
}

// cleanup releases what a connection holds once it is done.
func (c *goConn) cleanup() {
	if c.movedToLoop {
		return
	}
	c.drop()
	c.rd.Close()
	c.wr.Reset(nil)
	if !c.handedOn {
		c.nc.Close()
	}
	c.h.forget(c, c.handedOn)
}

// next reads the next request and serves it; it reports whether the
// connection may carry another.
func (c *goConn) next() bool {
	c.touch(time.Now().UnixNano(), c.h.route.Load().IdleTimeout)
	c.idle.Store(true)
	if c.h.closing.Load() {
		return false
	}
	started, err := c.readRequest()
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
func (c *goConn) handle(rt *Route) bool {
	if rt.H2C && isH2Preface(&c.x.req) {
		// HTTP/2 with prior knowledge: the HTTP/2 server reads the
		// preface again, and everything after it.
		c.handedOn = true
		pre := c.preface()
		c.drop() // HTTP/2 serves the connection from here
		c.serveH2(c.nc, pre)
		return false
	}
	if c.notHTTP1(rt) {
		return false
	}
	if !c.admit(rt) {
		return false
	}
	return c.x.serve(rt, c) && c.servedOne()
}

// write writes x.out to the client; a switch of protocols (101) then
// tunnels both ways until either side closes.
func (c *goConn) write(x *exchange) (bool, error) {
	if x.out.status == 101 {
		c.tunnel(x)
		return false, nil
	}
	return c.h1conn.write(x)
}

// handshakeTimeout bounds a TLS handshake, as ALB's 10 s for its own, or
// the listener's idle timeout when that is shorter: a client that sends
// nothing, or half a ClientHello, is idle, and must not hold a connection
// longer than one that stalls in plain HTTP.
const handshakeTimeout = 10 * time.Second

// handshake completes a TLS connection's handshake in the connection's own
// goroutine (never the accept loop's), and hands a connection that chose
// HTTP/2 by ALPN to the HTTP/2 server. It reports whether to serve
// HTTP/1.1 on it.
func (c *goConn) handshake(tc *tls.Conn) bool {
	c.idle.Store(true) // shutdown may cut a handshake short
	d := handshakeTimeout
	if idle := c.h.route.Load().IdleTimeout; idle > 0 {
		d = min(d, idle)
	}
	tc.SetDeadline(time.Now().Add(d))
	err := tc.Handshake()
	c.idle.Store(false)
	kind := ConnHandshake
	if err != nil {
		kind = ConnHandshakeFailed
	}
	c.h.obs.Conn(ConnEvent{Kind: kind, Listener: c.h.name})
	if err != nil {
		c.h.log.Debug("TLS handshake failed", "client", c.nc.RemoteAddr().String(), "err", err)
		return false
	}
	c.deadline = 0 // the handshake's deadline is not the idle one
	st := tc.ConnectionState()
	c.peer.tlsVersion, c.peer.tlsCipher, c.peer.sni = st.Version, st.CipherSuite, st.ServerName
	if st.NegotiatedProtocol == "h2" && c.moveToLoop(tc, true) {
		return false
	}
	if st.NegotiatedProtocol == "h2" {
		c.handedOn = true
		c.serveH2(tc, nil)
		return false
	}
	return true
}

// touch makes sure the connection's deadline is at least the idle timeout
// less a sixteenth away, touching the socket only when it has come nearer:
// a deadline costs a timer update, too much to pay on every request. The
// idle timeout is so enforced to within a sixteenth.
func (c *goConn) touch(now int64, idle time.Duration) {
	if c.deadline-now < int64(idle-idle/16) {
		c.deadline = now + int64(idle)
		c.nc.SetDeadline(time.Unix(0, c.deadline))
	}
}

func (c *goConn) interruptRead() { c.nc.SetReadDeadline(aLongTimeAgo) }

func (c *goConn) wakeIfIdle() {
	if c.idle.Load() {
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// cut closes the connection, and cuts its exchange's wait on a target.
func (c *goConn) cut() {
	c.nc.Close()
	c.guard.interrupt()
}
