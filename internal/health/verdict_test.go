package health_test

// One limit, one verdict: what a health check says of a target's response
// is what latch's data path does with it. Each test asks a probe, and a
// client of a running latch (both data paths), about the same real target.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/health"
	"github.com/latch-lb/latch/internal/leaktest"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/target"
)

func spec() config.HealthCheck {
	m, err := config.ParseMatcher("200-399")
	if err != nil {
		panic(err)
	}
	return config.HealthCheck{
		Enabled: true, Protocol: config.HTTP, Path: "/healthz",
		Interval: 10 * time.Second, Timeout: 5 * time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2,
		Matcher: m, UserAgent: "ELB-HealthChecker/2.0",
	}
}

// probeOnce runs one probe, failing the test rather than hanging if it
// does not return within 10 s.
func probeOnce(t *testing.T, c *health.Checker, addr string) target.Result {
	t.Helper()
	done := make(chan target.Result, 1)
	go func() { done <- c.Probe(context.Background(), addr) }()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("Probe(%s) did not return within 10 s", addr)
		return target.Result{}
	}
}

// rawTarget listens on 127.0.0.1 and, on every connection, hands the
// connection to answer, then closes it; it stops when the test ends.
func rawTarget(t *testing.T, answer func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				answer(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// h1Answer reads a request head and answers with resp, then closes the
// connection (with a reset, if reset).
func h1Answer(resp string, reset bool) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(c, resp)
		if reset {
			c.(*net.TCPConn).SetLinger(0)
		}
	}
}

// closeAnswer closes the connection's sending side once the request has
// come, reading on until the client closes: the client then finds the
// end, where closing with its data unread would reset the connection.
func closeAnswer(c net.Conn) {
	h1Answer("", false)(c)
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
}

// outcome is what a client of latch gets.
type outcome string

const (
	passed outcome = "the target's answer"
	bad    outcome = "502"
	cut    outcome = "the target's head, then a body cut short"
)

// throughLatch sends one GET through a latch whose one group holds addr
// (over HTTP/2 if h2), with health checks off, on each data path, and
// fails t unless the client gets want.
func throughLatch(t *testing.T, addr string, h2 bool, want outcome) {
	t.Helper()
	for _, dp := range []server.DataPath{server.Loops, server.Goroutines} {
		s := startLatch(t, dp, groupYAML(addr, h2, "      enabled: false\n"))
		got := fetch(t, "http://"+s.Addr("front")+"/")
		if got != want {
			t.Errorf("through latch (data path %v): got %s, want %s", dp, got, want)
		}
	}
}

func groupYAML(addr string, h2 bool, health string) string {
	version := "HTTP1"
	if h2 {
		version = "HTTP2"
	}
	return fmt.Sprintf(`listeners:
  - name: front
    address: 127.0.0.1:0
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
    protocol_version: %s
    targets:
      - id: %s
    health_check:
%s    attributes:
      deregistration_delay.timeout_seconds: 0
`, version, addr, health)
}

