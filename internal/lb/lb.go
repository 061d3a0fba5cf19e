// Package lb runs a latch configuration: it binds listeners, keeps target
// groups and their health checks, and applies a new configuration in place
// without dropping a connection or a request in flight.
package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/balance"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/health"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/route"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
	"github.com/latch-lb/latch/internal/tlsconf"
)

// LB is a running latch.
type LB struct {
	log *slog.Logger

	mu        sync.Mutex // serialises Apply and Shutdown
	cfg       *config.Config
	registry  *registry
	groups    map[string]*group
	listeners map[string]*listener
	wg        sync.WaitGroup // listeners shutting down after a reload
}

type group struct {
	*target.Group
	spec    config.HealthCheck
	checker *health.Checker // nil when health checks are off
	// load is the group's total in flight, which the hash picker's
	// bounded load needs; it outlives every snapshot's picker.
	load balance.Load
	// http2 says the group speaks HTTP/2 to its targets; h2 is then its
	// client, kept across reloads (its connections with it).
	http2 bool
	h2    *http.Transport
	h2cfg [2]time.Duration // the connect and idle timeouts h2 was made with
}

// New returns an LB with nothing applied.
func New(log *slog.Logger) *LB {
	return &LB{log: log, groups: map[string]*group{}, listeners: map[string]*listener{}}
}

