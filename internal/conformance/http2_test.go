package conformance_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/latch-lb/latch/internal/testnet"
)

// TestHTTP2 checks HTTP/2 through latch to HTTP/1.1 targets, over cleartext
// HTTP/2 with prior knowledge (h2c, routing.http2.h2c.enabled) and over TLS
// with ALPN h2 (an HTTPS listener): that HTTP/2 is spoken where offered and
// HTTP/1.1 still where it is not; that many streams share a connection,
// each answered with its own response and, before any cookie, pinned to
// one target as one session (first-burst affinity); that the data-path
// rules of HTTP/1.1 hold (streaming both ways, 8 MiB bodies, trailers,
// HEAD, 204 and 304, cookies, the request target and Host verbatim,
// X-Forwarded-*); that each stream is translated to a proper HTTP/1.1
// request (a body of unknown length goes chunked, a Host field of the
// client's is not doubled); that a reset stream aborts the target's
// request; that latch's own errors are proper HTTP/2 responses; and that a
// reload keeps a connection working and a shutdown sends GOAWAY and lets
// the stream in flight finish.
//
// WebSocket over HTTP/2 (RFC 8441) is not offered: the "settings" subtest
// checks that latch does not advertise it.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	for _, m := range h2Modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name string
				f    func(*testing.T, h2Mode)
			}{
				{"negotiation", testH2Negotiation},
				{"settings", testH2Settings},
				{"concurrent streams", testH2ConcurrentStreams},
				{"streaming response", testH2StreamingResponse},
				{"streaming request", testH2StreamingRequest},
				{"large bodies", testH2LargeBodies},
				{"trailers", testH2Trailers},
				{"no content", testH2NoContent},
				{"cookies", testH2Cookies},
				{"set-cookie", testH2SetCookie},
				{"forwarded request", testH2ForwardedRequest},
				{"host field", testH2HostField},
				{"response fields", testH2ResponseFields},
				{"malformed requests", testH2Malformed},
				{"client reset", testH2ClientReset},
				{"latch errors", testH2LatchErrors},
				{"reload", testH2Reload},
				{"shutdown", testH2Shutdown},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.f(t, m)
				})
			}
		})
	}
}

// echoOf reads an echo target's answer (see startEchoTarget) out of a
// response that came through net/http.
func echoOf(t *testing.T, r *fetched) echo {
	t.Helper()
	if r.Header.Get("X-Echo-Line") == "" {
		t.Fatalf("the request did not reach the target; latch answered %s over %s: %q", r.Status, r.Proto, abridge(string(r.body), 300))
	}
	var e echo
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("not an echo from the target: %v: %q", err, abridge(string(r.body), 300))
	}
	return e
}

// testH2Negotiation: an HTTP/2 client gets HTTP/2, and a client that
// offers only HTTP/1.1 gets HTTP/1.1 on the same listener; the target gets
// HTTP/1.1 either way. On TLS, ALPN picks h2 when offered, http/1.1
// otherwise, and routing.http2.enabled false keeps to HTTP/1.1.
func testH2Negotiation(t *testing.T, m h2Mode) {
	target := startEchoTarget(t)
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})

	r := l.client(t, 2).get(t, l.url("/negotiate"))
	wantH2(t, r)
	if e := echoOf(t, r); r.StatusCode != 200 || e.Line != "GET /negotiate HTTP/1.1" {
		t.Errorf("HTTP/2: got %s, the target got %q; want 200 and an HTTP/1.1 request", r.Status, e.Line)
	}
	if m.tls && r.TLS.NegotiatedProtocol != "h2" {
		t.Errorf("HTTP/2 client: ALPN chose %q, want h2", r.TLS.NegotiatedProtocol)
	}
	session(t, r.Response) // latch's cookie comes over HTTP/2 too

	r1 := l.client(t, 1).get(t, l.url("/negotiate"))
	if r1.ProtoMajor != 1 || r1.ProtoMinor != 1 || r1.StatusCode != 200 {
		t.Errorf("HTTP/1.1-only client: got %s over %s, want 200 over HTTP/1.1", r1.Status, r1.Proto)
	}
	echoOf(t, r1)
	session(t, r1.Response)

	if !m.tls {
		return
	}
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"h2", "http/1.1"}, "h2"},
		{[]string{"http/1.1", "h2"}, "h2"}, // the server's preference, as ALB's
		{[]string{"http/1.1"}, "http/1.1"},
	} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", l.addr,
			&tls.Config{RootCAs: l.ca.Pool, ServerName: h2ServerName, NextProtos: tc.offer})
		if err != nil {
			t.Errorf("ALPN %q: %v", tc.offer, err)
			continue
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != tc.want {
			t.Errorf("ALPN offer %q: latch chose %q, want %q", tc.offer, got, tc.want)
		}
		c.Close()
	}

	// routing.http2.enabled false: a client offering both gets HTTP/1.1.
	off := startH2Latch(t, m, h2Options{targets: []string{target.addr},
		listenerAttrs: map[string]string{"routing.http2.enabled": "false"}})
	var both http.Protocols
	both.SetHTTP1(true)
	both.SetHTTP2(true)
	r2 := off.clientWith(t, &both).get(t, off.url("/negotiate"))
	if r2.ProtoMajor != 1 || r2.StatusCode != 200 {
		t.Errorf("routing.http2.enabled false: got %s over %s, want 200 over HTTP/1.1", r2.Status, r2.Proto)
	}
}

