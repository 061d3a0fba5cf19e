package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// latchBin is the latch binary, built once (without -race, whatever the
// tests are built with) for every scenario.
var latchBin string

// TestMain builds latch, runs the scenarios and prints their rows as a
// table. Run again with LATCH_FAULT_TARGET set, the binary is a target
// process instead (runTarget).
func TestMain(m *testing.M) {
	if mode := os.Getenv("LATCH_FAULT_TARGET"); mode != "" {
		os.Exit(runTarget(mode))
	}
	dir, err := os.MkdirTemp("", "latch-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	latchBin = filepath.Join(dir, "latch")
	if out, err := exec.Command("go", "build", "-o", latchBin, "github.com/latch-lb/latch/cmd/latch").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building latch: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	printTable()
	os.RemoveAll(dir)
	os.Exit(code)
}

// variant is one way of running a scenario: latch's data path, and the
// client protocol where it matters.
type variant struct {
	path  string // LATCH_DATA_PATH of the latch process: loops or goroutines
	proto string // "" (HTTP/1.1 over cleartext), "https" (HTTP/1.1 over TLS), "h2c", "h2" (over TLS)
	fast  bool   // in the fast part, which `go test ./...` runs
}

func (v variant) String() string {
	if v.proto == "" {
		return v.path
	}
	return v.path + "/" + v.proto
}

func (v variant) tls() bool { return v.proto == "https" || v.proto == "h2" }

// paths returns the variant on both data paths, the one named fast in the
// fast part. The other data path runs in the whole suite.
func paths(proto, fast string) []variant {
	return []variant{{path: "loops", proto: proto, fast: fast == "loops"}, {path: "goroutines", proto: proto, fast: fast == "goroutines"}}
}

// scenario is one function of the suite; each of its variants is a subtest
// and prints one row.
type scenario struct {
	name     string
	run      func(t *testing.T, v variant, r *row)
	variants []variant
	// alone runs the scenario with no other beside it: it loads the
	// machine enough to upset the others' timing.
	alone bool
}

// scenarios lists the suite in the order of issue 9's list, which is the
// order of the table.
var scenarios = []scenario{
	{"BigResponseHead", testBigResponseHead, paths("", "loops"), false},
	{"ResetOnRoutes", testResetOnRoutes, paths("", "goroutines"), false},
	{"GarbageOnRoutes", testGarbageOnRoutes, paths("", "loops"), false},
	{"HangOnRoutes", testHangOnRoutes, paths("", "goroutines"), false},
	{"KillGETsInFlightNewConns", testKillGETsNewConns, paths("", "loops"), false},
	{"KillGETsInFlightReusedConns", testKillGETsReusedConns, paths("", "goroutines"), false},
	{"KillPOSTInFlight", testKillPOSTInFlight, paths("", "loops"), false},
	{"POSTAfterStickyTargetDied", testPOSTAfterDeath, append(paths("", "loops"), paths("https", "goroutines")...), false},
	{"KillUnderLoad", testKillUnderLoad, paths("", "goroutines"), false},
	{"ReloadUnderLoad", testReloadUnderLoad, paths("", "loops"), false},
	{"RestartUnderLoad", testRestartUnderLoad, paths("", "goroutines"), false},
	{"GracefulShutdown", testGracefulShutdown, paths("", "loops"), false},
	{"Slowloris", testSlowloris, paths("", "goroutines"), false},
	{"IdleConnections", testIdleConnections, paths("", ""), true},
	{"OversizedRequests", testOversized, append(paths("", "loops"), variant{path: "loops", proto: "h2c", fast: true}, variant{path: "loops", proto: "h2", fast: true}), false},
	{"Cookies", testCookies, paths("", "loops"), false},
	{"EveryTargetResets", testFleetResets, paths("", "loops"), false},
	{"EveryTarget5xx", testFleet5xx, paths("", "goroutines"), false},
}

// TestFaults runs the fast part of the suite, or all of it with
// LATCH_FAULTS=all. Scenarios run in parallel (up to -parallel at once),
// but those that must run alone, which run first: each has its own latch,
// targets and clients.
func TestFaults(t *testing.T) {
	all := os.Getenv("LATCH_FAULTS") == "all"
	for i, sc := range scenarios {
		for j, v := range sc.variants {
			if !all && !v.fast {
				continue
			}
			t.Run(sc.name+"/"+v.String(), func(t *testing.T) {
				if !sc.alone {
					t.Parallel()
				}
				r := &row{order: i*10 + j, latch: v.String()}
				// Registered first, so it runs last: after the scenario's
				// own cleanups, with its verdict known.
				t.Cleanup(func() { r.finish(t) })
				sc.run(t, v, r)
			})
		}
	}
}

// row is one scenario's line of the table.
type row struct {
	order    int
	fault    string // what went wrong, and where
	latch    string // the variant
	load     string // what the clients sent
	saw      string // what the clients got
	lost     string // what was lost, and what latch did about the fault
	problems []string
	result   string
}

// errorf reports a broken promise: the test fails and the row says why.
func (r *row) errorf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.problems = append(r.problems, msg)
	t.Error(msg)
}

// fatalf is errorf, and the scenario ends.
func (r *row) fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.problems = append(r.problems, msg)
	t.Fatal(msg)
}

var (
	rowsMu sync.Mutex
	rows   []*row
)

func (r *row) finish(t *testing.T) {
	switch {
	case !t.Failed():
		r.result = "ok"
	case len(r.problems) > 0:
		r.result = "FAIL: " + r.problems[0]
		if rs := []rune(r.result); len(rs) > 200 {
			r.result = string(rs[:200]) + "..."
		}
		if n := len(r.problems); n > 1 {
			r.result += fmt.Sprintf(" (and %d more)", n-1)
		}
	default:
		r.result = "FAIL (see the test log)"
	}
	t.Log(r.markdown())
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
}

func (r *row) markdown() string {
	cell := func(s string) string {
		if s == "" {
			return "-"
		}
		return strings.ReplaceAll(s, "|", `\|`)
	}
	return "| " + strings.Join([]string{cell(r.fault), cell(r.latch), cell(r.load), cell(r.saw), cell(r.lost), cell(r.result)}, " | ") + " |"
}

// printTable prints the rows of the scenarios that ran, in the suite's
// order, as the README's table.
func printTable() {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, func(a, b *row) int { return a.order - b.order })
	fmt.Printf("\nfault suite, %s, %s, %d CPUs\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.NumCPU())
	fmt.Println("| fault | latch | load | what clients saw | what was lost | result |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Println(r.markdown())
	}
}
