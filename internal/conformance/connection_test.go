package conformance_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHTTP10Client: an HTTP/1.0 client gets responses it can read: never
// chunked (HTTP/1.0 has no chunked coding, RFC 9112 §7.1), so a response
// of unknown length is delimited by closing the connection. Without
// keep-alive latch closes the connection after the response. With
// `Connection: keep-alive` latch keeps it open when the response has a
// known length, saying so with `Connection: keep-alive` (RFC 9112 §9.3 and
// its appendix C.2.2, as nginx and Apache do); an HTTP/1.0 request with a
// body passes too.
func TestHTTP10Client(t *testing.T) {
	t.Parallel()
	target := startResponder(t, func(c *targetConn, m *message) string {
		if strings.Contains(m.StartLine, " /chunked ") {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("part one, ") + chunk("part two") + "0\r\n\r\n"
		}
		body := m.StartLine + "|" + string(m.Body)
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	l := startLatch(t, target.addr)
	// latch forwards as HTTP/1.1, the version it speaks (RFC 9110 §6.2).
	echoed := func(line, body string) string { return strings.Replace(line, "HTTP/1.0", "HTTP/1.1", 1) + "|" + body }

	cases := []struct {
		name      string
		request   string
		body      string // the response body the client must get
		keepAlive bool   // the connection must stay open
	}{
		{"no keep-alive", "GET /plain HTTP/1.0\r\n\r\n", echoed("GET /plain HTTP/1.0", ""), false},
		{"no keep-alive, with Host", "GET /plain HTTP/1.0\r\nHost: example.com\r\n\r\n", echoed("GET /plain HTTP/1.0", ""), false},
		{"no keep-alive, chunked from the target", "GET /chunked HTTP/1.0\r\n\r\n", "part one, part two", false},
		{"no keep-alive, with a body", "POST /upload HTTP/1.0\r\nContent-Length: 11\r\n\r\nhello, 1.0!", echoed("POST /upload HTTP/1.0", "hello, 1.0!"), false},
		{"keep-alive", "GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", echoed("GET /plain HTTP/1.0", ""), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, l.addr)
			for i := range 2 {
				c.write(tc.request)
				resp := c.response(strings.Fields(tc.request)[0])
				if resp.status() != 200 || !strings.HasPrefix(resp.version(), "HTTP/1.") {
					t.Fatalf("got\n%s\nwant HTTP/1.x 200", resp)
				}
				if resp.Framing == "chunked" || resp.has("Transfer-Encoding") {
					t.Errorf("an HTTP/1.0 client got Transfer-Encoding %q", resp.get("Transfer-Encoding"))
				}
				if string(resp.Body) != tc.body {
					t.Errorf("body: got %q, want %q", resp.Body, tc.body)
				}
				if !tc.keepAlive {
					if resp.Framing != "close" {
						if closed, err := c.closedByPeer(); !closed {
							t.Errorf("the connection stayed open after the response to an HTTP/1.0 request without keep-alive (%v)", err)
						}
					}
					return
				}
				if !hasToken(resp.Header, "Connection", "keep-alive") || resp.Framing != "length" {
					t.Fatalf("response %d to an HTTP/1.0 keep-alive request: Connection %q, framing %s; want keep-alive and Content-Length",
						i+1, resp.get("Connection"), resp.Framing)
				}
			}
		})
	}

	t.Run("keep-alive, length unknown", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, l.addr)
		c.write("GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp := c.response("GET")
		if resp.Framing == "chunked" || resp.has("Transfer-Encoding") || string(resp.Body) != "part one, part two" {
			t.Fatalf("got\n%s\nwant the body %q without chunked coding", resp, "part one, part two")
		}
		if resp.Framing == "length" && hasToken(resp.Header, "Connection", "keep-alive") {
			// latch buffered the body to give it a length: fine, if the
			// connection then works.
			c.write("GET /plain HTTP/1.0\r\n\r\n")
			if resp := c.response("GET"); resp.status() != 200 {
				t.Errorf("the next request on the kept connection: got\n%s", resp)
			}
			return
		}
		if resp.Framing != "close" {
			if closed, err := c.closedByPeer(); !closed {
				t.Errorf("a response without length or keep-alive left the connection open (%v)", err)
			}
		}
	})
}

