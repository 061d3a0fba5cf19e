package config

import (
	"errors"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/desync"
)

// goConfig is the smallest valid config, built in Go from the defaults.
func goConfig() *Config {
	g := DefaultTargetGroup()
	g.Name = "web"
	g.Targets = []Target{{ID: "10.0.0.1:80", Weight: 1}}
	l := DefaultListener()
	l.Name, l.Address = "public", "127.0.0.1:8080"
	l.DefaultAction = Action{TargetGroup: "web"}
	return &Config{Listeners: []Listener{l}, TargetGroups: []TargetGroup{g}, StateDir: "latch-state"}
}

func TestValidateGoConfig(t *testing.T) {
	if err := goConfig().Validate(); err != nil {
		t.Fatalf("Validate of a config built from the defaults: %v", err)
	}
	// A config Parse returns is valid.
	for _, data := range []string{minimal, example, rulesExample} {
		if err := mustParse(t, data, "").Validate(); err != nil {
			t.Errorf("Validate of a parsed config: %v", err)
		}
	}
}

func TestValidateZeroConfig(t *testing.T) {
	want := Problems{
		{Path: "target_groups", Msg: "missing; at least one is needed"},
		{Path: "listeners", Msg: "missing; at least one is needed"},
		{Path: "state_dir", Msg: "must not be empty"},
	}
	var got Problems
	if err := new(Config).Validate(); !errors.As(err, &got) || !reflect.DeepEqual(got, want) {
		t.Errorf("Validate of a zero Config:\ngot  %v\nwant %v", err, want)
	}
	c := goConfig()
	c.Listeners, c.TargetGroups = []Listener{}, []TargetGroup{}
	want = Problems{
		{Path: "target_groups", Msg: "empty; at least one is needed"},
		{Path: "listeners", Msg: "empty; at least one is needed"},
	}
	if err := c.Validate(); !errors.As(err, &got) || !reflect.DeepEqual(got, want) {
		t.Errorf("Validate with empty lists:\ngot  %v\nwant %v", err, want)
	}
}

