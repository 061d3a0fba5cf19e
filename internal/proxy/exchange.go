package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/route"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// exchange is one request on its way through latch, whatever protocol it
// came in on and whichever data path serves it: its head (always in
// HTTP/1.1 form, as it goes to the target), the session it belongs to, the
// target and connection it went to, and the answer for the client.
//
// Both data paths run the same steps, written once here: begin (rules,
// latch's own answers, the pick), use (a connection to the target, counted
// in flight), stale (the replay of a request a dead pooled connection
// lost), failed (the failure counted, the one retry elsewhere or latch's
// error: retry.go) and end. The goroutine path calls them in a row (serve); an event loop calls
// them as its sockets get ready (conn_loop.go).
type exchange struct {
	h   *Handler
	rt  *Route // the listener's route this request is served by
	req h1.Request
	// body is the request body as the client sends it.
	body bodySource
	// ctx is done when the client goes away (an HTTP/2 stream's reset,
	// on a goroutine); nil for an HTTP/1.1 client, noticed only when
	// written to, and for a stream the loop serves, whose reset the loop
	// acts on itself.
	ctx context.Context
	// http2 says the request came on an HTTP/2 stream.
	http2 bool
	// closeAfter closes both connections after this exchange (an
	// ambiguous request: nothing smuggled behind it may be read).
	closeAfter bool
	rec        Record // what the Observer sees
	now        time.Time

	// The client's address: for X-Forwarded-For (ip; ipPort is
	// "[ipv6]:port" for IPv6), and for source_ip rules and affinity (src).
	ip, ipPort []byte
	src        netip.Addr
	xff        []byte // scratch: the X-Forwarded-For value
	trace      []byte // the trace header's value sent to the target
	// The client connection's TLS, for the Observer (tlsVersion 0: none).
	tlsVersion, tlsCipher uint16
	sni                   string
	buf                   []byte // scratch: cookie values, redirect locations
	in                    route.Input
	act                   *Action  // the matched rule's action
	be                    *Backend // the target group the request goes to

	// The pick (pick.go). burst, when set, pins the first requests of a
	// connection that carry no session to one target (HTTP/2's first-burst
	// affinity). groupName and groupIssued are a weighted forward's group
	// session (AWSALBTG). The target t, when its session first picked it
	// (issued; 0: now), whether the request came with a live session
	// (firstStuck), the session's old target (moved) and the view t was
	// picked from.
	burst       *burst
	sess        sticky.Session
	groupName   string
	groupIssued int64
	key         uint64
	keyed       bool
	t           *target.Target
	issued      int64
	session     uint64 // the session's ID (0: a new one, sealed with the response)
	groupID     uint64 // the group session's ID (0: a new one)
	firstStuck  bool
	moved       string
	view        *target.View

	// Forwarding. uc is the HTTP/1.1 target connection the exchange holds
	// (nil when none); held the target counted in flight for it (hp the
	// picker whose Begin counted it); retried says the one retry was
	// used; unwatch ends the client's watch on uc; guard, on a goroutine's
	// connection, lets Shutdown cut a wait on the target.
	uc       *upstream.Conn
	guard    *cutGuard
	held     *target.Target
	hp       *balance.Hash
	retried  bool
	answered bool // x.out is x.t's response (its head came)
	unwatch  func() bool
	resp     h1.Response // an HTTP/1.1 target's response head
	rbody    h1.Body     // its body
	h2       *h2Exchange // an HTTP/2 target's side, while it lasts
	// failure is why latch answered in the target's place, for End's log.
	failure error

	out   response // the answer for the client
	fbody h1Body   // out's body reader, for an HTTP/1.1 target
}

