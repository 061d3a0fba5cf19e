package h2

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// Serve drives the connection on nc in the calling goroutine, one per
// connection (never one per stream), until the connection is over; it
// closes nc and the Conn. This is the path for TLS, and for tests; an
// event loop drives a Conn with ReadBuf, Received, Pending and Wrote
// instead. Other goroutines reach the connection through Post.
//
// On a plain socket it waits for data holding no buffer (see rawRead).
func (c *Conn) Serve(nc net.Conn) error {
	defer nc.Close()
	defer c.Close()
	var raw syscall.RawConn
	if sc, ok := nc.(syscall.Conn); ok {
		raw, _ = sc.SyscallConn()
		c.rawFn = c.rawRead
	}
	c.mu.Lock()
	c.wake = func() { nc.SetReadDeadline(aLongTimeAgo) }
	c.mu.Unlock()
	for {
		c.runTasks()
		if err := c.flush(nc); err != nil {
			return err
		}
		if c.Done() {
			linger(nc)
			return nil
		}
		var deadline time.Time
		if at := c.NextDue(); at > 0 {
			deadline = time.Unix(0, at)
		}
		nc.SetReadDeadline(deadline)
		c.mu.Lock()
		if len(c.tasks) > 0 {
			c.mu.Unlock()
			continue
		}
		c.reading = true
		c.mu.Unlock()
		var n int
		var err error
		if raw != nil {
			n, err = c.rawRead1(raw)
		} else {
			n, err = nc.Read(c.ReadBuf())
		}
		c.mu.Lock()
		c.reading = false
		c.mu.Unlock()
		if n > 0 {
			c.Received(n)
		} else {
			c.releaseIn()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.Tick(time.Now())
				continue
			}
			return err
		}
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// WriteTimeout is the connection's Config.WriteTimeout, for an event loop
// that drives it.
func (c *Conn) WriteTimeout() time.Duration { return c.cfg.WriteTimeout }

// NextDue returns when Tick has something to do (unix ns): the idle
// timeout of a connection without streams, or the stall timeout of a
// stream waiting on its window; 0 when nothing is due, so that an idle
// connection without an idle timeout is never woken.
func (c *Conn) NextDue() int64 {
	var at int64
	if c.cfg.IdleTimeout > 0 && len(c.streams) == 0 && c.idleSince > 0 && !c.goaway {
		at = c.idleSince + int64(c.cfg.IdleTimeout)
	}
	for _, s := range c.streams {
		if s.blockedAt > 0 {
			if due := s.blockedAt + int64(c.cfg.StallTimeout); at == 0 || due < at {
				at = due
			}
		}
	}
	return at
}

// Post runs f in the connection's goroutine, soon; it may be called from
// any goroutine. On Serve, it wakes a connection waiting for data.
func (c *Conn) Post(f func()) {
	c.mu.Lock()
	c.tasks = append(c.tasks, f)
	if c.reading && c.wake != nil {
		c.wake()
	}
	c.mu.Unlock()
}

func (c *Conn) runTasks() {
	for {
		c.mu.Lock()
		// Two slices in turn: Post appends to one while this runs the
		// other, and neither is made again for each batch.
		tasks := c.tasks
		c.tasks = c.spare[:0]
		c.mu.Unlock()
		if len(tasks) == 0 {
			c.spare = tasks
			return
		}
		for _, f := range tasks {
			f()
		}
		clear(tasks)
		c.spare = tasks
		c.reap()
	}
}

// flush writes what is pending, which may let streams write more.
func (c *Conn) flush(nc net.Conn) error {
	for p := c.Pending(); len(p) > 0; p = c.Pending() {
		if c.cfg.WriteTimeout > 0 {
			nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		}
		n, err := nc.Write(p)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.ctr.WriteStalls.Add(1)
			}
			return err
		}
		c.Wrote(n)
	}
	return nil
}

// rawRead1 reads the socket with the buffer taken only once data is there.
func (c *Conn) rawRead1(raw syscall.RawConn) (int, error) {
	c.rawN, c.rawErr = 0, nil
	if err := raw.Read(c.rawFn); err != nil {
		return 0, err
	}
	if c.rawN == 0 && c.rawErr == nil {
		return 0, errEOF
	}
	return c.rawN, c.rawErr
}

var errEOF = errors.New("h2: the client closed the connection")

// rawRead is called by the runtime's poller when the socket may be
// readable; it returns false, holding no buffer, when it was not.
func (c *Conn) rawRead(fd uintptr) bool {
	buf := c.ReadBuf()
	n, err := syscall.Read(int(fd), buf)
	for err == syscall.EINTR {
		n, err = syscall.Read(int(fd), buf)
	}
	if err == syscall.EAGAIN {
		c.releaseIn()
		return false
	}
	c.rawN, c.rawErr = max(n, 0), err
	return true
}

// lingerTime bounds linger.
const lingerTime = time.Second

// linger closes the sending side of a connection that is over and reads
// what the client still sends (a WINDOW_UPDATE for the last DATA, its own
// GOAWAY) until it closes too, for at most lingerTime and 64 KiB: closed
// at once, the socket would answer those with a TCP reset, which may
// destroy the end of the response in the client's receive buffer before
// it is read.
func linger(nc net.Conn) {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	nc.SetReadDeadline(time.Now().Add(lingerTime))
	var buf [512]byte
	for n := 0; n < 64<<10; {
		k, err := nc.Read(buf[:])
		if err != nil {
			return
		}
		n += k
	}
}
