// Package upstream keeps the HTTP/1.1 connections from latch to one target.
//
// A request borrows a connection, writes and reads on it in the caller's own
// goroutine, and gives it back: no background reader or writer goroutines,
// which is where most of net/http.Transport's cost per request goes.
package upstream

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// Pool holds the idle keep-alive connections to one address and knows every
// connection it made, so that Close can cut them all.
type Pool struct {
	addr string
	idle chan *Conn

	mu     sync.Mutex // guards conns; taken on dial and close, never per request
	conns  map[*Conn]struct{}
	closed atomic.Bool
}

// Conn is one connection to a target, with its reader and writer. An
// event loop's connection has no net.Conn: its Owner, the loop, keeps it.
type Conn struct {
	net.Conn // nil when the connection belongs to an event loop
	R        *h1.Reader
	W        *h1.Writer
	// Reused is true when the connection served an earlier request: the
	// target may have closed it in the meantime, so a failure before any
	// response byte is safe to retry on a fresh connection.
	Reused bool
	// Deadline is the read/write deadline last set on the connection, in
	// unix nanoseconds; see SetIdleDeadline.
	Deadline int64

	pool      *Pool
	owner     Owner
	idleSince int64 // unix nanoseconds when put back in the pool
}

// Owner keeps the connections of an event loop: Release and Close of such
// a connection go to it, not to a Pool.
type Owner interface {
	// Release takes back a connection whose last response was read to its
	// end, to reuse it or close it.
	Release(c *Conn, now int64)
	// Discard closes the connection and forgets it.
	Discard(c *Conn)
}

// NewOwned returns a connection an event loop owns, reading and writing
// with rd and wr on its socket.
func NewOwned(owner Owner, rd *h1.Reader, wr *h1.Writer) *Conn {
	return &Conn{R: rd, W: wr, owner: owner}
}

// Adopt makes c, an event loop's connection, a connection of p on nc (the
// same socket, now a net.Conn): it leaves the loop for a goroutine, and
// goes back to p when released. A closed pool closes it at once, so that
// the request on it fails as on any connection of a drained target.
func (p *Pool) Adopt(c *Conn, nc net.Conn) {
	c.Conn, c.owner, c.pool = nc, nil, p
	c.R.Attach(nc)
	c.W.Attach(nc)
	c.Deadline = 0
	p.mu.Lock()
	closed := p.closed.Load()
	if !closed {
		p.conns[c] = struct{}{}
	}
	p.mu.Unlock()
	if closed {
		nc.Close()
	}
}

// Closed reports whether the pool was closed (its target deregistered).
func (p *Pool) Closed() bool { return p.closed.Load() }

// Release gives c back to whoever keeps it: its pool, or its event loop.
func (c *Conn) Release(now int64) {
	if c.owner != nil {
		c.owner.Release(c, now)
		return
	}
	c.pool.Put(c, now)
}

// DefaultMaxIdle is how many idle connections a pool keeps per target.
const DefaultMaxIdle = 256

// NewPool returns a pool for addr keeping at most maxIdle idle connections.
func NewPool(addr string, maxIdle int) *Pool {
	return &Pool{addr: addr, idle: make(chan *Conn, maxIdle), conns: make(map[*Conn]struct{})}
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

// checkAfter is how long a connection may sit idle before Get makes sure,
// with a non-blocking peek, that the target has not closed it. Below it a
// connection is almost surely alive (targets' keep-alive timeouts are
// seconds long), and the peek would cost a system call per request.
const checkAfter = time.Second

// Get returns an idle connection, or dials a new one within timeout.
func (p *Pool) Get(ctx context.Context, timeout time.Duration, now int64) (*Conn, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	for {
		select {
		case c := <-p.idle:
			if now-c.idleSince > int64(checkAfter) && !c.alive() {
				c.Close()
				continue
			}
			c.Reused = true
			return c, nil
		default:
		}
		return p.Dial(ctx, timeout)
	}
}

// alive peeks at an idle connection without blocking: a target that closed
// it has sent a FIN (the read returns 0) or an error; one that sent bytes
// while idle is out of step. Either way the connection is not reusable.
func (c *Conn) alive() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n < 0 && err == syscall.EAGAIN
		return true
	})
	return alive
}

// Dial always makes a new connection.
func (p *Pool) Dial(ctx context.Context, timeout time.Duration) (*Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	c := &Conn{Conn: nc, R: h1.NewReader(nc, false), W: h1.NewWriter(nc), pool: p}
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		nc.Close()
		return nil, ErrClosed
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	return c, nil
}

// Put returns a connection whose last response was read to its end.
func (p *Pool) Put(c *Conn, now int64) {
	if p.closed.Load() || c.R.Buffered() > 0 {
		c.Close()
		return
	}
	c.R.Release()
	c.idleSince = now
	select {
	case p.idle <- c:
	default:
		c.Close()
	}
}

// SetIdleDeadline makes sure the connection's deadline is at least
// timeout-slack from now, touching the connection only when the deadline
// set before has come within that: setting a deadline costs a timer
// update, too much to pay on every request. The timeout is so enforced to
// within slack (a sixteenth of it).
func (c *Conn) SetIdleDeadline(now int64, timeout time.Duration) {
	if c.owner != nil {
		c.Deadline = now + int64(timeout) // the loop checks it on its ticks
		return
	}
	if c.Deadline-now < int64(timeout-timeout/16) {
		c.Deadline = now + int64(timeout)
		c.Conn.SetDeadline(time.Unix(0, c.Deadline))
	}
}

// Close closes the connection and forgets it.
func (c *Conn) Close() error {
	if c.owner != nil {
		c.owner.Discard(c)
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
// fail. Later Gets fail with ErrClosed.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed.Store(true)
	conns := p.conns
	p.conns = map[*Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// Len is the number of open connections, idle or in use.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
