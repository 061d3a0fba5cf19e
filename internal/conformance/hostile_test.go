package conformance_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile input refused alike on every protocol: the h2c upgrade never
// forwarded, a TLS handshake that never comes cut at the idle timeout, and
// each of latch's refusals the same over HTTP/1.1 (plain and TLS) and
// HTTP/2 (h2c and TLS).

// adminRule is a listener rule that keeps /admin from the target: latch
// answers 403 itself. A tunnel past latch would reach it.
const adminRule = `    rules:
      - priority: 10
        conditions: [ { path_pattern: ["/admin*"] } ]
        action:
          type: fixed-response
          fixed_response: { status_code: "403", content_type: text/plain, message_body: "forbidden by latch" }
`

// h2cSmuggled is an HTTP/1.1 request that asks for the h2c upgrade, as
// h2csmuggler --upgrade-only sends it.
const h2cSmuggled = "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n"

// lenientTarget is a target that takes any upgrade: it answers 101 with
// Upgrade: h2c to every request with an Upgrade field (and to every request
// for /always, asked or not), then speaks HTTP/2 on the connection,
// answering each stream "secret", as a server with h2c enabled and no
// check would. It keeps every request head it read, and every HTTP/2 field
// block that came through a tunnel.
type lenientTarget struct {
	*rawTarget
	mu        sync.Mutex
	heads     []*message
	tunnelled [][]byte
}

func startLenientTarget(t *testing.T) *lenientTarget {
	lt := &lenientTarget{}
	lt.rawTarget = startRawTarget(t, func(c *targetConn) {
		for {
			m, err := readRequest(c.br)
			if err != nil {
				return
			}
			lt.mu.Lock()
			lt.heads = append(lt.heads, m)
			lt.mu.Unlock()
			if !m.has("Upgrade") && !strings.HasPrefix(m.StartLine, "GET /always ") {
				if c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") != nil {
					return
				}
				continue
			}
			if c.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n") != nil {
				return
			}
			lt.serveH2(c)
			return
		}
	})
	return lt
}

// serveH2 speaks just enough HTTP/2 after a 101: its SETTINGS, then an
// answer "secret" to the upgraded request (stream 1) and to each stream
// the client opens.
func (lt *lenientTarget) serveH2(c *targetConn) {
	c.Write(h2FrameBytes(frameSettings, 0, 0, nil))
	answer := func(stream uint32) {
		c.Write(h2FrameBytes(frameHeaders, flagEndHeaders, stream, []byte{0x88})) // :status 200
		c.Write(h2FrameBytes(frameData, flagEndStream, stream, []byte("secret")))
	}
	answer(1)
	preface := make([]byte, 24)
	if _, err := io.ReadFull(c.br, preface); err != nil {
		return
	}
	for {
		f, err := readH2Frame(c.br)
		if err != nil {
			return
		}
		if f.typ == frameHeaders {
			lt.mu.Lock()
			lt.tunnelled = append(lt.tunnelled, f.block())
			lt.mu.Unlock()
			answer(f.stream)
		}
	}
}

// check fails the test if the target ever saw h2c or HTTP2-Settings in a
// request, or a request through a tunnel.
func (lt *lenientTarget) check(t *testing.T) {
	t.Helper()
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for _, m := range lt.heads {
		for _, f := range m.Header {
			if strings.Contains(asciiLower(f.Name+": "+f.Value), "h2c") || asciiEqualFold(f.Name, "HTTP2-Settings") {
				t.Errorf("the target got %q in\n%s", f.Name+": "+f.Value, m)
			}
		}
	}
	for _, b := range lt.tunnelled {
		t.Errorf("an HTTP/2 request reached the target through a tunnel: field block %q", b)
	}
}

func h2FrameBytes(typ, flags byte, stream uint32, payload []byte) []byte {
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags,
		byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
	return append(b, payload...)
}

// h1Conn is an HTTP/1.1 client connection to an h2Latch, on which the test
// writes and reads bytes itself: plain TCP in the h2c mode, TLS with ALPN
// http/1.1 in the tls mode.
type h1Conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialH1(t *testing.T, l *h2Latch) *h1Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	if l.mode.tls {
		tc := tls.Client(c, &tls.Config{RootCAs: l.ca.Pool, ServerName: h2ServerName, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		c = tc
	}
	return &h1Conn{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10)}
}

