package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// An attribute is one key of a target group's or listener's attributes map:
// AWS's own keys verbatim, and latch's extensions in the same dotted style.
type attribute[T any] struct {
	key   string
	def   string // applied before the user's values
	latch bool   // latch's own extension, not an ALB key
	set   func(dst *T, v string) error
}

// groupAttributes lists every target-group attribute latch understands.
// Ranges and defaults are ALB's (../shared/alb-semantics.md §1-3) unless the
// attribute is latch's own.
var groupAttributes = []attribute[TargetGroup]{
	{key: "stickiness.enabled", def: "false", set: func(g *TargetGroup, v string) (err error) {
		g.Stickiness.Enabled, err = parseBool(v)
		return err
	}},
	{key: "stickiness.type", def: "lb_cookie", set: func(g *TargetGroup, v string) error {
		types := []string{"lb_cookie", "app_cookie", "header", "source_ip", "hash"}
		if v == "source_ip_dest_ip" || v == "source_ip_dest_ip_proto" {
			return fmt.Errorf("%q is a Gateway Load Balancer type; an HTTP balancer offers %s", v, strings.Join(types, ", "))
		}
		if err := oneOf(v, types); err != nil {
			return err
		}
		g.Stickiness.Type = v
		return nil
	}},
	{key: "stickiness.app_cookie.cookie_name", def: "", set: func(g *TargetGroup, v string) error {
		if v != "" {
			if err := checkCookieName(v); err != nil {
				return err
			}
			if strings.HasPrefix(v, "AWSALB") {
				return fmt.Errorf("%q starts with AWSALB, a prefix ALB reserves (AWSALB, AWSALBAPP, AWSALBTG)", v)
			}
		}
		g.Stickiness.AppCookie = v
		return nil
	}},
	{key: "stickiness.app_cookie.duration_seconds", def: "86400", set: func(g *TargetGroup, v string) (err error) {
		g.appDuration, err = parseSeconds(v, 1, 604800, false)
		return err
	}},
	{key: "stickiness.header.name", def: "", latch: true, set: func(g *TargetGroup, v string) error {
		if v != "" && !isToken(v) {
			return fmt.Errorf("%q is not a valid header name", v)
		}
		switch strings.ToLower(v) {
		case "host", "cookie", "set-cookie", "connection", "content-length", "transfer-encoding", "te", "upgrade", "keep-alive":
			return fmt.Errorf("%q is a header latch or HTTP itself uses; pick another name, such as X-Session", v)
		}
		g.Stickiness.Header = v
		return nil
	}},
	{key: "stickiness.header.duration_seconds", def: "86400", latch: true, set: func(g *TargetGroup, v string) (err error) {
		g.headerDuration, err = parseSeconds(v, 1, 604800, false)
		return err
	}},
	{key: "stickiness.absolute_timeout_seconds", def: "0", latch: true, set: func(g *TargetGroup, v string) (err error) {
		if v == "0" {
			g.Stickiness.AbsoluteTimeout = 0
			return nil
		}
		g.Stickiness.AbsoluteTimeout, err = parseSeconds(v, 1, 31536000, false)
		if err != nil {
			return fmt.Errorf("%w, or 0 for none", err)
		}
		return nil
	}},
	{key: "stickiness.lb_cookie.lifetime", def: "permanent", latch: true, set: func(g *TargetGroup, v string) error {
		if err := oneOf(v, []string{"permanent", "session"}); err != nil {
			return err
		}
		g.Stickiness.Cookie.Session = v == "session"
		return nil
	}},
	{key: "stickiness.hash.header", def: "", latch: true, set: func(g *TargetGroup, v string) error {
		if v != "" && !isToken(v) {
			return fmt.Errorf("%q is not a valid header name", v)
		}
		g.Stickiness.HashHeader = v
		return nil
	}},
	{key: "stickiness.hash.cookie", def: "", latch: true, set: func(g *TargetGroup, v string) error {
		if v != "" {
			if err := checkCookieName(v); err != nil {
				return err
			}
		}
		g.Stickiness.HashCookie = v
		return nil
	}},
	{key: "stickiness.source_ip.trusted_proxies", def: "", latch: true, set: func(g *TargetGroup, v string) error {
		g.Stickiness.TrustedProxies = nil
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				a, aerr := netip.ParseAddr(part)
				if aerr != nil {
					return fmt.Errorf("%q is not an address or CIDR", part)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			g.Stickiness.TrustedProxies = append(g.Stickiness.TrustedProxies, p.Masked())
		}
		return nil
	}},
	{key: "stickiness.balance_factor", def: "0", latch: true, set: func(g *TargetGroup, v string) (err error) {
		g.Stickiness.BalanceFactor, err = parseFactor(v)
		return err
	}},
	{key: "stickiness.rebalance_idle_seconds", def: "0", latch: true, set: func(g *TargetGroup, v string) (err error) {
		if v == "0" {
			g.Stickiness.RebalanceIdle = 0
			return nil
		}
		g.Stickiness.RebalanceIdle, err = parseSeconds(v, 1, 604800, true)
		if err != nil {
			return fmt.Errorf("%w, or 0 for never", err)
		}
		return nil
	}},
	{key: "load_balancing.hash.balance_factor", def: "0", latch: true, set: func(g *TargetGroup, v string) (err error) {
		g.HashBalanceFactor, err = parseFactor(v)
		return err
	}},
	{key: "slow_start.duration_seconds", def: "0", set: func(g *TargetGroup, v string) (err error) {
		if v == "0" {
			g.SlowStart = 0
			return nil
		}
		g.SlowStart, err = parseSeconds(v, 30, 900, false)
		if err != nil {
			return fmt.Errorf("%w, or 0 for off", err)
		}
		return nil
	}},
	{key: "load_balancing.algorithm.anomaly_mitigation", def: "off", set: func(g *TargetGroup, v string) error {
		switch v {
		case "on", "off":
			g.AnomalyMitigation = v == "on"
			return nil
		}
		return fmt.Errorf("%q is not on or off", v)
	}},
	{key: "stickiness.lb_cookie.duration_seconds", def: "86400", set: func(g *TargetGroup, v string) (err error) {
		g.Stickiness.Duration, err = parseSeconds(v, 1, 604800, false)
		return err
	}},
	{key: "stickiness.lb_cookie.name", def: "AWSALB", latch: true, set: func(g *TargetGroup, v string) error {
		if err := checkCookieName(v); err != nil {
			return err
		}
		g.Stickiness.Cookie.Name = v
		return nil
	}},
	{key: "stickiness.lb_cookie.cors_cookie.enabled", def: "true", latch: true, set: func(g *TargetGroup, v string) (err error) {
		g.Stickiness.Cookie.CORS, err = parseBool(v)
		return err
	}},
	{key: "stickiness.lb_cookie.secure", def: "false", latch: true, set: func(g *TargetGroup, v string) (err error) {
		g.Stickiness.Cookie.Secure, err = parseBool(v)
		return err
	}},
	{key: "stickiness.lb_cookie.http_only", def: "false", latch: true, set: func(g *TargetGroup, v string) (err error) {
		g.Stickiness.Cookie.HTTPOnly, err = parseBool(v)
		return err
	}},
	{key: "stickiness.lb_cookie.same_site", def: "", latch: true, set: func(g *TargetGroup, v string) error {
		for _, s := range []string{"", "Lax", "Strict", "None"} {
			if strings.EqualFold(v, s) {
				g.Stickiness.Cookie.SameSite = s
				return nil
			}
		}
		return fmt.Errorf("%q is not one of Lax, Strict, None (or empty for none)", v)
	}},
	{key: "stickiness.lb_cookie.domain", def: "", latch: true, set: func(g *TargetGroup, v string) error {
		if strings.ContainsAny(v, ";, \t\r\n\"") {
			return fmt.Errorf("%q is not a cookie domain", v)
		}
		g.Stickiness.Cookie.Domain = v
		return nil
	}},
	{key: "stickiness.lb_cookie.path", def: "/", latch: true, set: func(g *TargetGroup, v string) error {
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "; \t\r\n") {
			return fmt.Errorf("%q is not a cookie path (it must start with / and hold no ';' or spaces)", v)
		}
		g.Stickiness.Cookie.Path = v
		return nil
	}},
	{key: "load_balancing.algorithm.type", def: "round_robin", set: func(g *TargetGroup, v string) error {
		if err := oneOf(v, []string{"round_robin", "least_outstanding_requests", "weighted_random"}); err != nil {
			return err
		}
		g.Algorithm = v
		return nil
	}},
	{key: "deregistration_delay.timeout_seconds", def: "300", set: func(g *TargetGroup, v string) (err error) {
		g.DeregistrationDelay, err = parseSeconds(v, 0, 3600, true)
		return err
	}},
	{key: "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", def: "1", set: func(g *TargetGroup, v string) (err error) {
		g.MinHealthyCount, err = parseInt(v, 1, math.MaxInt32)
		return err
	}},
	{key: "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", def: "off", set: func(g *TargetGroup, v string) (err error) {
		if v == "off" {
			g.MinHealthyPercent = 0
			return nil
		}
		g.MinHealthyPercent, err = parseInt(v, 1, 100)
		if err != nil {
			return fmt.Errorf("%w, or off", err)
		}
		return nil
	}},
	{key: "target_connect.timeout_seconds", def: "10", latch: true, set: func(g *TargetGroup, v string) (err error) {
		g.ConnectTimeout, err = parseSeconds(v, 0.05, 120, true)
		return err
	}},
}

