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
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/upstream"
)

// HTTP/2 is served by net/http's own HTTP/2 server, fed the connections
// that latch's accept loop finds speak it (the h2c preface, or ALPN h2
// over TLS): a stream becomes an exchange like an HTTP/1.1 request, and
// goes to the target as HTTP/1.1, or over HTTP/2 to a group with
// protocol_version HTTP2 (upstream2.go).

// maxStreams is ALB's limit on concurrent streams per HTTP/2 connection.
const maxStreams = 128

// h2server is the HTTP/2 server of one listener for one idle timeout; a
// reload that changes the timeout starts another for new connections.
type h2server struct {
	srv    *http.Server
	conns  chan net.Conn
	idle   time.Duration
	closed chan struct{} // closed when the server closes its listener
	once   sync.Once
}

// h2For returns the HTTP/2 server for the idle timeout, starting it the
// first time.
func (h *Handler) h2For(idle time.Duration) *h2server {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.h2s {
		if s.idle == idle {
			return s
		}
	}
	s := &h2server{conns: make(chan net.Conn), idle: idle, closed: make(chan struct{})}
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:     http.HandlerFunc(h.serveStream),
		Protocols:   &p,
		IdleTimeout: idle,
		HTTP2:       &http.HTTP2Config{MaxConcurrentStreams: maxStreams},
		ErrorLog:    slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			// Each connection has its own first-burst affinity.
			return context.WithValue(ctx, burstKey{}, &burst{})
		},
	}
	go s.srv.Serve(chanListener{s})
	h.h2s = append(h.h2s, s)
	return s
}

// serveH2 hands a connection that speaks HTTP/2 to the server. pre holds
// what was already read from it.
func (h *Handler) serveH2(nc net.Conn, pre []byte, idle time.Duration) {
	if len(pre) > 0 {
		nc = &replayConn{Conn: nc, pre: pre}
	}
	s := h.h2For(idle)
	select {
	case s.conns <- nc:
	case <-s.closed:
		nc.Close()
	case <-h.stopping:
		nc.Close()
	}
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

// burst is an HTTP/2 connection's first-burst affinity: a browser's first
// page load sends many requests at once on one connection before it holds
// a sticky cookie, which would otherwise land on different targets (and
// get different cookies). Every request of the connection without a live
// session goes to the target the first one picked, as the same session.
type burst struct {
	mu     sync.Mutex
	group  *target.Group
	t      *target.Target
	issued int64
}

type burstKey struct{}

// pick returns the connection's target for a request without a session,
// picking it (under the lock, so that concurrent streams agree) the first
// time, or again when it can no longer serve.
func (b *burst) pick(be *Backend, view *target.View, now time.Time) (*target.Target, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.t != nil && b.group == be.Group {
		if t, ok := view.Lookup(b.t.ID); ok && t == b.t {
			return t, b.issued
		}
	}
	b.group, b.t, b.issued = be.Group, view.Picker.Pick(nil), now.Unix()
	return b.t, b.issued
}

// repin moves the connection's session from old, which refused a
// connection, to alt, and returns the session's issue time there.
func (b *burst) repin(be *Backend, old, alt *target.Target, now time.Time) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.t == old || b.t == nil {
		b.group, b.t, b.issued = be.Group, alt, now.Unix()
	}
	if b.t == alt {
		return b.issued
	}
	return 0
}

// stream is one HTTP/2 request: the client of its exchange, and the source
// of its body.
type stream struct {
	w    http.ResponseWriter
	r    *http.Request
	buf  *relayBuf // the request body's, from relayBufs once needed
	done bool
	tr   []h1.Field
}

var _ client = (*stream)(nil)

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
	if hosts := r.Header["Host"]; len(hosts) > 0 && (len(hosts) > 1 || hosts[0] != r.Host) {
		// RFC 9113 §8.3.1: a host field beside :authority must match it.
		s.writeError(http.StatusBadRequest, "the host field differs from :authority", false)
		return
	}
	b, _ := r.Context().Value(burstKey{}).(*burst)
	*x = exchange{h: h, cl: s, body: s, burst: b, buf: x.buf[:0], xff: x.xff[:0],
		req: h1.Request{Fields: x.req.Fields[:0], Kinds: x.req.Kinds[:0]}, resp: x.resp}
	x.ipPort = []byte(r.RemoteAddr)
	x.ip, x.src = peerAddr(r.RemoteAddr)
	s.head(&x.req)
	if x.req.Framing == h1.NoBody {
		s.done = true
	}
	x.serve(rt)
}

