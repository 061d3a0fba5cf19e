package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/desync"
)

// example is the config from latch's documentation.
const example = `listeners:
  - name: public
    address: 127.0.0.1:8080
    protocol: HTTP
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
    targets:
      - id: 127.0.0.1:9001
      - id: 127.0.0.1:9002
        weight: 2
    health_check:
      path: /healthz
      interval_seconds: 5
      timeout_seconds: 2
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
      matcher: "200-399"
    attributes:
      stickiness.enabled: "true"
      stickiness.type: lb_cookie
      stickiness.lb_cookie.duration_seconds: "86400"
      deregistration_delay.timeout_seconds: "30"
      load_balancing.algorithm.type: round_robin
state_dir: ./latch-state
`

// minimal holds only what is required, on lines 1-10; a target group's keys
// (indented by 4) may be appended from line 11.
const minimal = `listeners:
  - name: public
    address: 127.0.0.1:8080
    default_action:
      type: forward
      forward: {target_group: web}
target_groups:
  - name: web
    targets:
      - id: 127.0.0.1:9001
`

// listenerLast is minimal with the listener last, so that a listener's keys
// (indented by 4) may be appended from line 11.
const listenerLast = `target_groups:
  - name: web
    targets:
      - id: 127.0.0.1:9001
listeners:
  - name: public
    address: 127.0.0.1:8080
    default_action:
      type: forward
      forward: {target_group: web}
`

var (
	secret1 = bytes.Repeat([]byte{1}, 32)
	secret2 = bytes.Repeat([]byte{2}, 32)
	key1    = base64.StdEncoding.EncodeToString(secret1)
	key2    = base64.StdEncoding.EncodeToString(secret2)
)

func mustParse(t *testing.T, data, file string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(data), file)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg == nil {
		t.Fatal("Parse returned a nil config and a nil error")
	}
	return cfg
}

// albHealthCheck is ALB's default health check for an HTTP target group.
func albHealthCheck() HealthCheck {
	return HealthCheck{
		Enabled: true, Protocol: HTTP, Path: "/",
		Interval: 30 * time.Second, Timeout: 5 * time.Second,
		HealthyThreshold: 5, UnhealthyThreshold: 2,
		Matcher: Matcher{{200, 200}}, UserAgent: "ELB-HealthChecker/2.0",
	}
}

// latchPassiveHealth and latchRetry are latch's defaults for its own
// passive health checks and retries.
var (
	latchPassiveHealth = PassiveHealth{Enabled: true, ConsecutiveFailures: 3, Ejection: 30 * time.Second,
		MaxEjection: 300 * time.Second, MaxEjectedPercent: 50}
	latchRetry = Retry{Idempotent: true, BudgetPercent: 20, BudgetPerSecond: 10}
)

func TestParseDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg := mustParse(t, minimal, filepath.Join(dir, "latch.yaml"))
	want := &Config{
		Listeners: []Listener{{
			Name: "public", Address: "127.0.0.1:8080", Protocol: HTTP,
			DefaultAction: Action{Type: ActionForward, TargetGroup: "web"},
			IdleTimeout:   60 * time.Second,
			DesyncMode:    desync.Defensive, XFFMode: XFFAppend, TraceHeader: "X-Amzn-Trace-Id",
			HTTP2: true,
		}},
		TargetGroups: []TargetGroup{{
			Name:        "web",
			Targets:     []Target{{ID: "127.0.0.1:9001", Weight: 1}},
			HealthCheck: albHealthCheck(),
			Stickiness: Stickiness{
				Enabled: false, Type: LBCookie, LBCookieDuration: 86400 * time.Second,
				AppCookieDuration: 86400 * time.Second, HeaderDuration: 86400 * time.Second,
				Cookie: Cookie{Name: "AWSALB", CORS: true, Path: "/"},
			},
			Algorithm:           RoundRobin,
			ProtocolVersion:     HTTP1,
			DeregistrationDelay: 300 * time.Second,
			ConnectTimeout:      10 * time.Second,
			MinHealthyCount:     1,
			MinHealthyPercent:   0,
			PassiveHealth:       latchPassiveHealth,
			Retry:               latchRetry,
		}},
		StateDir: filepath.Join(dir, "latch-state"),
		Admin:    DefaultAdmin(),
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestParseExample(t *testing.T) {
	dir := t.TempDir()
	cfg := mustParse(t, example, filepath.Join(dir, "latch.yaml"))
	want := &Config{
		Listeners: []Listener{{
			Name: "public", Address: "127.0.0.1:8080", Protocol: HTTP,
			DefaultAction: Action{Type: ActionForward, TargetGroup: "web"},
			IdleTimeout:   60 * time.Second,
			DesyncMode:    desync.Defensive, XFFMode: XFFAppend, TraceHeader: "X-Amzn-Trace-Id",
			HTTP2: true,
		}},
		TargetGroups: []TargetGroup{{
			Name:    "web",
			Targets: []Target{{ID: "127.0.0.1:9001", Weight: 1}, {ID: "127.0.0.1:9002", Weight: 2}},
			HealthCheck: HealthCheck{
				Enabled: true, Protocol: HTTP, Path: "/healthz",
				Interval: 5 * time.Second, Timeout: 2 * time.Second,
				HealthyThreshold: 2, UnhealthyThreshold: 2,
				Matcher: Matcher{{200, 399}}, UserAgent: "ELB-HealthChecker/2.0",
			},
			Stickiness: Stickiness{
				Enabled: true, Type: LBCookie, LBCookieDuration: 86400 * time.Second,
				AppCookieDuration: 86400 * time.Second, HeaderDuration: 86400 * time.Second,
				Cookie: Cookie{Name: "AWSALB", CORS: true, Path: "/"},
			},
			Algorithm:           RoundRobin,
			ProtocolVersion:     HTTP1,
			DeregistrationDelay: 30 * time.Second,
			ConnectTimeout:      10 * time.Second,
			MinHealthyCount:     1,
			PassiveHealth:       latchPassiveHealth,
			Retry:               latchRetry,
		}},
		StateDir: filepath.Join(dir, "latch-state"),
		Admin:    DefaultAdmin(),
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
	if got := cfg.TargetGroup("web"); got != &cfg.TargetGroups[0] {
		t.Errorf("TargetGroup(web) = %p, want %p", got, &cfg.TargetGroups[0])
	}
	if got := cfg.TargetGroup("api"); got != nil {
		t.Errorf("TargetGroup(api) = %+v, want nil", got)
	}
}

// TestParseFractionsAndYAMLScalars checks that values YAML types as numbers
// or booleans (unquoted) read as the same strings ALB takes, and that
// fractional seconds work where latch allows them.
func TestParseFractionsAndYAMLScalars(t *testing.T) {
	cfg := mustParse(t, minimal+`    health_check:
      interval_seconds: 0.1
      timeout_seconds: 0.05
    attributes:
      stickiness.enabled: true
      stickiness.lb_cookie.duration_seconds: 86400
      deregistration_delay.timeout_seconds: 0.5
      target_connect.timeout_seconds: 0.25
`, "")
	g := cfg.TargetGroups[0]
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"interval", g.HealthCheck.Interval, 100 * time.Millisecond},
		{"timeout", g.HealthCheck.Timeout, 50 * time.Millisecond},
		{"stickiness duration", g.Stickiness.LBCookieDuration, 86400 * time.Second},
		{"deregistration delay", g.DeregistrationDelay, 500 * time.Millisecond},
		{"connect timeout", g.ConnectTimeout, 250 * time.Millisecond},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if !g.Stickiness.Enabled {
		t.Errorf("stickiness.enabled: true (unquoted): got disabled, want enabled")
	}
}

// TestParseEveryKey sets every key and attribute latch knows to a value
// other than its default.
func TestParseEveryKey(t *testing.T) {
	dir := t.TempDir()
	cfg := mustParse(t, `listeners:
  - name: public
    address: ":0"
    protocol: HTTP
    default_action:
      type: forward
      forward:
        target_group: api
    attributes:
      idle_timeout.timeout_seconds: "4000"
      routing.http.desync_mitigation_mode: strictest
      routing.http.xff_header_processing.mode: remove
      routing.http.xff_client_port.enabled: "true"
      routing.http.drop_invalid_header_fields.enabled: "true"
      routing.http.preserve_host_header.enabled: "true"
      routing.http.trace_header.name: X-Trace
      routing.http2.enabled: "false"
  - name: second
    address: "[::1]:0"
    default_action: {type: forward, forward: {target_group: api}}
target_groups:
  - name: api
    protocol_version: HTTP2
    targets:
      - id: backend.internal:80
        weight: 1000
      - id: "[::1]:65535"
        weight: 1
    health_check:
      enabled: "false"
      protocol: HTTP
      port: "8081"
      path: /status?full=1
      interval_seconds: 300
      timeout_seconds: 120
      healthy_threshold_count: 10
      unhealthy_threshold_count: 10
      matcher: "200,202, 300-302"
      user_agent: latch-test/1.0
    attributes:
      stickiness.enabled: "false"
      stickiness.type: lb_cookie
      stickiness.lb_cookie.duration_seconds: "604800"
      stickiness.lb_cookie.name: LATCH_session-1
      stickiness.lb_cookie.cors_cookie.enabled: "false"
      stickiness.lb_cookie.secure: "true"
      stickiness.lb_cookie.http_only: "true"
      stickiness.lb_cookie.same_site: lax
      stickiness.lb_cookie.domain: example.com
      stickiness.lb_cookie.path: /app
      load_balancing.algorithm.type: least_outstanding_requests
      deregistration_delay.timeout_seconds: "0"
      target_group_health.unhealthy_state_routing.minimum_healthy_targets.count: "3"
      target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage: "50"
      target_connect.timeout_seconds: "120"
      passive_health.enabled: "false"
      passive_health.consecutive_failures: "7"
      passive_health.target_5xx.enabled: "true"
      passive_health.ejection_seconds: "0.5"
      passive_health.max_ejection_seconds: "60"
      passive_health.max_ejected_percent: "0"
      retry.idempotent.enabled: "false"
      retry.on_timeout.enabled: "false"
      retry.budget.percent: "100"
      retry.budget.min_per_second: "0"
  - name: w-2
    targets: []
    health_check:
      port: traffic-port
    attributes:
      load_balancing.algorithm.type: weighted_random
      target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage: "off"
      stickiness.lb_cookie.same_site: ""
state_dir: /var/lib/latch
cookie_keys:
  - id: 4294967295
    secret: `+key1+`
  - id: 1
    secret: "`+key2+`"
admin:
  enabled: false
  address: "[::1]:0"
  token_file: secrets/admin.token
`, filepath.Join(dir, "latch.yaml"))
	want := &Config{
		Listeners: []Listener{
			{Name: "public", Address: ":0", Protocol: HTTP,
				DefaultAction: Action{Type: ActionForward, TargetGroup: "api"}, IdleTimeout: 4000 * time.Second, DesyncMode: desync.Strictest, XFFMode: XFFRemove, XFFClientPort: true, DropInvalidHeaders: true, TraceHeader: "X-Trace"},
			{Name: "second", Address: "[::1]:0", Protocol: HTTP,
				DefaultAction: Action{Type: ActionForward, TargetGroup: "api"}, IdleTimeout: 60 * time.Second, DesyncMode: desync.Defensive, HTTP2: true, XFFMode: XFFAppend, TraceHeader: "X-Amzn-Trace-Id"},
		},
		TargetGroups: []TargetGroup{
			{
				Name:    "api",
				Targets: []Target{{ID: "backend.internal:80", Weight: 1000}, {ID: "[::1]:65535", Weight: 1}},
				HealthCheck: HealthCheck{
					Enabled: false, Protocol: HTTP, Port: 8081, Path: "/status?full=1",
					Interval: 300 * time.Second, Timeout: 120 * time.Second,
					HealthyThreshold: 10, UnhealthyThreshold: 10,
					Matcher:   Matcher{{200, 200}, {202, 202}, {300, 302}},
					UserAgent: "latch-test/1.0",
				},
				Stickiness: Stickiness{
					Enabled: false, Type: LBCookie, LBCookieDuration: 604800 * time.Second,
					AppCookieDuration: 86400 * time.Second, HeaderDuration: 86400 * time.Second,
					Cookie: Cookie{Name: "LATCH_session-1", CORS: false, Path: "/app", Domain: "example.com",
						SameSite: SameSiteLax, Secure: true, HTTPOnly: true},
				},
				Algorithm:           LeastOutstandingRequests,
				ProtocolVersion:     HTTP2,
				DeregistrationDelay: 0,
				ConnectTimeout:      120 * time.Second,
				MinHealthyCount:     3,
				MinHealthyPercent:   50,
				PassiveHealth: PassiveHealth{ConsecutiveFailures: 7, Target5xx: true, Ejection: 500 * time.Millisecond,
					MaxEjection: time.Minute},
				Retry: Retry{BudgetPercent: 100},
			},
			{
				Name:        "w-2",
				HealthCheck: albHealthCheck(),
				Stickiness: Stickiness{Type: LBCookie, LBCookieDuration: 86400 * time.Second,
					AppCookieDuration: 86400 * time.Second, HeaderDuration: 86400 * time.Second,
					Cookie: Cookie{Name: "AWSALB", CORS: true, Path: "/"}},
				Algorithm:           WeightedRandom,
				ProtocolVersion:     HTTP1,
				DeregistrationDelay: 300 * time.Second,
				ConnectTimeout:      10 * time.Second,
				MinHealthyCount:     1,
				PassiveHealth:       latchPassiveHealth,
				Retry:               latchRetry,
			},
		},
		StateDir:   "/var/lib/latch",
		CookieKeys: []CookieKey{{ID: 4294967295, Secret: secret1}, {ID: 1, Secret: secret2}},
		Admin:      Admin{Address: "[::1]:0", TokenFile: filepath.Join(dir, "secrets/admin.token")},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestStateDir(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, stateDir, file, want string
	}{
		{"default, no file", "", "", "latch-state"},
		{"default beside the file", "", filepath.Join(dir, "latch.yaml"), filepath.Join(dir, "latch-state")},
		{"relative to the file", "state_dir: ./s\n", filepath.Join(dir, "etc", "latch.yaml"), filepath.Join(dir, "etc", "s")},
		{"relative file name", "state_dir: s\n", filepath.Join("conf", "latch.yaml"), filepath.Join("conf", "s")},
		{"absolute", "state_dir: /srv/latch\n", filepath.Join(dir, "latch.yaml"), "/srv/latch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustParse(t, minimal+c.stateDir, c.file)
			if cfg.StateDir != c.want {
				t.Errorf("StateDir: got %q, want %q", cfg.StateDir, c.want)
			}
		})
	}
}

func TestCookieKeySecretFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A trailing newline, as `openssl rand -base64 32 > file` leaves.
	if err := os.WriteFile(filepath.Join(dir, "keys", "k1"), []byte(key1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "k2")
	if err := os.WriteFile(abs, []byte(key2), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, minimal+`cookie_keys:
  - id: 7
    secret_file: keys/k1
  - id: 8
    secret_file: `+abs+`
`, filepath.Join(dir, "latch.yaml"))
	want := []CookieKey{{ID: 7, Secret: secret1}, {ID: 8, Secret: secret2}}
	if !reflect.DeepEqual(cfg.CookieKeys, want) {
		t.Errorf("CookieKeys: got %+v, want %+v", cfg.CookieKeys, want)
	}

	// The same file name is not found relative to another directory (such
	// as the working directory).
	_, err := Parse([]byte(minimal+"cookie_keys:\n  - id: 7\n    secret_file: keys/k1\n"), filepath.Join(dir, "other", "latch.yaml"))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "cookie_keys[0].secret_file" || ps[0].Line != 13 {
		t.Errorf("secret_file relative to another directory: got %v, want one problem at line 13, cookie_keys[0].secret_file", err)
	}
}

type wantProblem struct {
	line int
	path string
	msg  string // a distinctive part of the message; all of it when exact
}

// checkProblems parses data as latch.yaml and checks that it has exactly
// the problems want, in order. A message must contain want's msg, or be it
// when exact.
func checkProblems(t *testing.T, data string, want []wantProblem, exact bool) {
	t.Helper()
	cfg, err := Parse([]byte(data), "latch.yaml")
	if err == nil {
		t.Fatalf("got no error, want %d problems", len(want))
	}
	if cfg != nil {
		t.Errorf("got a config with an error, want nil")
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got error %T %v, want Problems", err, err)
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		p := ps[i]
		msgOK, how := strings.Contains(p.Msg, w.msg), "containing "
		if exact {
			msgOK, how = p.Msg == w.msg, ""
		}
		if p.File != "latch.yaml" || p.Line != w.line || p.Path != w.path || !msgOK {
			t.Errorf("problem %d: got %q (file %q, line %d, path %q, msg %q),\nwant file \"latch.yaml\", line %d, path %q, msg %s%q",
				i, p.Error(), p.File, p.Line, p.Path, p.Msg, w.line, w.path, how, w.msg)
		}
	}
}

func TestParseProblems(t *testing.T) {
	const tg = "target_groups[0]"
	const attrs = tg + ".attributes"
	const hc = tg + ".health_check"
	attr := func(key string) string { return attrs + `["` + key + `"]` }
	one := func(line int, path, msg string) []wantProblem { return []wantProblem{{line, path, msg}} }

	cases := []struct {
		name string
		yaml string
		want []wantProblem
	}{
		// Unknown keys and attributes.
		{"unknown top-level key", minimal + "stat_dir: /tmp\n",
			one(11, "stat_dir", `unknown key; did you mean "state_dir"?`)},
		{"unknown key, nothing close", minimal + "frobnicate: 1\n",
			one(11, "frobnicate", "unknown key")},
		{"unknown nested key", minimal + "    health_check:\n      matchr: \"200\"\n",
			one(12, hc+".matchr", `unknown key; did you mean "matcher"?`)},
		{"unknown listener key", listenerLast + "    protocl: HTTP\n",
			one(11, "listeners[0].protocl", `did you mean "protocol"?`)},
		{"unknown target key", minimal + "      - id: 127.0.0.1:9002\n        wieght: 2\n",
			one(12, tg+".targets[1].wieght", `did you mean "weight"?`)},
		{"misspelt attribute", minimal + "    attributes:\n      stickness.enabled: \"true\"\n",
			one(12, attr("stickness.enabled"), `unknown attribute; did you mean "stickiness.enabled"?`)},
		{"group attribute on a listener", listenerLast + "    attributes:\n      stickiness.enabled: \"true\"\n",
			one(12, `listeners[0].attributes["stickiness.enabled"]`, "unknown attribute")},
		{"ALB attribute not supported yet", minimal + "    attributes:\n      load_balancing.cross_zone.enabled: \"true\"\n",
			one(12, attr("load_balancing.cross_zone.enabled"), "this ALB attribute is not supported yet by latch")},

		// Enumerations.
		{"stickiness type typo", minimal + "    attributes:\n      stickiness.type: lb_cookies\n",
			one(12, attr("stickiness.type"), `"lb_cookies" is not one of lb_cookie, app_cookie, header, source_ip, hash; did you mean "lb_cookie"?`)},
		{"stickiness type of a gateway", minimal + "    attributes:\n      stickiness.type: source_ip_dest_ip\n",
			one(12, attr("stickiness.type"), `"source_ip_dest_ip" is a Gateway Load Balancer type`)},
		{"app_cookie without a name", minimal + "    attributes:\n      stickiness.enabled: \"true\"\n      stickiness.type: app_cookie\n",
			one(12, attr("stickiness.app_cookie.cookie_name"), "missing: you must set an application cookie name to enable stickiness of type 'app_cookie' (as ALB)")},
		{"app_cookie reserved name", minimal + "    attributes:\n      stickiness.app_cookie.cookie_name: AWSALBfoo\n",
			one(12, attr("stickiness.app_cookie.cookie_name"), `"AWSALBfoo" starts with AWSALB, a prefix ALB reserves`)},
		{"app_cookie duration", minimal + "    attributes:\n      stickiness.app_cookie.duration_seconds: 604801\n",
			one(12, attr("stickiness.app_cookie.duration_seconds"), "604801 is outside 1-604800 seconds")},
		{"header without a name", minimal + "    attributes:\n      stickiness.enabled: \"true\"\n      stickiness.type: header\n",
			one(12, attr("stickiness.header.name"), "missing: stickiness of type 'header' needs the header's name")},
		{"header named Cookie", minimal + "    attributes:\n      stickiness.header.name: Cookie\n",
			one(12, attr("stickiness.header.name"), `"Cookie" is a header latch or HTTP itself uses`)},
		{"hash with both keys", minimal + "    attributes:\n      stickiness.enabled: \"true\"\n      stickiness.type: hash\n      stickiness.hash.header: X-User\n      stickiness.hash.cookie: sid\n",
			one(14, attr("stickiness.hash.header"), "needs exactly one of stickiness.hash.header and stickiness.hash.cookie")},
		{"trusted proxies typo", minimal + "    attributes:\n      stickiness.type: source_ip\n      stickiness.source_ip.trusted_proxies: 10.0.0.0/8, 10.1.2\n",
			one(13, attr("stickiness.source_ip.trusted_proxies"), `"10.1.2" is not an address or CIDR`)},
		{"hash factor on a cookie group", minimal + "    attributes:\n      load_balancing.hash.balance_factor: 1.25\n",
			one(12, attr("load_balancing.hash.balance_factor"), "applies only to stickiness.type source_ip or hash (this group's is lb_cookie)")},
		{"balance factor 1", minimal + "    attributes:\n      stickiness.balance_factor: 1\n",
			one(12, attr("stickiness.balance_factor"), "1 is outside 1-10 (exclusive of 1), or 0 for off")},
		{"lifetime typo", minimal + "    attributes:\n      stickiness.lb_cookie.lifetime: sesion\n",
			one(12, attr("stickiness.lb_cookie.lifetime"), `did you mean "session"?`)},
		{"protocol version typo", minimal + "    protocol_version: HTTP/2\n",
			one(11, tg+".protocol_version", `"HTTP/2" is not one of HTTP1, HTTP2`)},
		{"protocol version GRPC", minimal + "    protocol_version: GRPC\n",
			one(11, tg+".protocol_version", "GRPC target groups are not supported yet")},
		{"slow start too short", minimal + "    attributes:\n      slow_start.duration_seconds: 20\n",
			one(12, attr("slow_start.duration_seconds"), "20 is outside 30-900 seconds, or 0 for off")},
		{"slow start with weighted_random", minimal + "    attributes:\n      slow_start.duration_seconds: 30\n      load_balancing.algorithm.type: weighted_random\n",
			one(12, attr("slow_start.duration_seconds"), "slow start works only with round_robin (this group uses weighted_random), as ALB's")},
		{"anomaly mitigation with round_robin", minimal + "    attributes:\n      load_balancing.algorithm.anomaly_mitigation: \"on\"\n",
			one(12, attr("load_balancing.algorithm.anomaly_mitigation"), "anomaly mitigation works only with weighted_random (this group uses round_robin), as ALB's")},
		{"passive failures zero", minimal + "    attributes:\n      passive_health.consecutive_failures: \"0\"\n",
			one(12, attr("passive_health.consecutive_failures"), "0 is outside 1-1000")},
		{"passive failures not a number", minimal + "    attributes:\n      passive_health.consecutive_failures: three\n",
			one(12, attr("passive_health.consecutive_failures"), `"three" is not a whole number`)},
		{"ejected percent over 100", minimal + "    attributes:\n      passive_health.max_ejected_percent: \"150\"\n",
			one(12, attr("passive_health.max_ejected_percent"), "150 is outside 0-100")},
		{"max ejection shorter than ejection", minimal + "    attributes:\n      passive_health.ejection_seconds: \"60\"\n      passive_health.max_ejection_seconds: \"10\"\n",
			one(13, attr("passive_health.max_ejection_seconds"), "10 is shorter than passive_health.ejection_seconds (60)")},
		{"retry on timeout without idempotent retries", minimal + "    attributes:\n      retry.idempotent.enabled: \"false\"\n      retry.on_timeout.enabled: \"true\"\n",
			one(13, attr("retry.on_timeout.enabled"), "retry.idempotent.enabled is false")},
		{"retry budget negative", minimal + "    attributes:\n      retry.budget.min_per_second: \"-1\"\n",
			one(12, attr("retry.budget.min_per_second"), "-1 is outside 0-10000")},
		{"algorithm typo", minimal + "    attributes:\n      load_balancing.algorithm.type: least_outstanding_request\n",
			one(12, attr("load_balancing.algorithm.type"), `did you mean "least_outstanding_requests"?`)},
		{"same_site", minimal + "    attributes:\n      stickiness.lb_cookie.same_site: Loose\n",
			one(12, attr("stickiness.lb_cookie.same_site"), `"Loose" is not one of Lax, Strict, None`)},
		{"listener protocol", listenerLast + "    protocol: TCP\n",
			one(11, "listeners[0].protocol", `"TCP" is not one of HTTP, HTTPS`)},
		{"health check protocol", minimal + "    health_check:\n      protocol: HTTPS\n",
			one(12, hc+".protocol", "HTTPS health checks are not supported yet")},
		{"action type typo", "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    default_action:\n      type: froward\n" +
			"target_groups:\n  - name: web\n    targets: []\n",
			one(5, "listeners[0].default_action.type", `"froward" is not one of forward, redirect, fixed-response; did you mean "forward"?`)},

		// Ranges.
		{"stickiness duration 0", minimal + "    attributes:\n      stickiness.lb_cookie.duration_seconds: 0\n",
			one(12, attr("stickiness.lb_cookie.duration_seconds"), "0 is outside 1-604800 seconds")},
		{"stickiness duration 604801", minimal + "    attributes:\n      stickiness.lb_cookie.duration_seconds: \"604801\"\n",
			one(12, attr("stickiness.lb_cookie.duration_seconds"), "604801 is outside 1-604800 seconds")},
		{"stickiness duration fraction", minimal + "    attributes:\n      stickiness.lb_cookie.duration_seconds: \"1.5\"\n",
			one(12, attr("stickiness.lb_cookie.duration_seconds"), "1.5 is not a whole number of seconds")},
		{"deregistration delay 3601", minimal + "    attributes:\n      deregistration_delay.timeout_seconds: \"3601\"\n",
			one(12, attr("deregistration_delay.timeout_seconds"), "3601 is outside 0-3600 seconds")},
		{"deregistration delay negative", minimal + "    attributes:\n      deregistration_delay.timeout_seconds: \"-1\"\n",
			one(12, attr("deregistration_delay.timeout_seconds"), "-1 is outside 0-3600 seconds")},
		{"idle timeout 0", listenerLast + "    attributes:\n      idle_timeout.timeout_seconds: \"0\"\n",
			one(12, `listeners[0].attributes["idle_timeout.timeout_seconds"]`, "0 is outside 0.05-4000 seconds")},
		{"desync mode misspelt", listenerLast + "    attributes:\n      routing.http.desync_mitigation_mode: defensiv\n",
			one(12, `listeners[0].attributes["routing.http.desync_mitigation_mode"]`, `"defensiv" is not one of monitor, defensive, strictest; did you mean "defensive"?`)},
		{"minimum healthy percentage 101", minimal + "    attributes:\n      target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage: \"101\"\n",
			one(12, attr("target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage"), "101 is outside 1-100, or off")},
		{"minimum healthy count 0", minimal + "    attributes:\n      target_group_health.unhealthy_state_routing.minimum_healthy_targets.count: \"0\"\n",
			one(12, attr("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count"), "0 is outside 1-2147483647")},
		{"healthy threshold 1", minimal + "    health_check:\n      healthy_threshold_count: 1\n",
			one(12, hc+".healthy_threshold_count", "1 is outside 2-10")},
		{"unhealthy threshold 11", minimal + "    health_check:\n      unhealthy_threshold_count: 11\n",
			one(12, hc+".unhealthy_threshold_count", "11 is outside 2-10")},
		{"interval 0.01", minimal + "    health_check:\n      interval_seconds: 0.01\n",
			one(12, hc+".interval_seconds", "0.01 is outside 0.05-300 seconds")},
		{"interval 301", minimal + "    health_check:\n      interval_seconds: 301\n",
			one(12, hc+".interval_seconds", "301 is outside 0.05-300 seconds")},
		{"timeout 121", minimal + "    health_check:\n      interval_seconds: 300\n      timeout_seconds: 121\n",
			one(13, hc+".timeout_seconds", "121 is outside 0.05-120 seconds")},
		{"health check port 0", minimal + "    health_check:\n      port: 0\n",
			one(12, hc+".port", "0 is outside 1-65535, or traffic-port")},
		{"health check path", minimal + "    health_check:\n      path: healthz\n",
			one(12, hc+".path", `"healthz" must start with /`)},
		{"weight 0", minimal + "      - id: 127.0.0.1:9002\n        weight: 0\n",
			one(12, tg+".targets[1].weight", "0 is outside 1-1000")},
		{"weight 1001", minimal + "      - id: 127.0.0.1:9002\n        weight: 1001\n",
			one(12, tg+".targets[1].weight", "1001 is outside 1-1000")},

		// Wrongly typed scalars.
		{"non-numeric weight", minimal + "      - id: 127.0.0.1:9002\n        weight: heavy\n",
			one(12, tg+".targets[1].weight", `"heavy" is not a whole number`)},
		{"empty weight", minimal + "      - id: 127.0.0.1:9002\n        weight: \"\"\n",
			one(12, tg+".targets[1].weight", `"" is not a whole number`)},
		{"fractional threshold", minimal + "    health_check:\n      healthy_threshold_count: 2.5\n",
			one(12, hc+".healthy_threshold_count", `"2.5" is not a whole number`)},
		{"non-numeric seconds", minimal + "    attributes:\n      deregistration_delay.timeout_seconds: soon\n",
			one(12, attr("deregistration_delay.timeout_seconds"), `"soon" is not a number of seconds`)},
		{"infinite seconds", minimal + "    health_check:\n      interval_seconds: .inf\n",
			one(12, hc+".interval_seconds", `".inf" is not a number of seconds`)},
		{"bad boolean attribute", minimal + "    attributes:\n      stickiness.enabled: \"yes\"\n",
			one(12, attr("stickiness.enabled"), `"yes" is not true or false`)},
		{"bad boolean health check", minimal + "    health_check:\n      enabled: yes\n",
			one(12, hc+".enabled", `"yes" is not true or false`)},

		// Matchers.
		{"matcher 600", minimal + "    health_check:\n      matcher: \"600\"\n",
			one(12, hc+".matcher", "status code 600 is outside 200-499")},
		{"matcher 199", minimal + "    health_check:\n      matcher: \"199\"\n",
			one(12, hc+".matcher", "status code 199 is outside 200-499")},
		{"matcher abc", minimal + "    health_check:\n      matcher: abc\n",
			one(12, hc+".matcher", `"abc" is not an HTTP status code`)},
		{"matcher reversed range", minimal + "    health_check:\n      matcher: 300-200\n",
			one(12, hc+".matcher", `range "300-200" ends before it starts`)},
		{"matcher empty", minimal + "    health_check:\n      matcher: \"\"\n",
			one(12, hc+".matcher", "empty matcher")},

		// Timeout and interval.
		{"timeout equals interval", minimal + "    health_check:\n      interval_seconds: 5\n      timeout_seconds: 5\n",
			one(13, hc+".timeout_seconds", "the timeout (5s) must be shorter than the interval (5s)")},
		{"timeout beyond interval", minimal + "    health_check:\n      timeout_seconds: 10\n      interval_seconds: 6\n",
			one(12, hc+".timeout_seconds", "the timeout (10s) must be shorter than the interval (6s)")},
		{"interval within the default timeout", minimal + "    health_check:\n      interval_seconds: 4\n",
			one(12, hc+".interval_seconds", "the interval (4s) must be longer than the timeout (5s)")},
		{"bad timeout is not also compared", minimal + "    health_check:\n      interval_seconds: 3\n      timeout_seconds: fast\n",
			one(13, hc+".timeout_seconds", `"fast" is not a number of seconds`)},

		// Missing fields.
		{"no listeners", "target_groups:\n  - name: web\n    targets: []\n",
			one(0, "listeners", "missing; at least one is needed")},
		{"empty listeners", "listeners: []\ntarget_groups:\n  - name: web\n    targets: []\n",
			one(1, "listeners", "empty; at least one is needed")},
		{"no target groups", "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    default_action:\n      type: redirect\n",
			[]wantProblem{{0, "target_groups", "missing; at least one is needed"},
				{5, "listeners[0].default_action.redirect", "missing"}}},
		{"listener name", "listeners:\n  - address: 127.0.0.1:8080\n    default_action: {type: forward, forward: {target_group: web}}\n" +
			"target_groups:\n  - name: web\n",
			one(2, "listeners[0].name", "missing")},
		{"listener address", "listeners:\n  - name: public\n    default_action: {type: forward, forward: {target_group: web}}\n" +
			"target_groups:\n  - name: web\n",
			one(2, "listeners[0].address", "missing")},
		{"listener default action", "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n" +
			"target_groups:\n  - name: web\n",
			one(2, "listeners[0].default_action", "missing")},
		{"action type", "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    default_action:\n      forward: {target_group: web}\n" +
			"target_groups:\n  - name: web\n",
			one(5, "listeners[0].default_action.type", "missing")},
		{"forward", "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    default_action:\n      type: forward\n" +
			"target_groups:\n  - name: web\n",
			one(5, "listeners[0].default_action.forward", "missing")},
		{"forward target group", "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    default_action:\n      type: forward\n      forward: {}\n" +
			"target_groups:\n  - name: web\n",
			one(6, "listeners[0].default_action.forward.target_group", "missing")},
		{"target group name", strings.Replace(listenerLast, "  - name: web\n    targets:", "  - targets:", 1),
			// The reference to "web" then fails too.
			[]wantProblem{{2, "target_groups[0].name", "missing"},
				{9, "listeners[0].default_action.forward.target_group", `no target group is named "web"`}}},
		{"target id", minimal + "      - weight: 2\n",
			one(11, tg+".targets[1].id", "missing")},

		// Empty values.
		{"empty listener name", strings.Replace(listenerLast, "name: public", `name: ""`, 1),
			one(6, "listeners[0].name", `"" is not a valid name`)},
		{"empty target group reference", "listeners:\n  - name: public\n    address: 127.0.0.1:8080\n    default_action:\n      type: forward\n      forward: {target_group: \"\"}\n" +
			"target_groups:\n  - name: web\n",
			one(6, "listeners[0].default_action.forward.target_group", "empty; it must name a target group")},
		{"empty state_dir", minimal + "state_dir: \"\"\n",
			one(11, "state_dir", "must not be empty")},

		// Addresses.
		{"listener address without port", strings.Replace(minimal, "127.0.0.1:8080", "127.0.0.1", 1),
			one(3, "listeners[0].address", `"127.0.0.1" is not a host:port address`)},
		{"listener port 70000", strings.Replace(minimal, "127.0.0.1:8080", "127.0.0.1:70000", 1),
			one(3, "listeners[0].address", `"127.0.0.1:70000" has an invalid port "70000"`)},
		{"listener port name", strings.Replace(minimal, "127.0.0.1:8080", "127.0.0.1:http", 1),
			one(3, "listeners[0].address", `has an invalid port "http"`)},
		{"target port 0", strings.Replace(minimal, "127.0.0.1:9001", "127.0.0.1:0", 1),
			one(10, tg+".targets[0].id", `"127.0.0.1:0" has an invalid port "0"`)},
		{"target without host", strings.Replace(minimal, "127.0.0.1:9001", "\":9001\"", 1),
			one(10, tg+".targets[0].id", `":9001" has no host`)},
		{"target without port", strings.Replace(minimal, "127.0.0.1:9001", "10.0.0.1", 1),
			one(10, tg+".targets[0].id", `"10.0.0.1" is not a host:port address`)},
		{"target id too long", strings.Replace(minimal, "127.0.0.1:9001", strings.Repeat("a", 250)+".com:9001", 1),
			one(10, tg+".targets[0].id", "longer than 255 characters")},

		// Duplicates.
		{"duplicate listener name", strings.Replace(minimal, "target_groups:",
			"  - address: 127.0.0.1:8081\n    name: public\n    default_action: {type: forward, forward: {target_group: web}}\ntarget_groups:", 1),
			one(8, "listeners[1].name", `duplicate listener name "public"`)},
		{"duplicate group name", minimal + "  - name: web\n    targets: []\n",
			one(11, "target_groups[1].name", `duplicate target group name "web"`)},
		{"duplicate target", minimal + "      - id: 127.0.0.1:9001\n",
			one(11, tg+".targets[1].id", "target 127.0.0.1:9001 is listed twice")},
		{"duplicate key", minimal + "    name: api\n",
			one(11, tg+".name", "key set twice")},
		{"duplicate attribute", minimal + "    attributes:\n      stickiness.enabled: \"true\"\n      stickiness.enabled: \"false\"\n",
			one(13, attr("stickiness.enabled"), "attribute set twice")},
		{"duplicate cookie key id", minimal + "cookie_keys:\n  - id: 1\n    secret: " + key1 + "\n  - secret: " + key2 + "\n    id: 1\n",
			one(15, "cookie_keys[1].id", "duplicate key id 1")},

		// References.
		{"missing target group", strings.Replace(minimal, "{target_group: web}", "{target_group: wbe}", 1),
			one(6, "listeners[0].default_action.forward.target_group", `no target group is named "wbe"; did you mean "web"?`)},
		{"missing target group, nothing close", strings.Replace(minimal, "{target_group: web}", "{target_group: backend}", 1),
			one(6, "listeners[0].default_action.forward.target_group", `no target group is named "backend"`)},

		// Not supported yet.
		{"HTTPS listener without certificates", listenerLast + "    protocol: HTTPS\n",
			one(6, "listeners[0].certificates", "missing; an HTTPS listener needs at least one certificate")},
		{"redirect action with forward settings", strings.Replace(minimal, "type: forward", "type: redirect", 1),
			[]wantProblem{{5, "listeners[0].default_action.redirect", "missing"},
				{6, "listeners[0].default_action.forward", "set only with type: forward (this action is type: redirect)"}}},

		// Node kinds.
		{"list for a mapping", minimal + "    health_check:\n      - path: /\n",
			one(12, hc, "expected a mapping, got a list")},
		{"mapping for an attribute value", minimal + "    attributes:\n      stickiness.enabled: {value: true}\n",
			one(12, attr("stickiness.enabled"), "expected a value (a string or a scalar), got a mapping")},
		{"null attribute value", minimal + "    attributes:\n      stickiness.enabled:\n",
			one(12, attr("stickiness.enabled"), "got nothing")},
		{"list of attributes", minimal + "    attributes:\n      - stickiness.enabled\n",
			one(12, attrs, "expected a mapping of attribute keys to values, got a list")},
		{"scalar for a list", minimal + "    targets: 127.0.0.1:9002\n",
			// targets is set twice; the second is reported and ignored.
			one(11, tg+".targets", "key set twice")},
		{"mapping for listeners", "listeners: {name: public}\ntarget_groups:\n  - name: web\n",
			one(1, "listeners", "expected a list, got a mapping")},
		{"list for a scalar", strings.Replace(minimal, "address: 127.0.0.1:8080", "address: [127.0.0.1:8080]", 1),
			one(3, "listeners[0].address", "expected a string, got a list")},
		{"list for a protocol", listenerLast + "    protocol: [HTTP]\n",
			one(11, "listeners[0].protocol", "expected a string, got a list")},
		{"mapping for an action type", strings.Replace(minimal, "type: forward", "type: {forward: true}", 1),
			one(5, "listeners[0].default_action.type", "expected a string, got a mapping")},
		{"null weight", minimal + "      - id: 127.0.0.1:9002\n        weight:\n",
			one(12, tg+".targets[1].weight", "expected a string, got nothing")},
		{"list for a matcher", minimal + "    health_check:\n      matcher: [200]\n",
			one(12, hc+".matcher", "expected a string, got a list")},
		{"scalar target", minimal + "      - 127.0.0.1:9002\n",
			one(11, tg+".targets[1]", `expected a mapping, got "127.0.0.1:9002"`)},
		{"top-level list", "- listeners\n",
			one(1, "", "expected a mapping, got a list")},
		{"alias", strings.Replace(strings.Replace(listenerLast, "name: web", "name: &g web", 1), "{target_group: web}", "{target_group: *g}", 1),
			one(10, "listeners[0].default_action.forward.target_group", "expected a string, got an alias")},

		// Names.
		{"leading hyphen", strings.Replace(minimal, "name: web", "name: -web", 1),
			[]wantProblem{
				// The listener refers to web, which is now missing.
				{6, "listeners[0].default_action.forward.target_group", `no target group is named "web"; did you mean "-web"?`},
				{8, "target_groups[0].name", `"-web" is not a valid name`}}},
		{"33 characters", strings.Replace(minimal, "name: public", "name: "+strings.Repeat("a", 33), 1),
			one(2, "listeners[0].name", "is not a valid name: use 1-32 letters")},
		{"underscore", strings.Replace(minimal, "name: public", "name: pub_lic", 1),
			one(2, "listeners[0].name", `"pub_lic" is not a valid name`)},

		// Cookie attributes.
		{"reserved cookie name", minimal + "    attributes:\n      stickiness.lb_cookie.name: AWSALBAPP-0\n",
			one(12, attr("stickiness.lb_cookie.name"), `"AWSALBAPP-0" starts with AWSALBAPP, which ALB reserves`)},
		{"reserved target-group cookie name", minimal + "    attributes:\n      stickiness.lb_cookie.name: AWSALBTGCORS\n",
			one(12, attr("stickiness.lb_cookie.name"), "starts with AWSALBTG")},
		{"cookie name with a space", minimal + "    attributes:\n      stickiness.lb_cookie.name: my cookie\n",
			one(12, attr("stickiness.lb_cookie.name"), `"my cookie" is not a valid cookie name (character ' ')`)},
		{"cookie name with a semicolon", minimal + "    attributes:\n      stickiness.lb_cookie.name: \"a;b\"\n",
			one(12, attr("stickiness.lb_cookie.name"), `is not a valid cookie name (character ';')`)},
		{"empty cookie name", minimal + "    attributes:\n      stickiness.lb_cookie.name: \"\"\n",
			one(12, attr("stickiness.lb_cookie.name"), "empty cookie name")},
		{"cookie path", minimal + "    attributes:\n      stickiness.lb_cookie.path: app\n",
			one(12, attr("stickiness.lb_cookie.path"), `"app" is not a cookie path`)},
		{"cookie domain", minimal + "    attributes:\n      stickiness.lb_cookie.domain: \"a.com; b\"\n",
			one(12, attr("stickiness.lb_cookie.domain"), "is not a cookie domain")},

		// Cookie keys.
		{"bad base64", minimal + "cookie_keys:\n  - id: 1\n    secret: \"not base64!\"\n",
			one(13, "cookie_keys[0].secret", "the secret must be 32 bytes in standard base64")},
		{"short secret", minimal + "cookie_keys:\n  - id: 1\n    secret: AAAA\n",
			one(13, "cookie_keys[0].secret", "the secret must be 32 bytes")},
		{"URL-safe base64", minimal + "cookie_keys:\n  - id: 1\n    secret: " +
			base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + "\n",
			one(13, "cookie_keys[0].secret", "standard base64")},
		{"secret and secret_file", minimal + "cookie_keys:\n  - id: 1\n    secret: " + key1 + "\n    secret_file: k\n",
			one(14, "cookie_keys[0]", "set secret or secret_file, not both")},
		{"no secret", minimal + "cookie_keys:\n  - id: 1\n",
			one(12, "cookie_keys[0]", "missing secret or secret_file")},
		{"missing secret file", minimal + "cookie_keys:\n  - id: 1\n    secret_file: does-not-exist\n",
			one(13, "cookie_keys[0].secret_file", "no such file")},
		{"empty secret file name", minimal + "cookie_keys:\n  - id: 1\n    secret_file: \"\"\n",
			one(13, "cookie_keys[0].secret_file", "must not be empty")},
		{"key id 0", minimal + "cookie_keys:\n  - id: 0\n    secret: " + key1 + "\n",
			one(12, "cookie_keys[0].id", "0 is outside 1-4294967295")},
		{"key id 2^32", minimal + "cookie_keys:\n  - id: 4294967296\n    secret: " + key1 + "\n",
			one(12, "cookie_keys[0].id", "4294967296 is outside 1-4294967295")},
		{"key id not a number", minimal + "cookie_keys:\n  - id: one\n    secret: " + key1 + "\n",
			one(12, "cookie_keys[0].id", `"one" is not a whole number`)},
		{"key id missing", minimal + "cookie_keys:\n  - secret: " + key1 + "\n",
			one(12, "cookie_keys[0].id", "missing")},
		{"cookie_keys mapping", minimal + "cookie_keys:\n  id: 1\n",
			one(12, "cookie_keys", "expected a list, got a mapping")},

		// Documents.
		{"empty document", "", one(0, "", "the config is empty")},
		{"only a comment", "# nothing yet\n", one(0, "", "the config is empty")},
		{"only a document marker", "---\n", one(0, "", "the config is empty")},
		{"null document", "~\n", one(0, "", "the config is empty")},
		{"YAML syntax error", minimal + "    health_check: [\n",
			one(11, "", "YAML syntax: did not find expected node content")},
		{"YAML mapping in a scalar", minimal + "    health_check: path: /\n",
			one(11, "", "YAML syntax: mapping values are not allowed in this context")},
		{"tab indentation", "listeners:\n\t- name: public\n",
			one(2, "", "YAML syntax: found character that cannot start any token")},
		{"second document", minimal + "---\nstate_dir: /tmp\n",
			one(11, "", "a second YAML document")},
		{"syntax error in a second document", minimal + "---\n[\n",
			one(12, "", "YAML syntax: did not find expected node content")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkProblems(t, c.yaml, c.want, false)
		})
	}
}

