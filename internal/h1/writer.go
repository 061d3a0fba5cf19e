package h1

import (
	"io"
	"strconv"
	"syscall"
	"unsafe"
)

// Writer buffers what latch writes to a connection. Like Reader, it holds a
// pooled buffer only while a message is being written: Flush gives it back.
// The first error sticks; later writes do nothing and report it.
type Writer struct {
	dst  io.Writer
	bufp *[]byte
	buf  []byte // len(buf) bytes are waiting; cap is the pooled size
	err  error

	// On a socket, writes go through its RawConn with raw system calls,
	// as Reader's reads do; rawFn is made once so as not to allocate.
	raw    syscall.RawConn
	rawFn  func(fd uintptr) bool
	rawP   []byte
	rawErr error

	// On an event loop's socket (see NewSockWriter), what the socket
	// cannot take at once waits in pending.
	sock    *Sock
	pending []byte
}

// NewWriter returns a Writer on dst.
func NewWriter(dst io.Writer) *Writer {
	w := &Writer{}
	w.Reset(dst)
	return w
}

// Err returns the first write error.
func (w *Writer) Err() error { return w.err }

// Buffered returns the number of bytes waiting to be flushed.
func (w *Writer) Buffered() int { return len(w.buf) }

func (w *Writer) grab() {
	w.bufp = smallBufs.Get().(*[]byte)
	w.buf = (*w.bufp)[:0]
}

// Write buffers p, or writes it straight through when it is large.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.buf == nil {
		w.grab()
	}
	if len(p) > cap(w.buf)-len(w.buf) {
		if w.flushBuf(); w.err != nil {
			return 0, w.err
		}
		if len(p) >= cap(w.buf) {
			if err := w.write(p); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteString buffers s.
func (w *Writer) WriteString(s string) {
	if w.err != nil {
		return
	}
	if w.buf == nil {
		w.grab()
	}
	for len(s) > cap(w.buf)-len(w.buf) {
		n := copy(w.buf[len(w.buf):cap(w.buf)], s)
		w.buf = w.buf[:len(w.buf)+n]
		s = s[n:]
		if w.flushBuf(); w.err != nil {
			return
		}
	}
	w.buf = append(w.buf, s...)
}

// WriteByte buffers c.
func (w *Writer) WriteByte(c byte) error {
	if w.err != nil {
		return w.err
	}
	if w.buf == nil {
		w.grab()
	}
	if len(w.buf) == cap(w.buf) {
		if w.flushBuf(); w.err != nil {
			return w.err
		}
	}
	w.buf = append(w.buf, c)
	return nil
}

// WriteField writes "name: value\r\n".
func (w *Writer) WriteField(name, value []byte) {
	w.Write(name)
	w.WriteString(": ")
	w.Write(value)
	w.WriteString("\r\n")
}

// WriteInt writes n in decimal.
func (w *Writer) WriteInt(n int64) {
	if w.err != nil {
		return
	}
	if w.buf == nil {
		w.grab()
	}
	if cap(w.buf)-len(w.buf) < 20 {
		if w.flushBuf(); w.err != nil {
			return
		}
	}
	w.buf = strconv.AppendInt(w.buf, n, 10)
}

// WriteChunk writes p as one chunk of a chunked body.
func (w *Writer) WriteChunk(p []byte) {
	if len(p) == 0 {
		return // a zero-length chunk would end the body
	}
	if w.err != nil {
		return
	}
	if w.buf == nil {
		w.grab()
	}
	if cap(w.buf)-len(w.buf) < 18 {
		if w.flushBuf(); w.err != nil {
			return
		}
	}
	w.buf = strconv.AppendUint(w.buf, uint64(len(p)), 16)
	w.WriteString("\r\n")
	w.Write(p)
	w.WriteString("\r\n")
}

// WriteLastChunk ends a chunked body with trailer fields (those whose kind
// is hop-by-hop are left out).
func (w *Writer) WriteLastChunk(trailer []Field) {
	w.WriteString("0\r\n")
	for _, f := range trailer {
		if k := KindOf(f.Name); !k.HopByHop() && k != KindContentLength {
			w.WriteField(f.Name, f.Value)
		}
	}
	w.WriteString("\r\n")
}

func (w *Writer) flushBuf() {
	if len(w.pending) > 0 && w.sock == nil {
		// Left by the event loop the connection came from: it goes first.
		p := w.pending
		w.pending = nil
		if w.write(p) != nil {
			return
		}
	}
	if len(w.buf) == 0 {
		return
	}
	w.write(w.buf)
	w.buf = w.buf[:0]
}

// write writes p in full, or sets the sticky error.
func (w *Writer) write(p []byte) error {
	if w.sock != nil {
		return w.writeSock(p)
	}
	if w.raw == nil {
		_, w.err = w.dst.Write(p)
		return w.err
	}
	w.rawP, w.rawErr = p, nil
	if err := w.raw.Write(w.rawFn); err != nil {
		w.err = unwrapRaw(err)
	} else {
		w.err = w.rawErr
	}
	w.rawP = nil
	return w.err
}

func (w *Writer) rawWrite(fd uintptr) bool {
	for len(w.rawP) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.rawP[0])), uintptr(len(w.rawP)))
		switch e {
		case 0:
			w.rawP = w.rawP[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until the socket can take more
		default:
			w.rawErr = e
			return true
		}
	}
	return true
}

// Flush writes what is buffered and gives the buffer back to the pool.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.flushBuf()
	}
	if w.buf != nil {
		smallBufs.Put(w.bufp)
		w.bufp, w.buf = nil, nil
	}
	return w.err
}

// Reset drops anything buffered and clears the error, for a writer that
// moves to a new connection.
func (w *Writer) Reset(dst io.Writer) {
	if w.buf != nil {
		smallBufs.Put(w.bufp)
		w.bufp, w.buf = nil, nil
	}
	w.dst, w.err, w.raw, w.pending = dst, nil, nil, nil
	if sc, ok := dst.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
			if w.rawFn == nil {
				w.rawFn = w.rawWrite
			}
		}
	}
}
