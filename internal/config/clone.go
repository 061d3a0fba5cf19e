package config

import "slices"

// Clone returns a deep copy of c: no slice, map or pointer of the copy is
// shared with c, so that the admin API can change a copy of the running
// config, validate it and apply it while c stays as it is. A nil list stays
// nil and an empty one empty, as Validate tells them apart. Clone of nil is
// nil.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	out := *c
	out.Listeners = cloneEach(c.Listeners, Listener.clone)
	out.TargetGroups = cloneEach(c.TargetGroups, TargetGroup.clone)
	out.CookieKeys = cloneEach(c.CookieKeys, func(k CookieKey) CookieKey {
		k.Secret = slices.Clone(k.Secret)
		return k
	})
	if c.Cluster != nil {
		cl := *c.Cluster
		cl.Etcd.Endpoints = slices.Clone(cl.Etcd.Endpoints)
		if cl.Etcd.TLS != nil {
			t := *cl.Etcd.TLS
			cl.Etcd.TLS = &t
		}
		out.Cluster = &cl
	}
	if c.AccessLog != nil {
		a := *c.AccessLog
		out.AccessLog = &a
	}
	return &out
}

func (l Listener) clone() Listener {
	l.DefaultAction = l.DefaultAction.clone()
	l.Rules = cloneEach(l.Rules, func(r Rule) Rule {
		r.Conditions = cloneEach(r.Conditions, Condition.clone)
		r.Action = r.Action.clone()
		return r
	})
	l.Certificates = slices.Clone(l.Certificates)
	return l
}

func (a Action) clone() Action {
	a.TargetGroups = slices.Clone(a.TargetGroups)
	if a.Redirect != nil {
		r := *a.Redirect
		a.Redirect = &r
	}
	if a.FixedResponse != nil {
		fr := *a.FixedResponse
		a.FixedResponse = &fr
	}
	return a
}

func (c Condition) clone() Condition {
	c.Values = slices.Clone(c.Values)
	c.Pairs = slices.Clone(c.Pairs)
	c.CIDRs = slices.Clone(c.CIDRs)
	return c
}

func (g TargetGroup) clone() TargetGroup {
	g.Targets = slices.Clone(g.Targets)
	for i := range g.Targets {
		if d := g.Targets[i].Drain; d != nil {
			d := *d
			g.Targets[i].Drain = &d
		}
	}
	g.HealthCheck.Matcher = slices.Clone(g.HealthCheck.Matcher)
	g.Stickiness.TrustedProxies = slices.Clone(g.Stickiness.TrustedProxies)
	g.Discovery = cloneDiscovery(g.Discovery)
	return g
}

// cloneEach copies s, each element by clone; nil stays nil.
func cloneEach[T any](s []T, clone func(T) T) []T {
	if s == nil {
		return nil
	}
	out := make([]T, len(s))
	for i, x := range s {
		out[i] = clone(x)
	}
	return out
}
