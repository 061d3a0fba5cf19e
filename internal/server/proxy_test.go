package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/proxy/proxytest"
	"github.com/latch-lb/latch/internal/testnet"
)

func TestErrorsAsALB(t *testing.T) {
	t.Run("503 no registered targets", func(t *testing.T) {
		lb := startLB(t, lbConfig{})
		r := get(t, lb.url+"/", "")
		if r.status != 503 || !strings.Contains(r.body, `target group "web" has no registered targets`) {
			t.Errorf("got %d %q", r.status, r.body)
		}
	})
	t.Run("502 connection refused", func(t *testing.T) {
		lb := startLB(t, lbConfig{targets: []string{closedPort(t)}})
		r := get(t, lb.url+"/", "")
		if r.status != 502 || !strings.Contains(r.body, "refused the connection") {
			t.Errorf("got %d %q", r.status, r.body)
		}
		if strings.Contains(r.body, "127.0.0.1") {
			t.Errorf("the error body %q names the target's address", r.body)
		}
	})
	t.Run("502 garbage response", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, "SMTP ready\r\n\r\n")
		})
		lb := startLB(t, lbConfig{targets: []string{addr}})
		r := get(t, lb.url+"/", "")
		if r.status != 502 || !strings.Contains(r.body, "invalid response") {
			t.Errorf("got %d %q", r.status, r.body)
		}
	})
	t.Run("502 target closes without answering", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn) { bufio.NewReader(c).ReadString('\n') })
		lb := startLB(t, lbConfig{targets: []string{addr}})
		r := get(t, lb.url+"/", "")
		if r.status != 502 || !strings.Contains(r.body, "closed the connection") {
			t.Errorf("got %d %q", r.status, r.body)
		}
	})
	t.Run("504 response timeout", func(t *testing.T) {
		b := startBackend(t, "slow")
		b.handle(func(w http.ResponseWriter, r *http.Request) { time.Sleep(time.Second) })
		lb := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: map[string]string{"idle_timeout.timeout_seconds": "0.2"}})
		start := time.Now()
		r := get(t, lb.url+"/", "")
		if r.status != 504 || !strings.Contains(r.body, "did not respond within 200ms") {
			t.Errorf("got %d %q", r.status, r.body)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("the 504 took %v, want about the 200ms idle timeout", d)
		}
	})
	t.Run("504 connect timeout", func(t *testing.T) {
		addr := unresponsivePort(t)
		lb := startLB(t, lbConfig{targets: []string{addr}, attrs: map[string]string{"target_connect.timeout_seconds": "0.2"}})
		r := get(t, lb.url+"/", "")
		if r.status != 504 || !strings.Contains(r.body, "could not connect to the target within 200ms") {
			t.Errorf("got %d %q", r.status, r.body)
		}
	})
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	return testnet.RefusingAddr(t)
}

// unresponsivePort returns an address whose SYNs go unanswered: a socket
// listening with a backlog of 0 whose one queue slot is already taken.
func unresponsivePort(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue; later connects then hang in SYN-SENT.
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill the accept queue of a backlog-0 listener on this kernel")
	return ""
}

