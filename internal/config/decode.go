package config

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latch-lb/latch/internal/tlsconf"
)

// decoder walks the YAML node tree by hand, rather than unmarshalling into
// tagged structs, so that every problem carries its path and line, unknown
// keys get a "did you mean", and one pass reports every mistake.
//
// It only decodes: it refuses what the file's structure gets wrong (unknown
// keys, keys set twice or missing, wrong kinds) and values that cannot be
// held by their field at all (not a number, an unknown name), and leaves
// every other check to Validate, so that a config built in Go is checked
// alike. What it records is what makes Validate's problems as good as its
// own: the line each path's messages point at, and which paths its own
// problems make moot (merge).
type decoder struct {
	file  string
	dir   string
	probs Problems
	// bad holds the path of each problem found here, and the paths that a
	// problem leaves holding a placeholder besides its own (an unknown
	// condition leaves its whole list item one).
	bad []string
	// lines maps each path visited to the line of the node that stands for
	// it: a value's, or for a list that ALB limits, its key's.
	lines map[string]int
	// tick orders problems on one line as the file reads, left to right:
	// each problem and each path read takes the next number, and Validate's
	// problems take their path's (ord is probs').
	tick  int
	order map[string]int
	ord   []int
}

func newDecoder(file string) *decoder {
	d := &decoder{file: file, dir: ".", lines: map[string]int{}, order: map[string]int{}}
	if file != "" {
		d.dir = filepath.Dir(file)
	}
	return d
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	d.addBad(n, path, path, format, args...)
}

// addBad adds a problem at path that leaves only bad unusable ("" for
// nothing): a missing secret is reported on its cookie key, whose id is
// another matter.
func (d *decoder) addBad(n *yaml.Node, path, bad, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.add(Problem{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}, d.next())
	if bad != "" {
		d.bad = append(d.bad, bad)
	}
}

func (d *decoder) add(p Problem, seq int) {
	d.probs = append(d.probs, p)
	d.ord = append(d.ord, seq)
}

func (d *decoder) next() int {
	d.tick++
	return d.tick
}

// at records n's line as the line of path.
func (d *decoder) at(path string, n *yaml.Node) {
	if n != nil {
		d.lines[path] = n.Line
		d.order[path] = d.next()
	}
}

// sort sorts the problems by line, and on one line as the file reads.
func (d *decoder) sort() {
	idx := make([]int, len(d.probs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool {
		a, b := idx[i], idx[j]
		if d.probs[a].Line != d.probs[b].Line {
			return d.probs[a].Line < d.probs[b].Line
		}
		return d.ord[a] < d.ord[b]
	})
	probs, ord := make(Problems, len(idx)), make([]int, len(idx))
	for i, k := range idx {
		probs[i], ord[i] = d.probs[k], d.ord[k]
	}
	d.probs, d.ord = probs, ord
}

// line returns the line recorded for path, else for its nearest ancestor
// recorded, else 0.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parent(path)
	}
}

// merge adds Validate's problems to the decoder's, each on the path the
// file sets where it may be on one of several, at the line of its path,
// less those that would only repeat or follow from a decode problem:
// one on the same path, below it or above it (but for one with a list's
// length, which a mistake in an item does not change), or one that depends
// on a path with a decode problem (the other field of a comparison, which
// holds its default after a mistake, or an action's type).
func (d *decoder) merge(vps []problem) {
	for _, p := range vps {
		for _, alt := range p.alts {
			if _, set := d.lines[alt.Path]; set {
				p.Problem = alt
				break
			}
		}
		if d.moot(p) {
			continue
		}
		p.File, p.Line = d.file, d.line(p.Path)
		d.add(p.Problem, d.orderOf(p.Path))
	}
}

// orderOf is the order of a path read. A path the file does not set (a
// problem with what is missing, on its parent's line) comes after what
// the decoder read, as the checks the old one-pass decoder made last.
func (d *decoder) orderOf(path string) int {
	if o, ok := d.order[path]; ok {
		return o
	}
	return math.MaxInt
}

