package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder walks the YAML node tree by hand, rather than unmarshalling into
// tagged structs, so that every problem carries its path and line, unknown
// keys get a "did you mean", and one pass reports every mistake.
type decoder struct {
	file  string
	dir   string
	probs Problems
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) decode(data []byte) *Config {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		d.syntaxError(err)
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		d.addf(nil, "", "the config is empty; it needs at least one listener and one target group")
		return nil
	}
	// yaml.Unmarshal would silently drop every document after the first.
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			d.syntaxError(err)
		} else {
			d.addf(&extra, "", "a second YAML document (after ---); a config is one document")
		}
		return nil
	}
	root := doc.Content[0]
	m := d.mapping(root, "", "listeners", "target_groups", "state_dir", "cookie_keys")
	if m == nil {
		return nil
	}
	cfg := &Config{StateDir: "latch-state"}
	if n := m["state_dir"]; n != nil {
		var ok bool
		if cfg.StateDir, ok = d.scalar(n, "state_dir"); ok && cfg.StateDir == "" {
			d.addf(n, "state_dir", "must not be empty")
		}
	}
	if !filepath.IsAbs(cfg.StateDir) {
		cfg.StateDir = filepath.Join(d.dir, cfg.StateDir)
	}
	for i, n := range d.seq(m["target_groups"], "target_groups", true) {
		cfg.TargetGroups = append(cfg.TargetGroups, d.targetGroup(n, fmt.Sprintf("target_groups[%d]", i)))
	}
	for i, n := range d.seq(m["listeners"], "listeners", true) {
		cfg.Listeners = append(cfg.Listeners, d.listener(n, fmt.Sprintf("listeners[%d]", i)))
	}
	for i, n := range d.seq(m["cookie_keys"], "cookie_keys", false) {
		cfg.CookieKeys = append(cfg.CookieKeys, d.cookieKey(n, fmt.Sprintf("cookie_keys[%d]", i)))
	}
	d.crossCheck(cfg, m)
	return cfg
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

// syntaxError reports a YAML syntax error, moving the line yaml puts in its
// message into the Problem so that problems sort and print alike.
func (d *decoder) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Msg: "YAML syntax: " + msg})
}

