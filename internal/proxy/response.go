package proxy

import (
	"net/http"
	"strconv"

	"github.com/latch-lb/latch/internal/h1"
)

// response is an answer in the one form every client writer takes
// (write_h1.go for HTTP/1.1 clients, h2stream.write in client_h2.go for
// HTTP/2 ones), whoever made it: an HTTP/1.1 target (target_h1.go), an
// HTTP/2 target (target_h2.go), or latch itself (a redirect, a fixed
// response, an error: answer.go).
type response struct {
	// status 0 means there is nothing to write: the client went away.
	status int
	// reason is an HTTP/1.1 target's reason phrase; when it has none, the
	// standard text is net/http's for a target's response (stdReason, as
	// before latch had one form for them), statusText for the others.
	reason    []byte
	stdReason bool
	// fields are the response's header fields in order, with their kinds:
	// writers pass on the end-to-end ones, and write framing of their own.
	fields []h1.Field
	kinds  []h1.Kind
	// trailerNames are the trailer fields an HTTP/2 target announced,
	// which an HTTP/1.1 client is told in a Trailer field.
	trailerNames []string
	// length is the body's length when known, else -1 (chunked, or until
	// the target closes). noBody says there is none to send (HEAD, 204,
	// 304); a body-less response still states its length when hasLength.
	length    int64
	noBody    bool
	hasLength bool
	// body reads the body as it arrives; without one, fixed is the body
	// (latch's own).
	body  bodyReader
	fixed []byte
	// sticky says the session's fields go with it (a target's response,
	// not latch's own).
	sticky bool
	// keep says the client connection may carry another request after
	// this one, as far as the exchange knows (a writer may still close it:
	// an HTTP/1.0 client and a body delimited by the connection's end).
	keep bool
}

// bodyReader is a response body as it arrives from a target.
type bodyReader interface {
	// Next returns the next part of the body; io.EOF after the last.
	Next() ([]byte, error)
	// AtHand reports whether Next can return without waiting: when it
	// cannot, a writer first passes on what it has, so that a streamed
	// body reaches the client as the target sends it.
	AtHand() bool
	// Trailers are the trailer fields, once Next returned io.EOF.
	Trailers() []h1.Field
}

// reset empties r for the next answer, keeping its slices' room.
func (r *response) reset() {
	*r = response{fields: r.fields[:0], kinds: r.kinds[:0], fixed: r.fixed[:0]}
}

// add appends one field.
func (r *response) add(name, value []byte, k h1.Kind) {
	r.fields = append(r.fields, h1.Field{Name: name, Value: value})
	r.kinds = append(r.kinds, k)
}

// statusText is net/http's, plus ALB's own codes.
func statusText(code int) string {
	switch code {
	case 460:
		return "Client Closed Request"
	case 463:
		return "Too Many Forwarded Addresses"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Status " + strconv.Itoa(code)
}

// bodyLength is how many body bytes latch's own answer sends, for a
// Record made before it is written (Observer.Refused).
func (r *response) bodyLength() int64 {
	if r.noBody {
		return 0
	}
	return int64(len(r.fixed))
}
