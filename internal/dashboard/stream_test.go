package dashboard

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/metrics"
)

// TestStreamStateAndRates reads the stream of a latch serving two targets:
// the first message names the listener and both targets, and once
// requests flow, ticks carry each target's rate and response times.
func TestStreamStateAndRates(t *testing.T) {
	a, b := startTarget(t, "a"), startTarget(t, "b")
	totals := startMetrics(t)
	srv := startLatch(t, configYAML(t.TempDir(), "", a, b), totals.Observer())
	d := New(srv, totals, testLogger(t))
	d.tick = 100 * time.Millisecond
	web := httptest.NewServer(d.Stream())
	t.Cleanup(web.Close)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := openStream(t, ctx, web.URL)
	first := s.waitMessage(t, 5*time.Second, "the first message", func(message) bool { return true })
	if first.Cause != "hello" || !first.Metrics {
		t.Errorf("first message: cause %q, metrics %t; want hello, true", first.Cause, first.Metrics)
	}
	if len(first.Listeners) != 1 || first.Listeners[0].Name != "front" || first.Listeners[0].Default != "forward to web" {
		t.Errorf("listeners: %+v; want front, forwarding to web", first.Listeners)
	}
	for _, id := range []string{a, b} {
		tv := targetOf(first, "web", id)
		if tv == nil {
			t.Fatalf("target %s missing from %+v", id, first.Groups)
		}
		if tv.State != "unavailable" || tv.Reason != "Target.HealthCheckDisabled" || tv.Weight != 1 {
			t.Errorf("target %s: %s %s weight %d; want unavailable Target.HealthCheckDisabled weight 1", id, tv.State, tv.Reason, tv.Weight)
		}
	}

	// Requests until a tick shows both targets' rates and times: the
	// group round-robins, so both get some.
	front := "http://" + srv.Addr("front")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000 && ctx.Err() == nil; i++ {
			resp, err := http.Get(front)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	m := s.waitMessage(t, 10*time.Second, "a tick with both targets' rates", func(m message) bool {
		if m.Cause != "tick" {
			return false
		}
		for _, id := range []string{a, b} {
			tv := targetOf(m, "web", id)
			if tv == nil || tv.Rate == nil || *tv.Rate <= 0 || tv.P50 == nil || tv.P99 == nil {
				return false
			}
		}
		return true
	})
	cancel()
	<-done
	for _, id := range []string{a, b} {
		tv := targetOf(m, "web", id)
		if *tv.P50 > *tv.P99 || *tv.P99 > 1000 || *tv.ErrorRate != 0 {
			t.Errorf("target %s: p50 %v ms, p99 %v ms, %v errors/s; want p50 <= p99 <= 1000 ms, no errors", id, *tv.P50, *tv.P99, *tv.ErrorRate)
		}
	}
}

// TestStreamSendsOnChangeAtOnce: with ticks an hour apart, a change of
// health still reaches the stream, at once, and a stream without totals
// says so.
func TestStreamSendsOnChangeAtOnce(t *testing.T) {
	var failing atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(target.Close)
	id := target.Listener.Addr().String()
	srv := startLatch(t, configYAML(t.TempDir(), fastHealth, id), nil)
	d := New(srv, nil, testLogger(t))
	d.tick = time.Hour
	web := httptest.NewServer(d.Stream())
	t.Cleanup(web.Close)

	s := openStream(t, t.Context(), web.URL)
	s.waitMessage(t, 5*time.Second, "the target healthy", func(m message) bool {
		tv := targetOf(m, "web", id)
		return tv != nil && tv.State == "healthy"
	})
	failing.Store(true)
	m := s.waitMessage(t, 5*time.Second, "the target unhealthy", func(m message) bool {
		tv := targetOf(m, "web", id)
		return tv != nil && tv.State == "unhealthy"
	})
	tv := targetOf(m, "web", id)
	if m.Cause != "target_health" || tv.Reason != "Target.ResponseCodeMismatch" || tv.Description == "" {
		t.Errorf("cause %q, reason %q, description %q; want target_health, Target.ResponseCodeMismatch, a description", m.Cause, tv.Reason, tv.Description)
	}
	if m.Metrics || tv.Rate != nil || tv.P50 != nil {
		t.Errorf("with no totals: metrics %t, rate %v, p50 %v; want false, nil, nil", m.Metrics, tv.Rate, tv.P50)
	}
}

// TestStreamEndsWhenClientGoes: the handler returns once the client
// hangs up, once the dashboard closes, and once the server shuts down; nothing is left running
// (startLatch's leak check).
func TestStreamEndsWhenClientGoes(t *testing.T) {
	srv := startLatch(t, configYAML(t.TempDir(), "", startTarget(t, "a")), nil)
	d := New(srv, startMetrics(t), testLogger(t))
	d.tick = 50 * time.Millisecond
	ended := make(chan struct{}, 2)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.Stream().ServeHTTP(w, r)
		ended <- struct{}{}
	}))
	t.Cleanup(web.Close)

	ctx, cancel := context.WithCancel(t.Context())
	s := openStream(t, ctx, web.URL)
	s.waitMessage(t, 5*time.Second, "a tick", func(m message) bool { return m.Cause == "tick" })
	cancel()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream's handler still runs 5 s after its client went")
	}

	s = openStream(t, t.Context(), web.URL)
	s.waitMessage(t, 5*time.Second, "the first message", func(message) bool { return true })
	d.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream's handler still runs 5 s after the dashboard closed")
	}
	d = New(srv, nil, testLogger(t))
	s = openStream(t, t.Context(), web.URL)
	s.waitMessage(t, 5*time.Second, "the first message", func(message) bool { return true })
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream's handler still runs 5 s after the server shut down")
	}
}

