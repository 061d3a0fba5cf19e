package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/desync"
)

// An attribute is one key of a target group's or listener's attributes map:
// AWS's own keys verbatim, and latch's extensions in the same dotted style.
// One table per kind serves the decoder, DefaultTargetGroup and
// DefaultListener, Attributes and SetAttribute, and Validate, so that a
// file, a Go caller and the admin API see one set of keys, defaults and
// checks.
type attribute[T any] struct {
	key   string
	def   string // the default, applied by DefaultTargetGroup and DefaultListener
	latch bool   // latch's own extension, not an ALB key
	// get renders the field as a file writes it, in a form set reads back
	// exactly.
	get func(src *T) string
	// set parses v into the field. It refuses only what the field cannot
	// hold; ranges and the like are check's.
	set func(dst *T, v string) error
	// check returns Validate's message about the field, or "". Nil when the
	// field's type allows nothing wrong.
	check func(src *T) string
}

// groupAttributes lists every target-group attribute latch understands.
// Ranges and defaults are ALB's (../shared/alb-semantics.md §1-3) unless the
// attribute is latch's own.
var groupAttributes = []attribute[TargetGroup]{
	boolAttr("stickiness.enabled", "false", false, func(g *TargetGroup) *bool { return &g.Stickiness.Enabled }),
	{key: "stickiness.type", def: "lb_cookie",
		get: func(g *TargetGroup) string { return g.Stickiness.Type.String() },
		set: func(g *TargetGroup, v string) error { return g.Stickiness.Type.set(v) },
		check: func(g *TargetGroup) string {
			if !g.Stickiness.Type.valid() {
				return enumProblem(g.Stickiness.Type, stickinessTypeNames)
			}
			return ""
		}},
	stringAttr("stickiness.app_cookie.cookie_name", "", false, func(g *TargetGroup) *string { return &g.Stickiness.AppCookie },
		func(v string) string {
			if v == "" {
				return ""
			}
			if msg := checkCookieName(v); msg != "" {
				return msg
			}
			if strings.HasPrefix(v, "AWSALB") {
				return fmt.Sprintf("%q starts with AWSALB, a prefix ALB reserves (AWSALB, AWSALBAPP, AWSALBTG)", v)
			}
			return ""
		}),
	secondsAttr("stickiness.app_cookie.duration_seconds", "86400", false, stickinessDuration,
		func(g *TargetGroup) *time.Duration { return &g.Stickiness.AppCookieDuration }),
	stringAttr("stickiness.header.name", "", true, func(g *TargetGroup) *string { return &g.Stickiness.Header },
		func(v string) string {
			if v != "" && !isToken(v) {
				return fmt.Sprintf("%q is not a valid header name", v)
			}
			switch strings.ToLower(v) {
			case "host", "cookie", "set-cookie", "connection", "content-length", "transfer-encoding", "te", "upgrade", "keep-alive":
				return fmt.Sprintf("%q is a header latch or HTTP itself uses; pick another name, such as X-Session", v)
			}
			return ""
		}),
	secondsAttr("stickiness.header.duration_seconds", "86400", true, stickinessDuration,
		func(g *TargetGroup) *time.Duration { return &g.Stickiness.HeaderDuration }),
	secondsAttr("stickiness.absolute_timeout_seconds", "0", true, seconds{lo: 1, hi: 31536000, whole: true, zero: "none"},
		func(g *TargetGroup) *time.Duration { return &g.Stickiness.AbsoluteTimeout }),
	{key: "stickiness.lb_cookie.lifetime", def: "permanent", latch: true,
		get: func(g *TargetGroup) string {
			if g.Stickiness.Cookie.Session {
				return "session"
			}
			return "permanent"
		},
		set: func(g *TargetGroup, v string) error {
			if err := oneOf(v, []string{"permanent", "session"}); err != nil {
				return err
			}
			g.Stickiness.Cookie.Session = v == "session"
			return nil
		}},
	stringAttr("stickiness.hash.header", "", true, func(g *TargetGroup) *string { return &g.Stickiness.HashHeader },
		func(v string) string {
			if v != "" && !isToken(v) {
				return fmt.Sprintf("%q is not a valid header name", v)
			}
			return ""
		}),
	stringAttr("stickiness.hash.cookie", "", true, func(g *TargetGroup) *string { return &g.Stickiness.HashCookie },
		func(v string) string {
			if v == "" {
				return ""
			}
			return checkCookieName(v)
		}),
	{key: "stickiness.source_ip.trusted_proxies", def: "", latch: true,
		get: func(g *TargetGroup) string {
			parts := make([]string, len(g.Stickiness.TrustedProxies))
			for i, p := range g.Stickiness.TrustedProxies {
				parts[i] = p.String()
			}
			return strings.Join(parts, ",")
		},
		set: func(g *TargetGroup, v string) error {
			var ps []netip.Prefix
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
				ps = append(ps, p.Masked())
			}
			g.Stickiness.TrustedProxies = ps
			return nil
		},
		check: func(g *TargetGroup) string {
			for _, p := range g.Stickiness.TrustedProxies {
				switch {
				case !p.IsValid():
					return "holds an invalid netip.Prefix (the zero value?)"
				case p != p.Masked():
					return fmt.Sprintf("%q has bits set after the prefix length; did you mean %q?", p.String(), p.Masked().String())
				}
			}
			return ""
		}},
	factorAttr("stickiness.balance_factor", func(g *TargetGroup) *float64 { return &g.Stickiness.BalanceFactor }),
	secondsAttr("stickiness.rebalance_idle_seconds", "0", true, seconds{lo: 1, hi: 604800, zero: "never"},
		func(g *TargetGroup) *time.Duration { return &g.Stickiness.RebalanceIdle }),
	factorAttr("load_balancing.hash.balance_factor", func(g *TargetGroup) *float64 { return &g.HashBalanceFactor }),
	secondsAttr("slow_start.duration_seconds", "0", false, seconds{lo: 30, hi: 900, whole: true, zero: "off"},
		func(g *TargetGroup) *time.Duration { return &g.SlowStart }),
	{key: "load_balancing.algorithm.anomaly_mitigation", def: "off",
		get: func(g *TargetGroup) string {
			if g.AnomalyMitigation {
				return "on"
			}
			return "off"
		},
		set: func(g *TargetGroup, v string) error {
			switch v {
			case "on", "off":
				g.AnomalyMitigation = v == "on"
				return nil
			}
			return fmt.Errorf("%q is not on or off", v)
		}},
	secondsAttr("stickiness.lb_cookie.duration_seconds", "86400", false, stickinessDuration,
		func(g *TargetGroup) *time.Duration { return &g.Stickiness.LBCookieDuration }),
	stringAttr("stickiness.lb_cookie.name", "AWSALB", true, func(g *TargetGroup) *string { return &g.Stickiness.Cookie.Name },
		checkCookieName),
	boolAttr("stickiness.lb_cookie.cors_cookie.enabled", "true", true, func(g *TargetGroup) *bool { return &g.Stickiness.Cookie.CORS }),
	boolAttr("stickiness.lb_cookie.secure", "false", true, func(g *TargetGroup) *bool { return &g.Stickiness.Cookie.Secure }),
	boolAttr("stickiness.lb_cookie.http_only", "false", true, func(g *TargetGroup) *bool { return &g.Stickiness.Cookie.HTTPOnly }),
	{key: "stickiness.lb_cookie.same_site", def: "", latch: true,
		get: func(g *TargetGroup) string { return g.Stickiness.Cookie.SameSite.String() },
		set: func(g *TargetGroup, v string) error { return g.Stickiness.Cookie.SameSite.set(v) },
		check: func(g *TargetGroup) string {
			if s := g.Stickiness.Cookie.SameSite; !s.valid() {
				return fmt.Sprintf("%v is not one of Lax, Strict, None (or SameSiteUnset, for none)", s)
			}
			return ""
		}},
	stringAttr("stickiness.lb_cookie.domain", "", true, func(g *TargetGroup) *string { return &g.Stickiness.Cookie.Domain },
		func(v string) string {
			if strings.ContainsAny(v, ";, \t\r\n\"") {
				return fmt.Sprintf("%q is not a cookie domain", v)
			}
			return ""
		}),
	stringAttr("stickiness.lb_cookie.path", "/", true, func(g *TargetGroup) *string { return &g.Stickiness.Cookie.Path },
		func(v string) string {
			if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "; \t\r\n") {
				return fmt.Sprintf("%q is not a cookie path (it must start with / and hold no ';' or spaces)", v)
			}
			return ""
		}),
	{key: "load_balancing.algorithm.type", def: "round_robin",
		get: func(g *TargetGroup) string { return g.Algorithm.String() },
		set: func(g *TargetGroup, v string) error { return g.Algorithm.set(v) },
		check: func(g *TargetGroup) string {
			if !g.Algorithm.valid() {
				return enumProblem(g.Algorithm, algorithmNames)
			}
			return ""
		}},
	secondsAttr("deregistration_delay.timeout_seconds", "300", false, seconds{lo: 0, hi: 3600},
		func(g *TargetGroup) *time.Duration { return &g.DeregistrationDelay }),
	{key: "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", def: "1",
		get: func(g *TargetGroup) string { return strconv.Itoa(g.MinHealthyCount) },
		set: func(g *TargetGroup, v string) error {
			n, err := parseInt(v)
			if err == nil {
				g.MinHealthyCount = n
			}
			return err
		},
		check: func(g *TargetGroup) string { return checkRange(g.MinHealthyCount, 1, math.MaxInt32, "") }},
	{key: "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", def: "off",
		get: func(g *TargetGroup) string {
			if g.MinHealthyPercent == 0 {
				return "off"
			}
			return strconv.Itoa(g.MinHealthyPercent)
		},
		set: func(g *TargetGroup, v string) error {
			if v == "off" {
				g.MinHealthyPercent = 0
				return nil
			}
			n, err := parseInt(v)
			switch {
			case err != nil:
				return fmt.Errorf("%w, or off", err)
			case n == 0:
				// 0 is how the field spells off; a file's 0 is a mistake.
				return errors.New(checkRange(n, 1, 100, ", or off"))
			}
			g.MinHealthyPercent = n
			return nil
		},
		check: func(g *TargetGroup) string {
			if g.MinHealthyPercent == 0 {
				return ""
			}
			return checkRange(g.MinHealthyPercent, 1, 100, ", or off")
		}},
	secondsAttr("target_connect.timeout_seconds", "10", true, seconds{lo: 0.05, hi: 120},
		func(g *TargetGroup) *time.Duration { return &g.ConnectTimeout }),
	boolAttr("passive_health.enabled", "true", true, func(g *TargetGroup) *bool { return &g.PassiveHealth.Enabled }),
	intAttr("passive_health.consecutive_failures", "3", 1, 1000, func(g *TargetGroup) *int { return &g.PassiveHealth.ConsecutiveFailures }),
	boolAttr("passive_health.target_5xx.enabled", "false", true, func(g *TargetGroup) *bool { return &g.PassiveHealth.Target5xx }),
	secondsAttr("passive_health.ejection_seconds", "30", true, seconds{lo: 0.05, hi: 3600},
		func(g *TargetGroup) *time.Duration { return &g.PassiveHealth.Ejection }),
	secondsAttr("passive_health.max_ejection_seconds", "300", true, seconds{lo: 0.05, hi: 86400},
		func(g *TargetGroup) *time.Duration { return &g.PassiveHealth.MaxEjection }),
	intAttr("passive_health.max_ejected_percent", "50", 0, 100, func(g *TargetGroup) *int { return &g.PassiveHealth.MaxEjectedPercent }),
	boolAttr("retry.idempotent.enabled", "true", true, func(g *TargetGroup) *bool { return &g.Retry.Idempotent }),
	boolAttr("retry.on_timeout.enabled", "false", true, func(g *TargetGroup) *bool { return &g.Retry.OnTimeout }),
	intAttr("retry.budget.percent", "20", 0, 100, func(g *TargetGroup) *int { return &g.Retry.BudgetPercent }),
	intAttr("retry.budget.min_per_second", "10", 0, 10000, func(g *TargetGroup) *int { return &g.Retry.BudgetPerSecond }),
}

