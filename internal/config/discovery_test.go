package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// discoveryGroup is a config whose one group has no targets and a
// discovery section, appended from line 9 (indented by 4).
const discoveryGroup = `listeners:
  - name: public
    address: 127.0.0.1:8080
    default_action: {type: forward, forward: {target_group: web}}
target_groups:
  - name: web
    targets: []
    discovery:
`

func TestDiscoveryDecode(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       DNSDiscovery
	}{
		{"A with defaults", "      dns: {name: app.internal, port: 8080}\n",
			DNSDiscovery{Name: "app.internal", Port: 8080, Refresh: 10 * time.Second}},
		{"AAAA", "      dns: {name: app.internal., type: AAAA, port: 80, refresh_seconds: 1}\n",
			DNSDiscovery{Name: "app.internal.", Type: DNSTypeAAAA, Port: 80, Refresh: time.Second}},
		{"SRV, every key", "      dns:\n        name: _http._tcp.app.internal\n        type: SRV\n        refresh_seconds: 2.5\n" +
			"        resolver: \"[::1]:5353\"\n        drain_idle_seconds: 5\n        drain_deadline_seconds: 60\n",
			DNSDiscovery{Name: "_http._tcp.app.internal", Type: DNSTypeSRV, Refresh: 2500 * time.Millisecond,
				Resolver: "[::1]:5353", DrainIdle: 5 * time.Second, DrainDeadline: time.Minute}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustParse(t, discoveryGroup+c.yaml, "latch.yaml")
			g := cfg.TargetGroups[0]
			if g.Discovery == nil || g.Discovery.DNS == nil {
				t.Fatalf("Discovery = %+v, want DNS set", g.Discovery)
			}
			if got := *g.Discovery.DNS; got != c.want {
				t.Errorf("DNS = %+v, want %+v", got, c.want)
			}
			if len(g.Targets) != 0 {
				t.Errorf("Targets = %#v, want empty: a discovery group may list none", g.Targets)
			}
		})
	}
	if g := mustParse(t, minimal, "latch.yaml").TargetGroups[0]; g.Discovery != nil {
		t.Errorf("without discovery: Discovery = %+v, want nil", g.Discovery)
	}
}

func TestDiscoveryRefusals(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"      dns: {name: app.internal, type: MX, port: 80}\n",
			`latch.yaml:9: target_groups[0].discovery.dns.type: "MX" is not one of A, AAAA, SRV`},
		{"      dns: {name: app.internal, type: SVR}\n",
			`target_groups[0].discovery.dns.type: "SVR" is not one of A, AAAA, SRV; did you mean "SRV"?`},
		{"      dns: {port: 80}\n", `latch.yaml:9: target_groups[0].discovery.dns.name: missing`},
		{"      dns: {name: \"\", port: 80}\n", `target_groups[0].discovery.dns.name: must not be empty`},
		{"      dns: {name: \"app internal\", port: 80}\n",
			`target_groups[0].discovery.dns.name: "app internal" is not a DNS name: use letters, digits, hyphens and underscores`},
		{"      dns: {name: app..internal, port: 80}\n",
			`target_groups[0].discovery.dns.name: "app..internal" is not a DNS name: each label is 1-63 characters`},
		{"      dns: {name: " + strings.Repeat("a", 64) + ".internal, port: 80}\n", `each label is 1-63 characters`},
		{"      dns: {name: app.internal}\n",
			`latch.yaml:9: target_groups[0].discovery.dns.port: missing; A and AAAA records carry no port`},
		{"      dns: {name: app.internal, type: AAAA}\n", `target_groups[0].discovery.dns.port: missing`},
		{"      dns: {name: app.internal, port: 0}\n", `target_groups[0].discovery.dns.port: 0 is outside 1-65535`},
		{"      dns: {name: app.internal, port: 70000}\n", `target_groups[0].discovery.dns.port: 70000 is outside 1-65535`},
		{"      dns: {name: app.internal, port: http}\n", `target_groups[0].discovery.dns.port: `},
		{"      dns: {name: _x._tcp.app.internal, type: SRV, port: 80}\n",
			`target_groups[0].discovery.dns.port: 80: SRV records carry their own ports; remove port`},
		{"      dns: {name: app.internal, port: 80, refresh_seconds: 0.5}\n",
			`target_groups[0].discovery.dns.refresh_seconds: 0.5 is outside 1-3600 seconds`},
		{"      dns: {name: app.internal, port: 80, refresh_seconds: 3601}\n",
			`target_groups[0].discovery.dns.refresh_seconds: 3601 is outside 1-3600 seconds`},
		{"      dns: {name: app.internal, port: 80, refresh_seconds: often}\n",
			`target_groups[0].discovery.dns.refresh_seconds: `},
		{"      dns: {name: app.internal, port: 80, resolver: dns.internal:53}\n",
			`target_groups[0].discovery.dns.resolver: "dns.internal:53" is not an IP address and port, such as 127.0.0.1:53 or [::1]:53`},
		{"      dns: {name: app.internal, port: 80, resolver: 127.0.0.1}\n",
			`target_groups[0].discovery.dns.resolver: "127.0.0.1" is not an IP address and port`},
		{"      dns: {name: app.internal, port: 80, resolver: \"127.0.0.1:0\"}\n",
			`target_groups[0].discovery.dns.resolver: "127.0.0.1:0" is not an IP address and port`},
		{"      dns: {name: app.internal, port: 80, drain_idle_seconds: 0.5}\n",
			`target_groups[0].discovery.dns.drain_idle_seconds: idle 500ms is not between 1s and 24h0m0s`},
		{"      dns: {name: app.internal, port: 80, drain_idle_seconds: 10, drain_deadline_seconds: 5}\n",
			`target_groups[0].discovery.dns.drain_deadline_seconds: deadline 5s is neither 0 (none) nor between the idle window (10s) and 168h0m0s`},
		{"      dns: {name: app.internal, port: 80, ttl: 5}\n",
			`latch.yaml:9: target_groups[0].discovery.dns.ttl: unknown key`},
		{"      dns: {name: app.internal, port: 80, refresh_second: 5}\n",
			`target_groups[0].discovery.dns.refresh_second: unknown key; did you mean "refresh_seconds"?`},
		{"      dsn: {name: app.internal, port: 80}\n",
			`target_groups[0].discovery.dsn: unknown key; did you mean "dns"?`},
		{"      {}\n", `target_groups[0].discovery.dns: missing`},
		{"      dns: app.internal\n", `target_groups[0].discovery.dns: expected a mapping, got "app.internal"`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(discoveryGroup+c.yaml), "latch.yaml")
		if err == nil {
			t.Errorf("%q: no error, want %s", c.yaml, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got\n%v\nwant a line with %s", c.yaml, err, c.want)
		}
	}
}

