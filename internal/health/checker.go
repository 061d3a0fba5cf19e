// Package health probes targets for their groups' active health checks.
package health

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/target"
)

// Checker probes the targets of one group, each on its own schedule, and
// reports the results to the group's state machine. It is the group's
// target.Checker: the group starts a target's probes when it registers it
// and stops them when it deregisters it.
type Checker struct {
	spec config.HealthCheck
	// The HTTP/1.1 probe's request, but for Host's value (see Probe).
	reqStart, reqEnd string
	reqErr           error        // a path or user agent no request can carry
	h2               *http.Client // nil for HTTP/1.1 groups

	mu     sync.Mutex
	probes map[*target.Target]context.CancelFunc
	closed bool
	wg     sync.WaitGroup
}

var _ target.Checker = (*Checker)(nil)

// maxBody caps how much of a probe's response body is read.
const maxBody = 64 << 10

// NewChecker returns a checker for spec; it probes nothing until Start.
// Probes judge a response as the group's requests do: over HTTP/1.1 with
// latch's own parser (internal/h1) and its limits; with http2
// (protocol_version HTTP2) in cleartext HTTP/2 with prior knowledge,
// through net/http's HTTP/2 client set as the data path's
// (proxy.NewH2Transport).
func NewChecker(spec config.HealthCheck, http2 bool) *Checker {
	if spec.UserAgent == "" {
		// ALB's, when the spec names none.
		spec.UserAgent = config.DefaultHealthCheckUserAgent
	}
	c := &Checker{spec: spec, probes: map[*target.Target]context.CancelFunc{}}
	if http2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr := &http.Transport{
			Protocols: &p,
			// As ALB does, and so that a probe measures a fresh connection.
			DisableKeepAlives: true,
			DialContext:       dialH2,
			// What decides whether a response is valid is set as the data
			// path's transport sets it. net/http does not count this limit
			// as internal/h1 counts MaxResponseHead on HTTP/1.1: it pads it
			// by 320 bytes (ten fields' overhead), and counts each field of
			// the decoded header list, :status included, as its name and
			// value plus 32 bytes (RFC 9113 §6.5.2), where h1 counts the
			// head's bytes on the wire (the status line, and each field's
			// name, ": ", value and CRLF). A head of a few large fields
			// meets the same limit within a few hundred bytes either way; a
			// head of many small ones is refused sooner over HTTP/2. The
			// probe and the group's requests count alike, so they agree.
			MaxResponseHeaderBytes: h1.MaxResponseHead,
			// No Accept-Encoding of the probe's own, nor decoding: the
			// data path passes bodies as the target sends them.
			DisableCompression: true,
		}
		c.h2 = &http.Client{Transport: tr, CheckRedirect: noRedirects}
	}
	c.reqStart, c.reqEnd, c.reqErr = requestH1(spec.Path, spec.UserAgent)
	return c
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Start begins probing t, reporting every result to report. Starting a
// target already probed does nothing.
func (c *Checker) Start(t *target.Target, report func(*target.Target, target.Result)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.probes[t]; ok || c.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.probes[t] = cancel
	c.wg.Add(1)
	go c.run(ctx, t, report)
}

// Stop stops probing t. It does not wait for a probe in progress, whose
// result is dropped.
func (c *Checker) Stop(t *target.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cancel, ok := c.probes[t]; ok {
		cancel()
		delete(c.probes, t)
	}
}

// Close stops every probe and waits for them to end.
func (c *Checker) Close() {
	c.mu.Lock()
	c.closed = true
	for t, cancel := range c.probes {
		cancel()
		delete(c.probes, t)
	}
	c.mu.Unlock()
	c.wg.Wait()
	if c.h2 != nil {
		c.h2.CloseIdleConnections()
	}
}

// run probes t every interval. The first probe comes after a random part of
// the interval, so that targets registered together are not probed in step.
func (c *Checker) run(ctx context.Context, t *target.Target, report func(*target.Target, target.Result)) {
	defer c.wg.Done()
	timer := time.NewTimer(rand.N(c.spec.Interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		// The result stands for the whole interval, however long the probe took.
		timer.Reset(c.spec.Interval)
		r := c.Probe(ctx, t.ID)
		if ctx.Err() != nil {
			return
		}
		report(t, r)
	}
}
