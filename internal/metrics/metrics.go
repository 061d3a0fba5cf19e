// Package metrics counts what latch serves and exposes it to Prometheus, on
// a registry of its own.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/server"
)

// Metrics counts latch's requests, connections, sessions and changes. Its
// Observer goes on the data path (server.Options.Observer) before the
// server exists; Watch then gives it the server, whose state it reads at
// scrape time and whose events it follows. The README's "Metrics" section
// lists every metric.
type Metrics struct {
	reg *prometheus.Registry
	obs observer

	listeners names[listenerStats]
	groups    names[groupStats]
	// targets maps a *target.Target to its *targetRef, read without a lock
	// on the request path; byName holds the stats by group and id, under mu.
	targets sync.Map
	mu      sync.Mutex
	byName  map[groupTarget]*targetStats

	srv     atomic.Pointer[server.Server]
	reloads reloads

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns metrics with nothing counted, their collector registered on a
// registry of their own (never Prometheus' global one, which would carry
// the Go runtime's metrics and whatever else the process's libraries put
// there).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), byName: map[groupTarget]*targetStats{}}
	m.obs = observer{m}
	m.reg.MustRegister(collector{m})
	return m
}

// Observer returns the observer that counts the data path's requests and
// connections. It allocates nothing and takes no lock, except on the first
// request of a listener, group or target, to add its counters.
func (m *Metrics) Observer() proxy.Observer { return m.obs }

// Handler serves the metrics in Prometheus' text format, or OpenMetrics
// when the scraper asks for it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Registry is the registry the metrics are on, for a caller that adds its
// own (an access log's dropped lines, say).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Watch makes srv the server whose state the metrics report: targets'
// health, weights and in-flight requests read from its Snapshot at scrape
// time, and its config changes (applied and refused) counted from its
// events, from now on. Call it once, before the server's first Apply, so
// that the first config counts; Close ends it.
func (m *Metrics) Watch(srv *server.Server) {
	if !m.srv.CompareAndSwap(nil, srv) {
		panic("metrics: Watch called twice")
	}
	// Config changes are rare, but a health flap publishes many target
	// events: a buffer this size rides out bursts, and Dropped tells when
	// one did not.
	sub := srv.Subscribe(4096)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		defer sub.Close()
		m.reloads.follow(ctx, sub)
	}()
}

// Close stops following the server's events, and waits until it has.
func (m *Metrics) Close() {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
}

// reloads counts config changes, from the server's events.
type reloads struct {
	applied [3]atomic.Uint64 // by source: file, update, cluster
	refused [3]atomic.Uint64
	last    atomic.Int64 // unix nanoseconds of the last change applied; 0: none
	sub     atomic.Pointer[server.Subscription]
}

var sourceNames = [3]server.Source{server.FromFile, server.FromUpdate, server.FromCluster}

func sourceIndex(s server.Source) int {
	switch s {
	case server.FromUpdate:
		return 1
	case server.FromCluster:
		return 2
	}
	return 0
}

func (r *reloads) follow(ctx context.Context, sub *server.Subscription) {
	r.sub.Store(sub)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			switch e.Kind {
			case server.ConfigApplied:
				r.applied[sourceIndex(e.Source)].Add(1)
				r.last.Store(e.Time.UnixNano())
			case server.ConfigRefused:
				r.refused[sourceIndex(e.Source)].Add(1)
			}
		}
	}
}

// TargetTotals is one target's counts since latch started (or since its
// group and id first took a request), for a dashboard that samples them to
// draw request rates and response time percentiles over time.
type TargetTotals struct {
	Group, Target string
	// Requests counts the requests sent to the target, Errors those that
	// got a 5xx: the target's own, or latch's when the target failed it
	// (connect failure, timeout, closed, invalid response).
	Requests, Errors uint64
	// Buckets counts the target's response times (request sent to
	// response head) by the bounds Buckets returns, each bucket on its
	// own (not cumulative); the last is above the highest bound.
	Buckets []uint64
}

// Targets returns every target's totals, in no particular order. It takes
// no lock the request path takes, and allocates only what it returns.
func (m *Metrics) Targets() []TargetTotals {
	m.mu.Lock()
	stats := make([]*targetStats, 0, len(m.byName))
	for _, st := range m.byName {
		stats = append(stats, st)
	}
	m.mu.Unlock()
	out := make([]TargetTotals, len(stats))
	for i, st := range stats {
		tt := TargetTotals{Group: st.group, Target: st.id, Requests: st.requests.Load(),
			Buckets: make([]uint64, numBuckets+1)}
		tt.Errors = st.codes[4].Load()
		for c := range numCauses {
			tt.Errors += st.errors[c].Load()
		}
		for b := range tt.Buckets {
			tt.Buckets[b] = st.time.counts[b].Load()
		}
		out[i] = tt
	}
	return out
}

// CountDroppedLogLines adds latch_access_log_dropped_lines_total, read
// from dropped at each scrape: the access-log lines dropped because the
// writer fell behind (a slow disk never slows a request; it costs lines).
func (m *Metrics) CountDroppedLogLines(dropped func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "latch_access_log_dropped_lines_total",
		Help: "Access-log lines dropped because the log's writer fell behind.",
	}, func() float64 { return float64(dropped()) }))
}

// Cluster is what the cluster metrics read (cluster.Cluster).
type Cluster interface {
	EtcdUp() bool
	Applied() int64
	NodeCount() int
	Resyncs() uint64
}

// WatchCluster adds cluster mode's metrics, read from c at each scrape.
func (m *Metrics) WatchCluster(c Cluster) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latch_cluster_etcd_up",
			Help: "1 while this node reaches the cluster's etcd; 0 while it serves the state last applied and refuses admin writes.",
		}, func() float64 {
			if c.EtcdUp() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latch_cluster_revision_applied",
			Help: "The etcd revision of the shared state this node has applied.",
		}, func() float64 { return float64(c.Applied()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latch_cluster_nodes",
			Help: "The cluster's nodes with a live record in etcd, this one included.",
		}, func() float64 { return float64(c.NodeCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "latch_cluster_resyncs_total",
			Help: "Times this node read the whole shared state again because etcd had compacted the revisions after its own.",
		}, func() float64 { return float64(c.Resyncs()) }),
	)
}
