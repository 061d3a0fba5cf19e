package route

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
)

// cond builds a condition from a compact form: "host_header a.example.com
// *.b.example.com", "http_header X-Name v1 v2", "query_string k=v =v",
// "source_ip 10.0.0.0/8". Values hold no spaces.
func cnd(s string) config.Condition {
	f := strings.Fields(s)
	var c config.Condition
	if err := c.Field.UnmarshalText([]byte(f[0])); err != nil {
		panic(err)
	}
	vals := f[1:]
	switch c.Field {
	case config.HTTPHeader:
		c.Name, vals = vals[0], vals[1:]
		c.Values = vals
	case config.QueryString:
		for _, v := range vals {
			k, val, _ := strings.Cut(v, "=")
			c.Pairs = append(c.Pairs, config.QueryPair{Key: k, Value: val, HasKey: k != ""})
		}
	case config.CondSourceIP:
		for _, v := range vals {
			c.CIDRs = append(c.CIDRs, netip.MustParsePrefix(v))
		}
	default:
		c.Values = vals
	}
	return c
}

// rl builds a rule.
func rl(priority int, conds ...string) config.Rule {
	r := config.Rule{Priority: priority}
	for _, c := range conds {
		r.Conditions = append(r.Conditions, cnd(c))
	}
	return r
}

func mustCompile(t testing.TB, rules ...config.Rule) *Table {
	t.Helper()
	tab, err := Compile(rules)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tab
}

// scan is Match without the index, for comparison.
func (t *Table) scan(in *Input) *Rule {
	host := hostPart(in.Host)
	for i := range t.rules {
		if t.rules[i].matches(in, host) {
			return &t.rules[i]
		}
	}
	return &t.def
}

// req builds an Input from a compact form: "GET host/path?query" plus
// header fields "Name: value" and an optional source address.
func req(line string, extra ...string) *Input {
	method, target, _ := strings.Cut(line, " ")
	in := &Input{Method: []byte(method), Source: netip.MustParseAddr("192.0.2.1")}
	host, rest, _ := strings.Cut(target, "/")
	in.Host = []byte(host)
	if rest != "" || strings.Contains(target, "/") {
		p, q, _ := strings.Cut("/"+rest, "?")
		in.Path, in.Query = []byte(p), []byte(q)
	}
	for _, e := range extra {
		if name, v, ok := strings.Cut(e, ": "); ok {
			in.Fields = append(in.Fields, h1.Field{Name: []byte(name), Value: []byte(v)})
		} else {
			in.Source = netip.MustParseAddr(e)
		}
	}
	return in
}

type matchCase struct {
	in   *Input
	want bool
}

// checkCond checks one condition against requests, with a rule that has
// only it, in Match and in the plain scan.
func checkCond(t *testing.T, c string, cases []matchCase) {
	t.Helper()
	tab := mustCompile(t, rl(1, c))
	for _, mc := range cases {
		want := 0
		if mc.want {
			want = 1
		}
		if got := tab.Match(mc.in).Priority; got != want {
			t.Errorf("%s vs %s: Match gave rule %d, want %d", c, describe(mc.in), got, want)
		}
		if got := tab.scan(mc.in).Priority; got != want {
			t.Errorf("%s vs %s: scan gave rule %d, want %d", c, describe(mc.in), got, want)
		}
	}
}

func describe(in *Input) string {
	s := fmt.Sprintf("%s host %q path %q query %q source %v", in.Method, in.Host, in.Path, in.Query, in.Source)
	for _, f := range in.Fields {
		s += fmt.Sprintf(" [%s: %s]", f.Name, f.Value)
	}
	return s
}

