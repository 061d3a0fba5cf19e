package h2

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// h2specBinary finds h2spec on PATH or in Go's bin directory.
func h2specBinary(t *testing.T) string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gobin = filepath.Join(string(out[:len(out)-1]), "bin")
		}
	}
	if p := filepath.Join(gobin, "h2spec"); gobin != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("h2spec is not installed: go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible")
	return ""
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// TestH2spec runs h2spec's every test (RFC 9113 and RFC 7541) against a
// server on internal/h2, over h2c with prior knowledge and over TLS with a
// generated certificate, and wants each one passed.
func TestH2spec(t *testing.T) {
	bin := h2specBinary(t)
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"h2c", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Config{}, tc.tls)
			_, port, _ := net.SplitHostPort(srv.addr)
			args := []string{"-h", "127.0.0.1", "-p", port, "-o", "3"}
			if tc.tls {
				args = append(args, "-t", "-k")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			m := h2specSummary.FindSubmatch(out)
			if m == nil {
				t.Fatalf("h2spec printed no summary (%v):\n%s", err, out)
			}
			total, _ := strconv.Atoi(string(m[1]))
			passed, _ := strconv.Atoi(string(m[2]))
			t.Logf("h2spec over %s: %s", tc.name, m[0])
			if passed != total || total != 145 {
				t.Errorf("h2spec over %s: got %s, want 145 of 145 passed:\n%s", tc.name, m[0], failures(out))
			}
		})
	}
}

// failures keeps h2spec's report of its failures, which follows its list.
func failures(out []byte) []byte {
	if i := regexp.MustCompile(`(?m)^Failures:`).FindIndex(out); i != nil {
		return out[i[0]:]
	}
	return out
}