// TestValidateProblems checks what only a config built in Go can get
// wrong, and a few of what a file can, on the structs.
func TestValidateProblems(t *testing.T) {
	const (
		l0   = "listeners[0]"
		da   = l0 + ".default_action"
		r0   = l0 + ".rules[0]"
		g0   = "target_groups[0]"
		hc   = g0 + ".health_check"
		algo = g0 + `.attributes["load_balancing.algorithm.type"]`
	)
	rule := func(c *Config, r Rule) { c.Listeners[0].Rules = append(c.Listeners[0].Rules, r) }
	cond := func(c Condition) Rule {
		return Rule{Priority: 1, Conditions: []Condition{c}, Action: Action{TargetGroup: "web"}}
	}
	redirect := Redirect{Protocol: "HTTPS", Host: "#{host}", Port: "#{port}", Path: "/#{path}", Query: "#{query}", StatusCode: 301}
	one := func(path, msg string) Problems { return Problems{{Path: path, Msg: msg}} }

	for _, c := range []struct {
		name   string
		change func(c *Config)
		want   Problems
	}{
		// Typed values out of range.
		{"algorithm", func(c *Config) { c.TargetGroups[0].Algorithm = Algorithm(9) },
			one(algo, "Algorithm(9) is not one of round_robin, least_outstanding_requests, weighted_random")},
		{"stickiness type", func(c *Config) { c.TargetGroups[0].Stickiness.Type = StickinessType(9) },
			one(g0+`.attributes["stickiness.type"]`, "StickinessType(9) is not one of lb_cookie, app_cookie, header, source_ip, hash")},
		{"same site", func(c *Config) { c.TargetGroups[0].Stickiness.Cookie.SameSite = SameSite(9) },
			one(g0+`.attributes["stickiness.lb_cookie.same_site"]`, "SameSite(9) is not one of Lax, Strict, None (or SameSiteUnset, for none)")},
		{"protocol version", func(c *Config) { c.TargetGroups[0].ProtocolVersion = ProtocolVersion(9) },
			one(g0+".protocol_version", "ProtocolVersion(9) is not one of HTTP1, HTTP2")},
		{"health check protocol", func(c *Config) { c.TargetGroups[0].HealthCheck.Protocol = Protocol(9) },
			one(hc+".protocol", "Protocol(9) is not one of HTTP, HTTPS")},
		{"listener protocol", func(c *Config) { c.Listeners[0].Protocol = Protocol(7) },
			one(l0+".protocol", "Protocol(7) is not one of HTTP, HTTPS")},
		{"desync mode", func(c *Config) { c.Listeners[0].DesyncMode = desync.Mode(9) },
			one(l0+`.attributes["routing.http.desync_mitigation_mode"]`, "Mode(9) is not one of monitor, defensive, strictest")},
		{"xff mode", func(c *Config) { c.Listeners[0].XFFMode = XFFMode(9) },
			one(l0+`.attributes["routing.http.xff_header_processing.mode"]`, "XFFMode(9) is not one of append, preserve, remove")},
		{"action type", func(c *Config) { c.Listeners[0].DefaultAction.Type = ActionType(5) },
			one(da+".type", "ActionType(5) is not one of forward, redirect, fixed-response")},
		{"condition field", func(c *Config) { rule(c, cond(Condition{Field: ConditionField(9)})) },
			one(r0+".conditions[0]", "ConditionField(9) is not one of host_header, path_pattern, http_header, http_request_method, query_string, source_ip")},

		// Required, and empty in Go.
		{"a forward to nothing", func(c *Config) { c.Listeners[0].DefaultAction = Action{} },
			one(da+".forward.target_group", "empty; it must name a target group")},
		{"a redirect without settings", func(c *Config) { c.Listeners[0].DefaultAction = Action{Type: ActionRedirect} },
			one(da+".redirect", "missing")},
		{"a fixed response without settings", func(c *Config) { c.Listeners[0].DefaultAction = Action{Type: ActionFixedResponse} },
			one(da+".fixed_response", "missing")},
		{"a zero fixed response", func(c *Config) {
			c.Listeners[0].DefaultAction = Action{Type: ActionFixedResponse, FixedResponse: &FixedResponse{}}
		}, Problems{
			{Path: da + ".fixed_response.status_code", Msg: "missing"},
			{Path: da + ".fixed_response.content_type", Msg: `"" is not one of text/plain, text/css, text/html, application/javascript, application/json`},
		}},
		{"a zero redirect", func(c *Config) {
			c.Listeners[0].DefaultAction = Action{Type: ActionRedirect, Redirect: &Redirect{}}
		}, Problems{
			{Path: da + ".redirect.status_code", Msg: "missing"},
			{Path: da + ".redirect.protocol", Msg: `"" is not one of HTTP, HTTPS, #{protocol}`},
			{Path: da + ".redirect.port", Msg: `"" is not a whole number, or #{port}`},
			{Path: da + ".redirect.host", Msg: "empty; leave it out to keep the request's own"},
			{Path: da + ".redirect.path", Msg: "empty; leave it out to keep the request's own"},
		}},
		{"a redirect status", func(c *Config) {
			r := redirect
			r.StatusCode = 303
			c.Listeners[0].DefaultAction = Action{Type: ActionRedirect, Redirect: &r}
		}, one(da+".redirect.status_code", "303 is not one of HTTP_301, HTTP_302")},
		{"a rule without conditions", func(c *Config) { rule(c, Rule{Priority: 1, Action: Action{TargetGroup: "web"}}) },
			one(r0+".conditions", "missing; "+conditionsWhy)},
		{"a target without a weight", func(c *Config) { c.TargetGroups[0].Targets[0].Weight = 0 },
			one(g0+".targets[0].weight", "0 is outside 1-1000")},
		{"a group without a name", func(c *Config) { c.TargetGroups[0].Name = "" }, Problems{
			{Path: g0 + ".name", Msg: `"" is not a valid name: use 1-32 letters, digits or hyphens, not starting or ending with a hyphen`},
			{Path: da + ".forward.target_group", Msg: `no target group is named "web"`},
		}},
		{"a cookie key without a secret", func(c *Config) { c.CookieKeys = []CookieKey{{ID: 1}} },
			one("cookie_keys[0].secret", "missing; a cookie key needs a 32-byte secret")},
		{"a short cookie key", func(c *Config) { c.CookieKeys = []CookieKey{{ID: 1, Secret: make([]byte, 16)}} },
			one("cookie_keys[0].secret", "the secret must be 32 bytes, not 16")},
		{"a cookie key 0", func(c *Config) { c.CookieKeys = []CookieKey{{Secret: secret1}} },
			one("cookie_keys[0].id", "0 is outside 1-4294967295")},
		{"a zero health check", func(c *Config) { c.TargetGroups[0].HealthCheck = HealthCheck{} }, Problems{
			{Path: hc + ".path", Msg: `"" must start with / and be at most 1024 characters with no spaces`},
			{Path: hc + ".interval_seconds", Msg: "0 is outside 0.05-300 seconds"},
			{Path: hc + ".timeout_seconds", Msg: "0 is outside 0.05-120 seconds"},
			{Path: hc + ".healthy_threshold_count", Msg: "0 is outside 2-10"},
			{Path: hc + ".unhealthy_threshold_count", Msg: "0 is outside 2-10"},
			{Path: hc + ".matcher", Msg: `empty matcher; want codes such as "200", "200,202" or "200-299"`},
		}},
		{"a matcher out of range", func(c *Config) { c.TargetGroups[0].HealthCheck.Matcher = Matcher{{200, 200}, {302, 301}} },
			one(hc+".matcher", `range "302-301" ends before it starts`)},

		// The health check's timeout and interval: the message is on the one
		// changed from ALB's default.
		{"a timeout at the interval", func(c *Config) { c.TargetGroups[0].HealthCheck.Timeout = 30 * time.Second },
			one(hc+".timeout_seconds", "the timeout (30s) must be shorter than the interval (30s)")},
		{"an interval at the timeout", func(c *Config) { c.TargetGroups[0].HealthCheck.Interval = 5 * time.Second },
			one(hc+".interval_seconds", "the interval (5s) must be longer than the timeout (5s)")},

		// What the run time would ignore.
		{"redirect settings on a forward", func(c *Config) { c.Listeners[0].DefaultAction.Redirect = &redirect },
			one(da+".redirect", "set only with type: redirect (this action is type: forward)")},
		{"forward settings on a redirect", func(c *Config) {
			c.Listeners[0].DefaultAction.Type, c.Listeners[0].DefaultAction.Redirect = ActionRedirect, &redirect
		}, one(da+".forward", "set only with type: forward (this action is type: redirect)")},
		{"a header name on a path condition", func(c *Config) {
			rule(c, cond(Condition{Field: PathPattern, Name: "X-A", Values: []string{"/a"}}))
		}, one(r0+".conditions[0].path_pattern", `has a Name ("X-A"); only http_header conditions take one`)},
		{"values on a source_ip condition", func(c *Config) {
			rule(c, cond(Condition{Field: CondSourceIP, Values: []string{"10.0.0.0/8"}, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}))
		}, one(r0+".conditions[0].source_ip", "has Values; a source_ip condition takes CIDRs")},
		{"pairs on a host condition", func(c *Config) {
			rule(c, cond(Condition{Values: []string{"a.example"}, Pairs: []QueryPair{{Value: "a"}}}))
		}, one(r0+".conditions[0].host_header", "has Pairs; only query_string conditions take them")},
		{"a query key without HasKey", func(c *Config) {
			rule(c, cond(Condition{Field: QueryString, Pairs: []QueryPair{{Key: "k", Value: "v"}}}))
		}, one(r0+".conditions[0].query_string[0].key", `"k" would be ignored: HasKey is false`)},
		{"a zero CIDR", func(c *Config) { rule(c, cond(Condition{Field: CondSourceIP, CIDRs: []netip.Prefix{{}}})) },
			one(r0+".conditions[0].source_ip[0]", "not a CIDR: an invalid netip.Prefix (the zero value?)")},
		{"an unmasked trusted proxy", func(c *Config) {
			s := &c.TargetGroups[0].Stickiness
			s.Enabled, s.Type, s.TrustedProxies = true, StickySourceIP, []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}
		}, one(g0+`.attributes["stickiness.source_ip.trusted_proxies"]`, `"10.1.2.3/8" has bits set after the prefix length; did you mean "10.0.0.0/8"?`)},
		{"group stickiness on one group", func(c *Config) {
			c.Listeners[0].DefaultAction.GroupStickiness = GroupStickiness{Enabled: true, Duration: time.Hour}
		}, one(da+".forward.stickiness", "group stickiness applies to target_groups; one target_group has its own stickiness attributes")},
		{"a weighted forward naming another group", func(c *Config) {
			c.Listeners[0].DefaultAction = Action{TargetGroup: "api", TargetGroups: []WeightedGroup{{Name: "web", Weight: 1}}}
		}, one(da+".forward.target_groups", "set target_group or target_groups, not both")},
		{"an empty weighted forward", func(c *Config) { c.Listeners[0].DefaultAction = Action{TargetGroups: []WeightedGroup{}} },
			one(da+".forward.target_groups", "empty; list 1-5 target groups")},
		{"a group stickiness of a second and a half", func(c *Config) {
			c.Listeners[0].DefaultAction = Action{TargetGroups: []WeightedGroup{{Name: "web", Weight: 1}},
				GroupStickiness: GroupStickiness{Enabled: true, Duration: 1500 * time.Millisecond}}
		}, one(da+".forward.stickiness.duration_seconds", "1.5 is not a whole number of seconds")},

		// HTTPS listeners.
		{"an HTTPS listener without certificates", func(c *Config) { c.Listeners[0].Protocol = HTTPS },
			one(l0+".certificates", "missing; an HTTPS listener needs at least one certificate")},
		{"an HTTPS listener with an empty list", func(c *Config) {
			c.Listeners[0].Protocol, c.Listeners[0].Certificates = HTTPS, []Certificate{}
		}, one(l0+".certificates", "empty; at least one is needed")},
		{"a zero certificate", func(c *Config) {
			c.Listeners[0].Protocol, c.Listeners[0].Certificates = HTTPS, []Certificate{{}}
		}, Problems{
			{Path: l0 + ".certificates[0].cert_file", Msg: "must not be empty"},
			{Path: l0 + ".certificates[0].key_file", Msg: "must not be empty"},
		}},
		{"an HTTP listener with an empty list", func(c *Config) { c.Listeners[0].Certificates = []Certificate{} },
			one(l0+".certificates", "set only on HTTPS listeners (this listener is HTTP)")},
		{"an HTTP listener with a policy", func(c *Config) { c.Listeners[0].SSLPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06" },
			one(l0+".ssl_policy", "set only on HTTPS listeners (this listener is HTTP)")},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := goConfig()
			c.change(cfg)
			err := cfg.Validate()
			var got Problems
			if !errors.As(err, &got) || !reflect.DeepEqual(got, c.want) {
				t.Errorf("Validate:\ngot  %v\nwant %v", err, c.want)
			}
		})
	}
}