// Apply makes cfg the running configuration. The first call starts
// everything; later calls are reloads: targets still listed keep their state
// and sessions, removed targets drain, and listeners keep their connections.
// On error nothing changes.
func (b *LB) Apply(cfg *config.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()

	keys, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	reg := b.registry
	if reg == nil || b.cfg.StateDir != cfg.StateDir {
		if reg, err = loadRegistry(cfg.StateDir); err != nil {
			return err
		}
	}

	// Compile the rules, read the certificates, then bind new listeners:
	// the only steps that can fail.
	var tables []*route.Table
	var tlss []*tlsconf.Settings
	for _, lc := range cfg.Listeners {
		t, err := route.Compile(lc.Rules)
		if err != nil {
			return fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		tables = append(tables, t)
		ts, err := tlsSettings(lc)
		if err != nil {
			return fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		tlss = append(tlss, ts)
	}
	bound := map[string]*listener{}
	for _, lc := range cfg.Listeners {
		if old := b.listeners[lc.Name]; old != nil && old.cfg.Address == lc.Address {
			continue
		}
		l, err := newListener(lc, b.log)
		if err != nil {
			for _, l := range bound {
				l.ln.Close()
			}
			return err
		}
		bound[lc.Name] = l
	}

	// Target groups.
	current := map[string]map[string]bool{}
	for _, gc := range cfg.TargetGroups {
		g := b.groups[gc.Name]
		if g == nil {
			g = &group{}
			b.groups[gc.Name] = g
		}
		settings := groupSettings(gc, &g.load)
		if g.Group == nil {
			g.Group = target.NewGroup(gc.Name, settings, b.log)
		}
		g.Update(gc.Targets, settings, func(id string) uint64 { return reg.generation(gc.Name, id) })
		http2 := gc.ProtocolVersion == "HTTP2"
		if g.checker != nil && (!reflect.DeepEqual(g.spec, gc.HealthCheck) || g.http2 != http2) {
			g.checker.Stop()
			g.checker = nil
		}
		g.spec, g.http2 = gc.HealthCheck, http2
		if g.checker == nil && gc.HealthCheck.Enabled {
			g.checker = health.NewChecker(g.Group, gc.HealthCheck, http2)
		}
		if g.checker != nil {
			g.checker.Sync(g.View().Targets)
		}
		ids := map[string]bool{}
		for _, t := range gc.Targets {
			ids[t.ID] = true
		}
		current[gc.Name] = ids
	}
	reg.retain(current)
	if err := reg.save(); err != nil {
		b.log.Error("cannot save target registrations; a restart will start new sessions", "err", err)
	}
	b.registry = reg

	// Routes, then listeners. HTTP/2 target connections may stay idle as
	// long as the longest listener idle timeout, and at least 60 s.
	idle := 60 * time.Second
	for _, l := range cfg.Listeners {
		idle = max(idle, l.IdleTimeout)
	}
	backends := map[string]*proxy.Backend{}
	for _, gc := range cfg.TargetGroups {
		g := b.groups[gc.Name]
		be := &proxy.Backend{
			Group:          g.Group,
			Sticky:         sticky.NewPolicy(gc.Name, gc.Stickiness, keys),
			ConnectTimeout: gc.ConnectTimeout,
		}
		if be.Sticky != nil {
			be.BalanceFactor, be.RebalanceIdle = gc.Stickiness.BalanceFactor, gc.Stickiness.RebalanceIdle
		}
		if g.http2 {
			be.H2 = g.transport(gc.ConnectTimeout, idle)
		}
		if s := gc.Stickiness; s.Enabled {
			switch s.Type {
			case "source_ip":
				be.Key = &proxy.HashKey{Kind: proxy.KeySourceIP, Trusted: s.TrustedProxies}
			case "hash":
				if s.HashHeader != "" {
					be.Key = &proxy.HashKey{Kind: proxy.KeyHeader, Name: []byte(s.HashHeader)}
				} else {
					be.Key = &proxy.HashKey{Kind: proxy.KeyCookie, Name: []byte(s.HashCookie)}
				}
			}
		}
		backends[gc.Name] = be
	}
	for i, lc := range cfg.Listeners {
		route := &proxy.Route{
			Rules:              tables[i],
			IdleTimeout:        lc.IdleTimeout,
			Desync:             desyncMode(lc.DesyncMode),
			H2C:                lc.H2C,
			XFF:                xffMode(lc.XFFMode),
			XFFClientPort:      lc.XFFClientPort,
			DropInvalidHeaders: lc.DropInvalidHeaders,
			TraceHeader:        lc.TraceHeader,
		}
		for _, r := range lc.Rules {
			route.Actions = append(route.Actions, action(lc.Name, r.Priority, &r.Action, backends, keys))
		}
		route.Actions = append(route.Actions, action(lc.Name, 0, &lc.DefaultAction, backends, keys))
		if l := bound[lc.Name]; l != nil {
			if old := b.listeners[lc.Name]; old != nil {
				b.retire(old)
			}
			l.update(lc, tlss[i], route)
			l.start()
			b.listeners[lc.Name] = l
			b.log.Info("listening", "listener", lc.Name, "address", l.Addr())
			continue
		}
		if old := b.listeners[lc.Name].update(lc, tlss[i], route); old != nil {
			b.retireHandler(old)
		}
	}
	for name, l := range b.listeners {
		if !hasListener(cfg, name) {
			b.retire(l)
			delete(b.listeners, name)
		}
	}
	for name, g := range b.groups {
		if cfg.TargetGroup(name) == nil {
			if g.checker != nil {
				g.checker.Stop()
			}
			g.Deregister()
			delete(b.groups, name)
		}
	}
	b.cfg = cfg
	return nil
}

// transport returns the group's HTTP/2 client, made anew when its
// timeouts change (the old one's idle connections then close).
func (g *group) transport(connect, idle time.Duration) *http.Transport {
	if g.h2 == nil || g.h2cfg != [2]time.Duration{connect, idle} {
		if g.h2 != nil {
			g.h2.CloseIdleConnections()
		}
		g.h2, g.h2cfg = proxy.NewH2Transport(connect, idle), [2]time.Duration{connect, idle}
	}
	return g.h2
}

// action resolves a rule's action (priority 0: the default action) to the
// data path's form.
func action(listener string, priority int, a *config.Action, backends map[string]*proxy.Backend, keys *sticky.Keyring) *proxy.Action {
	switch a.Type {
	case "redirect":
		return proxy.NewRedirect(a.Redirect)
	case "fixed-response":
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
		groups = sticky.NewPolicy(fmt.Sprintf("rule %s/%d", listener, priority), config.Stickiness{
			Enabled:  true,
			Duration: a.GroupStickiness.Duration,
			Cookie:   config.Cookie{Name: "AWSALBTG", CORS: true, Path: "/"},
		}, keys)
	}
	return proxy.NewForward(bs, groups)
}

// xffMode converts an X-Forwarded-For mode the config has validated.
func xffMode(s string) proxy.XFFMode {
	switch s {
	case "preserve":
		return proxy.XFFPreserve
	case "remove":
		return proxy.XFFRemove
	}
	return proxy.XFFAppend
}

// desyncMode converts a mode the config has validated.
func desyncMode(s string) desync.Mode {
	m, err := desync.ParseMode(s)
	if err != nil {
		panic("lb: unvalidated desync mode: " + err.Error())
	}
	return m
}

// retire stops a listener in the background: it accepts no more, and its
// connections close once their requests are answered.
func (b *LB) retire(l *listener) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		l.close(context.Background())
	}()
}

