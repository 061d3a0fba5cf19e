package conformance_test

import "testing"

// TestResponsesWithoutBody: responses that have no body whatever their
// header says (a HEAD response, 204, 304: RFC 9112 §6.3) reach the client
// with their header intact and without a body, and the client's connection
// stays usable: the next request on it gets its own response.
func TestResponsesWithoutBody(t *testing.T) {
	t.Parallel()
	target := startResponder(t, func(_ *targetConn, m *message) string {
		switch m.StartLine {
		case "HEAD /length HTTP/1.1":
			return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\nETag: \"v1\"\r\n\r\n"
		case "HEAD /chunked HTTP/1.1":
			return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
		case "GET /204 HTTP/1.1", "DELETE /204 HTTP/1.1":
			return "HTTP/1.1 204 No Content\r\nX-Deleted: yes\r\n\r\n"
		case "GET /304 HTTP/1.1":
			// A 304 may carry the selected representation's length.
			return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1000\r\nCache-Control: max-age=60\r\n\r\n"
		case "GET /after HTTP/1.1":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter"
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	})
	l := startLatch(t, target.addr)
	cases := []struct {
		name, method, path string
		status             int
		header             []field // must arrive as sent
	}{
		{"HEAD with Content-Length", "HEAD", "/length", 200, []field{{"Content-Length", "1000"}, {"ETag", `"v1"`}}},
		{"HEAD of a chunked resource", "HEAD", "/chunked", 200, []field{{"Content-Type", "text/plain"}}},
		{"204 to GET", "GET", "/204", 204, []field{{"X-Deleted", "yes"}}},
		{"204 to DELETE", "DELETE", "/204", 204, []field{{"X-Deleted", "yes"}}},
		{"304", "GET", "/304", 304, []field{{"ETag", `"v1"`}, {"Cache-Control", "max-age=60"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, l.addr)
			for i := range 2 { // twice, then a GET: the connection stays in step
				c.write(tc.method + " " + tc.path + " HTTP/1.1\r\nHost: example.com\r\n\r\n")
				resp := c.response(tc.method)
				if resp.status() != tc.status {
					t.Fatalf("%s %s (#%d): got\n%s\nwant %d", tc.method, tc.path, i+1, resp, tc.status)
				}
				for _, f := range tc.header {
					if got := resp.get(f.Name); got != f.Value {
						t.Errorf("%s: got %q, want %q", f.Name, got, f.Value)
					}
				}
				if tc.status == 204 && (resp.has("Content-Length") || resp.has("Transfer-Encoding")) {
					// RFC 9110 §8.6, RFC 9112 §6.1: a 204 has neither.
					t.Errorf("204 with framing: Content-Length %q, Transfer-Encoding %q", resp.get("Content-Length"), resp.get("Transfer-Encoding"))
				}
			}
			c.write("GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n")
			resp := c.response("GET")
			if resp.status() != 200 || string(resp.Body) != "after" {
				t.Errorf("the next request on the connection: got\n%s\nwant 200 %q (a body was sent where none belongs?)", resp, "after")
			}
		})
	}
}