// TestZeroTargetGroup pins what the docs say: a zero TargetGroup is not
// valid, since several of ALB's defaults are not zero.
func TestZeroTargetGroup(t *testing.T) {
	cfg := goConfig()
	cfg.TargetGroups[0] = TargetGroup{Name: "web"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate of a zero TargetGroup: no problem")
	}
	for _, want := range []string{
		`target_groups[0].attributes["stickiness.lb_cookie.duration_seconds"]: 0 is outside 1-604800 seconds`,
		`target_groups[0].attributes["stickiness.lb_cookie.name"]: empty cookie name`,
		`target_groups[0].health_check.interval_seconds: 0 is outside 0.05-300 seconds`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of a zero TargetGroup: got\n%v\nwant a line %q", err, want)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	s := Stickiness{LBCookieDuration: 1, AppCookieDuration: 2, HeaderDuration: 3}
	for typ, want := range map[StickinessType]time.Duration{LBCookie: 1, AppCookie: 2, Header: 3, StickySourceIP: 0, Hash: 0, 9: 0} {
		s.Type = typ
		if got := s.IdleTimeout(); got != want {
			t.Errorf("IdleTimeout of %v: got %v, want %v", typ, got, want)
		}
	}
}

// TestTypedValues checks each typed value's zero (ALB's default), its
// spellings both ways, and that an out-of-range value prints without a
// panic and does not marshal.
func TestTypedValues(t *testing.T) {
	type value interface {
		String() string
		MarshalText() ([]byte, error)
	}
	for _, c := range []struct {
		zero  value
		names []string
		bad   value
		parse func(string) (value, error)
	}{
		{Protocol(0), protocolNames, Protocol(9), func(s string) (value, error) { var v Protocol; return v, v.UnmarshalText([]byte(s)) }},
		{ProtocolVersion(0), protocolVersionNames, ProtocolVersion(9), func(s string) (value, error) { var v ProtocolVersion; err := v.UnmarshalText([]byte(s)); return v, err }},
		{Algorithm(0), algorithmNames, Algorithm(9), func(s string) (value, error) { var v Algorithm; err := v.UnmarshalText([]byte(s)); return v, err }},
		{StickinessType(0), stickinessTypeNames, StickinessType(9), func(s string) (value, error) { var v StickinessType; err := v.UnmarshalText([]byte(s)); return v, err }},
		{XFFMode(0), xffModeNames, XFFMode(9), func(s string) (value, error) { var v XFFMode; err := v.UnmarshalText([]byte(s)); return v, err }},
		{SameSite(0), sameSiteNames, SameSite(9), func(s string) (value, error) { var v SameSite; err := v.UnmarshalText([]byte(s)); return v, err }},
		{ActionType(0), actionTypeNames, ActionType(9), func(s string) (value, error) { var v ActionType; err := v.UnmarshalText([]byte(s)); return v, err }},
		{ConditionField(0), conditionFieldNames, ConditionField(9), func(s string) (value, error) { var v ConditionField; err := v.UnmarshalText([]byte(s)); return v, err }},
	} {
		if got := c.zero.String(); got != c.names[0] {
			t.Errorf("%T's zero value: got %q, want %q", c.zero, got, c.names[0])
		}
		for _, name := range c.names {
			v, err := c.parse(name)
			if err != nil {
				t.Errorf("%T.UnmarshalText(%q): %v", c.zero, name, err)
				continue
			}
			if b, err := v.MarshalText(); err != nil || string(b) != name {
				t.Errorf("%T %q: MarshalText: got %q, %v", c.zero, name, b, err)
			}
		}
		if got := c.bad.String(); !strings.HasSuffix(got, "(9)") {
			t.Errorf("%T(9).String(): got %q", c.zero, got)
		}
		if _, err := c.bad.MarshalText(); err == nil {
			t.Errorf("%T(9).MarshalText: no error", c.zero)
		}
	}
	// The ALB defaults the zero values stand for.
	if Protocol(0) != HTTP || ProtocolVersion(0) != HTTP1 || Algorithm(0) != RoundRobin || StickinessType(0) != LBCookie ||
		XFFMode(0) != XFFAppend || SameSite(0) != SameSiteUnset || ActionType(0) != ActionForward || ConditionField(0) != HostHeader {
		t.Error("a zero value is not ALB's default")
	}
	var s SameSite
	if err := s.UnmarshalText([]byte("sTRICT")); err != nil || s != SameSiteStrict {
		t.Errorf("SameSite is read case-insensitively: got %v, %v", s, err)
	}
	var pv ProtocolVersion
	if err := pv.UnmarshalText([]byte("GRPC")); err == nil || !strings.Contains(err.Error(), "GRPC target groups are not supported yet") {
		t.Errorf("ProtocolVersion GRPC: got %v", err)
	}
}

// FuzzValidate builds configs from random bytes, valid or not, with typed
// values in and out of range, and checks that Validate neither panics nor
// reports a problem without a path or a message, that Clone copies
// exactly, and that every attribute Validate accepts reads back from the
// form Attributes renders.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add([]byte("\x02\x03\x01\x00\x05\x09\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := &fuzzConfig{b: data}
		cfg := fc.config()
		err := cfg.Validate()
		if err != nil {
			ps, ok := err.(Problems)
			if !ok || len(ps) == 0 {
				t.Fatalf("Validate: got %T %v, want Problems", err, err)
			}
			for _, p := range ps {
				if p.Path == "" || p.Msg == "" || p.Line != 0 || p.File != "" {
					t.Fatalf("Validate: problem %+v", p)
				}
			}
		}
		if c := cfg.Clone(); !fc.nan && !reflect.DeepEqual(c, cfg) { // NaN is not DeepEqual to itself
			t.Fatalf("Clone:\ngot  %+v\nwant %+v", c, cfg)
		}
		// An attribute Validate accepts reads back exactly.
		for i := range cfg.TargetGroups {
			src := &cfg.TargetGroups[i]
			for _, a := range groupAttributes {
				if a.check != nil && a.check(src) != "" {
					continue
				}
				g, v := DefaultTargetGroup(), a.get(src)
				if err := g.SetAttribute(a.key, v); err != nil {
					t.Fatalf("attribute %s: %q does not read back: %v", a.key, v, err)
				}
				if got := a.get(&g); got != v {
					t.Fatalf("attribute %s: %q reads back as %q", a.key, v, got)
				}
			}
		}
	})
}