// stickinessDuration is the range of ALB's stickiness durations: 1 s to 7
// days, in whole seconds.
var stickinessDuration = seconds{lo: 1, hi: 604800, whole: true}

// listenerAttributes lists the load-balancer attributes latch applies per listener.
var listenerAttributes = []attribute[Listener]{
	secondsAttr("idle_timeout.timeout_seconds", "60", false, seconds{lo: 0.05, hi: 4000},
		func(l *Listener) *time.Duration { return &l.IdleTimeout }),
	{key: "routing.http.desync_mitigation_mode", def: "defensive",
		get: func(l *Listener) string { return l.DesyncMode.String() },
		set: func(l *Listener, v string) error {
			// ALB's order, for the message; desync.ParseMode's own is for flags.
			if err := oneOf(v, []string{"monitor", "defensive", "strictest"}); err != nil {
				return err
			}
			m, err := desync.ParseMode(v)
			if err == nil {
				l.DesyncMode = m
			}
			return err
		},
		check: func(l *Listener) string {
			if _, err := l.DesyncMode.MarshalText(); err != nil {
				return fmt.Sprintf("%v is not one of monitor, defensive, strictest", l.DesyncMode)
			}
			return ""
		}},
	boolAttr("routing.http2.h2c.enabled", "false", true, func(l *Listener) *bool { return &l.H2C }),
	{key: "routing.http.xff_header_processing.mode", def: "append",
		get: func(l *Listener) string { return l.XFFMode.String() },
		set: func(l *Listener, v string) error { return l.XFFMode.set(v) },
		check: func(l *Listener) string {
			if !l.XFFMode.valid() {
				return enumProblem(l.XFFMode, xffModeNames)
			}
			return ""
		}},
	boolAttr("routing.http.xff_client_port.enabled", "false", false, func(l *Listener) *bool { return &l.XFFClientPort }),
	boolAttr("routing.http.drop_invalid_header_fields.enabled", "false", false, func(l *Listener) *bool { return &l.DropInvalidHeaders }),
	{key: "routing.http.preserve_host_header.enabled", def: "true",
		get: func(*Listener) string { return "true" },
		set: func(_ *Listener, v string) error {
			// ALB's default, false, rewrites the Host's port to the listener's;
			// latch always forwards Host as the client sent it.
			if v != "true" {
				return fmt.Errorf("%q: latch always forwards the Host header as the client sent it (this attribute can only be true)", v)
			}
			return nil
		}},
	stringAttr("routing.http.trace_header.name", "X-Amzn-Trace-Id", true, func(l *Listener) *string { return &l.TraceHeader },
		func(v string) string {
			if v != "" && !isToken(v) {
				return fmt.Sprintf("%q is not a valid header name (or empty, for none)", v)
			}
			return ""
		}),
	boolAttr("routing.http2.enabled", "true", false, func(l *Listener) *bool { return &l.HTTP2 }),
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

// Attributes returns every attribute of the group as its file would write
// it: key -> value in canonical form ("true", "86400", "round_robin", "0.5"
// for fractional seconds, "off"/"on", comma-separated CIDRs...), as ALB's
// DescribeTargetGroupAttributes. SetAttribute reads each value back
// exactly.
func (g *TargetGroup) Attributes() map[string]string { return attributeMap(groupAttributes, g) }

// SetAttribute sets one attribute from its string form exactly as the
// file's attributes map does: an unknown key gets "unknown attribute" (with
// a "did you mean") or, for an ALB attribute latch lacks, "this ALB
// attribute is not supported yet by latch"; a value that cannot be parsed
// into its type gets the parse message, and leaves the group unchanged.
// Ranges and combinations are Validate's job, so SetAttribute then
// Validate reports everything.
func (g *TargetGroup) SetAttribute(key, value string) error {
	return setAttribute(groupAttributes, g, key, value)
}

// Attributes returns every attribute of the listener as its file would
// write it (see TargetGroup.Attributes).
func (l *Listener) Attributes() map[string]string { return attributeMap(listenerAttributes, l) }

// SetAttribute sets one attribute of the listener from its string form, as
// TargetGroup.SetAttribute does for a group.
func (l *Listener) SetAttribute(key, value string) error {
	return setAttribute(listenerAttributes, l, key, value)
}

func attributeMap[T any](attrs []attribute[T], src *T) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m[a.key] = a.get(src)
	}
	return m
}

