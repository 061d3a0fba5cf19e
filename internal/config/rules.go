package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Listener rules and actions, checked as ALB checks them
// (../shared/alb-semantics.md §5 and the ELBv2 API reference): limits,
// characters and placeholders are ALB's, and so are the messages' reasons.
// Package route compiles the rules and matches requests against them.

// Rule is one listener rule: when all its conditions match a request, its
// action applies. Within a condition, any one of the values may match.
type Rule struct {
	Priority   int // 1-50000, unique in the listener; the lowest is evaluated first
	Conditions []Condition
	Action     Action
}

// Condition is one test on a request. Values hold ALB's patterns as
// written: * matches any run of characters and ? exactly one.
type Condition struct {
	// Field is "host_header", "path_pattern", "http_header",
	// "http_request_method", "query_string" or "source_ip".
	Field  string
	Name   string         // the header's name, for http_header
	Values []string       // for every Field except query_string and source_ip
	Pairs  []QueryPair    // for query_string
	CIDRs  []netip.Prefix // for source_ip
}

// QueryPair is one query_string pattern. Key and Value take the wildcards
// * and ?; \* and \? stand for the characters themselves, \\ for \.
type QueryPair struct {
	Key, Value string
	HasKey     bool // without a key, Value may match any parameter's value
}

// WeightedGroup is one target group of a weighted forward. A group's share
// of new clients is its weight over the sum of the weights.
type WeightedGroup struct {
	Name   string
	Weight int // 0-999; 1 when not set
}

// GroupStickiness is a weighted forward's stickiness to the group first
// picked for a client, ALB's TargetGroupStickinessConfig.
type GroupStickiness struct {
	Enabled  bool
	Duration time.Duration // 1 s to 7 days; set whenever Enabled
}

// Redirect is a redirect action. Every component is set: one that the
// config leaves out keeps the request's own, as its placeholder
// ("#{protocol}", "#{host}", "#{port}", "/#{path}", "#{query}").
type Redirect struct {
	Protocol   string // "HTTP", "HTTPS" or "#{protocol}"
	Host       string // may hold #{host}
	Port       string // 1-65535 or "#{port}"
	Path       string // starts with /; may hold #{host}, #{path} and #{port}
	Query      string // without '?'; may hold any placeholder
	StatusCode int    // 301 or 302
}

// FixedResponse is a fixed-response action.
type FixedResponse struct {
	StatusCode  int    // 2XX, 4XX or 5XX
	ContentType string // text/plain unless set
	MessageBody string // at most 1024 characters
}

// ALB's limits on rules (load-balancer-limits.html, rule-condition-types.html).
const (
	maxPriority     = 50000
	maxCondValues   = 3   // values per condition, OR-ed
	maxEvaluations  = 5   // match evaluations (condition values) per rule
	maxWildcards    = 5   // * and ? per rule
	maxValueLen     = 128 // characters in a condition value
	maxHeaderName   = 40
	maxMethodLen    = 40
	maxGroups       = 5 // target groups per forward
	maxWeight       = 999
	maxMessageBody  = 1024
	maxRedirectPart = 128 // host, path and query of a redirect
)

var (
	conditionFields = []string{"host_header", "path_pattern", "http_header", "http_request_method", "query_string", "source_ip"}
	// onePerRule are the conditions a rule may hold once; http_header and
	// query_string may repeat (each is then AND-ed with the others).
	onePerRule   = map[string]bool{"host_header": true, "path_pattern": true, "http_request_method": true, "source_ip": true}
	actionTypes  = []string{"forward", "redirect", "fixed-response"}
	contentTypes = []string{"text/plain", "text/css", "text/html", "application/javascript", "application/json"}
	placeholders = []string{"protocol", "host", "port", "path", "query"}
	methodRE     = regexp.MustCompile(`^[A-Z_-]+$`)
	statusRE     = regexp.MustCompile(`^[245][0-9][0-9]$`)
)

// actionKey maps an action type to the key holding its settings.
var actionKey = map[string]string{"forward": "forward", "redirect": "redirect", "fixed-response": "fixed_response"}