// testH2Settings: latch's SETTINGS allow ALB's 128 concurrent streams, and
// do not advertise extended CONNECT (RFC 8441), which latch refuses: a
// browser told it may would send its WebSockets that way and fail.
func testH2Settings(t *testing.T, m h2Mode) {
	l := startH2Latch(t, m, h2Options{targets: []string{startEchoTarget(t).addr}})
	h := dialRawH2(t, l)
	if got, ok := h.settings[0x3]; !ok || got != 128 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS: got %d (sent: %t), want 128", got, ok)
	}
	if h.settings[0x8] == 1 {
		t.Errorf("SETTINGS_ENABLE_CONNECT_PROTOCOL is 1, but latch refuses CONNECT: WebSockets over HTTP/2 would fail")
	}
}

// testH2ConcurrentStreams: 100 streams at once on one connection, held at
// the targets until all 100 have arrived (so they are truly concurrent),
// each answered with its own response; none carries a cookie, so all land
// on one target as one session (first-burst affinity), whose AWSALB
// cookie every response carries.
func testH2ConcurrentStreams(t *testing.T, m h2Mode) {
	const n = 100
	var arrived atomic.Int64
	all := newGate()
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if arrived.Add(1) == n {
				all.open()
			}
			if !all.wait() {
				http.Error(w, fmt.Sprintf("only %d of %d streams arrived together", arrived.Load(), n), http.StatusInternalServerError)
				return
			}
			w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
			fmt.Fprintf(w, "target=%s uri=%s id=%s", name, r.URL.RequestURI(), r.Header.Get("X-Request-Id"))
		}
	}
	names := map[string]string{} // target id -> name
	var ids []string
	for _, name := range []string{"t0", "t1", "t2"} {
		id := namedTarget(t, name, handler(name))
		names[id] = name
		ids = append(ids, id)
	}
	t.Cleanup(all.open)
	l := startH2Latch(t, m, h2Options{targets: ids})
	c := l.client(t, 2)

	type result struct {
		i    int
		resp *http.Response
		body string
		err  error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			req, _ := http.NewRequest("GET", l.url(fmt.Sprintf("/item/%d?i=%d", i, i)), nil)
			req.Header.Set("X-Request-Id", fmt.Sprintf("req-%d", i))
			resp, err := c.Do(req)
			if err != nil {
				results <- result{i: i, err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			results <- result{i, resp, string(body), err}
		}()
	}
	targets, sessions := map[string]int{}, map[string]int{}
	for range n {
		res := await(t, results, "the responses of 100 concurrent streams")
		if res.err != nil {
			t.Fatalf("stream %d: %v", res.i, res.err)
		}
		resp := res.resp
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("stream %d: got %s over %s: %q", res.i, resp.Status, resp.Proto, res.body)
		}
		name := resp.Header.Get("X-Target")
		if want := fmt.Sprintf("target=%s uri=/item/%d?i=%d id=req-%d", name, res.i, res.i, res.i); res.body != want {
			t.Errorf("stream %d got another stream's response: %q, want %q", res.i, res.body, want)
		}
		if got := resp.Header.Get("X-Request-Id"); got != fmt.Sprintf("req-%d", res.i) {
			t.Errorf("stream %d: X-Request-Id %q in the response", res.i, got)
		}
		s := session(t, resp)
		if names[s.Target] != name {
			t.Errorf("stream %d: served by %s, but its AWSALB names %s (%s)", res.i, name, names[s.Target], s.Target)
		}
		targets[name]++
		sessions[fmt.Sprintf("%s/gen %d/issued %d", names[s.Target], s.Generation, s.Issued)]++
	}
	if len(targets) != 1 || len(sessions) != 1 {
		t.Errorf("100 concurrent first requests on one connection went to targets %v as sessions %v; want one target, one session", targets, sessions)
	}
	wantOneConn(t, c)
}

// testH2StreamingResponse: a response part reaches the HTTP/2 client while
// the target still holds back the next, whatever the target's framing.
func testH2StreamingResponse(t *testing.T, m h2Mode) {
	const first, second = streamedFirst, streamedSecond
	for _, tc := range streamingResponseCases {
		t.Run(tc.name, func(t *testing.T) {
			target, release := gatedTarget(t, tc)
			l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
			resp, err := l.client(t, 2).Get(l.url("/stream"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("response over %s, want HTTP/2", resp.Proto)
			}
			got := make(chan string, 1)
			go func() {
				buf := make([]byte, len(first))
				n, _ := io.ReadFull(resp.Body, buf)
				got <- string(buf[:n])
			}()
			if part := await(t, got, "the first part while the target holds back the second"); part != first {
				t.Fatalf("first part: got %q, want %q", part, first)
			}
			release.open()
			rest := make(chan string, 1)
			go func() {
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					b = append(b, " ["+err.Error()+"]"...)
				}
				rest <- string(b)
			}()
			if got := await(t, rest, "the rest of the body"); got != second {
				t.Errorf("rest of the body: got %q, want %q", got, second)
			}
		})
	}
}

