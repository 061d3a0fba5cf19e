package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latch-lb/latch/internal/h2"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// collector turns the counters into metrics at scrape time, and reads the
// server's state for the gauges.
type collector struct{ m *Metrics }

var _ prometheus.Collector = collector{}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("latch_"+name, help, labels, nil)
}

var (
	lbl  = []string{"listener"}
	grp  = []string{"target_group"}
	tgt  = []string{"target_group", "target"}
	with = func(base []string, more ...string) []string { return append(append([]string{}, base...), more...) }

	dListenerRequests = desc("listener_requests_total",
		"Requests the listener answered or refused (ALB's RequestCount).", lbl...)
	dListenerTarget = desc("listener_target_responses_total",
		"Responses from targets relayed to clients, by status class (ALB's HTTPCode_Target_NXX_Count).", with(lbl, "code")...)
	dListenerLatch = desc("listener_latch_responses_total",
		"Responses latch made itself, by status class and cause (ALB's HTTPCode_ELB_NXX_Count).", with(lbl, "code", "cause")...)
	dListenerUnanswered = desc("listener_unanswered_requests_total",
		"Requests that got no response: the client went away first.", lbl...)
	dListenerBytesIn = desc("listener_request_body_bytes_total",
		"Bytes of request bodies received from clients.", lbl...)
	dListenerBytesOut = desc("listener_response_body_bytes_total",
		"Bytes of response bodies sent to clients.", lbl...)
	dListenerOpen = desc("listener_connections_open",
		"Client connections open (ALB's ActiveConnectionCount).", lbl...)
	dListenerOpened = desc("listener_connections_total",
		"Client connections accepted (ALB's NewConnectionCount).", lbl...)
	dListenerHandshakes = desc("listener_tls_handshakes_total",
		"TLS handshakes completed.", lbl...)
	dListenerHandshakeErrors = desc("listener_tls_handshake_errors_total",
		"TLS handshakes that failed or timed out (ALB's ClientTLSNegotiationErrorCount).", lbl...)
	dListenerDesync = desc("listener_desync_requests_total",
		"HTTP/1.x requests by desync classification (ALB's DesyncMitigationMode_NonCompliant_Request_Count: all but compliant).",
		with(lbl, "classification")...)
	dListenerDesyncBlocked = desc("listener_desync_blocked_requests_total",
		"Requests refused by desync mitigation.", lbl...)

	dGroupHealthy = desc("target_group_healthy_targets",
		"Targets in state healthy (ALB's HealthyHostCount).", grp...)
	dGroupUnhealthy = desc("target_group_unhealthy_targets",
		"Targets in state unhealthy (ALB's UnHealthyHostCount).", grp...)
	dGroupRetries = desc("target_group_retries_total",
		"Requests that failed on a target and were sent once more to another.", grp...)
	dGroupRetriesRefused = desc("target_group_retries_refused_total",
		"Requests whose retry was safe but refused by the group's retry budget.", grp...)
	dSticky = desc("sticky_requests_total",
		"Requests of sticky groups by what became of their session (ALB's NonStickyRequestCount: all but hit).",
		with(grp, "outcome", "reason")...)

	dTargetRequests = desc("target_requests_total",
		"Requests that ended on the target, answered by it or failed there; a retried one counts where it ended (ALB's RequestCountPerTarget).", tgt...)
	dTargetResponses = desc("target_responses_total",
		"The target's responses, by status class (ALB's HTTPCode_Target_NXX_Count).", with(tgt, "code")...)
	dTargetErrors = desc("target_errors_total",
		"latch's errors for requests the target failed, by cause (ALB's HTTPCode_ELB_502_Count and _504_Count).",
		with(tgt, "cause")...)
	dTargetTime = desc("target_response_time_seconds",
		"Time from sending a request to the target to its response head (ALB's TargetResponseTime).", tgt...)
	dTargetConnectFailures = desc("target_connect_failures_total",
		"Connections to the target that failed, retried ones included (ALB's TargetConnectionErrorCount).", tgt...)
	dTargetBytesIn = desc("target_request_body_bytes_total",
		"Bytes of request bodies of requests sent to the target.", tgt...)
	dTargetBytesOut = desc("target_response_body_bytes_total",
		"Bytes of response bodies relayed from the target.", tgt...)
	dTargetInflight = desc("target_inflight_requests",
		"Requests sent to the target and not yet answered in full.", tgt...)
	dTargetState = desc("target_state",
		"1 for the target's health state (ALB's names), 0 for the others.", with(tgt, "state")...)
	dTargetWeight = desc("target_weight",
		"The target's configured weight.", tgt...)
	dTargetEffectiveWeight = desc("target_effective_weight",
		"The weight new picks follow now, in units of configured weight (slow start and anomaly mitigation lower it).", tgt...)
	dTargetEjected = desc("target_ejected",
		"1 while passive health checking holds the target out.", tgt...)
	dTargetDrained = desc("target_drained",
		"1 while the target is drained at run time.", tgt...)

	dTargetSessions = desc("target_sessions",
		"Distinct sticky sessions the target served in the last 5 minutes (an estimate: a session or two off for small counts, about 6% for hundreds).", tgt...)
	dTargetDrainSessionsLeft = desc("target_drain_sessions_left",
		"While the target is drained at run time: distinct sessions seen on it within the drain's idle window (0 once complete).", tgt...)
	dTargetDrainComplete = desc("target_drain_complete",
		"While the target is drained at run time: 1 once its drain is complete (no session came for the idle window, or the deadline passed).", tgt...)
	dTargetDrainDeadline = desc("target_drain_deadline_timestamp_seconds",
		"While the target is drained with a deadline: when its sessions left move, in Unix seconds.", tgt...)

	dReloads = desc("config_reloads_total",
		"Config changes applied (result success) or refused (failure), by source: file (start, SIGHUP) or update (at run time).",
		"source", "result")
	dReloadLast = desc("config_last_reload_success_timestamp_seconds",
		"When the last config change was applied, in Unix seconds (0: none yet).")
	dEventsDropped = desc("metrics_events_dropped_total",
		"Server events the metrics fell behind on and missed: config reload counts may be short by as many.")

	dH2Conns = desc("listener_http2_connections_open",
		"HTTP/2 client connections open.", lbl...)
	dH2Streams = desc("listener_http2_streams_total",
		"HTTP/2 streams clients opened.", lbl...)
	dH2ClientResets = desc("listener_http2_client_resets_total",
		"HTTP/2 streams the client reset.", lbl...)
	dH2Refused = desc("listener_http2_refusals_total",
		"What the HTTP/2 engine refused, by cause: connections closed with GOAWAY (bad_preface, rapid_reset, continuation_flood, flood, ping_flood, settings_flood, write_stall, idle, protocol_error for any other), streams refused or reset (refused_stream, header_list_too_large, stall).",
		with(lbl, "cause")...)

	allDescs = []*prometheus.Desc{dH2Conns, dH2Streams, dH2ClientResets, dH2Refused, dListenerRequests, dListenerTarget, dListenerLatch, dListenerUnanswered,
		dListenerBytesIn, dListenerBytesOut, dListenerOpen, dListenerOpened, dListenerHandshakes,
		dListenerHandshakeErrors, dListenerDesync, dListenerDesyncBlocked, dGroupHealthy, dGroupUnhealthy,
		dGroupRetries, dGroupRetriesRefused, dSticky, dTargetRequests, dTargetResponses, dTargetErrors, dTargetTime,
		dTargetConnectFailures, dTargetBytesIn, dTargetBytesOut, dTargetInflight, dTargetState, dTargetWeight,
		dTargetEffectiveWeight, dTargetEjected, dTargetDrained, dTargetSessions, dTargetDrainSessionsLeft,
		dTargetDrainComplete, dTargetDrainDeadline, dReloads, dReloadLast, dEventsDropped}
)

