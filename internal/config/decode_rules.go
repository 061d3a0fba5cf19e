package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoding of listener rules and actions. Every list item gets a value,
// valid or not, so that a slice's i-th element is the file's i-th item and
// Validate's paths are the file's.

func (d *decoder) rules(n *yaml.Node, path string) []Rule {
	items, _ := d.seq(n, path)
	var rules []Rule
	for i, rn := range items {
		rules = append(rules, d.rule(rn, item(path, i)))
	}
	return rules
}

func (d *decoder) rule(n *yaml.Node, path string) Rule {
	var r Rule
	m := d.mapping(n, path, "priority", "conditions", "action")
	if m == nil {
		return r
	}
	if p := d.required(n, m, path, "priority"); p != nil {
		d.int(p, path+".priority", &r.Priority)
	}
	r.Conditions = d.conditions(n, m["conditions"], path+".conditions")
	if a := d.required(n, m, path, "action"); a != nil {
		r.Action = d.action(a, path+".action")
	}
	return r
}

// conditions decodes a rule's conditions. parent is the rule's node.
func (d *decoder) conditions(parent, n *yaml.Node, path string) []Condition {
	if n == nil || isNull(n) {
		d.addf(parent, path, "missing; %s", conditionsWhy)
		return nil
	}
	d.at(path, keyNode(parent, "conditions")) // a block list's node is on its first item's line
	items, ok := d.seq(n, path)
	if !ok {
		return nil
	}
	conds := make([]Condition, 0, len(items))
	for i, cn := range items {
		conds = append(conds, d.condition(cn, item(path, i)))
	}
	return conds
}

// condition decodes one list item of conditions: a mapping with one key.
// The key's line stands for the condition's field path, where the messages
// about its list of values point.
func (d *decoder) condition(n *yaml.Node, path string) Condition {
	var c Condition
	fields := strings.Join(conditionFieldNames, ", ")
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping with one of %s, got %s", fields, kindName(n))
		return c
	}
	if len(n.Content) == 0 {
		d.addf(n, path, "empty; a condition is one of %s", fields)
		return c
	}
	for i := 2; i+1 < len(n.Content); i += 2 {
		kn := n.Content[i]
		d.addf(kn, join(path, kn.Value), "a condition has one key; start another list item (- %s: ...) for this one", kn.Value)
	}
	kn, vn := n.Content[0], n.Content[1]
	fpath := join(path, kn.Value)
	if err := c.Field.UnmarshalText([]byte(kn.Value)); err != nil {
		d.addf(kn, fpath, "%v", err)
		d.bad = append(d.bad, path) // the item is a placeholder
		return c
	}
	d.at(fpath, kn)
	switch c.Field {
	case HostHeader, PathPattern, HTTPRequestMethod:
		c.Values = d.condValues(vn, fpath)
	case HTTPHeader:
		m := d.mapping(vn, fpath, "name", "values")
		if m == nil {
			return c
		}
		if nn := d.required(vn, m, fpath, "name"); nn != nil {
			c.Name, _ = d.scalar(nn, fpath+".name")
		}
		if vs := d.required(vn, m, fpath, "values"); vs != nil {
			d.at(fpath+".values", keyNode(vn, "values"))
			c.Values = d.condValues(vs, fpath+".values")
		}
	case QueryString:
		for i, pn := range d.valueList(vn, fpath) {
			c.Pairs = append(c.Pairs, d.queryPair(pn, item(fpath, i)))
		}
	case CondSourceIP:
		for i, v := range d.valueList(vn, fpath) {
			vpath := item(fpath, i)
			var p netip.Prefix
			if s, ok := d.scalar(v, vpath); ok {
				var msg string
				if p, msg = parseCIDR(s); msg != "" {
					d.addf(v, vpath, "%s", msg)
				}
			}
			c.CIDRs = append(c.CIDRs, p)
		}
	}
	return c
}

// valueList returns the items of a condition's list of values; ALB's limit
// on their number is Validate's.
func (d *decoder) valueList(n *yaml.Node, path string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		d.addf(n, path, "expected a list of 1-%d values, got %s", maxCondValues, kindName(n))
		return nil
	}
	for i, in := range n.Content {
		d.at(item(path, i), in)
	}
	return n.Content
}

func (d *decoder) condValues(n *yaml.Node, path string) []string {
	var vals []string
	for i, vn := range d.valueList(n, path) {
		v, _ := d.scalar(vn, item(path, i))
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
		if s, ok := d.scalar(kn, path+".key"); ok {
			p.Key, p.HasKey = s, true
		}
	}
	if vn := d.required(n, m, path, "value"); vn != nil {
		p.Value, _ = d.scalar(vn, path+".value")
	}
	return p
}