// rawServer runs handle for every connection to a plain TCP listener, and
// closes the connection when handle returns. When the test ends it closes
// the listener and every connection still open, and waits for the handlers.
func rawServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	closed := false
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close()
			}
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestForwardedHeaders(t *testing.T) {
	b := startBackend(t, "a")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Hop-Resp")
		h.Set("X-Hop-Resp", "must not reach the client")
		h.Set("Keep-Alive", "timeout=5")
		h.Add("Set-Cookie", "one=1")
		h.Add("Set-Cookie", "two=2")
		io.WriteString(w, "ok")
	})
	lb := startLB(t, lbConfig{targets: []string{b.addr}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /a%2Fb/../c?x=1&y=%20z HTTP/1.1\r\nHost: example.com\r\n" +
		"Connection: keep-alive, X-Hop-Req\r\nX-Hop-Req: secret\r\nKeep-Alive: 300\r\n" +
		"Proxy-Authorization: Basic eA==\r\nUpgrade: h2c\r\nTE: trailers\r\n" +
		"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\n" +
		"X-Latch-Session-Moved: forged\r\nX-Custom: kept\r\n\r\n"
	io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	got := b.lastRequest()
	checks := []struct {
		what, got, want string
	}{
		{"request target", got.RequestURI, "/a%2Fb/../c?x=1&y=%20z"},
		{"Host", got.Host, "example.com"},
		{"X-Forwarded-For", got.Header.Get("X-Forwarded-For"), "203.0.113.7, 127.0.0.1"},
		{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Port", got.Header.Get("X-Forwarded-Port"), lb.url[strings.LastIndexByte(lb.url, ':')+1:]},
		{"X-Custom", got.Header.Get("X-Custom"), "kept"},
		{"TE", got.Header.Get("Te"), "trailers"},
		{"X-Hop-Req (named in Connection)", got.Header.Get("X-Hop-Req"), ""},
		{"Keep-Alive", got.Header.Get("Keep-Alive"), ""},
		{"Proxy-Authorization", got.Header.Get("Proxy-Authorization"), ""},
		{"Upgrade", got.Header.Get("Upgrade"), ""},
		{"X-Latch-Session-Moved from the client", got.Header.Get("X-Latch-Session-Moved"), ""},
		{"response X-Hop-Resp", resp.Header.Get("X-Hop-Resp"), ""},
		{"response Keep-Alive", resp.Header.Get("Keep-Alive"), ""},
		{"response Set-Cookie", strings.Join(resp.Header["Set-Cookie"], "|"), "one=1|two=2"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
	if v := got.Header.Values("Connection"); len(v) != 0 {
		t.Errorf("Connection reached the target: %q", v)
	}
}

func TestStreamingBothWays(t *testing.T) {
	b := startBackend(t, "a")
	release := make(chan struct{})
	firstChunk := make(chan string, 1)
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			// Report the first piece of the upload before the client sends the rest.
			buf := make([]byte, 5)
			io.ReadFull(r.Body, buf)
			firstChunk <- string(buf)
			rest, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s%s", buf, rest)
			return
		}
		io.WriteString(w, "head;")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "tail")
	})
	lb := startLB(t, lbConfig{targets: []string{b.addr}})

	// Download: the first part arrives while the target still holds the rest.
	resp, err := client.Get(lb.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, buf); done <- err }()
	select {
	case err := <-done:
		if err != nil || string(buf) != "head;" {
			t.Fatalf("first part: %q, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first part of a streamed response did not arrive while the target held the rest")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "tail" {
		t.Errorf("rest: %q", rest)
	}

	// Upload: the target sees the first part before the client sends the rest.
	pr, pw := io.Pipe()
	go pw.Write([]byte("first"))
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := client.Post(lb.url+"/up", "text/plain", pr)
		if err != nil {
			t.Error(err)
			close(respc)
			return
		}
		respc <- resp
	}()
	select {
	case got := <-firstChunk:
		if got != "first" {
			t.Errorf("target got %q first", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the target did not get the first part of a streamed upload")
	}
	pw.Write([]byte("-second"))
	pw.Close()
	resp = <-respc
	if resp == nil {
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "first-second" {
		t.Errorf("echo: %q", body)
	}
}

func TestLargeBodiesAndTrailers(t *testing.T) {
	b := startBackend(t, "a")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Got-Trailer", r.Trailer.Get("X-Up-Sum"))
		fmt.Fprintf(w, "%d %x\n", n, h.Sum(nil))
		w.Write(bytes.Repeat([]byte("d"), 8<<20))
		w.Header().Set("X-Sum", "done")
	})
	lb := startLB(t, lbConfig{targets: []string{b.addr}})
	payload := bytes.Repeat([]byte("u"), 8<<20)
	sum := sha256.Sum256(payload)

	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(payload)
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest("POST", lb.url+"/upload", body)
		if chunked {
			req.Trailer = http.Header{"X-Up-Sum": {"abc"}}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(io.LimitReader(resp.Body, 100)).ReadString('\n')
		want := fmt.Sprintf("%d %x\n", len(payload), sum)
		if line != want {
			t.Errorf("chunked=%v: target got %q, want %q", chunked, line, want)
		}
		resp.Body.Close()
		resp, err = client.Do(mustReq(t, "POST", lb.url+"/upload", bytes.NewReader(payload), req.Trailer))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(len(want)+8<<20) {
			t.Errorf("chunked=%v: downloaded %d bytes, want %d", chunked, n, len(want)+8<<20)
		}
		if resp.Trailer.Get("X-Sum") != "done" {
			t.Errorf("response trailer: got %q, want done", resp.Trailer.Get("X-Sum"))
		}
		if chunked && resp.Header.Get("X-Got-Trailer") != "abc" {
			t.Errorf("request trailer reached the target as %q, want abc", resp.Header.Get("X-Got-Trailer"))
		}
	}
}

func mustReq(t *testing.T, method, url string, body io.Reader, trailer http.Header) *http.Request {
	req, err := http.NewRequest(method, url, io.MultiReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Trailer = trailer
	return req
}

func TestPooledConnectionClosedByTargetIsRetried(t *testing.T) {
	// A target that answers one request per connection with keep-alive, then
	// silently closes: the next request on the pooled connection must be
	// sent again on a fresh one.
	closed := make(chan struct{}, 8) // the target closed a connection
	addr := rawServer(t, func(c net.Conn) {
		defer func() { closed <- struct{}{} }()
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Backend: raw\r\n\r\nok")
	})
	lb := startLB(t, lbConfig{targets: []string{addr}})
	for i := range 5 {
		r := get(t, lb.url+"/", "")
		if r.status != 200 || r.body != "ok" {
			t.Fatalf("request %d: %d %q", i, r.status, r.body)
		}
		select {
		case <-closed: // the pooled connection is dead: the next request finds it so
		case <-time.After(5 * time.Second):
			t.Fatalf("the target did not close the connection of request %d", i)
		}
	}
}

func TestHeadAnd204(t *testing.T) {
	b := startBackend(t, "a")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/204" {
			w.WriteHeader(204)
			return
		}
		w.Header().Set("Content-Length", "1000")
		if r.Method != "HEAD" {
			w.Write(make([]byte, 1000))
		}
	})
	lb := startLB(t, lbConfig{targets: []string{b.addr}})
	for range 3 { // and the connection stays usable
		resp, err := client.Head(lb.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != 1000 {
			t.Errorf("HEAD Content-Length: got %d, want 1000", resp.ContentLength)
		}
		resp.Body.Close()
		if r := get(t, lb.url+"/204", ""); r.status != 204 || r.body != "" {
			t.Errorf("204: got %d %q", r.status, r.body)
		}
	}
}

