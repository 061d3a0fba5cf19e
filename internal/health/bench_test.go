package health

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkProbe measures one probe of a loopback target (a net/http
// server, whose allocations are counted too), from the connect to the
// close: HTTP/1.1 through internal/h1, and HTTP/2 through net/http.
func BenchmarkProbe(b *testing.B) {
	for _, tc := range []struct {
		name string
		h2   bool
	}{{"http1", false}, {"http2", true}} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, "ok")
			})}
			if tc.h2 {
				var p http.Protocols
				p.SetUnencryptedHTTP2(true)
				srv.Protocols = &p
			}
			go srv.Serve(ln)
			b.Cleanup(func() { srv.Close() })
			c := NewChecker(untimedSpec(), tc.h2)
			addr := ln.Addr().String()
			b.ReportAllocs()
			for b.Loop() {
				if r := c.Probe(context.Background(), addr); !r.OK {
					b.Fatalf("probe: %+v", r)
				}
			}
		})
	}
}