func setAttribute[T any](attrs []attribute[T], dst *T, key, value string) error {
	a, err := lookupAttribute(attrs, key)
	if err != nil {
		return err
	}
	return a.set(dst, value)
}

// lookupAttribute returns the attribute named key, or the message for a
// key latch does not take.
func lookupAttribute[T any](attrs []attribute[T], key string) (*attribute[T], error) {
	for i := range attrs {
		if attrs[i].key == key {
			return &attrs[i], nil
		}
	}
	if notYet[key] {
		return nil, errors.New("this ALB attribute is not supported yet by latch")
	}
	return nil, fmt.Errorf("unknown attribute%s", suggestion(key, attributeKeys(attrs)))
}

// applyDefaults sets every attribute of dst to its default.
func applyDefaults[T any](dst *T, attrs []attribute[T]) {
	for _, a := range attrs {
		if err := a.set(dst, a.def); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", a.key, err))
		}
	}
}

// checkAttributes adds Validate's problems with the attributes of src,
// each on its attribute's path under path (the attributes map's).
func checkAttributes[T any](v *validator, attrs []attribute[T], src *T, path string) {
	for _, a := range attrs {
		if a.check == nil {
			continue
		}
		if msg := a.check(src); msg != "" {
			v.add(attrPath(path, a.key), msg)
		}
	}
}

