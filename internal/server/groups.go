package server

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h2"
	"github.com/latch-lb/latch/internal/health"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/route"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/tlsconf"
)

// group is a target group as the server keeps it across changes.
type group struct {
	*target.Group
	spec    config.HealthCheck
	http2   bool
	checker *health.Checker // nil when health checks are off
	// load is the group's total in flight, which the hash picker's
	// bounded load needs; it outlives every snapshot's picker.
	load balance.Load
	// h2 is the HTTP/2 client of a group that speaks HTTP/2 to its
	// targets, kept across changes (its connections with it).
	h2    *http.Transport
	h2cfg [2]time.Duration // the connect and idle timeouts h2 was made with
	// sticky is the group's stickiness policy, kept while its settings and
	// key ring stay: its caches of opened and sealed values with it.
	sticky     *sticky.Policy
	stickyCfg  config.Stickiness
	stickyKeys *sticky.Keyring
}

// policy returns the group's stickiness policy for s sealed with keys,
// the one it has if they did not change.
func (g *group) policy(s config.Stickiness, keys *sticky.Keyring) *sticky.Policy {
	if g.stickyKeys != keys || !reflect.DeepEqual(g.stickyCfg, s) {
		g.sticky, g.stickyCfg, g.stickyKeys = sticky.NewPolicy(g.Name, s, keys), s, keys
	}
	return g.sticky
}

// applyGroups makes the running target groups cfg's: groups and targets
// added, changed, drained or removed, each target with the generation the
// store gave it (gens). s.mu is held.
func (s *Server) applyGroups(cfg *config.Config, gens map[string]map[string]uint64) {
	for _, gc := range cfg.TargetGroups {
		g := s.groups[gc.Name]
		if g == nil {
			g = &group{}
			g.Group = target.NewGroup(gc.Name, target.Settings{}, s.log)
			s.groups[gc.Name] = g
		}
		settings := groupSettings(gc, &g.load)
		settings.Notify = s.notify
		http2 := gc.ProtocolVersion == config.HTTP2
		if !gc.HealthCheck.Enabled {
			g.checker = nil
		} else if g.checker == nil || !reflect.DeepEqual(g.spec, gc.HealthCheck) || g.http2 != http2 {
			// The group closes the checker it replaces.
			g.checker = health.NewChecker(gc.HealthCheck, http2)
		}
		if g.checker != nil {
			settings.Checker = g.checker
		}
		g.spec, g.http2 = gc.HealthCheck, http2
		groupGens := gens[gc.Name]
		gen := func(id string) uint64 { return groupGens[id] }
		if anew := g.registeredAnew(groupGens); len(anew) > 0 {
			// The store has these registered anew (elsewhere): the
			// running ones leave, and drain, before they come back.
			g.Reconcile(slices.DeleteFunc(slices.Clone(gc.Targets), func(t config.Target) bool {
				return slices.Contains(anew, t.ID)
			}), settings, gen)
		}
		g.Reconcile(gc.Targets, settings, gen)
	}
	for name, g := range s.groups {
		if cfg.TargetGroup(name) == nil {
			// Its targets drain for its deregistration delay; the server
			// keeps it until they are gone, to close what is left at
			// Shutdown.
			g.DeregisterAll()
			delete(s.groups, name)
			s.retired = append(s.retired, g)
		}
	}
	s.retired = slices.DeleteFunc(s.retired, func(g *group) bool {
		if len(g.Draining()) > 0 {
			return false
		}
		g.close()
		return true
	})
}

// generations returns the generation of each registered target, by id.
func (g *group) generations() map[string]uint64 {
	ts := g.View().Targets
	gens := make(map[string]uint64, len(ts))
	for _, t := range ts {
		gens[t.ID] = t.Generation
	}
	return gens
}

// registeredAnew returns the ids of registered targets whose generation
// gens moved.
func (g *group) registeredAnew(gens map[string]uint64) []string {
	var anew []string
	for _, t := range g.View().Targets {
		if gen, ok := gens[t.ID]; ok && gen != t.Generation {
			anew = append(anew, t.ID)
		}
	}
	return anew
}

// close stops the group at once: its targets, health checks and HTTP/2
// client.
func (g *group) close() {
	g.Close()
	g.closeTransport()
}

