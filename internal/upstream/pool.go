// Package upstream keeps the HTTP/1.1 connections from latch to one target.
//
// A request borrows a connection, writes and reads on it in the caller's own
// goroutine, and gives it back: no background reader or writer goroutines,
// which is where most of net/http.Transport's cost per request goes.
package upstream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
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

// Conn is one connection to a target, with its buffers.
type Conn struct {
	net.Conn
	R *bufio.Reader
	W *bufio.Writer
	// Reused is true when the connection served an earlier request: the
	// target may have closed it in the meantime, so a failure before any
	// response byte is safe to retry on a fresh connection.
	Reused bool
	pool   *Pool
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

// Get returns an idle connection, or dials a new one within timeout.
func (p *Pool) Get(ctx context.Context, timeout time.Duration) (*Conn, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	select {
	case c := <-p.idle:
		c.Reused = true
		return c, nil
	default:
	}
	return p.Dial(ctx, timeout)
}

// Dial always makes a new connection.
func (p *Pool) Dial(ctx context.Context, timeout time.Duration) (*Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	c := &Conn{Conn: nc, R: bufio.NewReaderSize(nc, 16<<10), W: bufio.NewWriterSize(nc, 16<<10), pool: p}
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
func (p *Pool) Put(c *Conn) {
	if p.closed.Load() {
		c.Close()
		return
	}
	select {
	case p.idle <- c:
	default:
		c.Close()
	}
}

// Close closes the connection and forgets it.
func (c *Conn) Close() error {
	p := c.pool
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
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