// attrPath is the path of one attribute under an attributes map's path.
func attrPath(path, key string) string { return fmt.Sprintf("%s[%q]", path, key) }

func attributeKeys[T any](attrs []attribute[T]) []string {
	keys := make([]string, len(attrs))
	for i, a := range attrs {
		keys[i] = a.key
	}
	return keys
}

func boolAttr[T any](key, def string, latch bool, field func(*T) *bool) attribute[T] {
	return attribute[T]{key: key, def: def, latch: latch,
		get: func(src *T) string { return strconv.FormatBool(*field(src)) },
		set: func(dst *T, v string) error {
			b, err := parseBool(v)
			if err == nil {
				*field(dst) = b
			}
			return err
		}}
}

// stringAttr is an attribute that is a string as written, checked by check.
func stringAttr[T any](key, def string, latch bool, field func(*T) *string, check func(string) string) attribute[T] {
	return attribute[T]{key: key, def: def, latch: latch,
		get: func(src *T) string { return *field(src) },
		set: func(dst *T, v string) error {
			*field(dst) = v
			return nil
		},
		check: func(src *T) string { return check(*field(src)) }}
}

// intAttr is latch's own whole-number attribute, lo-hi.
func intAttr[T any](key, def string, lo, hi int, field func(*T) *int) attribute[T] {
	return attribute[T]{key: key, def: def, latch: true,
		get: func(src *T) string { return strconv.Itoa(*field(src)) },
		set: func(dst *T, v string) error {
			n, err := parseInt(v)
			if err == nil {
				*field(dst) = n
			}
			return err
		},
		check: func(src *T) string { return checkRange(*field(src), lo, hi, "") }}
}

