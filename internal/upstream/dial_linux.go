package upstream

import (
	"net"
	"net/netip"
	"os"
	"syscall"
)

// dialSocket starts a non-blocking connect to addr; connecting says it is
// still in progress (the socket turns writable when it is done).
func dialSocket(addr netip.AddrPort) (fd int, connecting bool, err error) {
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if a := addr.Addr(); a.Is4() || a.Is4In6() {
		sa = &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: a.Unmap().As4()}
	} else {
		family = syscall.AF_INET6
		sa6 := &syscall.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	}
	fd, err = syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false, os.NewSyscallError("socket", err)
	}
	// As Go's dialer: no Nagle delay, and keep-alive probes after 30 s.
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 30)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 30)
	for {
		err = syscall.Connect(fd, sa)
		if err != syscall.EINTR {
			break
		}
	}
	switch err {
	case nil:
		return fd, false, nil
	case syscall.EINPROGRESS, syscall.EALREADY:
		return fd, true, nil
	}
	syscall.Close(fd)
	return -1, false, os.NewSyscallError("connect", err)
}

// connectResult is the outcome of a connect that was in progress.
func connectResult(fd int) error {
	n, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if n != 0 {
		return os.NewSyscallError("connect", syscall.Errno(n))
	}
	return nil
}

func closeFD(fd int) { syscall.Close(fd) }
