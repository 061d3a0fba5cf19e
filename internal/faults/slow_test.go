package faults

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Scenarios 11 and 12 of issue 9: slow clients beside normal traffic, and
// many idle ones. What latch promises: a request head must arrive whole
// within the listener's idle timeout (408 otherwise), and a body must not
// pause longer than it; neither costs the other clients anything; an idle
// keep-alive connection costs latch a few KiB (README "Memory": 4.9 KiB on
// the event loops).

// cut is what became of one slow client.
type cut struct {
	after  time.Duration // from its last byte (a body) or its first (a head) to latch's close
	answer string        // the status line latch sent, or "" for none
	err    string        // set when the client gave up first
}

// slowIdle is the idle timeout of the slowloris scenario's listener: short,
// and long enough that no normal request waits that long for its target
// on a busy 2-CPU machine.
const slowIdle = 2 * time.Second

// trickleHead sends a request head a byte every 100 ms, never ending it,
// until latch closes the connection (at most 15 s).
func trickleHead(addr string, i int) cut {
	// From before the dial: latch's clock for the connection starts later,
	// so a cut measured from here is never early by this client's delays.
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return cut{err: err.Error()}
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /loris HTTP/1.1\r\nHost: latch\r\nX-Request-Id: loris-%d\r\nX-Pad: ", i)
	read := make(chan cut, 1)
	go func() { read <- readCut(c, start) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case x := <-read:
			return x
		case <-tick.C:
			if time.Since(start) > 15*time.Second {
				return cut{err: "not cut within 15 s"}
			}
			c.Write([]byte("a"))
		}
	}
}

// stallBody sends a POST's head and the first 10 bytes of its 100-byte
// body, then nothing, until latch closes the connection (at most 10 s).
func stallBody(addr string, i int) cut {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return cut{err: err.Error()}
	}
	defer c.Close()
	last := time.Now() // before the write, for the same reason as trickleHead's start
	fmt.Fprintf(c, "POST /rudy HTTP/1.1\r\nHost: latch\r\nX-Request-Id: rudy-%d\r\nContent-Length: 100\r\n\r\n0123456789", i)
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	x := readCut(c, last)
	if x.answer == "HTTP/1.1 408 Request Timeout" && x.after < slowIdle*9/10 {
		// This client was slower to send its head than the idle timeout
		// (a busy machine): latch rightly cut it before the body. Measured
		// from before the dial, it is no early cut.
		x.after += last.Sub(start)
	}
	return x
}

// readCut reads what latch sends until it closes the connection.
func readCut(c net.Conn, from time.Time) cut {
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	_, err := io.Copy(io.Discard, br)
	x := cut{after: time.Since(from), answer: strings.TrimSpace(line)}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		x.err = "not cut within 15 s"
	}
	return x
}

