// Package testnet gives tests loopback addresses with known behaviour.
package testnet

import "testing"

// RefusingAddr returns a 127.0.0.1 address that refuses connections for the
// rest of the test: a socket bound to the port but not listening, so the
// kernel answers a SYN with a reset. Holding the port keeps it from being
// picked again meanwhile: an address found free by listening and closing
// at once can be bound by the next listener a test starts on port 0 (latch
// itself, proxying to itself in a loop until X-Forwarded-For overflows).
func RefusingAddr(t testing.TB) string {
	t.Helper()
	addr, closer, err := refusingAddr()
	if err != nil {
		t.Fatalf("testnet: a refusing address: %v", err)
	}
	t.Cleanup(func() { closer() })
	return addr
}
