// Package proxy is latch's data path: it serves a listener's client
// connections and forwards their requests to target groups, applying
// rules, stickiness, retries and ALB's error semantics.
//
// Where a request goes through it, by file:
//
//	conn.go, conn_goroutine.go, conn_loop.go  an HTTP/1.1 client connection: read, admit (desync)
//	client_h2.go                              an HTTP/2 client connection's streams
//	exchange.go                               one request's life: begin, forward, fail, end
//	action.go, input.go, answer.go            rules' actions, what rules look at, latch's own answers
//	pick.go                                   the target: sessions, hash keys, bounded load, first burst
//	request.go                                the request head a target gets
//	target_h1.go, target_h2.go                a target's side, over HTTP/1.1 or HTTP/2
//	response.go                               a response in one form, whoever answered
//	write_h1.go (and client_h2.go)            the response written to the client
//	tunnel.go                                 a switched protocol (WebSocket), relayed both ways
//	observer.go                               what metrics and access logs see
//
// HTTP/1.1 is served by latch's own code rather than net/http's server,
// reading heads in place and allocating nothing per plain HTTP/1.1 request
// (BenchmarkProxy), in one of two ways that run the same exchange: on an
// event loop (conn_loop.go, Linux, plain HTTP), which waits on epoll for its
// connections and never blocks; or by a goroutine per client connection
// (conn_goroutine.go: HTTPS, connections a loop handed on, systems without
// epoll). DESIGN-perf.md has the measurements behind both.
package proxy

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/h2"
	"github.com/latch-lb/latch/internal/route"
)

// MovedHeader is added to a request whose sticky session had to leave its
// target (unhealthy, draining, deregistered or refusing connections). Its
// value is the old target's id, so the application can restart a flow whose
// state lived on that target instead of failing obscurely. A client cannot
// send it: latch removes it from every incoming request.
const MovedHeader = "X-Latch-Session-Moved"

// Route is a listener's configuration at run time: its rules and what
// they do, and its settings. Routes are immutable; a reload swaps in a
// new one, which the next request on every connection sees.
type Route struct {
	Rules *route.Table
	// Actions are the rules' actions, by route.Rule.Index: the default
	// action last.
	Actions []*Action
	// IdleTimeout is ALB's idle timeout: the longest a client or target
	// connection may send and receive nothing. It closes idle keep-alive
	// connections, answers 408 to a client that stalls mid-request, and
	// 504 when a target sends nothing for that long.
	IdleTimeout time.Duration
	// Desync is the listener's desync mitigation mode.
	Desync desync.Mode
	// H2C serves HTTP/2 to clients that start a cleartext connection with
	// its preface (prior knowledge, RFC 9113 §3.3).
	H2C bool
	// XFF is ALB's routing.http.xff_header_processing.mode, and
	// XFFClientPort its routing.http.xff_client_port.enabled.
	XFF           config.XFFMode
	XFFClientPort bool
	// TraceHeader is the request-tracing header latch adds or extends, as
	// ALB's X-Amzn-Trace-Id; "" for none.
	TraceHeader string
	// DropInvalidHeaders leaves out header fields whose names are not
	// letters, digits and hyphens (ALB's
	// routing.http.drop_invalid_header_fields.enabled).
	DropInvalidHeaders bool

	traceName []byte // TraceHeader, as written into requests
}

// Options configure a Handler.
type Options struct {
	// Listener is the listener's name, for logs and the Observer.
	Listener string
	// Proto is the listener's protocol as X-Forwarded-Proto carries it:
	// "http" or "https".
	Proto string
	// Port is the listener's port, for X-Forwarded-Port.
	Port string
	Log  *slog.Logger
	// Loops, when set, serve the listener's plain-HTTP connections;
	// without, each connection has a goroutine of its own.
	Loops *Loops
	// Observer sees every request; nil: none.
	Observer Observer
	// H2 counts what the HTTP/2 engine answers on the handler's
	// connections (attacks refused among them); the listener keeps it
	// across the handlers a change replaces. Nil: the handler's own.
	H2 *h2.Counters
}

