package testnet

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

func TestRefusingAddrRefusesAndHoldsItsPort(t *testing.T) {
	addr := RefusingAddr(t)
	for range 3 {
		_, err := net.Dial("tcp", addr)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("listen on %s succeeded: the port is not held", addr)
	}
}
