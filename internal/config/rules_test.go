package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// exampleRule10 is the first rule of the rules example as the feature was
// specified. It has 11 match evaluations, over ALB's limit of 5 per rule,
// so latch refuses it as ALB would; rulesExample splits it in two.
const exampleRule10 = `      - priority: 10                      # 1-50000, unique per listener
        conditions:
          - host_header: ["api.example.com", "*.api.example.com"]
          - path_pattern: ["/v1/*"]
          - http_header: { name: X-Canary, values: ["true", "yes"] }
          - http_request_method: [GET, HEAD]
          - query_string: [{ key: version, value: "2" }, { value: "*beta*" }]
          - source_ip: ["10.0.0.0/8", "2001:db8::/32"]
        action:
          type: forward
          forward: { target_group: api }
`

// rulesExample is the rules example of the documentation, with the target
// groups it names.
const rulesExample = `listeners:
  - name: public
    address: 127.0.0.1:8080
    protocol: HTTP
    rules:
      - priority: 10                      # 1-50000, unique per listener
        conditions:                       # at most 5 values (match evaluations) in all
          - host_header: ["api.example.com", "*.api.example.com"]
          - path_pattern: ["/v1/*"]
          - http_header: { name: X-Canary, values: ["true", "yes"] }
        action:
          type: forward
          forward: { target_group: api }
      - priority: 15
        conditions:
          - http_request_method: [GET, HEAD]
          - query_string: [{ key: version, value: "2" }, { value: "*beta*" }]
          - source_ip: ["10.0.0.0/8"]
        action:
          type: forward
          forward: { target_group: api }
      - priority: 20
        conditions: [ { path_pattern: ["/old/*"] } ]
        action:
          type: redirect
          redirect: { protocol: HTTPS, host: "#{host}", port: "443", path: "/new/#{path}", query: "#{query}", status_code: HTTP_301 }
      - priority: 30
        conditions: [ { path_pattern: ["/ping"] } ]
        action:
          type: fixed-response
          fixed_response: { status_code: "200", content_type: text/plain, message_body: "pong" }
      - priority: 40
        conditions: [ { path_pattern: ["/shop/*"] } ]
        action:
          type: forward
          forward:
            target_groups:
              - { name: blue, weight: 90 }
              - { name: green, weight: 10 }
            stickiness: { enabled: true, duration_seconds: 3600 }
    default_action:
      type: forward
      forward: { target_group: web }
target_groups:
  - name: web
  - name: api
  - name: blue
    attributes:
      stickiness.enabled: "true"
  - name: green
`

