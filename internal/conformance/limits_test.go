package conformance_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// kib returns a string of n KiB (minus less) of one letter.
func kib(n float64, less int) string { return strings.Repeat("a", int(n*1024)-less) }

// TestRequestHeaderLimits: latch applies ALB's limits to a request's head: a
// request line of 16 KiB, one field line of 16 KiB, the whole head 64 KiB.
// Within them a request passes untouched; beyond them latch answers 4xx
// itself (ALB: 400; 414 and 431 are the RFCs' more precise codes), with a
// body naming what was too large, and the target never sees the request.
func TestRequestHeaderLimits(t *testing.T) {
	t.Parallel()
	target := startEchoTarget(t)
	l := startLatch(t, target.addr)
	var bigHeader strings.Builder // 60 KiB in 5 fields of 12 KiB
	for i := range 5 {
		fmt.Fprintf(&bigHeader, "X-Big-%d: %s\r\n", i, kib(12, 12))
	}
	var tooBigHeader strings.Builder // 72 KiB in 6 fields of 12 KiB
	for i := range 6 {
		fmt.Fprintf(&tooBigHeader, "X-Big-%d: %s\r\n", i, kib(12, 12))
	}
	lineCause := []string{"request line", "request-line", "uri", "url", "request target", "request-target"}
	headerCause := []string{"header", "field"}
	cases := []struct {
		name   string
		path   string // after "/"
		fields string
		pass   bool
		codes  []int    // when !pass: acceptable statuses
		cause  []string // when !pass: the body names one of these
	}{
		{"12 KiB cookie", "", "Cookie: session=" + kib(12, 18) + "\r\n", true, nil, nil},
		{"60 KiB header in 5 fields", "", bigHeader.String(), true, nil, nil},
		{"request line just under 16 KiB", kib(15.5, 0), "", true, nil, nil},
		{"one field just under 16 KiB", "", "X-Big: " + kib(15.5, 0) + "\r\n", true, nil, nil},
		{"request line over 16 KiB", kib(17, 0), "", false, []int{400, 414}, lineCause},
		{"one field over 16 KiB", "", "Cookie: session=" + kib(17, 0) + "\r\n", false, []int{400, 431}, headerCause},
		{"header over 64 KiB in all", "", tooBigHeader.String(), false, []int{400, 431}, headerCause},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, l.addr)
			before := target.requests.Load()
			req := "GET /" + tc.path + " HTTP/1.1\r\nHost: example.com\r\n" + tc.fields + "\r\n"
			// latch may answer and close before it has read all of an
			// oversized request; the answer is what counts.
			c.c.Write([]byte(req))
			resp := c.response("GET")
			if tc.pass {
				e := decodeEcho(t, resp)
				if e.Line != "GET /"+tc.path+" HTTP/1.1" {
					t.Errorf("request line at the target: got %d bytes, want %d", len(e.Line), len("GET /"+tc.path+" HTTP/1.1"))
				}
				for _, f := range parseFields(tc.fields) {
					if got := e.get(f.Name); got != f.Value {
						t.Errorf("%s at the target: got %d bytes, want %d", f.Name, len(got), len(f.Value))
					}
				}
				return
			}
			if !containsInt(tc.codes, resp.status()) || !containsAny(strings.ToLower(string(resp.Body)), tc.cause) {
				t.Errorf("got\n%s\nwant one of %v with a body naming one of %q", resp, tc.codes, tc.cause)
			}
			if n := target.requests.Load() - before; n != 0 {
				t.Errorf("the target got the request (%d)", n)
			}
		})
	}
}

// TestResponseHeaderLimits: a target's response head passes up to ALB's
// 32 KiB; a larger one is an invalid response: the client gets latch's 502.
func TestResponseHeaderLimits(t *testing.T) {
	t.Parallel()
	target := startResponder(t, func(_ *targetConn, m *message) string {
		// GET /<n fields>/<bytes each>
		parts := strings.Split(strings.Fields(m.StartLine)[1], "/")
		n, _ := strconv.Atoi(parts[1])
		size, _ := strconv.Atoi(parts[2])
		resp := "HTTP/1.1 200 OK\r\n"
		for i := range n {
			resp += fmt.Sprintf("X-Big-%d: %s\r\n", i, strings.Repeat("b", size))
		}
		return resp + "Content-Length: 2\r\n\r\nok"
	})
	l := startLatch(t, target.addr)
	cases := []struct {
		name         string
		fields, size int
		pass         bool
	}{
		{"8 KiB field", 1, 8 << 10, true},
		{"30 KiB field", 1, 30 << 10, true},
		{"30 KiB in 3 fields", 3, 10 << 10, true},
		{"40 KiB field", 1, 40 << 10, false},
		{"40 KiB in 4 fields", 4, 10 << 10, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, l.addr)
			c.write(fmt.Sprintf("GET /%d/%d HTTP/1.1\r\nHost: example.com\r\n\r\n", tc.fields, tc.size))
			resp := c.response("GET")
			if !tc.pass {
				if resp.status() != 502 {
					t.Errorf("got %d (%d header fields), want latch's 502", resp.status(), len(resp.Header))
				}
				return
			}
			if resp.status() != 200 || string(resp.Body) != "ok" {
				t.Fatalf("got %d %q, want 200 ok", resp.status(), resp.Body)
			}
			for i := range tc.fields {
				if got := resp.get(fmt.Sprintf("X-Big-%d", i)); got != strings.Repeat("b", tc.size) {
					t.Errorf("X-Big-%d: got %d bytes, want %d", i, len(got), tc.size)
				}
			}
		})
	}
}

func parseFields(lines string) []field {
	var fs []field
	for _, line := range strings.Split(strings.TrimSuffix(lines, "\r\n"), "\r\n") {
		if name, value, ok := strings.Cut(line, ":"); ok {
			fs = append(fs, field{name, strings.TrimSpace(value)})
		}
	}
	return fs
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
