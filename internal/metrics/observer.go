package metrics

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// The request path counts into plain atomics, found without allocating:
// listeners and groups in copy-on-write maps keyed by name (a string key is
// looked up without a copy), targets in a sync.Map keyed by the
// *target.Target that Record.Target carries (a pointer in an interface is
// not boxed). Only the first request of a listener, group or target takes a
// lock, to add its counters. client_golang's own vectors are never touched
// here: they hash label values on every update; the collector turns these
// counters into metrics at scrape time.

// codeClasses are the status classes counted, 1xx to 5xx.
var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// class returns status's index in codeClasses, or -1 (no status: the
// client went away first).
func class(status int) int {
	if status < 100 || status > 599 {
		return -1
	}
	return status/100 - 1
}

// cause is why latch answered a request itself, one of a small fixed set:
// Record.Cause is a sentence for people, which may name a timeout or a
// group.
type cause uint8

const (
	causeRedirect cause = iota
	causeFixedResponse
	causeNoTargets
	causeConnectFailed
	causeTimeout
	causeTargetClosed
	causeInvalidResponse
	causeDeregistered
	causeDesyncBlocked
	causeRequestTimeout
	causeRefusedRequest
	causeOther
	numCauses
)

var causeNames = [numCauses]string{"redirect", "fixed_response", "no_targets", "connect_failed", "timeout",
	"target_closed", "invalid_response", "deregistered", "desync_blocked", "request_timeout", "refused_request",
	"other"}

// targetCause reports whether c is a failure of a request sent to a target
// (counted against the target too).
func (c cause) targetCause() bool {
	return c >= causeConnectFailed && c <= causeDeregistered
}

// causeOf maps latch's own answer to its cause. It runs only for latch's
// answers, off the common path, and compares strings without allocating.
// The sentences are internal/proxy's (statusFor, refuse); a new one lands
// in "other" until it is named here.
func causeOf(r *proxy.Record) cause {
	c := r.Cause
	switch {
	case r.DesyncBlocked:
		return causeDesyncBlocked
	case c == "":
		if r.Status >= 300 && r.Status < 400 {
			return causeRedirect
		}
		return causeFixedResponse
	case strings.HasSuffix(c, "has no registered targets"):
		return causeNoTargets
	case c == "the target refused the connection", strings.HasPrefix(c, "could not connect to the target"):
		return causeConnectFailed
	case strings.HasPrefix(c, "the target did not respond within"):
		return causeTimeout
	case c == "the target closed the connection":
		return causeTargetClosed
	case strings.HasPrefix(c, "the target was deregistered"):
		return causeDeregistered
	case r.Status == 408:
		return causeRequestTimeout
	case r.Status == 502:
		// statusFor's remaining 502s: a response that could not be read.
		return causeInvalidResponse
	case r.Status >= 400 && r.Status < 500:
		return causeRefusedRequest
	}
	return causeOther
}

// bounds are the upper bounds, in seconds, of the target response time
// histogram's buckets (the last, +Inf, is implicit): from ALB's 1 ms
// resolution to its 10 s, closer where web responses fall.
var bounds = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

const numBuckets = len(bounds)

// boundNanos are bounds in nanoseconds, compared without floats.
var boundNanos = func() (b [numBuckets]int64) {
	for i, s := range bounds {
		b[i] = int64(s * float64(time.Second))
	}
	return b
}()

// Buckets returns the upper bounds, in seconds, of the target response
// time histogram's buckets, as TargetTotals.Buckets counts them.
func Buckets() []float64 { return slices.Clone(bounds[:]) }

