package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A target process's modes. Every mode answers /healthz with 200; on its
// other routes it answers 200 with its name until its fault is on (SIGUSR1,
// or LATCH_FAULT_NOW=1), then:
const (
	modeOK      = "ok"      // no fault: 200 as ever
	modeClose   = "close"   // no fault; it closes every connection after its response, as some apps do
	modeBigHead = "bighead" // a response head over 32 KiB (40 Set-Cookie fields of 1000 bytes)
	modeReset   = "reset"   // the connection reset (RST), no response
	modeGarbage = "garbage" // bytes that are not HTTP, then a close
	modeHang    = "hang"    // no response at all, until latch gives up
	mode5xx     = "5xx"     // 500
)

// runTarget is a target process: it listens on LATCH_FAULT_ADDR (or a
// free port), prints "ADDR host:port", then one line on stdout for every
// request on a real route, before it answers, so that the test's ledger
// holds every request a target received, even one a SIGKILL ended:
//
//	REQ <name> <method> <path> <request id> <X-Latch-Session-Moved> <fault on: 0/1> <request number on its connection>
//	END <name> <request id> <ok, or the body's read error>
//
// and "FAULT <name>" when its fault comes on, "SYNC <name> <id>" for a
// request to /sync (see ledger.sync).
//
// A request with X-Hold: <name>=<ms> (or *=<ms>) is held that long (or until
// latch gives up on it) before its answer; LATCH_FAULT_HOLD holds every
// request.
func runTarget(mode string) int {
	name := os.Getenv("LATCH_FAULT_NAME")
	addr := os.Getenv("LATCH_FAULT_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var hold time.Duration
	if h := os.Getenv("LATCH_FAULT_HOLD"); h != "" {
		var err error
		if hold, err = time.ParseDuration(h); err != nil {
			fmt.Println("ERR LATCH_FAULT_HOLD:", err)
			return 1
		}
	}
	var faulty atomic.Bool
	faulty.Store(os.Getenv("LATCH_FAULT_NOW") == "1")
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			faulty.Store(true)
			fmt.Println("FAULT", name)
		}
	}()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println("ADDR", ln.Addr().String())
	type connSeq struct{}
	bigCookie := strings.Repeat("x", 1000)
	srv := &http.Server{
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connSeq{}, new(atomic.Int64))
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/healthz":
				io.WriteString(w, "ok")
				return
			case "/sync":
				// Every line printed before is in the test's ledger once
				// this one is.
				fmt.Printf("SYNC %s %s\n", name, orDash(r.Header.Get("X-Request-Id")))
				return
			}
			f := faulty.Load()
			id := orDash(r.Header.Get("X-Request-Id"))
			seq := r.Context().Value(connSeq{}).(*atomic.Int64).Add(1)
			path := r.URL.EscapedPath()
			if len(path) > 200 {
				path = path[:200] // one short write: lines of several requests never interleave
			}
			fmt.Printf("REQ %s %s %s %s %s %d %d\n", name, r.Method, path, id,
				orDash(r.Header.Get("X-Latch-Session-Moved")), b2i(f), seq)
			_, err := io.Copy(io.Discard, r.Body)
			end := "ok"
			if err != nil {
				end = "bodyerr:" + strings.ReplaceAll(err.Error(), " ", "_")
			}
			fmt.Printf("END %s %s %s\n", name, id, end)
			wait := hold
			if h := r.Header.Get("X-Hold"); h != "" {
				if who, ms, ok := strings.Cut(h, "="); ok && (who == name || who == "*") {
					n, _ := strconv.Atoi(ms)
					wait = time.Duration(n) * time.Millisecond
				}
			}
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-r.Context().Done():
					return
				}
			}
			if f {
				switch mode {
				case modeBigHead:
					for i := range 40 {
						w.Header().Add("Set-Cookie", fmt.Sprintf("runaway%d=%s", i, bigCookie))
					}
				case modeReset:
					if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
						c.(*net.TCPConn).SetLinger(0)
						c.Close()
					}
					return
				case modeGarbage:
					if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
						io.WriteString(c, "SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n")
						c.Close()
					}
					return
				case modeHang:
					select {
					case <-r.Context().Done():
					case <-time.After(time.Minute):
					}
					return
				case mode5xx:
					w.Header().Set("X-Backend", name)
					w.WriteHeader(http.StatusInternalServerError)
					io.WriteString(w, "failing")
					return
				}
			}
			if mode == modeClose {
				w.Header().Set("Connection", "close")
			}
			w.Header().Set("X-Backend", name)
			io.WriteString(w, name)
		}),
	}
	srv.Serve(ln)
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// entry is one line of a target's record.
type entry struct {
	kind    string // REQ, END, FAULT or SYNC
	target  string // its name
	method  string
	path    string
	id      string // X-Request-Id, "-" for none
	moved   string // X-Latch-Session-Moved, "-" for none
	faulty  bool   // the target's fault was on
	connSeq int    // the request's number on its connection, from 1
	end     string // END: ok, or why the body was not read whole
}

// ledger collects what every target of a scenario received, in the order
// the lines came, and wakes those waiting on it.
type ledger struct {
	mu      sync.Mutex
	entries []entry
	wake    chan struct{} // closed and replaced at every line
}

func newLedger() *ledger { return &ledger{wake: make(chan struct{})} }

func (l *ledger) add(e entry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// all returns a copy of the entries, and a channel closed at the next one.
func (l *ledger) all() ([]entry, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]entry(nil), l.entries...), l.wake
}

