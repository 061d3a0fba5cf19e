package faults

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadSpec is a load of sticky sessions, each a client with a cookie jar
// and a keep-alive connection of its own, sending requests at a steady
// rate, each with an X-Request-Id the targets record.
type loadSpec struct {
	tag      string        // the request ids' prefix
	sessions int           // how many
	rate     float64       // requests per second of each session
	limit    time.Duration // the longest it runs; it also bounds each session's requests
	post     func(seq int) bool
	hold     string // X-Hold on every request (see runTarget)
}

// standardLoad is issue 9's load: 50 sticky sessions at 5 requests a
// second each.
func standardLoad(tag string) loadSpec {
	return loadSpec{tag: tag, sessions: 50, rate: 5, limit: 20 * time.Second}
}

func (s loadSpec) String() string {
	what := "GETs"
	if s.post != nil {
		what = "GETs and POSTs"
	}
	return fmt.Sprintf("%d sticky sessions × %g req/s, %s", s.sessions, s.rate, what)
}

// result is what a client got for one request.
type result struct {
	sess, seq  int
	id, method string
	status     int    // 0 when the request failed
	err        string // the client's error, if any
	backend    string // the target named in X-Backend
	start, end time.Time
}

func (r result) ok() bool { return r.status == http.StatusOK }

// load is a running load.
type load struct {
	spec    loadSpec
	url     string
	clients []*http.Client
	stopc   chan struct{}
	wg      sync.WaitGroup

	mu   sync.Mutex
	res  []result
	wake chan struct{} // closed and replaced at every result
}

// startLoad starts spec against latch.
func startLoad(t *testing.T, p *latchProc, spec loadSpec) *load {
	l := &load{spec: spec, url: p.url, stopc: make(chan struct{}), wake: make(chan struct{})}
	for i := range spec.sessions {
		c := p.client()
		l.clients = append(l.clients, c)
		l.wg.Add(1)
		go l.session(i, c)
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) session(i int, c *http.Client) {
	defer l.wg.Done()
	defer c.CloseIdleConnections()
	interval := time.Duration(float64(time.Second) / l.spec.rate)
	start := time.Now()
	next := start.Add(rand.N(interval)) // the sessions out of step
	limit := int(l.spec.limit.Seconds()*l.spec.rate) + 1
	for seq := range limit {
		timer := time.NewTimer(time.Until(next))
		select {
		case <-l.stopc:
			timer.Stop()
			return
		case <-timer.C:
		}
		if time.Since(start) > l.spec.limit {
			return
		}
		l.add(l.do(c, i, seq))
		// A session whose request took longer than its interval sends the
		// next at once, without catching up: a browser, not a benchmark.
		if next = next.Add(interval); next.Before(time.Now()) {
			next = time.Now()
		}
	}
}

func (l *load) do(c *http.Client, sess, seq int) result {
	method := http.MethodGet
	if l.spec.post != nil && l.spec.post(seq) {
		method = http.MethodPost
	}
	r := send(c, method, fmt.Sprintf("%s/s/%d", l.url, sess), fmt.Sprintf("%s-s%d-r%d", l.spec.tag, sess, seq), l.spec.hold)
	r.sess, r.seq = sess, seq
	return r
}

func (l *load) add(r result) {
	l.mu.Lock()
	l.res = append(l.res, r)
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// results returns a copy of the results so far, and a channel closed at
// the next.
func (l *load) results() ([]result, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.res), l.wake
}

// wait waits for the sessions to end by themselves, at the spec's limit.
func (l *load) wait() { l.wg.Wait() }

// stop ends the load and waits for the requests in flight.
func (l *load) stop() {
	select {
	case <-l.stopc:
	default:
		close(l.stopc)
	}
	l.wg.Wait()
}

// waitFor waits until cond holds on the results, and fails t if it does
// not within d.
func (l *load) waitFor(t *testing.T, d time.Duration, what string, cond func([]result) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		rs, wake := l.results()
		if cond(rs) {
			return
		}
		select {
		case <-wake:
		case <-timeout:
			t.Fatalf("timed out after %v waiting for %s (%d results)", d, what, len(rs))
		}
	}
}

