package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// ALB's limits on a request head (../shared/alb-semantics.md §5), and on
// the response head latch accepts from a target.
const (
	MaxRequestLine  = 16 << 10
	MaxField        = 16 << 10
	MaxRequestHead  = 64 << 10
	MaxResponseHead = 32 << 10
)

// bufSize holds any ordinary head and a few pipelined requests; a head that
// does not fit is read into a buffer grown up to the head limit.
const bufSize = 16 << 10

// minBodySpace is the least room a buffer keeps behind a message's head for
// reading its body: enough for a chunk-size line.
const minBodySpace = 8 << 10

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}
	largeBufs = sync.Pool{New: func() any { b := make([]byte, MaxRequestHead+bufSize); return &b }}
)

// Reader reads HTTP/1.1 messages from a connection. It holds a buffer only
// while a message is being read: between messages, when nothing is
// buffered, the buffer goes back to a shared pool, so that ten thousand
// idle keep-alive connections cost no read buffers. On a socket it even
// waits for the next message without one (see fill).
type Reader struct {
	src  io.Reader
	raw  syscall.RawConn // set when src is a socket latch may read directly
	bufp *[]byte
	buf  []byte // nil while released
	r, w int    // unread bytes are buf[r:w]
	// keep is where the current message's head ends: the bytes before it
	// stay in place until the next message, so that the head's fields
	// remain valid while the body is read (and after, for the response and
	// the logs). Reads of the body happen behind it.
	keep int

	// State of a raw read, kept here so that rawRead, a method value made
	// once, does not allocate a closure per read.
	rawFn      func(fd uintptr) bool
	rawN       int
	rawErr     error
	unbuffered bool // wait for data holding no buffer
	// first is where a Reader that waits unbuffered on a connection it
	// cannot wait on bare (TLS) reads the first byte of a message.
	first [1]byte

	sock *Sock // set on an event loop's socket (see NewSockReader)
}

// NewReader returns a Reader on src. With waitUnbuffered, a Reader on a
// socket waits for data without holding a buffer; use it where connections
// sit idle for long (clients), not where a reply is due at once (targets).
func NewReader(src io.Reader, waitUnbuffered bool) *Reader {
	rd := &Reader{unbuffered: waitUnbuffered}
	rd.Attach(src)
	return rd
}

// Buffered returns the number of bytes read from the connection and not
// yet consumed: the start of a pipelined request, say.
func (rd *Reader) Buffered() int { return rd.w - rd.r }

// Wait returns once bytes of the next message are buffered, or with what
// ended the wait (ErrWouldBlock on a loop's socket that has nothing yet;
// io.EOF when the connection closed), so that a connection takes what it
// needs to read and serve a message only when one comes. A Reader that
// waits unbuffered (NewReader's waitUnbuffered, NewSockReader) holds no
// buffer while it waits.
func (rd *Reader) Wait() error {
	if rd.w > rd.r {
		return nil
	}
	return rd.fill()
}

// Release gives the buffer back to the pool if nothing is buffered. Call it
// at a message boundary, when the connection is about to sit idle.
func (rd *Reader) Release() {
	rd.keep = 0
	if rd.buf != nil && rd.r == rd.w {
		rd.putBuf()
	}
}

// Close gives the buffer back; the Reader must not be used after.
func (rd *Reader) Close() {
	if rd.buf != nil {
		rd.putBuf()
	}
}

func (rd *Reader) getBuf() {
	rd.bufp = smallBufs.Get().(*[]byte)
	rd.buf = *rd.bufp
	rd.r, rd.w, rd.keep = 0, 0, 0
}

func (rd *Reader) putBuf() {
	if len(rd.buf) == bufSize {
		smallBufs.Put(rd.bufp)
	} else {
		largeBufs.Put(rd.bufp)
	}
	rd.bufp, rd.buf = nil, nil
	rd.r, rd.w, rd.keep = 0, 0, 0
}

// grow moves the unread bytes into a large buffer.
func (rd *Reader) grow() {
	bp := largeBufs.Get().(*[]byte)
	n := copy(*bp, rd.buf[rd.r:rd.w])
	smallBufs.Put(rd.bufp)
	rd.bufp, rd.buf = bp, *bp
	rd.r, rd.w = 0, n
}

