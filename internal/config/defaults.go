package config

import "time"

// ALB's defaults, for configs built in Go and for the decoder, which starts
// every listener, target group and health check from them: the file's
// defaults and Go's are one set.

// DefaultHealthCheckUserAgent is ALB's health check User-Agent, the
// default of health_check.user_agent.
const DefaultHealthCheckUserAgent = "ELB-HealthChecker/2.0"

// defaultStateDir is state_dir's default, relative to the config file.
const defaultStateDir = "latch-state"

// DefaultListener returns an HTTP listener with every attribute at its
// default (a 60 s idle timeout, defensive desync mitigation, X-Forwarded-For
// appended, X-Amzn-Trace-Id, HTTP/2 on...). Its Name, Address and
// DefaultAction are left for the caller.
func DefaultListener() Listener {
	var l Listener
	applyDefaults(&l, listenerAttributes)
	return l
}

// DefaultTargetGroup returns a target group with ALB's defaults for
// everything: every attribute's default (round robin, stickiness off and of
// type lb_cookie, cookie AWSALB with its CORS twin and Path /, durations of
// a day, a 300 s deregistration delay...), protocol version HTTP1 and
// DefaultHealthCheck. Its Name and Targets are left for the caller.
func DefaultTargetGroup() TargetGroup {
	g := TargetGroup{HealthCheck: DefaultHealthCheck()}
	applyDefaults(&g, groupAttributes)
	return g
}

// DefaultHealthCheck returns ALB's default health check of an HTTP target
// group: GET / on the traffic port every 30 s, a 5 s timeout, healthy after
// 5 successes and unhealthy after 2 failures, success on 200.
func DefaultHealthCheck() HealthCheck {
	return HealthCheck{
		Enabled: true, Protocol: HTTP, Path: "/",
		Interval: 30 * time.Second, Timeout: 5 * time.Second,
		HealthyThreshold: 5, UnhealthyThreshold: 2,
		Matcher: Matcher{{200, 200}}, UserAgent: DefaultHealthCheckUserAgent,
	}
}