// crossCheck validates what no single node can: uniqueness and references.
func (d *decoder) crossCheck(cfg *Config, m map[string]*yaml.Node) {
	groups := map[string]bool{}
	gnodes := d.seqNodes(m["target_groups"])
	for i, g := range cfg.TargetGroups {
		if g.Name == "" {
			continue
		}
		if groups[g.Name] {
			d.addf(child(gnodes[i], "name"), fmt.Sprintf("target_groups[%d].name", i), "duplicate target group name %q", g.Name)
		}
		groups[g.Name] = true
	}
	names, addrs := map[string]bool{}, map[string]bool{}
	lnodes := d.seqNodes(m["listeners"])
	for i, l := range cfg.Listeners {
		path := fmt.Sprintf("listeners[%d]", i)
		if l.Name != "" && names[l.Name] {
			d.addf(child(lnodes[i], "name"), path+".name", "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		if l.Address != "" && !strings.HasSuffix(l.Address, ":0") && addrs[l.Address] {
			d.addf(child(lnodes[i], "address"), path+".address", "address %s is already used by another listener", l.Address)
		}
		addrs[l.Address] = true
		d.checkActions(cfg, &cfg.Listeners[i], lnodes[i], path, groups)
	}
	ids := map[uint32]bool{}
	knodes := d.seqNodes(m["cookie_keys"])
	for i, k := range cfg.CookieKeys {
		if k.ID != 0 && ids[k.ID] {
			d.addf(child(knodes[i], "id"), fmt.Sprintf("cookie_keys[%d].id", i), "duplicate key id %d", k.ID)
		}
		ids[k.ID] = true
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)

func (d *decoder) name(n *yaml.Node, path string) string {
	if n == nil {
		return ""
	}
	s, ok := d.scalar(n, path)
	if ok && !nameRE.MatchString(s) {
		d.addf(n, path, "%q is not a valid name: use 1-32 letters, digits or hyphens, not starting or ending with a hyphen", s)
	}
	return s
}

func (d *decoder) listener(n *yaml.Node, path string) Listener {
	l := Listener{Protocol: "HTTP"}
	m := d.mapping(n, path, "name", "address", "protocol", "certificates", "ssl_policy", "rules", "default_action", "attributes")
	if m == nil {
		return l
	}
	l.Name = d.name(d.required(n, m, path, "name"), path+".name")
	if a := d.required(n, m, path, "address"); a != nil {
		var ok bool
		if l.Address, ok = d.scalar(a, path+".address"); ok {
			if err := checkHostPort(l.Address, true); err != nil {
				d.addf(a, path+".address", "%v", err)
			}
		}
	}
	if p := m["protocol"]; p != nil {
		proto, ok := d.scalar(p, path+".protocol")
		switch {
		case !ok:
		case proto == "HTTP", proto == "HTTPS":
		default:
			d.addf(p, path+".protocol", "%q is not one of HTTP, HTTPS", proto)
		}
		if ok {
			l.Protocol = proto
		}
	}
	lc := listenerContext(l)
	if a := d.required(n, m, path, "default_action"); a != nil {
		l.DefaultAction = d.action(a, path+".default_action", lc)
	}
	l.Rules = d.rules(m["rules"], path+".rules", lc)
	applyAttributes(d, &l, listenerAttributes, m["attributes"], path+".attributes")
	if h2c := value(m["attributes"], "routing.http2.h2c.enabled"); h2c != nil && l.H2C && !l.HTTP2 {
		d.addf(h2c, path+`.attributes["routing.http2.h2c.enabled"]`, "cleartext HTTP/2 needs HTTP/2: routing.http2.enabled is false on this listener")
	}
	d.listenerTLS(n, m, path, &l)
	return l
}

func (d *decoder) targetGroup(n *yaml.Node, path string) TargetGroup {
	var g TargetGroup
	m := d.mapping(n, path, "name", "targets", "protocol_version", "health_check", "attributes")
	if m == nil {
		return g
	}
	g.Name = d.name(d.required(n, m, path, "name"), path+".name")
	seen := map[string]bool{}
	for i, tn := range d.seq(m["targets"], path+".targets", false) {
		tpath := fmt.Sprintf("%s.targets[%d]", path, i)
		t := d.target(tn, tpath)
		if t.ID != "" && seen[t.ID] {
			d.addf(tn, tpath+".id", "target %s is listed twice", t.ID)
		}
		seen[t.ID] = true
		g.Targets = append(g.Targets, t)
	}
	g.ProtocolVersion = "HTTP1"
	if v := m["protocol_version"]; v != nil {
		if pv, ok := d.scalar(v, path+".protocol_version"); ok {
			switch pv {
			case "HTTP1", "HTTP2":
				g.ProtocolVersion = pv
			case "GRPC":
				d.addf(v, path+".protocol_version", "GRPC target groups are not supported yet by latch (supported: HTTP1, HTTP2; gRPC works over HTTP2)")
			default:
				d.addf(v, path+".protocol_version", "%q is not one of HTTP1, HTTP2%s", pv, suggestion(pv, []string{"HTTP1", "HTTP2"}))
			}
		}
	}
	g.HealthCheck = d.healthCheck(m["health_check"], path+".health_check")
	applyAttributes(d, &g, groupAttributes, m["attributes"], path+".attributes")
	d.checkGroupAttributes(&g, n, m["attributes"], path)
	return g
}

// checkGroupAttributes checks what no single attribute can: the ones that
// go together. Each problem points at the attribute that must change.
func (d *decoder) checkGroupAttributes(g *TargetGroup, gn, attrs *yaml.Node, path string) {
	// at is the node and path of an attribute, for a message: its value,
	// else the attributes, else the group.
	at := func(key string) (*yaml.Node, string) {
		apath := fmt.Sprintf("%s.attributes[%q]", path, key)
		if v := value(attrs, key); v != nil {
			return v, apath
		}
		if attrs != nil && attrs.Kind == yaml.MappingNode {
			return attrs, apath
		}
		return gn, apath
	}
	set := func(key string) bool { return value(attrs, key) != nil }
	s := &g.Stickiness
	switch s.Type {
	case "app_cookie":
		s.Duration = g.appDuration
	case "header":
		s.Duration = g.headerDuration
	}
	g.appDuration, g.headerDuration = 0, 0
	if s.Enabled {
		switch s.Type {
		case "app_cookie":
			if s.AppCookie == "" {
				n, p := at("stickiness.app_cookie.cookie_name")
				d.addf(n, p, "missing: you must set an application cookie name to enable stickiness of type 'app_cookie' (as ALB)")
			}
		case "header":
			if s.Header == "" {
				n, p := at("stickiness.header.name")
				d.addf(n, p, "missing: stickiness of type 'header' needs the header's name, such as X-Session")
			}
		case "hash":
			if (s.HashHeader == "") == (s.HashCookie == "") {
				n, p := at("stickiness.hash.header")
				d.addf(n, p, "stickiness of type 'hash' needs exactly one of stickiness.hash.header and stickiness.hash.cookie")
			}
		}
	}
	only := func(key string, types ...string) {
		if !set(key) {
			return
		}
		for _, t := range types {
			if s.Type == t {
				return
			}
		}
		n, p := at(key)
		d.addf(n, p, "applies only to stickiness.type %s (this group's is %s)", strings.Join(types, " or "), s.Type)
	}
	only("stickiness.balance_factor", "lb_cookie", "app_cookie", "header")
	only("stickiness.rebalance_idle_seconds", "lb_cookie", "app_cookie", "header")
	only("stickiness.absolute_timeout_seconds", "lb_cookie", "app_cookie", "header")
	only("load_balancing.hash.balance_factor", "source_ip", "hash")
	only("stickiness.source_ip.trusted_proxies", "source_ip")
	if g.SlowStart > 0 && g.Algorithm != "round_robin" {
		n, p := at("slow_start.duration_seconds")
		d.addf(n, p, "slow start works only with round_robin (this group uses %s), as ALB's", g.Algorithm)
	}
	if g.AnomalyMitigation && g.Algorithm != "weighted_random" {
		n, p := at("load_balancing.algorithm.anomaly_mitigation")
		d.addf(n, p, "anomaly mitigation works only with weighted_random (this group uses %s), as ALB's", g.Algorithm)
	}
}

func (d *decoder) target(n *yaml.Node, path string) Target {
	t := Target{Weight: 1}
	m := d.mapping(n, path, "id", "weight")
	if m == nil {
		return t
	}
	if id := d.required(n, m, path, "id"); id != nil {
		var ok bool
		if t.ID, ok = d.scalar(id, path+".id"); ok {
			if err := checkHostPort(t.ID, false); err != nil {
				d.addf(id, path+".id", "%v", err)
			} else if len(t.ID) > 255 {
				d.addf(id, path+".id", "longer than 255 characters")
			}
		}
	}
	if w := m["weight"]; w != nil {
		t.Weight = d.int(w, path+".weight", 1, 1000)
	}
	return t
}

// DefaultHealthCheckUserAgent is ALB's health check User-Agent, the
// default of health_check.user_agent.
const DefaultHealthCheckUserAgent = "ELB-HealthChecker/2.0"

func (d *decoder) healthCheck(n *yaml.Node, path string) HealthCheck {
	hc := HealthCheck{
		Enabled: true, Protocol: "HTTP", Path: "/",
		Interval: 30 * time.Second, Timeout: 5 * time.Second,
		HealthyThreshold: 5, UnhealthyThreshold: 2,
		Matcher: Matcher{{200, 200}}, UserAgent: DefaultHealthCheckUserAgent,
	}
	if n == nil {
		return hc
	}
	m := d.mapping(n, path, "enabled", "protocol", "port", "path", "interval_seconds", "timeout_seconds",
		"healthy_threshold_count", "unhealthy_threshold_count", "matcher", "user_agent")
	if m == nil {
		return hc
	}
	if v := m["enabled"]; v != nil {
		if s, ok := d.scalar(v, path+".enabled"); ok {
			var err error
			if hc.Enabled, err = parseBool(s); err != nil {
				d.addf(v, path+".enabled", "%v", err)
			}
		}
	}
	if v := m["protocol"]; v != nil {
		p, ok := d.scalar(v, path+".protocol")
		switch {
		case !ok:
		case p == "HTTP":
		case p == "HTTPS":
			d.addf(v, path+".protocol", "HTTPS health checks are not supported yet by latch (supported: HTTP)")
		default:
			d.addf(v, path+".protocol", "%q is not one of HTTP, HTTPS", p)
		}
	}
	if v := m["port"]; v != nil {
		if s, ok := d.scalar(v, path+".port"); ok && s != "traffic-port" {
			p, err := parseInt(s, 1, 65535)
			if err != nil {
				d.addf(v, path+".port", "%v, or traffic-port", err)
			}
			hc.Port = p
		}
	}
	if v := m["path"]; v != nil {
		if p, ok := d.scalar(v, path+".path"); ok {
			hc.Path = p
			if !strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, " \t\r\n") {
				d.addf(v, path+".path", "%q must start with / and be at most 1024 characters with no spaces", p)
			}
		}
	}
	nprobs := len(d.probs)
	hc.Interval = d.seconds(m["interval_seconds"], path+".interval_seconds", hc.Interval, 0.05, 300)
	hc.Timeout = d.seconds(m["timeout_seconds"], path+".timeout_seconds", hc.Timeout, 0.05, 120)
	if len(d.probs) > nprobs {
		// One of them is already reported; comparing with a default would mislead.
	} else if hc.Timeout >= hc.Interval && m["timeout_seconds"] != nil {
		d.addf(m["timeout_seconds"], path+".timeout_seconds", "the timeout (%v) must be shorter than the interval (%v)", hc.Timeout, hc.Interval)
	} else if hc.Timeout >= hc.Interval {
		d.addf(m["interval_seconds"], path+".interval_seconds", "the interval (%v) must be longer than the timeout (%v)", hc.Interval, hc.Timeout)
	}
	if v := m["healthy_threshold_count"]; v != nil {
		hc.HealthyThreshold = d.int(v, path+".healthy_threshold_count", 2, 10)
	}
	if v := m["unhealthy_threshold_count"]; v != nil {
		hc.UnhealthyThreshold = d.int(v, path+".unhealthy_threshold_count", 2, 10)
	}
	if v := m["matcher"]; v != nil {
		if s, ok := d.scalar(v, path+".matcher"); ok {
			mt, err := ParseMatcher(s)
			if err != nil {
				d.addf(v, path+".matcher", "%v", err)
			} else {
				hc.Matcher = mt
			}
		}
	}
	if v := m["user_agent"]; v != nil {
		hc.UserAgent = d.str(v, path+".user_agent")
		if strings.ContainsAny(hc.UserAgent, "\r\n") {
			d.addf(v, path+".user_agent", "must be one line")
		}
	}
	return hc
}

func (d *decoder) cookieKey(n *yaml.Node, path string) CookieKey {
	var k CookieKey
	m := d.mapping(n, path, "id", "secret", "secret_file")
	if m == nil {
		return k
	}
	if id := d.required(n, m, path, "id"); id != nil {
		if s, ok := d.scalar(id, path+".id"); ok {
			// ParseUint, not d.int: 1<<32-1 does not fit an int on 32-bit platforms.
			v, err := strconv.ParseUint(s, 10, 32)
			switch {
			case err != nil && errors.Is(err, strconv.ErrRange):
				d.addf(id, path+".id", "%s is outside 1-%d", s, uint32(math.MaxUint32))
			case err != nil:
				d.addf(id, path+".id", "%q is not a whole number", s)
			case v == 0:
				d.addf(id, path+".id", "0 is outside 1-%d", uint32(math.MaxUint32))
			}
			k.ID = uint32(v)
		}
	}
	var text string
	var tn *yaml.Node // the node holding the secret, for messages
	tpath := path
	switch s, f := m["secret"], m["secret_file"]; {
	case s != nil && f != nil:
		d.addf(f, path, "set secret or secret_file, not both")
		return k
	case s != nil:
		var ok bool
		tn, tpath = s, path+".secret"
		if text, ok = d.scalar(s, tpath); !ok {
			return k
		}
	case f != nil:
		tn, tpath = f, path+".secret_file"
		file, ok := d.scalar(f, tpath)
		if !ok {
			return k
		}
		if file == "" {
			d.addf(f, tpath, "must not be empty")
			return k
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(d.dir, file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			d.addf(f, path+".secret_file", "%v", err)
			return k
		}
		text = strings.TrimSpace(string(b))
	default:
		d.addf(n, path, "missing secret or secret_file")
		return k
	}
	secret, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(secret) != 32 {
		d.addf(tn, tpath, "the secret must be 32 bytes in standard base64 (44 characters; `openssl rand -base64 32` makes one)")
		return k
	}
	k.Secret = secret
	return k
}

// applyAttributes applies every attribute's default, then the user's values.
func applyAttributes[T any](d *decoder, dst *T, attrs []attribute[T], n *yaml.Node, path string) {
	for _, a := range attrs {
		if err := a.set(dst, a.def); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", a.key, err))
		}
	}
	if n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping of attribute keys to values, got %s", kindName(n))
		return
	}
	index := make(map[string]int, len(attrs))
	for i, a := range attrs {
		index[a.key] = i
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		apath := fmt.Sprintf("%s[%q]", path, key)
		if seen[key] {
			d.addf(kn, apath, "attribute set twice")
			continue
		}
		seen[key] = true
		ai, ok := index[key]
		switch {
		case !ok && notYet[key]:
			d.addf(kn, apath, "this ALB attribute is not supported yet by latch")
			continue
		case !ok:
			d.addf(kn, apath, "unknown attribute%s", suggestion(key, attributeKeys(attrs)))
			continue
		}
		if vn.Kind != yaml.ScalarNode || vn.Tag == "!!null" {
			d.addf(vn, apath, "expected a value (a string or a scalar), got %s", kindName(vn))
			continue
		}
		if err := attrs[ai].set(dst, vn.Value); err != nil {
			d.addf(vn, apath, "%v", err)
		}
	}
}