func (c *h1Conn) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("writing to latch: %v", err)
	}
}

func (c *h1Conn) next(method string) *message {
	c.t.Helper()
	m, err := readResponse(c.br, method)
	if err != nil {
		c.t.Fatalf("reading the response to %s: %v (after %v)", method, err, m)
	}
	return m
}

// TestH2CUpgradeNotForwarded: h2csmuggler's --upgrade-only attack through
// latch. The client asks for the h2c upgrade on a request for /, which the
// rules let through, meaning to speak HTTP/2 to the target in the tunnel
// and reach /admin, which a rule answers 403. latch drops h2c from Upgrade
// (RFC 9113 §3.1 deprecates the upgrade; RFC 9110 §7.8 lets a server
// ignore Upgrade), so the request goes as an ordinary one and the lenient
// target answers it in HTTP/1.1; a target that switches anyway, or switches
// to h2c when asked for another protocol, gets latch's 502. The target
// never sees h2c, nor a request through a tunnel.
func TestH2CUpgradeNotForwarded(t *testing.T) {
	t.Parallel()
	for _, m := range h2Modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			target := startLenientTarget(t)
			l := startH2Latch(t, m, h2Options{targets: []string{target.addr}, rules: adminRule})
			for _, tc := range []struct {
				name, path, fields string
				want               int
				upgrade            string // the Upgrade the target must see; "" for none
			}{
				{"h2csmuggler --upgrade-only", "/", h2cSmuggled, 200, ""},
				{"upper case, with a version", "/", "Upgrade: H2C/1\r\nConnection: upgrade\r\n", 200, ""},
				{"h2c beside another protocol", "/", "Upgrade: h2c, foo\r\nConnection: upgrade\r\n", 502, "foo"},
				{"a target that switches unasked", "/always", h2cSmuggled, 502, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					target.mu.Lock()
					seen := len(target.heads)
					target.mu.Unlock()
					c := dialH1(t, l)
					c.write("GET " + tc.path + " HTTP/1.1\r\nHost: app.example.test\r\n" + tc.fields + "\r\n")
					resp := c.next("GET")
					if resp.status() == 101 {
						// What h2csmuggler does next: HTTP/2 in the tunnel,
						// for the path the rule keeps.
						c.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
						c.c.Write(h2FrameBytes(frameSettings, 0, 0, nil))
						var block []byte
						for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "app.example.test"}, {":path", "/admin"}} {
							block = hpackString(hpackString(append(block, 0), kv[0]), kv[1])
						}
						c.c.Write(h2FrameBytes(frameHeaders, flagEndHeaders|flagEndStream, 3, block))
						for {
							f, err := readH2Frame(c.br)
							if err != nil {
								break
							}
							if f.typ == frameData && f.stream == 3 {
								t.Errorf("/admin answered %q through the tunnel", f.payload)
								break
							}
						}
						t.Fatalf("latch relayed the target's 101 to an h2c upgrade:\n%s", resp)
					}
					if resp.status() != tc.want {
						t.Errorf("got\n%s\nwant %d", resp, tc.want)
					}
					if tc.want == 200 && (string(resp.Body) != "ok" || resp.version() != "HTTP/1.1") {
						t.Errorf("got\n%s\nwant the target's HTTP/1.1 answer ok", resp)
					}
					target.mu.Lock()
					heads := target.heads[seen:]
					target.mu.Unlock()
					if len(heads) != 1 {
						t.Fatalf("the target got %d requests, want 1", len(heads))
					}
					h := heads[0]
					if got := h.get("Upgrade"); got != tc.upgrade {
						t.Errorf("Upgrade at the target: got %q, want %q", got, tc.upgrade)
					}
					upgrading := hasToken(h.Header, "Connection", "upgrade")
					if upgrading != (tc.upgrade != "") || hasToken(h.Header, "Connection", "http2-settings") {
						t.Errorf("Connection at the target: got %q, want the upgrade option only with an upgrade, and never HTTP2-Settings",
							h.get("Connection"))
					}
				})
			}
			// The rule itself answers /admin, over HTTP/1.1 and HTTP/2.
			c := dialH1(t, l)
			c.write("GET /admin HTTP/1.1\r\nHost: app.example.test\r\n" + h2cSmuggled + "\r\n")
			if resp := c.next("GET"); resp.status() != 403 {
				t.Errorf("GET /admin over HTTP/1.1: got\n%s\nwant the rule's 403", resp)
			}
			if r := l.client(t, 2).get(t, l.url("/admin")); r.StatusCode != 403 || r.ProtoMajor != 2 {
				t.Errorf("GET /admin over HTTP/2: got %s over %s, want the rule's 403", r.Status, r.Proto)
			}
			target.check(t)
		})
	}
}

