package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// register adds the API's endpoints to mux.
func (a *Admin) register(mux *http.ServeMux) {
	const tg = "/api/v1/target-groups/{name}"
	const tgt = tg + "/targets/{id}"
	mux.Handle("GET /api/v1/target-groups", a.endpoint(false, a.listGroups))
	mux.Handle("GET "+tg, a.endpoint(false, a.getGroup))
	mux.Handle("GET "+tg+"/targets", a.endpoint(false, a.listTargets))
	mux.Handle("POST "+tg+"/targets", a.endpoint(true, a.registerTargets))
	mux.Handle("GET "+tgt, a.endpoint(false, a.getTarget))
	mux.Handle("DELETE "+tgt, a.endpoint(true, a.deregisterTarget))
	mux.Handle("PUT "+tgt+"/weight", a.endpoint(true, a.setWeight))
	mux.Handle("POST "+tgt+"/drain", a.endpoint(true, a.drain))
	mux.Handle("DELETE "+tgt+"/drain", a.endpoint(true, a.undrain))
	mux.Handle("POST "+tgt+"/cookie", a.endpoint(true, a.mintCookie))
	mux.Handle("GET "+tg+"/attributes", a.endpoint(false, a.getAttributes))
	mux.Handle("PATCH "+tg+"/attributes", a.endpoint(true, a.patchAttributes))
	mux.Handle("GET "+tg+"/sessions", a.endpoint(false, a.sessions))
	mux.Handle("GET /api/v1/listeners", a.endpoint(false, a.listListeners))
	mux.Handle("GET /api/v1/listeners/{name}", a.endpoint(false, a.getListener))
	mux.Handle("GET /api/v1/config", a.endpoint(false, a.getConfig))
	mux.Handle("GET /api/v1/diff", a.endpoint(false, a.diff))
	mux.Handle("POST /api/v1/reload", a.endpoint(true, a.reload))
	a.registerCluster(mux)
}

// TargetGroupList is GET /api/v1/target-groups.
type TargetGroupList struct {
	TargetGroups []TargetGroupSummary `json:"target_groups"`
	Version      string               `json:"version"` // the running config's
}

func (a *Admin) listGroups(r *http.Request) (reply, error) {
	sn := a.o.Server.Snapshot()
	out := TargetGroupList{TargetGroups: []TargetGroupSummary{}, Version: configETag(sn.Version)}
	if sn.Config != nil {
		for i := range sn.Config.TargetGroups {
			gc := &sn.Config.TargetGroups[i]
			out.TargetGroups = append(out.TargetGroups, groupSummary(gc, sn.Group(gc.Name)))
		}
	}
	return reply{etag: out.Version, body: out}, nil
}

// lookup finds the named group in a snapshot, or says it does not exist.
func lookup(sn *server.Snapshot, name string) (*config.TargetGroup, *server.GroupStatus, error) {
	if sn.Config != nil {
		if gc := sn.Config.TargetGroup(name); gc != nil {
			return gc, sn.Group(name), nil
		}
	}
	return nil, nil, noGroup(name)
}

func noGroup(name string) *apiError { return notFound("target group %q does not exist", name) }

func noTarget(group, id string) *apiError {
	return notFound("target %s is not registered in target group %q", id, group)
}

func (a *Admin) getGroup(r *http.Request) (reply, error) {
	gc, gs, err := lookup(a.o.Server.Snapshot(), r.PathValue("name"))
	if err != nil {
		return reply{}, err
	}
	v := groupView(gc, gs)
	v.Discovery = a.discoveryView(gc.Name)
	a.nodesView(gc.Name, v.Targets)
	return reply{etag: v.Version, body: v}, nil
}

// TargetList is GET .../targets: ALB's DescribeTargetHealth.
type TargetList struct {
	TargetGroup string   `json:"target_group"`
	Targets     []Target `json:"targets"`
	// Discovery is the group's DNS discovery as it runs; absent without.
	Discovery *DiscoveryView `json:"discovery,omitempty"`
	Version   string         `json:"version"` // the group's
}

func (a *Admin) listTargets(r *http.Request) (reply, error) {
	gc, gs, err := lookup(a.o.Server.Snapshot(), r.PathValue("name"))
	if err != nil {
		return reply{}, err
	}
	v := TargetList{TargetGroup: gc.Name, Targets: groupTargets(gc, gs), Version: etagOf(gc), Discovery: a.discoveryView(gc.Name)}
	a.nodesView(gc.Name, v.Targets)
	return reply{etag: v.Version, body: v}, nil
}

