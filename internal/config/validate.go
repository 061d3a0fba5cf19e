package config

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Validate checks the config as it stands, however it was built: every
// value in its range and spelled as ALB or latch takes it, names unique,
// references resolved, attributes that go together set together, HTTPS
// listeners' certificate files readable and matching. It reports every
// problem at once: the error is a Problems, each with its Path in the
// file's terms (listeners[0].rules[2].conditions[0].host_header[1]) and no
// File or Line, or nil when the config is valid. Validate reads the
// certificate files; it changes nothing and never panics.
func (c *Config) Validate() error { return problems(c.validate(true)) }

// ValidateExceptFiles is Validate without reading the certificate files:
// whoever loads them (the server, which reads them again whenever it
// applies a config, so that renewed files serve) reports what is wrong
// with them then, and no file is read twice.
func (c *Config) ValidateExceptFiles() error { return problems(c.validate(false)) }

func problems(ps []problem) error {
	if len(ps) == 0 {
		return nil
	}
	out := make(Problems, len(ps))
	for i, p := range ps {
		out[i] = p.Problem
	}
	return out
}

// problem is one of Validate's problems, with the paths it depends on
// besides its own: when the file got one of those wrong, the decoder left a
// default or a placeholder there, and this problem would only follow from
// that mistake (see decoder.merge).
type problem struct {
	Problem
	deps []string
	// alts are the same problem told about other paths: a config from a
	// file gets the first whose path the file sets (the field the user
	// wrote), Validate's caller gets Problem.
	alts []Problem
	// ofList is set on a problem with a list's length, or with an item's
	// being in it at all, which a mistake inside an item does not change.
	ofList bool
}

type validator struct {
	cfg   *Config
	files bool     // read the certificate files
	names []string // the target groups' names, in order, for "did you mean"
	deps  []string // what every problem added now depends on
	probs []problem
}

func (c *Config) validate(files bool) []problem {
	v := &validator{cfg: c, files: files}
	for _, g := range c.TargetGroups {
		if g.Name != "" && !slices.Contains(v.names, g.Name) {
			v.names = append(v.names, g.Name)
		}
	}
	v.targetGroups()
	v.listeners()
	if c.StateDir == "" {
		v.add("state_dir", "must not be empty")
	}
	v.cookieKeys()
	v.admin()
	v.accessLog()
	v.cluster()
	return v.probs
}

func (v *validator) add(path, msg string) {
	v.probs = append(v.probs, problem{Problem: Problem{Path: path, Msg: msg}, deps: slices.Clone(v.deps)})
}

func (v *validator) addf(path, format string, args ...any) { v.add(path, fmt.Sprintf(format, args...)) }

// addList adds a problem with a list's length (see problem.ofList).
func (v *validator) addList(path, format string, args ...any) {
	v.addf(path, format, args...)
	v.probs[len(v.probs)-1].ofList = true
}

// depend makes every problem added until undo is called depend on paths.
func (v *validator) depend(paths ...string) (undo func()) {
	n := len(v.deps)
	v.deps = append(v.deps, paths...)
	return func() { v.deps = v.deps[:n] }
}

