// Command closedloop is a second load generator for bench/: it keeps N
// keep-alive connections each sending one request at a time (a closed
// loop, as wrk does), and reports every request's latency exactly, so that
// wrk's own scheduling on a shared machine can be told from the proxy's.
//
//	go run ./bench/closedloop -url http://127.0.0.1:8080/ -c 64 -d 10s [-sessions FILE]
//
// With -sessions (bench/run.sh's format: "<backend> <Cookie header value>"
// per line), request i carries session i mod N's cookie and
// X-Expect-Backend, so broken stickiness shows as non-2xx answers.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:8080/", "the URL to load")
	conns := flag.Int("c", 64, "connections")
	dur := flag.Duration("d", 10*time.Second, "duration")
	sessions := flag.String("sessions", "", "sessions file (bench/run.sh's format)")
	hist := flag.Bool("hist", false, "also print a latency histogram")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	reqs, err := requests(u, *sessions)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var (
		mu     sync.Mutex
		lat    []time.Duration
		bad    int
		errors int
		wg     sync.WaitGroup
	)
	end := time.Now().Add(*dur)
	for c := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			nbad, nerr := 0, 0
			defer func() {
				mu.Lock()
				lat, bad, errors = append(lat, mine...), bad+nbad, errors+nerr
				mu.Unlock()
			}()
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				nerr++
				return
			}
			defer conn.Close()
			r := bufio.NewReaderSize(conn, 16<<10)
			body := make([]byte, 64<<10)
			for i := c; time.Now().Before(end); i += *conns {
				start := time.Now()
				if _, err := conn.Write(reqs[i%len(reqs)]); err != nil {
					nerr++
					return
				}
				status, n, err := readHead(r)
				if err != nil || n > len(body) {
					nerr++
					return
				}
				if _, err := io.ReadFull(r, body[:n]); err != nil {
					nerr++
					return
				}
				mine = append(mine, time.Since(start))
				if status < 200 || status > 399 {
					nbad++
				}
			}
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		fmt.Fprintln(os.Stderr, "no request succeeded")
		os.Exit(1)
	}
	slices.Sort(lat)
	q := func(p float64) string { return fmt.Sprintf("%.2f", float64(lat[int(p*float64(len(lat)-1))])/1e6) }
	fmt.Printf("%d requests, %.0f req/s, p50 %s ms, p90 %s ms, p99 %s ms, p99.9 %s ms, non-2xx %d, errors %d\n",
		len(lat), float64(len(lat))/dur.Seconds(), q(0.50), q(0.90), q(0.99), q(0.999), bad, errors)
	if *hist {
		printHistogram(lat)
	}
}

// requests builds the request bytes: one per session, or one without.
func requests(u *url.URL, file string) ([][]byte, error) {
	path := u.RequestURI()
	base := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	if file == "" {
		return [][]byte{[]byte(base + "\r\n")}, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		be, cookie, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not \"<backend> <cookie>\"", file, line)
		}
		out = append(out, []byte(base+"Cookie: "+cookie+"\r\nX-Expect-Backend: "+be+"\r\n\r\n"))
	}
	return out, nil
}

// readHead reads a response head and returns its status and
// Content-Length (the backends bench/ uses always send one).
func readHead(r *bufio.Reader) (status, length int, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil || len(line) < 12 {
		return 0, 0, fmt.Errorf("bad status line %q: %v", line, err)
	}
	status, _ = strconv.Atoi(string(line[9:12]))
	length = -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > 15 && bytes.EqualFold(line[:15], []byte("content-length:")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
		}
	}
	if length < 0 {
		return 0, 0, fmt.Errorf("a response without Content-Length")
	}
	return status, length, nil
}

// printHistogram prints how many of the sorted latencies fall in each
// bucket, the buckets growing by a quarter: enough to see a bimodal tail.
func printHistogram(lat []time.Duration) {
	lo := 50 * time.Microsecond
	i := 0
	for i < len(lat) {
		hi := lo + lo/4
		n := 0
		for i < len(lat) && lat[i] < hi {
			n++
			i++
		}
		if n > 0 {
			fmt.Printf("  < %8.3f ms %8d %6.2f%%\n", float64(hi)/1e6, n, 100*float64(n)/float64(len(lat)))
		}
		lo = hi
	}
}
