package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/route"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// client is the side of an exchange a request came from and its answer
// goes to: an HTTP/1.1 connection, or an HTTP/2 stream.
type client interface {
	// touch makes sure the client's deadline leaves idle from now.
	touch(now int64, idle time.Duration)
	// bodyAtHand reports whether request body bytes can be read without
	// waiting; when none can, what was sent on is flushed first.
	bodyAtHand() bool
	// continue100 tells a client that sent Expect: 100-continue to send
	// its body.
	continue100() error
	// writeError answers with latch's own error.
	writeError(status int, cause string, keep bool)
	// writeReply answers with a redirect or a fixed response.
	writeReply(status int, contentType string, location []byte, body string, keep bool)
	// respond relays the response whose head is in x.resp, and gives uc
	// back to its pool (or closes it).
	respond(x *exchange, rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (keep bool, err error)
	// tunnel relays a switched protocol (101) both ways until it ends.
	tunnel(x *exchange, rt *Route, t *target.Target, uc *upstream.Conn, issued int64)
	// watch cuts uc short if the client goes away while the exchange waits
	// on the target; stop ends the watch.
	watch(uc *upstream.Conn) (stop func() bool)
	// watchContext calls cancel if the client goes away (HTTP/2 targets).
	watchContext(cancel func()) (stop func() bool)
	// respondHTTP relays an HTTP/2 target's response; bodyDone says
	// whether the request body was all read when it began.
	respondHTTP(x *exchange, rt *Route, t *target.Target, resp *http.Response, issued int64, bodyDone bool) (keep bool, err error)
	// gone reports whether the client is known to have gone away (an
	// HTTP/2 stream reset; an HTTP/1.1 client is noticed when written to).
	gone() bool
	// interruptRead makes a read of the request body that waits on the
	// client return at once.
	interruptRead()
}

// bodySource is a request body as the client sends it: an h1.Body, or an
// HTTP/2 stream's DATA frames.
type bodySource interface {
	Next() ([]byte, error)
	Done() bool
	Trailers() []h1.Field
}

// exchange is one request on its way through latch, whatever protocol it
// came in on: its head (always in HTTP/1.1 form, as it goes to the
// target), the session it belongs to, and the target's response.
type exchange struct {
	h    *Handler
	cl   client
	req  h1.Request
	body bodySource
	resp h1.Response
	// rbody reads the response body.
	rbody h1.Body
	sess  sticky.Session
	moved string // the session's old target, for MovedHeader
	ip    []byte // the client's address, for X-Forwarded-For
	xff   []byte // scratch: the X-Forwarded-For value
	// ipPort is the client's address and port ("[ipv6]:port" for IPv6).
	ipPort []byte
	rt     *Route // the listener's route this request is served by
	// closeAfter closes both connections after this exchange (an
	// ambiguous request: nothing smuggled behind it may be read).
	closeAfter bool
	// burst, when set, pins the first requests of a connection that carry
	// no session to one target (HTTP/2's first-burst affinity).
	burst *burst
	buf   []byte // scratch: cookie values, redirect locations

	src netip.Addr  // the client's address, for source_ip rules
	in  route.Input // what the rules look at
	act *Action     // the matched rule's action
	be  *Backend    // the target group the request goes to
	// groupName and groupIssued are the weighted forward's group session
	// (AWSALBTG): the group's name, and when the session first picked it.
	groupName   string
	groupIssued int64
	// key is the request's hash-affinity key, when keyed.
	key   uint64
	keyed bool
	// The forward's target, when its session first picked it (0: now),
	// whether the request came with a live session, and the group's view
	// the target was picked from.
	t          *target.Target
	issued     int64
	firstStuck bool
	view       *target.View
	// unwatch ends the client's watch on the target connection.
	unwatch func() bool
}

// stopWatch ends the client's watch on the target connection, if any. It
// reports false if the watch had fired: the connection's deadline is then
// in the past, and it must not be pooled.
func (x *exchange) stopWatch() bool {
	if x.unwatch == nil {
		return true
	}
	stopped := x.unwatch()
	x.unwatch = nil
	return stopped
}

// maxForwardedFor is ALB's limit on X-Forwarded-For addresses (463 beyond).
const maxForwardedFor = 30

// serve answers the request in x.req, whose body x.body reads, and
// reports whether the client's connection may carry another.
func (x *exchange) serve(rt *Route) bool {
	if forward, keep := x.begin(rt); !forward {
		return keep
	}
	return x.serveForward(rt)
}

// begin does what comes before forwarding: it refuses what latch does not
// forward, matches the rules, answers redirects and fixed responses, and
// picks the target (x.t) of a forward. forward reports whether to forward
// the request; when not, keep says whether the connection may go on.
func (x *exchange) begin(rt *Route) (forward, keep bool) {
	req := &x.req
	x.rt = rt
	switch {
	case req.ExpectOther:
		return false, x.refuse(http.StatusExpectationFailed, "unsupported Expect")
	case string(req.Method) == "TRACE":
		return false, x.refuse(http.StatusMethodNotAllowed, "TRACE is not allowed")
	case string(req.Method) == "CONNECT":
		return false, x.refuse(http.StatusMethodNotAllowed, "CONNECT is not supported")
	case req.XFFCount > maxForwardedFor:
		return false, x.refuse(463, "X-Forwarded-For holds more than 30 addresses")
	}
	a := rt.Actions[len(rt.Actions)-1]
	if !rt.Rules.Empty() {
		a = rt.Actions[rt.Rules.Match(x.input()).Index]
	}
	if a.Kind != Forward {
		return false, x.answer(rt, a)
	}
	now := x.h.now()
	x.act = a
	x.be = x.backend(a, now)
	be := x.be
	x.view = be.Group.View()
	if len(x.view.Targets) == 0 || x.view.Picker == nil {
		return false, x.refuse(http.StatusServiceUnavailable, fmt.Sprintf("target group %q has no registered targets", be.Group.Name))
	}
	x.keyed = false
	x.t, x.issued, x.firstStuck = x.pick(x.view, now)
	return true, false
}

// serveForward forwards the request to x.t, and once more elsewhere if
// that target refuses the connection.
func (x *exchange) serveForward(rt *Route) bool {
	keep, err := x.forward(rt, x.t, x.issued)
	if isDialFailure(err) && x.retarget(err) {
		keep, err = x.forward(rt, x.t, x.issued)
	}
	return x.finish(rt, x.t, keep, err)
}

// retarget deals with a connect failure to x.t (err): the request never
// reached it, so the failure counts against it, and the request goes once
// more elsewhere, re-sticking the session there. It reports whether there
// is another target to try, now in x.t.
func (x *exchange) retarget(err error) bool {
	t, be := x.t, x.be
	var de *upstream.DialError
	if errors.As(err, &de) {
		t.RecordConnectFailure()
		be.Group.Observe(t, target.Result{Reason: target.ReasonFailedHealthChecks,
			Description: "connect failed on a request: " + de.Err.Error()})
	}
	alt := x.alternative(x.view, t)
	if alt == nil || alt == t {
		return false
	}
	if x.firstStuck {
		x.moved = t.ID
	}
	x.issued = 0
	if x.burst != nil && be.Sticky != nil {
		x.issued = x.burst.repin(be, t, alt, x.h.now())
	}
	x.t = alt
	return true
}

// finish ends an exchange forwarded to t: when it failed (err), it counts
// the failure and answers the client if it still can. It reports whether
// the client's connection may carry another request.
func (x *exchange) finish(rt *Route, t *target.Target, keep bool, err error) bool {
	if err == nil {
		return keep
	}
	if t.Health().State == target.Unused {
		err = errDeregistered
	}
	if x.cl.gone() {
		// An HTTP/2 client's reset ends the exchange as a timeout would:
		// it is neither the target's failure nor anyone's to answer.
		err = errClientGone
	}
	if !isDialFailure(err) && !errors.Is(err, errClientGone) {
		// The request reached the target, which failed it: an error for
		// anomaly detection, as the status latch answers with.
		status, _ := statusFor(err, x.be.ConnectTimeout, rt.IdleTimeout)
		t.Record(status)
	}
	return x.failTarget(rt, t, err)
}

// pick chooses the request's target: the one its session names, if that
// may still serve it, or else the algorithm's choice. issued is when the
// session first picked the target (0: now), and stuck says whether the
// request carried a live session.
func (x *exchange) pick(view *target.View, now time.Time) (t *target.Target, issued int64, stuck bool) {
	x.moved = ""
	if k := x.be.Key; k != nil {
		if h, ok := view.Picker.(*balance.Hash); ok {
			if key, ok := x.hashKey(k); ok {
				x.key, x.keyed = key, true
				return h.PickKey(key, nil), 0, false
			}
		}
	}
	if p := x.be.Sticky; p != nil {
		var miss sticky.Miss
		x.sess, miss = p.ReadFields(&x.req, now)
		if miss == sticky.Hit {
			t, ok := view.Lookup(x.sess.Target)
			switch {
			case t == nil || t.Generation != x.sess.Generation:
				x.moved = x.sess.Target
			case !ok:
				x.moved = x.sess.Target
			default:
				if u := rebalance(view, t, x.sess.LastSeen, x.be.RebalanceIdle, now); u != nil {
					// Idle long enough, with a new target to relieve this one.
					x.moved = t.ID
					return u, 0, true
				}
				return t, x.sess.Issued, true
			}
		}
		if x.burst != nil {
			// No live session: the connection's first-burst target.
			t, issued := x.burst.pick(x.be, view, now)
			return t, issued, false
		}
		return boundedPick(view, x.be.BalanceFactor), 0, false
	}
	return view.Picker.Pick(nil), 0, false
}

// alternative picks another target after t refused a connection: the
// key's next choice under hash affinity, the algorithm's otherwise.
func (x *exchange) alternative(view *target.View, t *target.Target) *target.Target {
	if h, ok := view.Picker.(*balance.Hash); ok && x.keyed {
		return h.PickKey(x.key, t)
	}
	return view.Picker.Pick(t)
}

// forward sends the request to t and relays the response.
func (x *exchange) forward(rt *Route, t *target.Target, issued int64) (bool, error) {
	// The hash picker's Begin and Done also keep the group's total in
	// flight, which its bounded load needs; on a nil Hash they are just
	// the target's count.
	h, _ := x.view.Picker.(*balance.Hash)
	if x.be.H2 != nil {
		h.Begin(t)
		defer h.Done(t)
		return x.roundTripH2(rt, t, issued)
	}
	uc, err := t.Conns.Get(context.Background(), x.be.ConnectTimeout, x.h.now().UnixNano())
	if err != nil {
		return false, err
	}
	h.Begin(t)
	defer h.Done(t)
	// The watch ends before uc goes back to its pool (putOrClose), or
	// here if it never does.
	x.unwatch = x.cl.watch(uc)
	defer x.stopWatch()
	return x.roundTrip(rt, t, uc, issued)
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

// mayKeep reports whether the client's connection may carry another
// request after this one's answer: the client wants it kept, its body was
// read (bodyDone), nothing in it asks for a close (both Transfer-Encoding
// and Content-Length; desync mitigation's close), and latch is not
// shutting down.
func (x *exchange) mayKeep(bodyDone bool) bool {
	return x.req.KeepAlive && !x.req.BothTEAndCL && !x.closeAfter && bodyDone && !x.h.closing.Load()
}

// refuse answers a request latch does not forward. The connection stays
// open only if the request's body, if any, has been read.
func (x *exchange) refuse(status int, cause string) bool {
	keep := x.mayKeep(x.body.Done())
	x.cl.touch(x.h.now().UnixNano(), x.h.route.Load().IdleTimeout)
	x.cl.writeError(status, cause, keep)
	return keep
}

// failTarget answers a request that the target could not answer, unless
// the response had already begun (then the connection is cut: see
// errCut).
func (x *exchange) failTarget(rt *Route, t *target.Target, err error) bool {
	if errors.Is(err, errCut) || errors.Is(err, errClientGone) {
		return false
	}
	status, cause := statusFor(err, x.be.ConnectTimeout, rt.IdleTimeout)
	x.h.log.Warn("request failed", "group", x.be.Group.Name, "target", t.ID, "status", status, "err", err)
	if status == http.StatusBadRequest {
		x.cl.writeError(status, cause, false)
		return false
	}
	return x.refuse(status, cause)
}

// errCut reports a response that failed after its head was sent: nothing
// is left to do but cut the client's connection, as the target did.
var errCut = errors.New("the response was cut short")

// errClientGone reports a client that went away mid-exchange.
var errClientGone = errors.New("the client closed the connection")

var errUnrequestedSwitch = errors.New("the target switched protocols unasked")

// statusFor maps a forwarding failure to ALB's status and a short cause,
// naming no target address: clients must not learn them.
func statusFor(err error, connect, idle time.Duration) (int, string) {
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
			return http.StatusGatewayTimeout, fmt.Sprintf("could not connect to the target within %v", connect)
		}
		return http.StatusBadGateway, "the target refused the connection"
	case isTimeout(err):
		return http.StatusGatewayTimeout, fmt.Sprintf("the target did not respond within %v", idle)
	case errors.Is(err, errUnrequestedSwitch):
		return http.StatusBadGateway, "the target sent an invalid response"
	}
	return http.StatusBadGateway, "the target closed the connection"
}

