package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/desync"
)

// roundTrip sets, on a DefaultTargetGroup holding src's other fields, every
// attribute of src as Attributes renders it.
func roundTrip(t *testing.T, src *TargetGroup) TargetGroup {
	t.Helper()
	g := DefaultTargetGroup()
	g.Name, g.Targets, g.HealthCheck, g.ProtocolVersion = src.Name, src.Targets, src.HealthCheck, src.ProtocolVersion
	for k, v := range src.Attributes() {
		if err := g.SetAttribute(k, v); err != nil {
			t.Fatalf("SetAttribute(%q, %q): %v", k, v, err)
		}
	}
	return g
}

func TestAttributesRoundTrip(t *testing.T) {
	groups := map[string]string{
		"defaults": "",
		"every attribute changed": `      stickiness.enabled: "true"
      stickiness.type: app_cookie
      stickiness.app_cookie.cookie_name: SESSIONID
      stickiness.app_cookie.duration_seconds: 3600
      stickiness.header.name: X-Session
      stickiness.header.duration_seconds: 7200
      stickiness.absolute_timeout_seconds: 86400
      stickiness.lb_cookie.lifetime: session
      stickiness.lb_cookie.duration_seconds: 604800
      stickiness.lb_cookie.name: LATCH
      stickiness.lb_cookie.cors_cookie.enabled: "false"
      stickiness.lb_cookie.secure: "true"
      stickiness.lb_cookie.http_only: "true"
      stickiness.lb_cookie.same_site: strict
      stickiness.lb_cookie.domain: example.com
      stickiness.lb_cookie.path: /app
      stickiness.balance_factor: 1.25
      stickiness.rebalance_idle_seconds: 1.5
      load_balancing.algorithm.type: weighted_random
      load_balancing.algorithm.anomaly_mitigation: "on"
      deregistration_delay.timeout_seconds: 0.001
      target_group_health.unhealthy_state_routing.minimum_healthy_targets.count: 7
      target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage: 50
      target_connect.timeout_seconds: 0.05
`,
		"hash and its proxies": `      stickiness.enabled: "true"
      stickiness.type: source_ip
      stickiness.source_ip.trusted_proxies: 10.0.0.0/8, 192.168.1.7, 2001:db8::/32
      stickiness.hash.header: X-User
      stickiness.hash.cookie: sid
      load_balancing.hash.balance_factor: 10
      slow_start.duration_seconds: 900
      stickiness.lb_cookie.same_site: None
`,
	}
	for name, attrs := range groups {
		t.Run(name, func(t *testing.T) {
			data := minimal
			if attrs != "" {
				data += "    attributes:\n" + attrs
			}
			src := &mustParse(t, data, "").TargetGroups[0]
			if got := roundTrip(t, src); !reflect.DeepEqual(got, *src) {
				t.Errorf("round trip:\ngot  %+v\nwant %+v", got, *src)
			}
		})
	}

	// Values no file writes: a nanosecond, durations beyond a float's
	// precision, a fraction of a factor.
	src := DefaultTargetGroup()
	src.Stickiness.RebalanceIdle = time.Nanosecond
	src.DeregistrationDelay = 3599*time.Second + 999999999
	src.Stickiness.AbsoluteTimeout = 31535999*time.Second + 123456789
	src.Stickiness.BalanceFactor = 1.0000000000000002
	src.Stickiness.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}
	if got := roundTrip(t, &src); !reflect.DeepEqual(got, src) {
		t.Errorf("round trip of values no file writes:\ngot  %+v\nwant %+v", got, src)
	}
}