// head puts the HTTP/2 request in HTTP/1.1 form, as the target gets it.
func (s *stream) head(req *h1.Request) {
	r := s.r
	req.Method = []byte(r.Method)
	req.Target = []byte(r.RequestURI)
	req.Proto, req.Minor = []byte("HTTP/1.1"), 1
	req.Host = []byte(r.Host)
	req.KeepAlive = true
	req.Fields = append(req.Fields, h1.Field{Name: []byte("Host"), Value: req.Host})
	req.Kinds = append(req.Kinds, h1.KindHost)
	for name, values := range r.Header {
		k := h1.KindOf([]byte(name))
		switch k {
		case h1.KindHost:
			continue // :authority is the Host (checked against this in serveStream)
		case h1.KindExpect:
			continue // the HTTP/2 server answers it when the body is read
		case h1.KindCookie:
			// HTTP/2 may split cookies over several fields; HTTP/1.1
			// wants them in one (RFC 9113 §8.2.3).
			values = []string{strings.Join(values, "; ")}
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
		req.Fields = append(req.Fields, h1.Field{Name: []byte("Trailer"), Value: []byte(strings.Join(names, ", "))})
		req.Kinds = append(req.Kinds, h1.KindTrailer)
	}
	switch {
	case r.ContentLength > 0:
		req.Framing, req.ContentLength = h1.Length, r.ContentLength
	case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
		req.Framing = h1.Chunked
	}
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

func (s *stream) Done() bool                 { return s.done }
func (s *stream) Trailers() []h1.Field       { return s.tr }
func (s *stream) touch(int64, time.Duration) {}
func (s *stream) bodyAtHand() bool           { return false }
func (s *stream) continue100() error         { return nil }

func (s *stream) writeReply(status int, contentType string, location []byte, body string, keep bool) {
	hdr := s.w.Header()
	hdr.Set("Server", "latch")
	hdr.Set("Content-Type", contentType)
	if location != nil {
		hdr.Set("Location", string(location))
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	s.w.WriteHeader(status)
	io.WriteString(s.w, body)
}

func (s *stream) writeError(status int, cause string, keep bool) {
	body := strconv.Itoa(status) + " " + statusText(status) + ": " + cause + "\n"
	s.writeReply(status, "text/plain; charset=utf-8", nil, body, keep)
}

// watch cuts the target connection short when the client resets the
// stream, so that a waiting exchange ends.
func (s *stream) watch(uc *upstream.Conn) func() bool {
	return context.AfterFunc(s.r.Context(), func() { uc.Conn.SetDeadline(aLongTimeAgo) })
}

func (s *stream) watchContext(cancel func()) func() bool {
	return context.AfterFunc(s.r.Context(), cancel)
}

func (s *stream) gone() bool { return s.r.Context().Err() != nil }

func (s *stream) interruptRead() { http.NewResponseController(s.w).SetReadDeadline(aLongTimeAgo) }

// addCookies adds the fields that pin the session to the response header.
func (s *stream) addCookies(x *exchange, t *target.Target, issued int64) {
	hdr := s.w.Header()
	x.buf = x.appendCookies(x.buf[:0], t, issued)
	for lines := string(x.buf); lines != ""; {
		var line string
		line, lines, _ = strings.Cut(lines, "\r\n")
		name, value, _ := strings.Cut(line, ": ")
		name = http.CanonicalHeaderKey(name)
		hdr[name] = append(hdr[name], value)
	}
}

func (s *stream) respond(x *exchange, rt *Route, t *target.Target, uc *upstream.Conn, issued int64) (bool, error) {
	resp, hdr := &x.resp, s.w.Header()
	hasType := false
	for i, f := range resp.Fields {
		switch k := resp.Kinds[i]; {
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
	s.addCookies(x, t, issued)
	// A 304's Content-Length describes a body it does not carry, which Go's
	// HTTP/2 client (and others) read as a body cut short: left out.
	if resp.Framing == h1.Length || resp.HasLength && resp.Status != http.StatusNoContent && resp.Status != http.StatusNotModified {
		hdr["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	s.w.WriteHeader(resp.Status)

	x.rbody.Reset(uc.R, resp.Framing, resp.ContentLength, true)
	rc := http.NewResponseController(s.w)
	for !x.rbody.Done() {
		if uc.R.Buffered() == 0 {
			rc.Flush()
			uc.SetIdleDeadline(x.h.now().UnixNano(), rt.IdleTimeout)
		}
		p, err := x.rbody.Next()
		if len(p) > 0 {
			if _, werr := s.w.Write(p); werr != nil {
				uc.Close()
				return false, errClientGone
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			uc.Close()
			x.h.log.Warn("target failed mid-response", "group", x.be.Group.Name, "target", t.ID, "err", err)
			// Ending the handler without a clean end resets the stream.
			panic(http.ErrAbortHandler)
		}
	}
	for _, f := range x.rbody.Trailers() {
		hdr[http.TrailerPrefix+string(f.Name)] = append(hdr[http.TrailerPrefix+string(f.Name)], string(f.Value))
	}
	x.putOrClose(uc, x.h.now().UnixNano())
	return true, nil
}

// tunnel is never asked of a stream: an HTTP/2 request cannot ask to
// switch protocols, so a 101 is refused before it gets here.
func (s *stream) tunnel(x *exchange, rt *Route, t *target.Target, uc *upstream.Conn, issued int64) {
	uc.Close()
}