// listenerCtx is what an action's checks need to know of its listener.
type listenerCtx struct {
	proto string // "HTTP" or "HTTPS"
	port  string // "" when unknown or chosen at run time (port 0)
}

func listenerContext(l Listener) listenerCtx {
	lc := listenerCtx{proto: l.Protocol}
	if _, port, err := net.SplitHostPort(l.Address); err == nil && port != "0" {
		lc.port = port
	}
	return lc
}

func (d *decoder) rules(n *yaml.Node, path string, lc listenerCtx) []Rule {
	var rules []Rule
	used := map[int]int{} // priority -> index of the rule that has it
	for i, rn := range d.seq(n, path, false) {
		rpath := fmt.Sprintf("%s[%d]", path, i)
		// Every item gets a Rule, valid or not, so that rules[i] is the
		// i-th node when crossCheck looks for lines.
		r := d.rule(rn, rpath, lc)
		if r.Priority != 0 {
			if j, dup := used[r.Priority]; dup {
				d.addf(child(rn, "priority"), rpath+".priority",
					"priority %d is also used by rules[%d]; priorities are unique within a listener", r.Priority, j)
			} else {
				used[r.Priority] = i
			}
		}
		rules = append(rules, r)
	}
	return rules
}

func (d *decoder) rule(n *yaml.Node, path string, lc listenerCtx) Rule {
	var r Rule
	m := d.mapping(n, path, "priority", "conditions", "action")
	if m == nil {
		return r
	}
	if p := d.required(n, m, path, "priority"); p != nil {
		r.Priority = d.int(p, path+".priority", 1, maxPriority)
	}
	r.Conditions = d.conditions(n, m["conditions"], path+".conditions")
	if a := d.required(n, m, path, "action"); a != nil {
		r.Action = d.action(a, path+".action", lc)
	}
	return r
}

// conditions decodes a rule's conditions and checks ALB's per-rule limits.
func (d *decoder) conditions(parent, n *yaml.Node, path string) []Condition {
	const why = "a rule needs at least one condition (default_action is the rule without any)"
	if n == nil || isNull(n) {
		d.addf(parent, path, "missing; %s", why)
		return nil
	}
	items := d.seq(n, path, false)
	at := keyNode(parent, "conditions") // a block list's node is on its first item's line
	if n.Kind == yaml.SequenceNode && len(items) == 0 {
		d.addf(at, path, "empty; %s", why)
	}
	var conds []Condition
	first := map[string]int{} // field -> index of its first condition
	evals, wilds := 0, 0
	for i, cn := range items {
		cpath := fmt.Sprintf("%s[%d]", path, i)
		c, ok := d.condition(cn, cpath)
		if !ok {
			continue
		}
		if j, dup := first[c.Field]; dup && onePerRule[c.Field] {
			d.addf(cn, join(cpath, c.Field),
				"a rule takes one %s condition and conditions[%d] is one; put every value in it (values are OR-ed)", c.Field, j)
		} else if !dup {
			first[c.Field] = i
		}
		evals += c.evaluations()
		wilds += c.wildcards()
		conds = append(conds, c)
	}
	if evals > maxEvaluations {
		d.addf(at, path, "%d match evaluations (condition values and query pairs); ALB allows at most %d per rule", evals, maxEvaluations)
	}
	if wilds > maxWildcards {
		d.addf(at, path, "%d wildcards (* and ?); ALB allows at most %d per rule", wilds, maxWildcards)
	}
	return conds
}

// evaluations counts a condition's match evaluations as ALB does: one per
// value, per query pair and per CIDR.
func (c *Condition) evaluations() int { return len(c.Values) + len(c.Pairs) + len(c.CIDRs) }

// wildcards counts the * and ? in a condition's patterns, escaped ones not
// included. Methods take no wildcards (the check of their characters
// refuses * and ?).
func (c *Condition) wildcards() int {
	n := 0
	if c.Field != "http_request_method" {
		for _, v := range c.Values {
			n += strings.Count(v, "*") + strings.Count(v, "?")
		}
	}
	for _, p := range c.Pairs {
		n += queryWildcards(p.Key) + queryWildcards(p.Value)
	}
	return n
}

