package route

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
)

// refRule is the reference semantics of a rule, written from ALB's
// documentation and independent of the compiled matchers: wildcards by
// regexp, hosts and fields by the standard library.
func refRule(r *config.Rule, in *Input) bool {
	for _, c := range r.Conditions {
		if !refCond(&c, in) {
			return false
		}
	}
	return true
}

func refCond(c *config.Condition, in *Input) bool {
	switch c.Field {
	case config.HostHeader:
		host := refHost(string(in.Host))
		return slices.ContainsFunc(c.Values, func(v string) bool { return refMatch(v, host, true, false) })
	case config.PathPattern:
		return slices.ContainsFunc(c.Values, func(v string) bool { return refMatch(v, string(in.Path), false, false) })
	case config.HTTPHeader:
		for _, f := range in.Fields {
			if asciiLower(string(f.Name)) == asciiLower(c.Name) &&
				slices.ContainsFunc(c.Values, func(v string) bool { return refMatch(v, string(f.Value), true, false) }) {
				return true
			}
		}
	case config.HTTPRequestMethod:
		return slices.Contains(c.Values, string(in.Method))
	case config.QueryString:
		for _, param := range strings.Split(string(in.Query), "&") {
			if param == "" {
				continue
			}
			k, v, _ := strings.Cut(param, "=")
			for _, p := range c.Pairs {
				if (!p.HasKey || refMatch(p.Key, k, true, true)) && refMatch(p.Value, v, true, true) {
					return true
				}
			}
		}
	case config.CondSourceIP:
		return slices.ContainsFunc(c.CIDRs, func(p netip.Prefix) bool { return p.Contains(in.Source.Unmap()) })
	}
	return false
}

func refHost(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i >= 0 {
			return h[:i+1]
		}
		return h
	}
	if strings.Count(h, ":") == 1 {
		return h[:strings.IndexByte(h, ':')]
	}
	return h
}

// refTable returns the priority of the first rule matching in, or 0.
func refTable(rules []config.Rule, in *Input) int {
	sorted := slices.Clone(rules)
	slices.SortFunc(sorted, func(a, b config.Rule) int { return a.Priority - b.Priority })
	for i := range sorted {
		if refRule(&sorted[i], in) {
			return sorted[i].Priority
		}
	}
	return 0
}

// Pools of rule values and request parts, chosen to overlap: exact and
// wildcard hosts on the same names, nested path prefixes, cases, ports.
var (
	poolHosts = []string{"a.example.com", "b.example.com", "*.example.com", "*.a.example.com", "?.example.com",
		"a.*", "*", "*example.com", "A.Example.COM", "[::1]", "x?y.*.com", "*.com", "a.example.*", "*a*"}
	poolPaths = []string{"/", "/a", "/a/*", "/a*", "*", "/a/b", "/a/b/*", "/b/*/c", "/?", "*/c", "/a/?/c",
		"*.php", "/A/*", "/ab*", "/a/b/c"}
	poolHeaderNames  = []string{"X-A", "x-b"}
	poolHeaderValues = []string{"1", "*1*", "?", "a*", "*"}
	poolMethods      = []string{"GET", "POST", "HEAD"}
	poolPairs        = []config.QueryPair{{Key: "a", Value: "1", HasKey: true}, {Value: "*x*"}, {Key: "b*", Value: "?", HasKey: true},
		{Key: `c\*`, Value: "*", HasKey: true}, {Value: "1"}}
	poolCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("0.0.0.0/0")}

	reqHosts = []string{"a.example.com", "A.EXAMPLE.COM:8080", "b.example.com", "x.a.example.com", "example.com",
		"a.b", "[::1]:80", "xzy.q.com", "", "c.example.com.", "a.example.org", "axa"}
	reqPaths = []string{"", "/", "/a", "/a/", "/a/b", "/a/b/c", "/b/x/c", "/x.php", "/A/b", "/a/z/c", "/ab", "/abc/d", "/b"}
	reqQuery = []string{"", "a=1", "A=1&b1=x", "q=xx", "c*=1", "c%2A=2", "a", "b=%31", "z=1"}
	reqIPs   = []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("::ffff:10.2.0.1"),
		netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("192.0.2.1")}
)

func pick[T any](r *rand.Rand, pool []T, max int) []T {
	n := 1 + r.IntN(max)
	out := make([]T, n)
	for i := range out {
		out[i] = pool[r.IntN(len(pool))]
	}
	return out
}

