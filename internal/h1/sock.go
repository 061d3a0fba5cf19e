package h1

import (
	"errors"
	"io"
	"syscall"
	"unsafe"
)

// Sock is a non-blocking socket that an event loop owns, shared by the
// connection's Reader and Writer. The loop sets Readable and Writable when
// epoll reports the socket ready (edge-triggered); the Reader and Writer
// clear them when a read finds the socket dry or a write finds it full, so
// that no read or write is made only to learn that it would block.
type Sock struct {
	FD       int
	Readable bool
	Writable bool
	// Shut is set when the loop learns that the peer shut its side down
	// (EPOLLRDHUP). A short read then does not empty the socket: its end
	// is still to be read, and may have come with the same edge as the
	// data before it, so that no other edge would tell of it.
	Shut bool
	// Wire, when set, is the socket seen through a layer latch keeps
	// (TLS): a Reader and Writer on the Sock read and write through it.
	Wire Wire
}

// A Wire is a loop's socket seen through a layer (TLS). Read returns
// ErrWouldBlock when nothing more has come; Write takes all of p, keeping
// what the socket does not take now (Buffered), which Flush writes when it
// can (ErrWouldBlock while the socket is full).
type Wire interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Flush() error
	Buffered() int
}

// ErrWouldBlock is returned by a Reader on a Sock when the message is not
// complete and the socket has nothing more yet: the loop calls again once
// it is readable. Nothing read is lost.
var ErrWouldBlock = errors.New("h1: would block")

// NewSockReader returns a Reader on an event loop's socket. It waits for
// data (returns ErrWouldBlock) holding no buffer, as NewReader's
// waitUnbuffered.
func NewSockReader(s *Sock) *Reader {
	return &Reader{sock: s, unbuffered: true}
}

// NewSockWriter returns a Writer on an event loop's socket: what the socket
// cannot take at once waits in the Writer (see Pending).
func NewSockWriter(s *Sock) *Writer {
	return &Writer{sock: s}
}

// Attach moves the Reader from its event loop's socket to src (the same
// socket, now a net.Conn), keeping what is buffered, for a connection that
// leaves the loop for a goroutine of its own.
func (rd *Reader) Attach(src io.Reader) {
	rd.sock = nil
	rd.src, rd.raw = src, nil
	if sc, ok := src.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			rd.raw = raw
			if rd.rawFn == nil {
				rd.rawFn = rd.rawRead
			}
		}
	}
}

// fillSock reads from the loop's socket (through its Wire, if it has
// one) into the buffer, taking one from the pool only when there is
// something to read.
func (rd *Reader) fillSock() error {
	s := rd.sock
	if s.Wire == nil && !s.Readable {
		return ErrWouldBlock // no read would find anything: no buffer taken
	}
	borrowed := rd.buf == nil
	if borrowed {
		rd.getBuf()
	}
	var n int
	var err error
	if s.Wire != nil {
		// Its layer may hold what was read before, whether or not the
		// socket is readable.
		n, err = s.Wire.Read(rd.buf[rd.w:])
	} else {
		n, err = s.Read(rd.buf[rd.w:])
	}
	if n > 0 {
		rd.w += n
		return nil
	}
	if borrowed {
		rd.putBuf()
	}
	if err == nil {
		err = ErrWouldBlock
	}
	return err
}

// Pending is the number of bytes written to a Writer on a loop's socket
// that the socket has not taken yet.
func (w *Writer) Pending() int {
	if w.sock != nil && w.sock.Wire != nil {
		return len(w.pending) + w.sock.Wire.Buffered()
	}
	return len(w.pending)
}

// WritePending writes what is pending, as far as the socket takes it now.
func (w *Writer) WritePending() error {
	if w.err == nil && w.sock != nil && w.sock.Wire != nil {
		if err := w.sock.Wire.Flush(); err != nil && err != ErrWouldBlock {
			w.err = err
		}
		return w.err
	}
	if w.err != nil || len(w.pending) == 0 || !w.sock.Writable {
		return w.err
	}
	// What the socket does not take moves to the front of the same
	// buffer; an emptied one goes, so that an idle connection holds none.
	p := w.pending
	w.pending = p[:0]
	err := w.writeSock(p)
	if len(w.pending) == 0 {
		w.pending = nil
	}
	return err
}

// writeSock writes p to the loop's socket, keeping in pending whatever the
// socket cannot take now.
func (w *Writer) writeSock(p []byte) error {
	if w.sock.Wire != nil {
		if _, err := w.sock.Wire.Write(p); err != nil && err != ErrWouldBlock {
			w.err = err
			return err
		}
		return nil
	}
	if len(w.pending) > 0 {
		w.pending = append(w.pending, p...) // it goes after what waits
		return nil
	}
	n, err := w.sock.Write(p)
	switch err {
	case nil:
		return nil
	case ErrWouldBlock:
		w.pending = append(w.pending, p[n:]...)
		return nil
	}
	w.err = err
	return err
}

// Attach moves the Writer from its event loop's socket to dst (the same
// socket, now a net.Conn); what is pending is written first.
func (w *Writer) Attach(dst io.Writer) {
	pending, buf, bufp := w.pending, w.buf, w.bufp
	w.buf, w.bufp = nil, nil
	w.Reset(dst)
	w.sock = nil
	w.buf, w.bufp = buf, bufp
	w.pending = pending
}

// Read reads what the socket has into p, for a connection that parses its
// own input (an HTTP/2 connection on a loop). It returns ErrWouldBlock
// when the socket has nothing, and io.EOF at its end.
func (s *Sock) Read(p []byte) (int, error) {
	if !s.Readable {
		return 0, ErrWouldBlock
	}
	for {
		n, errno := rawSysRead(uintptr(s.FD), p)
		switch errno {
		case 0:
			if n < len(p) && !s.Shut {
				s.Readable = false // a short read empties the socket
			}
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			s.Readable = false
			return 0, ErrWouldBlock
		}
		return 0, errno
	}
}

// Write writes as much of p as the socket takes now; ErrWouldBlock, with
// what was written, when it takes no more.
func (s *Sock) Write(p []byte) (int, error) {
	if !s.Writable {
		return 0, ErrWouldBlock
	}
	n := 0
	for n < len(p) {
		k, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(s.FD), uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
		switch e {
		case 0:
			n += int(k)
			if n < len(p) {
				s.Writable = false // a short write fills the socket
				return n, ErrWouldBlock
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			s.Writable = false
			return n, ErrWouldBlock
		default:
			return n, e
		}
	}
	return n, nil
}