func queryWildcards(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '*', '?':
			n++
		}
	}
	return n
}

// condition decodes one list item of conditions: a mapping with one key.
func (d *decoder) condition(n *yaml.Node, path string) (Condition, bool) {
	var c Condition
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping with one of %s, got %s", strings.Join(conditionFields, ", "), kindName(n))
		return c, false
	}
	if len(n.Content) == 0 {
		d.addf(n, path, "empty; a condition is one of %s", strings.Join(conditionFields, ", "))
		return c, false
	}
	for i := 2; i+1 < len(n.Content); i += 2 {
		kn := n.Content[i]
		d.addf(kn, join(path, kn.Value), "a condition has one key; start another list item (- %s: ...) for this one", kn.Value)
	}
	kn, vn := n.Content[0], n.Content[1]
	c.Field = kn.Value
	fpath := join(path, c.Field)
	switch c.Field {
	case "host_header":
		c.Values = d.condValues(vn, kn, fpath, checkHost)
	case "path_pattern":
		c.Values = d.condValues(vn, kn, fpath, checkPathPattern)
	case "http_request_method":
		c.Values = d.condValues(vn, kn, fpath, checkMethod)
	case "http_header":
		m := d.mapping(vn, fpath, "name", "values")
		if m == nil {
			return c, false
		}
		if nn := d.required(vn, m, fpath, "name"); nn != nil {
			var ok bool
			if c.Name, ok = d.scalar(nn, fpath+".name"); ok {
				if msg := checkHeaderName(c.Name); msg != "" {
					d.addf(nn, fpath+".name", "%s", msg)
				}
			}
		}
		if vs := d.required(vn, m, fpath, "values"); vs != nil {
			c.Values = d.condValues(vs, keyNode(vn, "values"), fpath+".values", nil)
		}
	case "query_string":
		for i, pn := range d.valueList(vn, kn, fpath) {
			c.Pairs = append(c.Pairs, d.queryPair(pn, fmt.Sprintf("%s[%d]", fpath, i)))
		}
	case "source_ip":
		for i, v := range d.valueList(vn, kn, fpath) {
			vpath := fmt.Sprintf("%s[%d]", fpath, i)
			if s, ok := d.scalar(v, vpath); ok {
				p, msg := parseCIDR(s)
				if msg != "" {
					d.addf(v, vpath, "%s", msg)
				}
				c.CIDRs = append(c.CIDRs, p)
			}
		}
	default:
		if hint := suggestion(c.Field, conditionFields); hint != "" {
			d.addf(kn, fpath, "unknown condition%s", hint)
		} else {
			d.addf(kn, fpath, "unknown condition; conditions are %s", strings.Join(conditionFields, ", "))
		}
		return c, false
	}
	return c, true
}

// valueList checks that n is a list of 1-3 items, ALB's limit per
// condition. key is n's key, where messages about the list point.
func (d *decoder) valueList(n, key *yaml.Node, path string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		d.addf(n, path, "expected a list of 1-%d values, got %s", maxCondValues, kindName(n))
		return nil
	}
	switch k := len(n.Content); {
	case k == 0:
		d.addf(key, path, "empty; a condition needs 1-%d values", maxCondValues)
	case k > maxCondValues:
		d.addf(key, path, "%d values; ALB allows at most %d per condition (any one may match)", k, maxCondValues)
	}
	return n.Content
}

// condValues decodes a condition's list of values, each checked as every
// value is and then by check, if any.
func (d *decoder) condValues(n, key *yaml.Node, path string, check func(string) string) []string {
	var vals []string
	for i, vn := range d.valueList(n, key, path) {
		vpath := fmt.Sprintf("%s[%d]", path, i)
		v, ok := d.scalar(vn, vpath)
		if !ok {
			continue
		}
		if msg := checkValue(v); msg != "" {
			d.addf(vn, vpath, "%s", msg)
		} else if check != nil {
			if msg := check(v); msg != "" {
				d.addf(vn, vpath, "%s", msg)
			}
		}
		vals = append(vals, v)
	}
	return vals
}

