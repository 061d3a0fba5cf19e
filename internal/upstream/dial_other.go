//go:build !linux

package upstream

import (
	"errors"
	"net/netip"
)

// Without event loops (package evloop), these are never called.

func dialSocket(netip.AddrPort) (int, bool, error) {
	return -1, false, errors.New("no event loops on this system")
}

func connectResult(int) error { return errors.New("no event loops on this system") }

func closeFD(int) {}
