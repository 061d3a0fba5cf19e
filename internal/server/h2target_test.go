package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startH2Target serves cleartext HTTP/2 only (prior knowledge): an
// HTTP/1.1 request to it fails, so a passing test proves latch spoke
// HTTP/2 to it.
func startH2Target(t *testing.T, name string) string {
	t.Helper()
	return serveH2C(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Saw-Path", r.RequestURI)
		w.Header().Set("X-Saw-XFF", r.Header.Get("X-Forwarded-For"))
		switch r.URL.Path {
		case "/healthz":
		case "/upload":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		case "/grpc":
			w.Header().Set("Trailer", "Grpc-Status")
			io.Copy(io.Discard, r.Body)
			// What came as the request's trailer section, and whether a
			// trailer leaked into its header section.
			w.Header().Set("X-Saw-Trailer", fmt.Sprintf("%q", r.Trailer.Get("X-Checksum")))
			w.Header().Set("X-Saw-Header", r.Header.Get("X-Checksum"))
			io.WriteString(w, "payload")
			w.Header().Set("Grpc-Status", "0")
		default:
			io.WriteString(w, name)
		}
	})
}

// serveH2C serves h with cleartext HTTP/2 only (prior knowledge) and
// returns its address.
func serveH2C(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestHTTP2Targets(t *testing.T) {
	a, b := startH2Target(t, "a"), startH2Target(t, "b")
	lb := startLB(t, lbConfig{targets: []string{a, b, closedPort(t)}, sticky: true, health: fastHealth,
		listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"},
		extraGroup:  "    protocol_version: HTTP2\n"})
	lb.waitFor(t, 5*time.Second, "the two live targets healthy over HTTP/2", func() bool { return healthyCount(lb, "web") == 2 })

	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1 client", client}, {"HTTP/2 client", h2cClient()}} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := c.client.Get(lb.url + "/a%2Fb?x=1")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Proto") != "HTTP/2.0" {
				t.Fatalf("status %d, the target saw %q; want 200 over HTTP/2.0", resp.StatusCode, resp.Header.Get("X-Proto"))
			}
			if got := resp.Header.Get("X-Saw-Path"); got != "/a%2Fb?x=1" {
				t.Errorf("the target saw :path %q, want it verbatim", got)
			}
			if got := resp.Header.Get("X-Saw-XFF"); got != "127.0.0.1" {
				t.Errorf("X-Forwarded-For %q", got)
			}
			var cookie string
			for _, ck := range resp.Cookies() {
				if ck.Name == "AWSALB" {
					cookie = ck.Value
				}
			}
			owner := resp.Header.Get("X-Backend")
			for range 5 {
				req, _ := http.NewRequest("GET", lb.url+"/", nil)
				req.Header.Set("Cookie", "AWSALB="+cookie)
				r, err := c.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.Header.Get("X-Backend") != owner {
					t.Fatalf("the session went to %s, want %s", r.Header.Get("X-Backend"), owner)
				}
			}

			// 8 MiB up, with and without a known length.
			body := bytes.Repeat([]byte("latch/h2 "), 8<<20/9)
			want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body))
			for _, known := range []bool{true, false} {
				var rd io.Reader = bytes.NewReader(body)
				if !known {
					rd = io.MultiReader(rd) // hides the length: sent chunked, or as DATA frames
				}
				r, err := c.client.Post(lb.url+"/upload", "application/octet-stream", rd)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if string(got) != want {
					t.Errorf("8 MiB upload (length known %v): the target got %q, want %q", known, got, want)
				}
			}

			// gRPC style: request trailers go, response trailers come back.
			// (A body of unknown length: Go's HTTP/1.1 client drops
			// trailers after a Content-Length body.)
			req, _ := http.NewRequest("POST", lb.url+"/grpc", io.MultiReader(strings.NewReader("x")))
			req.Header.Set("TE", "trailers")
			req.Trailer = http.Header{"X-Checksum": {"c0ffee"}}
			r, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(r.Body)
			r.Body.Close()
			if r.Trailer.Get("Grpc-Status") != "0" {
				t.Errorf("trailers: got %v, want Grpc-Status: 0", r.Trailer)
			}
			if got := r.Header.Get("X-Saw-Trailer"); got != `"c0ffee"` {
				t.Errorf("the target's request trailer X-Checksum: got %s, want \"c0ffee\"", got)
			}
			if got := r.Header.Get("X-Saw-Header"); got != "" {
				t.Errorf("the request trailer reached the target as a header: %q", got)
			}
		})
	}

	// Fields that may not be trailers do not pass (Go's HTTP/2 server
	// resets a stream whose trailers hold them), even when announced.
	conn, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /grpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"+
		"Trailer: X-Checksum, Connection, Content-Length, Content-Type\r\n\r\n"+
		"1\r\nx\r\n0\r\nX-Checksum: beef\r\nConnection: close\r\nContent-Length: 5\r\nContent-Type: a/b\r\n\r\n")
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(r.Body)
	if r.StatusCode != 200 || r.Header.Get("X-Saw-Trailer") != `"beef"` {
		t.Errorf("trailers with forbidden fields: got %s, the target saw X-Checksum %s; want 200, \"beef\"", r.Status, r.Header.Get("X-Saw-Trailer"))
	}
}

// TestHTTP2TargetRefusingConnections: a connect failure to an HTTP/2
// target is retried on another target, as on the HTTP/1.1 path.
func TestHTTP2TargetRefusingConnections(t *testing.T) {
	live := startH2Target(t, "live")
	lb := startLB(t, lbConfig{targets: []string{closedPort(t), live}, extraGroup: "    protocol_version: HTTP2\n"})
	for i := range 10 {
		if r := get(t, lb.url+"/", ""); r.status != 200 || r.backend != "live" {
			t.Fatalf("request %d: %d from %q, want 200 from the live target", i, r.status, r.backend)
		}
	}
}