func (d *decoder) queryPair(n *yaml.Node, path string) QueryPair {
	var p QueryPair
	m := d.mapping(n, path, "key", "value")
	if m == nil {
		return p
	}
	if kn := m["key"]; kn != nil {
		var ok bool
		if p.Key, ok = d.scalar(kn, path+".key"); ok {
			p.HasKey = true
			if p.Key == "" {
				d.addf(kn, path+".key", "empty; leave key out to match the value of any parameter")
			} else if msg := checkQueryPattern(p.Key); msg != "" {
				d.addf(kn, path+".key", "%s", msg)
			}
		}
	}
	if vn := d.required(n, m, path, "value"); vn != nil {
		if v, ok := d.scalar(vn, path+".value"); ok {
			p.Value = v
			if msg := checkQueryPattern(v); msg != "" {
				d.addf(vn, path+".value", "%s", msg)
			}
		}
	}
	return p
}

// checkValue applies ALB's rules for every condition value.
func checkValue(v string) string {
	switch {
	case v == "":
		return fmt.Sprintf("empty; a value needs 1-%d characters", maxValueLen)
	case len(v) > maxValueLen:
		return fmt.Sprintf("%d characters; ALB allows at most %d", len(v), maxValueLen)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("%q holds the control character %q; rules match visible ASCII characters only", v, c)
		case c >= 0x80:
			return fmt.Sprintf("%q holds a non-ASCII character; rules match visible ASCII characters only", v)
		}
	}
	return ""
}

// checkHost catches host values that can never match, since the Host's
// port is not compared.
func checkHost(v string) string {
	host := v
	if strings.HasPrefix(v, "[") {
		if i := strings.IndexByte(v, ']'); i >= 0 {
			host = v[:i+1]
		}
	} else if strings.Count(v, ":") > 1 {
		return fmt.Sprintf("%q can never match: a Host holds an IPv6 address in brackets (did you mean %q?)", v, "["+v+"]")
	} else if i := strings.IndexByte(v, ':'); i >= 0 {
		host = v[:i]
	}
	if host != v {
		return fmt.Sprintf("%q has a port; host_header is matched against the host without its port (did you mean %q?)", v, host)
	}
	return ""
}

func checkPathPattern(v string) string {
	if v[0] != '/' && v[0] != '*' && v[0] != '?' {
		return fmt.Sprintf("%q can never match: a request's path starts with / (did you mean %q?)", v, "/"+v)
	}
	return ""
}

func checkMethod(v string) string {
	if len(v) > maxMethodLen || !methodRE.MatchString(v) {
		hint := ""
		if up := strings.ToUpper(v); len(up) <= maxMethodLen && methodRE.MatchString(up) {
			hint = fmt.Sprintf("; did you mean %q?", up)
		}
		return fmt.Sprintf("%q is not a method: use A-Z, - and _ (at most %d), matched exactly%s", v, maxMethodLen, hint)
	}
	return ""
}

func checkHeaderName(v string) string {
	switch {
	case v == "":
		return "empty; name the header to match"
	case len(v) > maxHeaderName:
		return fmt.Sprintf("%d characters; ALB allows at most %d in a header name", len(v), maxHeaderName)
	case strings.EqualFold(v, "Host"):
		return "http_header cannot match Host; use host_header"
	case strings.ContainsAny(v, "*?"):
		return fmt.Sprintf("%q: header names take no wildcards", v)
	}
	for i := 0; i < len(v); i++ {
		if !isTokenChar(v[i]) {
			return fmt.Sprintf("%q is not a header name (character %q)", v, v[i])
		}
	}
	return ""
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func checkQueryPattern(v string) string {
	if msg := checkValue(v); msg != "" {
		return msg
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			continue
		}
		if i+1 == len(v) {
			return fmt.Sprintf(`%q ends in a lone \; write \\ for a backslash`, v)
		}
		if c := v[i+1]; c != '*' && c != '?' && c != '\\' {
			return fmt.Sprintf(`%q has \%c: \ escapes only * and ? (and \\ is a backslash)`, v, c)
		}
		i++
	}
	return ""
}