// testH2StreamingRequest: an upload's first part reaches the target before
// the client sends the rest, with and without a declared length; a known
// length reaches the target as Content-Length, an unknown one as chunked.
func testH2StreamingRequest(t *testing.T, m h2Mode) {
	const first, second = "first-part;", "second-part"
	target, firsts := uploadTarget(t, len(first))
	l := startH2Latch(t, m, h2Options{targets: []string{target}})
	c := l.client(t, 2)
	for _, tc := range []struct {
		name   string
		length int64
	}{
		{"content-length", int64(len(first + second))},
		{"unknown length", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
			req, _ := http.NewRequest("POST", l.url("/upload"), pr)
			req.ContentLength = tc.length
			type result struct {
				r   *http.Response
				b   string
				err error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := c.Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				done <- result{resp, string(b), err}
			}()
			within(t, "the client to send the first part", func() { pw.Write([]byte(first)) })
			got := await(t, firsts, "the target to get the first part of the upload")
			if got.part != first {
				t.Fatalf("the target got first %q, want %q", got.part, first)
			}
			if tc.length >= 0 && (got.cl != tc.length || len(got.te) != 0) {
				t.Errorf("the target got Content-Length %d, Transfer-Encoding %q; want Content-Length %d", got.cl, got.te, tc.length)
			}
			if tc.length < 0 && !slices.Equal(got.te, []string{"chunked"}) {
				t.Errorf("the target got Content-Length %d, Transfer-Encoding %q; want chunked", got.cl, got.te)
			}
			within(t, "the client to send the rest", func() {
				pw.Write([]byte(second))
				pw.Close()
			})
			res := await(t, done, "the response to the upload")
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.r.ProtoMajor != 2 || res.r.StatusCode != 200 || res.b != first+second {
				t.Errorf("got %s over %s, %q; want 200 over HTTP/2, %q", res.r.Status, res.r.Proto, res.b, first+second)
			}
		})
	}
	wantOneConn(t, c)
}

// testH2LargeBodies: 8 MiB both ways arrive whole (hash compared): an
// upload with Content-Length reaches the target with it, one of unknown
// length chunked; a download keeps its Content-Length, or has none.
func testH2LargeBodies(t *testing.T, m h2Mode) {
	data := bigBody()
	want := sha(data)
	echoT := startEchoTarget(t)
	up := startH2Latch(t, m, h2Options{targets: []string{echoT.addr}})
	c := up.client(t, 2)

	t.Run("upload with length", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", up.url("/blob"), bytes.NewReader(data))
		r := c.do(t, req)
		wantH2(t, r)
		e := echoOf(t, r)
		if e.Framing != "length" || e.get("Content-Length") != fmt.Sprint(len(data)) || e.get("Transfer-Encoding") != "" {
			t.Errorf("the target got framing %s, Content-Length %q, Transfer-Encoding %q; want Content-Length %d",
				e.Framing, e.get("Content-Length"), e.get("Transfer-Encoding"), len(data))
		}
		if e.BodyLen != len(data) || e.BodySHA != want {
			t.Errorf("the target got %d bytes, sha256 %s; want %d, %s", e.BodyLen, e.BodySHA, len(data), want)
		}
	})
	t.Run("upload of unknown length", func(t *testing.T) {
		req, _ := http.NewRequest("POST", up.url("/blob"), unknownLength{bytes.NewReader(data)})
		req.ContentLength = -1
		r := c.do(t, req)
		wantH2(t, r)
		e := echoOf(t, r)
		if e.Framing != "chunked" || e.get("Content-Length") != "" {
			t.Errorf("the target got framing %s, Content-Length %q, Transfer-Encoding %q; want chunked",
				e.Framing, e.get("Content-Length"), e.get("Transfer-Encoding"))
		}
		if e.BodyLen != len(data) || e.BodySHA != want {
			t.Errorf("the target got %d bytes, sha256 %s; want %d, %s", e.BodyLen, e.BodySHA, len(data), want)
		}
	})

	down := startH2Latch(t, m, h2Options{targets: []string{startHTTPTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data)
			return
		}
		// No length: the first flush makes the response chunked.
		for p := data; len(p) > 0; p = p[min(len(p), 256<<10):] {
			w.Write(p[:min(len(p), 256<<10)])
			w.(http.Flusher).Flush()
		}
	}))}})
	dc := down.client(t, 2)
	for _, tc := range []struct {
		path   string
		length int64
	}{{"/length", int64(len(data))}, {"/chunked", -1}} {
		t.Run("download "+strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			r := dc.get(t, down.url(tc.path))
			wantH2(t, r)
			if r.StatusCode != 200 || r.ContentLength != tc.length {
				t.Errorf("got %s with Content-Length %d, want 200 with %d", r.Status, r.ContentLength, tc.length)
			}
			if len(r.body) != len(data) || sha(r.body) != want {
				t.Errorf("got %d bytes, sha256 %s; want %d, %s", len(r.body), sha(r.body), len(data), want)
			}
		})
	}
	wantOneConn(t, c)
	wantOneConn(t, dc)
}