func (d *decoder) moot(p problem) bool {
	for _, b := range d.bad {
		if b == p.Path || isAncestor(b, p.Path) || !p.ofList && isAncestor(p.Path, b) {
			return true
		}
		for _, dep := range p.deps {
			if b == dep || isAncestor(b, dep) {
				return true
			}
		}
	}
	return false
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
	m := d.mapping(root, "", "listeners", "target_groups", "state_dir", "cookie_keys", "access_log", "admin", "cluster")
	if m == nil {
		return nil
	}
	cfg := &Config{StateDir: d.resolve(defaultStateDir)}
	if n := m["state_dir"]; n != nil {
		if s, ok := d.scalar(n, "state_dir"); ok {
			cfg.StateDir = d.resolve(s)
		}
	}
	if items, ok := d.seq(m["target_groups"], "target_groups"); ok {
		cfg.TargetGroups = make([]TargetGroup, 0, len(items))
		for i, n := range items {
			cfg.TargetGroups = append(cfg.TargetGroups, d.targetGroup(n, item("target_groups", i)))
		}
	}
	if items, ok := d.seq(m["listeners"], "listeners"); ok {
		cfg.Listeners = make([]Listener, 0, len(items))
		for i, n := range items {
			cfg.Listeners = append(cfg.Listeners, d.listener(n, item("listeners", i)))
		}
	}
	items, _ := d.seq(m["cookie_keys"], "cookie_keys")
	for i, n := range items {
		cfg.CookieKeys = append(cfg.CookieKeys, d.cookieKey(n, item("cookie_keys", i)))
	}
	cfg.Admin = d.admin(m["admin"], "admin")
	if n := m["access_log"]; n != nil {
		cfg.AccessLog = d.accessLog(n, "access_log")
	}
	if n := m["cluster"]; n != nil {
		cfg.Cluster = d.cluster(n, "cluster")
	}
	return cfg
}

// accessLog decodes access_log. Its path is resolved against the config
// file's directory, but for "-" (standard output).
func (d *decoder) accessLog(n *yaml.Node, path string) *AccessLog {
	a := &AccessLog{}
	m := d.mapping(n, path, "path", "format")
	if m == nil {
		return a
	}
	if v := d.required(n, m, path, "path"); v != nil {
		if s, ok := d.scalar(v, path+".path"); ok {
			a.Path = s
			if s != Stdout {
				a.Path = d.resolve(s)
			}
		}
	}
	if v := m["format"]; v != nil {
		d.text(v, path+".format", &a.Format)
	}
	return a
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
	d.add(Problem{File: d.file, Line: line, Msg: "YAML syntax: " + msg}, d.next())
}

func (d *decoder) listener(n *yaml.Node, path string) Listener {
	l := DefaultListener()
	m := d.mapping(n, path, "name", "address", "protocol", "certificates", "ssl_policy", "rules", "default_action", "attributes")
	if m == nil {
		return l
	}
	if v := d.required(n, m, path, "name"); v != nil {
		l.Name, _ = d.scalar(v, path+".name")
	}
	if v := d.required(n, m, path, "address"); v != nil {
		l.Address, _ = d.scalar(v, path+".address")
	}
	protoOK := true
	if v := m["protocol"]; v != nil {
		protoOK = d.text(v, path+".protocol", &l.Protocol)
	}
	if v := d.required(n, m, path, "default_action"); v != nil {
		l.DefaultAction = d.action(v, path+".default_action")
	}
	l.Rules = d.rules(m["rules"], path+".rules")
	decodeAttributes(d, listenerAttributes, &l, m["attributes"], path+".attributes")
	if protoOK {
		d.listenerTLS(m, path, &l)
	}
	return l
}

