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
)

// Listener rules and actions, checked as ALB checks them
// (../shared/alb-semantics.md §5 and the ELBv2 API reference): limits,
// characters and placeholders are ALB's, and so are the messages' reasons.
// Package route compiles the rules and matches requests against them.

// Rule is one listener rule: when all its conditions match a request, its
// action applies. Within a condition, any one of the values may match. The
// zero value is not valid: a rule needs a priority, a condition and an
// action.
type Rule struct {
	Priority int // 1-50000, unique in the listener; the lowest is evaluated first
	// Conditions are AND-ed; a rule needs one at least (nil is reported as
	// missing, an empty list as empty).
	Conditions []Condition
	Action     Action
}

// Condition is one test on a request. Values hold ALB's patterns as
// written: * matches any run of characters and ? exactly one. Only the
// fields of its Field are set; Validate refuses the others, which would be
// ignored.
type Condition struct {
	Field  ConditionField // zero: HostHeader
	Name   string         // the header's name, for HTTPHeader
	Values []string       // for every Field but QueryString and CondSourceIP
	Pairs  []QueryPair    // for QueryString
	CIDRs  []netip.Prefix // for CondSourceIP, masked
}

// QueryPair is one query_string pattern. Key and Value take the wildcards
// * and ?; \* and \? stand for the characters themselves, \\ for \. The
// zero value is not valid: Value is required.
type QueryPair struct {
	Key, Value string
	HasKey     bool // without a key, Value may match any parameter's value
}

// WeightedGroup is one target group of a weighted forward. A group's share
// of new clients is its weight over the sum of the weights. The zero value
// is not valid: it names no group.
type WeightedGroup struct {
	Name   string
	Weight int // 0-999 (0: no new clients); a file's default is 1
}

// GroupStickiness is a weighted forward's stickiness to the group first
// picked for a client, ALB's TargetGroupStickinessConfig. The zero value is
// off.
type GroupStickiness struct {
	Enabled  bool
	Duration time.Duration // whole seconds, 1 s to 7 days; set whenever Enabled
}

// Redirect is a redirect action. Every component is set: one that the
// config leaves out keeps the request's own, as its placeholder
// ("#{protocol}", "#{host}", "#{port}", "/#{path}", "#{query}"), which a
// Redirect built in Go must spell too. The zero value is not valid.
type Redirect struct {
	Protocol   string // "HTTP", "HTTPS" or "#{protocol}"
	Host       string // may hold #{host}
	Port       string // 1-65535 or "#{port}"
	Path       string // starts with /; may hold #{host}, #{path} and #{port}
	Query      string // without '?'; may hold any placeholder
	StatusCode int    // 301 or 302
}

