// Package proxy is latch's data path: it forwards a listener's requests to a
// target group, applying stickiness, retries and ALB's error semantics.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// MovedHeader is added to a request whose sticky session had to leave its
// target (unhealthy, draining, deregistered or refusing connections). Its
// value is the old target's id, so the application can restart a flow whose
// state lived on that target instead of failing obscurely. A client cannot
// send it: latch removes it from every incoming request.
const MovedHeader = "X-Latch-Session-Moved"

// Route is what a listener forwards to. Routes are immutable; a reload
// swaps in a new one.
type Route struct {
	Group          *target.Group
	Sticky         *sticky.Policy // nil: no stickiness
	ConnectTimeout time.Duration
	// IdleTimeout bounds the wait for each read from the target, as ALB's
	// idle timeout does (504 when the first response byte is late).
	IdleTimeout time.Duration
}

// Handler forwards one listener's requests.
type Handler struct {
	route atomic.Pointer[Route]
	proto string // X-Forwarded-Proto: "http" or "https"
	port  string // X-Forwarded-Port
	log   *slog.Logger
	now   func() time.Time
}

// NewHandler returns a handler for a listener of the given protocol
// ("http" or "https") on port.
func NewHandler(proto, port string, log *slog.Logger) *Handler {
	return &Handler{proto: proto, port: port, log: log, now: time.Now}
}

// SetRoute swaps the handler's route. Requests in flight finish on the old one.
func (h *Handler) SetRoute(r *Route) { h.route.Store(r) }

// SetPort sets the X-Forwarded-Port value, once the listener is bound.
func (h *Handler) SetPort(port string) { h.port = port }

// exchange is one request's state on its way through the handler.
type exchange struct {
	w     http.ResponseWriter
	r     *http.Request
	rt    *Route
	now   time.Time
	moved string // the session's old target, for MovedHeader
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := h.route.Load()
	x := &exchange{w: w, r: r, rt: rt, now: h.now()}
	view := rt.Group.View()
	if len(view.Targets) == 0 || view.Picker == nil {
		h.fail(x, nil, http.StatusServiceUnavailable, fmt.Sprintf("target group %q has no registered targets", rt.Group.Name), nil)
		return
	}
	r.Header.Del(MovedHeader)

	var t *target.Target
	var sess sticky.Session
	miss := sticky.NoCookie
	if rt.Sticky != nil {
		sess, miss = rt.Sticky.Read(r.Header, x.now)
		if miss == sticky.Hit {
			cand, routable := view.Lookup(sess.Target)
			switch {
			case cand == nil || cand.Generation != sess.Generation:
				miss, x.moved = sticky.UnknownTarget, sess.Target
			case !routable:
				miss, x.moved = sticky.Unavailable, sess.Target
			default:
				t = cand
			}
		}
	}
	if t == nil {
		t = view.Picker.Pick(nil)
	}

	resp, c, err := h.send(x, t)
	var dialErr *upstream.DialError
	if errors.As(err, &dialErr) || errors.Is(err, upstream.ErrClosed) {
		// The request was never sent: count the failure against the target
		// and try once more elsewhere, re-sticking the session there.
		if dialErr != nil {
			rt.Group.Observe(t, target.Result{Reason: target.ReasonFailedHealthChecks,
				Description: "connect failed on a request: " + dialErr.Err.Error()})
		}
		if alt := view.Picker.Pick(t); alt != nil && alt != t {
			if miss == sticky.Hit {
				miss, x.moved = sticky.Unavailable, t.ID
			}
			t = alt
			resp, c, err = h.send(x, t)
		}
	}
	if err != nil {
		cause := causeFor(err, rt)
		if t.Health().State == target.Unused {
			cause = "the target was deregistered and its deregistration delay elapsed"
		}
		h.fail(x, t, statusFor(err), cause, err)
		return
	}
	issued := int64(0)
	if miss == sticky.Hit {
		issued = sess.Issued
	}
	h.respond(x, t, resp, c, issued)
}

// send writes the request to t and reads the response head. A pooled
// connection that the target closed while idle is replaced once, when the
// request can be sent again (it has no body).
func (h *Handler) send(x *exchange, t *target.Target) (*http.Response, *upstream.Conn, error) {
	t.Inflight.Add(1)
	resp, c, err := h.trySend(x, t, false)
	if err != nil && c != nil && c.Reused && errors.Is(err, errStale) && replayable(x.r) {
		c.Close()
		resp, c, err = h.trySend(x, t, true)
	}
	if err != nil {
		t.Inflight.Add(-1)
		if c != nil {
			c.Close()
		}
		return nil, nil, err
	}
	return resp, c, nil
}

// errStale marks a reused connection that failed before any response byte.
var errStale = errors.New("connection closed by the target while idle")

func replayable(r *http.Request) bool { return r.Body == nil || r.Body == http.NoBody }