// parseCIDR parses a source_ip value. ALB takes IPv4 and IPv6 CIDRs, but
// not 255.255.255.255/32.
func parseCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() == "" {
			return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR; did you mean %q?", s, netip.PrefixFrom(a, a.BitLen()).String())
		}
		return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR (an address/prefix length, such as 10.0.0.0/8 or 2001:db8::/32)", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
		return p, fmt.Sprintf("%q is IPv4 written as IPv6; did you mean %q?", s, v4.String())
	}
	if p != p.Masked() {
		return p, fmt.Sprintf("%q has bits set after the prefix length; did you mean %q?", s, p.Masked().String())
	}
	if p == netip.MustParsePrefix("255.255.255.255/32") {
		return p, "ALB does not allow 255.255.255.255/32"
	}
	return p, ""
}

// action decodes a default_action or a rule's action.
func (d *decoder) action(n *yaml.Node, path string, lc listenerCtx) Action {
	var a Action
	m := d.mapping(n, path, "type", "forward", "redirect", "fixed_response")
	if m == nil {
		return a
	}
	t := d.required(n, m, path, "type")
	if t == nil {
		return a
	}
	var ok bool
	if a.Type, ok = d.scalar(t, path+".type"); !ok {
		return a
	}
	key, ok := actionKey[a.Type]
	if !ok {
		d.addf(t, path+".type", "%q is not one of %s%s", a.Type, strings.Join(actionTypes, ", "), suggestion(a.Type, actionTypes))
		return a
	}
	for _, typ := range actionTypes {
		if k := actionKey[typ]; k != key && m[k] != nil {
			d.addf(keyNode(n, k), join(path, k), "set only with type: %s (this action is type: %s)", typ, a.Type)
		}
	}
	s := d.required(n, m, path, key)
	if s == nil {
		return a
	}
	switch a.Type {
	case "forward":
		d.forward(&a, s, path+".forward")
	case "redirect":
		a.Redirect = d.redirect(s, path+".redirect", lc)
	case "fixed-response":
		a.FixedResponse = d.fixedResponse(s, path+".fixed_response")
	}
	return a
}

func (d *decoder) forward(a *Action, n *yaml.Node, path string) {
	m := d.mapping(n, path, "target_group", "target_groups", "stickiness")
	if m == nil {
		return
	}
	g, gs := m["target_group"], m["target_groups"]
	switch {
	case g != nil && gs != nil:
		d.addf(keyNode(n, "target_groups"), path+".target_groups", "set target_group or target_groups, not both")
		return
	case g == nil && gs == nil:
		d.addf(n, path+".target_group", "missing; set target_group, or target_groups to weight several groups")
		return
	case g != nil:
		var ok bool
		a.TargetGroup, ok = d.scalar(g, path+".target_group")
		a.groupLine = g.Line
		if ok && a.TargetGroup == "" {
			d.addf(g, path+".target_group", "empty; it must name a target group")
		}
		if sn := m["stickiness"]; sn != nil {
			d.addf(keyNode(n, "stickiness"), path+".stickiness",
				"group stickiness applies to target_groups; one target_group has its own stickiness attributes")
		}
		return
	}
	items := d.seq(gs, path+".target_groups", false)
	gkey := keyNode(n, "target_groups")
	if gs.Kind == yaml.SequenceNode {
		switch k := len(items); {
		case k == 0:
			d.addf(gkey, path+".target_groups", "empty; list 1-%d target groups", maxGroups)
		case k > maxGroups:
			d.addf(gkey, path+".target_groups", "%d target groups; ALB allows at most %d per action", k, maxGroups)
		}
	}
	nprobs := len(d.probs)
	seen := map[string]bool{}
	positive := false
	for i, gn := range items {
		// As with rules, every item gets an entry, for crossCheck's lines.
		w := WeightedGroup{Weight: 1}
		gpath := fmt.Sprintf("%s.target_groups[%d]", path, i)
		if gm := d.mapping(gn, gpath, "name", "weight"); gm != nil {
			if nn := d.required(gn, gm, gpath, "name"); nn != nil {
				var ok bool
				w.Name, ok = d.scalar(nn, gpath+".name")
				switch {
				case ok && w.Name == "":
					d.addf(nn, gpath+".name", "empty; it must name a target group")
				case ok && seen[w.Name]:
					d.addf(nn, gpath+".name", "target group %q is listed twice", w.Name)
				}
				seen[w.Name] = true
			}
			if wn := gm["weight"]; wn != nil {
				w.Weight = d.int(wn, gpath+".weight", 0, maxWeight)
			}
		}
		positive = positive || w.Weight > 0
		a.TargetGroups = append(a.TargetGroups, w)
	}
	if len(items) > 0 && !positive && len(d.probs) == nprobs {
		d.addf(gkey, path+".target_groups", "every weight is 0; at least one target group needs a weight above 0")
	}
	if len(a.TargetGroups) == 1 {
		a.TargetGroup = a.TargetGroups[0].Name
	}
	if sn := m["stickiness"]; sn != nil {
		a.GroupStickiness = d.groupStickiness(sn, path+".stickiness")
	}
}

