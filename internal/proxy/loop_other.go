//go:build !linux

package proxy

import "net"

// Without event loops (see conn_loop.go), these are never called.

func detach(net.Conn) (int, bool) { return -1, false }

func closeFD(int) {}

func shutWrite(int) error { return nil }
