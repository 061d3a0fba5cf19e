package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/proxy"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// counting is an Observer that counts Begin and End.
type counting struct{ begun, ended, refused atomic.Int64 }

func (c *counting) Begin(*proxy.Record)   { c.begun.Add(1) }
func (c *counting) End(*proxy.Record)     { c.ended.Add(1) }
func (c *counting) Refused(*proxy.Record) { c.refused.Add(1) }
func (c *counting) Conn(proxy.ConnEvent)  {}

// hostileBackend serves the hostile clients: a small answer (/fast), one
// after a few ms (/slow), a 256 KiB one (/big), an echo (/echo), and one
// that waits 2 s or until the request is cut (/hang).
func hostileBackend(t *testing.T) string {
	big := bytes.Repeat([]byte("x"), 256<<10)
	ts := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fast":
			io.WriteString(w, "ok")
		case "/slow":
			select {
			case <-time.After(time.Duration(rand.IntN(30)) * time.Millisecond):
			case <-r.Context().Done():
			}
			io.WriteString(w, "slow")
		case "/big":
			w.Write(big)
		case "/echo":
			b, _ := io.ReadAll(r.Body) // all before the answer: net/http's HTTP/1 server stops the body there
			w.Write(b)
		case "/hang":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.Serve(ln)
	t.Cleanup(func() { ts.Close() })
	return ln.Addr().String()
}

// hostileConn runs one connection of a hostile HTTP/2 client: streams on
// random paths, reset at random, the connection cut at random, perhaps
// mid-frame, the reader slow at random.
func hostileConn(c net.Conn, rng *rand.Rand, scheme string) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	win := uint32(65535)
	if rng.IntN(3) == 0 {
		win = 1024 // a slow reader's small window
	}
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: win})
	paths := []string{"/fast", "/fast", "/slow", "/big", "/echo", "/hang"}
	n := 1 + rng.IntN(20)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range n {
		id := uint32(2*i + 1)
		p := paths[rng.IntN(len(paths))]
		hb.Reset()
		method := "GET"
		if p == "/echo" {
			method = "POST"
		}
		for _, f := range [][2]string{{":method", method}, {":scheme", scheme}, {":authority", "a.example.test"}, {":path", p}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: method == "GET", EndHeaders: true})
		if method == "POST" {
			fr.WriteData(id, rng.IntN(2) == 0, bytes.Repeat([]byte("b"), rng.IntN(2000)))
		}
		if rng.IntN(3) == 0 {
			fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	}
	switch rng.IntN(5) {
	case 0:
		return // cut at once
	case 1:
		c.Write([]byte{0, 0, 50, 0, 1, 0, 0, 0}) // half a frame header, then cut
		return
	case 2:
		time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond) // not reading
	}
	// Read for a while, resetting and giving window at random.
	deadline := time.Now().Add(time.Duration(50+rng.IntN(300)) * time.Millisecond)
	c.SetReadDeadline(deadline)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			if l := len(f.Data()); l > 0 && rng.IntN(4) != 0 {
				fr.WriteWindowUpdate(0, uint32(l))
				fr.WriteWindowUpdate(f.StreamID, uint32(l))
			}
			if rng.IntN(20) == 0 {
				fr.WriteRSTStream(f.StreamID, http2.ErrCodeCancel)
			}
		case *http2.GoAwayFrame:
			if rng.IntN(2) == 0 {
				return
			} // else read on: the streams open are served to their end
		}
	}
}

// TestHTTP2HostileClients: hostile HTTP/2 clients (hostileConn), h2c and
// over TLS, against a -race build; then every exchange begun ends, no
// request is in flight to the target, and every connection closes.
func TestHTTP2HostileClients(t *testing.T) {
	backend := hostileBackend(t)
	e := newTLSEnv(t)
	obs := &counting{}
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			var lb *running
			var dial func() (net.Conn, error)
			if scheme == "http" {
				lb = startLB(t, lbConfig{targets: []string{backend}, observer: obs,
					listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true", "idle_timeout.timeout_seconds": "2"}})
				addr := strings.TrimPrefix(lb.url, "http://")
				dial = func() (net.Conn, error) { return net.Dial("tcp", addr) }
			} else {
				lb = startObserved(t, e.yaml("HTTPS", allCerts, "", backend), "", "https", obs)
				addr := lb.Addr("front")
				cfg := &tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test", NextProtos: []string{"h2"}}
				dial = func() (net.Conn, error) { return tls.Dial("tcp", addr, cfg) }
			}
			var wg sync.WaitGroup
			stop := time.Now().Add(1500 * time.Millisecond)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 7))
					for i := 0; i < 200 && time.Now().Before(stop); i++ {
						c, err := dial()
						if err != nil {
							t.Errorf("dial: %v", err)
							return
						}
						hostileConn(c, rng, scheme)
					}
				}()
			}
			wg.Wait()
			tg := lb.targets("web")[0]
			poll(t, 10*time.Second, "every exchange to end", func() bool {
				return tg.Inflight.Load() == 0 && obs.begun.Load() == obs.ended.Load()
			})
			ctr := &lb.listeners["front"].h2
			poll(t, 10*time.Second, "every HTTP/2 connection to close", func() bool { return ctr.Conns.Load() == 0 })
			t.Logf("begun %d ended %d refused %d", obs.begun.Load(), obs.ended.Load(), obs.refused.Load())
		})
	}
}