// testH2Trailers: gRPC's way: the client sends TE: trailers, a body of
// unknown length and request trailers; the target gets TE: trailers and the
// trailers as trailers (chunked), and its response trailers grpc-status and
// grpc-message reach the client as trailers.
func testH2Trailers(t *testing.T, m h2Mode) {
	got := make(chan *message, 1)
	const answer = "\x00\x00\x00\x00\x05hello"
	target := startResponder(t, func(_ *targetConn, req *message) string {
		got <- req
		msg := "checksum%20" + fieldList(req.Trailer, "X-Request-Checksum")
		return "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status, grpc-message\r\n\r\n" +
			chunk(answer) + "0\r\ngrpc-status: 0\r\ngrpc-message: " + msg + "\r\n\r\n"
	})
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
	const call = "\x00\x00\x00\x00\x05world"
	req, _ := http.NewRequest("POST", l.url("/pkg.Greeter/SayHello"), unknownLength{strings.NewReader(call)})
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Trailer = http.Header{"X-Request-Checksum": {"c0ffee"}}
	r := l.client(t, 2).do(t, req)
	wantH2(t, r)

	tr := await(t, got, "the request at the target")
	if toks := fieldTokens(tr.Header, "TE"); !slices.Equal(toks, []string{"trailers"}) {
		t.Errorf("TE at the target: got %q, want trailers", tr.get("TE"))
	}
	if tr.Framing != "chunked" || string(tr.Body) != call {
		t.Errorf("the target got %q framed %s, want %q chunked", tr.Body, tr.Framing, call)
	}
	if got := fieldList(tr.Trailer, "X-Request-Checksum"); got != "c0ffee" {
		t.Errorf("request trailer X-Request-Checksum at the target: got %q (trailer section %v), want c0ffee", got, tr.Trailer)
	}
	if got := tr.get("Trailer"); !asciiEqualFold(got, "X-Request-Checksum") {
		t.Errorf("Trailer at the target: got %q, want the client's announcement X-Request-Checksum", got)
	}
	if tr.has("X-Request-Checksum") {
		t.Errorf("the request trailer was moved into the header section: %q", tr.get("X-Request-Checksum"))
	}
	if ct := tr.get("Content-Type"); ct != "application/grpc" {
		t.Errorf("Content-Type at the target: %q", ct)
	}

	if r.StatusCode != 200 || string(r.body) != answer {
		t.Errorf("got %s %q, want 200 %q", r.Status, r.body, answer)
	}
	if got := r.Trailer.Values("Grpc-Status"); !slices.Equal(got, []string{"0"}) {
		t.Errorf("trailer grpc-status: got %q (all trailers %v), want 0", got, r.Trailer)
	}
	if got := r.Trailer.Values("Grpc-Message"); !slices.Equal(got, []string{"checksum%20c0ffee"}) {
		t.Errorf("trailer grpc-message: got %q (all trailers %v), want checksum%%20c0ffee", got, r.Trailer)
	}
	if r.Header.Get("Grpc-Status") != "" || r.Header.Get("Grpc-Message") != "" {
		t.Errorf("the trailers were moved into the header section: %v", r.Header)
	}
}