func secondsAttr[T any](key, def string, latch bool, s seconds, field func(*T) *time.Duration) attribute[T] {
	return attribute[T]{key: key, def: def, latch: latch,
		get: func(src *T) string { return formatSeconds(*field(src)) },
		set: func(dst *T, v string) error {
			d, err := s.parse(v)
			if err == nil {
				*field(dst) = d
			}
			return err
		},
		check: func(src *T) string { return s.check(*field(src)) }}
}

// factorAttr is a balance factor: 0 (off) or a number above 1, at most 10.
func factorAttr[T any](key string, field func(*T) *float64) attribute[T] {
	return attribute[T]{key: key, def: "0", latch: true,
		get: func(src *T) string { return strconv.FormatFloat(*field(src), 'g', -1, 64) },
		set: func(dst *T, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) {
				return fmt.Errorf("%q is not a number", v)
			}
			*field(dst) = f
			return nil
		},
		check: func(src *T) string {
			f := *field(src)
			if math.IsNaN(f) || f != 0 && (f <= 1 || f > 10) {
				return fmt.Sprintf("%s is outside 1-10 (exclusive of 1), or 0 for off", strconv.FormatFloat(f, 'g', -1, 64))
			}
			return ""
		}}
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

// parseInt parses a whole number; its range is Validate's (checkRange).
func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", v)
	}
	return n, nil
}

