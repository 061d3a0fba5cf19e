// Command idleconns opens N keep-alive TCP connections to an HTTP URL, sends
// one HTTP/1.1 GET on each and reads the whole response, so that the server
// (a proxy under test) holds N real, used, idle keep-alive client
// connections. It then keeps them all open for -hold, or until SIGINT or
// SIGTERM, printing progress, and closes them.
//
// It prints one line starting with "ready:" once every connection has had
// its response; bench/run.sh waits for that line before it measures the
// proxy's memory. It exits 1 if any connection could not be opened or got
// no response, and 0 otherwise.
//
// For a loopback target it spreads the connections over several source
// addresses (127.0.0.1, 127.0.0.2, ...) when N is close to the number of
// ephemeral ports, so that it never runs out of source ports.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	n := flag.Int("n", 10000, "number of connections")
	rawURL := flag.String("url", "http://127.0.0.1:8080/", "URL to GET once on each connection")
	hold := flag.Duration("hold", 0, "how long to hold the connections open (0: until SIGINT/SIGTERM)")
	conc := flag.Int("concurrency", 128, "connections opened at once")
	timeout := flag.Duration("timeout", 10*time.Second, "dial and response timeout per connection")
	sources := flag.Int("sources", 0, "loopback source addresses to spread over (0: automatic)")
	flag.Parse()
	log := func(format string, args ...any) {
		fmt.Printf("idleconns: "+format+"\n", args...)
	}

	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		fmt.Fprintf(os.Stderr, "idleconns: -url must be http://host:port/path, got %q\n", *rawURL)
		return 2
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: idleconns\r\nAccept: */*\r\n\r\n", path, u.Host)

	locals := sourceAddrs(u.Hostname(), *n, *sources)
	if len(locals) > 1 {
		log("spreading %d connections over %d source addresses (%s..%s)", *n, len(locals), locals[0].IP, locals[len(locals)-1].IP)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	conns := make([]net.Conn, *n)
	var (
		opened, failed, retried atomic.Int64
		mu                      sync.Mutex
		statuses                = map[int]int{}
		firstErr                error // of a connection that failed for good
		lastErr                 error // of the latest attempt that was retried
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < max(1, *conc); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var c net.Conn
				var status int
				var err error
				for try := 0; try < 3; try++ {
					if try > 0 {
						retried.Add(1)
						time.Sleep(time.Duration(try) * 100 * time.Millisecond)
					}
					var local *net.TCPAddr
					if len(locals) > 0 {
						local = locals[i%len(locals)]
					}
					c, status, err = openOne(ctx, addr, local, req, *timeout)
					if err == nil || ctx.Err() != nil {
						break
					}
					mu.Lock()
					lastErr = err
					mu.Unlock()
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
				mu.Lock()
				statuses[status]++
				mu.Unlock()
				if k := opened.Add(1); k%1000 == 0 {
					log("opened %d/%d (%.1fs)", k, *n, time.Since(start).Seconds())
				}
			}
		}()
	}
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	// Watch every connection: a read returns only if the server closes it
	// (or sends something unasked), which would make the measurement wrong.
	var closed atomic.Int64
	for _, c := range conns {
		if c == nil {
			continue
		}
		go func(c net.Conn) {
			var b [1]byte
			_ = c.SetReadDeadline(time.Time{})
			if _, err := c.Read(b[:]); err == nil || !errors.Is(err, net.ErrClosed) {
				closed.Add(1)
			}
		}(c)
	}

	log("ready: %d open and idle, %d failed, statuses %s, in %.1fs (%d retries)",
		opened.Load(), failed.Load(), formatStatuses(statuses), time.Since(start).Seconds(), retried.Load())
	if firstErr != nil {
		log("first error: %v", firstErr)
	}
	if lastErr != nil {
		log("last error retried: %v", lastErr)
	}

	var deadline <-chan time.Time
	if *hold > 0 {
		deadline = time.After(*hold)
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastClosed := int64(0)
wait:
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-deadline:
			break wait
		case <-tick.C:
			if k := closed.Load(); k != lastClosed {
				lastClosed = k
				log("holding: %d open, %d closed by the server", opened.Load()-k, k)
			}
		}
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	log("done: closed %d connections, %d had been closed by the server", opened.Load(), closed.Load())
	if failed.Load() > 0 || opened.Load() < int64(*n) {
		return 1
	}
	return 0
}

// openOne dials addr, sends req and reads the whole response, leaving the
// connection idle and reusable. It returns the response status.
func openOne(ctx context.Context, addr string, local *net.TCPAddr, req string, timeout time.Duration) (net.Conn, int, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: -1}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, 0, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	if resp.Close {
		c.Close()
		return nil, 0, fmt.Errorf("server answered %d with Connection: close", resp.StatusCode)
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, 0, fmt.Errorf("server sent %d bytes after the response", br.Buffered())
	}
	_ = c.SetDeadline(time.Time{})
	return c, resp.StatusCode, nil
}

// sourceAddrs returns the local addresses to bind, or nil to let the
// kernel choose. For a loopback IPv4 target it uses more than one source
// address when n would use more than 3/4 of the ephemeral port range.
func sourceAddrs(host string, n, want int) []*net.TCPAddr {
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil
	}
	if want <= 0 {
		ports := ephemeralPorts()
		want = 1 + n/(ports*3/4)
	}
	if want <= 1 {
		return nil
	}
	want = min(want, 250)
	out := make([]*net.TCPAddr, want)
	for i := range out {
		out[i] = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
	}
	return out
}

// ephemeralPorts is the size of Linux's ip_local_port_range, or a
// conservative guess elsewhere.
func ephemeralPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && hi > lo {
				return hi - lo + 1
			}
		}
	}
	return 16000
}

func formatStatuses(m map[int]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d:%d", k, m[k])
	}
	return strings.Join(parts, ",")
}
