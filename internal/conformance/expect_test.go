package conformance_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestExpectContinue: a client that sends `Expect: 100-continue` and waits
// for 100 Continue before its body gets it (from latch or relayed from the
// target: RFC 9110 §10.1.1 allows either), then the final response; the
// target gets the whole body. Both framings of the body, and a second
// request on the same connection afterwards.
func TestExpectContinue(t *testing.T) {
	t.Parallel()
	// A net/http target honours Expect itself: it sends 100 Continue when
	// its handler starts reading the body, if latch forwards the expectation.
	l := startLatch(t, hashTarget(t))
	body := strings.Repeat("expected body ", 1000)
	cases := []struct{ name, head, body, want string }{
		{"content-length", fmt.Sprintf("Content-Length: %d\r\n", len(body)), body,
			fmt.Sprintf("len=%d cl=%d te= sha=%s", len(body), len(body), sha([]byte(body)))},
		{"chunked", "Transfer-Encoding: chunked\r\n", chunk(body[:5000]) + chunk(body[5000:]) + "0\r\n\r\n",
			fmt.Sprintf("len=%d cl=-1 te=chunked sha=%s", len(body), sha([]byte(body)))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, l.addr)
			c.write("POST /upload HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n" + tc.head + "\r\n")
			interim := c.next("POST")
			if interim.status() != 100 {
				t.Fatalf("before sending the body: got\n%s\nwant 100 Continue", interim)
			}
			c.write(tc.body)
			resp := c.response("POST")
			if resp.status() != 200 || string(resp.Body) != tc.want {
				t.Errorf("got %d %q, want 200 %q", resp.status(), resp.Body, tc.want)
			}
			c.write("GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n")
			if resp := c.response("GET"); resp.status() != 200 {
				t.Errorf("the next request on the connection: got\n%s", resp)
			}
		})
	}
}

// TestExpectUnknown: an expectation other than 100-continue cannot be met.
// latch's choice (RFC 9110 §10.1.1 allows it; Apache httpd and Go's net/http
// do the same) is to answer 417 Expectation Failed itself, without bothering
// the target. (HAProxy forwards the request instead.)
func TestExpectUnknown(t *testing.T) {
	t.Parallel()
	target := startEchoTarget(t)
	l := startLatch(t, target.addr)
	c := dialRaw(t, l.addr)
	c.write("POST /upload HTTP/1.1\r\nHost: example.com\r\nExpect: the-impossible\r\nContent-Length: 4\r\n\r\nbody")
	resp := c.response("POST")
	if resp.status() != 417 {
		t.Errorf("got\n%s\nwant 417 Expectation Failed", resp)
	}
	if n := target.requests.Load(); n != 0 {
		t.Errorf("the target got %d requests, want none", n)
	}
}
