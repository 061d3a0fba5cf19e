// Package upstream keeps the HTTP/1.1 connections from latch to its targets.
//
// A target's Pool knows every connection to it: those goroutines use
// (blocking net.Conns, borrowed and given back) and, in one shard per event
// loop, those the loops own (non-blocking sockets, loop.go). A request
// writes and reads on its connection in its own goroutine or loop: no
// background reader or writer goroutines, which is where most of
// net/http.Transport's cost per request goes.
package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// Pool holds the connections to one target: the idle keep-alive ones, and
// every one it made, so that Close can cut them all and Len count them.
type Pool struct {
	addr    string
	ap      netip.AddrPort // addr, when it is an address (loops dial only those)
	maxIdle int
	closed  atomic.Bool

	mu    sync.Mutex // guards idle and conns; taken on Get, Put, dial and close
	idle  []*Conn    // the goroutines' idle connections, the latest last
	conns map[*Conn]struct{}

	shards    atomic.Pointer[[]*Shard] // by loop index; copied on write under mu
	loopConns atomic.Int64             // open connections in the shards
}

// Conn is one connection to a target, with its reader and writer. A loop's
// connection (Loop set) has no net.Conn until a goroutine takes it over.
type Conn struct {
	net.Conn // nil while an event loop owns the connection
	R        *h1.Reader
	W        *h1.Writer
	// Reused is true when the connection served an earlier request: the
	// target may have closed it in the meantime, so a failure before any
	// response byte is safe to retry on a fresh connection.
	Reused bool
	// Deadline is the read/write deadline last set on the connection, in
	// unix nanoseconds; see SetIdleDeadline.
	Deadline int64
	// Loop is the loop's side of a connection an event loop owns; nil on a
	// goroutine's.
	Loop *LoopConn
	// aborted is set by Abort: the connection's waits stay cut, whatever
	// deadline its user sets after.
	aborted atomic.Bool

	pool      *Pool
	idleSince int64 // unix nanoseconds when put back in the pool
	// raw is the socket under Conn, for alive's peek; peekFn, a method
	// value made once, and peekOK carry the peek without allocating.
	raw    syscall.RawConn
	peekFn func(fd uintptr) bool
	peekOK bool
}

// DefaultMaxIdle is how many idle connections a pool keeps per target, in
// each of its shards.
const DefaultMaxIdle = 256

// NewPool returns the pool of the target at addr, keeping at most maxIdle
// idle connections per shard. It holds nothing until used.
func NewPool(addr string, maxIdle int) *Pool {
	p := &Pool{addr: addr, maxIdle: maxIdle, conns: map[*Conn]struct{}{}}
	p.ap, _ = netip.ParseAddrPort(addr)
	return p
}

// ErrClosed is returned by Get once the pool is closed.
var ErrClosed = errors.New("upstream: target deregistered")

// DialError is a failure to connect: the request was never sent, so it may
// go to another target.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "connect to " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Timeout reports whether the connect timed out (504, not 502).
func (e *DialError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout() || errors.Is(e.Err, context.DeadlineExceeded)
}

// Closed reports whether the pool was closed (its target deregistered).
func (p *Pool) Closed() bool { return p.closed.Load() }

// checkAfter is how long a connection may sit idle before Get makes sure,
// with a non-blocking peek, that the target has not closed it, for a
// request that could be sent again on a new connection should the pooled
// one turn out dead (the stale-connection replay). Below it a connection
// is almost surely alive (targets' keep-alive timeouts are seconds long),
// and the peek would cost a system call (about a microsecond) per request.
// A request that could not be sent twice (a POST) is always checked.
const checkAfter = time.Second

// Get returns an idle connection, the one used last, or dials a new one
// within timeout. With check, or when the connection sat idle longer than
// checkAfter, it first makes sure the target has not closed it: a request
// that could not be sent again must never go onto a connection its target
// has closed (a target that died a moment ago, say).
func (p *Pool) Get(ctx context.Context, timeout time.Duration, now int64, check bool) (*Conn, error) {
	for {
		if p.closed.Load() {
			return nil, ErrClosed
		}
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return p.Dial(ctx, timeout)
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if (check || now-c.idleSince > int64(checkAfter)) && !c.alive() {
			c.Close()
			continue
		}
		c.Reused = true
		return c, nil
	}
}

// alive peeks at an idle connection without blocking: a target that closed
// it has sent a FIN (the read returns 0) or an error; one that sent bytes
// while idle is out of step. Either way the connection is not reusable.
func (c *Conn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.peekOK = false
	if c.raw.Read(c.peekFn) != nil {
		return false
	}
	return c.peekOK
}

