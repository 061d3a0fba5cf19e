package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/accesslog"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/proxy/proxytest"
)

// fastTarget is a minimal HTTP/1.1 target for benchmarks: it answers every
// request on a connection with the same small response, allocating
// nothing, so that a benchmark measures latch rather than its target.
func fastTarget(b testing.TB) string {
	b.Helper()
	return rawServer(b, serveFast)
}

var fastResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n")

func serveFast(c net.Conn) {
	r := bufio.NewReaderSize(c, 16<<10)
	for {
		if err := skipHead(r); err != nil {
			return
		}
		if _, err := c.Write(fastResponse); err != nil {
			return
		}
	}
}

// skipHead reads through the next empty line. The benchmark requests have
// no bodies.
func skipHead(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}

// benchClient sends one request at a time on a kept-alive connection and
// reads each response through its Content-Length.
type benchClient struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
	buf []byte
}

func newBenchClient(b testing.TB, addr string, req []byte) *benchClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return &benchClient{c: c, r: bufio.NewReaderSize(c, 16<<10), req: req, buf: make([]byte, 4096)}
}

var contentLength = []byte("Content-Length: ")

func (bc *benchClient) do() error {
	if _, err := bc.c.Write(bc.req); err != nil {
		return err
	}
	n := -1
	for {
		line, err := bc.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if bytes.HasPrefix(line, contentLength) {
			v, _ := strconv.Atoi(string(bytes.TrimSpace(line[len(contentLength):])))
			n = v
		}
	}
	if n < 0 {
		return fmt.Errorf("response without Content-Length")
	}
	_, err := io.ReadFull(bc.r, bc.buf[:n])
	return err
}

// BenchmarkProxy measures latch's whole data path over loopback: one
// client connection sends requests one after another through latch to a
// target. ns/op includes the client's and the target's work (small, and
// allocation-free); allocs/op is latch's alone.
//
// On the event-loop path (Linux), the serial case's ns/op is mostly the
// kernel waking threads: the client, the target and latch share this one
// process, and each hop wakes a thread asleep in epoll_wait or Go's
// poller, where the goroutine path stays on Go's spinning threads. Across
// processes, as bench/ measures, both paths answer one request at a time
// in the same time. The parallel case and allocs/op compare the paths.
// proxyCases are what BenchmarkProxy measures and TestProxyDoesNotAllocate
// checks: a plain group, and a sticky one without and with a session;
// with the access log, and with latch's metrics.
var proxyCases = []proxyCase{
	{name: "plain"},
	{name: "sticky/new-session", sticky: true},
	{name: "sticky/session", sticky: true, cookie: true},
	// A request that could not be sent twice: its pooled target
	// connection is peeked at first, every time.
	{name: "post", post: true},
	{name: "access-log", sticky: true, cookie: true, accessLog: true},
	{name: "metrics/plain", metrics: true},
	{name: "metrics/sticky/session", sticky: true, cookie: true, metrics: true},
}

type proxyCase struct {
	name                 string
	sticky, cookie, post bool
	accessLog            bool // an access log writing to a file, beside the counting observer
	metrics              bool // latch's metrics (internal/metrics), beside the counting observer
	h2c                  bool // the listener takes HTTP/2 with prior knowledge too
}

// MetricsObserver returns latch's metrics observer, for the cases with
// metrics: metrics_test.go sets it, as an external test, since
// internal/metrics imports this package and so cannot be imported here.
var MetricsObserver func() proxy.Observer

// proxyRequest starts latch in front of a fast target for the case, with a
// counting observer on its data path (and an access log in ALB's format,
// writing to a file, with accessLog; latch's metrics with metrics), and
// returns its address, the request to send it (with a session cookie when
// the case has one; a POST with an empty body for post) and the observer.
func proxyRequest(tb testing.TB, c proxyCase) (addr string, req []byte, obs *proxytest.Counter) {
	obs = &proxytest.Counter{}
	var observer proxy.Observer = obs
	if c.accessLog {
		l, err := accesslog.Open(config.AccessLog{Path: filepath.Join(tb.TempDir(), "access.log")}, testLogger(tb))
		if err != nil {
			tb.Fatal(err)
		}
		observer = proxy.Tee(obs, l)
		// Registered before startLB's, so run after the server's
		// shutdown: every line is in.
		tb.Cleanup(func() {
			l.Close()
			if d := l.Dropped(); d > 0 {
				tb.Logf("the access log dropped %d of %d lines", d, d+l.Written())
			}
		})
	}
	if c.metrics {
		if MetricsObserver == nil {
			tb.Fatal("no MetricsObserver: metrics_test.go sets it")
		}
		observer = proxy.Tee(observer, MetricsObserver())
	}
	cfg := lbConfig{targets: []string{fastTarget(tb)}, sticky: c.sticky, observer: observer}
	if c.h2c {
		cfg.listenAttrs = map[string]string{"routing.http2.h2c.enabled": "true"}
	}
	lb := startLB(tb, cfg)
	r := "GET /index.html HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n"
	if c.post {
		r = "POST /submit HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nContent-Length: 0\r\n"
	}
	if c.cookie {
		v := get(tb, lb.url+"/", "").cookie
		if v == "" {
			tb.Fatal("no AWSALB cookie from a sticky group")
		}
		r += "Cookie: AWSALB=" + v + "\r\n"
	}
	return strings.TrimPrefix(lb.url, "http://"), []byte(r + "\r\n"), obs
}

func BenchmarkProxy(b *testing.B) {
	for _, bc := range proxyCases {
		b.Run(dataPath.String()+"/"+bc.name, func(b *testing.B) {
			addr, req, _ := proxyRequest(b, bc)
			run := func(b *testing.B, c *benchClient) {
				if err := c.do(); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("serial", func(b *testing.B) {
				c := newBenchClient(b, addr, req)
				defer c.c.Close()
				run(b, c) // warm the pools
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime()
				for b.Loop() {
					run(b, c)
				}
				reportCPU(b, cpu)
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(16)
				cpu := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					c := newBenchClient(b, addr, req)
					defer c.c.Close()
					for pb.Next() {
						run(b, c)
					}
				})
				reportCPU(b, cpu)
			})
		})
	}
}

// reportCPU reports the process's CPU time per request since since
// (cpuTime's): latch's, the client's and the target's together, which a
// host busy with other work inflates less than ns/op, as it counts no time
// spent waiting for a CPU.
func reportCPU(b *testing.B, since int64) {
	if since > 0 && b.N > 0 {
		b.ReportMetric(float64(cpuTime()-since)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkProxyH2C: GET requests over h2c (prior knowledge) through latch
// to an HTTP/1.1 target, on one connection: one stream at a time (serial),
// and 16 at a time (parallel). The figures include Go's HTTP/2 client and
// the target, which run in the same process.
func BenchmarkProxyH2C(b *testing.B) {
	lb := startLB(b, lbConfig{targets: []string{fastTarget(b)}, listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})
	c := h2cClient()
	defer c.CloseIdleConnections()
	url := lb.url + "/index.html"
	run := func(b *testing.B) {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			b.Fatalf("got %v %s over %s, want 200 over HTTP/2", err, resp.Status, resp.Proto)
		}
	}
	b.Run(dataPath.String()+"/serial", func(b *testing.B) {
		run(b) // warm the pools, and open the connection
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpuTime()
		for b.Loop() {
			run(b)
		}
		reportCPU(b, cpu)
	})
	b.Run(dataPath.String()+"/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		cpu := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				run(b)
			}
		})
		reportCPU(b, cpu)
	})
}