// targetReply is one target as it runs now, or 404 if the group has no
// such target, registered or draining.
func (a *Admin) targetReply(group, id string, status int) (reply, error) {
	gc, gs, err := lookup(a.o.Server.Snapshot(), group)
	if err != nil {
		return reply{}, err
	}
	if gs != nil {
		for i := range gs.Targets {
			if ts := &gs.Targets[i]; ts.ID == id {
				v := []Target{targetView(ts, gc.Target(id))}
				a.nodesView(group, v)
				return reply{status: status, etag: v[0].Version, body: v[0]}, nil
			}
		}
	}
	return reply{}, noTarget(group, id)
}

func (a *Admin) getTarget(r *http.Request) (reply, error) {
	return a.targetReply(r.PathValue("name"), r.PathValue("id"), 0)
}

// ifMatch checks the request's If-Match against the resource's version
// now: a client that read an older version gets 409 and reads again.
func ifMatch(r *http.Request, what, current string) error {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil
	}
	// A version is accepted quoted, as an ETag, or bare, as in a body.
	for _, v := range strings.Split(h, ",") {
		v = strings.Trim(strings.TrimPrefix(strings.TrimSpace(v), "W/"), `"`)
		if v == "*" || v == current {
			return nil
		}
	}
	return &apiError{status: http.StatusConflict,
		msg: fmt.Sprintf("If-Match %s: %s changed since that version (it is %q now); read it again", h, what, current)}
}

// update runs change on the running config's copy of the named group,
// through Server.Update: 404 for a group that does not exist, and every
// problem of an invalid result.
func (a *Admin) update(r *http.Request, group string, change func(g *config.TargetGroup) error) error {
	return a.o.Server.Update(r.Context(), func(c *config.Config) error {
		g := c.TargetGroup(group)
		if g == nil {
			return noGroup(group)
		}
		return change(g)
	})
}

// updateTarget is update for one registered target, with If-Match against
// the target's version.
func (a *Admin) updateTarget(r *http.Request, change func(g *config.TargetGroup, t *config.Target) error) error {
	group, id := r.PathValue("name"), r.PathValue("id")
	return a.update(r, group, func(g *config.TargetGroup) error {
		t := g.Target(id)
		if t == nil {
			return noTarget(group, id)
		}
		if err := ifMatch(r, fmt.Sprintf("target %s of %q", id, group), etagOf(t)); err != nil {
			return err
		}
		return change(g, t)
	})
}

// TargetSpec is one target of a registration (ALB's TargetDescription,
// with latch's weight).
type TargetSpec struct {
	ID     string `json:"id"`
	Weight *int   `json:"weight,omitempty"` // default 1; sets the weight of one already registered
}

// RegisterRequest is POST .../targets: ALB's RegisterTargets.
type RegisterRequest struct {
	Targets []TargetSpec `json:"targets"`
}