func (d *decoder) groupStickiness(n *yaml.Node, path string) GroupStickiness {
	var gs GroupStickiness
	m := d.mapping(n, path, "enabled", "duration_seconds")
	if m == nil {
		return gs
	}
	if en := d.required(n, m, path, "enabled"); en != nil {
		if s, ok := d.scalar(en, path+".enabled"); ok {
			var err error
			if gs.Enabled, err = parseBool(s); err != nil {
				d.addf(en, path+".enabled", "%v", err)
			}
		}
	}
	if dn := m["duration_seconds"]; dn != nil {
		if s, ok := d.scalar(dn, path+".duration_seconds"); ok {
			var err error
			if gs.Duration, err = parseSeconds(s, 1, 604800, false); err != nil {
				d.addf(dn, path+".duration_seconds", "%v", err)
			}
		}
	} else if gs.Enabled {
		d.addf(n, path+".duration_seconds", "missing; ALB requires it when stickiness is enabled (1-604800 seconds)")
	}
	return gs
}

func (d *decoder) redirect(n *yaml.Node, path string, lc listenerCtx) *Redirect {
	r := &Redirect{Protocol: "#{protocol}", Host: "#{host}", Port: "#{port}", Path: "/#{path}", Query: "#{query}"}
	m := d.mapping(n, path, "protocol", "host", "port", "path", "query", "status_code")
	if m == nil {
		return r
	}
	nprobs := len(d.probs)
	if sn := d.required(n, m, path, "status_code"); sn != nil {
		if s, ok := d.scalar(sn, path+".status_code"); ok {
			codes := []string{"HTTP_301", "HTTP_302"}
			switch s {
			case "HTTP_301":
				r.StatusCode = 301
			case "HTTP_302":
				r.StatusCode = 302
			case "301", "302":
				d.addf(sn, path+".status_code", "%q is not one of HTTP_301, HTTP_302; did you mean %q?", s, "HTTP_"+s)
			default:
				d.addf(sn, path+".status_code", "%q is not one of HTTP_301, HTTP_302%s", s, suggestion(s, codes))
			}
		}
	}
	if pn := m["protocol"]; pn != nil {
		if s, ok := d.scalar(pn, path+".protocol"); ok {
			switch err := oneOf(s, []string{"HTTP", "HTTPS", "#{protocol}"}); {
			case err != nil:
				d.addf(pn, path+".protocol", "%v", err)
			case s == "HTTP" && lc.proto == "HTTPS":
				d.addf(pn, path+".protocol", "an HTTPS listener cannot redirect to HTTP (ALB allows HTTP to HTTP, HTTP to HTTPS and HTTPS to HTTPS)")
			default:
				r.Protocol = s
			}
		}
	}
	if pn := m["port"]; pn != nil {
		if s, ok := d.scalar(pn, path+".port"); ok {
			if s != "#{port}" {
				if _, err := parseInt(s, 1, 65535); err != nil {
					d.addf(pn, path+".port", "%v, or #{port}", err)
				}
			}
			r.Port = s
		}
	}
	if hn := m["host"]; hn != nil {
		r.Host = d.redirectPart(hn, path+".host", 1, "host")
	}
	if pn := m["path"]; pn != nil {
		r.Path = d.redirectPart(pn, path+".path", 1, "host", "port", "path")
		if r.Path != "" && r.Path[0] != '/' {
			d.addf(pn, path+".path", "%q must start with /", r.Path)
		}
	}
	if qn := m["query"]; qn != nil {
		r.Query = d.redirectPart(qn, path+".query", 0, placeholders...)
		if strings.HasPrefix(r.Query, "?") {
			d.addf(qn, path+".query", "%q starts with ?; leave it out (latch adds it)", r.Query)
		}
	}
	// ALB: "You must modify at least one of the following components to
	// avoid a redirect loop: protocol, hostname, port, or path."
	if len(d.probs) == nprobs &&
		(r.Protocol == "#{protocol}" || r.Protocol == lc.proto) && r.Host == "#{host}" &&
		(r.Port == "#{port}" || r.Port == lc.port) && r.Path == "/#{path}" {
		d.addf(n, path, "this redirect keeps the request's protocol, host, port and path, so it would redirect to itself; change at least one")
	}
	return r
}