func TestHostHeader(t *testing.T) {
	checkCond(t, "host_header api.example.com", []matchCase{
		{req("GET api.example.com/"), true},
		{req("GET API.Example.COM/"), true},                     // case-insensitive
		{req("GET api.example.com:8080/"), true},                // the port is ignored
		{req("GET api.example.com./"), false},                   // a trailing dot is not removed
		{req("GET www.api.example.com/"), false},                // exact
		{req("GET api.example.co/"), false},                     // exact
		{req("GET /"), false},                                   // no Host
		{req("GET api.example.com:8080:1/"), false},             // not a host:port
		{req("GET api.example.com", "X-A: b"), true},            // no path
		{req("GET other.com/", "Host: api.example.com"), false}, // Input.Host, not the fields
	})
	checkCond(t, "host_header *.example.com", []matchCase{
		{req("GET a.example.com/"), true},
		{req("GET a.b.EXAMPLE.com:443/"), true},
		{req("GET example.com/"), false}, // ALB: *.example.com does not match example.com
		{req("GET .example.com/"), true},
		{req("GET a.example.com.evil/"), false},
		{req("GET aexample.com/"), false},
	})
	checkCond(t, "host_header api.* ?.example.com", []matchCase{
		{req("GET api.x/"), true},
		{req("GET api./"), true},
		{req("GET a.example.com/"), true},
		{req("GET ab.example.com/"), false},
		{req("GET .example.com/"), false},
	})
	checkCond(t, "host_header [::1] 127.0.0.1", []matchCase{
		{req("GET [::1]:8080/"), true},
		{req("GET [::1]/"), true},
		{req("GET [::2]:8080/"), false},
		{req("GET 127.0.0.1:8080/"), true},
		{req("GET ::1/"), false}, // not a valid Host; taken whole
	})
	checkCond(t, "host_header *", []matchCase{
		{req("GET a/"), true},
		{req("GET /"), true},
	})
}

func TestPathPattern(t *testing.T) {
	checkCond(t, "path_pattern /img/*", []matchCase{
		{req("GET h/img/a.png"), true},
		{req("GET h/img/"), true},
		{req("GET h/img"), false},
		{req("GET h/IMG/a.png"), false}, // case-sensitive
		{req("GET h/x/img/a"), false},
		{req("GET h/img/a?x=1"), true},
	})
	checkCond(t, "path_pattern /a/*/c /b?", []matchCase{
		{req("GET h/a/x/c"), true},
		{req("GET h/a/x/y/c"), true},
		{req("GET h/a/c"), false},
		{req("GET h/b1"), true},
		{req("GET h/b"), false},
	})
	checkCond(t, "path_pattern /search", []matchCase{
		{req("GET h/search"), true},
		{req("GET h/search?q=/search"), true}, // the query is not part of the path
		{req("GET h/search/"), false},
		{req("GET h/x?/search"), false}, // nor is the path part of the query
	})
	// The path is matched as sent, not decoded: ALB does not document
	// decoding, and a path is forwarded as sent.
	checkCond(t, "path_pattern /a%20b /café*", []matchCase{
		{req("GET h/a%20b"), true},
		{req("GET h/a b"), false},
	})
	checkCond(t, "path_pattern *", []matchCase{
		{req("GET h"), true}, // empty path
		{req("GET h/"), true},
	})
	checkCond(t, "path_pattern /*", []matchCase{
		{req("GET h"), false}, // an empty path has no /
		{req("GET h/"), true},
	})
	checkCond(t, "path_pattern *.php", []matchCase{
		{req("GET h/a/b.php"), true},
		{req("GET h/a/b.php5"), false},
		{req("GET h/.php"), true},
	})
}

func TestHTTPHeader(t *testing.T) {
	checkCond(t, "http_header User-Agent *Chrome* *Safari*", []matchCase{
		{req("GET h/", "User-Agent: Mozilla Chrome/120"), true},
		{req("GET h/", "user-agent: mozilla chrome/120"), true}, // name and value in any case
		{req("GET h/", "USER-AGENT: SAFARI"), true},
		{req("GET h/", "User-Agent: curl"), false},
		{req("GET h/"), false},
		{req("GET h/", "User-Agentx: Chrome"), false},
		{req("GET h/", "X-User-Agent: Chrome"), false},
		// Repeated fields: any of them may match.
		{req("GET h/", "User-Agent: curl", "User-Agent: Chrome"), true},
		{req("GET h/", "User-Agent: curl", "User-Agent: wget"), false},
	})
	checkCond(t, "http_header X-Canary true", []matchCase{
		{req("GET h/", "X-Canary: true"), true},
		{req("GET h/", "X-Canary: TRUE"), true},
		{req("GET h/", "X-Canary: true, false"), false}, // a field is one value
		{req("GET h/", "X-Canary: "), false},
	})
	checkCond(t, "http_header X-Empty *", []matchCase{
		{req("GET h/", "X-Empty: "), true},
		{req("GET h/"), false}, // the field must be there
	})
}

func TestHTTPRequestMethod(t *testing.T) {
	checkCond(t, "http_request_method GET HEAD", []matchCase{
		{req("GET h/"), true},
		{req("HEAD h/"), true},
		{req("get h/"), false}, // case-sensitive
		{req("POST h/"), false},
		{req("GETX h/"), false},
	})
	checkCond(t, "http_request_method CUSTOM-METHOD", []matchCase{
		{req("CUSTOM-METHOD h/"), true},
	})
}