// parseCIDR parses a source_ip value as written, host bits and all, for
// checkCIDR's messages.
func parseCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() == "" {
			return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR; did you mean %q?", s, netip.PrefixFrom(a, a.BitLen()).String())
		}
		return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR (an address/prefix length, such as 10.0.0.0/8 or 2001:db8::/32)", s)
	}
	return p, ""
}

// action decodes a default_action or a rule's action.
func (d *decoder) action(n *yaml.Node, path string) Action {
	var a Action
	m := d.mapping(n, path, "type", "forward", "redirect", "fixed_response")
	if m == nil {
		return a
	}
	t := d.required(n, m, path, "type")
	if t == nil {
		return a
	}
	s, ok := d.scalar(t, path+".type")
	if !ok {
		return a
	}
	if err := a.Type.UnmarshalText([]byte(s)); err != nil {
		d.addf(t, path+".type", "%v", err)
		return a
	}
	for _, typ := range []ActionType{ActionForward, ActionRedirect, ActionFixedResponse} {
		if k := typ.key(); typ != a.Type && m[k] != nil {
			d.addf(keyNode(n, k), join(path, k), "set only with type: %s (this action is type: %s)", typ, a.Type)
		}
	}
	key := a.Type.key()
	sn := d.required(n, m, path, key)
	if sn == nil {
		return a
	}
	switch a.Type {
	case ActionForward:
		d.forward(&a, sn, path+".forward")
	case ActionRedirect:
		a.Redirect = d.redirect(sn, path+".redirect")
	case ActionFixedResponse:
		a.FixedResponse = d.fixedResponse(sn, path+".fixed_response")
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
		d.bad = append(d.bad, path+".target_group") // neither is decoded
		return
	case g == nil && gs == nil:
		d.addf(n, path+".target_group", "missing; set target_group, or target_groups to weight several groups")
		return
	case g != nil:
		a.TargetGroup, _ = d.scalar(g, path+".target_group")
		if m["stickiness"] != nil {
			d.addf(keyNode(n, "stickiness"), path+".stickiness",
				"group stickiness applies to target_groups; one target_group has its own stickiness attributes")
		}
		return
	}
	gpath := path + ".target_groups"
	d.at(gpath, keyNode(n, "target_groups"))
	items, ok := d.seq(gs, gpath)
	if !ok && gs.Tag != "!!null" {
		d.bad = append(d.bad, path+".target_group") // a forward without its groups
	}
	a.TargetGroups = make([]WeightedGroup, 0, len(items))
	for i, gn := range items {
		w := WeightedGroup{Weight: 1}
		wpath := item(gpath, i)
		if gm := d.mapping(gn, wpath, "name", "weight"); gm != nil {
			if nn := d.required(gn, gm, wpath, "name"); nn != nil {
				w.Name, _ = d.scalar(nn, wpath+".name")
			}
			if wn := gm["weight"]; wn != nil {
				d.int(wn, wpath+".weight", &w.Weight)
			}
		}
		a.TargetGroups = append(a.TargetGroups, w)
	}
	if !ok && gs.Tag != "!!null" {
		a.TargetGroups = nil
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
		d.bool(en, path+".enabled", &gs.Enabled)
	}
	if dn := m["duration_seconds"]; dn != nil {
		if d.seconds(dn, path+".duration_seconds", stickinessDuration, &gs.Duration) && gs.Duration == 0 {
			// 0 is how the field spells unset; a file's 0 is a mistake.
			d.addf(dn, path+".duration_seconds", "%s", stickinessDuration.outside(dn.Value))
		}
	} else if gs.Enabled {
		d.addf(n, path+".duration_seconds", "missing; ALB requires it when stickiness is enabled (1-604800 seconds)")
	}
	return gs
}

func (d *decoder) redirect(n *yaml.Node, path string) *Redirect {
	r := &Redirect{Protocol: "#{protocol}", Host: "#{host}", Port: "#{port}", Path: "/#{path}", Query: "#{query}"}
	m := d.mapping(n, path, "protocol", "host", "port", "path", "query", "status_code")
	if m == nil {
		return r
	}
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
	for _, c := range []struct {
		key string
		dst *string
	}{{"protocol", &r.Protocol}, {"port", &r.Port}, {"host", &r.Host}, {"path", &r.Path}, {"query", &r.Query}} {
		if v := m[c.key]; v != nil {
			if s, ok := d.scalar(v, path+"."+c.key); ok {
				*c.dst = s
			}
		}
	}
	return r
}

// statusRE is what a status code is written as; its range is Validate's.
var statusRE = regexp.MustCompile(`^[1-9][0-9]{0,8}$`)

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
			fr.ContentType = s
		}
	}
	if bn := m["message_body"]; bn != nil {
		if s, ok := d.scalar(bn, path+".message_body"); ok {
			fr.MessageBody = s
		}
	}
	return fr
}