func (h *Handler) trySend(x *exchange, t *target.Target, fresh bool) (*http.Response, *upstream.Conn, error) {
	var c *upstream.Conn
	var err error
	if fresh {
		c, err = t.Conns.Dial(x.r.Context(), x.rt.ConnectTimeout)
	} else {
		c, err = t.Conns.Get(x.r.Context(), x.rt.ConnectTimeout)
	}
	if err != nil {
		return nil, nil, err
	}
	// A client that goes away must not leave this goroutine blocked on the target.
	stop := context.AfterFunc(x.r.Context(), func() { c.SetDeadline(aLongTimeAgo) })
	defer stop()
	idle := x.rt.IdleTimeout
	c.SetWriteDeadline(x.now.Add(idle))
	if err := h.writeRequest(c, x); err != nil {
		return nil, c, err
	}
	c.SetReadDeadline(time.Now().Add(idle))
	if _, err := c.R.Peek(1); err != nil {
		if c.Reused && !isTimeout(err) && x.r.Context().Err() == nil {
			return nil, c, fmt.Errorf("%w: %v", errStale, err)
		}
		return nil, c, &targetError{err: err, what: "read"}
	}
	for {
		resp, err := http.ReadResponse(c.R, x.r)
		if err != nil {
			return nil, c, &targetError{err: err, what: "parse"}
		}
		// Interim responses (100 Continue, 103 Early Hints) are dropped:
		// latch does not forward Expect, and answers it to the client itself.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return nil, c, &targetError{err: errors.New("unrequested protocol switch"), what: "parse"}
			}
			continue
		}
		return resp, c, nil
	}
}

// aLongTimeAgo is a deadline in the past, to unblock reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// targetError is a failure talking to the target after connecting.
type targetError struct {
	err  error
	what string // "write", "read", "parse"
}

func (e *targetError) Error() string { return e.what + ": " + e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// clientError is a failure reading the client's request body.
type clientError struct{ err error }

func (e *clientError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// statusFor maps a forwarding failure to ALB's status codes.
func statusFor(err error) int {
	var de *upstream.DialError
	var ce *clientError
	switch {
	case errors.As(err, &ce):
		return http.StatusBadRequest
	case errors.As(err, &de):
		if de.Timeout() {
			return http.StatusGatewayTimeout
		}
		return http.StatusBadGateway
	case isTimeout(err):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// causeFor is the short cause in latch's error bodies. It names no target
// address: clients must not learn them.
func causeFor(err error, rt *Route) string {
	var de *upstream.DialError
	var te *targetError
	var ce *clientError
	switch {
	case errors.As(err, &ce):
		return "the request body could not be read"
	case errors.Is(err, upstream.ErrClosed):
		return "the target was deregistered"
	case errors.As(err, &de):
		if de.Timeout() {
			return fmt.Sprintf("could not connect to the target within %v", rt.ConnectTimeout)
		}
		return "the target refused the connection"
	case isTimeout(err):
		return fmt.Sprintf("the target did not respond within %v", rt.IdleTimeout)
	case errors.As(err, &te) && te.what == "parse":
		return "the target sent an invalid response"
	}
	return "the target closed the connection"
}

// respond streams the target's response to the client.
func (h *Handler) respond(x *exchange, t *target.Target, resp *http.Response, c *upstream.Conn, issued int64) {
	defer t.Inflight.Add(-1)
	hdr := x.w.Header()
	conn := connectionTokens(resp.Header)
	for k, vv := range resp.Header {
		if hopByHop(k) || conn[k] {
			continue
		}
		hdr[k] = vv
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		hdr["Trailer"] = names
	}
	if p := x.rt.Sticky; p != nil {
		p.Issue(hdr, t.ID, t.Generation, issued, h.proto == "https", x.now)
	}
	x.w.WriteHeader(resp.StatusCode)

	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	flusher, _ := x.w.(http.Flusher)
	for {
		c.SetReadDeadline(time.Now().Add(x.rt.IdleTimeout))
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := x.w.Write(buf[:n]); werr != nil {
				// The client is gone; the connection is mid-response.
				c.Close()
				return
			}
			// Stream: send what we have whenever the target pauses.
			if c.R.Buffered() == 0 && flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			c.Close()
			h.log.Warn("target failed mid-response", "group", x.rt.Group.Name, "target", t.ID, "err", rerr)
			// Headers are out: all that is left is to cut the client's
			// response short, as the target did.
			panic(http.ErrAbortHandler)
		}
	}
	for k, vv := range resp.Trailer {
		hdr[k] = vv
	}
	if resp.Close {
		c.Close()
	} else {
		t.Conns.Put(c)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// fail answers with latch's own error, as ALB would: a status and a short
// body naming the cause.
func (h *Handler) fail(x *exchange, t *target.Target, code int, cause string, err error) {
	if err != nil {
		args := []any{"group", x.rt.Group.Name, "status", code, "err", err}
		if t != nil {
			args = append(args, "target", t.ID)
		}
		h.log.Warn("request failed", args...)
	}
	if x.r.Context().Err() != nil {
		return // the client left; nobody to answer
	}
	body := strconv.Itoa(code) + " " + http.StatusText(code) + ": " + cause + "\n"
	hdr := x.w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Server", "latch")
	x.w.WriteHeader(code)
	io.WriteString(x.w, body)
}