func TestDuplicateListenerAddress(t *testing.T) {
	second := "  - name: private\n    address: 127.0.0.1:8080\n    default_action: {type: forward, forward: {target_group: web}}\n"
	checkProblems(t, strings.Replace(minimal, "target_groups:", second+"target_groups:", 1),
		[]wantProblem{{8, "listeners[1].address", "address 127.0.0.1:8080 is already used by another listener"}}, false)

	// Port 0 picks a free port, so it may be listed any number of times.
	anyPort := strings.ReplaceAll(strings.Replace(minimal, "target_groups:", second+"target_groups:", 1), "127.0.0.1:8080", "127.0.0.1:0")
	cfg := mustParse(t, anyPort, "")
	if len(cfg.Listeners) != 2 {
		t.Errorf("got %d listeners, want 2", len(cfg.Listeners))
	}
}

// TestParseManyProblems checks that one pass reports every mistake, sorted
// by line, wherever in the file each was found.
func TestParseManyProblems(t *testing.T) {
	const data = `listeners:
  - name: public
    address: 127.0.0.1
    default_action:
      type: forward
      forward: {target_group: wbe}
  - name: public
    address: 127.0.0.1:8081
    default_action: {type: redirect}
target_groups:
  - name: web
    targets:
      - id: 127.0.0.1:9001
        weight: 0
      - id: 127.0.0.1:9001
    health_check:
      matchr: "200"
      interval_seconds: 0.01
    attributes:
      stickness.enabled: "true"
      stickiness.type: lb_cookies
      slow_start.duration_seconds: "20"
stat_dir: /tmp
`
	want := []wantProblem{
		{3, "listeners[0].address", "is not a host:port address"},
		{6, "listeners[0].default_action.forward.target_group", `did you mean "web"?`},
		{7, "listeners[1].name", `duplicate listener name "public"`},
		{9, "listeners[1].default_action.redirect", "missing"},
		{14, "target_groups[0].targets[0].weight", "0 is outside 1-1000"},
		{15, "target_groups[0].targets[1].id", "listed twice"},
		{17, "target_groups[0].health_check.matchr", `did you mean "matcher"?`},
		{18, "target_groups[0].health_check.interval_seconds", "outside 0.05-300"},
		{20, `target_groups[0].attributes["stickness.enabled"]`, `did you mean "stickiness.enabled"?`},
		{21, `target_groups[0].attributes["stickiness.type"]`, `did you mean "lb_cookie"?`},
		{22, `target_groups[0].attributes["slow_start.duration_seconds"]`, "20 is outside 30-900 seconds"},
		{23, "stat_dir", `did you mean "state_dir"?`},
	}
	checkProblems(t, data, want, false)

	_, err := Parse([]byte(data), "/etc/latch.yaml")
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Problems.Error: got %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	if got, want := lines[0], `/etc/latch.yaml:3: listeners[0].address: "127.0.0.1" is not a host:port address`; got != want {
		t.Errorf("first line of Problems.Error:\ngot  %s\nwant %s", got, want)
	}
	if got, want := lines[len(lines)-1], `/etc/latch.yaml:23: stat_dir: unknown key; did you mean "state_dir"?`; got != want {
		t.Errorf("last line of Problems.Error:\ngot  %s\nwant %s", got, want)
	}
}