// mapping checks that n is a mapping whose keys are all in known, and
// returns its values by key. Unknown and duplicate keys are reported.
func (d *decoder) mapping(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping, got %s", kindName(n))
		return nil
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		kpath := join(path, kn.Value)
		if !contains(known, kn.Value) {
			d.addf(kn, kpath, "unknown key%s", suggestion(kn.Value, known))
			continue
		}
		if _, dup := m[kn.Value]; dup {
			d.addf(kn, kpath, "key set twice")
			continue
		}
		m[kn.Value] = vn
	}
	return m
}

func (d *decoder) required(parent *yaml.Node, m map[string]*yaml.Node, path, key string) *yaml.Node {
	n := m[key]
	if n == nil {
		d.addf(parent, join(path, key), "missing")
	}
	return n
}

func (d *decoder) seqNodes(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func (d *decoder) seq(n *yaml.Node, path string, required bool) []*yaml.Node {
	if n == nil || n.Tag == "!!null" {
		if required {
			d.addf(n, path, "missing; at least one is needed")
		}
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.addf(n, path, "expected a list, got %s", kindName(n))
		return nil
	}
	if required && len(n.Content) == 0 {
		d.addf(n, path, "empty; at least one is needed")
	}
	return n.Content
}

func (d *decoder) str(n *yaml.Node, path string) string {
	s, _ := d.scalar(n, path)
	return s
}

// scalar returns n's value, or reports that n is not a scalar and returns
// false, so that callers do not report the same mistake again. A nil n (an
// absent optional key) is "", false and reports nothing.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.addf(n, path, "expected a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// child returns the value of key in mapping n, or n itself when there is no
// such key, for pointing a message at the right line.
func child(n *yaml.Node, key string) *yaml.Node {
	if v := value(n, key); v != nil {
		return v
	}
	return n
}

func (d *decoder) int(n *yaml.Node, path string, lo, hi int) int {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0
	}
	v, err := parseInt(s, lo, hi)
	if err != nil {
		d.addf(n, path, "%v", err)
	}
	return v
}

