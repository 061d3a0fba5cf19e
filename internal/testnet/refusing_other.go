//go:build !unix

package testnet

import "net"

// refusingAddr, where sockets cannot be bound without listening: a port
// found free, which a later listener may take.
func refusingAddr() (string, func() error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, func() error { return nil }, nil
}
