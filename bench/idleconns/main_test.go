package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestOpenEachProtocol opens idle connections of every kind the bench
// measures against net/http's server, and checks that each got its answer
// over the protocol asked for and is idle afterwards, not closed.
func TestOpenEachProtocol(t *testing.T) {
	for _, tc := range []struct {
		name, proto string
		tls         bool
		wantProto   string // as the handler sees r.Proto
	}{
		{"h1", "h1", false, "HTTP/1.1"},
		{"https", "h1", true, "HTTP/1.1"},
		{"h2", "h2", true, "HTTP/2.0"},
		{"h2c", "h2", false, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var protos []string
			idle := make(chan struct{}, 8)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				protos = append(protos, r.Proto)
				mu.Unlock()
				w.Write([]byte("hello\n"))
			}))
			var p http.Protocols
			p.SetHTTP1(true)
			if tc.wantProto == "HTTP/2.0" {
				p.SetHTTP2(true)
				p.SetUnencryptedHTTP2(!tc.tls)
			}
			srv.Config.Protocols = &p
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateIdle {
					idle <- struct{}{}
				}
			}
			if tc.tls {
				srv.EnableHTTP2 = tc.wantProto == "HTTP/2.0"
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()

			u, err := url.Parse(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			o := newOpener(u, tc.proto, 5*time.Second)
			const n = 3
			conns := make([]*idleConn, 0, n)
			for i := 0; i < n; i++ {
				c, status, err := o.open(context.Background(), nil)
				if err != nil {
					t.Fatalf("open %d: %v", i, err)
				}
				conns = append(conns, c)
				if status != 200 {
					t.Errorf("open %d: status %d, want 200", i, status)
				}
			}
			// net/http reports an HTTP/1.1 connection idle after its response;
			// an HTTP/2 connection only once its last stream is done.
			for i := 0; i < n; i++ {
				select {
				case <-idle:
				case <-time.After(5 * time.Second):
					t.Fatalf("%d of %d connections idle on the server after 5 s", i, n)
				}
			}
			mu.Lock()
			for i, got := range protos {
				if got != tc.wantProto {
					t.Errorf("request %d came as %s, want %s", i, got, tc.wantProto)
				}
			}
			if len(protos) != n {
				t.Errorf("server saw %d requests, want %d", len(protos), n)
			}
			mu.Unlock()
			// Closed by the tool, a connection's watch reports just that.
			done := make(chan bool, n)
			for _, c := range conns {
				go func(c *idleConn) { done <- c.watch() }(c)
			}
			for _, c := range conns {
				c.close()
			}
			for i := 0; i < n; i++ {
				if byTool := <-done; !byTool {
					t.Errorf("watch of a connection the tool closed reported a close by the server")
				}
			}
		})
	}
}