// need reports a list that must have an item: nil is missing, empty is
// empty.
func (v *validator) need(n int, isNil bool, path string) {
	switch {
	case isNil:
		v.addList(path, "missing; at least one is needed")
	case n == 0:
		v.addList(path, "empty; at least one is needed")
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$`)

func checkName(s string) string {
	if !nameRE.MatchString(s) {
		return fmt.Sprintf("%q is not a valid name: use 1-32 letters, digits or hyphens, not starting or ending with a hyphen", s)
	}
	return ""
}

// checkHostPort checks a host:port address. Port 0 (any free port) is
// allowed only where latch listens.
func checkHostPort(s string, listen bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not a host:port address", s)
	}
	if host == "" && !listen {
		return fmt.Sprintf("%q has no host", s)
	}
	p, err := strconv.Atoi(port)
	lo := 1
	if listen {
		lo = 0
	}
	if err != nil || p < lo || p > 65535 {
		return fmt.Sprintf("%q has an invalid port %q", s, port)
	}
	return ""
}

func (v *validator) listeners() {
	ls := v.cfg.Listeners
	v.need(len(ls), ls == nil, "listeners")
	names, addrs := map[string]bool{}, map[string]bool{}
	for i := range ls {
		l := &ls[i]
		path := item("listeners", i)
		if msg := checkName(l.Name); msg != "" {
			v.add(path+".name", msg)
		}
		if l.Name != "" && names[l.Name] {
			v.addf(path+".name", "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		if msg := checkHostPort(l.Address, true); msg != "" {
			v.add(path+".address", msg)
		}
		// Port 0 picks a free port, so it may be listed any number of times.
		if l.Address != "" && !strings.HasSuffix(l.Address, ":0") && addrs[l.Address] {
			v.addf(path+".address", "address %s is already used by another listener", l.Address)
		}
		addrs[l.Address] = true
		if !l.Protocol.valid() {
			v.add(path+".protocol", enumProblem(l.Protocol, protocolNames))
		}
		lc := listenerContext(l, path)
		v.action(&l.DefaultAction, path+".default_action", lc)
		v.rules(l.Rules, path+".rules", lc)
		apath := path + ".attributes"
		checkAttributes(v, listenerAttributes, l, apath)
		if l.H2C && !l.HTTP2 {
			undo := v.depend(attrPath(apath, "routing.http2.enabled"))
			v.add(attrPath(apath, "routing.http2.h2c.enabled"), "cleartext HTTP/2 needs HTTP/2: routing.http2.enabled is false on this listener")
			undo()
		}
		v.listenerTLS(l, path)
	}
}

func (v *validator) targetGroups() {
	gs := v.cfg.TargetGroups
	v.need(len(gs), gs == nil, "target_groups")
	names := map[string]bool{}
	for i := range gs {
		g := &gs[i]
		path := item("target_groups", i)
		if msg := checkName(g.Name); msg != "" {
			v.add(path+".name", msg)
		}
		if g.Name != "" && names[g.Name] {
			v.addf(path+".name", "duplicate target group name %q", g.Name)
		}
		names[g.Name] = true
		ids := map[string]bool{}
		for j, t := range g.Targets {
			tpath := item(path+".targets", j)
			if msg := checkHostPort(t.ID, false); msg != "" {
				v.add(tpath+".id", msg)
			} else if len(t.ID) > 255 {
				v.add(tpath+".id", "longer than 255 characters")
			}
			if t.ID != "" && ids[t.ID] {
				v.addf(tpath+".id", "target %s is listed twice", t.ID)
			}
			ids[t.ID] = true
			if msg := checkRange(t.Weight, 1, 1000, ""); msg != "" {
				v.add(tpath+".weight", msg)
			}
			if t.Drain != nil {
				paths, msgs := t.Drain.WithDefaults().problems()
				for k := range paths {
					v.addf(tpath+".drain."+paths[k], "target %s of group %q: %s", t.ID, g.Name, msgs[k])
				}
			}
		}
		if !g.ProtocolVersion.valid() {
			v.add(path+".protocol_version", enumProblem(g.ProtocolVersion, protocolVersionNames))
		}
		v.healthCheck(&g.HealthCheck, path+".health_check")
		v.discovery(g.Discovery, path)
		checkAttributes(v, groupAttributes, g, path+".attributes")
		v.groupAttributes(g, path+".attributes")
	}
}

// groupAttributes checks what no single attribute can: the ones that go
// together. Each problem is on the attribute that must change, and depends
// on the ones it is compared with.
func (v *validator) groupAttributes(g *TargetGroup, path string) {
	attr := func(key string) string { return attrPath(path, key) }
	s := &g.Stickiness
	typ, enabled, alg := attr("stickiness.type"), attr("stickiness.enabled"), attr("load_balancing.algorithm.type")
	if s.Enabled {
		undo := v.depend(typ, enabled)
		switch s.Type {
		case AppCookie:
			if s.AppCookie == "" {
				v.add(attr("stickiness.app_cookie.cookie_name"), "missing: you must set an application cookie name to enable stickiness of type 'app_cookie' (as ALB)")
			}
		case Header:
			if s.Header == "" {
				v.add(attr("stickiness.header.name"), "missing: stickiness of type 'header' needs the header's name, such as X-Session")
			}
		case Hash:
			if (s.HashHeader == "") == (s.HashCookie == "") {
				v.add(attr("stickiness.hash.header"), "stickiness of type 'hash' needs exactly one of stickiness.hash.header and stickiness.hash.cookie")
			}
		}
		undo()
	}
	// An attribute of another kind of stickiness would be ignored; one at
	// its default (0, none) is as good as not set.
	only := func(key string, set bool, types ...StickinessType) {
		if !set || slices.Contains(types, s.Type) {
			return
		}
		names := make([]string, len(types))
		for i, t := range types {
			names[i] = t.String()
		}
		undo := v.depend(typ)
		v.addf(attr(key), "applies only to stickiness.type %s (this group's is %s)", strings.Join(names, " or "), s.Type)
		undo()
	}
	only("stickiness.balance_factor", s.BalanceFactor != 0, LBCookie, AppCookie, Header)
	only("stickiness.rebalance_idle_seconds", s.RebalanceIdle != 0, LBCookie, AppCookie, Header)
	only("stickiness.absolute_timeout_seconds", s.AbsoluteTimeout != 0, LBCookie, AppCookie, Header)
	only("load_balancing.hash.balance_factor", g.HashBalanceFactor != 0, StickySourceIP, Hash)
	only("stickiness.source_ip.trusted_proxies", len(s.TrustedProxies) > 0, StickySourceIP)
	undo := v.depend(alg)
	if g.SlowStart > 0 && g.Algorithm != RoundRobin {
		v.addf(attr("slow_start.duration_seconds"), "slow start works only with round_robin (this group uses %s), as ALB's", g.Algorithm)
	}
	if g.AnomalyMitigation && g.Algorithm != WeightedRandom {
		v.addf(attr("load_balancing.algorithm.anomaly_mitigation"), "anomaly mitigation works only with weighted_random (this group uses %s), as ALB's", g.Algorithm)
	}
	undo()
	if p := &g.PassiveHealth; p.MaxEjection < p.Ejection && p.Ejection > 0 && p.MaxEjection > 0 {
		undo := v.depend(attr("passive_health.ejection_seconds"))
		v.addf(attr("passive_health.max_ejection_seconds"), "%s is shorter than passive_health.ejection_seconds (%s)",
			formatSeconds(p.MaxEjection), formatSeconds(p.Ejection))
		undo()
	}
	if g.Retry.OnTimeout && !g.Retry.Idempotent {
		undo := v.depend(attr("retry.idempotent.enabled"))
		v.add(attr("retry.on_timeout.enabled"), "retries after a timeout are retries of idempotent requests: retry.idempotent.enabled is false")
		undo()
	}
}

func (v *validator) healthCheck(hc *HealthCheck, path string) {
	switch {
	case !hc.Protocol.valid():
		v.add(path+".protocol", enumProblem(hc.Protocol, protocolNames))
	case hc.Protocol == HTTPS:
		v.add(path+".protocol", "HTTPS health checks are not supported yet by latch (supported: HTTP)")
	}
	if hc.Port != 0 {
		if msg := checkRange(hc.Port, 1, 65535, ", or traffic-port"); msg != "" {
			v.add(path+".port", msg)
		}
	}
	if p := hc.Path; !strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, " \t\r\n") {
		v.addf(path+".path", "%q must start with / and be at most 1024 characters with no spaces", p)
	}
	ipath, tpath := path+".interval_seconds", path+".timeout_seconds"
	imsg, tmsg := healthInterval.check(hc.Interval), healthTimeout.check(hc.Timeout)
	if imsg != "" {
		v.add(ipath, imsg)
	}
	if tmsg != "" {
		v.add(tpath, tmsg)
	}
	// Compare only values in range: one out of range is reported already.
	// The message is on the field the user set: in a file, the timeout if
	// it is set, else the interval; in Go, the one changed from ALB's
	// default.
	if imsg == "" && tmsg == "" && hc.Timeout >= hc.Interval {
		timeout := Problem{Path: tpath, Msg: fmt.Sprintf("the timeout (%v) must be shorter than the interval (%v)", hc.Timeout, hc.Interval)}
		interval := Problem{Path: ipath, Msg: fmt.Sprintf("the interval (%v) must be longer than the timeout (%v)", hc.Interval, hc.Timeout)}
		p := problem{Problem: timeout, deps: []string{ipath, tpath}, alts: []Problem{timeout, interval}}
		if hc.Timeout == DefaultHealthCheck().Timeout {
			p.Problem = interval // the one changed from ALB's default
		}
		v.probs = append(v.probs, p)
	}
	if msg := checkRange(hc.HealthyThreshold, 2, 10, ""); msg != "" {
		v.add(path+".healthy_threshold_count", msg)
	}
	if msg := checkRange(hc.UnhealthyThreshold, 2, 10, ""); msg != "" {
		v.add(path+".unhealthy_threshold_count", msg)
	}
	if msg := checkMatcher(hc.Matcher); msg != "" {
		v.add(path+".matcher", msg)
	}
	if strings.ContainsAny(hc.UserAgent, "\r\n") {
		v.add(path+".user_agent", "must be one line")
	}
}

func (v *validator) cookieKeys() {
	ids := map[uint32]bool{}
	for i, k := range v.cfg.CookieKeys {
		path := item("cookie_keys", i)
		switch {
		case k.ID == 0:
			v.addf(path+".id", "0 is outside 1-%d", uint32(math.MaxUint32))
		case ids[k.ID]:
			v.addf(path+".id", "duplicate key id %d", k.ID)
		}
		ids[k.ID] = true
		switch len(k.Secret) {
		case 32:
		case 0:
			v.add(path+".secret", "missing; a cookie key needs a 32-byte secret")
		default:
			v.addf(path+".secret", "the secret must be 32 bytes, not %d", len(k.Secret))
		}
	}
}
