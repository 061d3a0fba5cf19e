package server

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// gcPercent is latch's GOGC, Go's default: the plain-HTTP/1.1 and HTTP/2
// request paths allocate nothing, but crypto/tls does (a reader for each
// record it reads), and at 400 that garbage grew a busy HTTPS listener's
// RSS by a third (34.7 MiB against 27.4 under the bench's HTTPS load,
// where HAProxy's is 24) for collections that cost little: a few
// milliseconds of CPU every second or so, the live heap being a few MiB.
const gcPercent = 100

// TuneRuntime sets the garbage collector for a long-running balancer,
// unless the operator set GOGC or GOMEMLIMIT: GOGC 100, and a soft memory
// limit of 90% of the cgroup's memory limit when there is one, so that a
// container's latch collects harder as it nears its limit instead of being
// killed.
func TuneRuntime(log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if limit, ok := cgroupMemoryLimit(); ok {
			debug.SetMemoryLimit(limit / 10 * 9)
			log.Debug("memory limit from the cgroup", "bytes", limit/10*9)
		}
	}
}

// cgroupMemoryFiles are where cgroupMemoryLimit looks, in order: cgroup v2,
// then v1. Tests point them elsewhere.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// cgroupMemoryLimit reads the memory limit of latch's cgroup (v2, then v1).
func cgroupMemoryLimit() (int64, bool) {
	for _, f := range cgroupMemoryFiles {
		if b, err := os.ReadFile(f); err == nil {
			return parseMemoryLimit(string(b))
		}
	}
	return 0, false
}

// parseMemoryLimit reads a cgroup memory limit file's content: bytes, or
// "max" (v2) or nearly 2^63 (v1) for none.
func parseMemoryLimit(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0, false
	}
	return n, true
}