// waitEstablished waits until every session has had a 200.
func (l *load) waitEstablished(t *testing.T) {
	t.Helper()
	l.waitFor(t, 10*time.Second, "every session answered", func(rs []result) bool {
		return len(sessionTargets(rs, time.Now())) == l.spec.sessions
	})
}

// waitMore waits until n more requests have been answered, however.
func (l *load) waitMore(t *testing.T, n int) {
	t.Helper()
	rs, _ := l.results()
	want := len(rs) + n
	l.waitFor(t, 30*time.Second, fmt.Sprintf("%d more requests", n), func(rs []result) bool { return len(rs) >= want })
}

// sessionTargets returns the target of each session's last 200 that came
// before at.
func sessionTargets(rs []result, at time.Time) map[int]string {
	m := map[int]string{}
	for _, r := range rs {
		if r.ok() && !r.end.After(at) {
			m[r.sess] = r.backend
		}
	}
	return m
}

// sessionsOn returns the sessions whose target at at was name.
func sessionsOn(rs []result, at time.Time, name string) []int {
	var out []int
	for s, b := range sessionTargets(rs, at) {
		if b == name {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// startedAfter returns the results of requests sent after at.
func startedAfter(rs []result, at time.Time) []result {
	var out []result
	for _, r := range rs {
		if r.start.After(at) {
			out = append(out, r)
		}
	}
	return out
}

// failed returns the results that are not 200.
func failed(rs []result) []result {
	var out []result
	for _, r := range rs {
		if !r.ok() {
			out = append(out, r)
		}
	}
	return out
}

// summary says what clients got, for a row: "1234 requests, all 200" or
// "1234 requests: 200×1200, 502×30, error×4".
func summary(rs []result) string {
	counts := map[string]int{}
	for _, r := range rs {
		k := fmt.Sprint(r.status)
		if r.status == 0 {
			k = "error"
		}
		counts[k]++
	}
	noun := "requests"
	if len(rs) == 1 {
		noun = "request"
	}
	if len(counts) == 1 {
		for k := range counts {
			if k == "200" {
				return fmt.Sprintf("%d %s, all 200", len(rs), noun)
			}
			return fmt.Sprintf("%d %s, all %s", len(rs), noun, k)
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, counts[k]))
	}
	return fmt.Sprintf("%d %s: %s", len(rs), noun, strings.Join(parts, ", "))
}

// firstErrors describes up to three failed results, for a message.
func firstErrors(rs []result) string {
	var parts []string
	for _, r := range failed(rs) {
		if len(parts) == 3 {
			parts = append(parts, "...")
			break
		}
		if r.status != 0 {
			parts = append(parts, fmt.Sprintf("%s %s: %d", r.method, r.id, r.status))
		} else {
			parts = append(parts, fmt.Sprintf("%s %s: %s", r.method, r.id, r.err))
		}
	}
	return strings.Join(parts, "; ")
}

// send sends one request on c, a POST with a small form body when method
// is POST, with X-Request-Id id and, unless empty, X-Hold hold.
func send(c *http.Client, method, url, id, hold string) result {
	r := result{id: id, method: method}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("SAMLResponse=" + id)
	}
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("X-Request-Id", id)
	if hold != "" {
		req.Header.Set("X-Hold", hold)
	}
	r.start = time.Now()
	resp, err := c.Do(req)
	if err != nil {
		r.err, r.end = err.Error(), time.Now()
		return r
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.end = time.Now()
	r.status, r.backend = resp.StatusCode, resp.Header.Get("X-Backend")
	if err != nil {
		r.status, r.err = 0, "reading the body: "+err.Error()
	}
	return r
}