// fill reads more bytes into the buffer. It may move the unread bytes,
// but never those before keep: a message's head stays where it is until
// the next message is read.
func (rd *Reader) fill() error {
	if rd.buf == nil && !rd.waitsBare() {
		if rd.unbuffered && rd.sock == nil && rd.raw == nil {
			return rd.fillFirst()
		}
		rd.getBuf()
	}
	if rd.buf != nil && rd.w == len(rd.buf) {
		if rd.r == rd.keep {
			return errBufferFull
		}
		rd.w = rd.keep + copy(rd.buf[rd.keep:], rd.buf[rd.r:rd.w])
		rd.r = rd.keep
	}
	if rd.sock != nil {
		return rd.fillSock()
	}
	if rd.raw != nil {
		return rd.fillRaw()
	}
	n, err := rd.src.Read(rd.buf[rd.w:])
	rd.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

var errBufferFull = errors.New("h1: buffer full")

// fillFirst waits for the next message on a connection that has no socket
// to wait on bare (TLS: its records are read and decrypted by crypto/tls)
// with a one-byte read, and takes a buffer once that byte came: an idle
// connection holds none. The rest of the record is read from TLS's own
// buffer by the next fill, without waiting.
func (rd *Reader) fillFirst() error {
	n, err := rd.src.Read(rd.first[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	rd.getBuf()
	rd.buf[0] = rd.first[0]
	rd.w = 1
	return nil
}

// waitsBare reports whether the Reader waits for data holding no buffer:
// asked to, and on a socket it reads itself (Attach may change which).
func (rd *Reader) waitsBare() bool {
	return rd.unbuffered && (rd.raw != nil || rd.sock != nil)
}

// fillRaw reads from the socket itself, through its RawConn, with a raw
// system call: a read of a non-blocking socket does not block, so the
// runtime need not be told of it, and is spared handing the goroutine's P
// to another thread when the read is slow (as loopback reads can be).
//
// When the Reader holds no buffer (an idle connection), it waits for the
// socket to become readable without one: rawRead takes a buffer only once
// a read finds data, and gives it back when the socket has nothing yet.
// That costs no extra system call: the read that finds nothing is the one
// the runtime's poller would have made anyway.
func (rd *Reader) fillRaw() error {
	rd.rawN, rd.rawErr = 0, nil
	if err := rd.raw.Read(rd.rawFn); err != nil {
		return unwrapRaw(err)
	}
	if rd.rawErr != nil {
		return rd.rawErr
	}
	if rd.rawN == 0 {
		return io.EOF
	}
	return nil
}

func (rd *Reader) rawRead(fd uintptr) bool {
	borrowed := rd.buf == nil
	if borrowed {
		rd.getBuf()
	}
	for {
		n, err := rawSysRead(fd, rd.buf[rd.w:])
		switch err {
		case 0:
			rd.w += n
			rd.rawN = n
			if borrowed && n == 0 {
				rd.putBuf()
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if borrowed {
				rd.putBuf()
			}
			return false
		}
		if borrowed {
			rd.putBuf()
		}
		rd.rawErr = err
		return true
	}
}

// rawSysRead is read(2) without the runtime's system call bookkeeping;
// fd must be non-blocking.
func rawSysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// unwrapRaw turns a raw-read error into what net.Conn.Read would return, so
// that callers test for timeouts and closed connections one way.
func unwrapRaw(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// readHead returns the next message head, through its final empty line,
// skipping empty lines before it (RFC 9112 §2.2). The bytes stay valid
// until the next call that reads from the connection. started reports
// whether any byte of a message arrived, which tells an idle connection
// closing (not an error) from a truncated message.
func (rd *Reader) readHead(limit int) (head []byte, started bool, err error) {
	scanned := 0
	rd.keep = 0
	for {
		if rd.buf != nil {
			for rd.r < rd.w && scanned == 0 {
				// Leading empty lines.
				if rd.buf[rd.r] == '\n' {
					rd.r++
				} else if rd.buf[rd.r] == '\r' && rd.r+1 < rd.w && rd.buf[rd.r+1] == '\n' {
					rd.r += 2
				} else {
					break
				}
			}
			if rd.r == rd.w && scanned == 0 && rd.waitsBare() {
				// Nothing but empty lines: wait without a buffer.
				rd.putBuf()
				if err := rd.fill(); err != nil {
					return nil, started, err
				}
				continue
			}
			data := rd.buf[rd.r:rd.w]
			if len(data) > 0 && !(len(data) == 1 && data[0] == '\r') {
				started = true
			}
			if end := headEnd(data, scanned); end >= 0 {
				if end > limit {
					return nil, true, ErrHeadTooLarge
				}
				if len(rd.buf)-(rd.r+end) < minBodySpace {
					// Make room behind the head for reading the body: the
					// head moves now, before any slice points into it.
					rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
					rd.r = 0
					if len(rd.buf)-end < minBodySpace && len(rd.buf) == bufSize {
						rd.grow()
					}
					data = rd.buf[rd.r:rd.w]
				}
				rd.r += end
				rd.keep = rd.r
				return data[:end], true, nil
			}
			if len(data) > limit {
				return nil, true, ErrHeadTooLarge
			}
			scanned = max(0, len(data)-3)
			if rd.w == len(rd.buf) && rd.r == 0 && len(rd.buf) == bufSize {
				rd.grow()
			}
		}
		if err := rd.fill(); err != nil {
			if errors.Is(err, errBufferFull) {
				return nil, true, ErrHeadTooLarge
			}
			return nil, started, err
		}
	}
}

// headEnd returns the length of the head in b (through the empty line that
// ends it), or -1 if b holds no complete head. Lines end in CRLF or a bare
// LF; from says where to resume a scan that found no end before.
func headEnd(b []byte, from int) int {
	i := from
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// ReadBuffered moves up to len(p) buffered bytes into p, without reading
// from the connection: what a peer sent right behind a message head, when
// the connection turns into a tunnel.
func (rd *Reader) ReadBuffered(p []byte) int {
	if rd.buf == nil {
		return 0
	}
	n := copy(p, rd.buf[rd.r:rd.w])
	rd.r += n
	return n
}