// testH2NoContent: HEAD, 204 and 304 over HTTP/2 end with no body, keep
// their fields (HEAD its Content-Length), and leave the connection serving.
func testH2NoContent(t *testing.T, m h2Mode) {
	target := startResponder(t, func(_ *targetConn, req *message) string {
		switch req.StartLine {
		case "HEAD /head HTTP/1.1":
			return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\nETag: \"v1\"\r\n\r\n"
		case "GET /no-content HTTP/1.1":
			return "HTTP/1.1 204 No Content\r\nX-Kind: no-content\r\n\r\n"
		case "GET /not-modified HTTP/1.1":
			return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\n\r\n"
		case "GET /not-modified-with-length HTTP/1.1":
			return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\nContent-Length: 1234\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
	c := l.client(t, 2)

	head, _ := http.NewRequest("HEAD", l.url("/head"), nil)
	r := c.do(t, head)
	wantH2(t, r)
	if r.StatusCode != 200 || len(r.body) != 0 || r.ContentLength != 1234 || r.Header.Get("ETag") != `"v1"` {
		t.Errorf("HEAD: got %s, Content-Length %d, ETag %q, body %q; want 200, 1234, \"v1\", none",
			r.Status, r.ContentLength, r.Header.Get("ETag"), r.body)
	}

	r = c.get(t, l.url("/no-content"))
	wantH2(t, r)
	if r.StatusCode != 204 || len(r.body) != 0 || r.Header.Get("X-Kind") != "no-content" || len(r.Header.Values("Content-Length")) != 0 {
		t.Errorf("204: got %s, X-Kind %q, Content-Length %q, body %q; want 204, no-content, none, none",
			r.Status, r.Header.Get("X-Kind"), r.Header.Values("Content-Length"), r.body)
	}

	// A 304 may carry the Content-Length a 200 would have (RFC 9110
	// §8.6), and over HTTP/2 a response that has no content may carry a
	// non-zero content-length (RFC 9113 §8.1.1); net/http's HTTP/2 client
	// reads that as a body cut short, though it takes it over HTTP/1.1.
	h1 := l.client(t, 1)
	for _, path := range []string{"/not-modified", "/not-modified-with-length"} {
		req, _ := http.NewRequest("GET", l.url(path), nil)
		req.Header.Set("If-None-Match", `"v1"`)
		if r := h1.do(t, req); r.StatusCode != 304 || len(r.body) != 0 {
			t.Fatalf("%s over HTTP/1.1: got %s %q, want 304 without a body", path, r.Status, r.body)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Errorf("%s: %s over %s with Content-Length %q: reading its (empty) body: %v; over HTTP/1.1 the same response reads fine",
				path, resp.Status, resp.Proto, resp.Header.Get("Content-Length"), err)
			continue
		}
		if resp.ProtoMajor != 2 || resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("ETag") != `"v1"` || resp.Header.Get("Cache-Control") != "max-age=60" {
			t.Errorf("%s: got %s over %s, ETag %q, Cache-Control %q, body %q; want 304 over HTTP/2, \"v1\", max-age=60, none",
				path, resp.Status, resp.Proto, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"), body)
		}
	}

	if r = c.get(t, l.url("/after")); r.StatusCode != 200 || string(r.body) != "ok" {
		t.Errorf("the request after them: got %s %q, want 200 ok", r.Status, r.body)
	}
	wantOneConn(t, c)
}

// testH2Cookies: a Cookie sent as several HTTP/2 fields reaches the HTTP/1.1
// target as one Cookie line joined with "; " (RFC 9113 §8.2.3), and an
// AWSALB among split cookie fields pins the session on a new connection.
func testH2Cookies(t *testing.T, m h2Mode) {
	targets := map[string]*echoTarget{}
	var ids []string
	for range 3 {
		et := startEchoTarget(t)
		targets[et.addr] = et
		ids = append(ids, et.addr)
	}
	l := startH2Latch(t, m, h2Options{targets: ids})

	req, _ := http.NewRequest("GET", l.url("/cookies"), nil)
	// net/http's HTTP/2 client also splits each value at "; ", so these go
	// as three cookie fields.
	req.Header["Cookie"] = []string{"a=1; b=2", "c=3"}
	r := l.client(t, 2).do(t, req)
	wantH2(t, r)
	if got := fieldValues(echoOf(t, r).Header, "Cookie"); !slices.Equal(got, []string{"a=1; b=2; c=3"}) {
		t.Errorf("Cookie lines at the target: got %q, want one: \"a=1; b=2; c=3\"", got)
	}
	s := session(t, r.Response)
	var awsalb string
	for _, ck := range r.Cookies() {
		if ck.Name == "AWSALB" {
			awsalb = ck.Value
		}
	}

	// A new connection (no first-burst target yet): the session cookie,
	// sent between two others, decides.
	c2 := l.client(t, 2)
	before := map[string]int64{}
	for id, et := range targets {
		before[id] = et.requests.Load()
	}
	for i := range 3 {
		req, _ := http.NewRequest("GET", l.url(fmt.Sprintf("/pinned/%d", i)), nil)
		req.Header["Cookie"] = []string{"x=1", "AWSALB=" + awsalb, "y=2"}
		r := c2.do(t, req)
		wantH2(t, r)
		if got := fieldValues(echoOf(t, r).Header, "Cookie"); len(got) != 1 || !strings.HasPrefix(got[0], "x=1; ") || !strings.HasSuffix(got[0], "; y=2") {
			t.Errorf("request %d: Cookie lines at the target: %q, want one, \"x=1; ...; y=2\"", i, got)
		}
		if got := session(t, r.Response); got.Target != s.Target || got.Issued != s.Issued {
			t.Errorf("request %d: the session moved from %s (issued %d) to %s (issued %d)", i, s.Target, s.Issued, got.Target, got.Issued)
		}
	}
	for id, et := range targets {
		want := before[id]
		if id == s.Target {
			want += 3
		}
		if got := et.requests.Load(); got != want {
			t.Errorf("target %s served %d of the pinned requests, want %d (the session's target is %s)", id, got-before[id], want-before[id], s.Target)
		}
	}
}

// testH2SetCookie: every Set-Cookie of the target reaches the HTTP/2
// client, unchanged and in order, next to latch's AWSALB and AWSALBCORS.
func testH2SetCookie(t *testing.T, m h2Mode) {
	cookies := []string{
		"session=abc123; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/; HttpOnly",
		"prefs=a,b,c; Path=/; Max-Age=3600",
		"theme=dark; Domain=example.com; Secure; SameSite=Lax",
	}
	target := setCookieTarget(t, cookies)
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
	r := l.client(t, 2).get(t, l.url("/"))
	wantH2(t, r)
	var fromTarget []string
	var awsalb, cors int
	for _, v := range r.Header.Values("Set-Cookie") {
		switch {
		case strings.HasPrefix(v, "AWSALB="):
			awsalb++
		case strings.HasPrefix(v, "AWSALBCORS="):
			cors++
		default:
			fromTarget = append(fromTarget, v)
		}
	}
	if !slices.Equal(fromTarget, cookies) {
		t.Errorf("the target's Set-Cookie fields: got\n%q\nwant\n%q", fromTarget, cookies)
	}
	if awsalb != 1 || cors != 1 {
		t.Errorf("got %d AWSALB and %d AWSALBCORS, want one each; all: %q", awsalb, cors, r.Header.Values("Set-Cookie"))
	}
}

// testH2ForwardedRequest: :authority becomes the target's Host, :path
// (query and percent-encoding included) arrives verbatim as the request
// target, and X-Forwarded-For, -Proto and -Port are set, each once.
func testH2ForwardedRequest(t *testing.T, m h2Mode) {
	target := startEchoTarget(t)
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
	const path = "/api/v1/a%2Fb/c%20d/%E2%82%AC;p=1/%7Euser?q=%41%2B&r=x+y&e=&s=%2f&u=%E2%82%AC"
	req, _ := http.NewRequest("GET", l.url(path), nil)
	req.Host = "app.example.test:8443"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header["X-Multi"] = []string{"one", "two"}
	r := l.client(t, 2).do(t, req)
	wantH2(t, r)
	e := echoOf(t, r)
	if want := "GET " + path + " HTTP/1.1"; e.Line != want {
		t.Errorf("request line at the target:\n got %q\nwant %q", e.Line, want)
	}
	for _, want := range []field{
		{"Host", "app.example.test:8443"},
		{"X-Forwarded-For", "203.0.113.7, 127.0.0.1"},
		{"X-Forwarded-Proto", l.scheme()},
		{"X-Forwarded-Port", l.port},
	} {
		if got := fieldValues(e.Header, want.Name); !slices.Equal(got, []string{want.Value}) {
			t.Errorf("%s lines at the target: got %q, want one: %q", want.Name, got, want.Value)
		}
	}
	if got := fieldList(e.Header, "X-Multi"); got != "one, two" {
		t.Errorf("X-Multi at the target: got %q, want \"one, two\"", got)
	}
	for _, f := range e.Header {
		if strings.HasPrefix(f.Name, ":") {
			t.Errorf("a pseudo-header reached the target: %s: %s", f.Name, f.Value)
		}
	}
}

// testH2HostField: RFC 9113 §8.3.1 lets a request carry a Host field with,
// or instead of, :authority. Either way the HTTP/1.1 target must get one
// Host line (RFC 9112 §3.2: a server must reject a request with two).
func testH2HostField(t *testing.T, m h2Mode) {
	target := startEchoTarget(t)
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
	h := dialRawH2(t, l)
	for i, tc := range []struct {
		name   string
		fields []string
	}{
		{"host equal to :authority", []string{":authority", "app.example.test", "host", "app.example.test"}},
		{"host without :authority", []string{"host", "app.example.test"}},
		// RFC 9113 §8.3.1: a server SHOULD treat this as malformed. A
		// target that gets both names would pick one, and maybe not the one
		// latch's host-header rules matched.
		{"host other than :authority", []string{":authority", "app.example.test", "host", "other.example.test"}},
	} {
		stream := uint32(2*i + 1)
		fields := append([]string{":method", "GET", ":scheme", l.scheme(), ":path", "/host"}, tc.fields...)
		h.request(stream, true, fields...)
		r := h.awaitStream(stream, "the response to "+tc.name)
		if i == 2 && (r.wasRst || r.status == 400) {
			continue // refused: as it should be
		}
		if r.wasRst || r.status != 200 {
			t.Errorf("%s: got status %d (reset: %t, code %d), want 200", tc.name, r.status, r.wasRst, r.reset)
			continue
		}
		var e echo
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("%s: not an echo: %v: %q", tc.name, err, r.body)
		}
		if got := fieldValues(e.Header, "Host"); !slices.Equal(got, []string{"app.example.test"}) {
			t.Errorf("%s: Host lines at the target: got %q, want one: \"app.example.test\"", tc.name, got)
		}
	}
}

// testH2ResponseFields: the target's response fields reach the HTTP/2
// client as they are, as over HTTP/1.1: none added (a Content-Type
// guessed from the body), none doubled (a field name in lower case, as
// HTTP/2 itself spells them).
func testH2ResponseFields(t *testing.T, m h2Mode) {
	const date = "Tue, 01 Jan 2030 00:00:00 GMT"
	target := startResponder(t, func(_ *targetConn, req *message) string {
		switch req.StartLine {
		case "GET /untyped HTTP/1.1":
			return "HTTP/1.1 200 OK\r\nDate: " + date + "\r\nContent-Length: 14\r\n\r\n<html>x</html>"
		case "GET /lower-case HTTP/1.1":
			return "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: " + date + "\r\ncontent-length: 2\r\nx-lower: yes\r\n\r\n{}"
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	})
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
	h2, h1 := l.client(t, 2), l.client(t, 1)
	for _, tc := range []struct {
		path   string
		fields map[string][]string // nil: none
	}{
		{"/untyped", map[string][]string{"Content-Type": nil, "Date": {date}}},
		{"/lower-case", map[string][]string{"Content-Type": {"application/json"}, "Date": {date}, "X-Lower": {"yes"}}},
	} {
		for _, c := range []*h2Client{h1, h2} {
			r := c.get(t, l.url(tc.path))
			if r.StatusCode != 200 {
				t.Errorf("%s over %s: %s", tc.path, r.Proto, r.Status)
				continue
			}
			for name, want := range tc.fields {
				if got := r.Header.Values(name); !slices.Equal(got, want) {
					t.Errorf("%s over %s: %s: got %q, want %q (as the target sent it)", tc.path, r.Proto, name, got, want)
				}
			}
		}
	}
}

// testH2Malformed: requests HTTP/2 forbids (connection-specific fields,
// HTTP2-Settings among them, TE other than trailers: RFC 9113 §8.2.2; a
// content-length the body cannot match, §8.1.1) are refused, a stream
// error or a 400, and never reach the target; the connection goes on
// serving.
func testH2Malformed(t *testing.T, m h2Mode) {
	target := startEchoTarget(t)
	l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
	h := dialRawH2(t, l)
	base := []string{":method", "GET", ":scheme", l.scheme(), ":authority", "app.example.test", ":path", "/malformed"}
	stream := uint32(1)
	for _, bad := range [][2]string{
		{"connection", "keep-alive"},
		{"keep-alive", "timeout=5"},
		{"transfer-encoding", "chunked"},
		{"upgrade", "websocket"},
		{"upgrade", "h2c"},
		{"http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"},
		{"proxy-connection", "keep-alive"},
		// A stream that ends with its header has no body to match a
		// length; one that cannot be parsed matches none.
		{"content-length", "5"},
		{"content-length", "abc"},
		// What HTTP/1.1 refuses or drops that HTTP/2 cannot carry: a
		// name not a lower-case token, NUL or LF in a value.
		{"x y", "1"},
		{"X-Upper", "1"},
		{"x-nul", "a\x00b"},
		{"x-lf", "a\nb"},
		{"te", "gzip"},
	} {
		h.request(stream, true, append(slices.Clone(base), bad[0], bad[1])...)
		r := h.awaitStream(stream, "the answer to a request with "+bad[0])
		if !(r.wasRst && r.reset == errCodeProtocol) && r.status != 400 {
			t.Errorf("a request with %s: %s: got status %d (reset: %t, code %d), want a PROTOCOL_ERROR stream error or 400",
				bad[0], bad[1], r.status, r.wasRst, r.reset)
		}
		stream += 2
	}
	h.request(stream, true, base...)
	if r := h.awaitStream(stream, "the answer to a well-formed request"); r.status != 200 {
		t.Errorf("a well-formed request after the malformed ones: status %d (reset: %t, code %d), want 200", r.status, r.wasRst, r.reset)
	}
	if n := target.requests.Load(); n != 1 {
		t.Errorf("the target got %d requests, want 1 (only the well-formed one)", n)
	}
}

// testH2ClientReset: a client that resets a stream (cancels the request)
// while the target holds its response, before the head, in the middle of
// the body, or in the middle of the upload, gets the target's request
// aborted (the target's connection closed under it), and latch goes on
// serving the connection's other streams.
func testH2ClientReset(t *testing.T, m h2Mode) {
	arrived := make(chan string, 1)
	aborted := make(chan string, 1)
	target := startHTTPTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hold-head":
			arrived <- r.URL.Path
		case "/hold-body":
			w.WriteHeader(200)
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			arrived <- r.URL.Path
		case "/hold-upload":
			buf := make([]byte, 5)
			io.ReadFull(r.Body, buf)
			arrived <- r.URL.Path
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				aborted <- r.URL.Path
				return
			}
		default:
			io.WriteString(w, "ok "+r.URL.Path)
			return
		}
		if holdOrAbort(r) {
			aborted <- r.URL.Path
		}
	}))
	l := startH2Latch(t, m, h2Options{targets: []string{target}})
	c := l.client(t, 2)
	if r := c.get(t, l.url("/warm")); r.StatusCode != 200 {
		t.Fatalf("first request: %s", r.Status)
	}
	for _, path := range []string{"/hold-head", "/hold-body", "/hold-upload"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var body io.Reader
			method := "GET"
			if path == "/hold-upload" {
				pr, pw := io.Pipe()
				t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
				go pw.Write([]byte("part1"))
				body, method = pr, "POST"
			}
			req, _ := http.NewRequestWithContext(ctx, method, l.url(path), body)
			errs := make(chan error, 1)
			firstPart := make(chan string, 1)
			go func() {
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				buf := make([]byte, 5)
				n, _ := io.ReadFull(resp.Body, buf)
				firstPart <- string(buf[:n])
				_, err = io.Copy(io.Discard, resp.Body)
				errs <- err
			}()
			if got := await(t, arrived, "the request at the target"); got != path {
				t.Fatalf("the target got %s, want %s", got, path)
			}
			if path == "/hold-body" {
				if got := await(t, firstPart, "the first part of the body"); got != "first" {
					t.Fatalf("first part: %q", got)
				}
			}
			// Another stream is served while this one is held.
			if r := c.get(t, l.url("/during")); r.StatusCode != 200 || string(r.body) != "ok /during" {
				t.Errorf("a stream next to the held one: got %s %q", r.Status, r.body)
			}
			cancel()
			if got := await(t, aborted, "the target's request to be aborted after the client reset its stream"); got != path {
				t.Errorf("aborted: %s, want %s", got, path)
			}
			if err := await(t, errs, "the client's request to end"); !errors.Is(err, context.Canceled) {
				t.Errorf("the cancelled request ended with %v, want context.Canceled", err)
			}
			if r := c.get(t, l.url("/after")); r.StatusCode != 200 || string(r.body) != "ok /after" {
				t.Errorf("a stream after the reset: got %s %q", r.Status, r.body)
			}
		})
	}
	wantOneConn(t, c)
}