func TestQueryString(t *testing.T) {
	checkCond(t, "query_string version=v1 =example", []matchCase{
		// ALB's own example: version=v1, or any key set to example.
		{req("GET h/?version=v1"), true},
		{req("GET h/?a=1&version=v1&b=2"), true},
		{req("GET h/?VERSION=V1"), true}, // case-insensitive
		{req("GET h/?version=v2"), false},
		{req("GET h/?other=example"), true},
		{req("GET h/?example"), false}, // a key without a value
		{req("GET h/?version=v1x"), false},
		{req("GET h/?xversion=v1"), false},
		{req("GET h/"), false},
		{req("GET h/version=v1"), false}, // the path is not the query
		{req("GET h/?version%3Dv1"), false},
		{req("GET h/?ver%73ion=%76%31"), true}, // decoded
		{req("GET h/?&&version=v1&"), true},
	})
	checkCond(t, "query_string =*beta*", []matchCase{
		{req("GET h/?channel=public-BETA-2"), true},
		{req("GET h/?beta=1"), false},
		{req("GET h/?a=b%65ta"), true},
	})
	checkCond(t, `query_string debug=*`, []matchCase{
		{req("GET h/?debug"), true}, // a key alone has an empty value
		{req("GET h/?debug="), true},
		{req("GET h/?debugger=1"), false},
	})
	checkCond(t, `query_string q=a\*b k\?=\\`, []matchCase{
		{req("GET h/?q=a*b"), true},
		{req("GET h/?q=a%2Ab"), true},
		{req("GET h/?q=axb"), false},
		{req("GET h/?k?=%5C"), true},
		{req("GET h/?kx=%5C"), false},
	})
	checkCond(t, `query_string q=a+b q=c%20d`, []matchCase{
		{req("GET h/?q=a+b"), true},
		{req("GET h/?q=a%2Bb"), true},
		{req("GET h/?q=a%20b"), false}, // '+' is not a space
		{req("GET h/?q=c%2520d"), true},
	})
}

func TestSourceIP(t *testing.T) {
	checkCond(t, "source_ip 10.0.0.0/8 2001:db8::/32", []matchCase{
		{req("GET h/", "10.1.2.3"), true},
		{req("GET h/", "11.1.2.3"), false},
		{req("GET h/", "::ffff:10.1.2.3"), true}, // an IPv4-mapped peer of a dual-stack socket
		{req("GET h/", "2001:db8::1"), true},
		{req("GET h/", "2001:db9::1"), false},
		{req("GET h/", "X-Forwarded-For: 10.0.0.1"), false}, // the peer, never X-Forwarded-For
	})
	checkCond(t, "source_ip 0.0.0.0/0", []matchCase{
		{req("GET h/", "::ffff:1.2.3.4"), true},
		{req("GET h/", "::1"), false},
		{&Input{}, false}, // no peer address
	})
	checkCond(t, "source_ip ::/0", []matchCase{
		{req("GET h/", "::1"), true},
		{req("GET h/", "1.2.3.4"), false},
		{req("GET h/", "::ffff:1.2.3.4"), false}, // unmapped, so IPv4
	})
}

// TestAndOr checks that a rule's conditions are AND-ed and a condition's
// values OR-ed, and that two conditions of the same kind must both match.
func TestAndOr(t *testing.T) {
	tab := mustCompile(t,
		rl(1, "host_header a.example.com b.example.com", "path_pattern /x/* /y/*", "http_request_method GET"),
		rl(2, "http_header X-A 1", "http_header X-B 2"),
		rl(3, "query_string a=1", "query_string b=2"),
	)
	for _, c := range []struct {
		in   *Input
		want int
	}{
		{req("GET a.example.com/x/1"), 1},
		{req("GET b.example.com/y/1"), 1},
		{req("POST b.example.com/y/1"), 0},
		{req("GET c.example.com/y/1"), 0},
		{req("GET a.example.com/z/1"), 0},
		{req("GET h/", "X-A: 1", "X-B: 2"), 2},
		{req("GET h/", "X-A: 1"), 0},
		{req("GET h/", "X-B: 2", "X-A: 1"), 2},
		{req("GET h/?b=2&a=1"), 3},
		{req("GET h/?a=1"), 0},
		{req("GET h/?a=2&b=1"), 0},
	} {
		if got := tab.Match(c.in).Priority; got != c.want {
			t.Errorf("%s: got rule %d, want %d", describe(c.in), got, c.want)
		}
	}
}