// fuzzConfig builds a Config from bytes, one choice a byte.
type fuzzConfig struct {
	b   []byte
	nan bool // a float is NaN
}

func (f *fuzzConfig) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzConfig) n(max int) int { return int(f.next()) % (max + 1) }
func (f *fuzzConfig) bool() bool    { return f.next()&1 == 1 }

var fuzzStrings = []string{"", "web", "api", "-web", "a b", "X-A", "Host", "/", "/a*?", "*", "#{host}", "/#{path}",
	"#{query}", "#{port}", "#{protocol}", "#{", "10.0.0.1:80", ":0", "127.0.0.1:8080", "127.0.0.1:8080", "HTTP",
	"HTTPS", "443", "0", "a\r\nb", strings.Repeat("a", 129), "café", "?a=1", "AWSALBTG", `a\b`, "GET", "get",
	"text/plain", "ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-2016-08", "nope.crt"}

func (f *fuzzConfig) str() string { return fuzzStrings[f.n(len(fuzzStrings)-1)] }

func (f *fuzzConfig) int() int {
	return []int{0, 1, -1, 2, 5, 10, 200, 301, 503, 999, 1000, 1001, 50000, 65536, math.MaxInt, math.MinInt}[f.n(15)]
}

func (f *fuzzConfig) dur() time.Duration {
	return []time.Duration{0, 1, 50 * time.Millisecond, time.Second, 1500 * time.Millisecond, 30 * time.Second,
		86400 * time.Second, 604801 * time.Second, -time.Second, math.MaxInt64, math.MinInt64}[f.n(10)]
}

