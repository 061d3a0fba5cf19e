package proxy

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/h1"
)

// TLS on an event loop.
//
// A TLS connection's handshake runs in its goroutine (goConn). Then the
// connection moves to a loop, as a plain one lives on one: HTTP/2 at once,
// HTTP/1.1 once it has served its first request there and waits for the
// next (one that closes after its request is never moved). crypto/tls
// stays its TLS, reading and writing through sockConn, which turns from
// the accepted connection into the loop's non-blocking socket. crypto/tls
// keeps a read that would block for later (an error that says it is
// temporary is not kept as the connection's), so the loop drives it as it
// drives a plain socket: tlsWire is the socket through TLS, for the
// HTTP/2 engine (h2wire) and for HTTP/1.1's Reader and Writer (h1.Wire).
// A connection that leaves the loop for a goroutine (a streamed body, say)
// takes its TLS along, sockConn turned back into a blocking connection.

// ServeTLS serves nc with TLS (cfg), the handshake in the connection's
// goroutine.
func (h *Handler) ServeTLS(nc net.Conn, cfg *tls.Config) {
	h.ServeConn(tls.Server(&sockConn{Conn: nc}, cfg))
}

// sockConn is the connection under a TLS connection: the accepted one,
// until the connection moves to a loop; then the loop's socket (sock),
// where what TLS writes waits in out for the loop to write. out is taken
// from tlsOut when TLS writes, and given back once the socket took it all,
// so that an idle connection holds no buffer.
type sockConn struct {
	net.Conn
	sock *h1.Sock
	out  []byte
	outp *[]byte // out's, from tlsOut
}

var tlsOut = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func (s *sockConn) Read(p []byte) (int, error) {
	if s.sock == nil {
		return s.Conn.Read(p)
	}
	n, err := s.sock.Read(p)
	if err == h1.ErrWouldBlock {
		return n, errTLSWouldBlock
	}
	return n, err
}

func (s *sockConn) Write(p []byte) (int, error) {
	if s.sock == nil {
		if len(s.out) > 0 {
			// Left by the loop the connection came from: it goes first.
			out := s.out
			s.out = nil
			if _, err := s.Conn.Write(out); err != nil {
				return 0, err
			}
		}
		return s.Conn.Write(p)
	}
	if s.outp == nil && len(p) > 0 {
		s.outp = tlsOut.Get().(*[]byte)
		s.out = (*s.outp)[:0]
	}
	s.out = append(s.out, p...)
	return len(p), nil
}

// release gives out back, once it is empty; one grown past 64 KiB (a
// client slow to take large answers) is dropped.
func (s *sockConn) release() {
	if cap(s.out) <= 64<<10 {
		*s.outp = s.out[:0]
		tlsOut.Put(s.outp)
	}
	s.out, s.outp = nil, nil
}

// Deadlines are the loop's once it has the socket; crypto/tls sets some
// when it closes.
func (s *sockConn) SetDeadline(t time.Time) error {
	if s.sock == nil {
		return s.Conn.SetDeadline(t)
	}
	return nil
}

func (s *sockConn) SetReadDeadline(t time.Time) error {
	if s.sock == nil {
		return s.Conn.SetReadDeadline(t)
	}
	return nil
}

func (s *sockConn) SetWriteDeadline(t time.Time) error {
	if s.sock == nil {
		return s.Conn.SetWriteDeadline(t)
	}
	return nil
}

// errTLSWouldBlock is sockConn's read error when the loop's socket has
// nothing: temporary, so that crypto/tls does not keep it as the
// connection's, and reads again later.
var errTLSWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// tlsWire is a connection's TLS on a loop.
type tlsWire struct {
	tc *tls.Conn
	sc *sockConn
}

// Read reads through TLS; h1.ErrWouldBlock when nothing more has come.
func (w tlsWire) Read(p []byte) (int, error) {
	n, err := w.tc.Read(p)
	if err == errTLSWouldBlock {
		err = h1.ErrWouldBlock
	}
	return n, err
}

