package upstream

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/testnet"
)

// listen accepts connections and hands them to the test.
func listen(t testing.TB) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return ln.Addr().String(), ch
}

func TestPoolReusesAndCloses(t *testing.T) {
	addr, accepted := listen(t)
	p := NewPool(addr, 2)
	now := time.Now().UnixNano()
	c, err := p.Get(context.Background(), time.Second, now, false)
	if err != nil || c.Reused {
		t.Fatalf("first Get: %v, reused %v", err, c != nil && c.Reused)
	}
	<-accepted
	p.Put(c, now)
	c2, err := p.Get(context.Background(), time.Second, now, false)
	if err != nil || c2 != c || !c2.Reused {
		t.Fatalf("second Get: got a new connection (%v), want the pooled one", err)
	}
	if p.Len() != 1 {
		t.Errorf("Len %d, want 1", p.Len())
	}
	// Close cuts connections in use too, and refuses new ones.
	p.Close()
	if _, err := c2.Write([]byte("x")); err == nil {
		t.Errorf("a connection in use survived Close")
	}
	if _, err := p.Get(context.Background(), time.Second, now, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
}

// pooledConn returns a pool of at most 4 idle connections, closed when the
// test ends, a connection it dialed (at now), and the target's side of it.
func pooledConn(t *testing.T) (p *Pool, c *Conn, peer net.Conn, now int64) {
	t.Helper()
	addr, accepted := listen(t)
	p = NewPool(addr, 4)
	t.Cleanup(p.Close)
	now = time.Now().UnixNano()
	c, err := p.Get(context.Background(), time.Second, now, false)
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	t.Cleanup(func() { peer.Close() })
	return p, c, peer, now
}

// TestPoolDropsConnectionsTheTargetClosed: a connection idle past
// checkAfter is peeked at before reuse; one the target closed is dropped.
func TestPoolDropsConnectionsTheTargetClosed(t *testing.T) {
	p, c, peer, now := pooledConn(t)
	p.Put(c, now)
	peer.Close() // the target closes the idle connection
	time.Sleep(20 * time.Millisecond)
	// Within checkAfter the pooled connection is trusted as it is...
	if got, _ := p.Get(context.Background(), time.Second, now+int64(checkAfter)/2, false); got != c {
		t.Fatalf("within checkAfter: got a new connection, want the pooled one")
	}
	p.Put(c, now)
	// ...past it, it is checked, found closed, and replaced.
	got, err := p.Get(context.Background(), time.Second, now+2*int64(checkAfter), false)
	if err != nil || got == c || got.Reused {
		t.Fatalf("past checkAfter: got the dead connection back (%v)", err)
	}
}

func TestPoolDialError(t *testing.T) {
	addr := testnet.RefusingAddr(t)
	_, err := NewPool(addr, 1).Get(context.Background(), time.Second, time.Now().UnixNano(), false)
	var de *DialError
	if !errors.As(err, &de) || de.Timeout() {
		t.Fatalf("dial to a closed port: %v, want a DialError that is no timeout", err)
	}
}

func TestSetIdleDeadlineIsLazy(t *testing.T) {
	addr, _ := listen(t)
	p := NewPool(addr, 1)
	t.Cleanup(p.Close)
	now := time.Now().UnixNano()
	c, err := p.Get(context.Background(), time.Second, now, false)
	if err != nil {
		t.Fatal(err)
	}
	c.SetIdleDeadline(now, 16*time.Second)
	first := c.Deadline
	c.SetIdleDeadline(now+int64(500*time.Millisecond), 16*time.Second)
	if c.Deadline != first {
		t.Errorf("the deadline moved after 0.5 s of a 16 s timeout; want it kept (within 1/16)")
	}
	c.SetIdleDeadline(now+int64(2*time.Second), 16*time.Second)
	if c.Deadline == first {
		t.Errorf("the deadline did not move after 2 s of a 16 s timeout")
	}
}

// TestAbortOutlivesLaterDeadlines: an aborted connection's reads fail at
// once, also after its user sets a fresh deadline (as a stream's goroutine
// does before each read of a response body, after a client's reset may
// have aborted it), and it is not pooled.
func TestAbortOutlivesLaterDeadlines(t *testing.T) {
	p, c, _, now := pooledConn(t)
	c.Deadline = 0 // as Take leaves a connection a loop gave a goroutine
	c.Abort()
	c.SetIdleDeadline(time.Now().UnixNano(), time.Minute)
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read on an aborted connection: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		c.Close()
		t.Fatal("a read on an aborted connection waited for the deadline set after the abort")
	}
	p.Put(c, now)
	if c2, err := p.Get(context.Background(), time.Second, now, false); err != nil || c2 == c {
		t.Errorf("Get after an aborted connection was put back: the same connection (%v), want a new one", err)
	}
}

// BenchmarkPoolGetChecked is what a request that could not be sent twice
// pays to make sure its pooled connection is still open: a peek.
func BenchmarkPoolGetChecked(b *testing.B) {
	for _, check := range []bool{false, true} {
		b.Run(map[bool]string{false: "unchecked", true: "checked"}[check], func(b *testing.B) {
			addr, accepted := listen(b)
			p := NewPool(addr, 4)
			defer p.Close()
			now := time.Now().UnixNano()
			c, err := p.Get(context.Background(), time.Second, now, false)
			if err != nil {
				b.Fatal(err)
			}
			<-accepted
			p.Put(c, now)
			b.ReportAllocs()
			for b.Loop() {
				c, err := p.Get(context.Background(), time.Second, now, check)
				if err != nil {
					b.Fatal(err)
				}
				p.Put(c, now)
			}
		})
	}
}