// stateNames are target.State's names, every one a target_state series.
var stateNames = [...]string{
	target.Initial: "initial", target.Healthy: "healthy", target.Unhealthy: "unhealthy",
	target.Draining: "draining", target.Unused: "unused", target.Unavailable: "unavailable",
}

// stickyPairs are the outcome and reason pairs latch reports, each a
// sticky_requests_total series of every group from the start.
var stickyPairs = func() (p [][2]int) {
	p = append(p, [2]int{int(sticky.Stuck), 0}, [2]int{int(sticky.Started), 0})
	for r := sticky.TargetUnhealthy; r <= sticky.TargetFailed; r++ {
		p = append(p, [2]int{int(sticky.Moved), int(r)})
	}
	for r := sticky.BadValue; r <= sticky.NoSuchTarget; r++ {
		p = append(p, [2]int{int(sticky.Invalid), int(r)})
	}
	return p
}()

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	var sn *server.Snapshot
	if srv := m.srv.Load(); srv != nil {
		sn = srv.Snapshot()
		m.gather(srv, sn)
	}

	if srv := m.srv.Load(); srv != nil {
		srv.HTTP2Counters(func(name string, c *h2.Counters) {
			ch <- gauge(dH2Conns, float64(c.Conns.Load()), name)
			ch <- counter(dH2Streams, uint64(c.Streams.Load()), name)
			ch <- counter(dH2ClientResets, uint64(c.ClientResets.Load()), name)
			// The GOAWAYs for causes counted on their own; a connection
			// error of another kind is what ConnErrors has beyond them (a
			// write stall closes without a GOAWAY, and is not among them).
			attacks := c.RapidResets.Load() + c.ContinuationFloods.Load() + c.Floods.Load() + c.BadPreface.Load()
			for _, k := range []struct {
				cause string
				v     int64
			}{
				{"bad_preface", c.BadPreface.Load()}, {"rapid_reset", c.RapidResets.Load()},
				{"continuation_flood", c.ContinuationFloods.Load()}, {"flood", c.Floods.Load() - c.PingFloods.Load() - c.SettingsFloods.Load()},
				{"ping_flood", c.PingFloods.Load()}, {"settings_flood", c.SettingsFloods.Load()},
				{"write_stall", c.WriteStalls.Load()}, {"idle", c.IdleClosed.Load()},
				{"protocol_error", max(0, c.ConnErrors.Load()-attacks)},
				{"refused_stream", c.RefusedStreams.Load()}, {"header_list_too_large", c.HeaderListTooLarge.Load()},
				{"stall", c.Stalls.Load()},
			} {
				ch <- counter(dH2Refused, uint64(max(0, k.v)), name, k.cause)
			}
		})
	}
	for name, l := range m.listeners.load() {
		ch <- counter(dListenerRequests, l.requests.Load(), name)
		for k, code := range codeClasses {
			ch <- counter(dListenerTarget, l.target[k].Load(), name, code)
			for why := range numCauses {
				// Only the pairs that happened: most causes come with
				// one class, and 60 zero series a listener say nothing.
				if v := l.latch[k][why].Load(); v > 0 {
					ch <- counter(dListenerLatch, v, name, code, causeNames[why])
				}
			}
		}
		ch <- counter(dListenerUnanswered, l.unanswered.Load(), name)
		ch <- counter(dListenerBytesIn, l.bytesIn.Load(), name)
		ch <- counter(dListenerBytesOut, l.bytesOut.Load(), name)
		ch <- gauge(dListenerOpen, float64(l.open.Load()), name)
		ch <- counter(dListenerOpened, l.opened.Load(), name)
		ch <- counter(dListenerHandshakes, l.handshakes.Load(), name)
		ch <- counter(dListenerHandshakeErrors, l.hsErrors.Load(), name)
		for tier, tn := range tierNames {
			ch <- counter(dListenerDesync, l.desync[tier].Load(), name, tn)
		}
		ch <- counter(dListenerDesyncBlocked, l.desyncBlocked.Load(), name)
	}

	stickyGroups := map[string]bool{}
	if sn != nil && sn.Config != nil {
		for _, g := range sn.Config.TargetGroups {
			stickyGroups[g.Name] = g.Stickiness.Enabled
		}
	}
	for name, g := range m.groups.load() {
		ch <- counter(dGroupRetries, g.retries.Load(), name)
		ch <- counter(dGroupRetriesRefused, g.retriesRefused.Load(), name)
		// A group without stickiness has no sessions to report: its
		// series show only if it had some before a reload turned it off.
		all := sn == nil || stickyGroups[name]
		for _, p := range stickyPairs {
			if v := g.sticky[p[0]][p[1]].Load(); all || v > 0 {
				ch <- counter(dSticky, v, name, sticky.Outcome(p[0]).String(), reasonLabel(sticky.Reason(p[1])))
			}
		}
	}

	m.mu.Lock()
	stats := make([]*targetStats, 0, len(m.byName))
	conns := make([]uint64, 0, len(m.byName))
	for _, st := range m.byName {
		stats = append(stats, st)
		conns = append(conns, st.connectFailures)
	}
	m.mu.Unlock()
	for i, st := range stats {
		ch <- counter(dTargetRequests, st.requests.Load(), st.group, st.id)
		for k, code := range codeClasses {
			ch <- counter(dTargetResponses, st.codes[k].Load(), st.group, st.id, code)
		}
		for why := causeConnectFailed; why <= causeDeregistered; why++ {
			ch <- counter(dTargetErrors, st.errors[why].Load(), st.group, st.id, causeNames[why])
		}
		cum, count, sum := st.time.read()
		buckets := make(map[float64]uint64, numBuckets)
		for i, b := range bounds {
			buckets[b] = cum[i]
		}
		ch <- prometheus.MustNewConstHistogram(dTargetTime, count, sum, buckets, st.group, st.id)
		ch <- counter(dTargetConnectFailures, conns[i], st.group, st.id)
		ch <- counter(dTargetBytesIn, st.bytesIn.Load(), st.group, st.id)
		ch <- counter(dTargetBytesOut, st.bytesOut.Load(), st.group, st.id)
	}

	if sn != nil {
		collectState(ch, sn)
	}

	r := &m.reloads
	for i, src := range sourceNames {
		ch <- counter(dReloads, r.applied[i].Load(), string(src), "success")
		ch <- counter(dReloads, r.refused[i].Load(), string(src), "failure")
	}
	last := 0.0
	if ns := r.last.Load(); ns != 0 {
		last = float64(ns) / 1e9
	}
	ch <- gauge(dReloadLast, last)
	var dropped uint64
	if sub := r.sub.Load(); sub != nil {
		dropped = sub.Dropped()
	}
	ch <- counter(dEventsDropped, dropped)
}