// TestAttributeForms checks each attribute's canonical form, and that every
// attribute has a case here.
func TestAttributeForms(t *testing.T) {
	for _, c := range []struct{ key, in, want string }{
		{"stickiness.enabled", "true", "true"},
		{"stickiness.type", "header", "header"},
		{"stickiness.app_cookie.cookie_name", "sid", "sid"},
		{"stickiness.app_cookie.duration_seconds", "60", "60"},
		{"stickiness.header.name", "X-S", "X-S"},
		{"stickiness.header.duration_seconds", "1e3", "1000"},
		{"stickiness.absolute_timeout_seconds", "0.0", "0"},
		{"stickiness.lb_cookie.lifetime", "session", "session"},
		{"stickiness.hash.header", "X-U", "X-U"},
		{"stickiness.hash.cookie", "u", "u"},
		{"stickiness.source_ip.trusted_proxies", " 10.1.2.3/8 ,, 192.0.2.1 ", "10.0.0.0/8,192.0.2.1/32"},
		{"stickiness.balance_factor", "1.50", "1.5"},
		{"stickiness.rebalance_idle_seconds", ".25", "0.25"},
		{"load_balancing.hash.balance_factor", "2", "2"},
		{"slow_start.duration_seconds", "030", "30"},
		{"load_balancing.algorithm.anomaly_mitigation", "on", "on"},
		{"stickiness.lb_cookie.duration_seconds", "+86400", "86400"},
		{"stickiness.lb_cookie.name", "X", "X"},
		{"stickiness.lb_cookie.cors_cookie.enabled", "false", "false"},
		{"stickiness.lb_cookie.secure", "true", "true"},
		{"stickiness.lb_cookie.http_only", "true", "true"},
		{"stickiness.lb_cookie.same_site", "lAx", "Lax"},
		{"stickiness.lb_cookie.domain", "a.example", "a.example"},
		{"stickiness.lb_cookie.path", "/a", "/a"},
		{"load_balancing.algorithm.type", "least_outstanding_requests", "least_outstanding_requests"},
		{"deregistration_delay.timeout_seconds", "0.10", "0.1"},
		{"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", "3", "3"},
		{"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", "off", "off"},
		{"target_connect.timeout_seconds", "2.5", "2.5"},
	} {
		g := DefaultTargetGroup()
		if err := g.SetAttribute(c.key, c.in); err != nil {
			t.Errorf("SetAttribute(%q, %q): %v", c.key, c.in, err)
			continue
		}
		if got := g.Attributes()[c.key]; got != c.want {
			t.Errorf("SetAttribute(%q, %q), then Attributes: got %q, want %q", c.key, c.in, got, c.want)
		}
	}
	g := DefaultTargetGroup()
	if got, want := len(g.Attributes()), len(groupAttributes); got != want {
		t.Errorf("Attributes has %d keys, want %d", got, want)
	}

	l := DefaultListener()
	for k, v := range map[string]string{
		"idle_timeout.timeout_seconds":                    "0.05",
		"routing.http.desync_mitigation_mode":             "monitor",
		"routing.http2.h2c.enabled":                       "true",
		"routing.http.xff_header_processing.mode":         "preserve",
		"routing.http.xff_client_port.enabled":            "true",
		"routing.http.drop_invalid_header_fields.enabled": "true",
		"routing.http.preserve_host_header.enabled":       "true",
		"routing.http.trace_header.name":                  "",
		"routing.http2.enabled":                           "false",
	} {
		if err := l.SetAttribute(k, v); err != nil {
			t.Errorf("Listener.SetAttribute(%q, %q): %v", k, v, err)
		}
	}
	want := DefaultListener()
	want.IdleTimeout, want.DesyncMode, want.H2C, want.XFFMode = 50*time.Millisecond, desync.Monitor, true, XFFPreserve
	want.XFFClientPort, want.DropInvalidHeaders, want.TraceHeader, want.HTTP2 = true, true, "", false
	if !reflect.DeepEqual(l, want) {
		t.Errorf("Listener.SetAttribute:\ngot  %+v\nwant %+v", l, want)
	}
	back := DefaultListener()
	for k, v := range l.Attributes() {
		if err := back.SetAttribute(k, v); err != nil {
			t.Fatalf("Listener.SetAttribute(%q, %q): %v", k, v, err)
		}
	}
	if !reflect.DeepEqual(back, l) {
		t.Errorf("listener round trip:\ngot  %+v\nwant %+v", back, l)
	}
}

