package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/h2/h2spectest"
	"github.com/latch-lb/latch/internal/tlsconf/tlstest"
)

// bigBackend is a target whose answers are larger than HTTP/2's initial
// window, which h2spec's flow-control tests need (they skip otherwise).
func bigBackend(t *testing.T) string {
	t.Helper()
	body := strings.Repeat("latch ", 20000)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// TestH2specAgainstLatch runs h2spec (RFC 9113 and RFC 7541, 145 tests)
// against `latch serve`'s own HTTP/2 listeners, in front of a real target:
// every test must pass, over TLS and over h2c on a listener that serves
// HTTP/1.1 as well (where 3.5/2, an invalid preface, is a first request
// naming no HTTP/1 version: the connection is closed without an answer).
func TestH2specAgainstLatch(t *testing.T) {
	bin := h2spectest.Binary(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	cert, key := ca.Issue(t, tlstest.Options{DNSNames: []string{"localhost"}}).Write(t, dir, "latch")
	h2c, tlsAddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`listeners:
  - name: h2c
    address: %s
    default_action: {type: forward, forward: {target_group: app}}
    attributes: {routing.http2.h2c.enabled: "true"}
  - name: tls
    address: %s
    protocol: HTTPS
    certificates: [{cert_file: %s, key_file: %s}]
    default_action: {type: forward, forward: {target_group: app}}
target_groups:
  - name: app
    targets: [{id: %q}]
state_dir: %s
admin: {enabled: false}
`, h2c, tlsAddr, cert, key, bigBackend(t), dir)
	path := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startLatch(t, path, h2c)
	for _, tc := range []struct {
		name, addr string
		tls        bool
	}{{"h2c", h2c, false}, {"tls", tlsAddr, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := h2spectest.Run(t, bin, tc.addr, tc.tls)
			t.Logf("h2spec against latch over %s: %s", tc.name, r.Summary)
			if r.Total != 145 || r.Passed != r.Total {
				t.Errorf("h2spec over %s: %s, want 145 of 145 passed:\n%s", tc.name, r.Summary, r.Failures())
			}
		})
	}
	if strings.Contains(p.logs.String(), "panic") {
		t.Errorf("latch panicked:\n%s", p.logs.String())
	}
	select {
	case err := <-p.done:
		t.Fatalf("latch exited during h2spec (%v):\n%s", err, p.logs.String())
	default:
	}
}
