package conformance_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/evloop"
	"github.com/latch-lb/latch/internal/server"
)

// The event-loop data path (internal/proxy/conn_loop.go) keeps the common
// exchange on the loop and hands a connection to a goroutine at the step
// where it would have to wait. Every test in this suite runs on it; these
// check that it keeps what it should, hands off what it must, that the
// connection goes on working after a handoff, and that the whole suite
// passes on the goroutine path too (the path of HTTPS listeners, of
// connections handed off, and of systems without epoll).

func loopsOn(t *testing.T) {
	t.Helper()
	if dataPath != server.Loops || !evloop.Supported {
		t.Skip("event loops are off in this run")
	}
}

// loopTarget answers by path: "/" a small response in one write, "/late"
// a response whose body comes 50 ms after its head, "/chunks" a chunked
// response in pieces, "/big" 1 MiB in one go, "/upgrade" a switch to an
// echo protocol. Requests' bodies are read and their length answered.
func loopTarget(t *testing.T) *rawTarget {
	return startRawTarget(t, func(c *targetConn) {
		for {
			m, err := readRequest(c.br)
			if err != nil {
				return
			}
			path := strings.Fields(m.StartLine)[1]
			body := strconv.Itoa(len(m.Body))
			switch path {
			case "/late":
				c.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
				time.Sleep(50 * time.Millisecond)
				c.write("-last")
			case "/chunks":
				c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("one"))
				time.Sleep(20 * time.Millisecond)
				c.write(chunk("two") + "0\r\n\r\n")
			case "/big":
				c.write("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("x", 1<<20))
			case "/upgrade":
				c.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
				io.Copy(c.Conn, c.br)
				return
			case "/204":
				c.write("HTTP/1.1 204 No Content\r\n\r\n")
			default:
				if m.method() == "HEAD" {
					body = "" // its length, without it
				}
				c.write("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(strconv.Itoa(len(m.Body)))) + "\r\n\r\n" + body)
			}
		}
	})
}

// TestLoopKeepsPlainExchanges: ordinary requests on a keep-alive
// connection, pipelined ones too, stay on the loop, on one target
// connection.
func TestLoopKeepsPlainExchanges(t *testing.T) {
	loopsOn(t)
	t.Parallel()
	target := loopTarget(t)
	l := startLatch(t, target.addr)
	c := dialRaw(t, l.addr)
	for i := range 5 {
		c.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if r := c.response("GET"); r.status() != 200 || string(r.Body) != "0" {
			t.Fatalf("GET %d: got\n%s", i+1, r)
		}
	}
	c.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
	if r := c.response("POST"); r.status() != 200 || string(r.Body) != "11" {
		t.Fatalf("POST: got\n%s\nwant 200 and the target's count of 11 body bytes", r)
	}
	c.write("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := c.response("HEAD"); r.status() != 200 || r.get("Content-Length") != "1" {
		t.Fatalf("HEAD: got\n%s", r)
	}
	c.write("GET /204 HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := c.response("GET"); r.status() != 204 {
		t.Fatalf("GET /204: got\n%s", r)
	}
	c.write(strings.Repeat("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 3))
	for i := range 3 {
		if r := c.response("GET"); r.status() != 200 {
			t.Fatalf("pipelined GET %d: got\n%s", i+1, r)
		}
	}
	if n := l.obs.OnLoop.Load(); n != 1 {
		t.Errorf("%d connections on an event loop, want 1", n)
	}
	if n := l.obs.HandedOff.Load(); n != 0 {
		t.Errorf("%d connections handed to a goroutine, want none", n)
	}
	if n := target.conns.Load(); n != 1 {
		t.Errorf("the target saw %d connections, want 1 (the loop's, reused)", n)
	}
}

// TestLoopHandsOff: each exchange the loop cannot finish without waiting
// moves its connection to a goroutine, which answers it and the requests
// after it; nothing is lost at the handoff.
func TestLoopHandsOff(t *testing.T) {
	loopsOn(t)
	t.Parallel()
	for _, tc := range []struct {
		name, method string
		send         func(c *rawClient)
		check        func(r *message) error
	}{
		{"response body after its head", "GET",
			func(c *rawClient) { c.write("GET /late HTTP/1.1\r\nHost: a\r\n\r\n") },
			func(r *message) error { return want(r, 200, "first-last") }},
		{"chunked response in pieces", "GET",
			func(c *rawClient) { c.write("GET /chunks HTTP/1.1\r\nHost: a\r\n\r\n") },
			func(r *message) error { return want(r, 200, "onetwo") }},
		{"a response larger than the buffers", "GET",
			func(c *rawClient) { c.write("GET /big HTTP/1.1\r\nHost: a\r\n\r\n") },
			func(r *message) error {
				if len(r.Body) != 1<<20 {
					return fmt.Errorf("got %d body bytes, want 1 MiB", len(r.Body))
				}
				return nil
			}},
		{"request body after its head", "POST",
			func(c *rawClient) {
				c.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
				time.Sleep(50 * time.Millisecond)
				c.write("56789")
			},
			func(r *message) error { return want(r, 200, "10") }},
		{"chunked request", "POST",
			func(c *rawClient) {
				c.write("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("abc") + chunk("de") + "0\r\n\r\n")
			},
			func(r *message) error { return want(r, 200, "5") }},
		{"Expect: 100-continue", "POST",
			func(c *rawClient) {
				c.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
				if r := c.next("POST"); r.status() != 100 {
					c.t.Fatalf("got\n%s\nwant 100 Continue first", r)
				}
				c.write("abc")
			},
			func(r *message) error { return want(r, 200, "3") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := startLatch(t, loopTarget(t).addr)
			c := dialRaw(t, l.addr)
			tc.send(c)
			if err := tc.check(c.response(tc.method)); err != nil {
				t.Fatal(err)
			}
			c.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if err := want(c.response("GET"), 200, "0"); err != nil {
				t.Fatalf("the request after the handoff: %v", err)
			}
			if n := l.obs.HandedOff.Load(); n != 1 {
				t.Errorf("%d connections handed to a goroutine, want 1", n)
			}
		})
	}
	t.Run("upgrade", func(t *testing.T) {
		t.Parallel()
		l := startLatch(t, loopTarget(t).addr)
		c := dialRaw(t, l.addr)
		c.write("GET /upgrade HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		if r := c.next("GET"); r.status() != 101 {
			t.Fatalf("got\n%s\nwant 101", r)
		}
		c.write("ping\n")
		if line, err := c.br.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("through the tunnel: got %q, %v; want the target's echo", line, err)
		}
		if n := l.obs.HandedOff.Load(); n != 1 {
			t.Errorf("%d connections handed to a goroutine, want 1", n)
		}
	})
}

func want(r *message, status int, body string) error {
	if r.status() != status || string(r.Body) != body {
		return fmt.Errorf("got\n%s\nwant %d with body %q", r, status, body)
	}
	return nil
}

// TestLoopSpreadsConnections: many client connections at once, over every
// loop, each with its own requests in flight; every answer is the right
// one.
func TestLoopSpreadsConnections(t *testing.T) {
	loopsOn(t)
	t.Parallel()
	l := startLatch(t, loopTarget(t).addr)
	const conns, reqs = 64, 20
	errs := make(chan error, conns)
	for range conns {
		go func() {
			c, err := dialPlain(l.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := range reqs {
				body := strings.Repeat("b", i)
				fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				r, err := readResponse(br, "POST")
				if err != nil {
					errs <- err
					return
				}
				if err := want(r, 200, strconv.Itoa(i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := await(t, errs, "a client's requests"); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.obs.OnLoop.Load(); n != conns {
		t.Errorf("%d connections on event loops, want %d", n, conns)
	}
	if n := l.obs.HandedOff.Load(); n != 0 {
		t.Errorf("%d connections handed to a goroutine, want none", n)
	}
}

// dialPlain opens a client connection with the suite's deadline, for use
// outside the test's goroutine.
func dialPlain(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	return c, nil
}
