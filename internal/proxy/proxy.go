// Package proxy is latch's data path: it serves a listener's client
// connections and forwards their requests to a target group, applying
// stickiness, retries and ALB's error semantics.
//
// HTTP/1.1 is served by latch's own code rather than net/http's server,
// reading heads in place and allocating nothing per plain HTTP/1.1
// request (BenchmarkProxy; HTTPS and HTTP/2 cost more), in one of two
// ways that run the same steps: on an event loop (loop.go, Linux, plain
// HTTP), which waits on epoll for its connections and never blocks; or by
// a goroutine per client connection, which forwards on a pooled target
// connection in the same goroutine (HTTPS, connections a loop handed on,
// other systems). DESIGN-perf.md has the measurements behind both.
package proxy

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/desync"
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
	XFF           XFFMode
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

// XFFMode is how X-Forwarded-For reaches the target.
type XFFMode uint8

const (
	XFFAppend   XFFMode = iota // the client's addresses, then the client
	XFFPreserve                // the client's addresses, as sent
	XFFRemove                  // none
)

// Handler serves one listener's connections.
type Handler struct {
	route atomic.Pointer[Route]
	proto string // X-Forwarded-Proto: "http" or "https"
	port  string // X-Forwarded-Port
	// The same, as written into requests.
	protoBytes, portBytes []byte
	log                   *slog.Logger
	now                   func() time.Time

	// Classified counts requests by desync classification reason, and
	// Blocked those of them that desync mitigation refused.
	Classified, Blocked [32]atomic.Uint64
	// OnLoop counts the client connections served on an event loop, and
	// HandedOff those of them a loop handed to a goroutine (loop.go).
	OnLoop, HandedOff atomic.Uint64

	mu       sync.Mutex // guards conns and h2s; taken when a connection opens or closes
	conns    map[*clientConn]struct{}
	h2s      []*h2server
	closing  atomic.Bool
	stopping chan struct{} // closed by Shutdown
	done     sync.WaitGroup
}

// NewHandler returns a handler for a listener of the given protocol
// ("http" or "https") on port.
func NewHandler(proto, port string, log *slog.Logger) *Handler {
	return &Handler{proto: proto, port: port, protoBytes: []byte(proto), portBytes: []byte(port),
		log: log, now: time.Now, conns: map[*clientConn]struct{}{}, stopping: make(chan struct{})}
}

// SetRoute swaps the handler's route. Requests in flight finish on the old one.
func (h *Handler) SetRoute(r *Route) {
	r.traceName = []byte(r.TraceHeader)
	h.route.Store(r)
}

// SetPort sets the X-Forwarded-Port value, before the listener serves.
func (h *Handler) SetPort(port string) { h.port, h.portBytes = port, []byte(port) }

// ServeConn serves one client connection until it closes. It returns at
// once, after giving the connection to an event loop or starting its
// goroutine, or refuses the connection when the handler is shutting down.
func (h *Handler) ServeConn(nc net.Conn) {
	if useLoops && h.serveOnLoop(nc) {
		return
	}
	c := newClientConn(h, nc)
	h.mu.Lock()
	if h.closing.Load() {
		h.mu.Unlock()
		nc.Close()
		return
	}
	h.conns[c] = struct{}{}
	h.done.Add(1)
	h.mu.Unlock()
	go c.serve()
}

func (h *Handler) forget(c *clientConn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.done.Done()
}

// Shutdown closes idle connections at once, lets each busy one finish its
// exchange (answering with Connection: close), and waits for all of them
// until ctx is done; then it cuts the rest and returns ctx's error.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing.Store(true)
	close(h.stopping)
	for c := range h.conns {
		c.wakeIfIdle()
	}
	h2s := h.h2s
	h.mu.Unlock()
	// HTTP/2 connections get a GOAWAY and finish their streams.
	var h2wg sync.WaitGroup
	for _, s := range h2s {
		h2wg.Add(1)
		go func() {
			defer h2wg.Done()
			if s.srv.Shutdown(ctx) != nil {
				s.srv.Close()
			}
		}()
	}
	defer h2wg.Wait()
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
