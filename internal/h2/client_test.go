package h2

import (
	"bytes"
	"context"
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

	"golang.org/x/net/http2"
)

// h2cClient is golang.org/x/net/http2's client speaking h2c with prior
// knowledge to the test server (or TLS when tlsOn).
func h2cClient(t testing.TB, tlsOn bool) *http.Client {
	tr := &http2.Transport{AllowHTTP: !tlsOn}
	if tlsOn {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}
	} else {
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (srv *testServer) url(tlsOn bool, path string) string {
	if tlsOn {
		return "https://" + srv.addr + path
	}
	return "http://" + srv.addr + path
}

// pattern is n bytes that differ from one offset to the next, so that a
// body moved or cut shows.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed + i>>8)
	}
	return b
}

// TestEchoConcurrentStreams: 300 requests at once on one client, bodies
// from 1 byte to 256 KiB, each echoed whole, over h2c and TLS.
func TestEchoConcurrentStreams(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprint("tls=", tlsOn), func(t *testing.T) {
			srv := startServer(t, Config{}, tlsOn)
			cl := h2cClient(t, tlsOn)
			const n = 300
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := pattern(1+(i*877)%(256<<10), i)
					req, _ := http.NewRequest("POST", srv.url(tlsOn, fmt.Sprintf("/echo/%d", i)), bytes.NewReader(body))
					req.Header.Set("X-Echo", fmt.Sprint(i))
					resp, err := cl.Do(req)
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case err != nil:
						errs <- err
					case resp.StatusCode != 200 || resp.Header.Get("X-Echo") != fmt.Sprint(i):
						errs <- fmt.Errorf("request %d: got status %d, x-echo %q; want 200, %d", i, resp.StatusCode, resp.Header.Get("X-Echo"), i)
					case !bytes.Equal(got, body):
						errs <- fmt.Errorf("request %d: got a body of %d bytes, not the %d sent", i, len(got), len(body))
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := srv.ctr.Streams.Load(); got != n {
				t.Errorf("got %d streams counted, want %d", got, n)
			}
		})
	}
}