// randomRules makes n rules with distinct priorities and 1-3 conditions.
func randomRules(r *rand.Rand, n int) []config.Rule {
	// Distinct priorities in random order. (r.Perm(50000) did it by
	// shuffling 50,000 numbers for every set, most of FuzzMatch's time.)
	taken := make(map[int]bool, n)
	rules := make([]config.Rule, n)
	for i := range rules {
		prio := 1 + r.IntN(50000)
		for taken[prio] {
			prio = 1 + r.IntN(50000)
		}
		taken[prio] = true
		rule := config.Rule{Priority: prio}
		used := map[config.ConditionField]bool{}
		for k := 1 + r.IntN(3); k > 0; k-- {
			var c config.Condition
			// Host and path twice as often as the others: they are indexed.
			switch kind := r.IntN(8); {
			case kind < 2 && !used[config.HostHeader]:
				c = config.Condition{Field: config.HostHeader, Values: pick(r, poolHosts, 3)}
			case kind < 4 && !used[config.PathPattern]:
				c = config.Condition{Field: config.PathPattern, Values: pick(r, poolPaths, 3)}
			case kind == 4:
				c = config.Condition{Field: config.HTTPHeader, Name: poolHeaderNames[r.IntN(2)], Values: pick(r, poolHeaderValues, 2)}
			case kind == 5 && !used[config.HTTPRequestMethod]:
				c = config.Condition{Field: config.HTTPRequestMethod, Values: pick(r, poolMethods, 2)}
			case kind == 6:
				c = config.Condition{Field: config.QueryString, Pairs: pick(r, poolPairs, 2)}
			case kind == 7 && !used[config.CondSourceIP]:
				c = config.Condition{Field: config.CondSourceIP, CIDRs: pick(r, poolCIDRs, 2)}
			default:
				continue
			}
			used[c.Field] = true
			rule.Conditions = append(rule.Conditions, c)
		}
		if len(rule.Conditions) == 0 {
			rule.Conditions = []config.Condition{{Field: config.PathPattern, Values: pick(r, poolPaths, 2)}}
		}
		rules[i] = rule
	}
	return rules
}

func randomInput(r *rand.Rand) *Input {
	in := &Input{
		Host:   []byte(reqHosts[r.IntN(len(reqHosts))]),
		Path:   []byte(reqPaths[r.IntN(len(reqPaths))]),
		Query:  []byte(reqQuery[r.IntN(len(reqQuery))]),
		Method: []byte(poolMethods[r.IntN(len(poolMethods))]),
		Source: reqIPs[r.IntN(len(reqIPs))],
	}
	for k := r.IntN(3); k > 0; k-- {
		in.Fields = append(in.Fields, h1.Field{
			Name:  []byte([]string{"X-A", "x-a", "X-B", "Other"}[r.IntN(4)]),
			Value: []byte([]string{"1", "a1b", "z", "", "abc"}[r.IntN(5)]),
		})
	}
	return in
}

// TestIndexAgreesWithScan checks on random rule sets and requests that the
// index finds what a plain scan by priority finds, and that both agree
// with the reference semantics.
func TestIndexAgreesWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sets := 300
	if testing.Short() {
		sets = 50
	}
	matched := 0
	for set := 0; set < sets; set++ {
		rules := randomRules(r, 1+r.IntN(80))
		tab, err := Compile(rules)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		for range 100 {
			in := randomInput(r)
			want := refTable(rules, in)
			m := tab.Match(in)
			if got := m.Priority; got != want {
				t.Fatalf("set %d, %s: Match gave rule %d, reference %d\nrules: %+v", set, describe(in), got, want, rules)
			}
			if i := m.Index; i < 0 || i > len(rules) || i < len(rules) && rules[i].Priority != want || i == len(rules) && want != 0 {
				t.Fatalf("set %d, %s: rule %d has index %d, which is not its place in the list", set, describe(in), want, i)
			}
			if got := tab.scan(in).Priority; got != want {
				t.Fatalf("set %d, %s: scan gave rule %d, reference %d\nrules: %+v", set, describe(in), got, want, rules)
			}
			if want != 0 {
				matched++
			}
		}
	}
	// Guard against a generator that never matches anything.
	if matched < sets*100/4 {
		t.Errorf("only %d of %d requests matched a rule; the test proves little", matched, sets*100)
	}
}

func FuzzMatch(f *testing.F) {
	f.Add(uint64(1), "a.example.com", "/a/b", "a=1", "1", uint8(10))
	f.Add(uint64(2), "X.A.EXAMPLE.COM:8080", "/b/x/c", "c%2A=2&b1=%3F", "a1b", uint8(40))
	f.Add(uint64(3), "[::1]:80", "", "", "", uint8(1))
	f.Fuzz(func(t *testing.T, seed uint64, host, path, query, header string, n uint8) {
		r := rand.New(rand.NewPCG(seed, 0))
		rules := randomRules(r, int(n%64))
		tab, err := Compile(rules)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		in := randomInput(r)
		in.Host, in.Path, in.Query = []byte(host), []byte(path), []byte(query)
		in.Fields = append(in.Fields, h1.Field{Name: []byte("X-A"), Value: []byte(header)})
		want := refTable(rules, in)
		if got := tab.Match(in).Priority; got != want {
			t.Fatalf("%s: Match gave rule %d, reference %d\nrules: %+v", describe(in), got, want, rules)
		}
	})
}