// Handler serves one listener's connections.
type Handler struct {
	route atomic.Pointer[Route]
	name  string
	proto string // X-Forwarded-Proto: "http" or "https"
	port  string // X-Forwarded-Port
	// The same, as written into requests.
	protoBytes, portBytes []byte
	log                   *slog.Logger
	loops                 *Loops
	obs                   Observer
	observed              bool       // obs is not a no-op: a Record gets what only an observer needs
	failures              logLimiter // for failed requests' warnings

	mu       sync.Mutex // guards conns and h2conns; taken when a connection opens or closes
	conns    map[conn]struct{}
	h2conns  map[*h2conn]struct{} // the HTTP/2 connections, for their GOAWAY
	h2ctr    *h2.Counters         // what the HTTP/2 engine answered, on every connection (Options.H2)
	closing  atomic.Bool
	stopping chan struct{} // closed by Shutdown
	done     sync.WaitGroup
}

// conn is a client connection as Shutdown sees it, on whichever data path.
type conn interface {
	// wakeIfIdle makes a connection waiting for a request give up the
	// wait, so that it sees the handler shutting down.
	wakeIfIdle()
	// cut closes the connection at once, whatever it is doing.
	cut()
}

// NewHandler returns the handler of a listener.
func NewHandler(o Options) *Handler {
	h := &Handler{name: o.Listener, proto: o.Proto, port: o.Port, protoBytes: []byte(o.Proto), portBytes: []byte(o.Port),
		log: o.Log, loops: o.Loops, obs: o.Observer, conns: map[conn]struct{}{}, h2conns: map[*h2conn]struct{}{}, stopping: make(chan struct{})}
	if h.obs == nil {
		h.obs = noObserver{}
	} else {
		h.observed = true
	}
	h.failures.every = time.Second
	if h.h2ctr = o.H2; h.h2ctr == nil {
		h.h2ctr = new(h2.Counters)
	}
	return h
}

// SetRoute swaps the handler's route. Requests in flight finish on the old one.
func (h *Handler) SetRoute(r *Route) {
	r.traceName = []byte(r.TraceHeader)
	h.route.Store(r)
}

// ServeConn serves one client connection until it closes. It returns at
// once, after giving the connection to an event loop or starting its
// goroutine, or refuses the connection when the handler is shutting down.
func (h *Handler) ServeConn(nc net.Conn) {
	if h.loops != nil && h.serveOnLoop(nc) {
		return
	}
	c := newGoConn(h, nc)
	if !h.track(c) {
		nc.Close()
		return
	}
	h.obs.Conn(ConnEvent{Kind: ConnOpened, Listener: h.name})
	go c.serve()
}

// track adds a new connection to the handler's, unless it is shutting
// down.
func (h *Handler) track(c conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing.Load() {
		return false
	}
	h.conns[c] = struct{}{}
	h.done.Add(1)
	return true
}

// replace puts next in old's place among the handler's connections (a
// connection that moved from a loop to a goroutine).
func (h *Handler) replace(old, next conn) {
	h.mu.Lock()
	delete(h.conns, old)
	h.conns[next] = struct{}{}
	h.mu.Unlock()
}

// forget removes a connection that has closed (http2: it served HTTP/2,
// which told the observer when it closed).
func (h *Handler) forget(c conn, http2 bool) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	if !http2 {
		h.obs.Conn(ConnEvent{Kind: ConnClosed, Listener: h.name})
	}
	h.done.Done()
}

// Shutdown closes idle connections at once, lets each busy one finish its
// exchange (answering with Connection: close), and waits for all of them
// until ctx is done; then it cuts the rest and returns ctx's error.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.closing.Swap(true) {
		close(h.stopping)
	}
	for c := range h.conns {
		c.wakeIfIdle()
	}
	// HTTP/2 connections get a GOAWAY and finish their streams; their
	// goroutines are among h.conns, waited for and cut with the rest.
	for c := range h.h2conns {
		c.shutdown()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.done.Wait()
		close(done)
	}()
	// A connection can turn idle between the sweep above and its own
	// check of closing; sweeping again catches it.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			h.mu.Lock()
			for c := range h.conns {
				c.wakeIfIdle()
			}
			h.mu.Unlock()
		case <-ctx.Done():
			h.mu.Lock()
			for c := range h.conns {
				c.cut()
			}
			h.mu.Unlock()
			<-done
			return ctx.Err()
		}
	}
}

// logLimiter lets through at most one line per every, counting the lines
// it holds back, so that an outage does not flood the log with a warning
// per failed request.
type logLimiter struct {
	every      time.Duration
	next       atomic.Int64 // unix nanoseconds before which lines are held back
	suppressed atomic.Int64
}

// allow reports whether a line may be logged at now, and how many were
// held back since the last one allowed.
func (l *logLimiter) allow(now int64) (ok bool, suppressed int64) {
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(l.every)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