// waitFor waits until cond holds on the entries, and fails t if it does
// not within d.
func (l *ledger) waitFor(t *testing.T, d time.Duration, what string, cond func([]entry) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		es, wake := l.all()
		if cond(es) {
			return
		}
		select {
		case <-wake:
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// requests returns the REQ entries that match keep.
func (l *ledger) requests(keep func(entry) bool) []entry {
	es, _ := l.all()
	var out []entry
	for _, e := range es {
		if e.kind == "REQ" && (keep == nil || keep(e)) {
			out = append(out, e)
		}
	}
	return out
}

// byID counts the REQ entries of each request id.
func (l *ledger) byID() map[string][]entry {
	m := map[string][]entry{}
	for _, e := range l.requests(nil) {
		m[e.id] = append(m[e.id], e)
	}
	return m
}

func parseEntry(line string) (entry, bool) {
	f := strings.Fields(line)
	switch {
	case len(f) == 8 && f[0] == "REQ":
		seq, _ := strconv.Atoi(f[7])
		return entry{kind: "REQ", target: f[1], method: f[2], path: f[3], id: f[4], moved: f[5], faulty: f[6] == "1", connSeq: seq}, true
	case len(f) == 4 && f[0] == "END":
		return entry{kind: "END", target: f[1], id: f[2], end: f[3]}, true
	case len(f) == 2 && f[0] == "FAULT":
		return entry{kind: "FAULT", target: f[1]}, true
	case len(f) == 3 && f[0] == "SYNC":
		return entry{kind: "SYNC", target: f[1], id: f[2]}, true
	}
	return entry{}, false
}

// targetProc is a target running as a process of its own.
type targetProc struct {
	name, mode, addr string
	env              []string
	led              *ledger
	cmd              *exec.Cmd
	read             chan struct{} // closed when its stdout has been read to the end
	dead             bool          // killed, not restarted
}

// startTarget starts a target process in mode, whose requests go to led.
// env adds LATCH_FAULT_* settings (LATCH_FAULT_HOLD, LATCH_FAULT_NOW).
func startTarget(t *testing.T, led *ledger, name, mode string, env ...string) *targetProc {
	t.Helper()
	p := &targetProc{name: name, mode: mode, led: led, env: env}
	p.start(t, "127.0.0.1:0")
	return p
}

func (p *targetProc) start(t *testing.T, addr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LATCH_FAULT_TARGET="+p.mode, "LATCH_FAULT_NAME="+p.name, "LATCH_FAULT_ADDR="+addr)
	cmd.Env = append(cmd.Env, p.env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd, p.dead = cmd, false
	read := make(chan struct{})
	p.read = read
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "ADDR ") {
		t.Fatalf("target %s (%s) did not start: %q %v", p.name, p.mode, sc.Text(), sc.Err())
	}
	p.addr = strings.TrimPrefix(sc.Text(), "ADDR ")
	go func() {
		defer close(read)
		for sc.Scan() {
			if e, ok := parseEntry(sc.Text()); ok {
				p.led.add(e)
			}
		}
	}()
}

// fault turns the target's fault on and waits until it is.
func (p *targetProc) fault(t *testing.T) {
	t.Helper()
	es, _ := p.led.all()
	before := countEntries(es, func(e entry) bool { return e.kind == "FAULT" && e.target == p.name })
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	p.led.waitFor(t, 5*time.Second, "target "+p.name+"'s fault on", func(es []entry) bool {
		return countEntries(es, func(e entry) bool { return e.kind == "FAULT" && e.target == p.name }) > before
	})
}

// kill ends the target with SIGKILL, and returns once the process is gone
// and everything it printed is in the ledger: with the time just before
// the signal, and the time it was gone (its sockets closed).
func (p *targetProc) kill(t *testing.T) (signalled, gone time.Time) {
	t.Helper()
	signalled = time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.read // its stdout ends when it is gone: every socket of it closed
	gone = time.Now()
	p.cmd.Wait() // after the last read: Wait closes the pipe
	p.dead = true
	return signalled, gone
}

// restart starts the target again on its address.
func (p *targetProc) restart(t *testing.T) {
	t.Helper()
	p.start(t, p.addr)
}

var syncs atomic.Int64

// sync waits until the ledger holds every line the live targets printed
// so far: a target prints its lines in order, so once a request sent to
// it directly after them is in, they are.
func (l *ledger) sync(t *testing.T, ps ...*targetProc) {
	t.Helper()
	for _, p := range ps {
		if p.dead {
			continue // kill waited for its last line
		}
		id := fmt.Sprintf("sync-%d", syncs.Add(1))
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/sync", nil)
		req.Header.Set("X-Request-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("syncing with target %s: %v", p.name, err)
		}
		resp.Body.Close()
		l.waitFor(t, 5*time.Second, "target "+p.name+"'s lines", func(es []entry) bool {
			for i := len(es) - 1; i >= 0; i-- {
				if es[i].kind == "SYNC" && es[i].id == id {
					return true
				}
			}
			return false
		})
	}
}

func countEntries(es []entry, keep func(entry) bool) int {
	n := 0
	for _, e := range es {
		if keep(e) {
			n++
		}
	}
	return n
}

// startTargets starts n targets named a, b, c... in mode.
func startTargets(t *testing.T, led *ledger, n int, mode string, env ...string) []*targetProc {
	t.Helper()
	ps := make([]*targetProc, n)
	for i := range ps {
		ps[i] = startTarget(t, led, string(rune('a'+i)), mode, env...)
	}
	return ps
}

func addrs(ps []*targetProc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.addr)
	}
	return out
}

func byName(ps []*targetProc, name string) *targetProc {
	for _, p := range ps {
		if p.name == name {
			return p
		}
	}
	return nil
}