// histogram counts durations into Buckets (counts[numBuckets] is +Inf); not
// cumulative, so one observation is one atomic add and the sum another.
type histogram struct {
	counts [numBuckets + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	n := int64(d)
	i := 0
	for i < numBuckets && n > boundNanos[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(n)
}

// read returns the cumulative bucket counts, the count and the sum in
// seconds, as Prometheus exposes them. Buckets read a moment apart may
// disagree by a request in flight; the count is their total, so the
// exposition is always consistent.
func (h *histogram) read() (cum [numBuckets]uint64, count uint64, sum float64) {
	var acc uint64
	for i := range numBuckets {
		acc += h.counts[i].Load()
		cum[i] = acc
	}
	count = acc + h.counts[numBuckets].Load()
	return cum, count, float64(h.sum.Load()) / float64(time.Second)
}

// listenerStats counts one listener's requests and connections.
type listenerStats struct {
	requests, unanswered atomic.Uint64
	target               [len(codeClasses)]atomic.Uint64
	latch                [len(codeClasses)][numCauses]atomic.Uint64
	bytesIn, bytesOut    atomic.Uint64
	open                 atomic.Int64
	opened               atomic.Uint64
	handshakes, hsErrors atomic.Uint64
	desync               [4]atomic.Uint64 // by desync.Tier
	desyncBlocked        atomic.Uint64
}

// groupStats counts one target group's retries and sessions.
type groupStats struct {
	retries, retriesRefused atomic.Uint64
	sticky                  [numOutcomes][numReasons]atomic.Uint64
}

const (
	numOutcomes = int(sticky.Invalid) + 1
	numReasons  = int(sticky.NoSuchTarget) + 1
)

// targetStats counts the requests one target (group and id) took. Every
// registration of the id shares it, so that its counters run on when the
// target is deregistered and registered anew.
type targetStats struct {
	group, id         string
	requests          atomic.Uint64
	codes             [len(codeClasses)]atomic.Uint64
	errors            [numCauses]atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	time              histogram
	// connectFailures is what Target.Outcomes counted, gathered at scrape
	// time from every registration (collect.go); live marks the stats
	// whose target is still registered or draining. Both are the
	// collector's, under Metrics.mu.
	connectFailures uint64
	live            bool
}

// targetRef is what the request path finds for a *target.Target: its
// stats, and (the collector's, under Metrics.mu) how many of the target's
// connect failures were added to them.
type targetRef struct {
	st       *targetStats
	seenFail uint64
}

type groupTarget struct{ group, id string }

// names is a copy-on-write map from a name to its stats: read without a
// lock, replaced whole under mu when a name is added or pruned.
type names[S any] struct {
	m  atomic.Pointer[map[string]*S]
	mu sync.Mutex
}

func (n *names[S]) get(name string) *S {
	if m := n.m.Load(); m != nil {
		if s, ok := (*m)[name]; ok {
			return s
		}
	}
	return n.add(name)
}

func (n *names[S]) add(name string) *S {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.load()
	if s, ok := old[name]; ok {
		return s
	}
	m := make(map[string]*S, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	s := new(S)
	m[name] = s
	n.m.Store(&m)
	return s
}

func (n *names[S]) load() map[string]*S {
	if m := n.m.Load(); m != nil {
		return *m
	}
	return nil
}

// keep drops every name keep does not hold.
func (n *names[S]) keep(keep func(string) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.load()
	m := make(map[string]*S, len(old))
	for k, v := range old {
		if keep(k) {
			m[k] = v
		}
	}
	if len(m) < len(old) {
		n.m.Store(&m)
	}
}

// observer is Metrics' proxy.Observer.
type observer struct{ m *Metrics }

var _ proxy.Observer = observer{}

func (observer) Begin(*proxy.Record) {}

func (o observer) End(r *proxy.Record) {
	m := o.m
	l := m.listeners.get(r.Listener)
	l.requests.Add(1)
	if r.BytesIn > 0 {
		l.bytesIn.Add(uint64(r.BytesIn))
	}
	if r.BytesOut > 0 {
		l.bytesOut.Add(uint64(r.BytesOut))
	}
	if r.Classified && int(r.Desync.Tier) < len(l.desync) {
		l.desync[r.Desync.Tier].Add(1)
	}
	k := class(r.Status)
	c := cause(numCauses)
	switch {
	case k < 0:
		l.unanswered.Add(1)
	case r.ByLatch:
		c = causeOf(r)
		l.latch[k][c].Add(1)
	default:
		l.target[k].Add(1)
	}
	if r.Group != "" {
		g := m.groups.get(r.Group)
		if r.Retried {
			g.retries.Add(1)
		}
		if r.RetryRefused {
			g.retriesRefused.Add(1)
		}
		if o, why := int(r.Sticky), int(r.StickyReason); o != int(sticky.NotSticky) && o < numOutcomes && why < numReasons {
			g.sticky[o][why].Add(1)
		}
	}
	if r.Target == nil {
		return
	}
	t := m.target(r.Target, r.Group)
	t.requests.Add(1)
	if r.BytesIn > 0 {
		t.bytesIn.Add(uint64(r.BytesIn))
	}
	if r.BytesOut > 0 {
		t.bytesOut.Add(uint64(r.BytesOut))
	}
	switch {
	case k >= 0 && !r.ByLatch:
		t.codes[k].Add(1)
	case c < numCauses && c.targetCause():
		t.errors[c].Add(1)
	}
	if !r.Head.IsZero() && !r.Sent.IsZero() {
		t.time.observe(max(r.Head.Sub(r.Sent), 0))
	}
}

func (o observer) Refused(r *proxy.Record) {
	l := o.m.listeners.get(r.Listener)
	l.requests.Add(1)
	if r.Classified && int(r.Desync.Tier) < len(l.desync) {
		l.desync[r.Desync.Tier].Add(1)
	}
	if r.DesyncBlocked {
		l.desyncBlocked.Add(1)
	}
	if k := class(r.Status); k >= 0 {
		l.latch[k][causeOf(r)].Add(1)
	} else {
		l.unanswered.Add(1)
	}
}

func (o observer) Conn(e proxy.ConnEvent) {
	l := o.m.listeners.get(e.Listener)
	switch e.Kind {
	case proxy.ConnOpened:
		l.opened.Add(1)
		l.open.Add(1)
	case proxy.ConnClosed:
		l.open.Add(-1)
	case proxy.ConnHandshake:
		l.handshakes.Add(1)
	case proxy.ConnHandshakeFailed:
		l.hsErrors.Add(1)
	}
}

// target returns t's stats, adding them on t's first request.
func (m *Metrics) target(t *target.Target, group string) *targetStats {
	if ref, ok := m.targets.Load(t); ok {
		return ref.(*targetRef).st
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refLocked(t, group).st
}

// refLocked returns t's ref, adding it (and its stats, unless another
// registration of the id has them) if t has none. m.mu is held.
func (m *Metrics) refLocked(t *target.Target, group string) *targetRef {
	if ref, ok := m.targets.Load(t); ok {
		return ref.(*targetRef)
	}
	key := groupTarget{group, t.ID}
	st := m.byName[key]
	if st == nil {
		st = &targetStats{group: group, id: t.ID}
		m.byName[key] = st
	}
	ref := &targetRef{st: st}
	m.targets.Store(t, ref)
	return ref
}

// tierNames are desync.Tier's names, as ALB's classifications.
var tierNames = [4]string{
	desync.Compliant:  "compliant",
	desync.Acceptable: "acceptable",
	desync.Ambiguous:  "ambiguous",
	desync.Severe:     "severe",
}
