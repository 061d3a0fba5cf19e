package h2

import (
	"testing"

	"github.com/latch-lb/latch/internal/h2/h2spectest"
)

// TestH2spec runs h2spec's every test (RFC 9113 and RFC 7541) against a
// server on internal/h2, over h2c with prior knowledge and over TLS with a
// generated certificate, and wants each one passed.
func TestH2spec(t *testing.T) {
	bin := h2spectest.Binary(t)
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"h2c", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Config{}, tc.tls)
			r := h2spectest.Run(t, bin, srv.addr, tc.tls)
			t.Logf("h2spec over %s: %s", tc.name, r.Summary)
			if r.Passed != r.Total || r.Total != 145 {
				t.Errorf("h2spec over %s: got %s, want 145 of 145 passed:\n%s", tc.name, r.Summary, r.Failures())
			}
		})
	}
}
