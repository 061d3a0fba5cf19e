// Package h2spectest runs h2spec, the HTTP/2 conformance tester
// (github.com/summerwind/h2spec), for tests: against internal/h2's own test
// server and against latch serve's listeners.
package h2spectest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Install is how to install the h2spec the tests want; .ci/run does.
const Install = "go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"

// Binary finds h2spec on PATH or in Go's bin directory, or skips t.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gobin = filepath.Join(strings.TrimSpace(string(out)), "bin")
		}
	}
	if gobin != "" {
		if p := filepath.Join(gobin, "h2spec"); fileExists(p) {
			return p
		}
	}
	t.Skip("h2spec is not installed: " + Install)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Result is one run of h2spec.
type Result struct {
	Total, Passed int
	Summary       string // "145 tests, 145 passed, 0 skipped, 0 failed"
	Out           []byte // everything it printed
}

var summary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// Run runs every h2spec test against addr: over TLS (the certificate not
// checked) when tls is set, else h2c with prior knowledge. It fails t if
// h2spec prints no summary.
func Run(t testing.TB, bin, addr string, tls bool) Result {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-h", "127.0.0.1", "-p", port, "-o", "3"}
	if tls {
		args = append(args, "-t", "-k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	m := summary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("h2spec printed no summary (%v):\n%s", err, out)
	}
	r := Result{Summary: string(m[0]), Out: out}
	r.Total, _ = strconv.Atoi(string(m[1]))
	r.Passed, _ = strconv.Atoi(string(m[2]))
	return r
}

// Failures is h2spec's report of its failures, which follows its list.
func (r Result) Failures() []byte {
	if i := regexp.MustCompile(`(?m)^Failures:`).FindIndex(r.Out); i != nil {
		return r.Out[i[0]:]
	}
	return r.Out
}