func (g *group) closeTransport() {
	if g.h2 != nil {
		g.h2.CloseIdleConnections()
	}
}

// transport returns the group's HTTP/2 client, made anew when its
// timeouts change (the old one's idle connections then close).
func (g *group) transport(connect, idle time.Duration) *http.Transport {
	if g.h2 == nil || g.h2cfg != [2]time.Duration{connect, idle} {
		g.closeTransport()
		g.h2, g.h2cfg = proxy.NewH2Transport(connect, idle), [2]time.Duration{connect, idle}
	}
	return g.h2
}

// groupSettings are the parts of a group's config its target.Group
// applies.
func groupSettings(gc config.TargetGroup, load *balance.Load) target.Settings {
	alg := gc.Algorithm
	newPicker := func(ts []*target.Target) target.Picker { return balance.New(alg, ts) }
	weightBlind := false
	if s := gc.Stickiness; s.Enabled && (s.Type == config.StickySourceIP || s.Type == config.Hash) {
		// Hash affinity picks by consistent hashing; the algorithm picks
		// only for requests without a key. A Hash follows the configured
		// weights, so slow start and anomaly mitigation leave it as it is.
		factor := gc.HashBalanceFactor
		newPicker = func(ts []*target.Target) target.Picker { return balance.NewHash(ts, factor, load) }
		weightBlind = true
	}
	var passive target.Passive
	if ph := gc.PassiveHealth; ph.Enabled {
		passive = target.Passive{Failures: ph.ConsecutiveFailures, Target5xx: ph.Target5xx,
			Ejection: ph.Ejection, MaxEjection: ph.MaxEjection, MaxEjectedPercent: ph.MaxEjectedPercent}
	}
	return target.Settings{
		Passive:             passive,
		HealthChecks:        gc.HealthCheck.Enabled,
		HealthyThreshold:    gc.HealthCheck.HealthyThreshold,
		UnhealthyThreshold:  gc.HealthCheck.UnhealthyThreshold,
		MinHealthyCount:     gc.MinHealthyCount,
		MinHealthyPercent:   gc.MinHealthyPercent,
		DeregistrationDelay: gc.DeregistrationDelay,
		SlowStart:           gc.SlowStart,
		AnomalyMitigation:   gc.AnomalyMitigation,
		NewPicker:           newPicker,
		WeightBlind:         weightBlind,
	}
}

// applyListeners makes the running listeners cfg's: the routes built from
// the compiled rules (tables) and target groups, the TLS settings (tlss,
// by listener), listeners newly bound (bound) started, the others updated
// in place, and those cfg no longer has retired. s.mu is held.
func (s *Server) applyListeners(cfg *config.Config, tables []*route.Table, tlss []*tlsconf.Settings,
	bound map[string]*listener, keys *sticky.Keyring) {
	s.nextGroupPolicies = map[groupPolicyKey]*sticky.Policy{}
	defer func() { s.groupPolicies, s.nextGroupPolicies = s.nextGroupPolicies, nil }()
	// HTTP/2 target connections may stay idle as long as the longest
	// listener idle timeout, and at least 60 s.
	idle := 60 * time.Second
	for _, l := range cfg.Listeners {
		idle = max(idle, l.IdleTimeout)
	}
	backends := map[string]*proxy.Backend{}
	for _, gc := range cfg.TargetGroups {
		g := s.groups[gc.Name]
		be := &proxy.Backend{
			Group:          g.Group,
			Sticky:         g.policy(gc.Stickiness, keys),
			ConnectTimeout: gc.ConnectTimeout,
			Retry:          gc.Retry,
		}
		if be.Sticky != nil {
			be.BalanceFactor, be.RebalanceIdle = gc.Stickiness.BalanceFactor, gc.Stickiness.RebalanceIdle
		}
		if g.http2 {
			be.H2 = g.transport(gc.ConnectTimeout, idle)
		} else if g.h2 != nil {
			g.closeTransport()
			g.h2 = nil
		}
		if st := gc.Stickiness; st.Enabled {
			switch st.Type {
			case config.StickySourceIP:
				be.Key = &proxy.HashKey{Kind: proxy.KeySourceIP, Trusted: st.TrustedProxies}
			case config.Hash:
				if st.HashHeader != "" {
					be.Key = &proxy.HashKey{Kind: proxy.KeyHeader, Name: []byte(st.HashHeader)}
				} else {
					be.Key = &proxy.HashKey{Kind: proxy.KeyCookie, Name: []byte(st.HashCookie)}
				}
			}
		}
		backends[gc.Name] = be
	}
	for i, lc := range cfg.Listeners {
		rt := &proxy.Route{
			Rules:              tables[i],
			IdleTimeout:        lc.IdleTimeout,
			Desync:             lc.DesyncMode,
			H2C:                lc.H2C,
			XFF:                lc.XFFMode,
			XFFClientPort:      lc.XFFClientPort,
			DropInvalidHeaders: lc.DropInvalidHeaders,
			TraceHeader:        lc.TraceHeader,
		}
		for _, r := range lc.Rules {
			rt.Actions = append(rt.Actions, s.action(lc.Name, r.Priority, &r.Action, backends, keys))
		}
		rt.Actions = append(rt.Actions, s.action(lc.Name, 0, &lc.DefaultAction, backends, keys))
		if l := bound[lc.Name]; l != nil {
			if old := s.listeners[lc.Name]; old != nil {
				s.retire(old.close)
			}
			l.update(lc, tlss[i], rt, s.handlerOptions(lc.Name, &l.h2))
			l.start()
			s.listeners[lc.Name] = l
			s.log.Info("listening", "listener", lc.Name, "address", l.Addr())
			continue
		}
		l := s.listeners[lc.Name]
		if old := l.update(lc, tlss[i], rt, s.handlerOptions(lc.Name, &l.h2)); old != nil {
			s.retire(old.Shutdown)
		}
	}
	for name, l := range s.listeners {
		if cfg.Listener(name) == nil {
			s.retire(l.close)
			delete(s.listeners, name)
		}
	}
}

