// Package health probes targets for their groups' active health checks.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/target"
)

// Checker probes the targets of one group, each on its own schedule, and
// reports the results to the group's state machine. It is the group's
// target.Checker: the group starts a target's probes when it registers it
// and stops them when it deregisters it.
type Checker struct {
	spec   config.HealthCheck
	client *http.Client

	mu     sync.Mutex
	probes map[*target.Target]context.CancelFunc
	closed bool
	wg     sync.WaitGroup
}

var _ target.Checker = (*Checker)(nil)

// maxBody caps how much of a probe's response body is read.
const maxBody = 64 << 10

// NewChecker returns a checker for spec; it probes nothing until Start.
// With http2, probes speak cleartext HTTP/2 with prior knowledge, as the
// group's requests do (protocol_version HTTP2).
func NewChecker(spec config.HealthCheck, http2 bool) *Checker {
	tr := &http.Transport{
		// As ALB does, and so that a probe measures a fresh connection.
		DisableKeepAlives:      true,
		DialContext:            (&net.Dialer{}).DialContext,
		MaxResponseHeaderBytes: maxBody,
	}
	if http2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	if spec.UserAgent == "" {
		// ALB's, when the spec names none: setting an empty User-Agent
		// header would make net/http send none.
		spec.UserAgent = config.DefaultHealthCheckUserAgent
	}
	return &Checker{
		spec:   spec,
		client: &http.Client{Transport: tr, CheckRedirect: noRedirects},
		probes: map[*target.Target]context.CancelFunc{},
	}
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
	c.client.CloseIdleConnections()
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

// Probe sends one health check to the target at addr.
func (c *Checker) Probe(ctx context.Context, addr string) target.Result {
	if c.spec.Port != 0 {
		host, _, _ := net.SplitHostPort(addr)
		addr = net.JoinHostPort(host, strconv.Itoa(c.spec.Port))
	}
	ctx, cancel := context.WithTimeout(ctx, c.spec.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+c.spec.Path, nil)
	if err != nil {
		return target.Result{Reason: target.ReasonInternalError, Description: err.Error()}
	}
	req.Header.Set("User-Agent", c.spec.UserAgent)
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return target.Result{Reason: target.ReasonTimeout, Description: "Request timed out"}
		}
		return target.Result{Reason: target.ReasonFailedHealthChecks, Description: "Health checks failed: " + unwrapAll(err).Error()}
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if !c.spec.Matcher.Match(resp.StatusCode) {
		return target.Result{Reason: target.ReasonResponseCodeMismatch,
			Description: fmt.Sprintf("Health checks failed with these codes: [%d]", resp.StatusCode)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return target.Result{Reason: target.ReasonTimeout, Description: "Request timed out"}
	}
	return target.Result{OK: true}
}

// unwrapAll drops url.Error's "Get <url>:" prefix and the like, keeping the
// innermost cause (for example "connect: connection refused").
func unwrapAll(err error) error {
	for {
		var op *net.OpError
		if errors.As(err, &op) {
			return op
		}
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