func (f *fuzzConfig) prefix() netip.Prefix {
	return []netip.Prefix{{}, netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.2.3/8"),
		netip.MustParsePrefix("255.255.255.255/32"), netip.MustParsePrefix("::ffff:10.0.0.0/104")}[f.n(4)]
}

// list returns nil, an empty list or up to 3 items, each made by item.
func list[T any](f *fuzzConfig, item func() T) []T {
	k := f.n(4)
	if k == 0 {
		return nil
	}
	out := make([]T, 0, k-1)
	for range k - 1 {
		out = append(out, item())
	}
	return out
}

func (f *fuzzConfig) config() *Config {
	c := &Config{StateDir: f.str()}
	c.TargetGroups = list(f, func() TargetGroup {
		g := DefaultTargetGroup()
		if f.bool() {
			g = TargetGroup{}
		}
		g.Name = f.str()
		g.Targets = list(f, func() Target {
			t := Target{ID: f.str(), Weight: f.int()}
			if f.bool() {
				t.Drain = &Drain{Mode: DrainMode(f.int()), Idle: time.Duration(f.int()) * time.Second, Deadline: time.Duration(f.int()) * time.Second}
			}
			return t
		})
		g.ProtocolVersion, g.Algorithm = ProtocolVersion(f.n(3)), Algorithm(f.n(4))
		g.DeregistrationDelay, g.ConnectTimeout, g.SlowStart = f.dur(), f.dur(), f.dur()
		g.MinHealthyCount, g.MinHealthyPercent, g.AnomalyMitigation = f.int(), f.int(), f.bool()
		ph := &g.PassiveHealth
		ph.Enabled, ph.ConsecutiveFailures, ph.Target5xx, ph.Ejection, ph.MaxEjection, ph.MaxEjectedPercent = f.bool(), f.int(), f.bool(), f.dur(), f.dur(), f.int()
		g.Retry = Retry{Idempotent: f.bool(), OnTimeout: f.bool(), BudgetPercent: f.int(), BudgetPerSecond: f.int()}
		g.HashBalanceFactor = []float64{0, 1, 1.5, 10, 11, math.NaN(), math.Inf(1)}[f.n(6)]
		f.nan = f.nan || math.IsNaN(g.HashBalanceFactor)
		s := &g.Stickiness
		s.Enabled, s.Type = f.bool(), StickinessType(f.n(6))
		s.LBCookieDuration, s.AppCookieDuration, s.HeaderDuration, s.AbsoluteTimeout, s.RebalanceIdle = f.dur(), f.dur(), f.dur(), f.dur(), f.dur()
		s.AppCookie, s.Header, s.HashHeader, s.HashCookie = f.str(), f.str(), f.str(), f.str()
		s.TrustedProxies = list(f, f.prefix)
		s.Cookie.Name, s.Cookie.Path, s.Cookie.Domain, s.Cookie.SameSite = f.str(), f.str(), f.str(), SameSite(f.n(5))
		hc := &g.HealthCheck
		hc.Protocol, hc.Port, hc.Path = Protocol(f.n(2)), f.int(), f.str()
		hc.Interval, hc.Timeout, hc.HealthyThreshold, hc.UnhealthyThreshold = f.dur(), f.dur(), f.int(), f.int()
		hc.Matcher = list(f, func() CodeRange { return CodeRange{f.int(), f.int()} })
		hc.UserAgent = f.str()
		return g
	})
	action := func() Action {
		a := Action{Type: ActionType(f.n(3)), TargetGroup: f.str()}
		a.TargetGroups = list(f, func() WeightedGroup { return WeightedGroup{Name: f.str(), Weight: f.int()} })
		a.GroupStickiness = GroupStickiness{Enabled: f.bool(), Duration: f.dur()}
		if f.bool() {
			a.Redirect = &Redirect{Protocol: f.str(), Host: f.str(), Port: f.str(), Path: f.str(), Query: f.str(), StatusCode: f.int()}
		}
		if f.bool() {
			a.FixedResponse = &FixedResponse{StatusCode: f.int(), ContentType: f.str(), MessageBody: f.str()}
		}
		return a
	}
	c.Listeners = list(f, func() Listener {
		l := DefaultListener()
		l.Name, l.Address, l.Protocol = f.str(), f.str(), Protocol(f.n(2))
		l.DefaultAction = action()
		l.Rules = list(f, func() Rule {
			return Rule{Priority: f.int(), Action: action(), Conditions: list(f, func() Condition {
				return Condition{Field: ConditionField(f.n(6)), Name: f.str(), Values: list(f, f.str),
					Pairs: list(f, func() QueryPair { return QueryPair{Key: f.str(), Value: f.str(), HasKey: f.bool()} }),
					CIDRs: list(f, f.prefix)}
			})}
		})
		l.IdleTimeout, l.DesyncMode, l.XFFMode, l.TraceHeader = f.dur(), desync.Mode(f.n(3)), XFFMode(f.n(3)), f.str()
		l.H2C, l.HTTP2, l.SSLPolicy = f.bool(), f.bool(), f.str()
		l.Certificates = list(f, func() Certificate { return Certificate{CertFile: f.str(), KeyFile: f.str()} })
		return l
	})
	c.CookieKeys = list(f, func() CookieKey {
		return CookieKey{ID: uint32(f.int()), Secret: [][]byte{nil, {}, make([]byte, 16), secret1}[f.n(3)]}
	})
	return c
}