func TestSetAttributeErrors(t *testing.T) {
	for _, c := range []struct{ key, value, want string }{
		{"stickness.enabled", "true", `unknown attribute; did you mean "stickiness.enabled"?`},
		{"load_balancing.cross_zone.enabled", "true", "this ALB attribute is not supported yet by latch"},
		{"stickiness.enabled", "yes", `"yes" is not true or false`},
		{"stickiness.type", "lb_cookies", `"lb_cookies" is not one of lb_cookie, app_cookie, header, source_ip, hash; did you mean "lb_cookie"?`},
		{"stickiness.type", "source_ip_dest_ip", `"source_ip_dest_ip" is a Gateway Load Balancer type`},
		{"stickiness.lb_cookie.duration_seconds", "soon", `"soon" is not a number of seconds`},
		{"stickiness.lb_cookie.duration_seconds", "1e30", "1e30 is outside 1-604800 seconds"},
		{"slow_start.duration_seconds", "NaN", `"NaN" is not a number of seconds, or 0 for off`},
		{"stickiness.balance_factor", "much", `"much" is not a number`},
		{"stickiness.source_ip.trusted_proxies", "10.0.0.0/8, 10.1.2", `"10.1.2" is not an address or CIDR`},
		{"stickiness.lb_cookie.same_site", "Loose", `"Loose" is not one of Lax, Strict, None (or empty for none)`},
		{"stickiness.lb_cookie.lifetime", "sesion", `did you mean "session"?`},
		{"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", "0", "0 is outside 1-100, or off"},
		{"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", "half", `"half" is not a whole number, or off`},
		{"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", "2.5", `"2.5" is not a whole number`},
		{"load_balancing.algorithm.anomaly_mitigation", "true", `"true" is not on or off`},
	} {
		g := DefaultTargetGroup()
		err := g.SetAttribute(c.key, c.value)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetAttribute(%q, %q): got %v, want an error containing %q", c.key, c.value, err, c.want)
		}
		if !reflect.DeepEqual(g, DefaultTargetGroup()) {
			t.Errorf("SetAttribute(%q, %q) failed and changed the group: %+v", c.key, c.value, g)
		}
	}
	l := DefaultListener()
	for _, c := range []struct{ key, value, want string }{
		{"stickiness.enabled", "true", "unknown attribute"},
		{"client_keep_alive.seconds", "60", "this ALB attribute is not supported yet by latch"},
		{"routing.http.desync_mitigation_mode", "defensiv", `"defensiv" is not one of monitor, defensive, strictest; did you mean "defensive"?`},
		{"routing.http.preserve_host_header.enabled", "false", "this attribute can only be true"},
	} {
		if err := l.SetAttribute(c.key, c.value); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Listener.SetAttribute(%q, %q): got %v, want an error containing %q", c.key, c.value, err, c.want)
		}
	}
}

// TestSetAttributeThenValidate checks that SetAttribute leaves ranges and
// combinations to Validate, which reports them on the attribute's path.
func TestSetAttributeThenValidate(t *testing.T) {
	cfg := mustParse(t, minimal, "")
	g := &cfg.TargetGroups[0]
	for k, v := range map[string]string{
		"slow_start.duration_seconds":           "20",
		"stickiness.lb_cookie.duration_seconds": "1.5",
		"load_balancing.hash.balance_factor":    "1.25",
	} {
		if err := g.SetAttribute(k, v); err != nil {
			t.Fatalf("SetAttribute(%q, %q): %v", k, v, err)
		}
	}
	want := Problems{
		{Path: `target_groups[0].attributes["slow_start.duration_seconds"]`, Msg: "20 is outside 30-900 seconds, or 0 for off"},
		{Path: `target_groups[0].attributes["stickiness.lb_cookie.duration_seconds"]`, Msg: "1.5 is not a whole number of seconds"},
		{Path: `target_groups[0].attributes["load_balancing.hash.balance_factor"]`, Msg: "applies only to stickiness.type source_ip or hash (this group's is lb_cookie)"},
	}
	var got Problems
	if err := cfg.Validate(); !errors.As(err, &got) || !reflect.DeepEqual(got, want) {
		t.Errorf("Validate:\ngot  %v\nwant %v", err, want)
	}
}
