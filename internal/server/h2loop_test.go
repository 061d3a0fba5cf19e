package server

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// silentTarget accepts connections, reads what comes, and never answers;
// it closes them when the test ends.
func silentTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go io.Copy(io.Discard, c)
				<-done
			}()
		}
	}()
	t.Cleanup(func() { close(done); ln.Close() })
	return ln.Addr().String()
}

// TestHTTP2TargetTimeoutAnsweredAtOnce: an HTTP/2 stream served on an
// event loop whose target never answers is answered 504 at the listener's
// idle timeout, when the loop's tick finds the wait over, not later when
// something else has the connection's output written (its own idle
// timeout, a whole timeout after).
func TestHTTP2TargetTimeoutAnsweredAtOnce(t *testing.T) {
	lb := startLB(t, lbConfig{targets: []string{silentTarget(t)},
		listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true", "idle_timeout.timeout_seconds": "1"}})
	start := time.Now()
	resp, err := h2cClient().Get(lb.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusGatewayTimeout || took > 1700*time.Millisecond {
		t.Errorf("got %s after %v, want 504 at the idle timeout (1 s)", resp.Status, took)
	}
}
