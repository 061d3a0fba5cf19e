package server

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// HTTP/2 error codes a resetting target sends.
const (
	h2GoAway        = 0x0 // not a reset: a GOAWAY that leaves the stream out
	h2ProtocolError = 0x1
	h2RefusedStream = 0x7
)

// resetH2Target speaks just enough HTTP/2 to answer every request with a
// RST_STREAM of code (or, for h2GoAway, a GOAWAY whose last stream is 0:
// the request is left unprocessed), and counts the requests (HEADERS
// frames) it gets.
func resetH2Target(t *testing.T, code byte, requests *atomic.Int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frame := func(w io.Writer, typ, flags byte, stream uint32, p []byte) {
		h := []byte{byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p)), typ, flags, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(h[5:], stream)
		w.Write(append(h, p...))
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := io.ReadFull(br, make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))); err != nil {
					return
				}
				frame(c, 0x4, 0, 0, nil) // SETTINGS
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
						frame(c, 0x4, 0x1, 0, nil) // SETTINGS ACK
					case typ == 0x1 && code == h2GoAway:
						requests.Add(1)
						frame(c, 0x7, 0, 0, make([]byte, 8)) // GOAWAY, last stream 0, NO_ERROR
					case typ == 0x1:
						requests.Add(1)
						frame(c, 0x3, 0, stream, []byte{0, 0, 0, code}) // RST_STREAM
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestHTTP2TargetNeverGetsAPOSTTwice: Go's HTTP/2 client sends a request
// with no body again by itself, without end, when the target resets its
// stream with PROTOCOL_ERROR (go.dev/issue/47635), whatever its method;
// latch stops it: a POST or PATCH reaches the target once (502), an
// idempotent request goes once to another target. A stream the target
// refused (REFUSED_STREAM: never processed) goes elsewhere whatever its
// method, as one a GOAWAY left out.
func TestHTTP2TargetNeverGetsAPOSTTwice(t *testing.T) {
	for _, c := range []struct {
		name string
		code byte
		// what a request without a body gets, by method
		want map[string]int
	}{
		{"PROTOCOL_ERROR", h2ProtocolError, map[string]int{"POST": 502, "PATCH": 502, "DELETE": 200, "GET": 200}},
		{"REFUSED_STREAM", h2RefusedStream, map[string]int{"POST": 200, "PATCH": 200, "DELETE": 200, "GET": 200}},
		{"GOAWAY", h2GoAway, map[string]int{"POST": 200, "PATCH": 200, "DELETE": 200, "GET": 200}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var requests atomic.Int64
			bad := resetH2Target(t, c.code, &requests)
			good := serveH2C(t, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Backend", "good") })
			lb := startLB(t, lbConfig{targets: []string{bad, good}, sticky: true, extraGroup: "    protocol_version: HTTP2\n",
				attrs: map[string]string{"passive_health.enabled": "false"}})
			var like string
			for like == "" {
				like = get(t, lb.url+"/", "").cookie
			}
			cookie := "AWSALB=" + sealFor(t, lb, like, bad)
			for _, method := range []string{"POST", "PATCH", "DELETE", "GET"} {
				requests.Store(0)
				req, _ := http.NewRequest(method, lb.url+"/", nil)
				req.Header.Set("Cookie", cookie)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", method, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				want, from := c.want[method], ""
				if want == 200 {
					from = "good"
				}
				if resp.StatusCode != want || resp.Header.Get("X-Backend") != from || requests.Load() != 1 {
					t.Errorf("%s without a body: %d from %q, the resetting target saw it %d times; want %d from %q, seen once",
						method, resp.StatusCode, resp.Header.Get("X-Backend"), requests.Load(), want, from)
				}
			}
		})
	}
}