func (d *decoder) seconds(n *yaml.Node, path string, def time.Duration, lo, hi float64) time.Duration {
	if n == nil {
		return def
	}
	s, ok := d.scalar(n, path)
	if !ok {
		return def
	}
	v, err := parseSeconds(s, lo, hi, true)
	if err != nil {
		d.addf(n, path, "%v", err)
		return def
	}
	return v
}

// checkHostPort checks a host:port address. Port 0 (any free port) is
// allowed only where latch listens.
func checkHostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not a host:port address", s)
	}
	if host == "" && !listen {
		return fmt.Errorf("%q has no host", s)
	}
	p, err := strconv.Atoi(port)
	lo := 1
	if listen {
		lo = 0
	}
	if err != nil || p < lo || p > 65535 {
		return fmt.Errorf("%q has an invalid port %q", s, port)
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch {
	case n == nil || n.Tag == "!!null":
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// suggestion returns `; did you mean "x"?` for closest(s, candidates), or "".
func suggestion(s string, candidates []string) string {
	if best := closest(s, candidates); best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}

// closest returns the candidate nearest to s (case aside) when it is within
// a few edits of s, else "".
func closest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		if dist := editDistance(strings.ToLower(s), strings.ToLower(c)); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if bestDist > max(2, len(s)/4) {
		return ""
	}
	return best
}

// oneOf returns nil when v is in list, else an error naming the list (and
// the nearest entry, if one is close).
func oneOf(v string, list []string) error {
	if contains(list, v) {
		return nil
	}
	return fmt.Errorf("%q is not one of %s%s", v, strings.Join(list, ", "), suggestion(v, list))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