// reasonLabel is a reason's label value: "" for none (hit, new).
func reasonLabel(r sticky.Reason) string {
	if r == sticky.NoReason {
		return ""
	}
	return r.String()
}

// gather brings the counters in line with the server's targets, listeners
// and groups: every one of them has its series from the start (at zero),
// and those gone are dropped. It adds what each target counted of its
// connect failures since the last scrape, so that the count runs on across
// registrations.
func (m *Metrics) gather(srv *server.Server, sn *server.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.byName {
		st.live = false
	}
	live := map[*target.Target]bool{}
	srv.EachTarget(func(group string, t *target.Target) {
		ref := m.refLocked(t, group)
		live[t] = true
		ref.st.live = true
		_, _, fails := t.Outcomes()
		if fails > ref.seenFail {
			ref.st.connectFailures += fails - ref.seenFail
			ref.seenFail = fails
		}
	})
	m.targets.Range(func(k, _ any) bool {
		if !live[k.(*target.Target)] {
			m.targets.Delete(k)
		}
		return true
	})
	for key, st := range m.byName {
		if !st.live {
			delete(m.byName, key)
		}
	}
	groups := map[string]bool{}
	for _, g := range sn.Groups {
		groups[g.Name] = true
		m.groups.get(g.Name)
	}
	m.groups.keep(func(name string) bool { return groups[name] })
	listeners := map[string]bool{}
	for _, l := range sn.Listeners {
		listeners[l.Name] = true
		m.listeners.get(l.Name)
	}
	m.listeners.keep(func(name string) bool { return listeners[name] })
}