// bodySource is a request body as the client sends it: an HTTP/1.1
// connection's, or an HTTP/2 stream's DATA frames.
type bodySource interface {
	// Next returns the next part of the body; io.EOF after the last. It
	// may wait for the client.
	Next() ([]byte, error)
	Done() bool
	Trailers() []h1.Field
	// AtHand reports whether Next can return without waiting: when it
	// cannot, what was sent on is flushed first, and Touch called.
	AtHand() bool
	// Touch tells the client side that the exchange waits for more of the
	// body from now: an HTTP/1.1 connection moves its deadline on.
	Touch(now int64)
	// Continue tells a client that sent Expect: 100-continue to send its
	// body, now that the target is connected, unless it did already.
	Continue() error
	// Interrupt makes a Next waiting on the client return at once.
	Interrupt()
}

// maxForwardedFor is ALB's limit on X-Forwarded-For addresses (463 beyond).
const maxForwardedFor = 30

// start readies the exchange for the request just read and tells the
// observer.
func (x *exchange) start(rt *Route) {
	x.rt = rt
	x.now = time.Now()
	x.newRecord(x.now)
	x.rec.DesyncBlocked = false
	x.t, x.held, x.hp, x.uc, x.failure, x.retried, x.answered, x.moved = nil, nil, nil, nil, nil, false, false, ""
	x.h.obs.Begin(&x.rec)
}

// newRecord starts x.rec afresh for the request in x.req, keeping its
// desync classification. A request whose head could not be read has no
// Method (readRequest resets it), and what x.req holds besides is stale.
func (x *exchange) newRecord(now time.Time) {
	x.rec = Record{Listener: x.h.name, Proto: x.h.proto, Port: x.h.port, Client: x.ipPort, Start: now,
		HTTP2: x.http2, Minor: x.req.Minor, Method: x.req.Method,
		TLSVersion: x.tlsVersion, TLSCipher: x.tlsCipher, SNI: x.sni,
		Classified: x.rec.Classified, Desync: x.rec.Desync, DesyncBlocked: x.rec.DesyncBlocked}
	if x.req.Method != nil {
		x.rec.Host, x.rec.URI, x.rec.Version = x.req.Host, x.req.Target, x.req.Proto
		if x.h.observed {
			x.rec.UserAgent = x.field(userAgent)
			if x.rec.Host == nil {
				// A request refused before it was framed (desync
				// mitigation's) has its Host among its fields alone.
				x.rec.Host = x.fieldOf(h1.KindHost)
			}
		}
	}
}

// begin does what comes before forwarding: it refuses what latch does not
// forward, matches the rules, makes latch's own answer (a redirect, a
// fixed response, an error) in x.out, or picks the target of a forward
// (x.t). It reports whether to forward.
func (x *exchange) begin(rt *Route) bool {
	x.start(rt)
	req := &x.req
	switch {
	case req.ExpectOther:
		return x.refuse(http.StatusExpectationFailed, "unsupported Expect")
	case string(req.Method) == "TRACE":
		return x.refuse(http.StatusMethodNotAllowed, "TRACE is not allowed")
	case string(req.Method) == "CONNECT":
		return x.refuse(http.StatusMethodNotAllowed, "CONNECT is not supported")
	case req.XFFCount > maxForwardedFor:
		return x.refuse(463, "X-Forwarded-For holds more than 30 addresses")
	}
	a := rt.Actions[len(rt.Actions)-1]
	if !rt.Rules.Empty() {
		rule := rt.Rules.Match(x.input())
		a, x.rec.Rule = rt.Actions[rule.Index], rule.Priority
	}
	x.rec.Routed, x.rec.Action = true, a.Kind
	if a.Kind != Forward {
		x.answer(a)
		return false
	}
	x.act = a
	x.be = x.backend(a, x.now)
	be := x.be
	x.rec.Group = be.Group.Name
	x.view = be.Group.View()
	if len(x.view.Targets) == 0 || x.view.Picker == nil {
		return x.refuse(http.StatusServiceUnavailable, fmt.Sprintf("target group %q has no registered targets", be.Group.Name))
	}
	x.keyed = false
	x.t, x.issued, x.firstStuck = x.pick(x.view, x.now)
	x.rec.Target = x.t
	return true
}