func hasListener(cfg *config.Config, name string) bool {
	for _, l := range cfg.Listeners {
		if l.Name == name {
			return true
		}
	}
	return false
}

func groupSettings(gc config.TargetGroup, load *balance.Load) target.Settings {
	alg := gc.Algorithm
	newPicker := func(ts []*target.Target) target.Picker { return balance.New(alg, ts) }
	weightBlind := false
	if s := gc.Stickiness; s.Enabled && (s.Type == "source_ip" || s.Type == "hash") {
		// Hash affinity picks by consistent hashing; the algorithm picks
		// only for requests without a key. A Hash follows the configured
		// weights, so slow start and anomaly mitigation leave it as it is.
		factor := gc.HashBalanceFactor
		newPicker = func(ts []*target.Target) target.Picker { return balance.NewHash(ts, factor, load) }
		weightBlind = true
	}
	return target.Settings{
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

// loadKeys returns the configured key ring, or the one kept in the state
// directory (made on first use).
func loadKeys(cfg *config.Config) (*sticky.Keyring, error) {
	var keys []sticky.Key
	if len(cfg.CookieKeys) > 0 {
		for _, k := range cfg.CookieKeys {
			keys = append(keys, sticky.Key{ID: k.ID, Secret: k.Secret})
		}
	} else {
		var err error
		if keys, err = sticky.LoadOrCreateKeys(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("cookie keys: %w", err)
		}
	}
	return sticky.NewKeyring(keys)
}

// Shutdown stops accepting connections, lets requests in flight finish until
// ctx is done, then closes everything. It returns ctx's error if requests
// were still running.
func (b *LB) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(b.listeners))
	for _, l := range b.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.close(ctx)
		}()
	}
	wg.Wait()
	b.wg.Wait()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	for _, g := range b.groups {
		if g.checker != nil {
			g.checker.Stop()
		}
		g.Close()
	}
	b.listeners = map[string]*listener{}
	b.groups = map[string]*group{}
	return err
}

// Addr returns the bound address of the named listener ("" if none), which
// tells the port when the config asked for port 0.
func (b *LB) Addr(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.listeners[name]; l != nil {
		return l.Addr()
	}
	return ""
}

// Group returns the named target group, or nil.
func (b *LB) Group(name string) *target.Group {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := b.groups[name]; g != nil {
		return g.Group
	}
	return nil
}

// TargetHealth is one target's health, as reported.
type TargetHealth struct {
	ID         string
	Generation uint64
	Inflight   int64
	target.Health
	// Anomaly is ALB's AnomalyDetection.Result ("normal" or "anomalous"),
	// and Mitigated its MitigationInEffect.
	Anomaly   string
	Mitigated bool
	// EffectiveWeight is the weight new picks use now, in units of
	// target.WeightUnit per unit of configured weight (slow start and
	// anomaly mitigation lower it).
	EffectiveWeight int
}

// Health reports every target of the named group, draining ones included.
func (b *LB) Health(groupName string) []TargetHealth {
	g := b.Group(groupName)
	if g == nil {
		return nil
	}
	var out []TargetHealth
	for _, t := range append(g.View().Targets, g.Draining()...) {
		a, m := t.Anomaly()
		out = append(out, TargetHealth{ID: t.ID, Generation: t.Generation, Inflight: t.Inflight.Load(), Health: t.Health(),
			Anomaly: a, Mitigated: m, EffectiveWeight: t.EffectiveWeight()})
	}
	return out
}

// Listener returns the named listener's handler (for its counters), or nil.
func (b *LB) Listener(name string) *proxy.Handler {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.listeners[name]; l != nil {
		return l.handler()
	}
	return nil
}