func startLatch(t *testing.T, dp server.DataPath, yaml string) *server.Server {
	t.Helper()
	leaktest.Check(t)
	s, err := server.New(server.Options{DataPath: dp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	cfg, err := config.Parse([]byte(yaml+"state_dir: "+t.TempDir()+"\n"), "")
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	if err := s.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

// fetch sends a GET on a connection of its own and says what came back.
func fetch(t *testing.T, url string) outcome {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusBadGateway:
		return bad
	case err != nil:
		return cut
	case resp.StatusCode == http.StatusOK:
		return passed
	}
	return outcome(resp.Status)
}

func failed(desc string) target.Result {
	return target.Result{Reason: target.ReasonFailedHealthChecks, Description: "Health checks failed: " + desc}
}

// headOf returns a response head of n bytes in all, most of it one
// Set-Cookie field, before a body of "ok".
func headOf(n int) string {
	const pre, post = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=", "\r\n\r\n"
	return pre + strings.Repeat("x", n-len(pre)-len(post)) + post
}

// TestVerdictH1 answers probes and requests through latch with responses
// latch's parser refuses, and some it takes, over HTTP/1.1.
func TestVerdictH1(t *testing.T) {
	ok := target.Result{OK: true}
	tests := []struct {
		name   string
		answer string
		reset  bool
		probe  target.Result
		latch  outcome
	}{
		{"head of 40 KiB", headOf(40<<10) + "ok", false, failed("the response head is over 32 KiB"), bad},
		{"head of 30 KiB", headOf(30<<10) + "ok", false, ok, passed},
		{"head of exactly 32 KiB", headOf(32<<10) + "ok", false, ok, passed},
		{"head of 32 KiB and a byte", headOf(32<<10+1) + "ok", false, failed("the response head is over 32 KiB"), bad},
		{"garbage", "HELLO\r\n\r\n", false, failed("the status line is malformed"), bad},
		{"HTTP/2.0 in a status line", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, failed("the status line is malformed"), bad},
		{"status 099", "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", false, failed("the status line is malformed"), bad},
		{"status of four digits", "HTTP/1.1 2000 Odd\r\nContent-Length: 0\r\n\r\n", false, failed("the status line is malformed"), bad},
		{"field name with a space", "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", false, failed("a header field is malformed"), bad},
		{"folded field", "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", false, failed("a header field is malformed"), bad},
		{"invalid Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok", false, failed("the Content-Length is invalid"), bad},
		{"conflicting Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false, failed("the Content-Length is invalid"), bad},
		{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, failed("the Transfer-Encoding is chunked twice"), bad},
		{"malformed chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", false, failed("the chunked body is malformed"), cut},
		{"body cut short", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", false, failed("the target closed the connection before the end of the response body"), cut},
		{"chunked body cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n", false, failed("the target closed the connection before the end of the response body"), cut},
		{"unrequested 101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false, failed("the target switched protocols unasked (101)"), bad},
		{"no response", "", false, failed("the target closed the connection without a response"), bad},
		{"head cut short", "HTTP/1.1 200 OK\r\nContent-Le", false, failed("the target closed the connection before the end of the response head"), bad},
		{"reset", "", true, failed("the target reset the connection"), bad},
		{"reset after a head", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true, failed("the target reset the connection"), cut},
		{"interim responses skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, ok, passed},
		{"HTTP/1.0, body until close", "HTTP/1.0 200 OK\r\n\r\nok", false, ok, passed},
		{"bare LF line ends", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, ok, passed},
		{"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n", false, ok, passed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawTarget(t, h1Answer(tc.answer, tc.reset))
			if r := probeOnce(t, health.NewChecker(spec(), false), addr); r != tc.probe {
				t.Errorf("probe: got %+v, want %+v", r, tc.probe)
			}
			throughLatch(t, addr, false, tc.latch)
		})
	}
}

// TestHeadLimitVerdict runs latch with its own health checks on targets
// whose response heads are over 32 KiB, or under, over HTTP/1.1 and HTTP/2:
// the checks and the requests agree. Over HTTP/2, net/http tells of a head
// over the limit in three ways, by its shape (see h2Cause).
func TestHeadLimitVerdict(t *testing.T) {
	over := failed("the response head is over 32 KiB")
	tests := []struct {
		name   string
		h2     bool
		fields []string // Set-Cookie values
		probe  target.Result
	}{
		{"one field of 40 KiB", false, cookies(1, 40<<10), over},
		{"40 fields of 1 KiB", false, cookies(40, 1<<10), over},
		{"one field of 30 KiB", false, cookies(1, 30<<10), target.Result{OK: true}},
		{"28 fields of 1 KiB", false, cookies(28, 1<<10), target.Result{OK: true}},
		{"HTTP/2, one field of 40 KiB", true, cookies(1, 40<<10),
			failed("connection error: COMPRESSION_ERROR (a header field over 32 KiB, or HPACK that cannot be decoded)")},
		{"HTTP/2, 40 fields of 1 KiB", true, cookies(40, 1<<10),
			failed("connection error: PROTOCOL_ERROR (a response head far over 32 KiB, or another breach of HTTP/2)")},
		{"HTTP/2, 33 fields of 1 KiB", true, cookies(33, 1<<10), over},
		{"HTTP/2, one field of 30 KiB", true, cookies(1, 30<<10), target.Result{OK: true}},
		{"HTTP/2, 28 fields of 1 KiB", true, cookies(28, 1<<10), target.Result{OK: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // most of each is waiting for checks
			addr := netHTTPTarget(t, tc.h2, func(w http.ResponseWriter, _ *http.Request) {
				w.Header()["Set-Cookie"] = tc.fields
				io.WriteString(w, "ok")
			})
			wantState, wantOutcome := target.Unhealthy, bad
			if tc.probe.OK {
				wantState, wantOutcome = target.Healthy, passed
			}
			if r := probeOnce(t, health.NewChecker(spec(), tc.h2), addr); r != tc.probe {
				t.Errorf("probe: got %+v, want %+v", r, tc.probe)
			}

			s := startLatch(t, server.Loops, groupYAML(addr, tc.h2, `      path: /healthz
      interval_seconds: 0.5
      timeout_seconds: 0.45
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
`))
			// A loaded machine may make a check time out, so the test waits
			// for the verdict it wants rather than taking the first.
			h := waitHealth(t, s, func(h target.Health) bool {
				return h.State == wantState && h.Reason == tc.probe.Reason && h.Description == tc.probe.Description
			})
			if h.State != wantState || h.Reason != tc.probe.Reason || h.Description != tc.probe.Description {
				t.Errorf("latch's checks: got %v %q %q, want %v %q %q", h.State, h.Reason, h.Description,
					wantState, tc.probe.Reason, tc.probe.Description)
			}
			// One target, unhealthy: the group fails open, and routes to it.
			if got := fetch(t, "http://"+s.Addr("front")+"/"); got != wantOutcome {
				t.Errorf("through latch: got %s, want %s", got, wantOutcome)
			}
		})
	}
}

// cookies returns n distinct Set-Cookie values of size bytes each.
func cookies(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		v := fmt.Sprintf("c%d=", i)
		out[i] = v + strings.Repeat("x", size-len(v))
	}
	return out
}

// netHTTPTarget is a net/http server on 127.0.0.1, speaking cleartext
// HTTP/2 with prior knowledge if h2, else HTTP/1.1.
func netHTTPTarget(t *testing.T, h2 bool, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	if h2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = &p
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// waitHealth waits for the one target's checks to say what done wants (or
// 15 s), and returns what they say. It looks again at each of the server's
// events, and every 100 ms: a check that fails a target already unhealthy
// for another reason changes what it says without an event.
func waitHealth(t *testing.T, s *server.Server, done func(target.Health) bool) target.Health {
	t.Helper()
	events := s.Subscribe(64)
	defer events.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(15 * time.Second)
	for {
		h := s.Snapshot().Group("web").Targets[0].Checks
		if done(h) {
			return h
		}
		select {
		case <-events.C:
		case <-tick.C:
		case <-timeout:
			return h
		}
	}
}

// TestVerdictH2 answers probes and requests through latch with HTTP/2
// responses that net/http's client takes but latch must not pass on, or
// that it refuses, from a target speaking raw HTTP/2 frames.
func TestVerdictH2(t *testing.T) {
	ok := target.Result{OK: true}
	tests := []struct {
		name   string
		answer func(net.Conn)
		probe  target.Result
		latch  outcome
	}{
		{"status 200", h2Answer([][2]string{{":status", "200"}, {"content-length", "2"}}, "ok"), ok, passed},
		{"status 1000", h2Answer([][2]string{{":status", "1000"}}, ""), failed(`the status code "1000" is not three digits`), bad},
		{"status 099", h2Answer([][2]string{{":status", "099"}}, ""), failed(`the status code "099" is not three digits`), bad},
		{"status 0", h2Answer([][2]string{{":status", "0"}}, ""), failed(`the status code "0" is not three digits`), bad},
		{"body shorter than its Content-Length", h2Answer([][2]string{{":status", "200"}, {"content-length", "100"}}, "short"),
			failed("the response body is shorter than its Content-Length"), cut},
		{"garbage", h1Answer("HELLO\r\n\r\n", false), failed(`the target does not speak HTTP/2 (its answer began "HELLO\r\n\r\n")`), bad},
		{"an HTTP/1.1 target", h1Answer("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false),
			failed(`the target does not speak HTTP/2 (its answer began "HTTP/1.1 ")`), bad},
		{"closed without a word", closeAnswer, failed("the target closed the connection without a response"), bad},
		{"reset", h1Answer("", true), failed("the target reset the connection"), bad},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawTarget(t, tc.answer)
			if r := probeOnce(t, health.NewChecker(spec(), true), addr); r != tc.probe {
				t.Errorf("probe: got %+v, want %+v", r, tc.probe)
			}
			throughLatch(t, addr, true, tc.latch)
		})
	}
}

// h2Answer speaks just enough HTTP/2 to answer each request on a
// connection with fields (literal, as HPACK allows) and body.
func h2Answer(fields [][2]string, body string) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := io.ReadFull(br, make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))); err != nil {
			return
		}
		var block []byte
		for _, f := range fields {
			// A literal field without indexing, with a new name; every
			// length here is under 127.
			block = append(block, 0, byte(len(f[0])))
			block = append(block, f[0]...)
			block = append(block, byte(len(f[1])))
			block = append(block, f[1]...)
		}
		writeFrame(c, 0x4, 0, 0, nil) // SETTINGS
		for {
			var h [9]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return
			}
			n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
			if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
				return
			}
			typ, flags, stream := h[3], h[4], binary.BigEndian.Uint32(h[5:])&(1<<31-1)
			switch {
			case typ == 0x4 && flags&0x1 == 0:
				writeFrame(c, 0x4, 0x1, 0, nil) // SETTINGS ACK
			case typ == 0x1 && body == "":
				writeFrame(c, 0x1, 0x4|0x1, stream, block) // END_HEADERS, END_STREAM
			case typ == 0x1:
				writeFrame(c, 0x1, 0x4, stream, block)
				writeFrame(c, 0x0, 0x1, stream, []byte(body))
			}
		}
	}
}

func writeFrame(w io.Writer, typ, flags byte, stream uint32, p []byte) {
	h := []byte{byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[5:], stream)
	w.Write(append(h, p...))
}
