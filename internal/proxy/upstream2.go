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
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// A target group with protocol_version HTTP2 is spoken to in cleartext
// HTTP/2 with prior knowledge, through net/http's HTTP/2 client: one
// multiplexed connection per target carries all its requests. Clients of
// either protocol may use such a group (ALB answers 464 to HTTP/1.1
// requests for one; latch translates them).

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

// bodyReader reads the client's request body for the HTTP/2 client. That
// client reads in a goroutine of its own, which may still be reading when
// the response has ended (a target that answers before the upload is in):
// detach stops it before the exchange, and the client's buffers, move on.
type bodyReader struct {
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

func (b *bodyReader) Read(p []byte) (int, error) {
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
	return n, nil
}

func (b *bodyReader) Close() error { return nil }

// detach ends the HTTP/2 client's reading: it waits for a Read in
// progress, which interrupt unblocks if the body is not all read (the
// client connection is then not kept, see respondHTTP's bodyDone), and
// makes every later Read fail.
func (b *bodyReader) detach(interrupt func()) {
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

// roundTripH2 sends the request to t over HTTP/2 and relays the response.
func (x *exchange) roundTripH2(rt *Route, t *target.Target, issued int64) (bool, error) {
	req := &x.req
	sink := &headerSink{h: http.Header{"User-Agent": nil}} // no Go default User-Agent
	x.forwardFields(sink, t)
	if sink.host == "" {
		sink.host = string(req.Host)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := x.cl.watchContext(cancel)
	defer stop()
	timer := time.AfterFunc(rt.IdleTimeout, cancel)
	defer timer.Stop()

	out := &http.Request{
		Method:     string(req.Method),
		URL:        &url.URL{Scheme: "http", Host: t.ID, Opaque: originForm(req)},
		Host:       sink.host,
		Header:     sink.h,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
	}
	var body *bodyReader
	if req.Framing != h1.NoBody {
		if req.Expect100 && !x.cl.bodyAtHand() {
			if err := x.cl.continue100(); err != nil {
				return false, errClientGone
			}
		}
		body = &bodyReader{x: x}
		defer body.detach(x.cl.interruptRead)
		if req.Framing == h1.Chunked || announcesTrailers(req) {
			// Trailers may follow the body: a Trailer map, empty but not
			// nil, makes the HTTP/2 client send them after it (announced
			// or not; RFC 9113 §8.1 needs no announcement).
			body.trailer = announcedTrailers(req)
			out.Trailer = body.trailer
		}
		out.Body = body
		out.ContentLength = -1
		if req.Framing == h1.Length {
			out.ContentLength = req.ContentLength
		}
	}
	resp, err := x.be.H2.RoundTrip(out.WithContext(ctx))
	if err != nil {
		var de *upstream.DialError
		var he *h1.Error
		switch {
		case errors.As(err, &de):
			return false, de
		case errors.As(err, &he):
			return false, he
		case ctx.Err() != nil:
			return false, errTimeout
		}
		return false, err
	}
	defer resp.Body.Close()
	t.Record(resp.StatusCode)
	timer.Reset(rt.IdleTimeout)
	resp.Body = &idleBody{ReadCloser: resp.Body, timer: timer, idle: rt.IdleTimeout}
	// Whether the request body is all read is known only to body while
	// the HTTP/2 client may still read it.
	bodyDone := body == nil || body.done.Load()
	return x.cl.respondHTTP(x, rt, t, resp, issued, bodyDone)
}

// relayBufs are the buffers HTTP/2 bodies are copied through (the
// HTTP/1.1 paths relay through their readers' own).
var relayBufs = sync.Pool{New: func() any { return new(relayBuf) }}

type relayBuf [32 << 10]byte

// errTimeout is an HTTP/2 target that sent nothing for the idle timeout.
var errTimeout = &timeoutError{}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "the target sent nothing within the idle timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

// idleBody pushes the idle timer back on every read.
type idleBody struct {
	io.ReadCloser
	timer *time.Timer
	idle  time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.timer.Reset(b.idle)
	return n, err
}

// originForm is the request target as an HTTP/2 :path: the target as sent,
// but the path of an absolute-form one.
func originForm(req *h1.Request) string {
	t := originTarget(req)
	if len(t) == 0 || t[0] == '?' || t[0] == '#' {
		return "/" + string(t)
	}
	return string(t)
}

// respondHTTP writes an HTTP/2 target's response to an HTTP/1.1 client.
func (c *clientConn) respondHTTP(x *exchange, rt *Route, t *target.Target, resp *http.Response, issued int64, bodyDone bool) (bool, error) {
	req, w := &x.req, c.wr
	keep := x.mayKeep(bodyDone)
	noBody := string(req.Method) == "HEAD" || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	out := h1.Length
	switch {
	case noBody:
		out = h1.NoBody
	case (resp.ContentLength < 0 || len(resp.Trailer) > 0) && req.Minor == 1:
		// Chunked also when trailers are announced: only chunks carry them.
		out = h1.Chunked
	case resp.ContentLength < 0:
		out, keep = h1.UntilClose, false
	}
	now := x.h.now()
	c.touch(now.UnixNano(), rt.IdleTimeout)
	w.WriteString("HTTP/1.1 ")
	w.WriteInt(int64(resp.StatusCode))
	w.WriteByte(' ')
	w.WriteString(statusText(resp.StatusCode))
	w.WriteString("\r\n")
	for name, values := range resp.Header {
		if h1.KindOf([]byte(name)).HopByHop() || name == "Content-Length" {
			continue
		}
		for _, v := range values {
			w.WriteString(name)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if out == h1.Chunked && len(resp.Trailer) > 0 {
		w.WriteString("Trailer: ")
		sep := ""
		for name := range resp.Trailer {
			w.WriteString(sep)
			w.WriteString(name)
			sep = ", "
		}
		w.WriteString("\r\n")
	}
	c.writeStickyCookies(t, issued)
	switch {
	case out == h1.Length || noBody && resp.ContentLength >= 0 && resp.StatusCode != http.StatusNoContent:
		w.WriteString("Content-Length: ")
		w.WriteInt(max(resp.ContentLength, 0))
		w.WriteString("\r\n")
	case out == h1.Chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !keep {
		w.WriteString("Connection: close\r\n")
	} else if req.Minor == 0 {
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
	if !noBody {
		bp := relayBufs.Get().(*relayBuf)
		defer relayBufs.Put(bp)
		buf := bp[:]
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if out == h1.Chunked {
					w.WriteChunk(buf[:n])
				} else {
					w.Write(buf[:n])
				}
				// HTTP/2 hands the body over as it comes: pass it on.
				if w.Flush() != nil {
					return false, errClientGone
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				x.h.log.Warn("target failed mid-response", "group", x.be.Group.Name, "target", t.ID, "err", err)
				w.Flush()
				return false, errCut
			}
		}
		if out == h1.Chunked {
			var tr []h1.Field
			for name, values := range resp.Trailer {
				for _, v := range values {
					tr = append(tr, h1.Field{Name: []byte(name), Value: []byte(v)})
				}
			}
			w.WriteLastChunk(tr)
		}
	}
	if err := w.Flush(); err != nil {
		return false, errClientGone
	}
	return keep, nil
}

// respondHTTP writes an HTTP/2 target's response to an HTTP/2 client.
func (s *stream) respondHTTP(x *exchange, rt *Route, t *target.Target, resp *http.Response, issued int64, _ bool) (bool, error) {
	hdr := s.w.Header()
	for name, values := range resp.Header {
		if h1.KindOf([]byte(name)).HopByHop() || name == "Trailer" {
			continue
		}
		hdr[name] = append(hdr[name], values...)
	}
	if _, ok := resp.Header["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // none guessed from the body
	}
	s.addCookies(x, t, issued)
	s.w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(s.w)
	bp := relayBufs.Get().(*relayBuf)
	defer relayBufs.Put(bp)
	buf := bp[:]
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := s.w.Write(buf[:n]); werr != nil {
				return false, errClientGone
			}
			rc.Flush()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			x.h.log.Warn("target failed mid-response", "group", x.be.Group.Name, "target", t.ID, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	for name, values := range resp.Trailer {
		hdr[http.TrailerPrefix+name] = append(hdr[http.TrailerPrefix+name], values...)
	}
	return true, nil
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
