// Package route matches requests to a listener's rules, as ALB does, and builds redirect locations.
package route

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
)

// Input is what rules look at, taken from a request head without copying.
// No field is changed by matching.
type Input struct {
	// Host is the Host header's value, or the authority of an
	// absolute-form target. A port (":8080") is ignored, and so is case.
	Host []byte
	// Path is the request target's path as sent, before any '?': not
	// percent-decoded and not normalised (ALB documents neither; see
	// the package's tests for what that means for patterns).
	Path []byte
	// Query is the raw query string, without '?'. Query keys and values
	// are percent-decoded for matching.
	Query  []byte
	Method []byte
	// Fields are the request's header fields; names compare in any case.
	Fields []h1.Field
	// Source is the TCP peer, never an X-Forwarded-For address (ALB). An
	// IPv4-mapped IPv6 address matches IPv4 CIDRs.
	Source netip.Addr
}

// Rule is one of a Table's rules.
type Rule struct {
	// Priority is the rule's priority, 0 for the default rule (as ALB's
	// access log shows it in matched_rule_priority).
	Priority int
	// Index is the rule's place in the list given to Compile (the default
	// rule's is the list's length), for finding what a caller keeps per
	// rule.
	Index int

	conds []cond // the cheapest first
}

// Table is one listener's rules, compiled and indexed. It is immutable and
// safe for concurrent use.
//
// Matching looks at a few candidate rules, not all of them. Every rule is
// filed under the hosts it can match (the lower-case host for an exact
// host_header value, the literal suffix of a wildcard one such as
// ".example.com" for "*.example.com", or "any host"), and within those
// under the paths it can match (the literal prefix of each path_pattern
// value, such as "/api/" for "/api/*", or "any path"). A request looks up
// its own host and walks its own path, so a rule for another host or
// another path prefix is never evaluated, whatever the number of rules.
// Candidates are evaluated in priority order, lists stopping at the best
// match so far; rules without host_header or path_pattern (headers, query
// strings, methods, sources only) are candidates for every request.
type Table struct {
	rules []Rule // by priority
	def   Rule

	exact  map[string]*bucket // by lower-case host
	suffix *tnode[*bucket]    // by the reversed literal suffix of a wildcard host
	rest   bucket             // no host_header, or a wildcard at the end of one
}

// A bucket holds the rules filed under one host key, by path.
type bucket struct {
	prefix *tnode[[]int32] // by literal path prefix; nil when empty
	rest   []int32         // no path_pattern, or one that starts with a wildcard
}

// maxHost bounds the hosts looked up in the exact map (a DNS name is at
// most 253 characters; config values at most 128).
const maxHost = 255

type field uint8

// The condition kinds, in the order a rule evaluates them: the cheapest
// and most selective first.
const (
	fieldMethod field = iota
	fieldHost
	fieldPath
	fieldSource
	fieldHeader
	fieldQuery
)

var fields = map[config.ConditionField]field{
	config.HTTPRequestMethod: fieldMethod,
	config.HostHeader:        fieldHost,
	config.PathPattern:       fieldPath,
	config.CondSourceIP:      fieldSource,
	config.HTTPHeader:        fieldHeader,
	config.QueryString:       fieldQuery,
}

type cond struct {
	field   field
	name    string    // http_header: the header's name, lower case
	pats    []pattern // host (lower case), path, header (lower case); query values (lower case)
	keys    []pattern // query keys (lower case), for the pairs with one
	hasKey  []bool    // query: hasKey[i] tells whether pair i has a key
	methods []string
	cidrs   []netip.Prefix
}

// Empty reports whether the table has no rule but the default.
func (t *Table) Empty() bool { return len(t.rules) == 0 }