// collectState reports the targets' state as the snapshot has it. A target
// deregistered and registered anew may be there twice (the new one, and
// the old one draining): the first, the registered one, speaks for its id.
func collectState(ch chan<- prometheus.Metric, sn *server.Snapshot) {
	for _, g := range sn.Groups {
		var healthy, unhealthy int
		seen := make(map[string]bool, len(g.Targets))
		for _, t := range g.Targets {
			if seen[t.ID] {
				continue
			}
			seen[t.ID] = true
			switch t.State {
			case target.Healthy:
				healthy++
			case target.Unhealthy:
				unhealthy++
			}
			ch <- gauge(dTargetInflight, float64(t.Inflight), g.Name, t.ID)
			for st, name := range stateNames {
				ch <- gauge(dTargetState, b2f(t.State == target.State(st)), g.Name, t.ID, name)
			}
			ch <- gauge(dTargetWeight, float64(t.Weight), g.Name, t.ID)
			ch <- gauge(dTargetEffectiveWeight, float64(t.EffectiveWeight)/target.WeightUnit, g.Name, t.ID)
			ch <- gauge(dTargetEjected, b2f(t.Ejected), g.Name, t.ID)
			ch <- gauge(dTargetDrained, b2f(t.Drained), g.Name, t.ID)
			ch <- gauge(dTargetSessions, float64(t.Sessions), g.Name, t.ID)
			if d := t.Drain; d != nil {
				ch <- gauge(dTargetDrainSessionsLeft, float64(d.SessionsLeft), g.Name, t.ID)
				ch <- gauge(dTargetDrainComplete, b2f(d.Complete), g.Name, t.ID)
				if !d.Deadline.IsZero() {
					ch <- gauge(dTargetDrainDeadline, float64(d.Deadline.UnixNano())/1e9, g.Name, t.ID)
				}
			}
		}
		ch <- gauge(dGroupHealthy, float64(healthy), g.Name)
		ch <- gauge(dGroupUnhealthy, float64(unhealthy), g.Name)
	}
}