// TestDiscoveryValidate checks a config built in Go: Validate says what
// the decoder would.
func TestDiscoveryValidate(t *testing.T) {
	cfg := mustParse(t, minimal, "latch.yaml")
	cfg.TargetGroups[0].Discovery = &Discovery{DNS: &DNSDiscovery{Type: DNSType(9), Port: 0, Refresh: 0, Resolver: "x"}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate: nil, want problems")
	}
	for _, want := range []string{
		"target_groups[0].discovery.dns.name: must not be empty",
		"target_groups[0].discovery.dns.type: DNSType(9) is not one of A, AAAA, SRV",
		"target_groups[0].discovery.dns.port: 0 is outside 1-65535",
		"target_groups[0].discovery.dns.refresh_seconds: 0 is outside 1-3600 seconds",
		`target_groups[0].discovery.dns.resolver: "x" is not an IP address and port`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: got\n%v\nwant a line with %s", err, want)
		}
	}
	cfg.TargetGroups[0].Discovery = &Discovery{}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "target_groups[0].discovery.dns: missing") {
		t.Errorf("Validate of an empty Discovery: got %v, want dns missing", err)
	}
}

// TestDiscoveryIsTheFiles: a runtime change cannot set, change or remove
// discovery settings, and a reload takes the file's.
func TestDiscoveryIsTheFiles(t *testing.T) {
	running := mustParse(t, discoveryGroup+"      dns: {name: app.internal, port: 80}\n", "latch.yaml")
	for name, change := range map[string]func(*TargetGroup){
		"change": func(g *TargetGroup) { g.Discovery.DNS.Port = 81 },
		"remove": func(g *TargetGroup) { g.Discovery = nil },
	} {
		next := running.Clone()
		change(&next.TargetGroups[0])
		err := CheckRuntimeChange(running, next)
		if err == nil || !strings.Contains(err.Error(), "target_groups[0].discovery: set by the config file") {
			t.Errorf("%s: CheckRuntimeChange: got %v, want target_groups[0].discovery named as the file's", name, err)
		}
	}
	plain := mustParse(t, minimal, "latch.yaml")
	next := plain.Clone()
	next.TargetGroups[0].Discovery = running.TargetGroups[0].Discovery
	if err := CheckRuntimeChange(plain, next); err == nil {
		t.Error("CheckRuntimeChange: setting discovery at run time was allowed")
	}

	// Targets discovery registered are runtime registrations: a reload of
	// the file keeps them, flag and drain; the file's new settings run.
	oldFile := running
	run := oldFile.Clone()
	run.TargetGroups[0].Targets = []Target{
		{ID: "10.0.0.1:80", Weight: 1, Discovered: true},
		{ID: "10.0.0.2:80", Weight: 1, Discovered: true, Drain: &Drain{Idle: time.Second, Discovery: true, Since: time.Unix(1, 0)}},
	}
	newFile := mustParse(t, discoveryGroup+"      dns: {name: app.internal, port: 80, refresh_seconds: 3}\n", "latch.yaml")
	merged, overridden := Rebase(oldFile, run, newFile)
	if len(overridden) != 0 {
		t.Errorf("Rebase overrode %q, want nothing", overridden)
	}
	if got := merged.TargetGroups[0].Targets; !reflect.DeepEqual(got, run.TargetGroups[0].Targets) {
		t.Errorf("Rebase kept %+v, want %+v", got, run.TargetGroups[0].Targets)
	}
	if got := merged.TargetGroups[0].Discovery.DNS.Refresh; got != 3*time.Second {
		t.Errorf("Rebase: refresh %v, want the new file's 3s", got)
	}

	// A file that lists a discovered target takes it over: it is no longer
	// discovery's, and discovery's drain of it ends.
	listed := mustParse(t, strings.Replace(discoveryGroup, "targets: []", `targets: [{id: "10.0.0.2:80"}]`, 1)+
		"      dns: {name: app.internal, port: 80}\n", "latch.yaml")
	merged, _ = Rebase(oldFile, run, listed)
	tg := merged.TargetGroups[0].Target("10.0.0.2:80")
	if tg == nil || tg.Discovered || tg.Drain != nil {
		t.Errorf("Rebase on a file that lists it: %+v, want the file's target, undrained", tg)
	}
}