// Compile compiles a listener's rules; a match's Rule.Index tells which
// (len(rules) for the default rule). The config package has validated the
// rules; Compile refuses only what it cannot compile or index: an unknown
// condition, a pattern with a control character or a bad escape, an exact
// host longer than maxHost.
func Compile(rules []config.Rule) (*Table, error) {
	t := &Table{exact: map[string]*bucket{}, def: Rule{Index: len(rules)}}

	order := make([]int, len(rules))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rules[a].Priority, rules[b].Priority) })
	t.rules = make([]Rule, len(rules))
	for i, ri := range order {
		r := &rules[ri]
		t.rules[i] = Rule{Priority: r.Priority, Index: ri}
		for _, c := range r.Conditions {
			cc, err := compileCond(c)
			if err != nil {
				return nil, fmt.Errorf("route: rule %d: %v", r.Priority, err)
			}
			t.rules[i].conds = append(t.rules[i].conds, cc)
		}
		slices.SortStableFunc(t.rules[i].conds, func(a, b cond) int { return cmp.Compare(a.field, b.field) })
		t.file(int32(i))
	}
	return t, nil
}

func compileCond(c config.Condition) (cond, error) {
	f, ok := fields[c.Field]
	if !ok {
		return cond{}, fmt.Errorf("unknown condition %v", c.Field)
	}
	cc := cond{field: f}
	var err error
	switch f {
	case fieldMethod:
		cc.methods = c.Values
	case fieldHost, fieldPath, fieldHeader:
		for _, v := range c.Values {
			var p pattern
			if p, err = compile(v, f != fieldPath, false); err != nil {
				return cc, err
			}
			if f == fieldHost && !p.wild && len(p.s) > maxHost {
				return cc, fmt.Errorf("host %q is longer than %d characters", v, maxHost)
			}
			cc.pats = append(cc.pats, p)
		}
		if f == fieldHeader {
			cc.name = strings.ToLower(c.Name)
		}
	case fieldQuery:
		for _, pair := range c.Pairs {
			var k, v pattern
			if pair.HasKey {
				if k, err = compile(pair.Key, true, true); err != nil {
					return cc, err
				}
			}
			if v, err = compile(pair.Value, true, true); err != nil {
				return cc, err
			}
			cc.keys = append(cc.keys, k)
			cc.hasKey = append(cc.hasKey, pair.HasKey)
			cc.pats = append(cc.pats, v)
		}
	case fieldSource:
		cc.cidrs = append(cc.cidrs, c.CIDRs...)
	}
	return cc, nil
}

// file adds rule i to the index. Rules are filed in priority order, so
// every list stays sorted; a rule reached twice (two values with the same
// key) is filed once.
func (t *Table) file(i int32) {
	r := &t.rules[i]
	var hosts []*bucket
	if c := r.cond(fieldHost); c == nil {
		hosts = append(hosts, &t.rest)
	} else {
		for _, p := range c.pats {
			var b *bucket
			switch suffix := p.suffix(); {
			case !p.wild:
				if b = t.exact[p.s]; b == nil {
					b = new(bucket)
					t.exact[p.s] = b
				}
			case suffix != "":
				if t.suffix == nil {
					t.suffix = new(tnode[*bucket])
				}
				v := t.suffix.insert(reverse(suffix))
				if *v == nil {
					*v = new(bucket)
				}
				b = *v
			default:
				b = &t.rest
			}
			if !slices.Contains(hosts, b) {
				hosts = append(hosts, b)
			}
		}
	}
	path := r.cond(fieldPath)
	for _, b := range hosts {
		if path == nil {
			b.rest = appendOnce(b.rest, i)
			continue
		}
		for _, p := range path.pats {
			prefix := p.prefix()
			if prefix == "" {
				b.rest = appendOnce(b.rest, i)
				continue
			}
			if b.prefix == nil {
				b.prefix = new(tnode[[]int32])
			}
			v := b.prefix.insert(prefix)
			*v = appendOnce(*v, i)
		}
	}
}

func (r *Rule) cond(f field) *cond {
	for i := range r.conds {
		if r.conds[i].field == f {
			return &r.conds[i]
		}
	}
	return nil
}