// serve answers the request in x.req on a goroutine, writing with w, and
// reports whether the client's connection may carry another request.
func (x *exchange) serve(rt *Route, w writer) bool {
	if x.begin(rt) {
		x.roundTrip()
	}
	return x.respond(w)
}

// writer writes an answer to the client: an HTTP/1.1 connection, or an
// HTTP/2 stream.
type writer interface {
	// write writes x.out, and reports whether the client's connection may
	// carry another request; err is errCut (the target failed
	// mid-response) or errClientGone when the answer could not be
	// written in full.
	write(x *exchange) (keep bool, err error)
}

// respond writes x.out with w and ends the exchange.
func (x *exchange) respond(w writer) bool {
	keep, err := w.write(x)
	return x.end(keep, err)
}

// roundTrip forwards the request to x.t, over HTTP/1.1 or HTTP/2, and
// leaves the target's response in x.out, or latch's error.
func (x *exchange) roundTrip() {
	if x.be.H2 != nil {
		x.roundTripH2()
		return
	}
	x.roundTripH1()
}

// use makes uc, a connection to x.t, the exchange's, and counts the
// request in flight to x.t (once, whatever connections it takes).
func (x *exchange) use(uc *upstream.Conn) {
	x.uc = uc
	x.guard.set(uc, nil)
	x.hold()
	if w, ok := x.body.(connWatcher); ok {
		// An HTTP/2 client that resets the stream cuts the wait on the
		// target connection short.
		x.unwatch = w.watch(uc)
	}
}

// connWatcher is a client that may go away mid-exchange, an HTTP/2 stream:
// watch has it cut uc's waits (uc.Abort) when it does, until
// the stop it returns is called, which reports false if the cut came.
// (context.AfterFunc would do, at four allocations a request.)
type connWatcher interface {
	watch(uc *upstream.Conn) (stop func() bool)
}

// hold counts the request in flight to x.t. The hash picker's Begin and
// Done also keep the group's total in flight, which its bounded load
// needs; on a nil Hash they are just the target's count.
func (x *exchange) hold() {
	if x.held == nil {
		x.hp, _ = x.view.Picker.(*balance.Hash)
		x.hp.Begin(x.t)
		x.held = x.t
	}
}