func TestProblemError(t *testing.T) {
	for _, c := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "latch.yaml", Line: 12, Path: "a.b", Msg: "bad"}, "latch.yaml:12: a.b: bad"},
		{Problem{File: "latch.yaml", Path: "listeners", Msg: "missing"}, "latch.yaml: listeners: missing"},
		{Problem{File: "latch.yaml", Msg: "empty"}, "latch.yaml: empty"},
		{Problem{Line: 3, Path: "x", Msg: "bad"}, "3: x: bad"},
		{Problem{Path: "x", Msg: "bad"}, "x: bad"},
		{Problem{Msg: "bad"}, "bad"},
	} {
		if got := c.p.Error(); got != c.want {
			t.Errorf("%+v.Error(): got %q, want %q", c.p, got, c.want)
		}
	}
	ps := Problems{{File: "f", Line: 1, Msg: "a"}, {File: "f", Line: 2, Path: "p", Msg: "b"}}
	if got, want := ps.Error(), "f:1: a\nf:2: p: b"; got != want {
		t.Errorf("Problems.Error: got %q, want %q", got, want)
	}
}

func TestParseMatcher(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Matcher
		str     string // String() of the result
		wantErr string
	}{
		{in: "200", want: Matcher{{200, 200}}, str: "200"},
		{in: "200,202", want: Matcher{{200, 200}, {202, 202}}, str: "200,202"},
		{in: "200-299", want: Matcher{{200, 299}}, str: "200-299"},
		{in: " 200 , 300 - 302 ,404", want: Matcher{{200, 200}, {300, 302}, {404, 404}}, str: "200,300-302,404"},
		{in: "200-200", want: Matcher{{200, 200}}, str: "200"},
		{in: "200-499", want: Matcher{{200, 499}}, str: "200-499"},
		{in: "", wantErr: "empty matcher"},
		{in: "  ", wantErr: "empty matcher"},
		{in: "199", wantErr: "status code 199 is outside 200-499"},
		{in: "500", wantErr: "status code 500 is outside 200-499"},
		{in: "600", wantErr: "status code 600 is outside 200-499"},
		{in: "abc", wantErr: `"abc" is not an HTTP status code`},
		{in: "2000", wantErr: `"2000" is not an HTTP status code`},
		{in: "20", wantErr: `"20" is not an HTTP status code`},
		{in: "+20", wantErr: "status code 20 is outside 200-499"},
		{in: "300-200", wantErr: `range "300-200" ends before it starts`},
		{in: "200-", wantErr: `"" is not an HTTP status code`},
		{in: "-200", wantErr: `"" is not an HTTP status code`},
		{in: "200-300-400", wantErr: `"300-400" is not an HTTP status code`},
		{in: "200,,202", wantErr: `"" is not an HTTP status code`},
		{in: "200,", wantErr: `"" is not an HTTP status code`},
		{in: "200-600", wantErr: "status code 600 is outside 200-499"},
	} {
		m, err := ParseMatcher(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseMatcher(%q): got %v, %v; want error containing %q", c.in, m, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(m, c.want) {
			t.Errorf("ParseMatcher(%q): got %v, %v; want %v", c.in, m, err, c.want)
			continue
		}
		if got := m.String(); got != c.str {
			t.Errorf("ParseMatcher(%q).String(): got %q, want %q", c.in, got, c.str)
		}
	}
}

