package proxy

import (
	"net"
	"syscall"
)

// detach takes a TCP connection from Go's poller for an event loop: it
// returns a copy of its descriptor (non-blocking, as Go keeps it) and
// closes nc. It reports false, nc untouched, if nc is not a TCP connection.
func detach(nc net.Conn) (int, bool) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return -1, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	raw.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e == 0 {
			fd = int(r)
		}
	})
	if fd < 0 {
		return -1, false
	}
	tc.Close()
	return fd, true
}

func closeFD(fd int) { syscall.Close(fd) }

// shutWrite shuts the sending side of a loop's socket.
func shutWrite(fd int) error { return syscall.Shutdown(fd, syscall.SHUT_WR) }