func appendOnce(list []int32, i int32) []int32 {
	if n := len(list); n > 0 && list[n-1] == i {
		return list
	}
	return append(list, i)
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// Match returns the first rule, by priority, whose conditions all match
// in, or the default rule. It never returns nil, and does not allocate.
func (t *Table) Match(in *Input) *Rule {
	m := matcher{t: t, in: in, host: hostPart(in.Host), best: int32(len(t.rules))}
	if len(t.exact) > 0 && len(m.host) <= maxHost {
		key := m.host
		if hasUpper(key) {
			var buf [maxHost]byte
			key = buf[:len(m.host)]
			for i, c := range m.host {
				key[i] = lower(c)
			}
		}
		if b := t.exact[string(key)]; b != nil {
			m.bucket(b)
		}
	}
	if t.suffix != nil {
		w := walk(t.suffix, m.host, true)
		for n := w.next(); n != nil; n = w.next() {
			m.bucket(n.val)
		}
	}
	m.bucket(&t.rest)
	if int(m.best) < len(t.rules) {
		return &t.rules[m.best]
	}
	return &t.def
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// matcher is one Match: the best rule found so far bounds what is left
// to evaluate.
type matcher struct {
	t    *Table
	in   *Input
	host []byte
	best int32 // index of the best match so far; len(t.rules) for none
}

func (m *matcher) bucket(b *bucket) {
	if b.prefix != nil {
		w := walk(b.prefix, m.in.Path, false)
		for n := w.next(); n != nil; n = w.next() {
			m.list(n.val)
		}
	}
	m.list(b.rest)
}

func (m *matcher) list(l []int32) {
	for _, i := range l {
		if i >= m.best {
			return
		}
		if m.t.rules[i].matches(m.in, m.host) {
			m.best = i
			return
		}
	}
}

func (r *Rule) matches(in *Input, host []byte) bool {
	for i := range r.conds {
		if !r.conds[i].matches(in, host) {
			return false
		}
	}
	return true
}

func (c *cond) matches(in *Input, host []byte) bool {
	switch c.field {
	case fieldMethod:
		for _, m := range c.methods {
			if string(in.Method) == m {
				return true
			}
		}
	case fieldHost:
		return anyMatch(c.pats, host, true, false)
	case fieldPath:
		return anyMatch(c.pats, in.Path, false, false)
	case fieldSource:
		a := in.Source.Unmap()
		for _, p := range c.cidrs {
			if p.Contains(a) {
				return true
			}
		}
	case fieldHeader:
		// Repeated fields: any of their values may match.
		for _, f := range in.Fields {
			if h1.EqualLower(f.Name, c.name) && anyMatch(c.pats, f.Value, true, false) {
				return true
			}
		}
	case fieldQuery:
		return c.matchQuery(in.Query)
	}
	return false
}

// matchQuery reports whether any parameter of q matches any of c's pairs.
// Parameters are separated by '&'; one without '=' is a key with an empty
// value. Keys and values are compared percent-decoded ('+' stays '+': ALB
// describes query strings by RFC 3986, not as form data).
func (c *cond) matchQuery(q []byte) bool {
	for len(q) > 0 {
		param := q
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			param, q = q[:i], q[i+1:]
		} else {
			q = nil
		}
		if len(param) == 0 {
			continue
		}
		key, val := param, param[len(param):]
		if i := bytes.IndexByte(param, '='); i >= 0 {
			key, val = param[:i], param[i+1:]
		}
		for i := range c.pats {
			if (!c.hasKey[i] || c.keys[i].match(key, true, true)) && c.pats[i].match(val, true, true) {
				return true
			}
		}
	}
	return false
}

// hostPart returns h without its port: "[::1]" for "[::1]:8080",
// "example.com" for "example.com:80". Anything else is returned whole.
func hostPart(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		if i := bytes.IndexByte(h, ']'); i >= 0 {
			return h[:i+1]
		}
		return h
	}
	if i := bytes.IndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i+1:], ':') < 0 {
		return h[:i]
	}
	return h
}