// Write encrypts all of p, and writes what the socket takes of it now
// (HTTP/1.1's Writer: it holds a whole answer, bounded).
func (w tlsWire) Write(p []byte) (int, error) {
	n, err := w.tc.Write(p)
	if err != nil {
		return n, err
	}
	return n, w.Flush()
}

func (w tlsWire) Buffered() int { return len(w.sc.out) }

// offLoop turns the connection's TLS back to a blocking connection, on
// nc, the loop's socket as a net.Conn, for a goroutine; it returns the TLS
// connection.
func (w tlsWire) offLoop(nc net.Conn) net.Conn {
	w.sc.Conn, w.sc.sock = nc, nil
	return w.tc
}

// write encrypts p once what TLS wrote before is out, so that a client
// that does not read holds no more than the engine's output.
func (w tlsWire) write(p []byte) (int, error) {
	if err := w.Flush(); err != nil {
		return 0, err
	}
	n, err := w.tc.Write(p)
	if err != nil {
		return n, err
	}
	return n, w.Flush()
}

// Flush writes what TLS wrote to the socket.
func (w tlsWire) Flush() error {
	sc := w.sc
	if len(sc.out) == 0 {
		return nil
	}
	n, err := sc.sock.Write(sc.out)
	sc.out = sc.out[:copy(sc.out, sc.out[n:])]
	if len(sc.out) == 0 {
		sc.release()
	}
	return err
}

func (w tlsWire) closeWrite() error {
	w.tc.CloseWrite() // close_notify, into sc.out
	w.Flush()
	return shutWrite(w.sc.sock.FD)
}

// moveToLoop moves a TLS connection, its handshake done, to an event
// loop, to be served HTTP/2 (h2) or HTTP/1.1 there (between requests). It
// reports false, the connection untouched, if it cannot.
func (c *goConn) moveToLoop(tc *tls.Conn, h2 bool) bool {
	h := c.h
	sc, ok := tc.NetConn().(*sockConn)
	if !ok || h.loops == nil {
		return false
	}
	// Under the handler's lock, which Shutdown holds while it wakes and
	// cuts the connections it knows: until replace, that is this goConn,
	// whose cut would close tc while its sockConn moves. One that is
	// shutting down stays in its goroutine, which closes it.
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing.Load() {
		return false
	}
	sc.Conn.SetDeadline(time.Time{})
	c.deadline = 0 // should it stay, the next touch sets one again
	fd, ok := detach(sc.Conn)
	if !ok {
		return false
	}
	ls := h.loops.pick()
	lc := &loopConn{h1conn: c.h1conn}
	w := tlsWire{tc, sc}
	lc.sock = h1.Sock{FD: fd, Readable: true, Writable: true}
	lc.path = lc
	lc.fw = loopFwd{owner: lc}
	sc.sock = &lc.sock
	lc.tls = &w
	if !h2 {
		// HTTP/1.1's Reader and Writer on the loop's socket, through TLS;
		// the goroutine's hold nothing: its reader has no byte of a next
		// request (toLoop), its writer wrote out the last answer.
		c.rd.Close()
		c.wr.Reset(nil)
		lc.sock.Wire = w
		lc.rd, lc.wr = h1.NewSockReader(&lc.sock), h1.NewSockWriter(&lc.sock)
	}
	lc.lsShared.Store(ls)
	delete(h.conns, c) // h.replace, under the lock held
	h.conns[lc] = struct{}{}
	c.movedToLoop = true
	h.obs.Conn(ConnEvent{Kind: ConnToLoop, Listener: h.name})
	ls.loop.Post(func() {
		if !h2 {
			lc.enterLoop(ls)
			return
		}
		lc.ls, lc.fw.ls = ls, ls
		ls.conns[lc] = struct{}{}
		if err := ls.loop.Add(fd, lc); err != nil {
			h.log.Warn("event loop refused a connection", "err", err)
			lc.closeLoop()
			return
		}
		lc.touch(time.Now().UnixNano(), h.route.Load().IdleTimeout)
		if hc := lc.startH2(w); hc != nil {
			hc.loopReady()
		}
	})
	return true
}