func (a *Admin) registerTargets(r *http.Request) (reply, error) {
	var req RegisterRequest
	if err := decode(r, &req, false); err != nil {
		return reply{}, err
	}
	if len(req.Targets) == 0 {
		return reply{}, badRequest(`request body: "targets" is empty; want [{"id": "host:port", "weight": 1}, ...]`)
	}
	for i, t := range req.Targets {
		if t.ID == "" {
			return reply{}, badRequest(`request body: targets[%d]: "id" is missing`, i)
		}
	}
	group := r.PathValue("name")
	err := a.update(r, group, func(g *config.TargetGroup) error {
		if err := ifMatch(r, fmt.Sprintf("target group %q", group), etagOf(g)); err != nil {
			return err
		}
		for _, spec := range req.Targets {
			if t := g.Target(spec.ID); t != nil {
				if spec.Weight != nil {
					t.Weight = *spec.Weight
				}
				continue // registering a registered target changes nothing else, as ALB's
			}
			w := 1
			if spec.Weight != nil {
				w = *spec.Weight
			}
			g.Targets = append(g.Targets, config.Target{ID: spec.ID, Weight: w})
		}
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	a.o.Log.Info("admin: targets registered", "target_group", group, "targets", len(req.Targets))
	rep, err := a.listTargets(r)
	return rep, err
}

func (a *Admin) deregisterTarget(r *http.Request) (reply, error) {
	group, id := r.PathValue("name"), r.PathValue("id")
	err := a.updateTarget(r, func(g *config.TargetGroup, t *config.Target) error {
		g.Targets = slices.DeleteFunc(g.Targets, func(t config.Target) bool { return t.ID == id })
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	a.o.Log.Info("admin: target deregistered", "target_group", group, "target", id)
	rep, err := a.targetReply(group, id, 0)
	if err != nil { // gone at once: no requests were left to drain
		return reply{status: http.StatusNoContent}, nil
	}
	return rep, nil
}

// WeightRequest is PUT .../weight.
type WeightRequest struct {
	Weight *int `json:"weight"`
}

func (a *Admin) setWeight(r *http.Request) (reply, error) {
	var req WeightRequest
	if err := decode(r, &req, false); err != nil {
		return reply{}, err
	}
	if req.Weight == nil {
		return reply{}, badRequest(`request body: "weight" is missing; want {"weight": 1-1000}`)
	}
	err := a.updateTarget(r, func(g *config.TargetGroup, t *config.Target) error {
		t.Weight = *req.Weight
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	a.o.Log.Info("admin: weight set", "target_group", r.PathValue("name"), "target", r.PathValue("id"), "weight", *req.Weight)
	return a.targetReply(r.PathValue("name"), r.PathValue("id"), 0)
}

// DrainRequest is POST .../drain. Every field is optional.
type DrainRequest struct {
	// Mode is keep_sessions (the default: sticky sessions stay until
	// none comes for Idle) or immediate (ALB's: every session moves).
	Mode     string `json:"mode,omitempty"`
	Idle     string `json:"idle,omitempty"`     // keep_sessions: a Go duration, 1s-24h; default 60s
	Deadline string `json:"deadline,omitempty"` // keep_sessions: the longest the drain may take (a Go duration); none by default
}

func (a *Admin) drain(r *http.Request) (reply, error) {
	var req DrainRequest
	if err := decode(r, &req, true); err != nil {
		return reply{}, err
	}
	var d config.Drain
	if req.Mode != "" {
		m, err := config.ParseDrainMode(req.Mode)
		if err != nil {
			return reply{}, badRequest("request body: mode: %v", err)
		}
		d.Mode = m
	}
	for _, f := range []struct {
		name, v string
		to      *time.Duration
	}{{"idle", req.Idle, &d.Idle}, {"deadline", req.Deadline, &d.Deadline}} {
		if f.v == "" {
			continue
		}
		if d.Mode != config.DrainKeepSessions {
			return reply{}, badRequest("request body: %s applies to mode keep_sessions only", f.name)
		}
		v, err := time.ParseDuration(f.v)
		if err != nil {
			return reply{}, badRequest("request body: %s: %q is not a duration (write it as 90s, 5m or 1h)", f.name, f.v)
		}
		*f.to = v
	}
	// Through Update as Server.Drain is, so that If-Match is checked
	// against the target in the same change, and an unknown group or
	// target is a 404; the server stamps the drain's start.
	err := a.updateTarget(r, func(g *config.TargetGroup, t *config.Target) error {
		dd := d
		t.Drain = &dd
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	a.o.Log.Info("admin: target drained", "target_group", r.PathValue("name"), "target", r.PathValue("id"), "mode", d.Mode.String())
	return a.targetReply(r.PathValue("name"), r.PathValue("id"), 0)
}

func (a *Admin) undrain(r *http.Request) (reply, error) {
	err := a.updateTarget(r, func(g *config.TargetGroup, t *config.Target) error {
		t.Drain = nil
		return nil
	})
	if err != nil {
		return reply{}, err
	}
	a.o.Log.Info("admin: target undrained", "target_group", r.PathValue("name"), "target", r.PathValue("id"))
	return a.targetReply(r.PathValue("name"), r.PathValue("id"), 0)
}

// Cookie is POST .../cookie's answer: a new sticky session pinned to the
// target, as the data path would issue it.
type Cookie struct {
	Kind   string `json:"kind"`   // the group's stickiness.type: lb_cookie, app_cookie or header
	Header string `json:"header"` // the request header that carries it: Cookie, or the header kind's
	Name   string `json:"name"`   // the cookie's or header's name
	Value  string `json:"value"`  // Header's value
	// Cookie is the whole Cookie header value to send (with app_cookie's
	// application cookie too); for the header kind, Value.
	Cookie    string `json:"cookie"`
	AppCookie string `json:"app_cookie,omitempty"` // app_cookie's application cookie name
}

// Sessions is GET .../sessions's answer: per target, the distinct sticky
// sessions seen within Window.
type Sessions struct {
	TargetGroup string         `json:"target_group"`
	Window      string         `json:"window"`
	Targets     map[string]int `json:"targets"`
}

func (a *Admin) mintCookie(r *http.Request) (reply, error) {
	group, id := r.PathValue("name"), r.PathValue("id")
	if _, err := a.targetReply(group, id, 0); err != nil {
		return reply{}, err
	}
	m, err := a.o.Server.MintCookie(group, id)
	if err != nil {
		// The group and target exist (above): what is left is a group
		// whose stickiness carries no session, or a target deregistered
		// meanwhile.
		return reply{}, &apiError{status: http.StatusConflict, msg: err.Error()}
	}
	a.o.Log.Info("admin: sticky session minted", "target_group", group, "target", id)
	return reply{body: Cookie{Kind: m.Kind, Header: m.Header, Name: m.Name, Value: m.Value, Cookie: cookieValue(m), AppCookie: m.AppCookie}}, nil
}

// cookieValue is what a client sends in its Cookie header for the
// session: the sealed cookie, and app_cookie's application cookie, which
// must come too; for the header kind, the header's value.
func cookieValue(m server.MintedSession) string {
	if m.AppCookie != "" {
		return m.Value + "; " + m.AppCookie + "=1"
	}
	return m.Value
}

// DefaultSessionWindow is GET .../sessions's window when none is given.
const DefaultSessionWindow = 5 * time.Minute

func (a *Admin) sessions(r *http.Request) (reply, error) {
	group := r.PathValue("name")
	if _, _, err := lookup(a.o.Server.Snapshot(), group); err != nil {
		return reply{}, err
	}
	window := DefaultSessionWindow
	if w := r.URL.Query().Get("window"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			return reply{}, badRequest("window: %q is not a duration (write it as 5m or 1h)", w)
		}
		window = d
	}
	counts, err := a.o.Server.Sessions(group, window)
	if err != nil {
		return reply{}, badRequest("window: %v", err)
	}
	return reply{body: Sessions{TargetGroup: group, Window: window.String(), Targets: counts}}, nil
}

// Attributes is GET .../attributes and PATCH's body: ALB's
// ModifyTargetGroupAttributes, keys and values as in the config file.
type Attributes struct {
	Attributes map[string]string `json:"attributes"`
	Version    string            `json:"version,omitempty"` // the group's; ignored in a request
}

func (a *Admin) getAttributes(r *http.Request) (reply, error) {
	gc, _, err := lookup(a.o.Server.Snapshot(), r.PathValue("name"))
	if err != nil {
		return reply{}, err
	}
	v := Attributes{Attributes: gc.Attributes(), Version: etagOf(gc)}
	return reply{etag: v.Version, body: v}, nil
}

func (a *Admin) patchAttributes(r *http.Request) (reply, error) {
	var req struct {
		Attributes map[string]json.RawMessage `json:"attributes"`
		Version    string                     `json:"version"`
	}
	if err := decode(r, &req, false); err != nil {
		return reply{}, err
	}
	if len(req.Attributes) == 0 {
		return reply{}, badRequest(`request body: "attributes" is empty; want {"attributes": {"key": "value", ...}}`)
	}
	// A value may be a JSON string or a plain scalar, as in the file.
	values := map[string]string{}
	keys := make([]string, 0, len(req.Attributes))
	for k, raw := range req.Attributes {
		var s string
		switch {
		case json.Unmarshal(raw, &s) == nil:
		case len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9'):
			s = string(raw)
		case string(raw) == "true" || string(raw) == "false":
			s = string(raw)
		default:
			return reply{}, badRequest("request body: attributes[%q]: want a string, number or boolean, got %s", k, raw)
		}
		values[k] = s
		keys = append(keys, k)
	}
	slices.Sort(keys)
	group := r.PathValue("name")
	err := a.o.Server.Update(r.Context(), func(c *config.Config) error {
		i := slices.IndexFunc(c.TargetGroups, func(g config.TargetGroup) bool { return g.Name == group })
		if i < 0 {
			return noGroup(group)
		}
		g := &c.TargetGroups[i]
		if err := ifMatch(r, fmt.Sprintf("target group %q", group), etagOf(g)); err != nil {
			return err
		}
		var ps config.Problems
		for _, k := range keys {
			if err := g.SetAttribute(k, values[k]); err != nil {
				ps = append(ps, config.Problem{Path: fmt.Sprintf("target_groups[%d].attributes[%s]", i, strconv.Quote(k)), Msg: err.Error()})
			}
		}
		if len(ps) == 0 {
			return nil
		}
		// Every problem at once: those of the values that would set,
		// as Update would find them, with those that would not.
		var vps config.Problems
		if errors.As(c.ValidateExceptFiles(), &vps) {
			ps = append(ps, vps...)
		}
		slices.SortStableFunc(ps, func(a, b config.Problem) int { return strings.Compare(a.Path, b.Path) })
		return ps
	})
	if err != nil {
		return reply{}, err
	}
	a.o.Log.Info("admin: attributes modified", "target_group", group, "keys", strings.Join(keys, ","))
	return a.getAttributes(r)
}
