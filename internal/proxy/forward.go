package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

var (
	errConnReset  = syscall.ECONNRESET
	errBrokenPipe = syscall.EPIPE
)

// maxForwardedFor is ALB's limit on X-Forwarded-For addresses (463 beyond).
const maxForwardedFor = 30

// serveRequest answers the request just read and reports whether the
// connection may carry another.
func (c *clientConn) serveRequest(rt *Route) bool {
	req := &c.req
	c.body.Reset(c.rd, req.Framing, req.ContentLength, false)
	switch {
	case req.ExpectOther:
		return c.refuse(http.StatusExpectationFailed, "unsupported Expect")
	case string(req.Method) == "TRACE":
		return c.refuse(http.StatusMethodNotAllowed, "TRACE is not allowed")
	case string(req.Method) == "CONNECT":
		return c.refuse(http.StatusMethodNotAllowed, "CONNECT is not supported")
	case req.XFFCount > maxForwardedFor:
		return c.refuse(463, "X-Forwarded-For holds more than 30 addresses")
	}
	now := c.h.now()
	view := rt.Group.View()
	if len(view.Targets) == 0 || view.Picker == nil {
		return c.refuse(http.StatusServiceUnavailable, fmt.Sprintf("target group %q has no registered targets", rt.Group.Name))
	}

	// Stickiness: the target the session names, if it may still serve it.
	var t *target.Target
	miss := sticky.NoCookie
	c.moved = ""
	if p := rt.Sticky; p != nil {
		c.sess, miss = p.ReadFields(req.Fields, now)
		if miss == sticky.Hit {
			cand, ok := view.Lookup(c.sess.Target)
			switch {
			case cand == nil || cand.Generation != c.sess.Generation:
				miss, c.moved = sticky.UnknownTarget, c.sess.Target
			case !ok:
				miss, c.moved = sticky.Unavailable, c.sess.Target
			default:
				t = cand
			}
		}
	}
	if t == nil {
		t = view.Picker.Pick(nil)
	}

	issued := int64(0)
	if miss == sticky.Hit {
		issued = c.sess.Issued
	}
	keep, err := c.forward(rt, t, issued)
	if isDialFailure(err) {
		// The request never reached the target: count the failure against
		// it, and try once more elsewhere, re-sticking the session there.
		var de *upstream.DialError
		if errors.As(err, &de) {
			rt.Group.Observe(t, target.Result{Reason: target.ReasonFailedHealthChecks,
				Description: "connect failed on a request: " + de.Err.Error()})
		}
		if alt := view.Picker.Pick(t); alt != nil && alt != t {
			if miss == sticky.Hit {
				c.moved = t.ID
			}
			t = alt
			keep, err = c.forward(rt, t, 0)
		}
	}
	if err != nil {
		if t.Health().State == target.Unused {
			err = errDeregistered
		}
		return c.failTarget(rt, t, err)
	}
	return keep
}

// forward sends the request to t and relays the response.
func (c *clientConn) forward(rt *Route, t *target.Target, issued int64) (bool, error) {
	uc, err := t.Conns.Get(context.Background(), rt.ConnectTimeout, c.h.now().UnixNano())
	if err != nil {
		return false, err
	}
	t.Inflight.Add(1)
	defer t.Inflight.Add(-1)
	return c.exchange(rt, t, uc, issued)
}

// isDialFailure reports whether err means no byte reached the target.
func isDialFailure(err error) bool {
	if err == nil {
		return false
	}
	var de *upstream.DialError
	return errors.As(err, &de) || errors.Is(err, upstream.ErrClosed)
}

var errDeregistered = errors.New("the target was deregistered and its deregistration delay elapsed")

// refuse answers a request latch does not forward. The connection stays
// open only if the request's body, if any, has been read.
func (c *clientConn) refuse(status int, cause string) bool {
	keep := c.req.KeepAlive && c.body.Done() && !c.h.closing.Load()
	c.touch(c.h.now().UnixNano(), c.h.route.Load().IdleTimeout)
	c.writeError(status, cause, keep)
	return keep && c.wr.Err() == nil
}

// failTarget answers a request that the target could not answer, unless
// the response had already begun (then the connection is cut: see
// errCut).
func (c *clientConn) failTarget(rt *Route, t *target.Target, err error) bool {
	if errors.Is(err, errCut) || errors.Is(err, errClientGone) {
		return false
	}
	status, cause := statusFor(err, rt)
	c.h.log.Warn("request failed", "group", rt.Group.Name, "target", t.ID, "status", status, "err", err)
	if status == http.StatusBadRequest {
		c.writeError(status, cause, false)
		return false
	}
	return c.refuse(status, cause)
}

// errCut reports a response that failed after its head was sent: nothing
// is left to do but cut the client's connection, as the target did.
var errCut = errors.New("the response was cut short")

// errClientGone reports a client that went away mid-exchange.
var errClientGone = errors.New("the client closed the connection")

