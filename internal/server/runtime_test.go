package server

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"536870912\n", 536870912, true},
		{"max\n", 0, false},
		{"9223372036854771712\n", 0, false}, // cgroup v1: no limit
		{"0", 0, false},
		{"", 0, false},
	} {
		if got, ok := parseMemoryLimit(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTuneRuntime(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	TuneRuntime(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GOGC after TuneRuntime: got %d, want %d", got, gcPercent)
	}
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	TuneRuntime(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC set by the operator: got %d after TuneRuntime, want it kept (150)", got)
	}
}
