package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/upstream"
)

// The target's side of an exchange over HTTP/2. A target group with
// protocol_version HTTP2 is spoken to in cleartext HTTP/2 with prior
// knowledge, through net/http's HTTP/2 client: one multiplexed connection
// per target carries all its requests. Clients of either protocol may use
// such a group (ALB answers 464 to HTTP/1.1 requests for one; latch
// translates them).

// NewH2Transport returns the HTTP/2 client of one target group.
func NewH2Transport(connectTimeout, idleTimeout time.Duration) *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Protocols: &p,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				// As on the HTTP/1.1 path: nothing was sent, so the request
				// may go to another target.
				return nil, &upstream.DialError{Addr: addr, Err: err}
			}
			return c, nil
		},
		// The client's Accept-Encoding passes as it is; the body as the
		// target sends it.
		DisableCompression: true,
		IdleConnTimeout:    idleTimeout,
		HTTP2:              &http.HTTP2Config{MaxReceiveBufferPerStream: 1 << 20},

		// The HTTP/1.1 path's limit, which health checks apply too (see
		// health.NewChecker for how the two count).
		MaxResponseHeaderBytes: h1.MaxResponseHead,
	}
}

// headerSink collects the fields a target gets into an HTTP/2 request.
type headerSink struct {
	h    http.Header
	host string
}

func (s *headerSink) WriteField(name, value []byte) {
	if h1.EqualFold(name, nameHost) {
		s.host = string(value)
		return
	}
	k := http.CanonicalHeaderKey(string(name))
	s.h[k] = append(s.h[k], string(value))
}

// h2RequestBody reads the client's request body for the HTTP/2 client. That
// client reads in a goroutine of its own, which may still be reading when
// the response has ended (a target that answers before the upload is in):
// detach stops it before the exchange, and the client's buffers, move on.
type h2RequestBody struct {
	mu   sync.Mutex // held by Read
	x    *exchange
	rest []byte
	err  error
	done atomic.Bool // Read reached the body's end
	// trailer, when not nil, is the outgoing request's Trailer: the
	// HTTP/2 client sends what it holds once Read has returned io.EOF.
	trailer http.Header
}

// errDetached is what the HTTP/2 client reads once the exchange is over.
var errDetached = errors.New("the exchange of this request body has ended")

func (b *h2RequestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.rest) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.rest, b.err = b.x.body.Next()
		if b.err != nil && b.err != io.EOF {
			if _, ok := h1.IsError(b.err); !ok {
				b.err = h1.ErrBodyTooShort
			}
		}
		if b.err == io.EOF {
			b.done.Store(true)
		}
		if b.err == io.EOF && b.trailer != nil {
			for _, f := range b.x.body.Trailers() {
				if trailerPasses(f.Name) {
					name := http.CanonicalHeaderKey(string(f.Name))
					b.trailer[name] = append(b.trailer[name], string(f.Value))
				}
			}
		}
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	// Under mu: the exchange reads the count once detach has taken it.
	b.x.rec.BytesIn += int64(n)
	return n, nil
}

func (b *h2RequestBody) Close() error { return nil }

// detach ends the HTTP/2 client's reading: it waits for a Read in
// progress, which interrupt unblocks if the body is not all read (the
// client connection is then not kept, see respondHTTP's bodyDone), and
// makes every later Read fail.
func (b *h2RequestBody) detach(interrupt func()) {
	if !b.mu.TryLock() {
		if !b.done.Load() {
			interrupt()
		}
		b.mu.Lock()
	}
	b.x, b.rest = nil, nil
	if b.err == nil {
		b.err = errDetached
	}
	b.mu.Unlock()
}

// roundTripH2 sends the request to x.t over HTTP/2 and leaves the
// target's response head in x.out, or latch's error; a request that failed
// on the target may go once more to another (retry.go).
func (x *exchange) roundTripH2() {
	for {
		err := x.tryH2()
		if err == nil {
			return
		}
		if x.failed(err) {
			continue
		}
		return
	}
}

// h2Exchange is what an exchange with an HTTP/2 target holds until it
// ends: the request's context and idle timer, the client's watch, the
// request body the HTTP/2 client reads, and the response.
type h2Exchange struct {
	guard  *cutGuard // the exchange's
	cancel context.CancelFunc
	stop   func() bool // ends the client's watch
	timer  *time.Timer // cancels the request when the target is silent for the idle timeout
	idle   time.Duration
	body   *h2RequestBody // nil without a request body
	detach func()         // interrupts a read of the client's body
	resp   *http.Response
	rbody  h2Body
}

