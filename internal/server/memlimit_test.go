package server

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// withCgroup points cgroupMemoryLimit at files in a temporary directory:
// a v2 memory.max holding v2 (none if empty), and a v1
// memory.limit_in_bytes holding v1 (none if empty). It also saves the
// soft memory limit and GOGC, sets the memory limit to none, and restores
// both when the test ends.
func withCgroup(t *testing.T, v2, v1 string) {
	t.Helper()
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.limit_in_bytes")}
	for i, content := range []string{v2, v1} {
		if content == "" {
			continue
		}
		if err := os.WriteFile(files[i], []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	saved := cgroupMemoryFiles
	cgroupMemoryFiles = files
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	prevGC := debug.SetGCPercent(100)
	t.Cleanup(func() {
		cgroupMemoryFiles = saved
		debug.SetMemoryLimit(prevLimit)
		debug.SetGCPercent(prevGC)
	})
}

// memoryLimit returns the soft memory limit without changing it.
func memoryLimit() int64 { return debug.SetMemoryLimit(-1) }

func tune() { TuneRuntime(slog.New(slog.NewTextHandler(io.Discard, nil))) }

// TestMemoryLimitFromCgroup: README "a soft memory limit of 90% of its
// cgroup's memory limit, unless GOGC or GOMEMLIMIT is set".
func TestMemoryLimitFromCgroup(t *testing.T) {
	for _, tt := range []struct {
		name   string
		v2, v1 string
		n      int64
	}{
		{"v2, 1 GB", "1000000000\n", "", 1_000_000_000},
		{"v2, 512 MiB", "536870912\n", "", 512 << 20},
		{"v2 first", "2000000000\n", "1000000000\n", 2_000_000_000},
		{"v1 without v2", "", "268435456\n", 256 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", "")
			withCgroup(t, tt.v2, tt.v1)
			tune()
			got := memoryLimit()
			// 90% of N, give or take the rounding of integer bytes (latch
			// computes N/10*9).
			want := float64(tt.n) * 0.9
			if math.Abs(float64(got)-want) >= 10 {
				t.Errorf("cgroup limit %d bytes: memory limit %d, want 90%% of it (%.0f)", tt.n, got, want)
			}
		})
	}
}

func TestNoMemoryLimitWithoutCgroupLimit(t *testing.T) {
	for _, tt := range []struct{ name, v2, v1 string }{
		{"v2 max", "max\n", ""},
		{"v1 unlimited", "", "9223372036854771712\n"},
		{"no cgroup files", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", "")
			withCgroup(t, tt.v2, tt.v1)
			tune()
			if got := memoryLimit(); got != math.MaxInt64 {
				t.Errorf("memory limit %d after TuneRuntime, want none (%d)", got, int64(math.MaxInt64))
			}
		})
	}
}

func TestGOMEMLIMITKeepsMemoryLimit(t *testing.T) {
	// The runtime reads GOMEMLIMIT only at start, so setting it here
	// changes nothing but what TuneRuntime sees.
	t.Setenv("GOMEMLIMIT", "3GiB")
	withCgroup(t, "1000000000\n", "")
	const operators = 3 << 30
	debug.SetMemoryLimit(operators)
	tune()
	if got := memoryLimit(); got != operators {
		t.Errorf("GOMEMLIMIT set: memory limit %d after TuneRuntime, want it left alone (%d)", got, operators)
	}
}
