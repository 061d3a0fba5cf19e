package config

import (
	"testing"
)

// TestParseRefusals holds the refusals README.md promises that
// TestParseProblems does not: ALB attributes latch does not implement,
// refused by name; the one value of preserve_host_header latch accepts; the
// ranges of latch's own attributes at their edges; and an attribute that
// needs another stickiness type.
func TestParseRefusals(t *testing.T) {
	group := func(attrs string) string { return minimal + "    attributes:\n" + attrs }
	listener := func(attrs string) string { return listenerLast + "    attributes:\n" + attrs }
	tgAttr := func(key string) string { return `target_groups[0].attributes["` + key + `"]` }
	lAttr := func(key string) string { return `listeners[0].attributes["` + key + `"]` }
	const notYet = "this ALB attribute is not supported yet by latch"

	for _, c := range []struct {
		name string
		yaml string
		want []wantProblem
	}{
		// Not supported yet: refused by name, never ignored. (Cross-zone
		// load balancing is in TestParseProblems.)
		{"dns_failover count", group("      target_group_health.dns_failover.minimum_healthy_targets.count: 1\n"),
			[]wantProblem{{12, tgAttr("target_group_health.dns_failover.minimum_healthy_targets.count"), notYet}}},
		{"dns_failover percentage", group("      target_group_health.dns_failover.minimum_healthy_targets.percentage: off\n"),
			[]wantProblem{{12, tgAttr("target_group_health.dns_failover.minimum_healthy_targets.percentage"), notYet}}},
		{"lambda multi-value headers", group("      lambda.multi_value_headers.enabled: \"true\"\n"),
			[]wantProblem{{12, tgAttr("lambda.multi_value_headers.enabled"), notYet}}},
		{"client keep-alive", listener("      client_keep_alive.seconds: 3600\n"),
			[]wantProblem{{12, lAttr("client_keep_alive.seconds"), notYet}}},

		// preserve_host_header: only true, what latch does.
		{"preserve_host_header false", listener("      routing.http.preserve_host_header.enabled: \"false\"\n"),
			[]wantProblem{{12, lAttr("routing.http.preserve_host_header.enabled"),
				`"false": latch always forwards the Host header as the client sent it (this attribute can only be true)`}}},

		// The ranges of latch's own attributes, just past their edges.
		{"rebalance idle 604801", group("      stickiness.rebalance_idle_seconds: 604801\n"),
			[]wantProblem{{12, tgAttr("stickiness.rebalance_idle_seconds"), "604801 is outside 1-604800 seconds, or 0 for never"}}},
		{"balance factor 10.5", group("      stickiness.balance_factor: 10.5\n"),
			[]wantProblem{{12, tgAttr("stickiness.balance_factor"), "10.5 is outside 1-10 (exclusive of 1), or 0 for off"}}},
		{"hash balance factor 10.5", group("      stickiness.type: hash\n      stickiness.hash.header: X-User\n      load_balancing.hash.balance_factor: 10.5\n"),
			[]wantProblem{{14, tgAttr("load_balancing.hash.balance_factor"), "10.5 is outside 1-10 (exclusive of 1), or 0 for off"}}},
		{"header duration 0", group("      stickiness.header.duration_seconds: 0\n"),
			[]wantProblem{{12, tgAttr("stickiness.header.duration_seconds"), "0 is outside 1-604800 seconds"}}},
		{"connect timeout 0.04", group("      target_connect.timeout_seconds: 0.04\n"),
			[]wantProblem{{12, tgAttr("target_connect.timeout_seconds"), "0.04 is outside 0.05-120 seconds"}}},
		{"connect timeout 121", group("      target_connect.timeout_seconds: 121\n"),
			[]wantProblem{{12, tgAttr("target_connect.timeout_seconds"), "121 is outside 0.05-120 seconds"}}},

		// Attributes that go together: trusted proxies are source_ip's.
		{"trusted proxies without source_ip", group("      stickiness.source_ip.trusted_proxies: 10.0.0.0/8\n"),
			[]wantProblem{{12, tgAttr("stickiness.source_ip.trusted_proxies"),
				"applies only to stickiness.type source_ip (this group's is lb_cookie)"}}},
		{"trusted proxies on a hash group", group("      stickiness.type: hash\n      stickiness.hash.cookie: sid\n      stickiness.source_ip.trusted_proxies: 10.0.0.0/8\n"),
			[]wantProblem{{14, tgAttr("stickiness.source_ip.trusted_proxies"),
				"applies only to stickiness.type source_ip (this group's is hash)"}}},
	} {
		t.Run(c.name, func(t *testing.T) { checkExact(t, c.yaml, c.want) })
	}
	t.Run("absolute timeout 31536001", func(t *testing.T) {
		checkExact(t, group("      stickiness.absolute_timeout_seconds: 31536001\n"), []wantProblem{{12,
			tgAttr("stickiness.absolute_timeout_seconds"), "31536001 is outside 1-31536000 seconds, or 0 for none"}})
	})

	// The values just inside the edges parse.
	for _, ok := range []string{
		group("      stickiness.absolute_timeout_seconds: 31536000\n      stickiness.rebalance_idle_seconds: 604800\n" +
			"      stickiness.balance_factor: 10\n      stickiness.header.duration_seconds: 1\n      target_connect.timeout_seconds: 0.05\n"),
		group("      target_connect.timeout_seconds: 120\n      stickiness.type: source_ip\n      stickiness.source_ip.trusted_proxies: 10.0.0.0/8\n" +
			"      load_balancing.hash.balance_factor: 1.01\n"),
	} {
		mustParse(t, ok, "latch.yaml")
	}
}