// listenerAttributes lists the load-balancer attributes latch applies per listener.
var listenerAttributes = []attribute[Listener]{
	{key: "idle_timeout.timeout_seconds", def: "60", set: func(l *Listener, v string) (err error) {
		l.IdleTimeout, err = parseSeconds(v, 0.05, 4000, true)
		return err
	}},
	{key: "routing.http.desync_mitigation_mode", def: "defensive", set: func(l *Listener, v string) error {
		if err := oneOf(v, []string{"monitor", "defensive", "strictest"}); err != nil {
			return err
		}
		l.DesyncMode = v
		return nil
	}},
	{key: "routing.http2.h2c.enabled", def: "false", latch: true, set: func(l *Listener, v string) (err error) {
		l.H2C, err = parseBool(v)
		return err
	}},
	{key: "routing.http.xff_header_processing.mode", def: "append", set: func(l *Listener, v string) error {
		if err := oneOf(v, []string{"append", "preserve", "remove"}); err != nil {
			return err
		}
		l.XFFMode = v
		return nil
	}},
	{key: "routing.http.xff_client_port.enabled", def: "false", set: func(l *Listener, v string) (err error) {
		l.XFFClientPort, err = parseBool(v)
		return err
	}},
	{key: "routing.http.drop_invalid_header_fields.enabled", def: "false", set: func(l *Listener, v string) (err error) {
		l.DropInvalidHeaders, err = parseBool(v)
		return err
	}},
	{key: "routing.http.preserve_host_header.enabled", def: "true", set: func(l *Listener, v string) error {
		// ALB's default, false, rewrites the Host's port to the listener's;
		// latch always forwards Host as the client sent it.
		if v != "true" {
			return fmt.Errorf("%q: latch always forwards the Host header as the client sent it (this attribute can only be true)", v)
		}
		return nil
	}},
	{key: "routing.http.trace_header.name", def: "X-Amzn-Trace-Id", latch: true, set: func(l *Listener, v string) error {
		if v != "" && !isToken(v) {
			return fmt.Errorf("%q is not a valid header name (or empty, for none)", v)
		}
		l.TraceHeader = v
		return nil
	}},
	{key: "routing.http2.enabled", def: "true", set: func(l *Listener, v string) (err error) {
		l.HTTP2, err = parseBool(v)
		return err
	}},
}

