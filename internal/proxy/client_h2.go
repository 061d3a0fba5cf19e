package proxy

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// The HTTP/2 client side. HTTP/2 is served by net/http's own HTTP/2 server,
// fed the connections that latch's accept loop finds speak it (the h2c
// preface, or ALPN h2 over TLS): a stream becomes an exchange like an
// HTTP/1.1 request, and goes to the target as HTTP/1.1 (target_h1.go), or
// over HTTP/2 to a group with protocol_version HTTP2 (target_h2.go).

// maxStreams is ALB's limit on concurrent streams per HTTP/2 connection.
const maxStreams = 128

// h2MaxHeaderBytes bounds the header list net/http's HTTP/2 server
// decodes for a stream (it advertises this plus 320 bytes as
// SETTINGS_MAX_HEADER_LIST_SIZE, and answers 431 itself past it; one
// string longer than that closes the connection). HPACK counts a field as
// its name and value plus 32 bytes (RFC 9113 §6.5.2), where an HTTP/1.1
// line takes 4 (": " and CRLF): a head at ALB's 64 KiB with 500 fields,
// the pseudo-fields included, comes to at most 79,648 bytes so counted.
// Within latch's limits only a cookie split into many crumbs (each 36
// bytes more than its "; " in the joined line) reaches the bound.
// net/http's default, 1 MiB, would let a stream hold a megabyte of fields
// that latch then refuses.
const h2MaxHeaderBytes = 80 << 10

// h2server is the HTTP/2 server of one listener for one idle timeout; a
// reload that changes the timeout starts another for new connections.
type h2server struct {
	srv    *http.Server
	conns  chan net.Conn
	idle   time.Duration
	closed chan struct{} // closed when the server closes its listener
	once   sync.Once
	served chan struct{} // closed when Serve has returned
}

// h2For returns the HTTP/2 server for the idle timeout, starting it the
// first time; nil once the handler is shutting down.
func (h *Handler) h2For(idle time.Duration) *h2server {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing.Load() {
		return nil // Shutdown has taken its list of servers to shut down
	}
	for _, s := range h.h2s {
		if s.idle == idle {
			return s
		}
	}
	s := &h2server{conns: make(chan net.Conn), idle: idle, closed: make(chan struct{}), served: make(chan struct{})}
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:     http.HandlerFunc(h.serveStream),
		Protocols:   &p,
		IdleTimeout: idle,
		HTTP2:       &http.HTTP2Config{MaxConcurrentStreams: maxStreams},
		// Room for every head latch accepts, so that latch's limits, not
		// the server's, decide (headSize); see h2MaxHeaderBytes.
		MaxHeaderBytes: h2MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			// Each connection has its own first-burst affinity.
			return context.WithValue(ctx, burstKey{}, &burst{})
		},
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				h.obs.Conn(ConnEvent{Kind: ConnClosed, Listener: h.name})
			}
		},
	}
	go func() {
		defer close(s.served)
		s.srv.Serve(chanListener{s})
	}()
	h.h2s = append(h.h2s, s)
	return s
}

// shutdown sends every connection a GOAWAY and waits for their streams to
// finish until ctx is done, then closes what is left, and waits for the
// server's Serve to return.
func (s *h2server) shutdown(ctx context.Context) {
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	<-s.served
}

// serveH2 hands a connection that speaks HTTP/2 to the server (which
// tells the observer when it closes), or closes it when the handler is
// shutting down. pre holds what was already read from it.
func (h *Handler) serveH2(nc net.Conn, pre []byte, idle time.Duration) {
	if len(pre) > 0 {
		nc = &replayConn{Conn: nc, pre: pre}
	}
	if s := h.h2For(idle); s != nil {
		select {
		case s.conns <- nc:
			return
		case <-s.closed:
		case <-h.stopping:
		}
	}
	nc.Close()
	h.obs.Conn(ConnEvent{Kind: ConnClosed, Listener: h.name})
}

// chanListener is the listener an HTTP/2 server sees: its connections come
// from latch's accept loop.
type chanListener struct{ s *h2server }

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.conns:
		return c, nil
	case <-l.s.closed:
		return nil, net.ErrClosed
	}
}