// TestConnectionClose: `Connection: close` is honoured both ways. From the
// client: latch answers, says close, and closes the client connection (RFC
// 9112 §9.6). From the target: latch does not send another request on that
// target connection (the next one arrives on a new connection), and the
// client's keep-alive connection to latch stays open: close concerns the
// target's hop only.
func TestConnectionClose(t *testing.T) {
	t.Parallel()

	t.Run("from the client", func(t *testing.T) {
		t.Parallel()
		target := startEchoTarget(t)
		l := startLatch(t, target.addr)
		c := dialRaw(t, l.addr)
		c.write("GET /first HTTP/1.1\r\nHost: example.com\r\n\r\n")
		if resp := c.response("GET"); resp.status() != 200 || hasToken(resp.Header, "Connection", "close") {
			t.Fatalf("a keep-alive request: got\n%s\nwant 200 without close", resp)
		}
		c.write("GET /last HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
		resp := c.response("GET")
		if resp.status() != 200 || decodeEcho(t, resp).Line != "GET /last HTTP/1.1" {
			t.Fatalf("got\n%s\nwant the target's 200 to GET /last", resp)
		}
		if !hasToken(resp.Header, "Connection", "close") {
			t.Errorf("the response to a request with Connection: close says Connection %q, want close", resp.get("Connection"))
		}
		if resp.Framing != "close" {
			if closed, err := c.closedByPeer(); !closed {
				t.Errorf("latch left the connection open after answering Connection: close (%v)", err)
			}
		}
	})

	t.Run("from the target", func(t *testing.T) {
		t.Parallel()
		// The target says close but keeps its end open, and answers with
		// the connection each request came on: a request latch wrongly sends
		// on the same connection is seen, and answered.
		target := startResponder(t, func(c *targetConn, _ *message) string {
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nConnection: close\r\nX-Conn: %d\r\nContent-Length: 2\r\n\r\nok", c.id)
		})
		l := startLatch(t, target.addr)
		c := dialRaw(t, l.addr)
		for i := int64(1); i <= 3; i++ {
			c.write("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
			resp := c.response("GET")
			if resp.status() != 200 || string(resp.Body) != "ok" {
				t.Fatalf("request %d: got\n%s", i, resp)
			}
			if got := resp.get("X-Conn"); got != strconv.FormatInt(i, 10) {
				t.Errorf("request %d reached the target on its connection %s, want a new one (%d): latch reused a connection the target closed", i, got, i)
			}
			if hasToken(resp.Header, "Connection", "close") {
				t.Fatalf("request %d: the target's Connection: close reached the client", i)
			}
		}
	})
}

// TestPooledConnectionClosedByTarget: a target may close an idle keep-alive
// connection at any time (RFC 9112 §9.5). A GET that latch sent on such a
// connection is sent again on a new one: the client sees no error. A
// request that is not idempotent is never sent twice (RFC 9110 §9.2.2): the
// target must never receive it twice, whether it had closed the connection
// before the request came or read the request and then closed without
// answering (the case where latch cannot know whether it was processed).
// Each case uses one client connection, so latch has put the target
// connection back in its pool before the next request arrives.
func TestPooledConnectionClosedByTarget(t *testing.T) {
	t.Parallel()

	t.Run("GET after an idle close", func(t *testing.T) {
		t.Parallel()
		closed := make(chan int64, 8)
		target := startRawTarget(t, func(c *targetConn) {
			if _, err := readRequest(c.br); err != nil {
				return
			}
			c.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Conn: %d\r\nContent-Length: 2\r\n\r\nok", c.id))
			c.Close()
			closed <- c.id
		})
		l := startLatch(t, target.addr)
		c := dialRaw(t, l.addr)
		for i := range 4 {
			c.write("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
			if resp := c.response("GET"); resp.status() != 200 || string(resp.Body) != "ok" {
				t.Fatalf("GET %d: got\n%s\nwant the target's 200 ok", i+1, resp)
			}
			await(t, closed, "the target to close its connection")
		}
	})

	type outcome struct{ posts atomic.Int64 }
	cases := []struct {
		name string
		post string
		// idle: the target closes each connection after its first answer;
		// otherwise it reads a second request on it, then closes unanswered.
		idle bool
	}{
		{"POST after an idle close", "POST /order HTTP/1.1\r\nHost: example.com\r\nContent-Length: 9\r\n\r\norder=one", true},
		{"POST read, then closed unanswered", "POST /order HTTP/1.1\r\nHost: example.com\r\nContent-Length: 9\r\n\r\norder=one", false},
		{"chunked POST read, then closed unanswered", "POST /order HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("order=one") + "0\r\n\r\n", false},
		{"empty POST read, then closed unanswered", "POST /order HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n", false},
		{"PATCH without a body read, then closed unanswered", "PATCH /order HTTP/1.1\r\nHost: example.com\r\n\r\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o outcome
			closed := make(chan int64, 8)
			target := startRawTarget(t, func(c *targetConn) {
				for n := 1; ; n++ {
					m, err := readRequest(c.br)
					if err != nil {
						return
					}
					if m.method() != "GET" {
						o.posts.Add(1)
					}
					if n == 2 && !tc.idle {
						return // read, then closed without an answer
					}
					c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					if tc.idle {
						c.Close()
						closed <- c.id
						return
					}
				}
			})
			l := startLatch(t, target.addr)
			c := dialRaw(t, l.addr)
			c.write("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
			if resp := c.response("GET"); resp.status() != 200 {
				t.Fatalf("GET: got\n%s", resp)
			}
			if tc.idle {
				await(t, closed, "the target to close its connection")
			}
			method := strings.Fields(tc.post)[0]
			c.write(tc.post)
			resp := c.response(method)
			n := o.posts.Load()
			t.Logf("the client got %d; the target received the %s %d times", resp.status(), method, n)
			switch {
			case n > 1:
				t.Errorf("the target received the %s %d times (client got %d)", method, n, resp.status())
			case resp.status() == 200 && n != 1:
				t.Errorf("the client got 200 but the target received the %s %d times", method, n)
			case resp.status() != 200 && resp.status() < 500:
				t.Errorf("got\n%s\nwant the target's 200 or latch's 5xx", resp)
			case !tc.idle && resp.status() != 502:
				// The target closed without answering: ALB's 502.
				t.Errorf("got %d, want 502 (the target closed the connection)", resp.status())
			}
		})
	}
}