// FixedResponse is a fixed-response action. The zero value is not valid: it
// needs a status code and a content type.
type FixedResponse struct {
	StatusCode  int    // 2XX, 4XX or 5XX
	ContentType string // one of ALB's five; a file's default is text/plain
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

const conditionsWhy = "a rule needs at least one condition (default_action is the rule without any)"

var (
	contentTypes      = []string{"text/plain", "text/css", "text/html", "application/javascript", "application/json"}
	placeholders      = []string{"protocol", "host", "port", "path", "query"}
	redirectProtocols = []string{"HTTP", "HTTPS", "#{protocol}"}
	methodRE          = regexp.MustCompile(`^[A-Z_-]+$`)
	broadcast         = netip.MustParsePrefix("255.255.255.255/32")
)

// listenerCtx is what an action's checks need to know of its listener.
type listenerCtx struct {
	proto Protocol
	port  string // "" when unknown or chosen at run time (port 0)
	// protoPath and addrPath are the listener's protocol and address, on
	// which the checks of a redirect depend.
	protoPath, addrPath string
}

func listenerContext(l *Listener, path string) listenerCtx {
	lc := listenerCtx{proto: l.Protocol, protoPath: path + ".protocol", addrPath: path + ".address"}
	if _, port, err := net.SplitHostPort(l.Address); err == nil && port != "0" {
		lc.port = port
	}
	return lc
}

// rules checks a listener's rules, and the priorities across them.
func (v *validator) rules(rules []Rule, path string, lc listenerCtx) {
	used := map[int]int{} // priority -> index of the rule that has it
	for i := range rules {
		r := &rules[i]
		rpath := item(path, i)
		if msg := checkRange(r.Priority, 1, maxPriority, ""); msg != "" {
			v.add(rpath+".priority", msg)
		} else if j, dup := used[r.Priority]; dup {
			v.addf(rpath+".priority", "priority %d is also used by rules[%d]; priorities are unique within a listener", r.Priority, j)
		} else {
			used[r.Priority] = i
		}
		v.conditions(r.Conditions, rpath+".conditions")
		v.action(&r.Action, rpath+".action", lc)
	}
}

// conditions checks a rule's conditions and ALB's per-rule limits.
func (v *validator) conditions(conds []Condition, path string) {
	switch {
	case conds == nil:
		v.addList(path, "missing; %s", conditionsWhy)
	case len(conds) == 0:
		v.addList(path, "empty; %s", conditionsWhy)
	}
	first := map[ConditionField]int{} // field -> index of its first condition
	evals, wilds := 0, 0
	for i := range conds {
		c := &conds[i]
		cpath := item(path, i)
		if !c.Field.valid() {
			v.add(cpath, enumProblem(c.Field, conditionFieldNames))
			continue
		}
		fpath := join(cpath, c.Field.String())
		if j, dup := first[c.Field]; dup && c.Field.onePerRule() {
			undo := v.depend(item(path, j))
			v.addList(fpath, "a rule takes one %s condition and conditions[%d] is one; put every value in it (values are OR-ed)", c.Field, j)
			undo()
		} else if !dup {
			first[c.Field] = i
		}
		v.condition(c, fpath)
		evals += c.evaluations()
		wilds += c.wildcards()
	}
	// Counted over what could be decoded, as a condition that could not
	// holds no value.
	if evals > maxEvaluations {
		v.addList(path, "%d match evaluations (condition values and query pairs); ALB allows at most %d per rule", evals, maxEvaluations)
	}
	if wilds > maxWildcards {
		v.addList(path, "%d wildcards (* and ?); ALB allows at most %d per rule", wilds, maxWildcards)
	}
}

// condition checks one condition; fpath is its field's path
// (conditions[0].host_header).
func (v *validator) condition(c *Condition, fpath string) {
	switch c.Field {
	case HostHeader:
		v.values(c.Values, fpath, checkHost)
	case PathPattern:
		v.values(c.Values, fpath, checkPathPattern)
	case HTTPRequestMethod:
		v.values(c.Values, fpath, checkMethod)
	case HTTPHeader:
		if msg := checkHeaderName(c.Name); msg != "" {
			v.add(fpath+".name", msg)
		}
		v.values(c.Values, fpath+".values", nil)
	case QueryString:
		v.count(len(c.Pairs), fpath)
		for j, p := range c.Pairs {
			v.queryPair(p, item(fpath, j))
		}
	case CondSourceIP:
		v.count(len(c.CIDRs), fpath)
		for j, p := range c.CIDRs {
			if msg := checkCIDR(p); msg != "" {
				v.add(item(fpath, j), msg)
			}
		}
	}
	// What belongs to another kind of condition would be ignored at run time.
	if c.Name != "" && c.Field != HTTPHeader {
		v.addf(fpath, "has a Name (%q); only http_header conditions take one", c.Name)
	}
	if len(c.Values) > 0 && (c.Field == QueryString || c.Field == CondSourceIP) {
		takes := "CIDRs"
		if c.Field == QueryString {
			takes = "Pairs"
		}
		v.addf(fpath, "has Values; a %s condition takes %s", c.Field, takes)
	}
	if len(c.Pairs) > 0 && c.Field != QueryString {
		v.add(fpath, "has Pairs; only query_string conditions take them")
	}
	if len(c.CIDRs) > 0 && c.Field != CondSourceIP {
		v.add(fpath, "has CIDRs; only source_ip conditions take them")
	}
}

// count checks the number of values of a condition, ALB's limit.
func (v *validator) count(n int, path string) {
	switch {
	case n == 0:
		v.addList(path, "empty; a condition needs 1-%d values", maxCondValues)
	case n > maxCondValues:
		v.addList(path, "%d values; ALB allows at most %d per condition (any one may match)", n, maxCondValues)
	}
}

// values checks a condition's list of values, each as every value is and
// then by check, if any.
func (v *validator) values(vals []string, path string, check func(string) string) {
	v.count(len(vals), path)
	for j, s := range vals {
		msg := checkValue(s)
		if msg == "" && check != nil {
			msg = check(s)
		}
		if msg != "" {
			v.add(item(path, j), msg)
		}
	}
}

func (v *validator) queryPair(p QueryPair, path string) {
	switch {
	case p.HasKey && p.Key == "":
		v.add(path+".key", "empty; leave key out to match the value of any parameter")
	case p.HasKey:
		if msg := checkQueryPattern(p.Key); msg != "" {
			v.add(path+".key", msg)
		}
	case p.Key != "":
		v.addf(path+".key", "%q would be ignored: HasKey is false", p.Key)
	}
	if msg := checkQueryPattern(p.Value); msg != "" {
		v.add(path+".value", msg)
	}
}

// evaluations counts a condition's match evaluations as ALB does: one per
// value, per query pair and per CIDR.
func (c *Condition) evaluations() int { return len(c.Values) + len(c.Pairs) + len(c.CIDRs) }

// wildcards counts the * and ? in a condition's patterns, escaped ones not
// included. Methods take no wildcards (the check of their characters
// refuses * and ?).
func (c *Condition) wildcards() int {
	n := 0
	if c.Field != HTTPRequestMethod {
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

// checkCIDR checks a source_ip value. ALB takes IPv4 and IPv6 CIDRs, but
// not 255.255.255.255/32.
func checkCIDR(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "not a CIDR: an invalid netip.Prefix (the zero value?)"
	case p.Addr().Is4In6() && p.Bits() >= 96:
		v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
		return fmt.Sprintf("%q is IPv4 written as IPv6; did you mean %q?", p.String(), v4.String())
	case p != p.Masked():
		return fmt.Sprintf("%q has bits set after the prefix length; did you mean %q?", p.String(), p.Masked().String())
	case p == broadcast:
		return "ALB does not allow 255.255.255.255/32"
	}
	return ""
}

// action checks a default_action or a rule's action. Everything in it
// depends on its type: after a file's mistake there, the action is a
// placeholder.
func (v *validator) action(a *Action, path string, lc listenerCtx) {
	defer v.depend(path + ".type")()
	switch a.Type {
	case ActionForward:
		v.forward(a, path+".forward")
	case ActionRedirect:
		if a.Redirect == nil {
			v.add(path+".redirect", "missing")
		} else {
			v.redirect(a.Redirect, path+".redirect", lc)
		}
	case ActionFixedResponse:
		if a.FixedResponse == nil {
			v.add(path+".fixed_response", "missing")
		} else {
			v.fixedResponse(a.FixedResponse, path+".fixed_response")
		}
	default:
		v.add(path+".type", enumProblem(a.Type, actionTypeNames))
		return
	}
	// The settings of another type would be ignored at run time.
	other := func(t ActionType, set bool) {
		if set && t != a.Type {
			v.addf(join(path, t.key()), "set only with type: %s (this action is type: %s)", t, a.Type)
		}
	}
	other(ActionForward, a.TargetGroup != "" || a.TargetGroups != nil || a.GroupStickiness != (GroupStickiness{}))
	other(ActionRedirect, a.Redirect != nil)
	other(ActionFixedResponse, a.FixedResponse != nil)
}

// forward checks a forward: its groups exist, ALB's limits on weighted
// forwards, and ALB's stickiness rules for a forward to several groups.
func (v *validator) forward(a *Action, path string) {
	gpath := path + ".target_groups"
	if a.TargetGroups == nil {
		switch {
		case a.TargetGroup == "":
			v.add(path+".target_group", "empty; it must name a target group")
		case v.cfg.TargetGroup(a.TargetGroup) == nil:
			v.addf(path+".target_group", "no target group is named %q%s", a.TargetGroup, suggestion(a.TargetGroup, v.names))
		}
		if a.GroupStickiness != (GroupStickiness{}) {
			v.add(path+".stickiness", "group stickiness applies to target_groups; one target_group has its own stickiness attributes")
		}
		return
	}
	// TargetGroup repeats a single weighted group's name, for run time.
	if a.TargetGroup != "" && (len(a.TargetGroups) != 1 || a.TargetGroups[0].Name != a.TargetGroup) {
		v.add(gpath, "set target_group or target_groups, not both")
	}
	switch k := len(a.TargetGroups); {
	case k == 0:
		v.addList(gpath, "empty; list 1-%d target groups", maxGroups)
	case k > maxGroups:
		v.addList(gpath, "%d target groups; ALB allows at most %d per action", k, maxGroups)
	}
	nprobs := len(v.probs)
	seen := map[string]bool{}
	allZero := true
	for i, w := range a.TargetGroups {
		wpath := item(gpath, i)
		switch {
		case w.Name == "":
			v.add(wpath+".name", "empty; it must name a target group")
		case seen[w.Name]:
			v.addf(wpath+".name", "target group %q is listed twice", w.Name)
		}
		seen[w.Name] = true
		if msg := checkRange(w.Weight, 0, maxWeight, ""); msg != "" {
			v.add(wpath+".weight", msg)
		}
		allZero = allZero && w.Weight == 0
	}
	if len(a.TargetGroups) > 0 && allZero && len(v.probs) == nprobs {
		v.add(gpath, "every weight is 0; at least one target group needs a weight above 0")
	}
	gs := a.GroupStickiness
	if gs.Enabled || gs.Duration != 0 {
		if msg := stickinessDuration.check(gs.Duration); msg != "" {
			v.add(path+".stickiness.duration_seconds", msg)
		}
	}
	several := len(a.TargetGroups) > 1
	sticky := "" // the first group with target stickiness
	for i, w := range a.TargetGroups {
		if w.Name == "" {
			continue
		}
		npath := item(gpath, i) + ".name"
		g := v.cfg.TargetGroup(w.Name)
		switch {
		case g == nil:
			v.addf(npath, "no target group is named %q%s", w.Name, suggestion(w.Name, v.names))
		case several && g.Stickiness.Enabled && g.Stickiness.Type == AppCookie:
			v.addf(npath, "target group %q has app_cookie stickiness, which ALB does not allow in a forward to several target groups", w.Name)
		case several && g.Stickiness.Enabled && sticky == "":
			sticky = w.Name
		}
	}
	if sticky != "" && !gs.Enabled {
		v.addf(path+".stickiness",
			"target group %q has stickiness enabled, so this forward to several groups needs group stickiness too "+
				"(stickiness: {enabled: true, duration_seconds: ...}); ALB: you must enable group stickiness on a rule "+
				"if you enabled target stickiness on one of its target groups", sticky)
	}
}

func (v *validator) redirect(r *Redirect, path string, lc listenerCtx) {
	nprobs := len(v.probs)
	switch r.StatusCode {
	case 301, 302:
	case 0:
		v.add(path+".status_code", "missing")
	default:
		v.addf(path+".status_code", "%d is not one of HTTP_301, HTTP_302", r.StatusCode)
	}
	if err := oneOf(r.Protocol, redirectProtocols); err != nil {
		v.add(path+".protocol", err.Error())
	} else if r.Protocol == "HTTP" && lc.proto == HTTPS {
		undo := v.depend(lc.protoPath)
		v.add(path+".protocol", "an HTTPS listener cannot redirect to HTTP (ALB allows HTTP to HTTP, HTTP to HTTPS and HTTPS to HTTPS)")
		undo()
	}
	if r.Port != "#{port}" {
		if p, err := parseInt(r.Port); err != nil {
			v.addf(path+".port", "%v, or #{port}", err)
		} else if msg := checkRange(p, 1, 65535, ", or #{port}"); msg != "" {
			v.add(path+".port", msg)
		}
	}
	v.redirectPart(r.Host, path+".host", 1, "host")
	v.redirectPart(r.Path, path+".path", 1, "host", "port", "path")
	if r.Path != "" && r.Path[0] != '/' {
		v.addf(path+".path", "%q must start with /", r.Path)
	}
	v.redirectPart(r.Query, path+".query", 0, placeholders...)
	if strings.HasPrefix(r.Query, "?") {
		v.addf(path+".query", "%q starts with ?; leave it out (latch adds it)", r.Query)
	}
	// ALB: "You must modify at least one of the following components to
	// avoid a redirect loop: protocol, hostname, port, or path."
	if len(v.probs) == nprobs &&
		(r.Protocol == "#{protocol}" || r.Protocol == lc.proto.String()) && r.Host == "#{host}" &&
		(r.Port == "#{port}" || r.Port == lc.port) && r.Path == "/#{path}" {
		undo := v.depend(lc.protoPath, lc.addrPath)
		v.add(path, "this redirect keeps the request's protocol, host, port and path, so it would redirect to itself; change at least one")
		undo()
	}
}

// redirectPart checks a redirect's host, path or query: its length, its
// characters, and that it holds only the placeholders allowed there.
func (v *validator) redirectPart(s, path string, minLen int, allowed ...string) {
	switch {
	case len(s) < minLen:
		v.add(path, "empty; leave it out to keep the request's own")
		return
	case len(s) > maxRedirectPart:
		v.addf(path, "%d characters; ALB allows at most %d", len(s), maxRedirectPart)
		return
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
		v.addf(path, "%q holds %s; percent-encode it (a Location holds visible ASCII only)", s, what)
		return
	}
	for rest := s; ; {
		i := strings.Index(rest, "#{")
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			v.addf(path, "%q has #{ without a closing }", s)
			break
		}
		name := rest[i+2 : i+j]
		switch {
		case !contains(placeholders, name):
			if hint := closest(name, placeholders); hint != "" {
				v.addf(path, "unknown placeholder #{%s}; did you mean #{%s}?", name, hint)
			} else {
				v.addf(path, "unknown placeholder #{%s}; placeholders are #{protocol}, #{host}, #{port}, #{path} and #{query}", name)
			}
		case !contains(allowed, name):
			v.addf(path, "#{%s} cannot be used here (%s)", name, placeholderList(allowed))
		}
		rest = rest[i+j+1:]
	}
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

func (v *validator) fixedResponse(fr *FixedResponse, path string) {
	switch c := fr.StatusCode; {
	case c == 0:
		v.add(path+".status_code", "missing")
	case !(c >= 200 && c <= 299 || c >= 400 && c <= 599):
		v.addf(path+".status_code", "%q is not a 2XX, 4XX or 5XX status code", strconv.Itoa(c))
	}
	if err := oneOf(fr.ContentType, contentTypes); err != nil {
		v.add(path+".content_type", err.Error())
	}
	if k := utf8.RuneCountInString(fr.MessageBody); k > maxMessageBody {
		v.addf(path+".message_body", "%d characters; ALB allows at most %d", k, maxMessageBody)
	}
}