// redirectPart checks a redirect's host, path or query: its length, its
// characters, and that it holds only the placeholders allowed there.
func (d *decoder) redirectPart(n *yaml.Node, path string, minLen int, allowed ...string) string {
	s, ok := d.scalar(n, path)
	if !ok {
		return ""
	}
	switch {
	case len(s) < minLen:
		d.addf(n, path, "empty; leave it out to keep the request's own")
		return s
	case len(s) > maxRedirectPart:
		d.addf(n, path, "%d characters; ALB allows at most %d", len(s), maxRedirectPart)
		return s
	}
	for i := 0; i < len(s); i++ {
		var what string
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			what = fmt.Sprintf("the control character %q", c)
		case c == ' ':
			what = "a space"
		case c >= 0x80:
			what = "a non-ASCII character"
		default:
			continue
		}
		d.addf(n, path, "%q holds %s; percent-encode it (a Location holds visible ASCII only)", s, what)
		return s
	}
	for rest := s; ; {
		i := strings.Index(rest, "#{")
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			d.addf(n, path, "%q has #{ without a closing }", s)
			break
		}
		name := rest[i+2 : i+j]
		switch {
		case !contains(placeholders, name):
			if hint := closest(name, placeholders); hint != "" {
				d.addf(n, path, "unknown placeholder #{%s}; did you mean #{%s}?", name, hint)
			} else {
				d.addf(n, path, "unknown placeholder #{%s}; placeholders are #{protocol}, #{host}, #{port}, #{path} and #{query}", name)
			}
		case !contains(allowed, name):
			d.addf(n, path, "#{%s} cannot be used here (%s)", name, placeholderList(allowed))
		}
		rest = rest[i+j+1:]
	}
	return s
}

func placeholderList(allowed []string) string {
	ps := make([]string, len(allowed))
	for i, a := range allowed {
		ps[i] = "#{" + a + "}"
	}
	if len(ps) == 1 {
		return "only " + ps[0] + " may"
	}
	return strings.Join(ps[:len(ps)-1], ", ") + " and " + ps[len(ps)-1] + " may"
}

