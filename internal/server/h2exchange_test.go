package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHTTP2TargetAnswersBeforeTheUpload: an HTTP/2 target that answers
// before it has read the request body (a 401 to an upload) ends the
// exchange while net/http's HTTP/2 client may still be reading the body
// from the client. The answer arrives, the HTTP/1.1 connection is closed
// (its body was not all read), and nothing reads the client's buffers
// once the exchange is over (the race detector checks that: they go back
// to a pool for the next connection).
func TestHTTP2TargetAnswersBeforeTheUpload(t *testing.T) {
	target := serveH2C(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	lb := startLB(t, lbConfig{targets: []string{target}, extraGroup: "    protocol_version: HTTP2\n",
		listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})
	addr := strings.TrimPrefix(lb.url, "http://")

	for i := range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
		c.Write(make([]byte, 1000))
		sending := make(chan struct{})
		go func() {
			defer close(sending)
			for range 50 {
				if _, err := c.Write(make([]byte, 1000)); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Errorf("upload %d: got %s, Connection: close %v; want the target's 401 and the connection closed", i, resp.Status, resp.Close)
		}
		// Another connection meanwhile takes the pooled buffers.
		if r := get(t, lb.url+"/", ""); r.status != http.StatusUnauthorized {
			t.Errorf("a GET beside upload %d: got %d, want the target's 401", i, r.status)
		}
		c.Close()
		<-sending
	}

	// An HTTP/2 client's stream, the same way.
	for i := range 5 {
		pr, pw := io.Pipe()
		go func() {
			for range 50 {
				if _, err := pw.Write(make([]byte, 1000)); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", lb.url+"/upload", pr)
		resp, err := h2cClient().Do(req)
		if err != nil {
			t.Fatalf("HTTP/2 upload %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		pr.CloseWithError(io.ErrClosedPipe)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("HTTP/2 upload %d: got %s, want the target's 401", i, resp.Status)
		}
	}
}

// TestHTTP2ClientResetIsNotTheTargets: an HTTP/2 client that gives up on
// a slow target (resets its stream) ends the exchange, but the target is
// not charged with a failure (anomaly detection counts 5xx answers), and
// its in-flight count goes back to 0.
func TestHTTP2ClientResetIsNotTheTargets(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	lb := startLB(t, lbConfig{targets: []string{slow.Listener.Addr().String()},
		listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})

	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", lb.url+"/slow", nil)
		resp, err := h2cClient().Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Fatalf("request %d: got %s from a target that never answers", i, resp.Status)
		}
	}
	tg := lb.targets("web")[0]
	poll(t, 5*time.Second, "the reset exchanges to end", func() bool { return tg.Inflight.Load() == 0 })
	if requests, errors, _ := tg.Outcomes(); errors != 0 {
		t.Errorf("the target was charged with %d failures of %d requests for the client's resets, want none", errors, requests)
	}
}

// TestHTTP2StalledBodyAnswered400: a stream whose client stops sending
// its body is answered 400 at the listener's idle timeout, as an HTTP/1.1
// request whose body stalls is, rather than waiting without end.
func TestHTTP2StalledBodyAnswered400(t *testing.T) {
	b := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{b.addr},
		listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true", "idle_timeout.timeout_seconds": "1"}})
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("ten bytes!")) // then nothing
	req, _ := http.NewRequest("POST", lb.url+"/upload", pr)
	req.ContentLength = 1000
	start := time.Now()
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusBadRequest || took < time.Second || took > 5*time.Second {
		t.Errorf("got %s after %v, want 400 at the idle timeout (1 s)", resp.Status, took)
	}
}

// TestH2CBrokenPrefaceClosed: on a listener that takes HTTP/2 with prior
// knowledge, a connection whose first request names no HTTP/1 version (a
// broken HTTP/2 preface, h2spec 3.5/2) is closed without an answer; on
// one that does not, it is a malformed HTTP/1.1 request, answered 400.
func TestH2CBrokenPrefaceClosed(t *testing.T) {
	b := startBackend(t, "a")
	for _, h2c := range []bool{true, false} {
		lb := startLB(t, lbConfig{targets: []string{b.addr},
			listenAttrs: map[string]string{"routing.http2.h2c.enabled": fmt.Sprint(h2c)}})
		c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "INVALID CONNECTION PREFACE\r\n\r\n")
		got, err := io.ReadAll(c)
		c.Close()
		switch {
		case err != nil:
			t.Errorf("h2c %v: %v, want the connection closed", h2c, err)
		case h2c && len(got) > 0:
			t.Errorf("h2c on: got %q, want the connection closed without an answer", got)
		case !h2c && !strings.HasPrefix(string(got), "HTTP/1.1 400 "):
			t.Errorf("h2c off: got %q, want a 400", got)
		}
	}
}