// close releases what the exchange held, in the order that lets the HTTP/2
// client's goroutines end: the response, then the request body it may
// still read, the timer, the watch, the context.
func (st *h2Exchange) close() {
	st.guard.set(nil, nil)
	if st.resp != nil {
		st.resp.Body.Close()
	}
	if st.body != nil {
		st.body.detach(st.detach)
	}
	if st.rbody.buf != nil {
		relayBufs.Put(st.rbody.buf)
		st.rbody.buf = nil
	}
	st.timer.Stop()
	st.stop()
	st.cancel()
}

// tryH2 sends the request to x.t once.
func (x *exchange) tryH2() error {
	x.hold()
	req, t, idle := &x.req, x.t, x.rt.IdleTimeout
	sink := &headerSink{h: http.Header{"User-Agent": nil}} // no Go default User-Agent
	x.forwardFields(sink, t)
	if sink.host == "" {
		sink.host = string(req.Host)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &h2Exchange{guard: x.guard, cancel: cancel, stop: func() bool { return true }, idle: idle}
	if x.ctx != nil {
		st.stop = context.AfterFunc(x.ctx, cancel)
	}
	st.timer = time.AfterFunc(idle, cancel)
	x.h2 = st
	x.guard.set(nil, cancel)
	out := &http.Request{
		Method:     string(req.Method),
		URL:        &url.URL{Scheme: "http", Host: t.ID, Opaque: originForm(req)},
		Host:       sink.host,
		Header:     sink.h,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
	}
	if req.Framing != h1.NoBody {
		if req.Expect100 {
			if err := x.body.Continue(); err != nil {
				return errClientGone
			}
		}
		st.body, st.detach = &h2RequestBody{x: x}, x.body.Interrupt
		if req.Framing == h1.Chunked || announcesTrailers(req) {
			// Trailers may follow the body: a Trailer map, empty but not
			// nil, makes the HTTP/2 client send them after it (announced
			// or not; RFC 9113 §8.1 needs no announcement).
			st.body.trailer = announcedTrailers(req)
			out.Trailer = st.body.trailer
		}
		out.Body = st.body
		out.ContentLength = -1
		if req.Framing == h1.Length {
			out.ContentLength = req.ContentLength
		}
	} else {
		// net/http's HTTP/2 client sends a request with no body again by
		// itself, and again, when the target resets its stream with
		// PROTOCOL_ERROR (go.dev/issue/47635), whatever its method, until
		// the idle timeout; a body it cannot rewind stops it, and the one
		// retry elsewhere is latch's to decide (retry.go). The target gets
		// an empty body without a content-length.
		out.Body = emptyBody{}
	}
	x.rec.Sent = time.Now()
	resp, err := x.be.H2.RoundTrip(out.WithContext(ctx))
	if err != nil {
		// Canceled before close cancels it: the idle timer fired (or the
		// client went away, which the caller tells apart).
		canceled := ctx.Err() != nil
		st.close()
		x.h2 = nil
		var de *upstream.DialError
		var he *h1.Error
		switch {
		case errors.As(err, &de):
			return de
		case errors.As(err, &he):
			return he
		case canceled:
			return errTimeout
		}
		return err
	}
	st.resp = resp
	if code, _, _ := strings.Cut(resp.Status, " "); !h1.ValidStatus(code) {
		st.close()
		x.h2 = nil
		return h1.ErrResponseStatus
	}
	t.Record(resp.StatusCode)
	x.answered, x.rec.Head = true, time.Now()
	st.timer.Reset(idle)

	r := &x.out
	r.reset()
	r.status, r.sticky = resp.StatusCode, true
	for name, values := range resp.Header {
		k := h1.KindOf([]byte(name))
		for _, v := range values {
			r.add([]byte(name), []byte(v), k)
		}
	}
	for name := range resp.Trailer {
		r.trailerNames = append(r.trailerNames, name)
	}
	r.length, r.hasLength = resp.ContentLength, resp.ContentLength >= 0
	r.noBody = string(req.Method) == "HEAD" || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	if !r.noBody {
		st.rbody.st = st
		r.body = &st.rbody
	}
	// Whether the request body is all read is known only to the body
	// reader while the HTTP/2 client may still read it.
	r.keep = x.mayKeep(st.body == nil || st.body.done.Load())
	return nil
}

// h2Body reads an HTTP/2 target's response body for the client's writer,
// pushing the idle timer back on every read. HTTP/2 hands the body over as
// it comes, so none of it is ever at hand: each part is passed on.
type h2Body struct {
	st  *h2Exchange
	buf *relayBuf
	tr  []h1.Field
	eof bool
}

func (b *h2Body) Next() ([]byte, error) {
	if b.eof {
		return nil, io.EOF
	}
	if b.buf == nil {
		b.buf = relayBufs.Get().(*relayBuf)
	}
	resp := b.st.resp
	n, err := resp.Body.Read(b.buf[:])
	b.st.timer.Reset(b.st.idle)
	if err == io.EOF {
		b.eof = true
		for name, values := range resp.Trailer {
			for _, v := range values {
				b.tr = append(b.tr, h1.Field{Name: []byte(name), Value: []byte(v)})
			}
		}
		if n > 0 {
			return b.buf[:n], nil
		}
	}
	return b.buf[:n], err
}

func (b *h2Body) AtHand() bool         { return false }
func (b *h2Body) Trailers() []h1.Field { return b.tr }

// relayBufs are the buffers HTTP/2 bodies are copied through (the
// HTTP/1.1 paths relay through their readers' own).
var relayBufs = sync.Pool{New: func() any { return new(relayBuf) }}

type relayBuf [32 << 10]byte

// emptyBody is the body of a request without one, for the HTTP/2 client.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// unprocessed reports whether err, from the HTTP/2 client, says the target
// never processed the request: it refused the stream, or its GOAWAY left
// the stream out (RFC 9113 §8.7), so that it may go elsewhere whatever its
// method. net/http says so only in its errors' text
// (TestHTTP2TargetNeverGetsAPOSTTwice holds it to it).
func unprocessed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "REFUSED_STREAM") ||
		strings.Contains(msg, "received Server's graceful shutdown GOAWAY") ||
		strings.Contains(msg, "received GOAWAY from server ErrCode")
}