// handlerOptions are the options of a listener's handler, but its port.
func (s *Server) handlerOptions(name string, h2 *h2.Counters) proxy.Options {
	return proxy.Options{Listener: name, Log: s.log.With("listener", name), Loops: s.loops, Observer: s.obs, H2: h2}
}

// action resolves a rule's action (priority 0: the default action) to the
// data path's form.
func (s *Server) action(listener string, priority int, a *config.Action, backends map[string]*proxy.Backend, keys *sticky.Keyring) *proxy.Action {
	switch a.Type {
	case config.ActionRedirect:
		return proxy.NewRedirect(a.Redirect)
	case config.ActionFixedResponse:
		return proxy.NewFixedResponse(a.FixedResponse)
	}
	if len(a.TargetGroups) <= 1 {
		// The config sets TargetGroup for a forward to one group, whichever
		// way it was written.
		return proxy.NewForward([]*proxy.Backend{backends[a.TargetGroup]}, nil)
	}
	var bs []*proxy.Backend
	for _, wg := range a.TargetGroups {
		be := *backends[wg.Name]
		be.Weight = wg.Weight
		bs = append(bs, &be)
	}
	var groups *sticky.Policy
	if a.GroupStickiness.Enabled {
		// The group cookie is ALB's AWSALBTG, sealed like AWSALB; its tag is
		// the rule's, so that another rule's cookie does not pin this one.
		tag := fmt.Sprintf("rule %s/%d", listener, priority)
		groups = s.groupPolicy(tag, config.Stickiness{
			Enabled:          true,
			LBCookieDuration: a.GroupStickiness.Duration,
			Cookie:           config.Cookie{Name: "AWSALBTG", CORS: true, Path: "/"},
		}, keys)
	}
	return proxy.NewForward(bs, groups)
}

// groupPolicy returns a weighted forward's group stickiness policy, the
// one it had if neither its duration nor the key ring changed (its caches
// with it). s.mu is held.
func (s *Server) groupPolicy(tag string, st config.Stickiness, keys *sticky.Keyring) *sticky.Policy {
	k := groupPolicyKey{tag, st.LBCookieDuration, keys}
	if p := s.groupPolicies[k]; p != nil {
		s.nextGroupPolicies[k] = p
		return p
	}
	p := sticky.NewPolicy(tag, st, keys)
	s.nextGroupPolicies[k] = p
	return p
}

type groupPolicyKey struct {
	tag      string
	duration time.Duration
	keys     *sticky.Keyring
}