// listenerTLS decodes an HTTPS listener's certificates and ssl_policy, and
// refuses them on an HTTP listener, whole, as an action's settings of
// another type: they are not decoded there. An HTTPS listener that names
// no policy gets the default.
func (d *decoder) listenerTLS(m map[string]*yaml.Node, path string, l *Listener) {
	if l.Protocol == HTTP {
		for _, key := range []string{"certificates", "ssl_policy"} {
			if v := m[key]; v != nil {
				d.addf(v, path+"."+key, "set only on HTTPS listeners (this listener is HTTP)")
			}
		}
		return
	}
	if pn := m["ssl_policy"]; pn != nil {
		l.SSLPolicy, _ = d.scalar(pn, path+".ssl_policy")
	} else if l.Protocol == HTTPS {
		l.SSLPolicy = tlsconf.DefaultPolicy
	}
	cpath := path + ".certificates"
	items, ok := d.seq(m["certificates"], cpath)
	if !ok {
		return
	}
	l.Certificates = make([]Certificate, 0, len(items))
	for i, n := range items {
		ipath := item(cpath, i)
		var c Certificate
		if im := d.mapping(n, ipath, "cert_file", "key_file"); im != nil {
			if cf := d.required(n, im, ipath, "cert_file"); cf != nil {
				c.CertFile = d.path(cf, ipath+".cert_file")
			}
			if kf := d.required(n, im, ipath, "key_file"); kf != nil {
				c.KeyFile = d.path(kf, ipath+".key_file")
			}
		}
		// Every item gets a Certificate, valid or not, so that
		// Certificates[i] is the i-th item, for Validate's paths.
		l.Certificates = append(l.Certificates, c)
	}
}

func (d *decoder) targetGroup(n *yaml.Node, path string) TargetGroup {
	g := DefaultTargetGroup()
	m := d.mapping(n, path, "name", "targets", "protocol_version", "health_check", "attributes", "discovery")
	if m == nil {
		return g
	}
	if v := d.required(n, m, path, "name"); v != nil {
		g.Name, _ = d.scalar(v, path+".name")
	}
	items, _ := d.seq(m["targets"], path+".targets")
	for i, tn := range items {
		g.Targets = append(g.Targets, d.target(tn, item(path+".targets", i)))
	}
	if v := m["protocol_version"]; v != nil {
		d.text(v, path+".protocol_version", &g.ProtocolVersion)
	}
	g.HealthCheck = d.healthCheck(m["health_check"], path+".health_check")
	decodeAttributes(d, groupAttributes, &g, m["attributes"], path+".attributes")
	g.Discovery = d.discovery(m["discovery"], path+".discovery")
	return g
}

func (d *decoder) target(n *yaml.Node, path string) Target {
	t := Target{Weight: 1}
	m := d.mapping(n, path, "id", "weight")
	if m == nil {
		return t
	}
	if id := d.required(n, m, path, "id"); id != nil {
		t.ID, _ = d.scalar(id, path+".id")
	}
	if w := m["weight"]; w != nil {
		d.int(w, path+".weight", &t.Weight)
	}
	return t
}

// The ranges of the health check's and group stickiness's durations.
var (
	healthInterval = seconds{lo: 0.05, hi: 300}
	healthTimeout  = seconds{lo: 0.05, hi: 120}
)

