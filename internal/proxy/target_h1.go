package proxy

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// The target's side of an exchange over HTTP/1.1: the request sent on a
// pooled connection, and the response head read into the form every
// client writer takes (response.go).

// roundTripH1 sends the request to x.t on the connection the exchange
// holds (one an event loop handed on), or on a pooled one, and reads the
// response head into x.out; on failure x.out is latch's error. A request
// that a dead pooled connection lost goes again on a new one; one that
// failed on the target may go once more to another (retry.go). A request
// that could not be sent twice never goes on a pooled connection its
// target has closed: the pool checks it first.
func (x *exchange) roundTripH1() {
	for {
		if x.uc == nil {
			uc, err := x.t.Conns.Get(context.Background(), x.be.ConnectTimeout, time.Now().UnixNano(), !x.replayable())
			if err != nil {
				if x.failed(err) {
					continue
				}
				return
			}
			x.use(uc)
		}
		err := x.sendRequest()
		if err == nil {
			err = x.readHead()
		}
		if err == nil {
			return
		}
		if x.failed(err) {
			continue
		}
		return
	}
}

// sendRequest writes the request, its body included, on x.uc; on an
// error, the connection is dropped.
func (x *exchange) sendRequest() error {
	uc, req := x.uc, &x.req
	idle := x.rt.IdleTimeout
	uc.SetIdleDeadline(time.Now().UnixNano(), idle)
	x.writeHead(uc.W, x.t)
	if req.Framing != h1.NoBody {
		if req.Expect100 {
			// latch answers the expectation itself, once the target is
			// connected, and does not forward it: a target that ignores
			// Expect would otherwise leave the client waiting.
			if err := x.body.Continue(); err != nil {
				x.dropConn()
				return errClientGone
			}
		}
		if err := x.sendBody(idle); err != nil {
			x.dropConn()
			return err
		}
	}
	// A reused connection that fails here is dealt with when reading the
	// response, where the missing response tells a stale connection.
	if err := uc.W.Flush(); err != nil && !uc.Reused {
		x.dropConn()
		return err
	}
	return nil
}

// sendBody streams the request body to the target. Whatever has arrived is
// sent on whenever the client pauses, so an upload streams instead of
// waiting in latch's buffer.
func (x *exchange) sendBody(idle time.Duration) error {
	uc := x.uc
	chunked := x.req.Framing == h1.Chunked
	for {
		if !x.body.AtHand() && !x.body.Done() {
			if err := uc.W.Flush(); err != nil {
				return err
			}
			now := time.Now().UnixNano()
			x.body.Touch(now)
			uc.SetIdleDeadline(now, idle)
		}
		p, err := x.body.Next()
		if len(p) > 0 {
			x.rec.BytesIn += int64(len(p))
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

// readHead reads the target's response head into x.out, past interim
// responses. A request a dead pooled connection lost (stale) goes again on
// a new connection.
func (x *exchange) readHead() error {
	head := string(x.req.Method) == "HEAD"
	for {
		started, err := x.uc.R.ReadResponse(&x.resp, head)
		if err != nil && x.stale(started, err) {
			if err := x.redial(); err != nil {
				return err // a dial error: the caller may try another target
			}
			continue
		}
		if err != nil {
			x.dropConn()
			return err
		}
		if final, err := x.gotHead(); final {
			return err
		}
	}
}

// redial replaces a stale pooled connection with a new one to the same
// target, and sends the request's head on it (a replayable request has no
// body).
func (x *exchange) redial() error {
	x.dropConn()
	uc, err := x.t.Conns.Dial(context.Background(), x.be.ConnectTimeout)
	if err != nil {
		return err
	}
	x.use(uc)
	uc.SetIdleDeadline(time.Now().UnixNano(), x.rt.IdleTimeout)
	x.writeHead(uc.W, x.t)
	if err := uc.W.Flush(); err != nil {
		x.dropConn()
		return err
	}
	return nil
}

// gotHead acts on the response head just read into x.resp. final is false
// for an interim response, which another head follows. Otherwise x.out is
// the response for the client, or err says why there is none.
func (x *exchange) gotHead() (final bool, err error) {
	resp := &x.resp
	if resp.Status >= 200 {
		x.t.Record(resp.Status)
	}
	if resp.Status >= 100 && resp.Status < 200 {
		if resp.Status != http.StatusSwitchingProtocols {
			// Other interim responses (100 Continue, 103 Early Hints) are
			// not forwarded: latch answered Expect itself.
			return false, nil
		}
		if !x.req.Upgrade || !h1.SwitchAsked(&x.req, resp) {
			x.dropConn()
			return true, errUnrequestedSwitch
		}
	}
	r := &x.out
	r.reset()
	x.answered, x.rec.Head = true, time.Now()
	r.status, r.reason, r.stdReason, r.sticky = resp.Status, resp.Reason, true, true
	r.fields, r.kinds = append(r.fields, resp.Fields...), append(r.kinds, resp.Kinds...)
	r.keep = x.mayKeep(x.body.Done())
	r.length, r.hasLength = -1, resp.HasLength
	switch resp.Framing {
	case h1.NoBody:
		r.noBody = true
		r.length = resp.ContentLength
	case h1.Length:
		r.length = resp.ContentLength
	}
	if resp.Framing != h1.NoBody {
		x.rbody.Reset(x.uc.R, resp.Framing, resp.ContentLength, true)
		x.fbody = h1Body{x: x}
		r.body = &x.fbody
	}
	return true, nil
}

// h1Body reads an HTTP/1.1 target's response body for the client's
// writer, moving the target connection's deadline on whenever it waits.
type h1Body struct{ x *exchange }

func (b *h1Body) Next() ([]byte, error) {
	x := b.x
	if !b.AtHand() {
		x.uc.SetIdleDeadline(time.Now().UnixNano(), x.rt.IdleTimeout)
	}
	return x.rbody.Next()
}

func (b *h1Body) AtHand() bool         { return b.x.uc.R.Buffered() > 0 || b.x.rbody.Done() }
func (b *h1Body) Trailers() []h1.Field { return b.x.rbody.Trailers() }

// bodyFits reports whether a message body so framed is all in a buffer
// holding buffered bytes past the head, so that an event loop can relay
// it without waiting.
func bodyFits(framing h1.Framing, length int64, buffered int) bool {
	switch framing {
	case h1.NoBody:
		return true
	case h1.Length:
		return length <= int64(buffered)
	}
	return false
}