func TestParseRulesExample(t *testing.T) {
	cfg := mustParse(t, rulesExample, "latch.yaml")
	want := []Rule{
		{
			Priority: 10,
			Conditions: []Condition{
				{Field: HostHeader, Values: []string{"api.example.com", "*.api.example.com"}},
				{Field: PathPattern, Values: []string{"/v1/*"}},
				{Field: HTTPHeader, Name: "X-Canary", Values: []string{"true", "yes"}},
			},
			Action: Action{Type: ActionForward, TargetGroup: "api"},
		},
		{
			Priority: 15,
			Conditions: []Condition{
				{Field: HTTPRequestMethod, Values: []string{"GET", "HEAD"}},
				{Field: QueryString, Pairs: []QueryPair{{Key: "version", Value: "2", HasKey: true}, {Value: "*beta*"}}},
				{Field: CondSourceIP, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			},
			Action: Action{Type: ActionForward, TargetGroup: "api"},
		},
		{
			Priority:   20,
			Conditions: []Condition{{Field: PathPattern, Values: []string{"/old/*"}}},
			Action: Action{Type: ActionRedirect, Redirect: &Redirect{
				Protocol: "HTTPS", Host: "#{host}", Port: "443", Path: "/new/#{path}", Query: "#{query}", StatusCode: 301}},
		},
		{
			Priority:   30,
			Conditions: []Condition{{Field: PathPattern, Values: []string{"/ping"}}},
			Action: Action{Type: ActionFixedResponse, FixedResponse: &FixedResponse{
				StatusCode: 200, ContentType: "text/plain", MessageBody: "pong"}},
		},
		{
			Priority:   40,
			Conditions: []Condition{{Field: PathPattern, Values: []string{"/shop/*"}}},
			Action: Action{Type: ActionForward,
				TargetGroups:    []WeightedGroup{{Name: "blue", Weight: 90}, {Name: "green", Weight: 10}},
				GroupStickiness: GroupStickiness{Enabled: true, Duration: time.Hour}},
		},
	}
	l := cfg.Listeners[0]
	if !reflect.DeepEqual(l.Rules, want) {
		t.Errorf("Rules:\ngot  %+v\nwant %+v", l.Rules, want)
	}
	if want := (Action{Type: ActionForward, TargetGroup: "web"}); !reflect.DeepEqual(l.DefaultAction, want) {
		t.Errorf("DefaultAction: got %+v, want %+v", l.DefaultAction, want)
	}
}

func TestParseRule10OverTheLimit(t *testing.T) {
	checkExact(t, rulesBase+exampleRule10, []wantProblem{{16, "listeners[0].rules[0].conditions",
		"11 match evaluations (condition values and query pairs); ALB allows at most 5 per rule"}})
}

func TestParseActionDefaults(t *testing.T) {
	cfg := mustParse(t, rulesBase+
		rule(`[{path_pattern: ["/a"]}]`, `{type: redirect, redirect: {protocol: HTTPS, status_code: HTTP_302}}`)+
		rule2(`[{path_pattern: ["/b"]}]`, `{type: fixed-response, fixed_response: {status_code: 503}}`)+
		rule3(`[{path_pattern: ["/c"]}]`, `{type: forward, forward: {target_groups: [{name: blue}], stickiness: {enabled: false}}}`), "")
	rules := cfg.Listeners[0].Rules
	for _, c := range []struct {
		name      string
		got, want any
	}{
		// ALB: "Any components that you do not modify retain their original values."
		{"redirect", rules[0].Action.Redirect, &Redirect{Protocol: "HTTPS", Host: "#{host}", Port: "#{port}",
			Path: "/#{path}", Query: "#{query}", StatusCode: 302}},
		// A YAML number for the status code; text/plain when no type is set.
		{"fixed response", rules[1].Action.FixedResponse, &FixedResponse{StatusCode: 503, ContentType: "text/plain"}},
		// One weighted group also sets TargetGroup; the weight defaults to 1.
		{"one weighted group", rules[2].Action, Action{Type: ActionForward, TargetGroup: "blue",
			TargetGroups: []WeightedGroup{{Name: "blue", Weight: 1}}}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

// TestParseDefaultActionTypes checks that a default action may be of any
// type, and weighted.
func TestParseDefaultActionTypes(t *testing.T) {
	for _, c := range []struct {
		action string
		want   Action
	}{
		{`{type: redirect, redirect: {protocol: HTTPS, port: "443", status_code: HTTP_301}}`,
			Action{Type: ActionRedirect, Redirect: &Redirect{Protocol: "HTTPS", Host: "#{host}", Port: "443",
				Path: "/#{path}", Query: "#{query}", StatusCode: 301}}},
		{`{type: fixed-response, fixed_response: {status_code: "404", content_type: application/json, message_body: "{}"}}`,
			Action{Type: ActionFixedResponse, FixedResponse: &FixedResponse{StatusCode: 404, ContentType: "application/json", MessageBody: "{}"}}},
		{`{type: forward, forward: {target_groups: [{name: blue, weight: 0}, {name: red, weight: 5}]}}`,
			Action{Type: ActionForward, TargetGroups: []WeightedGroup{{Name: "blue", Weight: 0}, {Name: "red", Weight: 5}}}},
	} {
		data := strings.Replace(rulesBase, defaultAction, "    default_action: "+c.action+"\n", 1)
		cfg := mustParse(t, data, "")
		if got := cfg.Listeners[0].DefaultAction; !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", c.action, got, c.want)
		}
	}
}

func TestParseValidRules(t *testing.T) {
	for _, c := range []struct{ name, rules string }{
		{"several http_header and query_string conditions",
			rule(`[{http_header: {name: X-A, values: [a]}}, {http_header: {name: X-B, values: [b]}}, {query_string: [{value: a}]}, {query_string: [{value: b}]}]`, fwd)},
		{"escaped wildcards do not count",
			rule(`[{query_string: [{key: '\*\?\*', value: '\*\*\*\*\*\*\\'}]}]`, fwd)},
		{"five wildcards and five evaluations",
			rule(`[{host_header: ["*.a.example.com", "?.b.example.com"]}, {path_pattern: ["/*/x/*", "/y"]}, {http_header: {name: X-A, values: ["*"]}}]`, fwd)},
		{"the same priority on two listeners", rule(`[{path_pattern: ["/a"]}]`, fwd) +
			"  - name: private\n    address: 127.0.0.1:8081\n    default_action: {type: forward, forward: {target_group: web}}\n    rules:\n" +
			rule(`[{path_pattern: ["/a"]}]`, fwd)},
		{"IPv6 host with brackets", rule(`[{host_header: ["[::1]", "*.example.com"]}]`, fwd)},
		{"redirect changing only the port", rule(`[{path_pattern: ["/a"]}]`, `{type: redirect, redirect: {port: "8443", status_code: HTTP_301}}`)},
		{"redirect changing only the path", rule(`[{path_pattern: ["/a"]}]`, `{type: redirect, redirect: {path: "/b/#{path}", status_code: HTTP_301}}`)},
		{"redirect with every placeholder in the query", rule(`[{path_pattern: ["/a"]}]`,
			`{type: redirect, redirect: {host: "www.#{host}", query: "p=#{protocol}&h=#{host}&o=#{port}&a=#{path}&#{query}", status_code: HTTP_301}}`)},
		{"a sticky group alone in a weighted forward", rule(`[{path_pattern: ["/a"]}]`,
			`{type: forward, forward: {target_groups: [{name: green}]}}`)},
		{"a sticky group with group stickiness", rule(`[{path_pattern: ["/a"]}]`,
			`{type: forward, forward: {target_groups: [{name: green}, {name: blue}], stickiness: {enabled: true, duration_seconds: 1}}}`)},
		{"source ip", rule(`[{source_ip: ["0.0.0.0/0", "::/0", "192.0.2.7/32"]}]`, fwd)},
		{"empty message body", rule(`[{path_pattern: ["/a"]}]`, `{type: fixed-response, fixed_response: {status_code: 204, message_body: ""}}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			mustParse(t, rulesBase+c.rules, "")
		})
	}
}

// rulesBase has six target groups (green is sticky) and a listener whose
// rules start on line 15.
const rulesBase = `target_groups:
  - name: web
  - name: api
  - name: blue
  - name: green
    attributes:
      stickiness.enabled: "true"
  - name: red
  - name: gray
listeners:
  - name: public
    address: 127.0.0.1:8080
` + defaultAction + `    rules:
`

const defaultAction = "    default_action: {type: forward, forward: {target_group: web}}\n"

const fwd = `{type: forward, forward: {target_group: api}}`

// rule is a rule with priority 10 whose conditions are on line 16 and
// action on line 17 when it is the first; rule2 and rule3 follow it.
func rule(conds, action string) string {
	return "      - priority: 10\n        conditions: " + conds + "\n        action: " + action + "\n"
}

func rule2(conds, action string) string { return strings.Replace(rule(conds, action), "10", "20", 1) }
func rule3(conds, action string) string { return strings.Replace(rule(conds, action), "10", "30", 1) }

// checkExact is checkProblems with whole messages.
func checkExact(t *testing.T, data string, want []wantProblem) {
	t.Helper()
	checkProblems(t, data, want, true)
}

func TestParseRuleProblems(t *testing.T) {
	const r0 = "listeners[0].rules[0]"
	const c0 = r0 + ".conditions[0]"
	const act = r0 + ".action"
	one := func(line int, path, msg string) []wantProblem { return []wantProblem{{line, path, msg}} }
	long := strings.Repeat("a", 129)
	const selfRedirect = "this redirect keeps the request's protocol, host, port and path, so it would redirect to itself; change at least one"
	const needGroupStickiness = `target group "green" has stickiness enabled, so this forward to several groups needs group stickiness too ` +
		"(stickiness: {enabled: true, duration_seconds: ...}); ALB: you must enable group stickiness on a rule " +
		"if you enabled target stickiness on one of its target groups"
	redirect := func(settings string) string {
		return rule(`[{path_pattern: ["/a"]}]`, `{type: redirect, redirect: {`+settings+`}}`)
	}
	fixed := func(settings string) string {
		return rule(`[{path_pattern: ["/a"]}]`, `{type: fixed-response, fixed_response: {`+settings+`}}`)
	}
	forward := func(settings string) string {
		return rule(`[{path_pattern: ["/a"]}]`, `{type: forward, forward: {`+settings+`}}`)
	}
	cases := []struct {
		name  string
		rules string
		want  []wantProblem
	}{
		// Priorities.
		{"priority 0", strings.Replace(rule(`[{path_pattern: ["/a"]}]`, fwd), "10", "0", 1),
			one(15, r0+".priority", "0 is outside 1-50000")},
		{"priority 50001", strings.Replace(rule(`[{path_pattern: ["/a"]}]`, fwd), "10", "50001", 1),
			one(15, r0+".priority", "50001 is outside 1-50000")},
		{"priority not a number", strings.Replace(rule(`[{path_pattern: ["/a"]}]`, fwd), "10", "first", 1),
			one(15, r0+".priority", `"first" is not a whole number`)},
		{"priority missing", "      - conditions: [{path_pattern: [\"/a\"]}]\n        action: " + fwd + "\n",
			one(15, r0+".priority", "missing")},
		{"duplicate priority", rule(`[{path_pattern: ["/a"]}]`, fwd) + rule(`[{path_pattern: ["/b"]}]`, fwd),
			one(18, "listeners[0].rules[1].priority", "priority 10 is also used by rules[0]; priorities are unique within a listener")},
		{"rules not a list", "      priority: 10\n", one(15, "listeners[0].rules", "expected a list, got a mapping")},
		{"unknown rule key", rule(`[{path_pattern: ["/a"]}]`, fwd) + "        priorty: 3\n",
			one(18, r0+".priorty", `unknown key; did you mean "priority"?`)},

		// Conditions of a rule.
		{"conditions missing", "      - priority: 10\n        action: " + fwd + "\n",
			one(15, r0+".conditions", "missing; a rule needs at least one condition (default_action is the rule without any)")},
		{"conditions null", "      - priority: 10\n        conditions:\n        action: " + fwd + "\n",
			one(15, r0+".conditions", "missing; a rule needs at least one condition (default_action is the rule without any)")},
		{"conditions empty", rule(`[]`, fwd),
			one(16, r0+".conditions", "empty; a rule needs at least one condition (default_action is the rule without any)")},
		{"conditions a mapping", rule(`{path_pattern: ["/a"]}`, fwd),
			one(16, r0+".conditions", "expected a list, got a mapping")},
		{"two host_header conditions", rule(`[{host_header: [a.example.com]}, {host_header: [b.example.com]}]`, fwd),
			one(16, r0+".conditions[1].host_header", "a rule takes one host_header condition and conditions[0] is one; put every value in it (values are OR-ed)")},
		{"two path_pattern conditions", rule(`[{path_pattern: ["/a"]}, {host_header: [a.example.com]}, {path_pattern: ["/b"]}]`, fwd),
			one(16, r0+".conditions[2].path_pattern", "a rule takes one path_pattern condition and conditions[0] is one; put every value in it (values are OR-ed)")},
		{"two http_request_method conditions", rule(`[{http_request_method: [GET]}, {http_request_method: [POST]}]`, fwd),
			one(16, r0+".conditions[1].http_request_method", "a rule takes one http_request_method condition and conditions[0] is one; put every value in it (values are OR-ed)")},
		{"two source_ip conditions", rule(`[{source_ip: ["10.0.0.0/8"]}, {source_ip: ["10.1.0.0/16"]}]`, fwd),
			one(16, r0+".conditions[1].source_ip", "a rule takes one source_ip condition and conditions[0] is one; put every value in it (values are OR-ed)")},
		{"six match evaluations", rule(`[{host_header: [a.example.com, b.example.com, c.example.com]}, {path_pattern: ["/a", "/b", "/c"]}]`, fwd),
			one(16, r0+".conditions", "6 match evaluations (condition values and query pairs); ALB allows at most 5 per rule")},
		{"six match evaluations with query pairs and CIDRs", rule(`[{query_string: [{value: a}, {value: b}]}, {query_string: [{value: c}]}, {source_ip: ["10.0.0.0/8", "::/0"]}, {http_request_method: [GET]}]`, fwd),
			one(16, r0+".conditions", "6 match evaluations (condition values and query pairs); ALB allows at most 5 per rule")},
		{"six wildcards", rule(`[{path_pattern: ["/a*b*c*", "/*d?e*"]}]`, fwd),
			one(16, r0+".conditions", "6 wildcards (* and ?); ALB allows at most 5 per rule")},
		{"six wildcards across conditions", rule(`[{host_header: ["*.*.example.com"]}, {http_header: {name: X-A, values: ["a*", "?b"]}}, {query_string: [{key: "k*", value: "v*"}]}]`, fwd),
			one(16, r0+".conditions", "6 wildcards (* and ?); ALB allows at most 5 per rule")},

		// A condition.
		{"unknown condition", rule(`[{path_patern: ["/a"]}]`, fwd),
			one(16, c0+".path_patern", `unknown condition; did you mean "path_pattern"?`)},
		{"unknown condition, nothing close", rule(`[{cookie: ["a"]}]`, fwd),
			one(16, c0+".cookie", "unknown condition; conditions are host_header, path_pattern, http_header, http_request_method, query_string, source_ip")},
		{"ALB's spelling of a condition", rule(`[{path-pattern: ["/a"]}]`, fwd),
			one(16, c0+".path-pattern", `unknown condition; did you mean "path_pattern"?`)},
		{"two keys in a condition", rule(`[{path_pattern: ["/a"], host_header: [a.example.com]}]`, fwd),
			one(16, c0+".host_header", "a condition has one key; start another list item (- host_header: ...) for this one")},
		{"empty condition", rule(`[{}]`, fwd),
			one(16, c0, "empty; a condition is one of host_header, path_pattern, http_header, http_request_method, query_string, source_ip")},
		{"scalar condition", rule(`["/a"]`, fwd),
			one(16, c0, `expected a mapping with one of host_header, path_pattern, http_header, http_request_method, query_string, source_ip, got "/a"`)},
		{"four values", rule(`[{path_pattern: ["/a", "/b", "/c", "/d"]}]`, fwd),
			one(16, c0+".path_pattern", "4 values; ALB allows at most 3 per condition (any one may match)")},
		{"no values", rule(`[{path_pattern: []}]`, fwd),
			one(16, c0+".path_pattern", "empty; a condition needs 1-3 values")},
		{"a value, not a list", rule(`[{path_pattern: "/a"}]`, fwd),
			one(16, c0+".path_pattern", `expected a list of 1-3 values, got "/a"`)},
		{"empty value", rule(`[{path_pattern: [""]}]`, fwd),
			one(16, c0+".path_pattern[0]", "empty; a value needs 1-128 characters")},
		{"129 characters", rule(`[{host_header: [`+long+`]}]`, fwd),
			one(16, c0+".host_header[0]", "129 characters; ALB allows at most 128")},
		{"a control character", rule(`[{http_header: {name: X-A, values: ["a\tb"]}}]`, fwd),
			one(16, c0+".http_header.values[0]", `"a\tb" holds the control character '\t'; rules match visible ASCII characters only`)},
		{"DEL", rule(`[{path_pattern: ["/a\x7f"]}]`, fwd),
			one(16, c0+".path_pattern[0]", `"/a\x7f" holds the control character '\x7f'; rules match visible ASCII characters only`)},
		{"non-ASCII", rule(`[{path_pattern: ["/café"]}]`, fwd),
			one(16, c0+".path_pattern[0]", `"/café" holds a non-ASCII character; rules match visible ASCII characters only`)},
		{"a list for a value", rule(`[{path_pattern: [["/a"]]}]`, fwd),
			one(16, c0+".path_pattern[0]", "expected a string, got a list")},

		// host_header.
		{"host with a port", rule(`[{host_header: ["example.com:8080"]}]`, fwd),
			one(16, c0+".host_header[0]", `"example.com:8080" has a port; host_header is matched against the host without its port (did you mean "example.com"?)`)},
		{"IPv6 host with a port", rule(`[{host_header: ["[::1]:8080"]}]`, fwd),
			one(16, c0+".host_header[0]", `"[::1]:8080" has a port; host_header is matched against the host without its port (did you mean "[::1]"?)`)},
		{"IPv6 host without brackets", rule(`[{host_header: ["::1"]}]`, fwd),
			one(16, c0+".host_header[0]", `"::1" can never match: a Host holds an IPv6 address in brackets (did you mean "[::1]"?)`)},

		// path_pattern.
		{"relative path", rule(`[{path_pattern: ["img/*"]}]`, fwd),
			one(16, c0+".path_pattern[0]", `"img/*" can never match: a request's path starts with / (did you mean "/img/*"?)`)},

		// http_header.
		{"header name 41 characters", rule(`[{http_header: {name: `+strings.Repeat("X", 41)+`, values: [a]}}]`, fwd),
			one(16, c0+".http_header.name", "41 characters; ALB allows at most 40 in a header name")},
		{"header Host", rule(`[{http_header: {name: host, values: [a.example.com]}}]`, fwd),
			one(16, c0+".http_header.name", "http_header cannot match Host; use host_header")},
		{"header name with a wildcard", rule(`[{http_header: {name: X-*, values: [a]}}]`, fwd),
			one(16, c0+".http_header.name", `"X-*": header names take no wildcards`)},
		{"header name with a space", rule(`[{http_header: {name: X A, values: [a]}}]`, fwd),
			one(16, c0+".http_header.name", `"X A" is not a header name (character ' ')`)},
		{"empty header name", rule(`[{http_header: {name: "", values: [a]}}]`, fwd),
			one(16, c0+".http_header.name", "empty; name the header to match")},
		{"header name missing", rule(`[{http_header: {values: [a]}}]`, fwd),
			one(16, c0+".http_header.name", "missing")},
		{"header values missing", rule(`[{http_header: {name: X-A}}]`, fwd),
			one(16, c0+".http_header.values", "missing")},
		{"header value misspelt", rule(`[{http_header: {name: X-A, value: [a]}}]`, fwd),
			[]wantProblem{{16, c0 + ".http_header.value", `unknown key; did you mean "values"?`}, {16, c0 + ".http_header.values", "missing"}}},
		{"header as a list", rule(`[{http_header: [X-A]}]`, fwd),
			one(16, c0+".http_header", "expected a mapping, got a list")},

		// http_request_method.
		{"lower-case method", rule(`[{http_request_method: [get]}]`, fwd),
			one(16, c0+".http_request_method[0]", `"get" is not a method: use A-Z, - and _ (at most 40), matched exactly; did you mean "GET"?`)},
		{"method with a wildcard", rule(`[{http_request_method: ["G*T"]}]`, fwd),
			one(16, c0+".http_request_method[0]", `"G*T" is not a method: use A-Z, - and _ (at most 40), matched exactly`)},
		{"method 41 characters", rule(`[{http_request_method: [`+strings.Repeat("A", 41)+`]}]`, fwd),
			one(16, c0+".http_request_method[0]", `"`+strings.Repeat("A", 41)+`" is not a method: use A-Z, - and _ (at most 40), matched exactly`)},

		// query_string.
		{"empty query key", rule(`[{query_string: [{key: "", value: a}]}]`, fwd),
			one(16, c0+".query_string[0].key", "empty; leave key out to match the value of any parameter")},
		{"query value missing", rule(`[{query_string: [{key: a}]}]`, fwd),
			one(16, c0+".query_string[0].value", "missing")},
		{"empty query value", rule(`[{query_string: [{key: a, value: ""}]}]`, fwd),
			one(16, c0+".query_string[0].value", "empty; a value needs 1-128 characters")},
		{"bad escape", rule(`[{query_string: [{value: 'a\b'}]}]`, fwd),
			one(16, c0+".query_string[0].value", `"a\\b" has \b: \ escapes only * and ? (and \\ is a backslash)`)},
		{"lone backslash", rule(`[{query_string: [{key: 'a\', value: b}]}]`, fwd),
			one(16, c0+".query_string[0].key", `"a\\" ends in a lone \; write \\ for a backslash`)},
		{"query pair as a string", rule(`[{query_string: ["a=b"]}]`, fwd),
			one(16, c0+".query_string[0]", `expected a mapping, got "a=b"`)},
		{"four query pairs", rule(`[{query_string: [{value: a}, {value: b}, {value: c}, {value: d}]}]`, fwd),
			one(16, c0+".query_string", "4 values; ALB allows at most 3 per condition (any one may match)")},

		// source_ip.
		{"address without a prefix length", rule(`[{source_ip: ["10.0.0.1"]}]`, fwd),
			one(16, c0+".source_ip[0]", `"10.0.0.1" is not a CIDR; did you mean "10.0.0.1/32"?`)},
		{"IPv6 address without a prefix length", rule(`[{source_ip: ["2001:db8::1"]}]`, fwd),
			one(16, c0+".source_ip[0]", `"2001:db8::1" is not a CIDR; did you mean "2001:db8::1/128"?`)},
		{"host bits", rule(`[{source_ip: ["10.0.0.1/8"]}]`, fwd),
			one(16, c0+".source_ip[0]", `"10.0.0.1/8" has bits set after the prefix length; did you mean "10.0.0.0/8"?`)},
		{"broadcast", rule(`[{source_ip: ["255.255.255.255/32"]}]`, fwd),
			one(16, c0+".source_ip[0]", "ALB does not allow 255.255.255.255/32")},
		{"IPv4 as IPv6", rule(`[{source_ip: ["::ffff:10.0.0.0/104"]}]`, fwd),
			one(16, c0+".source_ip[0]", `"::ffff:10.0.0.0/104" is IPv4 written as IPv6; did you mean "10.0.0.0/8"?`)},
		{"not a CIDR", rule(`[{source_ip: [any]}]`, fwd),
			one(16, c0+".source_ip[0]", `"any" is not a CIDR (an address/prefix length, such as 10.0.0.0/8 or 2001:db8::/32)`)},
		{"prefix length 33", rule(`[{source_ip: ["10.0.0.0/33"]}]`, fwd),
			one(16, c0+".source_ip[0]", `"10.0.0.0/33" is not a CIDR (an address/prefix length, such as 10.0.0.0/8 or 2001:db8::/32)`)},

		// Actions.
		{"action missing", "      - priority: 10\n        conditions: [{path_pattern: [\"/a\"]}]\n",
			one(15, act, "missing")},
		{"action type misspelt", rule(`[{path_pattern: ["/a"]}]`, `{type: redirct}`),
			one(17, act+".type", `"redirct" is not one of forward, redirect, fixed-response; did you mean "redirect"?`)},
		{"ALB's spelling of fixed_response", rule(`[{path_pattern: ["/a"]}]`, `{type: fixed-response, fixed-response: {status_code: 200}}`),
			[]wantProblem{{17, act + ".fixed-response", `unknown key; did you mean "fixed_response"?`}, {17, act + ".fixed_response", "missing"}}},
		{"settings of another type", rule(`[{path_pattern: ["/a"]}]`, `{type: forward, forward: {target_group: api}, redirect: {status_code: HTTP_301}}`),
			one(17, act+".redirect", "set only with type: redirect (this action is type: forward)")},
		{"fixed-response settings missing", rule(`[{path_pattern: ["/a"]}]`, `{type: fixed-response}`),
			one(17, act+".fixed_response", "missing")},

		// Redirects.
		{"redirect status missing", redirect(`port: "8081"`),
			one(17, act+".redirect.status_code", "missing")},
		{"redirect status as a number", redirect(`port: "8081", status_code: 301`),
			one(17, act+".redirect.status_code", `"301" is not one of HTTP_301, HTTP_302; did you mean "HTTP_301"?`)},
		{"redirect status 303", redirect(`port: "8081", status_code: HTTP_303`),
			one(17, act+".redirect.status_code", `"HTTP_303" is not one of HTTP_301, HTTP_302; did you mean "HTTP_301"?`)},
		{"redirect protocol in lower case", redirect(`protocol: https, status_code: HTTP_301`),
			one(17, act+".redirect.protocol", `"https" is not one of HTTP, HTTPS, #{protocol}; did you mean "HTTPS"?`)},
		{"redirect port 0", redirect(`port: 0, status_code: HTTP_301`),
			one(17, act+".redirect.port", "0 is outside 1-65535, or #{port}")},
		{"redirect port name", redirect(`port: https, status_code: HTTP_301`),
			one(17, act+".redirect.port", `"https" is not a whole number, or #{port}`)},
		{"redirect empty host", redirect(`host: "", status_code: HTTP_301`),
			one(17, act+".redirect.host", "empty; leave it out to keep the request's own")},
		{"redirect host 129 characters", redirect(`host: ` + long + `, status_code: HTTP_301`),
			one(17, act+".redirect.host", "129 characters; ALB allows at most 128")},
		{"redirect path in the host", redirect(`host: "#{path}.example.com", status_code: HTTP_301`),
			one(17, act+".redirect.host", "#{path} cannot be used here (only #{host} may)")},
		{"redirect unknown placeholder", redirect(`host: "www.#{hots}", status_code: HTTP_301`),
			one(17, act+".redirect.host", "unknown placeholder #{hots}; did you mean #{host}?")},
		{"redirect unknown placeholder, nothing close", redirect(`host: "#{hostname}.example.com", status_code: HTTP_301`),
			one(17, act+".redirect.host", "unknown placeholder #{hostname}; placeholders are #{protocol}, #{host}, #{port}, #{path} and #{query}")},
		{"redirect placeholder not closed", redirect(`path: "/#{path", status_code: HTTP_301`),
			one(17, act+".redirect.path", `"/#{path" has #{ without a closing }`)},
		{"redirect relative path", redirect(`path: "new/#{path}", status_code: HTTP_301`),
			one(17, act+".redirect.path", `"new/#{path}" must start with /`)},
		{"redirect query in the path", redirect(`path: "/#{path}/#{query}", status_code: HTTP_301`),
			one(17, act+".redirect.path", "#{query} cannot be used here (#{host}, #{port} and #{path} may)")},
		{"redirect path 129 characters", redirect(`path: /` + long[1:] + `, status_code: HTTP_301`),
			one(17, act+".redirect.path", "129 characters; ALB allows at most 128")},
		{"redirect query with ?", redirect(`port: "8081", query: "?a=1", status_code: HTTP_301`),
			one(17, act+".redirect.query", `"?a=1" starts with ?; leave it out (latch adds it)`)},
		{"redirect query with a space", redirect(`port: "8081", query: "a=b c", status_code: HTTP_301`),
			one(17, act+".redirect.query", `"a=b c" holds a space; percent-encode it (a Location holds visible ASCII only)`)},
		{"redirect path with a non-ASCII character", redirect(`path: "/café", status_code: HTTP_301`),
			one(17, act+".redirect.path", `"/café" holds a non-ASCII character; percent-encode it (a Location holds visible ASCII only)`)},
		{"redirect to itself", redirect(`status_code: HTTP_301`),
			one(17, act+".redirect", selfRedirect)},
		{"redirect to itself, every placeholder spelt out", redirect(`protocol: "#{protocol}", host: "#{host}", port: "#{port}", path: "/#{path}", query: "a=1", status_code: HTTP_302`),
			one(17, act+".redirect", selfRedirect)},
		{"redirect to itself by the listener's own protocol and port", redirect(`protocol: HTTP, port: "8080", status_code: HTTP_302`),
			one(17, act+".redirect", selfRedirect)},
		{"redirect settings a list", rule(`[{path_pattern: ["/a"]}]`, `{type: redirect, redirect: [HTTPS]}`),
			one(17, act+".redirect", "expected a mapping, got a list")},

		// Fixed responses.
		{"fixed-response status 302", fixed(`status_code: "302"`),
			one(17, act+".fixed_response.status_code", `"302" is not a 2XX, 4XX or 5XX status code`)},
		{"fixed-response status 2000", fixed(`status_code: 2000`),
			one(17, act+".fixed_response.status_code", `"2000" is not a 2XX, 4XX or 5XX status code`)},
		{"fixed-response status missing", fixed(`message_body: hello`),
			one(17, act+".fixed_response.status_code", "missing")},
		{"fixed-response content type misspelt", fixed(`status_code: 200, content_type: text/htm`),
			one(17, act+".fixed_response.content_type",
				`"text/htm" is not one of text/plain, text/css, text/html, application/javascript, application/json; did you mean "text/html"?`)},
		{"fixed-response body 1025 characters", fixed(`status_code: 200, message_body: ` + strings.Repeat("b", 1025)),
			one(17, act+".fixed_response.message_body", "1025 characters; ALB allows at most 1024")},
		{"fixed-response body 1025 characters, not bytes", fixed(`status_code: 200, message_body: ` + strings.Repeat("é", 1025)),
			one(17, act+".fixed_response.message_body", "1025 characters; ALB allows at most 1024")},

		// Forwards.
		{"target_group and target_groups", forward(`target_group: api, target_groups: [{name: blue}]`),
			one(17, act+".forward.target_groups", "set target_group or target_groups, not both")},
		{"no target group", forward(``),
			one(17, act+".forward.target_group", "missing; set target_group, or target_groups to weight several groups")},
		{"unknown target group", forward(`target_group: ap`),
			one(17, act+".forward.target_group", `no target group is named "ap"; did you mean "api"?`)},
		{"no weighted groups", forward(`target_groups: []`),
			one(17, act+".forward.target_groups", "empty; list 1-5 target groups")},
		{"six weighted groups", forward(`target_groups: [{name: web}, {name: api}, {name: blue}, {name: red}, {name: gray}, {name: green}], stickiness: {enabled: true, duration_seconds: 60}`),
			one(17, act+".forward.target_groups", "6 target groups; ALB allows at most 5 per action")},
		{"a group listed twice", forward(`target_groups: [{name: blue}, {name: blue}]`),
			one(17, act+".forward.target_groups[1].name", `target group "blue" is listed twice`)},
		{"unknown weighted group", forward(`target_groups: [{name: blu}, {name: red}]`),
			one(17, act+".forward.target_groups[0].name", `no target group is named "blu"; did you mean "blue"?`)},
		{"weighted group name missing", forward(`target_groups: [{weight: 1}, {name: red}]`),
			one(17, act+".forward.target_groups[0].name", "missing")},
		{"empty weighted group name", forward(`target_groups: [{name: ""}]`),
			one(17, act+".forward.target_groups[0].name", "empty; it must name a target group")},
		{"weight 1000", forward(`target_groups: [{name: blue, weight: 1000}, {name: red}]`),
			one(17, act+".forward.target_groups[0].weight", "1000 is outside 0-999")},
		{"weight -1", forward(`target_groups: [{name: blue, weight: -1}, {name: red}]`),
			one(17, act+".forward.target_groups[0].weight", "-1 is outside 0-999")},
		{"every weight 0", forward(`target_groups: [{name: blue, weight: 0}, {name: red, weight: 0}]`),
			one(17, act+".forward.target_groups", "every weight is 0; at least one target group needs a weight above 0")},
		{"misspelt weight", forward(`target_groups: [{name: blue, wieght: 2}]`),
			one(17, act+".forward.target_groups[0].wieght", `unknown key; did you mean "weight"?`)},
		{"group stickiness with one target_group", forward(`target_group: api, stickiness: {enabled: true, duration_seconds: 60}`),
			one(17, act+".forward.stickiness", "group stickiness applies to target_groups; one target_group has its own stickiness attributes")},
		{"group stickiness without a duration", forward(`target_groups: [{name: blue}], stickiness: {enabled: true}`),
			one(17, act+".forward.stickiness.duration_seconds", "missing; ALB requires it when stickiness is enabled (1-604800 seconds)")},
		{"group stickiness duration 0", forward(`target_groups: [{name: blue}], stickiness: {enabled: true, duration_seconds: 0}`),
			one(17, act+".forward.stickiness.duration_seconds", "0 is outside 1-604800 seconds")},
		{"group stickiness duration 604801", forward(`target_groups: [{name: blue}], stickiness: {enabled: true, duration_seconds: 604801}`),
			one(17, act+".forward.stickiness.duration_seconds", "604801 is outside 1-604800 seconds")},
		{"group stickiness enabled yes", forward(`target_groups: [{name: blue}], stickiness: {enabled: yes, duration_seconds: 60}`),
			one(17, act+".forward.stickiness.enabled", `"yes" is not true or false`)},
		{"group stickiness enabled missing", forward(`target_groups: [{name: blue}], stickiness: {duration_seconds: 60}`),
			one(17, act+".forward.stickiness.enabled", "missing")},
		{"a sticky group without group stickiness", forward(`target_groups: [{name: blue}, {name: green}]`),
			one(17, act+".forward.stickiness", needGroupStickiness)},
		{"a sticky group with group stickiness off", forward(`target_groups: [{name: blue}, {name: green}], stickiness: {enabled: false}`),
			one(17, act+".forward.stickiness", needGroupStickiness)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkExact(t, rulesBase+c.rules, c.want)
		})
	}
}

// TestParseListenerActionProblems checks what depends on the listener: its
// protocol, and actions in default_action.
func TestParseListenerActionProblems(t *testing.T) {
	https := strings.Replace(rulesBase, "    rules:\n", "    protocol: HTTPS\n    rules:\n", 1) +
		"      - priority: 1\n        conditions: [{path_pattern: [\"/a\"]}]\n" +
		"        action: {type: redirect, redirect: {protocol: HTTP, status_code: HTTP_301}}\n"
	checkExact(t, https, []wantProblem{
		{11, "listeners[0].certificates", "missing; an HTTPS listener needs at least one certificate"},
		{18, "listeners[0].rules[0].action.redirect.protocol",
			"an HTTPS listener cannot redirect to HTTP (ALB allows HTTP to HTTP, HTTP to HTTPS and HTTPS to HTTPS)"},
	})

	for _, c := range []struct {
		name, action string
		want         wantProblem
	}{
		{"default redirect to itself", `{type: redirect, redirect: {status_code: HTTP_301}}`,
			wantProblem{13, "listeners[0].default_action.redirect", "this redirect keeps the request's protocol, host, port and path, so it would redirect to itself; change at least one"}},
		{"default weighted forward with a sticky group", `{type: forward, forward: {target_groups: [{name: green}, {name: red}]}}`,
			wantProblem{13, "listeners[0].default_action.forward.stickiness", `target group "green" has stickiness enabled, so this forward to several groups needs group stickiness too ` +
				"(stickiness: {enabled: true, duration_seconds: ...}); ALB: you must enable group stickiness on a rule " +
				"if you enabled target stickiness on one of its target groups"}},
		{"default weighted forward to an unknown group", `{type: forward, forward: {target_groups: [{name: red}, {name: grey}]}}`,
			wantProblem{13, "listeners[0].default_action.forward.target_groups[1].name", `no target group is named "grey"; did you mean "gray"?`}},
		{"default fixed response", `{type: fixed-response, fixed_response: {status_code: 600}}`,
			wantProblem{13, "listeners[0].default_action.fixed_response.status_code", `"600" is not a 2XX, 4XX or 5XX status code`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkExact(t, strings.Replace(rulesBase, defaultAction, "    default_action: "+c.action+"\n", 1), []wantProblem{c.want})
		})
	}
}

// TestParseManyRuleProblems checks that every mistake in the rules is
// reported at once, in file order, with block-style YAML lines.
func TestParseManyRuleProblems(t *testing.T) {
	const rules = `      - priority: 10
        conditions:
          - host_header: ["api.example.com:443"]
          - path_patern: ["/v1/*"]
          - http_header:
              name: Host
              values: ["x"]
        action:
          type: forward
          forward:
            target_groups:
              - name: blue
                weight: 90
              - name: green
                weight: 10
      - priority: 10
        conditions:
          - query_string:
              - value: 'a\b'
          - path_pattern:
              - /a
              - /b
              - /c
              - /d
        action:
          type: redirect
          redirect:
            protocol: HTTPS
            status_code: HTTP_307
`
	checkExact(t, rulesBase+rules, []wantProblem{
		{17, "listeners[0].rules[0].conditions[0].host_header[0]",
			`"api.example.com:443" has a port; host_header is matched against the host without its port (did you mean "api.example.com"?)`},
		{18, "listeners[0].rules[0].conditions[1].path_patern", `unknown condition; did you mean "path_pattern"?`},
		{20, "listeners[0].rules[0].conditions[2].http_header.name", "http_header cannot match Host; use host_header"},
		{25, "listeners[0].rules[0].action.forward.stickiness", `target group "green" has stickiness enabled, so this forward to several groups needs group stickiness too ` +
			"(stickiness: {enabled: true, duration_seconds: ...}); ALB: you must enable group stickiness on a rule " +
			"if you enabled target stickiness on one of its target groups"},
		{30, "listeners[0].rules[1].priority", "priority 10 is also used by rules[0]; priorities are unique within a listener"},
		{33, "listeners[0].rules[1].conditions[0].query_string[0].value", `"a\\b" has \b: \ escapes only * and ? (and \\ is a backslash)`},
		{34, "listeners[0].rules[1].conditions[1].path_pattern", "4 values; ALB allows at most 3 per condition (any one may match)"},
		{43, "listeners[0].rules[1].action.redirect.status_code", `"HTTP_307" is not one of HTTP_301, HTTP_302; did you mean "HTTP_301"?`},
	})
}

// TestWeightedAppCookie checks that a group with app_cookie stickiness is
// refused in a forward to several groups. The check runs on a config changed
// after parsing, as one the admin API changes.
func TestWeightedAppCookie(t *testing.T) {
	data := rulesBase + rule(`[{path_pattern: ["/a"]}]`,
		`{type: forward, forward: {target_groups: [{name: blue}, {name: red}], stickiness: {enabled: true, duration_seconds: 60}}}`) +
		rule2(`[{path_pattern: ["/b"]}]`, `{type: forward, forward: {target_groups: [{name: blue}]}}`)
	cfg := mustParse(t, data, "latch.yaml")
	blue := cfg.TargetGroup("blue")
	// With its cookie's name, as Validate requires of app_cookie stickiness.
	blue.Stickiness.Enabled, blue.Stickiness.Type, blue.Stickiness.AppCookie = true, AppCookie, "SESSIONID"

	// Validate's problems, placed on the file's lines as Parse places them.
	check := func() Problems {
		d := newDecoder("latch.yaml")
		if d.decode([]byte(data)) == nil {
			t.Fatalf("decode failed: %v", d.probs)
		}
		d.merge(cfg.validate(true))
		return d.probs
	}
	want := Problems{{File: "latch.yaml", Line: 17, Path: "listeners[0].rules[0].action.forward.target_groups[0].name",
		Msg: `target group "blue" has app_cookie stickiness, which ALB does not allow in a forward to several target groups`}}
	if got := check(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}

	// With app_cookie off, the same groups pass.
	blue.Stickiness.Enabled = false
	if got := check(); len(got) != 0 {
		t.Errorf("app_cookie with stickiness disabled: got %v, want no problem", got)
	}
}

// FuzzParseRules is FuzzParse seeded with rules, checking also that every
// config accepted keeps ALB's limits.
func FuzzParseRules(f *testing.F) {
	f.Add(rulesExample)
	f.Add(rulesBase + exampleRule10)
	f.Add(rulesBase + rule(`[{query_string: [{key: '\*', value: 'a\?*'}]}, {source_ip: ["10.0.0.0/8"]}]`,
		`{type: redirect, redirect: {host: "#{host}", path: "/x/#{path}", query: "#{query}&a=#{port}", status_code: HTTP_302}}`))
	f.Add(rulesBase + rule(`[{http_header: {name: X-A, values: ["*"]}}]`,
		`{type: forward, forward: {target_groups: [{name: blue, weight: 0}, {name: green, weight: 3}], stickiness: {enabled: true, duration_seconds: 9}}}`))
	f.Add(rulesBase + rule(`[{host_header: ["*.a.example.com"]}]`, `{type: fixed-response, fixed_response: {status_code: 503, message_body: "x"}}`))
	f.Add(rulesBase + rule(`[{path_pattern: ["/a"], host_header: []}, {}, [], {cookie: 1}]`, `{type: redirect, redirect: {path: "#{", port: 0}}`))
	f.Fuzz(func(t *testing.T, data string) {
		cfg, err := Parse([]byte(data), "")
		if err != nil {
			ps, ok := err.(Problems)
			if !ok || len(ps) == 0 || cfg != nil {
				t.Fatalf("got %v, %T %v; want a nil config and Problems", cfg, err, err)
			}
			for i, p := range ps {
				if p.Msg == "" || i > 0 && p.Line < ps[i-1].Line {
					t.Fatalf("problem %d out of order or empty: %v", i, ps)
				}
			}
			return
		}
		for _, l := range cfg.Listeners {
			prios := map[int]bool{}
			checkAction(t, l.DefaultAction)
			for _, r := range l.Rules {
				if r.Priority < 1 || r.Priority > maxPriority || prios[r.Priority] {
					t.Fatalf("rule with priority %d accepted", r.Priority)
				}
				prios[r.Priority] = true
				evals, wilds := 0, 0
				for _, c := range r.Conditions {
					evals += c.evaluations()
					wilds += c.wildcards()
				}
				if len(r.Conditions) == 0 || evals > maxEvaluations || wilds > maxWildcards {
					t.Fatalf("rule %d accepted with %d conditions, %d evaluations, %d wildcards", r.Priority, len(r.Conditions), evals, wilds)
				}
				checkAction(t, r.Action)
			}
		}
	})
}

func checkAction(t *testing.T, a Action) {
	t.Helper()
	switch a.Type {
	case ActionForward:
		if a.TargetGroup == "" && len(a.TargetGroups) < 2 || len(a.TargetGroups) > maxGroups {
			t.Fatalf("forward accepted with %+v", a)
		}
	case ActionRedirect:
		r := a.Redirect
		if r == nil || r.StatusCode != 301 && r.StatusCode != 302 || !strings.HasPrefix(r.Path, "/") {
			t.Fatalf("redirect accepted with %+v", r)
		}
	case ActionFixedResponse:
		if fr := a.FixedResponse; fr == nil || fr.StatusCode < 200 || fr.StatusCode > 599 || fr.ContentType == "" {
			t.Fatalf("fixed response accepted with %+v", fr)
		}
	default:
		t.Fatalf("action type %v accepted", a.Type)
	}
}