// testH2LatchErrors: latch's own answers (503 with no registered target,
// 502 when the target refuses the connection or closes it without an
// answer) come as proper HTTP/2 responses, the same as HTTP/1.1 gets, with
// their text body (none to HEAD), and the connection goes on serving.
func testH2LatchErrors(t *testing.T, m h2Mode) {
	refusing := testnet.RefusingAddr(t)
	closing := startRawTarget(t, func(c *targetConn) { readRequest(c.br) })
	for _, tc := range []struct {
		name    string
		targets []string
		status  int
	}{
		{"no targets", nil, 503},
		{"target refuses", []string{refusing}, 502},
		{"target closes", []string{closing.addr}, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startH2Latch(t, m, h2Options{targets: tc.targets})
			// The same request over HTTP/1.1, for reference.
			ref := l.client(t, 1).get(t, l.url("/"))
			prefix := fmt.Sprintf("%d %s: ", tc.status, http.StatusText(tc.status))
			if ref.StatusCode != tc.status || !strings.HasPrefix(string(ref.body), prefix) || !strings.HasSuffix(string(ref.body), "\n") {
				t.Fatalf("over HTTP/1.1: got %s %q, want %d and a text body starting %q", ref.Status, ref.body, tc.status, prefix)
			}
			c := l.client(t, 2)
			for _, method := range []string{"GET", "HEAD", "GET"} {
				req, _ := http.NewRequest(method, l.url("/"), nil)
				r := c.do(t, req)
				wantH2(t, r)
				wantBody := string(ref.body)
				if method == "HEAD" {
					wantBody = ""
				}
				if r.StatusCode != tc.status || string(r.body) != wantBody {
					t.Errorf("%s: got %s %q; want %d %q (as over HTTP/1.1)", method, r.Status, r.body, tc.status, wantBody)
				}
				if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || r.Header.Get("Server") != "latch" {
					t.Errorf("%s: Content-Type %q, Server %q; want text/plain; charset=utf-8, latch", method, ct, r.Header.Get("Server"))
				}
				if r.ContentLength != int64(len(ref.body)) {
					t.Errorf("%s: Content-Length %d, want %d", method, r.ContentLength, len(ref.body))
				}
			}
			wantOneConn(t, c)
		})
	}
}