// TestStreamOutlivesReadTimeout: the admin listener has a ReadTimeout
// (30 s), which must not end a stream that lasts longer.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	srv := startLatch(t, configYAML(t.TempDir(), "", startTarget(t, "a")), nil)
	d := New(srv, nil, testLogger(t))
	d.tick = 50 * time.Millisecond
	web := httptest.NewUnstartedServer(d.Stream())
	web.Config.ReadTimeout = 100 * time.Millisecond
	web.Start()
	t.Cleanup(web.Close)

	s := openStream(t, t.Context(), web.URL)
	first := s.waitMessage(t, 5*time.Second, "the first message", func(message) bool { return true })
	s.waitMessage(t, 5*time.Second, "a message 5 read timeouts later", func(m message) bool {
		return m.Time.Sub(first.Time) > 5*web.Config.ReadTimeout
	})
}

// TestStreamEndsAtListenerShutdown: the admin listener's Shutdown ends
// the streams it serves, rather than waiting for them until its timeout.
func TestStreamEndsAtListenerShutdown(t *testing.T) {
	srv := startLatch(t, configYAML(t.TempDir(), "", startTarget(t, "a")), nil)
	d := New(srv, (*metrics.Metrics)(nil), testLogger(t))
	adm, err := admin.Start(admin.Options{Server: srv, Address: "127.0.0.1:0", Dashboard: d.Handler(),
		Stream: d.Stream(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := openStream(t, t.Context(), "http://"+adm.Addr()+"/api/v1/stream")
	if m := s.waitMessage(t, 5*time.Second, "the first message", func(message) bool { return true }); m.Metrics {
		t.Error("metrics: true with a nil *metrics.Metrics; want false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := adm.Shutdown(ctx); err != nil {
		t.Fatalf("admin shutdown with a stream open: %v after %v; want it to end the stream", err, time.Since(start))
	}
}

func TestStreamRefusesPost(t *testing.T) {
	srv := startLatch(t, configYAML(t.TempDir(), "", startTarget(t, "a")), nil)
	web := httptest.NewServer(New(srv, nil, nil).Stream())
	t.Cleanup(web.Close)
	resp, err := http.Post(web.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST: %d, Allow %q; want 405, GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	bounds := []float64{.01, .1, 1, inf}
	for _, c := range []struct {
		name   string
		q      float64
		counts []uint64
		want   float64
		ok     bool
	}{
		{"empty", .5, []uint64{0, 0, 0, 0}, 0, false},
		{"all in the first bucket", .5, []uint64{10, 10, 10, 10}, .005, true},
		{"middle of the second", .5, []uint64{0, 10, 10, 10}, .055, true},
		{"p99 in the third", .99, []uint64{50, 90, 100, 100}, .1 + .9*(99-90)/10.0, true},
		{"in +Inf: the highest finite bound", .99, []uint64{0, 0, 1, 100}, 1, true},
		{"only +Inf and nothing below", .5, []uint64{0, 0, 0, 5}, 1, true},
	} {
		got, ok := quantile(c.q, bounds, c.counts)
		if ok != c.ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: quantile(%v, %v) = %v, %t; want %v, %t", c.name, c.q, c.counts, got, ok, c.want, c.ok)
		}
	}
	if _, ok := quantile(.5, bounds, []uint64{1}); ok {
		t.Error("bounds and counts of different lengths: ok; want not ok")
	}
}

// TestSamplerStartsAnewWhenTotalsFall: a target registered again counts
// from zero; the sampler must not subtract across that.
func TestSamplerStartsAnewWhenTotalsFall(t *testing.T) {
	tt := &fixedTotals{}
	s := newSampler(tt, time.Second, 10*time.Second)
	buckets := func(fast, slow uint64) []uint64 {
		b := make([]uint64, len(metrics.Buckets())+1)
		b[0], b[len(b)-1] = fast, slow
		return b
	}
	t0 := time.Unix(1000, 0)
	tt.set(metrics.TargetTotals{Group: "g", Target: "t", Requests: 100, Buckets: buckets(90, 10)})
	s.sample(t0)
	tt.set(metrics.TargetTotals{Group: "g", Target: "t", Requests: 150, Buckets: buckets(140, 10)})
	s.sample(t0.Add(time.Second))
	r := s.rates()[key{"g", "t"}]
	if r.Rate == nil || *r.Rate != 50 {
		t.Fatalf("rate %v; want 50", r.Rate)
	}
	if want := metrics.Buckets()[0] * 1000 / 2; r.P50 == nil || math.Abs(*r.P50-want) > 1e-9 {
		t.Errorf("p50 %v ms; want %v (the 50 requests of the tick all in the first bucket)", r.P50, want)
	}
	tt.set(metrics.TargetTotals{Group: "g", Target: "t", Requests: 3, Buckets: buckets(3, 0)})
	s.sample(t0.Add(2 * time.Second))
	r = s.rates()[key{"g", "t"}]
	if r.Rate != nil || r.P50 != nil {
		t.Errorf("after the totals fell: rate %v, p50 %v; want nil, nil (one sample)", r.Rate, r.P50)
	}
}

// fixedTotals are totals a test sets.
type fixedTotals struct{ t []metrics.TargetTotals }

func (f *fixedTotals) set(t ...metrics.TargetTotals)   { f.t = t }
func (f *fixedTotals) Targets() []metrics.TargetTotals { return f.t }