// statusFor maps a forwarding failure to ALB's status and a short cause,
// naming no target address: clients must not learn them.
func statusFor(err error, rt *Route) (int, string) {
	var de *upstream.DialError
	var he *h1.Error
	switch {
	case errors.As(err, &he):
		return he.Status, he.Cause
	case errors.Is(err, errDeregistered):
		return http.StatusBadGateway, errDeregistered.Error()
	case errors.Is(err, upstream.ErrClosed):
		return http.StatusBadGateway, "the target was deregistered"
	case errors.As(err, &de):
		if de.Timeout() {
			return http.StatusGatewayTimeout, fmt.Sprintf("could not connect to the target within %v", rt.ConnectTimeout)
		}
		return http.StatusBadGateway, "the target refused the connection"
	case isTimeout(err):
		return http.StatusGatewayTimeout, fmt.Sprintf("the target did not respond within %v", rt.IdleTimeout)
	case errors.Is(err, errUnrequestedSwitch):
		return http.StatusBadGateway, "the target sent an invalid response"
	}
	return http.StatusBadGateway, "the target closed the connection"
}

var errUnrequestedSwitch = errors.New("the target switched protocols unasked")

// exchange sends the request on uc and relays the response. It returns an
// error only while the client can still be told (nothing of the response
// written), or errCut/errClientGone.
func (c *clientConn) exchange(rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (bool, error) {
	req := &c.req
	idle := rt.IdleTimeout
	now := c.h.now().UnixNano()
	uc.SetIdleDeadline(now, idle)
	c.writeHead(uc.W, t)
	if req.Framing != h1.NoBody {
		if req.Expect100 && c.rd.Buffered() == 0 {
			// latch answers the expectation itself, once the target is
			// connected, and does not forward it: a target that ignores
			// Expect would otherwise leave the client waiting.
			c.touch(now, idle)
			c.wr.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := c.wr.Flush(); err != nil {
				uc.Close()
				return false, errClientGone
			}
		}
		if err := c.sendBody(uc, idle); err != nil {
			uc.Close()
			return false, err
		}
	}
	// A reused connection that fails here is dealt with below, where the
	// missing response tells a stale connection.
	if err := uc.W.Flush(); err != nil && !uc.Reused {
		uc.Close()
		return false, err
	}

	head := string(req.Method) == "HEAD"
	for {
		started, err := uc.R.ReadResponse(&c.resp, head)
		if err != nil && !started && uc.Reused && isEOF(err) && c.replayable() {
			// The target closed this pooled connection while it was idle;
			// the request never reached it. Send it again on a new one.
			uc.Close()
			if uc, err = t.Conns.Dial(context.Background(), rt.ConnectTimeout); err != nil {
				return false, err // a dial error: the caller may try another target
			}
			uc.SetIdleDeadline(c.h.now().UnixNano(), idle)
			c.writeHead(uc.W, t)
			if err := uc.W.Flush(); err != nil {
				uc.Close()
				return false, err
			}
			continue
		}
		if err != nil {
			uc.Close()
			return false, err
		}
		if c.resp.Status >= 100 && c.resp.Status < 200 {
			if c.resp.Status == http.StatusSwitchingProtocols {
				if !req.Upgrade {
					uc.Close()
					return false, errUnrequestedSwitch
				}
				c.tunnel(rt, t, uc, issued)
				return false, nil
			}
			// Other interim responses (100 Continue, 103 Early Hints) are
			// not forwarded: latch answered Expect itself.
			continue
		}
		break
	}
	return c.respond(rt, t, uc, issued)
}

// replayable reports whether the request may be sent again after a pooled
// connection turned out dead: it has no body (already consumed) and an
// idempotent method, or an Idempotency-Key, as net/http's Transport rules.
func (c *clientConn) replayable() bool {
	if c.req.Framing != h1.NoBody {
		return false
	}
	switch string(c.req.Method) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE":
		return true
	}
	for _, f := range c.req.Fields {
		if h1.EqualFold(f.Name, []byte("Idempotency-Key")) || h1.EqualFold(f.Name, []byte("X-Idempotency-Key")) {
			return true
		}
	}
	return false
}

// sendBody streams the request body to the target. Whatever has arrived is
// sent on whenever the client pauses, so an upload streams instead of
// waiting in latch's buffer.
func (c *clientConn) sendBody(uc *upstream.Conn, idle time.Duration) error {
	chunked := c.req.Framing == h1.Chunked
	for {
		if c.rd.Buffered() == 0 && !c.body.Done() {
			if err := uc.W.Flush(); err != nil {
				return err
			}
			now := c.h.now().UnixNano()
			c.touch(now, idle)
			uc.SetIdleDeadline(now, idle)
		}
		p, err := c.body.Next()
		if len(p) > 0 {
			if chunked {
				uc.W.WriteChunk(p)
			} else {
				uc.W.Write(p)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if _, ok := h1.IsError(err); ok {
				return err
			}
			if isTimeout(err) {
				return h1.ErrBodyTooShort
			}
			return h1.ErrBodyTooShort
		}
	}
	if chunked {
		uc.W.WriteLastChunk(c.body.Trailer)
	}
	return uc.W.Err()
}