// TestTLSHandshakeIdleTimeout: a TLS client that connects and sends
// nothing, or half a ClientHello, is cut at the listener's idle timeout
// (0.3 s here) when that is shorter than the 10 s a handshake may take; a
// client that completes its handshake is served.
func TestTLSHandshakeIdleTimeout(t *testing.T) {
	t.Parallel()
	target := startEchoTarget(t)
	l := startH2Latch(t, h2Mode{name: "tls", tls: true}, h2Options{targets: []string{target.addr},
		listenerAttrs: map[string]string{"idle_timeout.timeout_seconds": "0.3"}})
	hello := clientHello(t)
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"nothing", nil},
		{"half a ClientHello", hello[:len(hello)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.DialTimeout("tcp", l.addr, waitLimit)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			// Well before the 10 s handshake limit, and generous beside
			// the 0.3 s idle timeout.
			const bound = 5 * time.Second
			c.SetReadDeadline(time.Now().Add(bound))
			n, err := c.Read(make([]byte, 512))
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("the connection was still open after %v", bound)
			case n > 0:
				t.Errorf("latch sent %d bytes to a client that never finished its ClientHello", n)
			case err == nil:
				t.Errorf("a read of 0 bytes without an error")
			}
		})
	}
	t.Run("complete handshake", func(t *testing.T) {
		t.Parallel()
		if r := l.client(t, 1).get(t, l.url("/")); r.StatusCode != 200 {
			t.Errorf("got %s, want 200", r.Status)
		}
	})
}

// clientHello returns the first flight of a TLS client: its ClientHello
// record.
func clientHello(t *testing.T) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		defer client.Close()
		tls.Client(client, &tls.Config{ServerName: h2ServerName}).Handshake()
	}()
	server.SetReadDeadline(time.Now().Add(waitLimit))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatalf("reading a ClientHello: %v", err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatalf("reading a ClientHello: %v", err)
	}
	return append(hdr, body...)
}

// hostileCase is a request latch refuses, or one just within a limit,
// rendered as raw HTTP/1.1 and as an HTTP/2 request of net/http's client.
type hostileCase struct {
	name   string
	method string
	path   string
	fields []field // after Host (:authority) and User-Agent
	want   int
	// absent lists fields the target must not see in a request it got.
	absent []string
}

func (hc hostileCase) h1() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: latch-hostile\r\n", hc.method, hc.path, hostileHost)
	for _, f := range hc.fields {
		fmt.Fprintf(&b, "%s: %s\r\n", f.Name, f.Value)
	}
	b.WriteString("\r\n")
	return b.String()
}