// TestPriority checks that the first matching rule by priority wins,
// whatever the order of the config and whichever index finds it.
func TestPriority(t *testing.T) {
	rules := []config.Rule{
		rl(50, "path_pattern /api/*"),
		rl(40, "host_header api.example.com"),
		rl(30, "path_pattern /api/v1/*"),
		rl(20, "host_header *.example.com", "path_pattern /api/v1/users"),
		rl(60, "http_request_method GET"),
		rl(10, "http_header X-Debug 1"),
		rl(45, "path_pattern *"),
	}
	tab := mustCompile(t, rules...)
	for _, c := range []struct {
		in   *Input
		want int
	}{
		{req("GET api.example.com/api/v1/users"), 20},
		{req("GET api.example.com/api/v1/users", "X-Debug: 1"), 10},
		{req("GET api.example.com/api/v1/x"), 30},
		{req("GET api.example.com/api/v2"), 40},
		{req("GET other.com/api/v2"), 45},
		{req("GET other.com/api/v1/users"), 30},
		{req("GET www.example.com/api/v1/users"), 20},
		{req("POST other.com"), 45}, // path_pattern * matches an empty path too
	} {
		r := tab.Match(c.in)
		if r.Priority != c.want {
			t.Errorf("%s: got rule %d, want %d", describe(c.in), r.Priority, c.want)
		}
		// Index is the rule's place in the list given to Compile.
		if r.Index < 0 || r.Index >= len(rules) || rules[r.Index].Priority != r.Priority {
			t.Errorf("%s: rule %d has index %d, which is not its place in the list", describe(c.in), r.Priority, r.Index)
		}
	}
	if r := tab.Match(req("GET api.example.com/api/v1/users")); r.Index != 3 {
		t.Errorf("rule 20: got index %d, want 3", r.Index)
	}
}

func TestDefaultRule(t *testing.T) {
	tab := mustCompile(t, rl(1, "path_pattern /a"))
	r := tab.Match(req("GET h/b"))
	if r == nil || r.Priority != 0 || r.Index != 1 {
		t.Fatalf("got %+v, want the default rule (index 1)", r)
	}
	empty := mustCompile(t)
	if r := empty.Match(req("GET h/")); r.Priority != 0 || r.Index != 0 {
		t.Errorf("no rules: got %+v, want the default rule (index 0)", r)
	}
	if r := empty.Match(&Input{}); r.Priority != 0 || r.Index != 0 {
		t.Errorf("empty input: got %+v, want the default rule", r)
	}
}