// release ends what hold counted.
func (x *exchange) release() {
	if x.held != nil {
		x.hp.Done(x.held)
		x.held = nil
	}
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

// dropConn closes the target connection the exchange holds.
func (x *exchange) dropConn() {
	if x.uc != nil {
		x.guard.set(nil, nil)
		x.stopWatch()
		x.uc.Close()
		x.uc = nil
	}
}

// gone reports whether the client is known to have gone away (an HTTP/2
// stream reset; an HTTP/1.1 client is noticed when written to).
func (x *exchange) gone() bool { return x.ctx != nil && x.ctx.Err() != nil }

// end ends an exchange whose answer was written (keep, err: what the
// writer said): finish, then report. It reports whether the client's
// connection may carry another request.
func (x *exchange) end(keep bool, err error) bool {
	keep = x.finish(keep, err)
	x.report()
	return keep
}

// finish lets go of what the exchange holds once its answer is written:
// the target connection goes back to its pool when the response was relayed
// whole, the request's count in flight ends. It reports whether the
// client's connection may carry another request.
func (x *exchange) finish(keep bool, err error) bool {
	if x.uc != nil {
		if err == nil {
			x.putOrClose()
		} else {
			x.dropConn()
		}
	}
	if x.h2 != nil {
		x.h2.close()
		x.h2 = nil
	}
	if x.answered {
		x.reportOutcome(err)
	}
	// After the outcome: a request is in flight until it is counted.
	x.release()
	if err != nil {
		x.clientFailed(err)
	}
	return keep && err == nil
}

// reportOutcome tells passive health how x.t's response went, once it is
// relayed (err: the writer's): a success, or a failure when the target cut
// it short. A response whose head came and whose body did not is the
// target's failure as one that never came; a timeout mid-body is not
// counted, as it may be the client's, slow to take what came.
func (x *exchange) reportOutcome(err error) {
	switch {
	case !errors.Is(err, errCut):
		x.be.Group.Answered(x.t, x.out.status)
	case x.failure != nil && !x.gone() && !isTimeout(x.failure) && !errors.Is(x.failure, errDeregistered):
		x.be.Group.Failed(x.t, "the target cut its response short")
	}
}

// clientFailed records why the answer could not be written in full (err:
// errCut, errClientGone), unless the exchange failed before.
func (x *exchange) clientFailed(err error) {
	if x.failure == nil {
		x.failure = err
		x.rec.Cause = err.Error()
		x.rec.ErrorReason = errorReason(err)
	}
}

// report tells the observer the request ended, once its answer is out (an
// event loop reports once the client's socket took the answer whole), and
// logs a failure.
func (x *exchange) report() {
	rec := &x.rec
	rec.Status = x.out.status
	if x.answered {
		rec.TargetStatus = x.out.status
	}
	rec.Duration = time.Since(x.now)
	x.h.obs.End(rec)
	if x.failure != nil && !errors.Is(x.failure, errClientGone) {
		x.logFailure()
	}
}

// logFailure logs a failed request, at most one line a second: the
// observer counts them all.
func (x *exchange) logFailure() {
	ok, suppressed := x.h.failures.allow(x.now.UnixNano())
	if !ok {
		return
	}
	target := ""
	if x.t != nil {
		target = x.t.ID
	}
	x.h.log.Warn("request failed", "group", x.rec.Group, "target", target, "status", x.rec.Status, "err", x.failure,
		"suppressed", suppressed)
}

// putOrClose gives the target connection back to its pool, unless the
// target closes it, or the request was ambiguous: then nothing smuggled
// behind it may be read from the connection.
func (x *exchange) putOrClose() {
	uc := x.uc
	x.uc = nil
	x.guard.set(nil, nil) // before the connection serves another exchange
	// A client going away from now on must not touch a pooled connection;
	// one whose watch has fired already is not pooled.
	if !x.stopWatch() || x.resp.Close || x.closeAfter || x.req.BothTEAndCL {
		uc.Close()
	} else {
		uc.Release(time.Now().UnixNano())
	}
}

// mayKeep reports whether the client's connection may carry another
// request after this one's answer: the client wants it kept, its body was
// read (bodyDone), nothing in it asks for a close (both Transfer-Encoding
// and Content-Length; desync mitigation's close), and latch is not
// shutting down.
func (x *exchange) mayKeep(bodyDone bool) bool {
	return x.req.KeepAlive && !x.req.BothTEAndCL && !x.closeAfter && bodyDone && !x.h.closing.Load()
}

// writeSticky writes the response fields that pin the session to x.t (its
// group's cookie or header), and to its target group in a weighted
// forward with group stickiness, to sink: on every response, so that
// durations slide, as ALB's.
func (x *exchange) writeSticky(sink sticky.FieldSink) {
	r := sticky.Response{TLS: x.h.proto == "https", Now: x.now, Stuck: x.firstStuck || x.moved != ""}
	if p := x.be.Sticky; p != nil {
		if p.Kind == sticky.AppCookie {
			r.AppCookieSet = x.setsCookie(p.AppCookie)
			r.SameSiteNone = sticky.NeedsSameSiteNone(x.field(userAgent))
		}
		r.Session = x.session
		x.buf = p.WriteFields(sink, x.buf, x.t.ID, x.t.Generation, x.issued, &r)
		if x.session = r.Session; x.session != 0 {
			x.t.RecordSession(x.session, x.now)
		}
	}
	if x.groupName != "" {
		r.Stuck, r.Session = true, x.groupID
		x.buf = x.act.Groups.WriteFields(sink, x.buf, x.groupName, 0, x.groupIssued, &r)
		x.groupID = r.Session
	}
}

var userAgent = []byte("User-Agent")

// fieldOf returns the value of the request's first field of that kind.
func (x *exchange) fieldOf(k h1.Kind) []byte {
	for i, f := range x.req.Fields {
		if x.req.Kinds[i] == k {
			return f.Value
		}
	}
	return nil
}

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
	for i, f := range x.out.fields {
		if x.out.kinds[i] == h1.KindSetCookie && sticky.SetsCookie(f.Value, name) {
			return true
		}
	}
	return false
}