func (hc hostileCase) h2(t *testing.T, l *h2Latch) *http.Request {
	url, host := l.url(hc.path), hostileHost
	if hc.method == "CONNECT" {
		url, host = l.url(""), hc.path // :authority alone, as RFC 9113 §8.5 has it
	}
	req, err := http.NewRequest(hc.method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header["User-Agent"] = []string{"latch-hostile"}
	for _, f := range hc.fields {
		req.Header[f.Name] = append(req.Header[f.Name], f.Value)
	}
	return req
}

const hostileHost = "app.example.test"

// hostileCases are the hostile inputs of README's "ALB's edge behaviour"
// that an HTTP/2 request can carry too, each beside one just within its
// limit, with the status latch answers.
func hostileCases() []hostileCase {
	xff := func(n int) []field {
		var addrs []string
		for i := range n {
			addrs = append(addrs, fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
		}
		return []field{{"X-Forwarded-For", strings.Join(addrs, ", ")}}
	}
	many := func(n int) []field { // n fields; with Host and User-Agent, n+2
		fs := make([]field, n)
		for i := range fs {
			fs[i] = field{fmt.Sprintf("X-F-%d", i), "v"}
		}
		return fs
	}
	big := func(n int) []field { // n fields of 12 KiB
		fs := make([]field, n)
		for i := range fs {
			fs[i] = field{fmt.Sprintf("X-Big-%d", i), kib(12, 12)}
		}
		return fs
	}
	return []hostileCase{
		{name: "plain", method: "GET", path: "/", want: 200},
		{name: "TRACE", method: "TRACE", path: "/", want: 405},
		{name: "CONNECT", method: "CONNECT", path: "example.com:443", want: 405},
		{name: "Expect other than 100-continue", method: "GET", path: "/", fields: []field{{"Expect", "teapot"}}, want: 417},
		{name: "X-Forwarded-For, 30 addresses", method: "GET", path: "/", fields: xff(30), want: 200},
		{name: "X-Forwarded-For, 31 addresses", method: "GET", path: "/", fields: xff(31), want: 463},
		{name: "X-Forwarded-For, 31 addresses in two fields", method: "GET", path: "/",
			fields: append(xff(30), field{"X-Forwarded-For", "192.0.2.1"}), want: 463},
		{name: "request line just under 16 KiB", method: "GET", path: "/" + kib(15.9, 0), want: 200},
		{name: "request line over 16 KiB", method: "GET", path: "/" + kib(16, 0), want: 400},
		{name: "field just under 16 KiB", method: "GET", path: "/", fields: []field{{"X-Big", kib(16, 10)}}, want: 200},
		{name: "field over 16 KiB", method: "GET", path: "/", fields: []field{{"X-Big", kib(16, 6)}}, want: 400},
		// Over HTTP/2, net/http's client splits a cookie into crumbs
		// (RFC 9113 §8.2.3): joined, as the target gets them, they are one
		// field, and counted as one.
		{name: "cookie under 16 KiB in two crumbs", method: "GET", path: "/",
			fields: []field{{"Cookie", "a=" + kib(8, 0) + "; b=" + kib(7.5, 0)}}, want: 200},
		{name: "cookie over 16 KiB in two crumbs", method: "GET", path: "/",
			fields: []field{{"Cookie", "a=" + kib(8, 0) + "; b=" + kib(8, 0)}}, want: 400},
		{name: "head of 60 KiB", method: "GET", path: "/", fields: big(5), want: 200},
		{name: "head over 64 KiB", method: "GET", path: "/", fields: big(6), want: 400},
		{name: "500 fields", method: "GET", path: "/", fields: many(498), want: 200},
		{name: "501 fields", method: "GET", path: "/", fields: many(499), want: 400},
		{name: "invalid field names under drop_invalid_header_fields", method: "GET", path: "/",
			fields: []field{{"X_Under", "1"}, {"X.Dot", "1"}, {"X-Fine", "1"}}, want: 200, absent: []string{"X_Under", "X.Dot"}},
	}
}

// TestHostileInputAlike: each hostile input latch refuses over HTTP/1.1
// gets the same answer, status and body, over HTTP/1.1 on plain TCP,
// HTTP/1.1 over TLS, h2c and h2 over TLS, and never reaches the target;
// the requests just within each limit reach it on every protocol. Where
// HTTP/2 cannot carry an input (Transfer-Encoding, Connection, Upgrade,
// obs-fold, a name that is not a token), it is malformed there, and
// testH2Malformed checks that it never reaches a target.
func TestHostileInputAlike(t *testing.T) {
	t.Parallel()
	type protocol struct {
		name   string
		l      *h2Latch
		target *echoTarget
		h2     *h2Client // nil: HTTP/1.1
	}
	var protocols []protocol
	for _, m := range h2Modes {
		target := startEchoTarget(t)
		l := startH2Latch(t, m, h2Options{targets: []string{target.addr},
			listenerAttrs: map[string]string{"routing.http.drop_invalid_header_fields.enabled": "true"}})
		h1name, h2name := "HTTP/1.1", "h2c"
		if m.tls {
			h1name, h2name = "HTTP/1.1 over TLS", "h2 over TLS"
		}
		protocols = append(protocols, protocol{h1name, l, target, nil}, protocol{h2name, l, target, l.client(t, 2)})
	}
	// send sends hc over p, and returns the status, the body, and the
	// request as the target got it (nil if it got none).
	send := func(t *testing.T, p protocol, hc hostileCase) (int, string, *echo) {
		t.Helper()
		if p.h2 != nil {
			r := p.h2.do(t, hc.h2(t, p.l))
			wantH2(t, r)
			if r.Header.Get("X-Echo-Line") == "" {
				return r.StatusCode, string(r.body), nil
			}
			e := echoOf(t, r)
			return r.StatusCode, string(r.body), &e
		}
		c := dialH1(t, p.l)
		// latch may answer and close before it has read all of an
		// oversized head: the answer counts.
		c.c.Write([]byte(hc.h1()))
		resp := c.next(hc.method)
		if !resp.has("X-Echo-Line") {
			return resp.status(), string(resp.Body), nil
		}
		e := decodeEcho(t, resp)
		return resp.status(), string(resp.Body), &e
	}
	for _, hc := range hostileCases() {
		// One at a time: the targets' counts tell which reached them.
		t.Run(hc.name, func(t *testing.T) {
			var refBody string
			for i, p := range protocols {
				before := p.target.requests.Load()
				status, body, e := send(t, p, hc)
				reached := p.target.requests.Load() - before
				if status != hc.want {
					t.Errorf("%s: got %d %q, want %d", p.name, status, abridge(body, 200), hc.want)
				}
				if hc.want != 200 {
					if i == 0 {
						refBody = body
					} else if body != refBody {
						t.Errorf("%s: got the body %q, want %q as over HTTP/1.1", p.name, abridge(body, 200), refBody)
					}
					if reached != 0 {
						t.Errorf("%s: the target got the request", p.name)
					}
					continue
				}
				if reached != 1 || e == nil {
					t.Errorf("%s: the target got %d requests, want 1", p.name, reached)
					continue
				}
				for _, name := range hc.absent {
					if fieldValues(e.Header, name) != nil {
						t.Errorf("%s: %s reached the target", p.name, name)
					}
				}
			}
		})
	}
}

// TestH2HeaderListBound: latch's HTTP/2 engine decodes a stream's fields
// up to a bound it advertises (SETTINGS_MAX_HEADER_LIST_SIZE) above the
// largest head latch accepts, HPACK's 32 bytes a field counted, so that
// latch's head limits decide (TestHostileInputAlike); past it, the stream
// gets 431, the target never sees the request, and the connection goes on.
func TestH2HeaderListBound(t *testing.T) {
	t.Parallel()
	for _, m := range h2Modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			target := startEchoTarget(t)
			l := startH2Latch(t, m, h2Options{targets: []string{target.addr}})
			h := dialRawH2(t, l)
			// A 64 KiB head of 500 fields (Host among them) as HPACK
			// counts it: 28 bytes more for each field but Host (32 for
			// the line's 4), 34 more for Host as :authority, 64 for the
			// request line as :method and :path, 44 for :scheme https,
			// and 2 less for the head's last CRLF.
			const largestAccepted = 64<<10 + 28*499 + 34 + 64 + 44 - 2
			if got := h.settings[0x6]; got < largestAccepted || got > 128<<10 {
				t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE: got %d, want at least %d and well under net/http's default of 1 MiB", got, largestAccepted)
			}
			fields := []string{":method", "GET", ":scheme", l.scheme(), ":authority", hostileHost, ":path", "/"}
			size := 0
			for i := 0; size <= int(h.settings[0x6]); i++ {
				name, value := fmt.Sprintf("x-big-%d", i), kib(14, 0)
				fields = append(fields, name, value)
				size += len(name) + len(value) + 32
			}
			h.request(1, true, fields...)
			if r := h.awaitStream(1, "the answer to a header list past the bound"); r.status != 431 {
				t.Errorf("a header list of %d bytes: got status %d (reset: %t, code %d), want 431", size, r.status, r.wasRst, r.reset)
			}
			h.request(3, true, fields[:8]...)
			if r := h.awaitStream(3, "the answer to the next request"); r.status != 200 {
				t.Errorf("the next request on the connection: got status %d (reset: %t, code %d), want 200", r.status, r.wasRst, r.reset)
			}
			if n := target.requests.Load(); n != 1 {
				t.Errorf("the target got %d requests, want 1", n)
			}
		})
	}
}
