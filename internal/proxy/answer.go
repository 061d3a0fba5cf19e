package proxy

import (
	"strconv"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/route"
)

// latch's own answers: errors, redirects and fixed responses, as ALB's,
// made in x.out for the client's writer.

var (
	nameServer      = []byte("Server")
	nameContentType = []byte("Content-Type")
	nameLocation    = []byte("Location")
	valueLatch      = []byte("latch")
	textPlain       = []byte("text/plain; charset=utf-8")
	textHTML        = []byte("text/html")
)

// refuse makes x.out latch's error for a request it does not forward. The
// connection stays open only if the request's body, if any, has been read.
// It returns false, for begin to return.
func (x *exchange) refuse(status int, cause string) bool {
	x.answerError(status, cause, x.mayKeep(x.body.Done()))
	return false
}

// answerError makes x.out latch's own error: a status and a short text
// body naming the cause, as ALB's errors (never a target's address).
func (x *exchange) answerError(status int, cause string, keep bool) {
	r := x.latchAnswer(status, textPlain, keep)
	b := strconv.AppendInt(r.fixed[:0], int64(status), 10)
	b = append(b, ' ')
	b = append(b, statusText(status)...)
	b = append(b, ": "...)
	b = append(b, cause...)
	b = append(b, '\n')
	r.fixed, r.length = b, int64(len(b))
	x.rec.ByLatch, x.rec.Cause = true, cause
}

// answer makes x.out a redirect or a fixed-response action's answer.
func (x *exchange) answer(a *Action) {
	keep := x.mayKeep(x.body.Done())
	if a.Kind == Redirect {
		r := x.latchAnswer(a.Redirect.StatusCode, textHTML, keep)
		x.buf = route.AppendLocation(x.buf[:0], a.Redirect, x.input(), x.h.proto, x.h.port)
		r.add(nameLocation, x.buf, h1.KindOther)
		x.rec.Redirect = x.buf
		r.fixed, r.length = append(r.fixed[:0], a.body...), int64(len(a.body))
	} else {
		r := x.latchAnswer(a.Fixed.StatusCode, a.contentType, keep)
		r.fixed, r.length = append(r.fixed[:0], a.Fixed.MessageBody...), int64(len(a.Fixed.MessageBody))
	}
	x.rec.ByLatch = true
}

// latchAnswer starts x.out as one of latch's answers.
func (x *exchange) latchAnswer(status int, contentType []byte, keep bool) *response {
	r := &x.out
	r.reset()
	r.status, r.keep = status, keep
	r.add(nameServer, valueLatch, h1.KindOther)
	r.add(nameContentType, contentType, h1.KindOther)
	// A response to HEAD has no content (RFC 9110 §9.3.2), but states the
	// length of the one it would have.
	r.noBody, r.hasLength = string(x.req.Method) == "HEAD", true
	return r
}