func (c *Conn) peek(fd uintptr) bool {
	c.peekOK = peekIdle(int(fd))
	return true
}

// setConn makes nc the connection's socket, and readies alive's peek on it.
func (c *Conn) setConn(nc net.Conn) {
	c.Conn, c.raw = nc, nil
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			if c.peekFn == nil {
				c.peekFn = c.peek
			}
		}
	}
}

// peekIdle reports whether an idle socket is still open and quiet: nothing
// to read, no FIN, no error.
func peekIdle(fd int) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n < 0 && err == syscall.EAGAIN
}

// Dial always makes a new connection for a goroutine.
func (p *Pool) Dial(ctx context.Context, timeout time.Duration) (*Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	c := &Conn{R: h1.NewReader(nc, false), W: h1.NewWriter(nc), pool: p}
	c.setConn(nc)
	if !p.track(c) {
		nc.Close()
		return nil, ErrClosed
	}
	return c, nil
}

// track adds c to the goroutines' connections, unless the pool is closed.
func (p *Pool) track(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// Put returns a goroutine's connection whose last response was read to its
// end; an aborted one is closed.
func (p *Pool) Put(c *Conn, now int64) {
	if p.closed.Load() || c.R.Buffered() > 0 || c.aborted.Load() {
		c.Close()
		return
	}
	c.R.Release()
	c.idleSince = now
	p.mu.Lock()
	if len(p.idle) < p.maxIdle && !p.closed.Load() {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.Close()
}

// Release gives c back to whoever keeps it, its pool or its event loop, to
// reuse or close; its last response was read to its end.
func (c *Conn) Release(now int64) {
	if c.Loop != nil {
		c.Loop.release(now)
		return
	}
	c.pool.Put(c, now)
}

// SetIdleDeadline makes sure the connection's deadline is at least
// timeout-slack from now, touching the connection only when the deadline
// set before has come within that: setting a deadline costs a timer
// update, too much to pay on every request. The timeout is so enforced to
// within slack (a sixteenth of it). A loop's connection only records it:
// the loop checks it on its ticks.
func (c *Conn) SetIdleDeadline(now int64, timeout time.Duration) {
	if c.Loop != nil {
		c.Deadline = now + int64(timeout)
		return
	}
	if c.Deadline-now < int64(timeout-timeout/16) {
		c.Deadline = now + int64(timeout)
		c.Conn.SetDeadline(time.Unix(0, c.Deadline))
		// After the deadline is set, so that an Abort at any moment
		// wins: either it sets its own deadline after this one, or
		// this sees its mark.
		if c.aborted.Load() {
			c.Conn.SetDeadline(aLongTimeAgo)
		}
	}
}

// Abort cuts the connection's waits, those under way and those to come, from
// any goroutine: its user's reads and writes fail with a timeout, and a
// deadline its user sets after (SetIdleDeadline) does not undo it. An
// aborted connection is not to be pooled: its user closes it. It is for a
// goroutine's connection (Conn set).
func (c *Conn) Abort() {
	c.aborted.Store(true)
	c.Conn.SetDeadline(aLongTimeAgo)
}

// aLongTimeAgo is a deadline in the past, which cuts waits at once.
var aLongTimeAgo = time.Unix(1, 0)

// Close closes the connection and forgets it.
func (c *Conn) Close() error {
	if c.Loop != nil {
		c.Loop.discard()
		return nil
	}
	p := c.pool
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.R.Close()
	c.W.Reset(nil)
	return c.Conn.Close()
}

// Close closes every connection, idle or in use; requests in flight on them
// fail. Later Gets fail with ErrClosed. Each loop closes its shard's idle
// connections in a task posted to it (so a loop must still run: the server
// closes its groups before its loops); an exchange on a loop finds its
// connection's pool closed at its next tick, and ends.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed.Store(true)
	conns := p.conns
	p.conns = map[*Conn]struct{}{}
	p.idle = nil
	p.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	if shards := p.shards.Load(); shards != nil {
		for _, s := range *shards {
			if s != nil {
				s.loop.Post(s.closeIdle)
			}
		}
	}
}

// Len is the number of open connections, idle or in use, in every shard.
func (p *Pool) Len() int {
	p.mu.Lock()
	n := len(p.conns)
	p.mu.Unlock()
	return n + int(p.loopConns.Load())
}