// TestHTTPSHostileHTTP1: HTTP/1.1 clients over TLS on the event loops,
// requests that stay on the loop and ones that leave it (a large body
// either way), pipelined, cut at random; then every exchange ends and
// every connection closes, and a well-behaved client is still served.
func TestHTTPSHostileHTTP1(t *testing.T) {
	backend := hostileBackend(t)
	e := newTLSEnv(t)
	obs := &counting{}
	lb := startObserved(t, e.yaml("HTTPS", allCerts, "", backend), "", "https", obs)
	addr := lb.Addr("front")
	cfg := &tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test"}
	reqs := []string{
		"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /big HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("p", 100000),
		"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
	}
	var wg sync.WaitGroup
	stop := time.Now().Add(1500 * time.Millisecond)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < 200 && time.Now().Before(stop); i++ {
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				n := 1 + rng.IntN(4)
				var b strings.Builder
				for range n {
					b.WriteString(reqs[rng.IntN(len(reqs))])
				}
				msg := b.String()
				if rng.IntN(4) == 0 {
					msg = msg[:rng.IntN(len(msg))] // cut mid-request
				}
				go io.WriteString(c, msg)
				buf := make([]byte, 1+rng.IntN(64<<10))
				if rng.IntN(3) == 0 {
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond) // a slow reader
				}
				c.SetReadDeadline(time.Now().Add(time.Duration(20+rng.IntN(200)) * time.Millisecond))
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	tg := lb.targets("web")[0]
	poll(t, 10*time.Second, "every exchange to end", func() bool {
		return tg.Inflight.Load() == 0 && obs.begun.Load() == obs.ended.Load()
	})
	resp, body, _ := fetch(t, e.client(t, false, "a.example.test"), lb.url+"/fast")
	if resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after the hostile clients: got %s %q, want 200 ok", resp.Status, body)
	}
	t.Logf("begun %d ended %d refused %d", obs.begun.Load(), obs.ended.Load(), obs.refused.Load())
}

// TestHTTP2HostileShutdown: the server shuts down, with a short deadline,
// in the middle of hostile HTTP/2 clients (h2c and TLS); every exchange
// begun ends, and nothing is left running (leaktest).
func TestHTTP2HostileShutdown(t *testing.T) {
	backend := hostileBackend(t)
	e := newTLSEnv(t)
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			obs := &counting{}
			var lb *running
			var dial func() (net.Conn, error)
			if scheme == "http" {
				lb = startLB(t, lbConfig{targets: []string{backend}, observer: obs,
					listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})
				addr := strings.TrimPrefix(lb.url, "http://")
				dial = func() (net.Conn, error) { return net.Dial("tcp", addr) }
			} else {
				lb = startObserved(t, e.yaml("HTTPS", allCerts, "", backend), "", "https", obs)
				addr := lb.Addr("front")
				cfg := &tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test", NextProtos: []string{"h2"}}
				dial = func() (net.Conn, error) { return tls.Dial("tcp", addr, cfg) }
			}
			var wg sync.WaitGroup
			stop := time.Now().Add(1500 * time.Millisecond)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 11))
					for i := 0; i < 200 && time.Now().Before(stop); i++ {
						c, err := dial()
						if err != nil {
							return // shut down
						}
						hostileConn(c, rng, scheme)
					}
				}()
			}
			time.Sleep(500 * time.Millisecond) // the clients are at it
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			start := time.Now()
			err := lb.Shutdown(ctx)
			cancel()
			t.Logf("shutdown: %v after %v", err, time.Since(start))
			wg.Wait()
			poll(t, 10*time.Second, "every exchange to end", func() bool { return obs.begun.Load() == obs.ended.Load() })
			t.Logf("begun %d ended %d", obs.begun.Load(), obs.ended.Load())
		})
	}
}

