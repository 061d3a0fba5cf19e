package server

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/evloop"
	"github.com/latch-lb/latch/internal/proxy/proxytest"
)

// A TLS connection carrying HTTP/1.1 serves its first request in the
// goroutine that did its handshake, and moves to an event loop only when
// it waits, idle, for a second one: a connection that closes after its
// request (a handshake per request) never pays for the move. HTTP/2
// moves at once.
func TestHTTPSMovesToLoopBetweenRequests(t *testing.T) {
	if dataPath != Loops || !evloop.Supported {
		t.Skip("connections move to event loops only when latch runs them")
	}
	be := startBackend(t, "a")
	e := newTLSEnv(t)
	var obs proxytest.Counter
	r := startObserved(t, e.yaml("HTTPS", allCerts, "", be.addr), "", "https", &obs)
	dial := func(protos ...string) *tls.Conn {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.Addr("front"),
			&tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test", NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c *tls.Conn, br *bufio.Reader, close bool) {
		t.Helper()
		req := "GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n"
		if close {
			req = "GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n"
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != "a" {
			t.Fatalf("got %d %q (%v), want 200 \"a\"", resp.StatusCode, body, err)
		}
	}

	for range 3 {
		c := dial("http/1.1")
		br := bufio.NewReader(c)
		get(c, br, true)
		if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("after a Connection: close answer: read %d bytes, %v; want the connection closed", n, err)
		}
	}
	if n := obs.ToLoop.Load(); n != 0 {
		t.Errorf("%d connections that closed after one request moved to a loop, want none", n)
	}

	c := dial("http/1.1")
	br := bufio.NewReader(c)
	for range 4 {
		get(c, br, false)
	}
	if n := obs.ToLoop.Load(); n != 1 {
		t.Errorf("a keep-alive connection that carried 4 requests: %d moves to a loop, want 1", n)
	}

	c = dial("h2")
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
	deadline := time.Now().Add(5 * time.Second)
	for obs.ToLoop.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := obs.ToLoop.Load(); n != 2 {
		t.Errorf("after an HTTP/2 connection's handshake: %d moves to a loop in all, want 2", n)
	}
}