// errTimeout is an HTTP/2 target that sent nothing for the idle timeout.
var errTimeout = &timeoutError{}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "the target sent nothing within the idle timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

// originForm is the request target as an HTTP/2 :path: the target as sent,
// but the path of an absolute-form one.
func originForm(req *h1.Request) string {
	t := originTarget(req)
	if len(t) == 0 || t[0] == '?' || t[0] == '#' {
		return "/" + string(t)
	}
	return string(t)
}

// trailerPasses reports whether a request trailer field goes on to an
// HTTP/2 target: not a hop-by-hop field, nor one that RFC 9110 §6.5.1 keeps
// out of trailers (framing, routing, request modifiers, authentication,
// content handling), which an HTTP/2 server may answer with a stream reset
// (Go's does).
func trailerPasses(name []byte) bool {
	if h1.KindOf(name).HopByHop() {
		return false
	}
	switch strings.ToLower(string(name)) {
	case "authorization", "cache-control", "connection", "content-encoding", "content-length",
		"content-range", "content-type", "expect", "host", "keep-alive", "max-forwards", "pragma",
		"proxy-authenticate", "proxy-authorization", "proxy-connection", "range", "realm", "te",
		"trailer", "transfer-encoding", "www-authenticate":
		return false
	}
	return true
}

func announcesTrailers(req *h1.Request) bool {
	return slices.Contains(req.Kinds, h1.KindTrailer)
}

// announcedTrailers returns a Trailer map holding the names the client's
// Trailer fields announced, with no values yet: the HTTP/2 client
// announces them to the target in its own trailer field.
func announcedTrailers(req *h1.Request) http.Header {
	tr := http.Header{}
	for i, f := range req.Fields {
		if req.Kinds[i] != h1.KindTrailer {
			continue
		}
		for name := range strings.SplitSeq(string(f.Value), ",") {
			name = strings.TrimSpace(name)
			if name != "" && h1.ValidName([]byte(name)) && trailerPasses([]byte(name)) {
				tr[http.CanonicalHeaderKey(name)] = nil
			}
		}
	}
	return tr
}