// TestHTTPSPipelinedHandoff: pipelined HTTP/1.1 requests over TLS, some
// served on the event loop, some that take the connection to a goroutine
// (a large answer, a large body), all answered whole and in order: the
// connection's TLS, and what it had read, go along.
func TestHTTPSPipelinedHandoff(t *testing.T) {
	backend := hostileBackend(t)
	e := newTLSEnv(t)
	lb := startYAML(t, e.yaml("HTTPS", allCerts, "", backend))
	for round := range 20 {
		c, err := tls.Dial("tcp", lb.Addr("front"), &tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test"})
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		seq := []string{"/fast", "/big", "/fast", "/echo", "/slow", "/fast"}
		var b strings.Builder
		for _, p := range seq {
			if p == "/echo" {
				b.WriteString("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("e", 70000))
				continue
			}
			b.WriteString("GET " + p + " HTTP/1.1\r\nHost: a\r\n\r\n")
		}
		go io.WriteString(c, b.String())
		br := bufio.NewReader(c)
		for _, p := range seq {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d %s: %v", round, p, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("round %d %s body: %v", round, p, err)
			}
			want := map[string]int{"/fast": 2, "/big": 256 << 10, "/echo": 70000, "/slow": 4}[p]
			if len(body) != want {
				t.Fatalf("round %d %s: %d bytes, want %d", round, p, len(body), want)
			}
		}
		c.Close()
	}
}

// TestHTTP2ResetUploadsReuseStreams: streams whose client resets them
// mid-body, the window for what latch read of it still to be given back,
// end without an answer; the stream objects they used serve the next
// streams, on other connections too, and nothing of the old one's work
// touches them then (the race detector checks: the connection's loop gave
// the window back while the stream's goroutine put it back in the pool,
// and a stream's last op, served by the service its window had queued,
// left it queued again once it was back in the pool).
func TestHTTP2ResetUploadsReuseStreams(t *testing.T) {
	target := silentTarget(t)
	lb := startLB(t, lbConfig{targets: []string{target},
		listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})
	addr := strings.TrimPrefix(lb.url, "http://")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if err := resetUploads(addr); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	tg := lb.targets("web")[0]
	poll(t, 10*time.Second, "the reset exchanges to end", func() bool { return tg.Inflight.Load() == 0 })
}

// resetUploads opens a connection to addr and uploads on 150 streams,
// resetting each mid-body. Only a failed dial is an error: latch may
// close a connection that resets this much.
func resetUploads(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.Copy(io.Discard, c)
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	// In batches: each stream's head and some body, then, once latch's
	// side is sending the body on, more of it with the reset.
	for b := range 15 { // under the engine's 200 resets a second
		for i := range 10 {
			id := uint32(2*(10*b+i) + 1)
			hb.Reset()
			for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/up"}, {"content-length", "10000"}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
			fr.WriteData(id, false, make([]byte, 100))
		}
		time.Sleep(5 * time.Millisecond)
		for i := range 10 {
			id := uint32(2*(10*b+i) + 1)
			fr.WriteData(id, false, make([]byte, 100))
			if fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return nil
			}
		}
	}
	return nil
}

// TestHTTPSShutdownCutsHandshakes: a shutdown whose deadline has passed
// cuts connections in every stage, among them TLS connections whose
// handshake just ended and which are moving to an event loop (the race
// detector checks that the cut and the move do not cross).
func TestHTTPSShutdownCutsHandshakes(t *testing.T) {
	backend := hostileBackend(t)
	e := newTLSEnv(t)
	for round := range 4 {
		lb := startYAML(t, e.yaml("HTTPS", allCerts, "", backend))
		addr := lb.Addr("front")
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				protos := [][]string{{"h2"}, {"http/1.1"}}[w%2]
				cfg := &tls.Config{RootCAs: e.ca.Pool, ServerName: "a.example.test", NextProtos: protos}
				for i := 0; i < 500; i++ {
					select {
					case <-stop:
						return
					default:
					}
					c, err := tls.Dial("tcp", addr, cfg)
					if err != nil {
						continue // shut down meanwhile
					}
					c.Close()
				}
			}()
		}
		time.Sleep(time.Duration(50+50*round) * time.Millisecond) // handshakes under way
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // cut at once
		lb.Shutdown(ctx)
		close(stop)
		wg.Wait()
	}
}