// Close ends Accept, which the server's Shutdown waits for.
func (l chanListener) Close() error {
	l.s.once.Do(func() { close(l.s.closed) })
	return nil
}
func (l chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// replayConn reads back the bytes latch read before it knew the
// connection speaks HTTP/2, then the connection itself.
type replayConn struct {
	net.Conn
	pre []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// stream is one HTTP/2 request: the source of its exchange's body, and the
// writer of its answer.
type stream struct {
	w    http.ResponseWriter
	r    *http.Request
	buf  *relayBuf // the request body's, from relayBufs once needed
	done bool
	tr   []h1.Field
}

var (
	_ bodySource = (*stream)(nil)
	_ writer     = (*stream)(nil)
)

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// serveStream serves one HTTP/2 request.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request) {
	rt := h.route.Load()
	s := &stream{w: w, r: r}
	x := exchanges.Get().(*exchange)
	defer exchanges.Put(x)
	defer func() {
		if s.buf != nil {
			relayBufs.Put(s.buf)
		}
	}()
	b, _ := r.Context().Value(burstKey{}).(*burst)
	*x = exchange{h: h, body: s, ctx: r.Context(), burst: b, buf: x.buf[:0], xff: x.xff[:0], trace: x.trace[:0],
		req: h1.Request{Fields: x.req.Fields[:0], Kinds: x.req.Kinds[:0]}, resp: x.resp,
		out: response{fields: x.out.fields[:0], kinds: x.out.kinds[:0], fixed: x.out.fixed[:0]}}
	x.ipPort = []byte(r.RemoteAddr)
	if r.TLS != nil {
		x.tlsVersion, x.tlsCipher, x.sni = r.TLS.Version, r.TLS.CipherSuite, r.TLS.ServerName
	}
	x.ip, x.src = peerAddr(r.RemoteAddr)
	if hosts := r.Header["Host"]; len(hosts) > 0 && (len(hosts) > 1 || hosts[0] != r.Host) {
		// RFC 9113 §8.3.1: a host field beside :authority must match it.
		s.refuse(x, http.StatusBadRequest, "the host field differs from :authority")
		return
	}
	if err := s.head(&x.req); err != nil {
		s.refuse(x, err.Status, err.Cause)
		return
	}
	if x.req.Framing == h1.NoBody {
		s.done = true
	}
	if x.begin(rt) {
		x.roundTrip()
	}
	keep, err := s.write(x)
	x.end(keep, err)
	if err == errCut {
		// Ending the handler without a clean end resets the stream.
		panic(http.ErrAbortHandler)
	}
}

// refuse answers a stream latch refuses before it begins (a malformed
// request, one over the head limits) with latch's own error.
func (s *stream) refuse(x *exchange, status int, cause string) {
	x.now = time.Now()
	x.req.Method = []byte(s.r.Method) // no body to HEAD
	x.newRecord(x.now)
	x.answerError(status, cause, false)
	x.rec.Status, x.rec.BytesOut = status, x.out.bodyLength()
	x.h.obs.Refused(&x.rec)
	s.write(x)
}

// errH2Settings refuses HTTP2-Settings in an HTTP/2 request: a
// connection-specific field (RFC 9113 §8.2.2; it belonged to the h2c
// upgrade), which net/http's server lets through, unlike Connection or
// Upgrade, which it answers with 400 itself.
var errH2Settings = &h1.Error{Status: http.StatusBadRequest, Cause: "HTTP2-Settings is connection-specific, malformed in HTTP/2"}

// errH2Length refuses a stream whose content-length its DATA frames
// cannot match: it ended with its header (RFC 9113 §8.1.1: malformed).
var errH2Length = &h1.Error{Status: http.StatusBadRequest, Cause: "Content-Length differs from the length of the body"}

// checkLength checks a stream's content-length fields as h1 checks an
// HTTP/1.1 request's: digits only, and one length. net/http's server
// ignores a length it cannot parse, which would leave latch forwarding a
// body-less request while DATA frames come; declared is the length it
// took (0 for a stream that ended with its header).
func checkLength(values []string, declared int64) *h1.Error {
	n := int64(-1)
	for _, v := range values {
		m, ok := parseLength(v)
		switch {
		case !ok:
			return h1.ErrContentLength
		case n >= 0 && m != n:
			return h1.ErrMultipleLength
		}
		n = m
	}
	if n != declared {
		return errH2Length
	}
	return nil
}

// parseLength parses a Content-Length value as h1 does: 1 to 18 digits.
func parseLength(v string) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

// head puts the HTTP/2 request in HTTP/1.1 form, as the target gets it,
// or returns the error latch answers instead: the request is malformed,
// or over the limits an HTTP/1.1 head has (headSize).
func (s *stream) head(req *h1.Request) *h1.Error {
	r := s.r
	req.Method = []byte(r.Method)
	req.Target = []byte(r.RequestURI)
	req.Proto, req.Minor = []byte("HTTP/1.1"), 1
	req.Host = []byte(r.Host)
	req.KeepAlive = true
	req.Fields = append(req.Fields, h1.Field{Name: []byte("Host"), Value: req.Host})
	req.Kinds = append(req.Kinds, h1.KindHost)
	size := newHeadSize(len(r.Method), len(r.RequestURI))
	size.field(len("Host"), len(r.Host))
	for name, values := range r.Header {
		k := h1.KindOf([]byte(name))
		if k == h1.KindCookie {
			// HTTP/2 may split cookies over several fields; HTTP/1.1
			// wants them in one (RFC 9113 §8.2.3), and so it is counted.
			values = []string{strings.Join(values, "; ")}
		}
		if k != h1.KindHost {
			for _, v := range values {
				size.field(len(name), len(v))
			}
		}
		switch k {
		case h1.KindHost:
			continue // :authority is the Host (checked against this in serveStream)
		case h1.KindHTTP2Settings:
			return errH2Settings
		case h1.KindContentLength:
			if err := checkLength(values, r.ContentLength); err != nil {
				return err
			}
		case h1.KindExpect:
			// The HTTP/2 server answers 100-continue when the body is
			// read; any other expectation is refused, as over HTTP/1.1.
			for _, v := range values {
				if !strings.EqualFold(strings.Trim(v, " \t"), "100-continue") {
					req.ExpectOther = true
				}
			}
			continue
		case h1.KindTE:
			for _, v := range values {
				if strings.Contains(strings.ToLower(v), "trailers") {
					req.WantsTrailers = true
				}
			}
			continue
		case h1.KindXForwardedFor:
			for _, v := range values {
				// Non-empty entries, as h1 counts them.
				for e := range strings.SplitSeq(v, ",") {
					if strings.Trim(e, " \t") != "" {
						req.XFFCount++
					}
				}
			}
		}
		for _, v := range values {
			req.Fields = append(req.Fields, h1.Field{Name: []byte(name), Value: []byte(v)})
			req.Kinds = append(req.Kinds, k)
		}
	}
	if len(r.Trailer) > 0 {
		// The HTTP/2 server moved the announcement into r.Trailer's
		// keys; announce them on, so that a chunked body to an HTTP/1.1
		// target, or an HTTP/2 target, says what follows it.
		names := slices.Sorted(maps.Keys(r.Trailer))
		v := strings.Join(names, ", ")
		size.field(len("Trailer"), len(v))
		req.Fields = append(req.Fields, h1.Field{Name: []byte("Trailer"), Value: []byte(v)})
		req.Kinds = append(req.Kinds, h1.KindTrailer)
	}
	if err := size.err(); err != nil {
		return err
	}
	switch {
	case r.ContentLength > 0:
		req.Framing, req.ContentLength = h1.Length, r.ContentLength
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		req.Framing = h1.Chunked
	}
	return nil
}

// headSize measures an HTTP/2 request as the HTTP/1.1 head it would be,
// so that ALB's limits on a head (h1's) give it the answer the same
// request gets over HTTP/1.1: :method and :path make the request line
// ("GET /path HTTP/1.1"), :authority a Host field, every other field a
// line "name: value" (split cookies one line, joined); :scheme has no
// place in an HTTP/1.1 head and is not counted.
type headSize struct {
	line, head, fields, longest int
}

func newHeadSize(method, path int) headSize {
	line := method + 1 + path + len(" HTTP/1.1")
	return headSize{line: line, head: line + 2 + 2} // its CRLF, and the head's last
}

func (s *headSize) field(name, value int) {
	n := name + 2 + value
	s.head += n + 2
	s.fields++
	s.longest = max(s.longest, n)
}

// err returns the error an HTTP/1.1 head of this size gets, checked in
// h1's order: the head, the request line, a field, the count.
func (s *headSize) err() *h1.Error {
	switch {
	case s.head > h1.MaxRequestHead:
		return h1.ErrHeadTooLarge
	case s.line > h1.MaxRequestLine:
		return h1.ErrLineTooLong
	case s.longest > h1.MaxField:
		return h1.ErrFieldTooLong
	case s.fields > h1.MaxFields:
		return h1.ErrTooManyFields
	}
	return nil
}

// Next reads the request body: what the client's DATA frames carried.
func (s *stream) Next() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	if s.buf == nil {
		s.buf = relayBufs.Get().(*relayBuf)
	}
	n, err := s.r.Body.Read(s.buf[:])
	if err == io.EOF {
		s.done = true
		for name, values := range s.r.Trailer {
			for _, v := range values {
				s.tr = append(s.tr, h1.Field{Name: []byte(name), Value: []byte(v)})
			}
		}
		if n > 0 {
			return s.buf[:n], nil
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, h1.ErrBodyTooShort
	}
	return s.buf[:n], nil
}

func (s *stream) Done() bool           { return s.done }
func (s *stream) Trailers() []h1.Field { return s.tr }
func (s *stream) AtHand() bool         { return false }
func (s *stream) Touch(int64)          {}

// Continue does nothing: the HTTP/2 server answers Expect: 100-continue
// when the body is first read.
func (s *stream) Continue() error { return nil }

func (s *stream) Interrupt() { http.NewResponseController(s.w).SetReadDeadline(aLongTimeAgo) }

// write writes x.out to the stream: its header (the session's fields
// added), its body as it arrives, then its trailers. A body the target cut
// short returns errCut, for the caller to reset the stream.
func (s *stream) write(x *exchange) (bool, error) {
	r, hdr := &x.out, s.w.Header()
	if r.status == 0 {
		return false, nil // the client went away
	}
	hasType := false
	for i, f := range r.fields {
		switch k := r.kinds[i]; {
		case k == h1.KindContentLength, k == h1.KindTrailer, k.HopByHop():
			continue
		}
		// Canonical names: net/http's server looks for "Content-Type" and
		// "Date", and would add its own beside a target's lower-case ones.
		name := http.CanonicalHeaderKey(string(f.Name))
		hasType = hasType || name == "Content-Type"
		hdr[name] = append(hdr[name], string(f.Value))
	}
	if !hasType {
		hdr["Content-Type"] = nil // no type guessed from the body: none was sent
	}
	if r.sticky {
		x.writeSticky(responseHeader(hdr))
	}
	// A 304's Content-Length describes a body it does not carry, which Go's
	// HTTP/2 client (and others) read as a body cut short: left out.
	switch {
	case r.body == nil && !r.noBody:
		hdr["Content-Length"] = []string{strconv.Itoa(len(r.fixed))}
	case r.length >= 0 && (!r.noBody || r.hasLength && r.status != http.StatusNoContent && r.status != http.StatusNotModified):
		hdr["Content-Length"] = []string{strconv.FormatInt(r.length, 10)}
	}
	s.w.WriteHeader(r.status)
	switch {
	case r.noBody:
		return true, nil
	case r.body == nil:
		n, err := s.w.Write(r.fixed)
		x.rec.BytesOut += int64(n)
		if err != nil {
			return false, errClientGone
		}
		return true, nil
	}
	rc := http.NewResponseController(s.w)
	for {
		if !r.body.AtHand() {
			rc.Flush()
		}
		p, err := r.body.Next()
		if len(p) > 0 {
			x.rec.BytesOut += int64(len(p))
			if _, werr := s.w.Write(p); werr != nil {
				return false, errClientGone
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			x.failure = err // the target's: it failed mid-response
			return false, errCut
		}
	}
	for _, f := range r.body.Trailers() {
		name := http.TrailerPrefix + string(f.Name)
		hdr[name] = append(hdr[name], string(f.Value))
	}
	return true, nil
}

// responseHeader adds the session's fields to an HTTP/2 response's header.
type responseHeader http.Header

func (h responseHeader) WriteField(name, value []byte) {
	k := http.CanonicalHeaderKey(string(name))
	h[k] = append(h[k], string(value))
}