func TestHTTP10Client(t *testing.T) {
	b := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{b.addr}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(conn) // HTTP/1.0 without keep-alive: latch closes
	if err != nil {
		t.Fatal(err)
	}
	// RFC 9112 §2.3: a server answers with the highest version it
	// conforms to, HTTP/1.1, and closes a 1.0 client's connection.
	if !bytes.HasPrefix(all, []byte("HTTP/1.1 200")) || !bytes.Contains(all, []byte("\r\nConnection: close\r\n")) ||
		!bytes.HasSuffix(all, []byte("a")) {
		t.Errorf("got %q", all)
	}
}

// TestSlowBodyKeepsTheRequestHead: a request whose body arrives after a
// pause is read into latch's buffer behind its head. If that overwrote the
// head, latch would mistake a POST for a HEAD, relay a response head
// without its body, and pool the target connection with the body unread,
// so that the next client, on another connection, got that body as its
// response (found by the h1 test suite). Every client must get its own
// response.
func TestSlowBodyKeepsTheRequestHead(t *testing.T) {
	b := startBackend(t, "a")
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		text := fmt.Sprintf("%-4s response for %-4s\n", r.Method, body)
		w.Header().Set("Content-Length", fmt.Sprint(len(text)))
		w.WriteHeader(200)
		w.(http.Flusher).Flush() // the head goes out before the body
		io.WriteString(w, text)
	})
	lb := startLB(t, lbConfig{targets: []string{b.addr}})
	addr := strings.TrimPrefix(lb.url, "http://")
	for i := range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
		time.Sleep(20 * time.Millisecond) // the body comes later, in its own read
		fmt.Fprintf(c, "HEAD")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		c.Close()
		if string(got) != "POST response for HEAD\n" {
			t.Fatalf("request %d: got %d %q, want the POST's own response", i, resp.StatusCode, got)
		}
		// Another client right after must get its own answer too.
		if r := get(t, lb.url+"/", ""); r.status != 200 || !strings.HasPrefix(r.body, "GET ") {
			t.Fatalf("the next client got %d %q", r.status, r.body)
		}
	}
}