func (d *decoder) healthCheck(n *yaml.Node, path string) HealthCheck {
	hc := DefaultHealthCheck()
	if n == nil {
		return hc
	}
	m := d.mapping(n, path, "enabled", "protocol", "port", "path", "interval_seconds", "timeout_seconds",
		"healthy_threshold_count", "unhealthy_threshold_count", "matcher", "user_agent")
	if m == nil {
		return hc
	}
	if v := m["enabled"]; v != nil {
		d.bool(v, path+".enabled", &hc.Enabled)
	}
	if v := m["protocol"]; v != nil {
		d.text(v, path+".protocol", &hc.Protocol)
	}
	if v := m["port"]; v != nil {
		if s, ok := d.scalar(v, path+".port"); ok && s != "traffic-port" {
			p, err := parseInt(s)
			switch {
			case err != nil:
				d.addf(v, path+".port", "%v, or traffic-port", err)
			case p == 0:
				// 0 is how the field spells traffic-port; a file's 0 is a mistake.
				d.addf(v, path+".port", "%s", checkRange(p, 1, 65535, ", or traffic-port"))
			default:
				hc.Port = p
			}
		}
	}
	if v := m["path"]; v != nil {
		if s, ok := d.scalar(v, path+".path"); ok {
			hc.Path = s
		}
	}
	if v := m["interval_seconds"]; v != nil {
		d.seconds(v, path+".interval_seconds", healthInterval, &hc.Interval)
	}
	if v := m["timeout_seconds"]; v != nil {
		d.seconds(v, path+".timeout_seconds", healthTimeout, &hc.Timeout)
	}
	if v := m["healthy_threshold_count"]; v != nil {
		d.int(v, path+".healthy_threshold_count", &hc.HealthyThreshold)
	}
	if v := m["unhealthy_threshold_count"]; v != nil {
		d.int(v, path+".unhealthy_threshold_count", &hc.UnhealthyThreshold)
	}
	if v := m["matcher"]; v != nil {
		if s, ok := d.scalar(v, path+".matcher"); ok {
			if mt, err := ParseMatcher(s); err != nil {
				d.addf(v, path+".matcher", "%v", err)
			} else {
				hc.Matcher = mt
			}
		}
	}
	if v := m["user_agent"]; v != nil {
		if s, ok := d.scalar(v, path+".user_agent"); ok {
			hc.UserAgent = s
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
			// ParseUint, not parseInt: 1<<32-1 does not fit an int on 32-bit platforms.
			v, err := strconv.ParseUint(s, 10, 32)
			switch {
			case errors.Is(err, strconv.ErrRange):
				d.addf(id, path+".id", "%s is outside 1-%d", s, uint32(math.MaxUint32))
			case err != nil:
				d.addf(id, path+".id", "%q is not a whole number", s)
			default:
				k.ID = uint32(v)
			}
		}
	}
	// Whichever key holds it, a secret that could not be read leaves Secret
	// empty, which Validate would report again at .secret.
	spath := path + ".secret"
	bad := func(n *yaml.Node, at, format string, args ...any) {
		d.addf(n, at, format, args...)
		d.bad = append(d.bad, spath)
	}
	var text string
	var tn *yaml.Node // the node holding the secret, for messages
	tpath := path
	switch s, f := m["secret"], m["secret_file"]; {
	case s != nil && f != nil:
		d.addBad(f, path, spath, "set secret or secret_file, not both")
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
			d.bad = append(d.bad, spath)
			return k
		}
		if file == "" {
			bad(f, tpath, "must not be empty")
			return k
		}
		b, err := os.ReadFile(d.resolve(file))
		if err != nil {
			bad(f, tpath, "%v", err)
			return k
		}
		text = strings.TrimSpace(string(b))
	default:
		d.addBad(n, path, spath, "missing secret or secret_file")
		return k
	}
	// The length is checked here too: in a file, a key is its base64.
	secret, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(secret) != 32 {
		bad(tn, tpath, "the secret must be 32 bytes in standard base64 (44 characters; `openssl rand -base64 32` makes one)")
		return k
	}
	k.Secret = secret
	return k
}

// decodeAttributes applies the values of an attributes map with each
// attribute's setter, over the defaults dst already holds.
func decodeAttributes[T any](d *decoder, attrs []attribute[T], dst *T, n *yaml.Node, path string) {
	if n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "expected a mapping of attribute keys to values, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		apath := attrPath(path, key)
		if seen[key] {
			d.addBad(kn, apath, "", "attribute set twice") // the first stands
			continue
		}
		seen[key] = true
		a, err := lookupAttribute(attrs, key)
		if err != nil {
			d.addf(kn, apath, "%v", err)
			continue
		}
		d.at(apath, vn)
		if vn.Kind != yaml.ScalarNode || vn.Tag == "!!null" {
			d.addf(vn, apath, "expected a value (a string or a scalar), got %s", kindName(vn))
			continue
		}
		if err := a.set(dst, vn.Value); err != nil {
			d.addf(vn, apath, "%v", err)
		}
	}
}

