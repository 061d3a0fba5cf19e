// Command idleconns opens N keep-alive connections to an HTTP URL, sends
// one GET on each and reads the whole response, so that the server (a proxy
// under test) holds N real, used, idle keep-alive client connections. It
// then keeps them all open for -hold, or until SIGINT or SIGTERM, printing
// progress, and closes them.
//
// The URL's scheme and -proto pick the protocol: http:// with -proto h1 is
// HTTP/1.1 on TCP; https:// with -proto h1 is HTTP/1.1 over TLS (ALPN
// http/1.1); https:// with -proto h2 is HTTP/2 over TLS (ALPN h2); http://
// with -proto h2 is h2c with prior knowledge. An HTTP/2 connection does
// what a browser's does before it goes quiet: the preface, a SETTINGS
// exchange in both directions (each side's acknowledged), and one request
// on stream 1 read to its end. TLS certificates are not verified: the
// bench's are made for the run.
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
	"bytes"
	"context"
	"crypto/tls"
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

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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
	proto := flag.String("proto", "h1", "h1 (HTTP/1.1) or h2 (HTTP/2: h2c on http://, ALPN h2 on https://)")
	flag.Parse()
	log := func(format string, args ...any) {
		fmt.Printf("idleconns: "+format+"\n", args...)
	}

	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(os.Stderr, "idleconns: -url must be http://host:port/path or https://host:port/path, got %q\n", *rawURL)
		return 2
	}
	if *proto != "h1" && *proto != "h2" {
		fmt.Fprintf(os.Stderr, "idleconns: -proto must be h1 or h2, got %q\n", *proto)
		return 2
	}
	o := newOpener(u, *proto, *timeout)

	locals := sourceAddrs(u.Hostname(), *n, *sources)
	if len(locals) > 1 {
		log("spreading %d connections over %d source addresses (%s..%s)", *n, len(locals), locals[0].IP, locals[len(locals)-1].IP)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	conns := make([]*idleConn, *n)
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
				var c *idleConn
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
					c, status, err = o.open(ctx, local)
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
	// closing is set before the tool closes its connections: what the
	// server does then (a TLS close_notify sent back, a GOAWAY) answers
	// the tool's close and is not the server closing an idle connection.
	var closing atomic.Bool
	for _, c := range conns {
		if c == nil {
			continue
		}
		go func(c *idleConn) {
			if !c.watch() && !closing.Load() {
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
	k := closed.Load()
	closing.Store(true)
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
	log("done: closed %d connections, %d had been closed by the server", opened.Load(), k)
	if failed.Load() > 0 || opened.Load() < int64(*n) {
		return 1
	}
	return 0
}

// opener opens one idle connection of the kind the flags ask for.
type opener struct {
	addr    string
	timeout time.Duration
	tls     *tls.Config // nil: cleartext
	h2      bool
	req     string // the HTTP/1.1 request
	block   []byte // the HTTP/2 request's header block
}

// newOpener returns the opener of -proto proto connections to u.
func newOpener(u *url.URL, proto string, timeout time.Duration) *opener {
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	o := &opener{addr: addr, timeout: timeout, h2: proto == "h2"}
	if u.Scheme == "https" {
		alpn := "http/1.1"
		if o.h2 {
			alpn = "h2"
		}
		o.tls = &tls.Config{
			InsecureSkipVerify: true, // the bench's certificate is made for the run
			ServerName:         u.Hostname(),
			NextProtos:         []string{alpn},
			// No session cache: every connection has a full handshake, so
			// the server holds what a connection from a new client costs.
			ClientSessionCache: nil,
		}
	}
	if o.h2 {
		o.block = h2Request(u)
	} else {
		o.req = fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: idleconns\r\nAccept: */*\r\n\r\n", u.RequestURI(), u.Host)
	}
	return o
}

// idleConn is a used, idle connection and what reads from it.
type idleConn struct {
	conn net.Conn
	br   *bufio.Reader
	fr   *http2.Framer // HTTP/2 only
	// byTool says the tool closed the connection (close): a TLS
	// connection's read then fails with a TLS error or net.ErrClosed,
	// depending on where the read was when the close came.
	byTool atomic.Bool
}

// close closes the connection from the tool's side.
func (ic *idleConn) close() {
	ic.byTool.Store(true)
	ic.conn.Close()
}

// open dials, sends the request and reads the whole response, leaving the
// connection idle and reusable. It returns the response status.
func (o *opener) open(ctx context.Context, local *net.TCPAddr) (*idleConn, int, error) {
	d := net.Dialer{Timeout: o.timeout, KeepAlive: -1}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(o.timeout))
	if o.tls != nil {
		tc := tls.Client(c, o.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, 0, fmt.Errorf("tls handshake: %w", err)
		}
		if got, want := tc.ConnectionState().NegotiatedProtocol, o.tls.NextProtos[0]; got != want {
			c.Close()
			return nil, 0, fmt.Errorf("server negotiated ALPN %q, not %q", got, want)
		}
		c = tc
	}
	ic := &idleConn{conn: c, br: bufio.NewReaderSize(c, 4096)}
	var status int
	if o.h2 {
		status, err = o.h2Exchange(ic)
	} else {
		status, err = o.h1Exchange(ic)
	}
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Time{})
	return ic, status, nil
}

func (o *opener) h1Exchange(ic *idleConn) (int, error) {
	if _, err := io.WriteString(ic.conn, o.req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(ic.br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.Close {
		return 0, fmt.Errorf("server answered %d with Connection: close", resp.StatusCode)
	}
	if ic.br.Buffered() > 0 {
		return 0, fmt.Errorf("server sent %d bytes after the response", ic.br.Buffered())
	}
	return resp.StatusCode, nil
}

// h2Exchange does the preface, the SETTINGS exchange and one GET on
// stream 1, and returns once the response has ended and each side has
// acknowledged the other's SETTINGS.
func (o *opener) h2Exchange(ic *idleConn) (int, error) {
	if _, err := io.WriteString(ic.conn, http2.ClientPreface); err != nil {
		return 0, err
	}
	fr := http2.NewFramer(ic.conn, ic.br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	ic.fr = fr
	if err := fr.WriteSettings(); err != nil {
		return 0, err
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: o.block, EndStream: true, EndHeaders: true}); err != nil {
		return 0, err
	}
	status, acked, ended, sawSettings := 0, false, false, false
	for !(acked && ended && sawSettings) {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				acked = true
			} else {
				sawSettings = true
				if err := fr.WriteSettingsAck(); err != nil {
					return 0, err
				}
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				if s, err := strconv.Atoi(f.PseudoValue("status")); err == nil && s >= 200 {
					status = s
				}
				ended = ended || f.StreamEnded()
			}
		case *http2.DataFrame:
			ended = ended || (f.StreamID == 1 && f.StreamEnded())
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := fr.WritePing(true, f.Data); err != nil {
					return 0, err
				}
			}
		case *http2.GoAwayFrame:
			return 0, fmt.Errorf("server sent GOAWAY (%v)", f.ErrCode)
		case *http2.RSTStreamFrame:
			return 0, fmt.Errorf("server reset stream %d (%v)", f.StreamID, f.ErrCode)
		}
	}
	if status == 0 {
		return 0, errors.New("the response had no :status")
	}
	return status, nil
}

// watch blocks until the server closes the connection or, on HTTP/1.1,
// sends anything unasked, and reports whether the tool closed it itself.
// HTTP/2 frames that keep a connection alive (a late SETTINGS ack, window
// updates, PINGs, answered) are not a close; GOAWAY is.
func (ic *idleConn) watch() bool {
	if ic.fr == nil {
		var b [1]byte
		_, err := ic.br.Read(b[:])
		return err != nil && (ic.byTool.Load() || errors.Is(err, net.ErrClosed))
	}
	for {
		f, err := ic.fr.ReadFrame()
		if err != nil {
			return ic.byTool.Load() || errors.Is(err, net.ErrClosed)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return false
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = ic.fr.WritePing(true, f.Data)
			}
		}
	}
}

// h2Request is the HPACK block of a GET of u.
func h2Request(u *url.URL) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: u.Scheme},
		{Name: ":authority", Value: u.Host},
		{Name: ":path", Value: u.RequestURI()},
		{Name: "user-agent", Value: "idleconns"},
		{Name: "accept", Value: "*/*"},
	} {
		_ = enc.WriteField(f)
	}
	return buf.Bytes()
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