func TestForwardedForModesAndTraceID(t *testing.T) {
	b := startBackend(t, "a")
	send := func(lb *running, hdr map[string]string) *http.Request {
		req, _ := http.NewRequest("GET", lb.url+"/", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return b.lastRequest()
	}
	in := map[string]string{"X-Forwarded-For": "203.0.113.7, 198.51.100.2"}
	for _, tt := range []struct {
		attrs map[string]string
		want  string
	}{
		{nil, "203.0.113.7, 198.51.100.2, 127.0.0.1"},
		{map[string]string{"routing.http.xff_header_processing.mode": "preserve"}, "203.0.113.7, 198.51.100.2"},
		{map[string]string{"routing.http.xff_header_processing.mode": "remove"}, ""},
	} {
		lb := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: tt.attrs})
		if got := strings.Join(send(lb, in).Header["X-Forwarded-For"], ", "); got != tt.want {
			t.Errorf("%v: X-Forwarded-For %q, want %q", tt.attrs, got, tt.want)
		}
	}
	lb := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: map[string]string{"routing.http.xff_client_port.enabled": "true"}})
	if got := send(lb, nil).Header.Get("X-Forwarded-For"); !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(got) {
		t.Errorf("with the client port: X-Forwarded-For %q, want 127.0.0.1:port", got)
	}

	// X-Amzn-Trace-Id: a Root added, or a Self before the client's Root.
	lb = startLB(t, lbConfig{targets: []string{b.addr}})
	if got := send(lb, nil).Header.Get("X-Amzn-Trace-Id"); !regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$`).MatchString(got) {
		t.Errorf("trace id %q, want a Root", got)
	}
	got := send(lb, map[string]string{"X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678;Sampled=1"}).Header.Get("X-Amzn-Trace-Id")
	if !regexp.MustCompile(`^Self=1-[0-9a-f]{8}-[0-9a-f]{24};Root=1-67891233-abcdef012345678912345678;Sampled=1$`).MatchString(got) {
		t.Errorf("trace id %q, want a Self before the client's fields", got)
	}
	off := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: map[string]string{"routing.http.trace_header.name": ""}})
	if got := send(off, nil).Header.Get("X-Amzn-Trace-Id"); got != "" {
		t.Errorf("tracing off: %q reached the target", got)
	}

	// drop_invalid_header_fields: names with anything but letters, digits
	// and hyphens are left out.
	drop := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: map[string]string{"routing.http.drop_invalid_header_fields.enabled": "true"}})
	r := send(drop, map[string]string{"X_Under": "1", "X-Fine": "2"})
	if r.Header.Get("X_Under") != "" || r.Header.Get("X-Fine") != "2" {
		t.Errorf("drop_invalid_header_fields: got %v", r.Header)
	}
}

// TestRequestTimeout: ALB answers 408 to a client that sends no request
// within the idle timeout, whether it sent nothing or half a head; a
// kept-alive connection idle after a request is just closed.
func TestRequestTimeout(t *testing.T) {
	b := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: map[string]string{"idle_timeout.timeout_seconds": "0.2"}})
	addr := strings.TrimPrefix(lb.url, "http://")
	for _, tt := range []struct {
		name, send, want string
	}{
		{"nothing sent", "", "HTTP/1.1 408 Request Timeout\r\n"},
		{"half a head", "GET / HTTP/1.1\r\nHost: a\r\n", "HTTP/1.1 408 Request Timeout\r\n"},
		{"idle after a request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\n"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tt.send)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, _ := io.ReadAll(c)
		c.Close()
		if !bytes.HasPrefix(all, []byte(tt.want)) {
			t.Errorf("%s: got %q, want it to start %q", tt.name, all, tt.want)
		}
		if tt.name == "idle after a request" && bytes.Count(all, []byte("HTTP/1.1 ")) != 1 {
			t.Errorf("%s: got %q; want the response and then a silent close", tt.name, all)
		}
	}
}

// refusals keeps the request line of every record latch refused.
type refusals struct {
	proxytest.Counter
	mu    sync.Mutex
	lines []string
}

func (r *refusals) Refused(rec *proxy.Record) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf("%d %q %q", rec.Status, rec.Method, rec.URI))
	r.mu.Unlock()
	r.Counter.Refused(rec)
}

// A 408 to a connection that sent nothing names no request: the state
// its exchange is taken from (pooled) keeps no view of another
// connection's request, whose read buffer has gone back to its pool (its
// method and target were read from another connection's buffer, seen by
// the race detector; a stale HEAD would also have dropped the 408's body).
func TestRequestTimeoutNamesNoRequest(t *testing.T) {
	b := startBackend(t, "a")
	var obs refusals
	lb := startLB(t, lbConfig{targets: []string{b.addr}, observer: &obs,
		listenAttrs: map[string]string{"idle_timeout.timeout_seconds": "0.1"}})
	addr := strings.TrimPrefix(lb.url, "http://")
	for i := range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "HEAD /previous-client-"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(c)
		c.Close()

		c, err = net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, _ := io.ReadAll(c)
		c.Close()
		if !bytes.HasPrefix(all, []byte("HTTP/1.1 408 ")) || !bytes.HasSuffix(all, []byte("\n")) || bytes.Contains(all, []byte("Content-Length: 0\r\n")) {
			t.Fatalf("round %d: got %q, want a 408 with its body", i, all)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, l := range obs.lines {
		if l != `408 "" ""` {
			t.Errorf("a refusal recorded as %s, want 408 with no method nor target", l)
		}
	}
	if len(obs.lines) != 10 {
		t.Errorf("%d refusals recorded, want 10: %v", len(obs.lines), obs.lines)
	}
}
