package server_test

import (
	"github.com/latch-lb/latch/internal/metrics"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/server"
)

// The allocation test and BenchmarkProxy run cases with latch's metrics
// on: this external test gives them the observer, which the package's own
// tests cannot import (internal/metrics imports internal/server).
func init() {
	server.MetricsObserver = func() proxy.Observer { return metrics.New().Observer() }
}
