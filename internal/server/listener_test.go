//go:build unix

package server

import (
	"log/slog"
	"net"
	"syscall"
	"testing"

	"github.com/latch-lb/latch/internal/config"
)

// A client connection gets no TCP keepalive: the listener's idle timeout
// closes idle connections, and Go's default would cost four setsockopt
// calls on every accepted connection.
func TestListenerLeavesTCPKeepaliveOff(t *testing.T) {
	l, err := newListener(config.Listener{Name: "web", Address: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.ln.Close()
	cc, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, err := l.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	rc, err := sc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	if on != 0 {
		t.Errorf("SO_KEEPALIVE on an accepted client connection = %d, want 0", on)
	}
}