// TestDrainNotInFile checks that a file cannot drain a target: Drain is the
// admin API's.
func TestDrainNotInFile(t *testing.T) {
	checkExact(t, minimal+"        drain: true\n", []wantProblem{{11, "target_groups[0].targets[0].drain", "unknown key"}})
}

// TestValidateExceptFiles: the server, which reads an HTTPS listener's
// certificate files when it applies a config, validates the rest without
// reading them; Validate reads them too.
func TestValidateExceptFiles(t *testing.T) {
	c := goConfig()
	l := &c.Listeners[0]
	l.Protocol = HTTPS
	l.Certificates = []Certificate{{CertFile: "/nonexistent/a.crt", KeyFile: "/nonexistent/a.key"}}
	if err := c.ValidateExceptFiles(); err != nil {
		t.Errorf("ValidateExceptFiles with missing certificate files: %v, want nil", err)
	}
	var ps Problems
	if err := c.Validate(); !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "listeners[0].certificates[0].cert_file" {
		t.Errorf("Validate with missing certificate files: %v, want the cert_file's problem", err)
	}
	l.Certificates[0].KeyFile = ""
	if err := c.ValidateExceptFiles(); !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "listeners[0].certificates[0].key_file" {
		t.Errorf("ValidateExceptFiles with an empty key file: %v, want its problem", err)
	}
}