// isDialFailure reports whether err means no byte reached the target.
func isDialFailure(err error) bool {
	if err == nil {
		return false
	}
	var de *upstream.DialError
	return errors.As(err, &de) || errors.Is(err, upstream.ErrClosed)
}

var (
	errDeregistered = errors.New("the target was deregistered and its deregistration delay elapsed")
	// errCut reports a response that failed after its head was sent:
	// nothing is left to do but cut the client's connection, as the
	// target did.
	errCut = errors.New("the response was cut short")
	// errClientGone reports a client that went away mid-exchange.
	errClientGone        = errors.New("the client closed the connection")
	errUnrequestedSwitch = errors.New("the target switched protocols unasked")
)

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

// errorReason maps a failure to its Record.ErrorReason, as statusFor maps
// it to a status.
func errorReason(err error) string {
	var de *upstream.DialError
	var he *h1.Error
	switch {
	case errors.Is(err, errClientGone):
		return ErrorReasonClientClosed
	case errors.Is(err, errCut):
		return ErrorReasonResponseCut
	case errors.As(err, &he):
		if he.Status == http.StatusBadRequest {
			return ErrorReasonBadRequestBody
		}
		return ErrorReasonInvalidResponse
	case errors.Is(err, errDeregistered), errors.Is(err, upstream.ErrClosed):
		return ErrorReasonDeregistered
	case errors.As(err, &de):
		if de.Timeout() {
			return ErrorReasonConnectTimeout
		}
		return ErrorReasonConnectRefused
	case isTimeout(err):
		return ErrorReasonResponseTimeout
	case errors.Is(err, errUnrequestedSwitch):
		return ErrorReasonInvalidResponse
	}
	return ErrorReasonTargetClosed
}

// aLongTimeAgo is a deadline in the past, to unblock reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// isEOF reports whether err means the peer closed the connection.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// cutGuard lets a goroutine connection's Shutdown cut its exchange's wait
// on the target: the exchange registers the target connection (or, for an
// HTTP/2 target, the request's cancel) it waits on, and unregisters it
// before the connection can serve another exchange, so that a cut never
// reaches someone else's request. Its methods do nothing on a nil guard
// (an event loop's connection: the loop cuts its own; an HTTP/2 stream:
// its server's shutdown resets it).
type cutGuard struct {
	mu     sync.Mutex
	uc     *upstream.Conn
	cancel context.CancelFunc
	cut    bool
}

// set registers what the exchange waits on now (nil, nil: nothing); after
// a cut, it is cut at once.
func (g *cutGuard) set(uc *upstream.Conn, cancel context.CancelFunc) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.uc, g.cancel = uc, cancel
	if g.cut {
		g.interruptLocked()
	}
}

// wasCut reports whether Shutdown cut the exchange (false on a nil guard).
func (g *cutGuard) wasCut() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cut
}

// interrupt cuts what the exchange waits on, and what it will.
func (g *cutGuard) interrupt() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = true
	g.interruptLocked()
}

func (g *cutGuard) interruptLocked() {
	if g.uc != nil && g.uc.Conn != nil {
		g.uc.Abort()
	}
	if g.cancel != nil {
		g.cancel()
	}
}
