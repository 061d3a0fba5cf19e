package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// Session tools: distinct sessions per target, session-aware drain and
// minted sticky cookies, for the admin API.

// Sessions estimates, for each target of the group (registered, then
// deregistered and still draining), the distinct sticky sessions it served
// within window (1m to 60m, counted in whole minutes, the current one
// included). The error for a small count is a session or two, about 6%
// for hundreds and beyond (target.SessionsSince says how much).
func (s *Server) Sessions(group string, window time.Duration) (map[string]int, error) {
	if window < time.Minute || window > target.MaxSessionWindow {
		return nil, fmt.Errorf("session window %v is not between 1m and %v", window, target.MaxSessionWindow)
	}
	g := s.publishedGroup(group)
	if g == nil {
		return nil, fmt.Errorf("target group %q does not exist", group)
	}
	now := time.Now()
	v := g.View()
	out := make(map[string]int, len(v.Targets)+len(v.Draining))
	for _, ts := range [][]*target.Target{v.Targets, v.Draining} {
		for _, t := range ts {
			out[t.ID] = t.SessionsSince(window, now)
		}
	}
	return out, nil
}

func (s *Server) publishedGroup(name string) *group {
	p := s.published.Load()
	if p == nil {
		return nil
	}
	for _, g := range p.groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Drain drains a registered target through Update: with
// config.DrainKeepSessions it takes no new sessions while its sessions go
// on, until none has come for d.Idle (default 60 s) or until d.Deadline;
// with config.DrainImmediate every session moves at once. d.Since, when
// zero, is now. Draining a drained target starts its drain anew. A
// DrainCompleted event says when it is complete; Snapshot shows its
// progress.
func (s *Server) Drain(ctx context.Context, group, id string, d config.Drain) error {
	if d.Since.IsZero() {
		d.Since = time.Now()
	}
	return s.Update(ctx, func(cfg *config.Config) error {
		t, err := registered(cfg, group, id)
		if err != nil {
			return err
		}
		t.Drain = &d
		return nil
	})
}

// Undrain ends a target's drain through Update: it takes new sessions
// again. Undraining a target that is not drained changes nothing.
func (s *Server) Undrain(ctx context.Context, group, id string) error {
	return s.Update(ctx, func(cfg *config.Config) error {
		t, err := registered(cfg, group, id)
		if err != nil {
			return err
		}
		t.Drain = nil
		return nil
	})
}

// registered finds a registered target in cfg.
func registered(cfg *config.Config, group, id string) (*config.Target, error) {
	g := cfg.TargetGroup(group)
	if g == nil {
		return nil, fmt.Errorf("target group %q does not exist", group)
	}
	t := g.Target(id)
	if t == nil {
		return nil, fmt.Errorf("target %s is not registered in target group %q", id, group)
	}
	return t, nil
}

// stampDrains sets the start of the drains cfg begins (those with a zero
// Since) to now, so that the running config, and what persists of it, says
// when each began.
func stampDrains(cfg *config.Config, now time.Time) {
	for i := range cfg.TargetGroups {
		for j := range cfg.TargetGroups[i].Targets {
			if d := cfg.TargetGroups[i].Targets[j].Drain; d != nil && d.Since.IsZero() {
				d.Since = now
			}
		}
	}
}

// MintedSession is a sticky session MintCookie made, and how a request
// carries it.
type MintedSession struct {
	Kind string // the group's stickiness.type: lb_cookie, app_cookie or header
	// Header is the request header field that carries the session:
	// "Cookie", or the header kind's header.
	Header string
	// Name is the cookie's name (AWSALB or the configured one,
	// AWSALBAPP-0), or the header's.
	Name string
	// Value is Header's value: name=value for a cookie (a Cookie
	// request-header value), the sealed value itself for a header.
	Value string
	// AppCookie is app_cookie's application cookie, which a request must
	// carry as well (with any value) for the session to hold, as ALB's.
	AppCookie string
}

// errNotSealed says a group's stickiness carries no session to mint.
var errNotSealed = errors.New("carries no sealed session (stickiness is off, source_ip or hash)")

// MintCookie makes a new sticky session that pins target id of the group
// from now, for the group's stickiness kind, as the data path would issue
// it: support staff reproduce a user's problem on one target, canary
// testers reach the canary. It errs for an unknown group or target, and
// for a group whose stickiness is off or not sealed (source_ip, hash).
func (s *Server) MintCookie(group, id string) (MintedSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil || s.running == nil || s.running.TargetGroup(group) == nil {
		return MintedSession{}, fmt.Errorf("target group %q does not exist", group)
	}
	gc := s.running.TargetGroup(group)
	t, _ := g.View().Lookup(id)
	if t == nil {
		return MintedSession{}, fmt.Errorf("target %s is not registered in target group %q", id, group)
	}
	st := gc.Stickiness
	if !st.Enabled || g.sticky == nil || g.stickyCfg.Type != st.Type {
		return MintedSession{}, fmt.Errorf("target group %q: stickiness %s", group, errNotSealed)
	}
	p := g.sticky
	name, value := p.Mint(t.ID, t.Generation, time.Now())
	m := MintedSession{Kind: st.Type.String(), Header: "Cookie", Name: name, Value: name + "=" + value}
	switch p.Kind {
	case sticky.Header:
		m.Header, m.Value = name, value
	case sticky.AppCookie:
		m.AppCookie = p.AppCookie
	}
	return m, nil
}