func TestMatcherMatch(t *testing.T) {
	m, err := ParseMatcher("200,204-206,302")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code int
		want bool
	}{
		{199, false}, {200, true}, {201, false}, {203, false}, {204, true}, {205, true}, {206, true},
		{207, false}, {301, false}, {302, true}, {303, false}, {404, false}, {500, false}, {0, false},
	} {
		if got := m.Match(c.code); got != c.want {
			t.Errorf("%v.Match(%d): got %v, want %v", m, c.code, got, c.want)
		}
	}
	if (Matcher(nil)).Match(200) {
		t.Errorf("empty matcher matched 200, want no match")
	}
}

func TestSuggestion(t *testing.T) {
	keys := attributeKeys(groupAttributes)
	for _, c := range []struct {
		in, want string
	}{
		{"stickness.enabled", "stickiness.enabled"},
		{"Stickiness.Enabled", "stickiness.enabled"},
		{"deregistration_delay.timeout_second", "deregistration_delay.timeout_seconds"},
		{"load_balancing.algorithm", "load_balancing.algorithm.type"},
		{"routing.http2.enabled", ""}, // too far from any key
		{"x", ""},
	} {
		want := ""
		if c.want != "" {
			want = `; did you mean "` + c.want + `"?`
		}
		if got := suggestion(c.in, keys); got != want {
			t.Errorf("suggestion(%q): got %q, want %q", c.in, got, want)
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"matchr", "matcher", 1}, {"ab", "ba", 2},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q): got %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestDefaultsParse guards the attribute tables: every default must be a
// value its own setter accepts (applyAttributes panics otherwise).
func TestDefaultsParse(t *testing.T) {
	for _, a := range groupAttributes {
		var g TargetGroup
		if err := a.set(&g, a.def); err != nil {
			t.Errorf("default %q of %s: %v", a.def, a.key, err)
		}
		if notYet[a.key] {
			t.Errorf("%s is both supported and listed as not supported yet", a.key)
		}
	}
	for _, a := range listenerAttributes {
		var l Listener
		if err := a.set(&l, a.def); err != nil {
			t.Errorf("default %q of %s: %v", a.def, a.key, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "latch.yaml")
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := filepath.Join(dir, "latch-state"); cfg.StateDir != want {
		t.Errorf("StateDir: got %q, want %q", cfg.StateDir, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: got %v, want an os.ErrNotExist error", err)
	}
	if err := os.WriteFile(path, []byte("listeners: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].File != path {
		t.Errorf("Load of a broken file: got %v, want one problem naming %s", err, path)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(example)
	f.Add(minimal)
	f.Add(listenerLast + "    attributes:\n      idle_timeout.timeout_seconds: \"0\"\n")
	f.Add(minimal + "    health_check:\n      matchr: \"200\"\n      interval_seconds: 0.01\n")
	f.Add(minimal + "    attributes:\n      stickness.enabled: \"true\"\n      stickiness.type: lb_cookies\n")
	f.Add(minimal + "cookie_keys:\n  - id: 1\n    secret: " + key1 + "\n  - id: 1\n    secret_file: k\n")
	f.Add(minimal + "  - name: web\n    targets: [{id: \":0\"}, {id: \":0\"}]\n")
	f.Add(minimal + "---\nx: 1\n")
	f.Add(listenerLast + "    protocol: HTTPS\n    ssl_policy: ELBSecurityPolicy-2016-08\n    certificates: [{cert_file: c.pem, key_file: k.pem}]\n")
	f.Add("listeners: [\n")
	f.Add("x: &a {b: *a}\n")
	f.Add("listeners: !!null [ {name: x} ]\ntarget_groups: [*a]\n")
	f.Add("")
	// Relative secret_file names resolve in an empty directory, not in the
	// package directory.
	file := filepath.Join(f.TempDir(), "latch.yaml")
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := Parse([]byte(data), file)
		if err == nil {
			if cfg == nil {
				t.Fatal("got a nil config and a nil error")
			}
			return
		}
		if cfg != nil {
			t.Fatalf("got a config and an error: %v", err)
		}
		ps, ok := err.(Problems)
		if !ok {
			t.Fatalf("got error %T, want Problems", err)
		}
		if len(ps) == 0 {
			t.Fatal("got an empty Problems")
		}
		for i, p := range ps {
			if p.Msg == "" {
				t.Errorf("problem %d has no message: %+v", i, p)
			}
			if i > 0 && p.Line < ps[i-1].Line {
				t.Errorf("problem %d (line %d) comes after line %d", i, p.Line, ps[i-1].Line)
			}
		}
	})
}