// notYet lists ALB attribute keys that latch recognises but does not
// implement yet, so that a user moving from ALB gets a plain answer instead
// of a "did you mean".
var notYet = map[string]bool{
	"load_balancing.cross_zone.enabled":                                   true,
	"target_group_health.dns_failover.minimum_healthy_targets.count":      true,
	"target_group_health.dns_failover.minimum_healthy_targets.percentage": true,
	"lambda.multi_value_headers.enabled":                                  true,
	"client_keep_alive.seconds":                                           true,
}

func attributeKeys[T any](attrs []attribute[T]) []string {
	keys := make([]string, len(attrs))
	for i, a := range attrs {
		keys[i] = a.key
	}
	return keys
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside %d-%d", n, lo, hi)
	}
	return n, nil
}

// parseSeconds parses a duration in seconds within [lo, hi]. Where fraction
// is allowed, latch accepts fractions of a second (down to lo) so that tests
// and laptops need not wait whole seconds.
func parseSeconds(v string, lo, hi float64, fraction bool) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number of seconds", v)
	}
	if !fraction && f != math.Trunc(f) {
		return 0, fmt.Errorf("%s is not a whole number of seconds", v)
	}
	if f < lo || f > hi {
		return 0, fmt.Errorf("%s is outside %s-%s seconds", v, strconv.FormatFloat(lo, 'f', -1, 64), strconv.FormatFloat(hi, 'f', -1, 64))
	}
	return time.Duration(f * float64(time.Second)), nil
}

// parseFactor parses a balance factor: 0 (off) or a number above 1, at
// most 10.
func parseFactor(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a number", v)
	}
	if f != 0 && (f <= 1 || f > 10) {
		return 0, fmt.Errorf("%s is outside 1-10 (exclusive of 1), or 0 for off", v)
	}
	return f, nil
}

// isToken reports whether v is an RFC 9110 token (a header name).
func isToken(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !isTokenChar(v[i]) {
			return false
		}
	}
	return true
}

// checkCookieName enforces RFC 6265's token syntax, and keeps latch's cookie
// from colliding with ALB's other reserved names.
func checkCookieName(v string) error {
	if v == "" {
		return fmt.Errorf("empty cookie name")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isTokenChar(c) {
			return fmt.Errorf("%q is not a valid cookie name (character %q)", v, c)
		}
	}
	for _, p := range []string{"AWSALBAPP", "AWSALBTG"} {
		if strings.HasPrefix(v, p) {
			return fmt.Errorf("%q starts with %s, which ALB reserves for other cookies", v, p)
		}
	}
	return nil
}
