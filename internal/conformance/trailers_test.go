package conformance_test

import (
	"io"
	"slices"
	"testing"
)

// TestTrailers: trailer fields pass both ways as trailers (not dropped, not
// moved into the header section), and `TE: trailers` reaches the target
// (gRPC over HTTP/1.1 and others need it end to end). RFC 9110 §10.1.4 also
// wants `Connection: TE` next to it; the test allows but does not require it.
func TestTrailers(t *testing.T) {
	t.Parallel()

	t.Run("request", func(t *testing.T) {
		t.Parallel()
		target := startEchoTarget(t)
		l := startLatch(t, target.addr)
		c := dialRaw(t, l.addr)
		c.write("POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Count\r\n\r\n" +
			chunk("hello, ") + chunk("trailers") + "0\r\nX-Checksum: abc123\r\nX-Count: 2\r\nX-Count: 3\r\n\r\n")
		resp := c.response("POST")
		e := decodeEcho(t, resp)
		if e.Body != "hello, trailers" {
			t.Errorf("body: got %q, want %q", e.Body, "hello, trailers")
		}
		for _, want := range []field{{"X-Checksum", "abc123"}, {"X-Count", "2, 3"}} {
			if got := fieldList(e.Trailer, want.Name); got != want.Value {
				t.Errorf("trailer %s at the target: got %q (trailer section %v), want %q", want.Name, got, e.Trailer, want.Value)
			}
			if got := e.get(want.Name); got != "" {
				t.Errorf("trailer %s was moved into the header section: %q", want.Name, got)
			}
		}
	})

	t.Run("response", func(t *testing.T) {
		t.Parallel()
		target := startResponder(t, func(_ *targetConn, m *message) string {
			head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Declared\r\n\r\n"
			trailer := "X-Declared: d1\r\nX-Declared: d2\r\n"
			if m.StartLine == "GET /undeclared HTTP/1.1" {
				// The Trailer header field is only advice (RFC 9110
				// §6.6.2): a trailer it does not name is a trailer too.
				head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				trailer = "X-Undeclared: u\r\n"
			}
			return head + chunk("body ") + chunk("text") + "0\r\n" + trailer + "\r\n"
		})
		l := startLatch(t, target.addr)
		client := newClient(t)
		for _, tc := range []struct {
			path, name string
			want       []string
		}{
			{"/declared", "X-Declared", []string{"d1", "d2"}},
			{"/undeclared", "X-Undeclared", []string{"u"}},
		} {
			resp, err := client.Get(l.url(tc.path))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "body text" {
				t.Errorf("%s: body %q, %v", tc.path, body, err)
			}
			if got := resp.Trailer.Values(tc.name); !slices.Equal(got, tc.want) {
				t.Errorf("%s: trailer %s: got %q (all trailers %v), want %q", tc.path, tc.name, got, resp.Trailer, tc.want)
			}
			if got := resp.Header.Values(tc.name); len(got) != 0 {
				t.Errorf("%s: trailer %s was moved into the header section: %q", tc.path, tc.name, got)
			}
		}
	})

	t.Run("TE trailers", func(t *testing.T) {
		t.Parallel()
		target := startEchoTarget(t)
		l := startLatch(t, target.addr)
		for _, te := range []string{"trailers", "trailers, gzip;q=0.5", "gzip;q=0.5, Trailers"} {
			c := dialRaw(t, l.addr)
			c.write("GET /grpc-ish HTTP/1.1\r\nHost: example.com\r\nTE: " + te + "\r\n\r\n")
			e := decodeEcho(t, c.response("GET"))
			// TE is hop-by-hop: only the trailers element, which latch
			// honours (it forwards trailers), passes on.
			if got := fieldTokens(e.Header, "TE"); !slices.Equal(got, []string{"trailers"}) {
				t.Errorf("client TE %q: the target got TE %q, want trailers", te, e.get("TE"))
			}
		}
	})
}