func testSlowloris(t *testing.T, v variant, r *row) {
	const heads, bodies = 100, 50
	r.fault = fmt.Sprintf("slowloris: %d clients trickling a head (a byte every 100 ms), %d sending 10 bytes of a body and then nothing; idle timeout %g s", heads, bodies, slowIdle.Seconds())
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts), idle: fmt.Sprint(slowIdle.Seconds())})
	spec := standardLoad("normal")
	r.load = "3 targets, " + spec.String() + ", beside the slow clients"
	ld := startLoad(t, p, spec)
	ld.waitEstablished(t)
	var mu sync.Mutex
	var headCuts, bodyCuts []cut
	var wg sync.WaitGroup
	for i := range heads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := trickleHead(p.addr, i)
			mu.Lock()
			headCuts = append(headCuts, x)
			mu.Unlock()
		}()
	}
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := stallBody(p.addr, i)
			mu.Lock()
			bodyCuts = append(bodyCuts, x)
			mu.Unlock()
		}()
	}
	wg.Wait()
	ld.waitMore(t, 250) // and a second of normal traffic after them
	ld.stop()
	led.sync(t, ts...)
	rs, _ := ld.results()

	headSaw, headBad := describeCuts(headCuts, slowIdle, "HTTP/1.1 408 Request Timeout")
	bodySaw, bodyBad := describeCuts(bodyCuts, slowIdle, "")
	r.saw = fmt.Sprintf("normal: %s; trickled heads: %s; stalled bodies: %s", summary(rs), headSaw, bodySaw)
	reached := len(led.requests(func(e entry) bool { return strings.HasPrefix(e.id, "loris-") }))
	completed := countEntries(func() []entry { es, _ := led.all(); return es }(), func(e entry) bool {
		return e.kind == "END" && strings.HasPrefix(e.id, "rudy-") && e.end == "ok"
	})
	r.lost = fmt.Sprintf("normal traffic: %d requests; trickled heads that reached a target: %d; stalled bodies a target got whole: %d", len(failed(rs)), reached, completed)
	if bad := failed(rs); len(bad) > 0 {
		r.errorf(t, "%d of %d normal requests failed beside the slow clients (%s), want none", len(bad), len(rs), firstErrors(bad))
	}
	if headBad != "" {
		r.errorf(t, "trickled heads: %s; want each answered 408 and closed within 0.9-3× the idle timeout after its first byte: a head must come whole within the idle timeout", headBad)
	}
	if bodyBad != "" {
		r.errorf(t, "stalled bodies: %s; want each closed within 0.9-3× the idle timeout after its last byte: a body must not pause longer than the idle timeout", bodyBad)
	}
	if reached > 0 || completed > 0 {
		r.errorf(t, "%d trickled heads reached a target and %d stalled bodies arrived whole, want none", reached, completed)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

// describeCuts sums up the slow clients' ends ("100 answered 408, cut
// after 1.00-1.06 s"), and says what was wrong with any: cut before 0.9×
// idle (latch enforces it to within 1/16) or after 3×, or answered other
// than want (unless want is "").
func describeCuts(cs []cut, idle time.Duration, want string) (saw, bad string) {
	lo, hi := time.Hour, time.Duration(0)
	answers := map[string]int{}
	var problems []string
	for _, x := range cs {
		if x.err != "" {
			problems = append(problems, x.err)
			continue
		}
		lo, hi = min(lo, x.after), max(hi, x.after)
		a := x.answer
		if a == "" {
			a = "no answer"
		}
		answers[a]++
		switch {
		case x.after < idle*9/10 || x.after > 3*idle:
			problems = append(problems, fmt.Sprintf("cut after %v", x.after.Round(time.Millisecond)))
		case want != "" && x.answer != want:
			problems = append(problems, fmt.Sprintf("answered %q", x.answer))
		}
	}
	var parts []string
	for a, n := range answers {
		parts = append(parts, fmt.Sprintf("%d %s", n, a))
	}
	saw = strings.Join(parts, ", ")
	if hi > 0 {
		saw += fmt.Sprintf(", cut after %.2f-%.2f s", lo.Seconds(), hi.Seconds())
	}
	if len(problems) > 0 {
		bad = fmt.Sprintf("%d of %d wrong, first %s", len(problems), len(cs), problems[0])
	}
	return saw, bad
}

func testIdleConnections(t *testing.T, v variant, r *row) {
	const n = 10000
	// On the event loops, the target: at most 2 KiB a connection
	// (1.3-1.4 KiB in runs here, 4.1 before an idle connection gave its
	// exchange back); with a goroutine each, whose stack is most of it,
	// 10 KiB (6.1 KiB here, 9.2 before).
	budget := 2 << 10
	if v.path == "goroutines" {
		budget = 10 << 10
	}
	r.fault = fmt.Sprintf("%d idle keep-alive connections, each used for one request", n)
	raiseFileLimit(t, n+1000)
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	r.load = fmt.Sprintf("3 targets; %d connections opened 32 at a time, one GET on each, all kept open", n)
	// Warm latch up first, so that the figure is the connections' and not
	// the first requests'.
	for _, c := range openIdle(t, p.addr, "warm", 200) {
		c.Close()
	}
	base := p.rss(t)
	conns := openIdle(t, p.addr, "idle", n)
	grown := p.rss(t) - base
	per := float64(grown) * 1024 / n
	control := send(p.client(), http.MethodGet, p.url+"/control", "control", "")
	for _, c := range conns {
		c.Close()
	}
	r.saw = fmt.Sprintf("%d requests, all 200; a new client beside them: %d", n, control.status)
	r.lost = fmt.Sprintf("latch's RSS grew %.1f MiB: %.1f KiB a connection (budget %d KiB)", float64(grown)/1024, per/1024, budget>>10)
	if !control.ok() {
		r.errorf(t, "a new client beside %d idle connections got %d %q, want 200", n, control.status, control.err)
	}
	if per > float64(budget) {
		r.errorf(t, "%.1f KiB a connection, want at most %d KiB", per/1024, budget>>10)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

// openIdle opens n connections to addr, sends one GET on each and reads
// its answer, 32 connections at a time, and returns them open.
func openIdle(t *testing.T, addr, tag string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					continue
				}
				conns[i] = c
				fmt.Fprintf(c, "GET /idle HTTP/1.1\r\nHost: latch\r\nX-Request-Id: %s-%d\r\n\r\n", tag, i)
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				c.SetReadDeadline(time.Time{})
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("connection %d: %s", i, resp.Status)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	failures := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		failures++
	}
	if failures > 0 {
		t.Fatalf("%d of %d connections failed; first: %v", failures, n, first)
	}
	return conns
}

// raiseFileLimit raises this process's soft limit on open files to at
// least n (up to the hard limit), and skips the test if it cannot.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	lim.Cur = min(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n {
		t.Skipf("open files limited to %d (hard %d), want %d: raise ulimit -n", lim.Cur, lim.Max, n)
	}
}