// roundTrip sends the request on uc and relays the response. It returns
// an error only while the client can still be told (nothing of the
// response written), or errCut/errClientGone.
func (x *exchange) roundTrip(rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (bool, error) {
	if err := x.sendRequest(rt, t, uc); err != nil {
		return false, err
	}
	return x.readResponse(rt, t, uc, issued)
}

// sendRequest writes the request, its body included, on uc; on an error,
// uc is closed.
func (x *exchange) sendRequest(rt *Route, t *target.Target, uc *upstream.Conn) error {
	req := &x.req
	idle := rt.IdleTimeout
	now := x.h.now().UnixNano()
	uc.SetIdleDeadline(now, idle)
	x.writeHead(uc.W, t)
	if req.Framing != h1.NoBody {
		if req.Expect100 && !x.cl.bodyAtHand() {
			// latch answers the expectation itself, once the target is
			// connected, and does not forward it: a target that ignores
			// Expect would otherwise leave the client waiting.
			x.cl.touch(now, idle)
			if err := x.cl.continue100(); err != nil {
				uc.Close()
				return errClientGone
			}
		}
		if err := x.sendBody(uc, idle); err != nil {
			uc.Close()
			return err
		}
	}
	// A reused connection that fails here is dealt with when reading the
	// response, where the missing response tells a stale connection.
	if err := uc.W.Flush(); err != nil && !uc.Reused {
		uc.Close()
		return err
	}
	return nil
}

// readResponse reads the target's response to the request sent on uc, and
// relays it.
func (x *exchange) readResponse(rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (bool, error) {
	head := string(x.req.Method) == "HEAD"
	for {
		started, err := uc.R.ReadResponse(&x.resp, head)
		if err != nil && !started && uc.Reused && isEOF(err) && x.replayable() {
			// The target closed this pooled connection while it was idle;
			// the request never reached it. Send it again on a new one.
			uc.Close()
			if uc, err = t.Conns.Dial(context.Background(), x.be.ConnectTimeout); err != nil {
				return false, err // a dial error: the caller may try another target
			}
			if x.unwatch != nil {
				// The client's watch moves to the new connection.
				x.stopWatch()
				x.unwatch = x.cl.watch(uc)
			}
			uc.SetIdleDeadline(x.h.now().UnixNano(), rt.IdleTimeout)
			x.writeHead(uc.W, t)
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
		if done, keep, err := x.gotResponse(rt, t, uc, issued); done {
			return keep, err
		}
	}
}

// gotResponse acts on the response head just read into x.resp: done is
// false for an interim response, which another head follows.
func (x *exchange) gotResponse(rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (done, keep bool, err error) {
	if x.resp.Status >= 200 {
		t.Record(x.resp.Status)
	}
	if x.resp.Status >= 100 && x.resp.Status < 200 {
		if x.resp.Status == http.StatusSwitchingProtocols {
			if !x.req.Upgrade {
				uc.Close()
				return true, false, errUnrequestedSwitch
			}
			x.cl.tunnel(x, rt, t, uc, issued)
			return true, false, nil
		}
		// Other interim responses (100 Continue, 103 Early Hints) are
		// not forwarded: latch answered Expect itself.
		return false, false, nil
	}
	keep, err = x.cl.respond(x, rt, t, uc, issued)
	return true, keep, err
}

// replayable reports whether the request may be sent again after a pooled
// connection turned out dead: it has no body (already consumed) and an
// idempotent method, or an Idempotency-Key, as net/http's Transport rules.
func (x *exchange) replayable() bool {
	if x.req.Framing != h1.NoBody {
		return false
	}
	switch string(x.req.Method) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE":
		return true
	}
	for _, f := range x.req.Fields {
		if h1.EqualFold(f.Name, []byte("Idempotency-Key")) || h1.EqualFold(f.Name, []byte("X-Idempotency-Key")) {
			return true
		}
	}
	return false
}

// sendBody streams the request body to the target. Whatever has arrived is
// sent on whenever the client pauses, so an upload streams instead of
// waiting in latch's buffer.
func (x *exchange) sendBody(uc *upstream.Conn, idle time.Duration) error {
	chunked := x.req.Framing == h1.Chunked
	for {
		if !x.cl.bodyAtHand() && !x.body.Done() {
			if err := uc.W.Flush(); err != nil {
				return err
			}
			now := x.h.now().UnixNano()
			x.cl.touch(now, idle)
			uc.SetIdleDeadline(now, idle)
		}
		p, err := x.body.Next()
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
			return h1.ErrBodyTooShort
		}
	}
	if chunked {
		uc.W.WriteLastChunk(x.body.Trailers())
	}
	return uc.W.Err()
}

// appendCookies appends the response fields that pin the session to t (its
// group's cookie or header), and to its target group in a weighted forward
// with group stickiness: on every response, so that durations slide, as
// ALB's.
func (x *exchange) appendCookies(dst []byte, t *target.Target, issued int64) []byte {
	r := sticky.Response{TLS: x.h.proto == "https", Now: x.h.now(), Stuck: x.firstStuck || x.moved != ""}
	if p := x.be.Sticky; p != nil {
		if p.Kind == sticky.AppCookie {
			r.AppCookieSet = x.setsCookie(p.AppCookie)
			r.SameSiteNone = sticky.NeedsSameSiteNone(x.field(userAgent))
		}
		dst = p.AppendFields(dst, t.ID, t.Generation, issued, &r)
	}
	if x.groupName != "" {
		r.Stuck = true
		dst = x.act.Groups.AppendFields(dst, x.groupName, 0, x.groupIssued, &r)
	}
	return dst
}

var userAgent = []byte("User-Agent")

// field returns the value of the request's first field of that name.
func (x *exchange) field(name []byte) []byte {
	for _, f := range x.req.Fields {
		if len(f.Name) == len(name) && h1.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return nil
}

// setsCookie reports whether the target's response sets the named cookie.
func (x *exchange) setsCookie(name string) bool {
	for i, f := range x.resp.Fields {
		if x.resp.Kinds[i] == h1.KindSetCookie && sticky.SetsCookie(f.Value, name) {
			return true
		}
	}
	return false
}