// testH2Reload: a reload while an HTTP/2 connection is open (a stream in
// flight on it) keeps the connection: the stream finishes, and the next
// streams follow the new configuration (new targets, new listener
// settings); a new connection after it speaks HTTP/2 too.
func testH2Reload(t *testing.T, m h2Mode) {
	held := make(chan string, 1)
	release := newGate()
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				held <- name
				if !release.wait() {
					return
				}
			}
			fmt.Fprintf(w, "%s xff=%q", name, r.Header.Get("X-Forwarded-For"))
		}
	}
	a, b := namedTarget(t, "A", handler("A")), namedTarget(t, "B", handler("B"))
	t.Cleanup(release.open)
	before := h2Options{targets: []string{a}, groupAttrs: map[string]string{"deregistration_delay.timeout_seconds": "30"}}
	l := startH2Latch(t, m, before)
	c := l.client(t, 2)
	if r := c.get(t, l.url("/before")); r.ProtoMajor != 2 || string(r.body) != `A xff="127.0.0.1"` {
		t.Fatalf("before the reload: got %s over %s, %q", r.Status, r.Proto, r.body)
	}
	inflight := make(chan *fetched, 1)
	go func() {
		req, _ := http.NewRequest("GET", l.url("/hold"), nil)
		resp, err := c.Do(req)
		if err != nil {
			inflight <- &fetched{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		inflight <- &fetched{Response: resp, body: body}
	}()
	await(t, held, "the held stream at the target")

	l.reload(t, h2Options{targets: []string{b},
		groupAttrs: map[string]string{"deregistration_delay.timeout_seconds": "30"},
		listenerAttrs: map[string]string{
			"routing.http.xff_header_processing.mode": "remove",
			"idle_timeout.timeout_seconds":            "30",
		}})
	r := c.get(t, l.url("/after"))
	wantH2(t, r)
	if string(r.body) != `B xff=""` {
		t.Errorf("after the reload, on the same connection: got %q, want the new target B without X-Forwarded-For", r.body)
	}
	release.open()
	if r := await(t, inflight, "the stream in flight across the reload"); r.Response == nil || r.StatusCode != 200 || string(r.body) != `A xff="127.0.0.1"` {
		t.Errorf("the stream in flight across the reload: got %q", r.body)
	}
	wantOneConn(t, c)
	if r := l.client(t, 2).get(t, l.url("/new")); r.ProtoMajor != 2 || string(r.body) != `B xff=""` {
		t.Errorf("a new connection after the reload: got %s over %s, %q", r.Status, r.Proto, r.body)
	}
}

// testH2Shutdown: a shutdown sends GOAWAY on an HTTP/2 connection while a
// stream is in flight, waits for that stream to finish, then closes the
// connection and returns.
func testH2Shutdown(t *testing.T, m h2Mode) {
	arrived := make(chan struct{}, 1)
	release := newGate()
	target := startHTTPTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		if !release.wait() {
			return
		}
		io.WriteString(w, "finished")
	}))
	t.Cleanup(release.open)
	l := startH2Latch(t, m, h2Options{targets: []string{target}})
	h := dialRawH2(t, l)
	h.request(1, true, ":method", "GET", ":scheme", l.scheme(), ":authority", "app.example.test", ":path", "/slow")
	await(t, arrived, "the stream at the target")

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		stopped <- l.b.Shutdown(ctx)
	}()
	for {
		f := h.next("GOAWAY after the shutdown began")
		if f.stream == 1 {
			t.Fatalf("stream 1 got %v before the target answered", f)
		}
		if f.typ == frameGoAway {
			if last := binary.BigEndian.Uint32(f.payload) & (1<<31 - 1); last < 1 || f.errCode() != errCodeNo {
				t.Errorf("GOAWAY: last stream %d, error code %d; want at least 1 (the stream in flight), NO_ERROR", last, f.errCode())
			}
			break
		}
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while a stream was in flight", err)
	default:
	}
	release.open()
	r := h.awaitStream(1, "the in-flight stream's response after GOAWAY")
	if r.wasRst || r.status != 200 || string(r.body) != "finished" {
		t.Errorf("the stream in flight: got status %d, %q (reset: %t, code %d); want 200 \"finished\"", r.status, r.body, r.wasRst, r.reset)
	}
	h.closedByPeer("latch to close the connection after its last stream")
	if err := await(t, stopped, "Shutdown to return"); err != nil {
		t.Errorf("Shutdown: %v, want nil (every stream finished)", err)
	}
}
