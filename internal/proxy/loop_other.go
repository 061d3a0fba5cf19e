//go:build !linux

package proxy

import (
	"errors"
	"net"
	"net/netip"
)

// Without event loops (see loop.go), these are never called.

func detach(net.Conn) (int, bool) { return -1, false }

func dialSocket(netip.AddrPort) (int, bool, error) {
	return -1, false, errors.New("no event loops on this system")
}

func connectResult(int) error { return errors.New("no event loops on this system") }

func closeFD(int) {}
