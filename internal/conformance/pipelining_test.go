package conformance_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestPipelining: ten requests written back to back in one write on one
// connection (GET, HEAD, POST with Content-Length and chunked bodies) get
// ten responses, in order, each the answer to its own request (RFC 9112
// §9.3.2).
func TestPipelining(t *testing.T) {
	t.Parallel()
	target := startEchoTarget(t)
	l := startLatch(t, target.addr)
	type request struct{ method, path, raw, body string }
	var reqs []request
	for i := range 10 {
		path := fmt.Sprintf("/pipelined/%d", i)
		r := request{path: path}
		switch i % 4 {
		case 0:
			r.method = "GET"
			r.raw = "GET " + path + " HTTP/1.1\r\nHost: example.com\r\n\r\n"
		case 1:
			r.method = "HEAD"
			r.raw = "HEAD " + path + " HTTP/1.1\r\nHost: example.com\r\n\r\n"
		case 2:
			r.method, r.body = "POST", strings.Repeat(fmt.Sprintf("body %d;", i), 100*i)
			r.raw = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n%s", path, len(r.body), r.body)
		case 3:
			r.method, r.body = "POST", fmt.Sprintf("chunked body %d", i)
			r.raw = "POST " + path + " HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n" +
				chunk(r.body[:7]) + chunk(r.body[7:]) + "0\r\n\r\n"
		}
		reqs = append(reqs, r)
	}
	var all strings.Builder
	for _, r := range reqs {
		all.WriteString(r.raw)
	}
	c := dialRaw(t, l.addr)
	c.write(all.String())
	for i, r := range reqs {
		resp := c.response(r.method)
		wantLine := r.method + " " + r.path + " HTTP/1.1"
		if got := resp.get("X-Echo-Line"); got != wantLine {
			t.Fatalf("response %d: answers %q, want %q\n%s", i, got, wantLine, resp)
		}
		if got, want := resp.get("X-Echo-Body-Sha256"), sha([]byte(r.body)); got != want {
			t.Errorf("response %d (%s): the target got a body with sha256 %s, want %s", i, wantLine, got, want)
		}
		// readResponse reads no body after a HEAD: a stray one would
		// come first in the next response, which the next turn (or the
		// request after the loop) then fails to read.
		if r.method != "HEAD" {
			if e := decodeEcho(t, resp); e.Body != r.body {
				t.Errorf("response %d: echoed body %q, want %q", i, abridge(e.Body, 80), abridge(r.body, 80))
			}
		}
	}
	// The last request is a HEAD: one more request shows that nothing
	// followed its response.
	if last := reqs[len(reqs)-1]; last.method != "HEAD" {
		t.Fatalf("the last pipelined request is a %s, want a HEAD", last.method)
	}
	c.write("GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if got := c.response("GET").get("X-Echo-Line"); got != "GET /after HTTP/1.1" {
		t.Errorf("the request after the last HEAD answers %q, want %q: bytes after the HEAD's response?", got, "GET /after HTTP/1.1")
	}
}
