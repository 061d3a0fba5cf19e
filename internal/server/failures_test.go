package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/proxy/proxytest"
)

// TestAccountingUnderFailures runs requests that fail in every way the
// data path knows, on both paths (TestMain), and checks what must balance
// after each: every Begin has its End, nothing stays counted in flight,
// and every client connection opened is closed once the server is shut
// down.
func TestAccountingUnderFailures(t *testing.T) {
	a := startBackend(t, "a")
	big := strings.Repeat("x", 1<<20)
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			io.WriteString(w, big)
		case "/cut":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			panic(http.ErrAbortHandler)
		case "/slow":
			time.Sleep(1500 * time.Millisecond)
		case "/upload":
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
		case "/ws":
			w.Header().Set("Upgrade", "x-test")
			w.Header().Set("Connection", "Upgrade")
			w.WriteHeader(http.StatusSwitchingProtocols)
			rc := http.NewResponseController(w)
			rc.Flush()
			conn, brw, err := rc.Hijack()
			if err == nil {
				brw.ReadByte()
				conn.Close()
			}
		default:
			io.WriteString(w, "ok")
		}
	})
	obs := &proxytest.Counter{}
	lb := startLB(t, lbConfig{targets: []string{a.addr, deadAddr(t)}, observer: obs,
		listenAttrs: map[string]string{"idle_timeout.timeout_seconds": "1", "routing.http2.h2c.enabled": "true"}})
	addr := strings.TrimPrefix(lb.url, "http://")
	raw := func(req string, read int) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if read > 0 {
			io.ReadFull(c, make([]byte, read))
		} else if read < 0 {
			io.Copy(io.Discard, c)
		}
	}
	cases := []struct {
		name string
		run  func()
	}{
		{"plain", func() { tryGet(lb.url+"/", "") }},
		{"big body", func() { tryGet(lb.url+"/big", "") }},
		{"client leaves mid-body", func() { raw("GET /big HTTP/1.1\r\nHost: a\r\n\r\n", 1000) }},
		{"target cuts the body", func() { tryGet(lb.url+"/cut", "") }},
		{"target idle timeout", func() { tryGet(lb.url+"/slow", "") }},
		{"client leaves while the target is slow", func() { raw("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n", 0) }},
		{"upload", func() { client.Post(lb.url+"/upload", "text/plain", strings.NewReader(big)) }},
		{"expect 100", func() {
			raw("POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", -1)
		}},
		{"upgrade", func() {
			raw("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n", 20)
		}},
		{"h2c reset mid-body", func() {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", lb.url+"/big", nil)
			if resp, err := h2cClient().Do(req); err == nil {
				resp.Body.Read(make([]byte, 100))
				cancel()
				resp.Body.Close()
			}
			cancel()
		}},
		{"h2c slow, reset", func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", lb.url+"/slow", nil)
			if resp, err := h2cClient().Do(req); err == nil {
				resp.Body.Close()
			}
		}},
	}
	for _, c := range cases {
		for range 3 {
			c.run()
		}
		// End comes once an answer is out, or its client gone: a moment
		// after the client gave up.
		poll(t, 5*time.Second, c.name+": every request ended", func() bool { return obs.Begun.Load() == obs.Ended.Load() })
		if b, e := obs.Begun.Load(), obs.Ended.Load(); b != e {
			t.Errorf("%s: %d begun, %d ended", c.name, b, e)
		}
		for _, tg := range lb.targets("web") {
			if n := tg.Inflight.Load(); n != 0 {
				t.Errorf("%s: %s still has %d in flight", c.name, tg.ID, n)
			}
		}
	}
	client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lb.Shutdown(ctx)
	if o, c := obs.Opened.Load(), obs.Closed.Load(); o != c {
		t.Errorf("after Shutdown: %d connections opened, %d closed", o, c)
	}
}

// TestShutdownDeadlineCutsRetiredTunnel: a busy WebSocket-like tunnel on
// a listener a reload moved to another address does not hold Shutdown past
// its deadline: the tunnel is cut, both sides.
func TestShutdownDeadlineCutsRetiredTunnel(t *testing.T) {
	a := startBackend(t, "a")
	stop := make(chan struct{})
	a.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "x-test")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		rc := http.NewResponseController(w)
		rc.Flush()
		conn, _, err := rc.Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		go io.Copy(io.Discard, conn)
		<-stop
	})
	c := lbConfig{targets: []string{a.addr}}
	lb := startLB(t, c)
	conn, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-test\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	go func() { // a live tunnel: a byte every 100 ms
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				conn.Write([]byte("."))
			}
		}
	}()
	lb.applyYAML(t, strings.Replace(c.yaml(), "127.0.0.1:0", "127.0.0.2:0", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan time.Duration, 1)
	t0 := time.Now()
	go func() { lb.Shutdown(ctx); done <- time.Since(t0) }()
	select {
	case d := <-done:
		if d > 2*time.Second {
			t.Errorf("Shutdown with a 300ms deadline returned after %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("Shutdown with a 300ms deadline still waiting after 3s for the retired listener's tunnel")
		close(stop)
		conn.Close()
		t.Logf("Shutdown returned %v after its start, once the tunnel closed", <-done)
		return
	}
	close(stop)
}

// TestBytesInToHTTP2Target: the observer counts an upload's bytes
// whatever protocol the target speaks.
func TestBytesInToHTTP2Target(t *testing.T) {
	addr := startH2Target(t, "h2")
	obs := newRecords()
	lb := startLB(t, lbConfig{targets: []string{addr}, observer: obs, extraGroup: "    protocol_version: HTTP2\n"})
	resp, err := client.Post(lb.url+"/upload", "text/plain", strings.NewReader("twelve bytes"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if rec := obs.last(t); rec.BytesIn != 12 {
		t.Errorf("an upload to an HTTP/2 target: BytesIn %d, want 12 (BytesOut %d)", rec.BytesIn, rec.BytesOut)
	}
}

// TestReasonlessStatusLine: a target's status line without a reason
// phrase gets net/http's text for its code, which is empty for a code it
// does not know: the line reaches the client as it came.
func TestReasonlessStatusLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 299 \r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	lb := startLB(t, lbConfig{targets: []string{ln.Addr().String()}})
	c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "HTTP/1.1 299 \r\n" {
		t.Errorf("status line %q, want %q (as the target sent it)", line, "HTTP/1.1 299 \r\n")
	}
}
