//go:build linux

package h1

import (
	"errors"
	"io"
	"syscall"
	"testing"
)

// TestSockShutReadsTheEnd sends a partial response head and shuts the
// socket at once, as a target that dies mid-head does: the data and the
// end may come with one epoll edge, after which no other edge tells of the
// end. A Reader told of the shutdown (Shut) reads on to it; one not told
// waits for an edge that never comes.
func TestSockShutReadsTheEnd(t *testing.T) {
	for _, shut := range []bool{true, false} {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fds[0])
		if _, err := syscall.Write(fds[1], []byte("HTTP/1.1 200 OK\r\nContent-Le")); err != nil {
			t.Fatal(err)
		}
		syscall.Close(fds[1])

		// The loop's one edge: readable, and the peer shut its side.
		s := &Sock{FD: fds[0], Readable: true, Writable: true, Shut: shut}
		rd := NewSockReader(s)
		var resp Response
		started, err := rd.ReadResponse(&resp, false)
		rd.Close()
		want := error(io.EOF)
		if !shut {
			want = ErrWouldBlock
		}
		if !started || !errors.Is(err, want) {
			t.Errorf("Shut %v: got started %v, %v; want started, %v", shut, started, err, want)
		}
	}
}