func (d *decoder) fixedResponse(n *yaml.Node, path string) *FixedResponse {
	fr := &FixedResponse{ContentType: "text/plain"}
	m := d.mapping(n, path, "status_code", "content_type", "message_body")
	if m == nil {
		return fr
	}
	if sn := d.required(n, m, path, "status_code"); sn != nil {
		if s, ok := d.scalar(sn, path+".status_code"); ok {
			if statusRE.MatchString(s) {
				fr.StatusCode, _ = strconv.Atoi(s)
			} else {
				d.addf(sn, path+".status_code", "%q is not a 2XX, 4XX or 5XX status code", s)
			}
		}
	}
	if cn := m["content_type"]; cn != nil {
		if s, ok := d.scalar(cn, path+".content_type"); ok {
			if err := oneOf(s, contentTypes); err != nil {
				d.addf(cn, path+".content_type", "%v", err)
			} else {
				fr.ContentType = s
			}
		}
	}
	if bn := m["message_body"]; bn != nil {
		if s, ok := d.scalar(bn, path+".message_body"); ok {
			fr.MessageBody = s
			if k := utf8.RuneCountInString(s); k > maxMessageBody {
				d.addf(bn, path+".message_body", "%d characters; ALB allows at most %d", k, maxMessageBody)
			}
		}
	}
	return fr
}

// checkActions checks what a listener's actions refer to, once every
// target group is known: that the groups exist, and ALB's stickiness rules
// for a forward to several groups. ln is the listener's node, for lines.
func (d *decoder) checkActions(cfg *Config, l *Listener, ln *yaml.Node, path string, groups map[string]bool) {
	d.checkAction(cfg, &l.DefaultAction, value(ln, "default_action"), path+".default_action", groups)
	rnodes := d.seqNodes(value(ln, "rules"))
	for i := range l.Rules {
		var an *yaml.Node
		if i < len(rnodes) {
			an = value(rnodes[i], "action")
		}
		d.checkAction(cfg, &l.Rules[i].Action, an, fmt.Sprintf("%s.rules[%d].action", path, i), groups)
	}
}

func (d *decoder) checkAction(cfg *Config, a *Action, n *yaml.Node, path string, groups map[string]bool) {
	if a.Type != "forward" {
		return
	}
	if a.TargetGroups == nil {
		if tg := a.TargetGroup; tg != "" && !groups[tg] {
			d.probs = append(d.probs, Problem{File: d.file, Line: a.groupLine,
				Path: path + ".forward.target_group",
				Msg:  fmt.Sprintf("no target group is named %q%s", tg, suggestion(tg, keys(groups)))})
		}
		return
	}
	fn := value(n, "forward")
	gnodes := d.seqNodes(value(fn, "target_groups"))
	several := len(a.TargetGroups) > 1
	sticky := "" // the first group with target stickiness
	for i, w := range a.TargetGroups {
		if w.Name == "" {
			continue
		}
		gpath := fmt.Sprintf("%s.forward.target_groups[%d].name", path, i)
		var gn *yaml.Node
		if i < len(gnodes) {
			gn = child(gnodes[i], "name")
		}
		g := cfg.TargetGroup(w.Name)
		switch {
		case g == nil:
			d.addf(gn, gpath, "no target group is named %q%s", w.Name, suggestion(w.Name, keys(groups)))
		case several && g.Stickiness.Enabled && g.Stickiness.Type == "app_cookie":
			d.addf(gn, gpath, "target group %q has app_cookie stickiness, which ALB does not allow in a forward to several target groups", w.Name)
		case several && g.Stickiness.Enabled && sticky == "":
			sticky = w.Name
		}
	}
	if sticky != "" && !a.GroupStickiness.Enabled {
		sn := value(fn, "stickiness")
		if sn == nil {
			sn = keyNode(fn, "target_groups")
		}
		d.addf(sn, path+".forward.stickiness",
			"target group %q has stickiness enabled, so this forward to several groups needs group stickiness too "+
				"(stickiness: {enabled: true, duration_seconds: ...}); ALB: you must enable group stickiness on a rule "+
				"if you enabled target stickiness on one of its target groups", sticky)
	}
}

// value returns the value of key in mapping n, or nil.
func value(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// keyNode returns the key node of key in mapping n, or n, for the line of
// a message about the key itself.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i]
			}
		}
	}
	return n
}
