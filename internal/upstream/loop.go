package upstream

import (
	"net"
	"os"
	"time"

	"github.com/latch-lb/latch/internal/evloop"
	"github.com/latch-lb/latch/internal/h1"
)

// Shard is a pool's connections owned by one event loop: only that loop's
// goroutine touches it, so it takes no lock.
type Shard struct {
	pool *Pool
	loop *evloop.Loop
	idle []*LoopConn // the latest last
}

// LoopConn is a target connection an event loop owns: a non-blocking
// socket registered with the loop, and the Conn an exchange reads and
// writes it through.
type LoopConn struct {
	*Conn
	Sock  h1.Sock
	shard *Shard
	// User is the exchange the connection serves, woken when its socket
	// is ready; nil while the connection is idle.
	User Waiter
	// DialBy is when a connect still in progress times out, unix
	// nanoseconds.
	DialBy int64
	closed bool
}

// A Waiter is an exchange waiting on a loop's target connection.
type Waiter interface {
	// Step is called in the loop's goroutine when the connection's socket
	// is ready.
	Step()
}

// Loopable reports whether event loops can dial the pool's target: its id
// is an address (a host name needs the goroutines' resolver).
func (p *Pool) Loopable() bool { return p.ap.IsValid() }

// Shard returns the pool's shard of the loop with index i, making it the
// first time. Call it in that loop's goroutine.
func (p *Pool) Shard(i int, loop *evloop.Loop) *Shard {
	if shards := p.shards.Load(); shards != nil && i < len(*shards) && (*shards)[i] != nil {
		return (*shards)[i]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var next []*Shard
	if shards := p.shards.Load(); shards != nil {
		next = append(next, *shards...)
	}
	for len(next) <= i {
		next = append(next, nil)
	}
	s := &Shard{pool: p, loop: loop}
	next[i] = s
	p.shards.Store(&next)
	return s
}

// Get returns an idle connection, the one used last, or nil. The loop
// drops a connection its target closes when it sees the FIN, but the FIN
// may wait in this round of events: with check, Get makes sure first, for a
// request that could not be sent again (see Pool.Get).
func (s *Shard) Get(check bool) *LoopConn {
	for {
		n := len(s.idle)
		if n == 0 || s.pool.closed.Load() {
			return nil
		}
		u := s.idle[n-1]
		s.idle[n-1] = nil
		s.idle = s.idle[:n-1]
		if check && !peekIdle(u.Sock.FD) {
			u.discard()
			continue
		}
		u.Reused = true
		return u
	}
}

// Dial starts a connection to the shard's target, registered with the
// loop; it is connected once its socket turns writable (Connected tells
// how it went). now is the time, for DialBy.
func (s *Shard) Dial(timeout time.Duration, now int64) (*LoopConn, error) {
	p := s.pool
	if p.closed.Load() {
		return nil, ErrClosed
	}
	fd, connecting, err := dialSocket(p.ap)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	u := &LoopConn{shard: s, DialBy: now + int64(timeout)}
	u.Sock = h1.Sock{FD: fd, Writable: !connecting}
	u.Conn = &Conn{R: h1.NewSockReader(&u.Sock), W: h1.NewSockWriter(&u.Sock), Loop: u, pool: p}
	if err := s.loop.Add(fd, u); err != nil {
		closeFD(fd)
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	p.loopConns.Add(1)
	return u, nil
}

// Connected reports how a connect that was in progress ended, once the
// socket turned writable: nil, or a *DialError.
func (u *LoopConn) Connected() error {
	if err := connectResult(u.Sock.FD); err != nil {
		return &DialError{Addr: u.shard.pool.addr, Err: err}
	}
	return nil
}

// Shard is the shard the connection belongs to.
func (u *LoopConn) Shard() *Shard { return u.shard }

// Connecting reports whether a connect is still in progress.
func (u *LoopConn) Connecting() bool { return !u.Sock.Writable }

// Ready is the loop's call when the socket is ready.
func (u *LoopConn) Ready(ev uint32) {
	if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
		u.Sock.Readable = true
	}
	u.Sock.Shut = u.Sock.Shut || ev&(evloop.RdHup|evloop.Hup|evloop.Err) != 0
	if ev&(evloop.Out|evloop.Hup|evloop.Err) != 0 {
		u.Sock.Writable = true
	}
	if u.User == nil {
		if ev&(evloop.In|evloop.RdHup|evloop.Hup|evloop.Err) != 0 {
			// Idle: the target closed it, or sent something out of turn.
			u.discard()
		}
		return
	}
	u.User.Step()
}

// release takes back a connection whose response was read to its end.
func (u *LoopConn) release(int64) {
	u.User = nil
	s := u.shard
	if u.closed || s.pool.closed.Load() || u.R.Buffered() > 0 || u.W.Pending() > 0 || len(s.idle) >= s.pool.maxIdle {
		u.discard()
		return
	}
	u.R.Release()
	s.idle = append(s.idle, u)
}

func (u *LoopConn) discard() {
	if u.closed {
		return
	}
	u.closed = true
	u.User = nil
	s := u.shard
	s.loop.Remove(u.Sock.FD)
	closeFD(u.Sock.FD)
	u.R.Close()
	u.W.Reset(nil)
	s.pool.loopConns.Add(-1)
	for i, v := range s.idle {
		if v == u {
			s.idle = append(s.idle[:i], s.idle[i+1:]...)
			break
		}
	}
}

// closeIdle closes the shard's idle connections (its pool was closed).
func (s *Shard) closeIdle() {
	for len(s.idle) > 0 {
		s.idle[len(s.idle)-1].discard()
	}
}

// Take moves a loop's connection in use to the goroutines: it leaves the
// loop and becomes a connection of its pool's goroutine side on a
// net.Conn of the same socket, which the caller now uses and gives back
// with Release or Close. Call it in the loop's goroutine. A pool closed
// meanwhile closes it at once, so that the request on it fails as on any
// connection of a deregistered target.
func (u *LoopConn) Take() (*Conn, error) {
	s := u.shard
	c := u.Conn
	s.loop.Remove(u.Sock.FD)
	u.closed = true
	u.User = nil
	s.pool.loopConns.Add(-1)
	nc, err := FileConn(u.Sock.FD)
	if err != nil {
		c.R.Close()
		c.W.Reset(nil)
		return nil, err
	}
	c.setConn(nc)
	c.Loop, c.Deadline = nil, 0
	c.R.Attach(nc)
	c.W.Attach(nc)
	if !s.pool.track(c) {
		nc.Close()
	}
	return c, nil
}

// FileConn makes a net.Conn of a loop's socket, for a goroutine; fd itself
// is closed (the net.Conn has its own copy).
func FileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	return net.FileConn(f)
}
