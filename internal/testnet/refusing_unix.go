//go:build unix

package testnet

import (
	"fmt"
	"net"
	"syscall"
)

func refusingAddr() (string, func() error, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	closer := func() error { return syscall.Close(fd) }
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		closer()
		return "", nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		closer()
		return "", nil, err
	}
	in, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		closer()
		return "", nil, fmt.Errorf("bound to %T", sa)
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(in.Port)), closer, nil
}