// TestCompileCopies checks that a Table keeps its own rules: changing
// them after Compile changes no match.
func TestCompileCopies(t *testing.T) {
	rules := []config.Rule{rl(1, "path_pattern /a")}
	tab, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	rules[0].Priority = 2
	rules[0].Conditions[0].Values[0] = "/b"
	if r := tab.Match(req("GET h/a")); r.Priority != 1 || r.Index != 0 {
		t.Errorf("h/a: got rule %d (index %d), want rule 1 (index 0)", r.Priority, r.Index)
	}
	if r := tab.Match(req("GET h/b")); r.Priority != 0 || r.Index != 1 {
		t.Errorf("h/b: got rule %d (index %d), want the default rule (index 1)", r.Priority, r.Index)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		rules []config.Rule
		want  string
	}{
		// What config.Parse refuses (priorities, empty conditions, values
		// and names, invalid CIDRs) is its tests' business.
		{"unknown field", []config.Rule{{Priority: 1, Conditions: []config.Condition{{Field: config.ConditionField(99), Values: []string{"a"}}}}}, `route: rule 1: unknown condition ConditionField(99)`},
		{"control character", []config.Rule{rl(2, "path_pattern /a\x01")}, `route: rule 2: "/a\x01" holds the control character '\x01'`},
		{"bad escape", []config.Rule{rl(2, `query_string k=a\b`)}, `route: rule 2: "a\\b": \ escapes only *, ? and \`},
		{"long host", []config.Rule{rl(3, "host_header "+strings.Repeat("a", maxHost+1))}, fmt.Sprintf("route: rule 3: host %q is longer than %d characters", strings.Repeat("a", maxHost+1), maxHost)},
	} {
		_, err := Compile(c.rules)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: got %v, want %s", c.name, err, c.want)
		}
	}
}

func TestHostPart(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"example.com", "example.com"},
		{"example.com:8080", "example.com"},
		{"example.com:", "example.com"},
		{"[::1]:8080", "[::1]"},
		{"[::1]", "[::1]"},
		{"[::1", "[::1"},
		{"::1", "::1"},
		{"", ""},
	} {
		if got := string(hostPart([]byte(c.in))); got != c.want {
			t.Errorf("hostPart(%q): got %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMatchAllocs checks that matching allocates nothing, whichever
// conditions and indexes a request goes through.
func TestMatchAllocs(t *testing.T) {
	tab := mustCompile(t,
		rl(1, "host_header a.example.com", "path_pattern /x/*"),
		rl(2, "host_header *.example.com", "path_pattern /y/*"),
		rl(3, "http_header X-A *a*", "query_string k=*v* =z"),
		rl(4, "source_ip 10.0.0.0/8 2001:db8::/32", "http_request_method GET"),
		rl(5, "path_pattern *.php"),
	)
	for _, in := range []*Input{
		req("GET A.EXAMPLE.COM:8080/x/1"),
		req("GET b.Example.com/y/2"),
		req("GET h/", "X-A: bab", "X-B: c"),
		req("GET h/?a=1&K=%76&b"),
		req("GET [2001:db8::1]:443/", "2001:db8::1"),
		req("GET " + strings.Repeat("h", 300) + "/" + strings.Repeat("p", 300) + "?" + strings.Repeat("q%41&", 50)),
		req("POST nowhere/"),
	} {
		if n := testing.AllocsPerRun(100, func() { tab.Match(in) }); n != 0 {
			t.Errorf("%s: %v allocations per Match, want 0", describe(in), n)
		}
	}
}

// TestCompileParsedConfig checks the way from a config file to a match.
func TestCompileParsedConfig(t *testing.T) {
	const data = `listeners:
  - name: public
    address: 127.0.0.1:8080
    rules:
      - priority: 20
        conditions: [{path_pattern: ["/old/*"]}]
        action:
          type: redirect
          redirect: {protocol: HTTPS, port: "443", path: "/new/#{path}", status_code: HTTP_301}
      - priority: 10
        conditions:
          - host_header: ["api.example.com", "*.api.example.com"]
          - query_string: [{key: version, value: "2"}, {value: '\*beta*'}]
        action: {type: forward, forward: {target_group: api}}
      - priority: 30
        conditions: [{path_pattern: ["/ping"]}, {http_request_method: [GET, HEAD]}]
        action: {type: fixed-response, fixed_response: {status_code: 200, message_body: pong}}
    default_action: {type: forward, forward: {target_group: web}}
target_groups:
  - name: web
  - name: api
`
	cfg, err := config.Parse([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	tab, err := Compile(l.Rules)
	if err != nil {
		t.Fatal(err)
	}
	// action finds a match's action as package lb does, by Index.
	action := func(r *Rule) *config.Action {
		if r.Index == len(l.Rules) {
			return &l.DefaultAction
		}
		return &l.Rules[r.Index].Action
	}
	for _, c := range []struct {
		in   *Input
		want int
	}{
		{req("GET v1.api.example.com/old/x?version=2"), 10},
		{req("GET api.example.com/?channel=*beta"), 10},
		{req("GET api.example.com/?channel=beta"), 0},
		{req("GET api.example.com/old/x"), 20},
		{req("HEAD www.example.com/ping"), 30},
		{req("POST www.example.com/ping"), 0},
	} {
		if got := tab.Match(c.in).Priority; got != c.want {
			t.Errorf("%s: got rule %d, want %d", describe(c.in), got, c.want)
		}
	}
	r := tab.Match(req("GET www.example.com:8080/old/a/b?c=1"))
	if got, want := string(AppendLocation(nil, action(r).Redirect, req("GET www.example.com:8080/old/a/b?c=1"), l.Protocol.String(), "8080")),
		"https://www.example.com:443/new/old/a/b?c=1"; got != want {
		t.Errorf("Location: got %s, want %s", got, want)
	}
	if fr := action(tab.Match(req("GET h/ping"))).FixedResponse; fr == nil || fr.StatusCode != 200 || fr.ContentType != "text/plain" || fr.MessageBody != "pong" {
		t.Errorf("fixed response: got %+v", fr)
	}
}