// TestDrainValidation: a drain's mode, idle window and deadline, each
// problem named with the target's path, id and group.
func TestDrainValidation(t *testing.T) {
	for _, tt := range []struct {
		d    Drain
		want []string // the problems' paths under the target, "" for none
	}{
		{Drain{}, nil},
		{Drain{Mode: DrainImmediate}, nil},
		{Drain{Idle: time.Second, Deadline: time.Second}, nil},
		{Drain{Idle: 24 * time.Hour, Deadline: 7 * 24 * time.Hour}, nil},
		{Drain{Deadline: time.Minute}, nil}, // the default idle, 60 s
		{Drain{Idle: 999 * time.Millisecond}, []string{"drain.idle"}},
		{Drain{Idle: 24*time.Hour + 1}, []string{"drain.idle"}},
		{Drain{Deadline: 59 * time.Second}, []string{"drain.deadline"}},
		{Drain{Idle: time.Second, Deadline: 7*24*time.Hour + 1}, []string{"drain.deadline"}},
		{Drain{Mode: 2, Idle: -1}, []string{"drain.mode", "drain.idle"}},
	} {
		c := goConfig()
		g := &c.TargetGroups[0]
		d := tt.d
		g.Targets[0].Drain = &d
		var ps Problems
		err := c.ValidateExceptFiles()
		errors.As(err, &ps)
		var got []string
		for _, p := range ps {
			prefix := "target_groups[0].targets[0]."
			if !strings.HasPrefix(p.Path, prefix) {
				t.Errorf("drain %+v: problem at %s, want under %s", tt.d, p.Path, prefix)
				continue
			}
			got = append(got, strings.TrimPrefix(p.Path, prefix))
			if !strings.Contains(p.Msg, g.Targets[0].ID) || !strings.Contains(p.Msg, `"`+g.Name+`"`) {
				t.Errorf("drain %+v: %q does not name the target and group", tt.d, p.Msg)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("drain %+v: got problems %v (%v), want %v", tt.d, got, err, tt.want)
		}
	}
	for name, want := range map[string]DrainMode{"keep_sessions": DrainKeepSessions, "immediate": DrainImmediate} {
		if m, err := ParseDrainMode(name); err != nil || m != want || m.String() != name {
			t.Errorf("ParseDrainMode(%s): got %v, %v", name, m, err)
		}
	}
	if _, err := ParseDrainMode("slow"); err == nil || !strings.Contains(err.Error(), "keep_sessions, immediate") {
		t.Errorf("ParseDrainMode(slow): got %v, want the modes listed", err)
	}
}