// TestLargeBodiesBothWays: a 16 MiB upload echoed back, and a 32 MiB
// download, through flow-control windows far smaller.
func TestLargeBodiesBothWays(t *testing.T) {
	srv := startServer(t, Config{StreamWindow: 64 << 10, ConnWindow: 128 << 10}, false)
	cl := h2cClient(t, false)
	body := pattern(16<<20, 3)
	resp, err := cl.Post(srv.url(false, "/"), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes back (%v), want the %d sent", len(got), err, len(body))
	}
	resp, err = cl.Get(srv.url(false, fmt.Sprintf("/big?%d", 32<<20)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 32<<20 {
		t.Fatalf("got %d bytes (%v), want %d", n, err, 32<<20)
	}
}

// TestTrailersBothWays: a request's trailers reach the handler after its
// body, and come back as the response's.
func TestTrailersBothWays(t *testing.T) {
	srv := startServer(t, Config{}, false)
	cl := h2cClient(t, false)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", srv.url(false, "/"), pr)
	req.Trailer = http.Header{"Grpc-Status": nil, "X-Sum": nil}
	go func() {
		pw.Write([]byte("hello "))
		pw.Write([]byte("trailers"))
		req.Trailer.Set("Grpc-Status", "0")
		req.Trailer.Set("X-Sum", "abc")
		pw.Close()
	}()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != "hello trailers" {
		t.Fatalf("got body %q (%v), want %q", got, err, "hello trailers")
	}
	if g, s := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("X-Sum"); g != "0" || s != "abc" {
		t.Errorf("got trailers grpc-status %q, x-sum %q; want 0, abc", g, s)
	}
}

// TestResetsBothWays: a client that gives up on a request resets its
// stream, and the handler hears of it (Done with CANCEL), which is how a
// target request gets aborted; a handler's reset reaches the client as a
// stream error.
func TestResetsBothWays(t *testing.T) {
	srv := startServer(t, Config{}, false)
	cl := h2cClient(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.url(false, "/hold"), nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := cl.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-srv.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the handler within 5 s")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v from the cancelled request, want context.Canceled", err)
	}
	select {
	case code := <-srv.done:
		if code != Cancel {
			t.Errorf("got Done with %v, want CANCEL", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not told of the reset within 5 s")
	}

	resp, err := cl.Get(srv.url(false, "/reset"))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	var se http2.StreamError
	if !errors.As(err, &se) || se.Code != http2.ErrCodeInternal {
		t.Errorf("got %v from a stream the handler reset, want a stream error INTERNAL_ERROR", err)
	}
	// The connection goes on.
	if resp, err := cl.Get(srv.url(false, "/")); err != nil || resp.StatusCode != 200 {
		t.Errorf("got %v after the resets, want 200", err)
	} else {
		resp.Body.Close()
	}
}

// TestGoAwayFinishesStreams: Shutdown sends GOAWAY, the streams in flight
// are answered in full, and the connection then closes cleanly.
func TestGoAwayFinishesStreams(t *testing.T) {
	srv := startServer(t, Config{}, false)
	cl := h2cClient(t, false)
	const n = 5
	type result struct {
		body string
		err  error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			resp, err := cl.Get(srv.url(false, "/hold"))
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{string(b), err}
		}()
	}
	var held []*Stream
	for range n {
		select {
		case s := <-srv.held:
			held = append(held, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d requests reached the handler within 5 s", len(held), n)
		}
	}
	srv.shutdown()
	for i, s := range held {
		answerHeld(s, fmt.Sprint("answer ", i))
	}
	for range n {
		r := <-results
		if r.err != nil || !strings.HasPrefix(r.body, "answer ") {
			t.Errorf("got %q (%v) for a stream in flight at the GOAWAY, want its answer", r.body, r.err)
		}
	}
	select {
	case err := <-srv.errs:
		if err != nil {
			t.Errorf("Serve returned %v after the graceful close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the connection did not close within 5 s of its last stream")
	}
}

// TestHeadLimitsAsHTTP1: a field over 16 KiB is refused with h1's answer
// (400 and its cause), as over HTTP/1.1; one at the limit passes.
func TestHeadLimitsAsHTTP1(t *testing.T) {
	srv := startServer(t, Config{}, false)
	cl := h2cClient(t, false)
	for _, tc := range []struct {
		name   string
		value  int
		status int
	}{
		{"at the limit", 16<<10 - len("X-Big: "), 200},
		{"20 KB", 20000, 400},
	} {
		req, _ := http.NewRequest("GET", srv.url(false, "/"), nil)
		req.Header.Set("X-Big", strings.Repeat("b", tc.value))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: got %d %q, want %d", tc.name, resp.StatusCode, body, tc.status)
		}
		if tc.status == 400 && !strings.Contains(string(body), "longer than 16 KiB") {
			t.Errorf("%s: got body %q, want h1's cause", tc.name, body)
		}
	}
}

// TestEarlyAnswer: a handler that answers before the request's body is in
// (at its head, or at its first DATA frame) ends the stream; the client
// gets the answer and stops sending (RST_STREAM NO_ERROR), and the
// connection goes on.
func TestEarlyAnswer(t *testing.T) {
	srv := startServer(t, Config{}, false)
	cl := h2cClient(t, false)
	for _, path := range []string{"/early", "/early-data"} {
		resp, err := cl.Post(srv.url(false, path), "application/octet-stream", bytes.NewReader(pattern(4<<20, 1)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(body) != "too large" {
			t.Errorf("%s: got %d %q, want 413 %q", path, resp.StatusCode, body, "too large")
		}
	}
	if resp, err := cl.Get(srv.url(false, "/")); err != nil || resp.StatusCode != 200 {
		t.Errorf("got %v after the early answers, want 200", err)
	} else {
		resp.Body.Close()
	}
}
