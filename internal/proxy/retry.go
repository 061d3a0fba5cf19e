package proxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// What a request's failure on a target costs, and when the request goes
// once more to another target: written once, for every data path and both
// target protocols.
//
// A request that never reached its target (a connect failure, its pool
// closed) goes again whatever its method. One that reached it goes again
// only when sending it twice is safe: an idempotent method (RFC 9110
// §9.2.2) or an Idempotency-Key, and no body (the body was streamed to the
// first target and is gone), and only when no byte of the response came
// back: after a reset, a close or an invalid response (retry.idempotent),
// after a timeout only when the group opts in (retry.on_timeout). A POST
// that may have reached its target never goes again: it could run twice.
//
// A request goes to a second target at most once. One that reached its
// first target goes again only within the group's retry budget
// (retry.budget.*, target/budget.go): such retries are at most a share of
// the group's requests over the last 10 s, plus a few a second, so that a
// failing fleet is not hit by a retry storm on top of its load. A request
// that never reached its target is not held to the budget: sending it
// elsewhere adds nothing to what the targets do, as if it had been picked
// there first, and a dead target must cost no client an error however
// many were on it.

// failureKind says what a request's failure on a target means.
type failureKind uint8

const (
	// noOnesFault: the client went away or sent a bad body, or the target
	// was deregistered under the request. It counts against no target.
	noOnesFault failureKind = iota
	// notSent: the request never reached the target, whose pool was
	// closed (deregistered) before it could be sent.
	notSent
	// connectFailed: the request never reached the target, which could
	// not be connected to.
	connectFailed
	// targetFailed: the request reached the target, which reset or
	// closed the connection, or sent an invalid response.
	targetFailed
	// timedOut: the request reached the target, which did not answer
	// within the idle timeout.
	timedOut
)

// classify says what err, the failure of the request on x.t before any of
// its response was written, means.
func (x *exchange) classify(err error) failureKind {
	var de *upstream.DialError
	var he *h1.Error
	switch {
	case errors.Is(err, upstream.ErrClosed):
		// Before the Unused test: a target's pool closes when it is
		// removed, so the request that finds it closed finds it unused.
		return notSent
	case x.gone() || errors.Is(err, errClientGone) || errors.Is(err, errDeregistered) ||
		x.t.Health().State == target.Unused || x.guard.wasCut():
		// The client's doing, the target's removal, or Shutdown's cut
		// (a deadline in the past, not the target's silence).
		return noOnesFault
	case errors.As(err, &de):
		return connectFailed
	case x.be != nil && x.be.H2 != nil && unprocessed(err):
		return notSent
	case errors.As(err, &he) && he.Status < 500:
		return noOnesFault // the client's body was malformed
	case isTimeout(err):
		return timedOut
	}
	return targetFailed
}

// failed deals with a request that failed on x.t (err) before any of its
// response was written to the client: the failure counts against the
// target (passive health, anomaly detection, and a connect failure as a
// failed health check), then the request goes once more to another target
// if that is safe and the budget allows. It reports whether to send the
// request again, to the target now in x.t; otherwise x.out holds latch's
// answer.
func (x *exchange) failed(err error) bool {
	x.dropConn()
	x.release()
	kind := x.classify(err)
	x.count(kind, err)
	if x.retry(kind) {
		return true
	}
	x.fail(err)
	return false
}

// count counts a failure of kind (err) against x.t.
func (x *exchange) count(kind failureKind, err error) {
	t, g := x.t, x.be.Group
	switch kind {
	case connectFailed:
		var de *upstream.DialError
		errors.As(err, &de)
		t.RecordConnectFailure()
		g.Observe(t, target.Result{Reason: target.ReasonFailedHealthChecks,
			Description: "connect failed on a request: " + de.Err.Error()})
	case targetFailed, timedOut:
		// An error for anomaly detection, as the status latch answers.
		status, _ := statusFor(err, x.be.ConnectTimeout, x.rt.IdleTimeout)
		t.Record(status)
	default:
		return
	}
	_, cause := statusFor(err, x.be.ConnectTimeout, x.rt.IdleTimeout)
	g.Failed(t, cause)
}

// retry decides whether a request that failed on x.t (kind) goes once more
// to another target, and if so makes that target x.t, moving the session
// there. It reports whether it does.
func (x *exchange) retry(kind failureKind) bool {
	if x.retried {
		return false
	}
	switch kind {
	case noOnesFault:
		return false
	case targetFailed:
		if !x.be.Retry.Idempotent || !x.replayable() {
			return false
		}
	case timedOut:
		if !x.be.Retry.OnTimeout || !x.replayable() {
			return false
		}
	}
	t := x.t
	alt := x.alternative(x.view, t)
	if alt == nil || alt == t {
		return false
	}
	if kind == targetFailed || kind == timedOut {
		if r := &x.be.Retry; !x.be.Group.AllowRetry(r.BudgetPercent, r.BudgetPerSecond) {
			x.rec.RetryRefused = true
			return false
		}
	}
	x.retried, x.rec.Retried = true, true
	if x.firstStuck {
		reason := sticky.TargetFailed
		if kind == connectFailed || kind == notSent {
			reason = sticky.TargetConnectFailed
		}
		x.moved = t.ID
		x.rec.Sticky, x.rec.StickyReason, x.rec.MovedFrom = sticky.Moved, reason, t.ID
	}
	x.issued = 0
	if x.burst != nil && x.be.Sticky != nil {
		x.issued = x.burst.repin(x.be, t, alt, time.Now())
	}
	x.t, x.rec.Target = alt, alt
	return true
}

// stale reports whether a response that failed to come (started, err) on
// x.uc means the target closed the pooled connection while it was idle,
// before the request reached it, so that it may be sent again on a new
// one: nothing of a response came, the connection was reused, and the
// request is safe to send twice (replayable).
func (x *exchange) stale(started bool, err error) bool {
	return !started && x.uc.Reused && isEOF(err) && x.replayable()
}

// replayable reports whether the request may be sent twice: it has no body
// (already consumed) and an idempotent method, or an Idempotency-Key, as
// net/http's Transport rules.
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

// fail makes x.out latch's answer to a request the target could not answer
// (err, before any of the response was written).
func (x *exchange) fail(err error) {
	x.dropConn()
	if x.t.Health().State == target.Unused {
		err = errDeregistered
	}
	if x.gone() {
		// An HTTP/2 client's reset ends the exchange as a timeout would:
		// it is neither the target's failure nor anyone's to answer.
		err = errClientGone
	}
	x.failure = err
	x.rec.ErrorReason = errorReason(err)
	if errors.Is(err, errClientGone) {
		x.out.reset()
		x.rec.Cause = err.Error()
		return
	}
	status, cause := statusFor(err, x.be.ConnectTimeout, x.rt.IdleTimeout)
	if status == http.StatusBadRequest {
		// The client's body was malformed: nothing more can be read.
		x.answerError(status, cause, false)
		return
	}
	x.refuse(status, cause)
}
