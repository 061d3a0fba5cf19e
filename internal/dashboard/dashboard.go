// Package dashboard is latch's web page on the admin listener: the running
// state, live, with drain and weight controls that call the admin API.
package dashboard

import (
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/cluster"
	"github.com/latch-lb/latch/internal/metrics"
	"github.com/latch-lb/latch/internal/server"
)

//go:embed static
var static embed.FS

// Totals gives every target's totals since latch started: requests,
// errors, and a response-time histogram whose buckets are
// metrics.Buckets() and +Inf. *metrics.Metrics implements it; nil means no
// metrics: the page shows no rates or response times.
type Totals interface {
	Targets() []metrics.TargetTotals
}

// Cluster is what the page shows of cluster mode (cluster.Cluster).
type Cluster interface {
	Status() cluster.Status
}

// Dashboard serves the page and its live stream.
type Dashboard struct {
	srv     *server.Server
	totals  Totals
	cluster Cluster // nil: a lone latch
	log     *slog.Logger
	// tick is how often the stream sends the state; window how far back
	// p50 and p99 look.
	tick   time.Duration
	window time.Duration
	files  http.Handler
	// closed ends every stream (Close).
	closed    chan struct{}
	closeOnce sync.Once
	// servers are the http.Servers whose Shutdown closes the dashboard.
	servers sync.Map
}

// New returns the dashboard of srv, with totals for rates and response
// times (nil: none).
func New(srv *server.Server, totals Totals, log *slog.Logger) *Dashboard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m, ok := totals.(*metrics.Metrics); ok && m == nil {
		totals = nil // metrics off, passed as a nil *Metrics
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return &Dashboard{srv: srv, totals: totals, log: log, tick: time.Second, window: 10 * time.Second,
		files: http.FileServerFS(sub), closed: make(chan struct{})}
}

// ShowCluster has the page show c's view of the cluster: its nodes,
// whether etcd answers, and where the nodes' health checks disagree. Call
// it before serving.
func (d *Dashboard) ShowCluster(c Cluster) { d.cluster = c }

// Close ends every stream, those open and those to come. The Shutdown of
// an http.Server that served a stream calls it (a stream never goes idle,
// so Shutdown would otherwise wait for it until its context ends).
func (d *Dashboard) Close() { d.closeOnce.Do(func() { close(d.closed) }) }

// closeAtShutdown makes the Shutdown of the server serving r close d.
func (d *Dashboard) closeAtShutdown(r *http.Request) {
	hs, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	if _, loaded := d.servers.LoadOrStore(hs, true); !loaded {
		hs.RegisterOnShutdown(d.Close)
	}
}

// Handler serves the page and its script and style, at "/" of the admin
// listener. The page holds no data of its own: it reads the stream and
// calls the admin API, sending the token the person enters.
func (d *Dashboard) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/", "/app.js", "/app.css", "/favicon.svg":
		default:
			writeError(w, http.StatusNotFound, fmt.Sprintf("no such page: %s (the dashboard is at /, the API under /api/v1/)", r.URL.Path))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s; the dashboard is read with GET", r.Method, r.URL.Path))
			return
		}
		secure(w.Header())
		d.files.ServeHTTP(w, r)
	})
}

// secure sets the headers that keep the page's script its own: no inline
// or foreign script runs, no other site frames the page (its buttons
// cannot be clicked through a disguise), and nothing leaks in a Referer.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}