// mapping checks that n is a mapping whose keys are all in known, and
// returns its values by key, recording each value's line. Unknown and
// duplicate keys are reported.
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
			d.addBad(kn, kpath, "", "key set twice") // the first stands
			continue
		}
		m[kn.Value] = vn
		d.at(kpath, vn)
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

// seq returns the items of the list n, recording each item's line. ok is
// false when there is no list: n is absent or null, or it is something
// else, which is reported.
func (d *decoder) seq(n *yaml.Node, path string) (items []*yaml.Node, ok bool) {
	if n == nil || n.Tag == "!!null" { // !!null [a] too
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		d.addf(n, path, "expected a list, got %s", kindName(n))
		return nil, false
	}
	for i, in := range n.Content {
		d.at(item(path, i), in)
	}
	return n.Content, true
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
	d.order[path] = d.next() // Validate's problems with it come now
	return n.Value, true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// text decodes a typed value with its UnmarshalText, whose error is the
// message. It reports whether the value was decoded.
func (d *decoder) text(n *yaml.Node, path string, dst encoding.TextUnmarshaler) bool {
	s, ok := d.scalar(n, path)
	if !ok {
		return false
	}
	if err := dst.UnmarshalText([]byte(s)); err != nil {
		d.addf(n, path, "%v", err)
		return false
	}
	return true
}

// int decodes a whole number into dst, which keeps its value after a
// mistake.
func (d *decoder) int(n *yaml.Node, path string, dst *int) {
	if s, ok := d.scalar(n, path); ok {
		v, err := parseInt(s)
		if err != nil {
			d.addf(n, path, "%v", err)
			return
		}
		*dst = v
	}
}

func (d *decoder) bool(n *yaml.Node, path string, dst *bool) {
	if s, ok := d.scalar(n, path); ok {
		v, err := parseBool(s)
		if err != nil {
			d.addf(n, path, "%v", err)
			return
		}
		*dst = v
	}
}

// seconds decodes a number of seconds into dst, which keeps its value (the
// default) after a mistake, as a comparison with another field then
// expects. It reports whether the value was decoded.
func (d *decoder) seconds(n *yaml.Node, path string, s seconds, dst *time.Duration) bool {
	v, ok := d.scalar(n, path)
	if !ok {
		return false
	}
	t, err := s.parse(v)
	if err != nil {
		d.addf(n, path, "%v", err)
		return false
	}
	*dst = t
	return true
}

// path reads a file name, resolved against the config file's directory;
// "" when it is missing, reported or empty (which Validate reports).
func (d *decoder) path(n *yaml.Node, path string) string {
	s, _ := d.scalar(n, path)
	return d.resolve(s)
}

// resolve resolves a relative file name against the config file's
// directory. "" stays "", for Validate to report.
func (d *decoder) resolve(name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(d.dir, name)
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

// Paths. A path names a value as a user writes it: keys joined by dots,
// list items and attributes in brackets
// (listeners[0].rules[2].conditions[0].host_header[1],
// target_groups[1].attributes["stickiness.type"]).

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func item(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// parent returns the path that holds path: a.b[2] for a.b[2].c, a.b for
// a.b[2] or a.b["k.x"], "" for a.
func parent(path string) string {
	cut, quoted := 0, false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '.' || c == '['):
			cut = i
		}
	}
	return path[:cut]
}

// isAncestor reports whether path a holds path b. The empty path, a
// problem with the document as a whole, holds nothing.
func isAncestor(a, b string) bool {
	return a != "" && len(b) > len(a) && b[:len(a)] == a && (b[len(a)] == '.' || b[len(a)] == '[')
}

func contains(list []string, s string) bool { return index(list, s) >= 0 }

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