// checkRange returns the message for n outside lo-hi, with what else is
// allowed (", or off"), or "".
func checkRange(n, lo, hi int, or string) string {
	if n < lo || n > hi {
		return fmt.Sprintf("%d is outside %d-%d%s", n, lo, hi, or)
	}
	return ""
}

// seconds is the range of a duration written in seconds. Where whole is
// false, latch accepts fractions of a second (down to lo) so that tests and
// laptops need not wait whole seconds.
type seconds struct {
	lo, hi float64
	whole  bool // ALB takes whole seconds only
	// zero is what 0 means where it is allowed besides lo-hi ("none",
	// "never", "off"); "" where it is not.
	zero string
}

// or is what the messages add when 0 is allowed too.
func (s seconds) or() string {
	if s.zero == "" {
		return ""
	}
	return ", or 0 for " + s.zero
}

func (s seconds) outside(v string) string {
	return fmt.Sprintf("%s is outside %s-%s seconds%s", v,
		strconv.FormatFloat(s.lo, 'f', -1, 64), strconv.FormatFloat(s.hi, 'f', -1, 64), s.or())
}

// parse parses a number of seconds. It refuses only what is not a number or
// does not fit a time.Duration (as outside the range, which it is).
func (s seconds) parse(v string) (time.Duration, error) {
	d, ok, fits := parseSeconds(v)
	switch {
	case !ok:
		return 0, fmt.Errorf("%q is not a number of seconds%s", v, s.or())
	case !fits:
		return 0, errors.New(s.outside(v))
	}
	return d, nil
}

// check returns the message for d outside the range, or "".
func (s seconds) check(d time.Duration) string {
	if d == 0 && s.zero != "" {
		return ""
	}
	if s.whole && d%time.Second != 0 {
		return fmt.Sprintf("%s is not a whole number of seconds%s", formatSeconds(d), s.or())
	}
	if d < secondsDuration(s.lo) || d > secondsDuration(s.hi) {
		return s.outside(formatSeconds(d))
	}
	return ""
}

func secondsDuration(f float64) time.Duration {
	return time.Duration(math.Round(f * float64(time.Second)))
}

var decimalRE = regexp.MustCompile(`^([+-]?)([0-9]*)(?:\.([0-9]*))?$`)

// parseSeconds parses a number of seconds: exactly when it is written as a
// decimal (so that formatSeconds's output reads back to the nanosecond),
// else as a float (1e3). ok is false for what is not a number; fits is
// false for a number too large for a time.Duration.
func parseSeconds(v string) (d time.Duration, ok, fits bool) {
	if m := decimalRE.FindStringSubmatch(v); m != nil && m[2]+m[3] != "" {
		whole := strings.TrimLeft(m[2], "0")
		if len(whole) > 10 {
			return 0, true, false
		}
		frac := (m[3] + "000000000")[:9] // nanoseconds; finer digits are dropped
		w, _ := strconv.ParseUint("0"+whole, 10, 64)
		f, _ := strconv.ParseUint(frac, 10, 64)
		ns := w*uint64(time.Second) + f // at most 10^19-1: no overflow
		if ns > math.MaxInt64 {
			return 0, true, false
		}
		if m[1] == "-" {
			return -time.Duration(ns), true, true
		}
		return time.Duration(ns), true, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, false
	}
	ns := f * float64(time.Second)
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, true, false
	}
	return time.Duration(ns), true, true
}

// formatSeconds writes d in seconds, exactly: "86400", "0.5", "0.000000001".
func formatSeconds(d time.Duration) string {
	u := uint64(d)
	sign := ""
	if d < 0 {
		u, sign = uint64(-d), "-" // -math.MinInt64 wraps to its own magnitude as a uint64
	}
	s := sign + strconv.FormatUint(u/uint64(time.Second), 10)
	if frac := u % uint64(time.Second); frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
	}
	return s
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
func checkCookieName(v string) string {
	if v == "" {
		return "empty cookie name"
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isTokenChar(c) {
			return fmt.Sprintf("%q is not a valid cookie name (character %q)", v, c)
		}
	}
	for _, p := range []string{"AWSALBAPP", "AWSALBTG"} {
		if strings.HasPrefix(v, p) {
			return fmt.Sprintf("%q starts with %s, which ALB reserves for other cookies", v, p)
		}
	}
	return ""
}
