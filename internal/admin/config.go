package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// Listener is a listener in the file's terms, with the address it is
// bound to.
type Listener struct {
	Name          string            `json:"name"`
	Address       string            `json:"address"`
	BoundAddress  string            `json:"bound_address"` // the port chosen for port 0
	Protocol      string            `json:"protocol"`
	SSLPolicy     string            `json:"ssl_policy,omitempty"`
	Certificates  []Certificate     `json:"certificates,omitempty"`
	Attributes    map[string]string `json:"attributes"`
	DefaultAction Action            `json:"default_action"`
	Rules         []Rule            `json:"rules"`
}

// Certificate names an HTTPS listener's certificate files.
type Certificate struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// Rule is a listener rule in the file's terms.
type Rule struct {
	Priority   int         `json:"priority"`
	Conditions []Condition `json:"conditions"`
	Action     Action      `json:"action"`
}

// Condition is one of a rule's conditions; Field is its key in the file
// (host_header, path_pattern, http_header, http_request_method,
// query_string, source_ip).
type Condition struct {
	Field  string      `json:"field"`
	Name   string      `json:"name,omitempty"` // http_header's
	Values []string    `json:"values,omitempty"`
	Pairs  []QueryPair `json:"pairs,omitempty"`
}

// QueryPair is one of a query_string condition's key/value patterns.
type QueryPair struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value"`
}

// Action is a listener's or rule's action in the file's terms.
type Action struct {
	Type          string         `json:"type"`
	Forward       *Forward       `json:"forward,omitempty"`
	Redirect      *Redirect      `json:"redirect,omitempty"`
	FixedResponse *FixedResponse `json:"fixed_response,omitempty"`
}

// Forward is a forward action's settings.
type Forward struct {
	TargetGroup  string          `json:"target_group,omitempty"`
	TargetGroups []WeightedGroup `json:"target_groups,omitempty"`
	// StickinessSeconds is group stickiness's duration; 0: off.
	StickinessSeconds float64 `json:"stickiness_duration_seconds,omitempty"`
}

// WeightedGroup is one group of a weighted forward.
type WeightedGroup struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
}

// Redirect is a redirect action's settings.
type Redirect struct {
	Protocol   string `json:"protocol"`
	Host       string `json:"host"`
	Port       string `json:"port"`
	Path       string `json:"path"`
	Query      string `json:"query"`
	StatusCode string `json:"status_code"`
}

// FixedResponse is a fixed-response action's settings.
type FixedResponse struct {
	StatusCode  int    `json:"status_code"`
	ContentType string `json:"content_type"`
	MessageBody string `json:"message_body"`
}

func actionView(a config.Action) Action {
	v := Action{Type: a.Type.String()}
	switch a.Type {
	case config.ActionForward:
		f := &Forward{TargetGroup: a.TargetGroup}
		if a.TargetGroups != nil {
			f.TargetGroup = ""
			for _, g := range a.TargetGroups {
				f.TargetGroups = append(f.TargetGroups, WeightedGroup{Name: g.Name, Weight: g.Weight})
			}
		}
		if a.GroupStickiness.Enabled {
			f.StickinessSeconds = a.GroupStickiness.Duration.Seconds()
		}
		v.Forward = f
	case config.ActionRedirect:
		if r := a.Redirect; r != nil {
			code := "HTTP_302"
			if r.StatusCode == 301 {
				code = "HTTP_301"
			}
			v.Redirect = &Redirect{Protocol: r.Protocol, Host: r.Host, Port: r.Port, Path: r.Path, Query: r.Query, StatusCode: code}
		}
	case config.ActionFixedResponse:
		if fr := a.FixedResponse; fr != nil {
			v.FixedResponse = &FixedResponse{StatusCode: fr.StatusCode, ContentType: fr.ContentType, MessageBody: fr.MessageBody}
		}
	}
	return v
}

func listenerView(l *config.Listener, bound string) Listener {
	v := Listener{Name: l.Name, Address: l.Address, BoundAddress: bound, Protocol: l.Protocol.String(),
		SSLPolicy: l.SSLPolicy, Attributes: l.Attributes(), DefaultAction: actionView(l.DefaultAction), Rules: []Rule{}}
	for _, c := range l.Certificates {
		v.Certificates = append(v.Certificates, Certificate{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	for _, r := range l.Rules {
		rv := Rule{Priority: r.Priority, Action: actionView(r.Action)}
		for _, c := range r.Conditions {
			cv := Condition{Field: c.Field.String(), Name: c.Name, Values: c.Values}
			for _, p := range c.Pairs {
				cv.Pairs = append(cv.Pairs, QueryPair{Key: p.Key, Value: p.Value})
			}
			for _, p := range c.CIDRs {
				cv.Values = append(cv.Values, p.String())
			}
			rv.Conditions = append(rv.Conditions, cv)
		}
		v.Rules = append(v.Rules, rv)
	}
	return v
}

func boundAddr(sn *server.Snapshot, name string) string {
	for _, l := range sn.Listeners {
		if l.Name == name {
			return l.Addr
		}
	}
	return ""
}

// ListenerList is GET /api/v1/listeners.
type ListenerList struct {
	Listeners []Listener `json:"listeners"`
	Version   string     `json:"version"`
}

func (a *Admin) listListeners(r *http.Request) (reply, error) {
	sn := a.o.Server.Snapshot()
	out := ListenerList{Listeners: []Listener{}, Version: configETag(sn.Version)}
	if sn.Config != nil {
		for i := range sn.Config.Listeners {
			l := &sn.Config.Listeners[i]
			out.Listeners = append(out.Listeners, listenerView(l, boundAddr(sn, l.Name)))
		}
	}
	return reply{etag: out.Version, body: out}, nil
}

func (a *Admin) getListener(r *http.Request) (reply, error) {
	sn := a.o.Server.Snapshot()
	name := r.PathValue("name")
	if sn.Config != nil {
		if l := sn.Config.Listener(name); l != nil {
			return reply{etag: configETag(sn.Version), body: listenerView(l, boundAddr(sn, name))}, nil
		}
	}
	return reply{}, notFound("listener %q does not exist", name)
}

// Config is GET /api/v1/config: the running config (the file's, with the
// runtime changes made since) in the file's terms. Cookie keys show their
// ids only; the admin token is never shown.
type Config struct {
	Version      uint64        `json:"version"`
	Listeners    []Listener    `json:"listeners"`
	TargetGroups []TargetGroup `json:"target_groups"`
	StateDir     string        `json:"state_dir"`
	CookieKeys   []CookieKey   `json:"cookie_keys,omitempty"`
	AccessLog    *AccessLog    `json:"access_log"` // null: none
	Admin        AdminConfig   `json:"admin"`
}

// AccessLog is the access_log section.
type AccessLog struct {
	Path   string `json:"path"`
	Format string `json:"format"`
}

// CookieKey is a cookie key without its secret.
type CookieKey struct {
	ID uint32 `json:"id"`
}

// AdminConfig is the admin section.
type AdminConfig struct {
	Enabled   bool   `json:"enabled"`
	Address   string `json:"address"`
	TokenFile string `json:"token_file,omitempty"`
}

func (a *Admin) getConfig(r *http.Request) (reply, error) {
	sn := a.o.Server.Snapshot()
	c := sn.Config
	if c == nil {
		return reply{}, errors.New("no config is running yet")
	}
	out := Config{Version: sn.Version, Listeners: []Listener{}, TargetGroups: []TargetGroup{}, StateDir: c.StateDir,
		Admin: AdminConfig{Enabled: c.Admin.Enabled, Address: c.Admin.Address, TokenFile: c.Admin.TokenFile}}
	for i := range c.Listeners {
		out.Listeners = append(out.Listeners, listenerView(&c.Listeners[i], boundAddr(sn, c.Listeners[i].Name)))
	}
	for i := range c.TargetGroups {
		gc := &c.TargetGroups[i]
		out.TargetGroups = append(out.TargetGroups, groupView(gc, sn.Group(gc.Name)))
	}
	for _, k := range c.CookieKeys {
		out.CookieKeys = append(out.CookieKeys, CookieKey{ID: k.ID})
	}
	if al := c.AccessLog; al != nil {
		out.AccessLog = &AccessLog{Path: al.Path, Format: al.Format.String()}
	}
	return reply{etag: configETag(sn.Version), body: out}, nil
}

// Diff is GET /api/v1/diff: the runtime changes in effect, group by group
// (only the groups with some), as the running config differs from the
// file's as last loaded.
type Diff struct {
	Version      uint64      `json:"version"`
	TargetGroups []GroupDiff `json:"target_groups"`
}

// GroupDiff is one group's runtime changes.
type GroupDiff struct {
	Name         string          `json:"name"`
	Registered   []TargetWeight  `json:"registered,omitempty"`   // not in the file
	Deregistered []TargetWeight  `json:"deregistered,omitempty"` // in the file, with its weight there
	Reweighted   []Reweighted    `json:"reweighted,omitempty"`
	Drained      []Drained       `json:"drained,omitempty"`
	Attributes   []AttributeDiff `json:"attributes,omitempty"`
}

// TargetWeight is a target and a weight.
type TargetWeight struct {
	ID     string `json:"id"`
	Weight int    `json:"weight"`
}

// Reweighted is a target whose weight was changed at run time.
type Reweighted struct {
	ID         string `json:"id"`
	FileWeight int    `json:"file_weight"`
	Weight     int    `json:"weight"`
}

// Drained is a target drained at run time.
type Drained struct {
	ID   string `json:"id"`
	Mode string `json:"mode"`
}

// AttributeDiff is an attribute set at run time.
type AttributeDiff struct {
	Key   string `json:"key"`
	File  string `json:"file"`
	Value string `json:"value"`
}

func (a *Admin) diff(r *http.Request) (reply, error) {
	file, running, version := a.o.Server.Configs()
	if running == nil {
		return reply{}, errors.New("no config is running yet")
	}
	out := Diff{Version: version, TargetGroups: []GroupDiff{}}
	for i := range running.TargetGroups {
		rg := &running.TargetGroups[i]
		fg := file.TargetGroup(rg.Name)
		if fg == nil {
			continue // cannot be: which groups exist is the file's
		}
		d := diffGroup(fg, rg)
		if d.Registered != nil || d.Deregistered != nil || d.Reweighted != nil || d.Drained != nil || d.Attributes != nil {
			out.TargetGroups = append(out.TargetGroups, d)
		}
	}
	return reply{etag: configETag(version), body: out}, nil
}

func diffGroup(fg, rg *config.TargetGroup) GroupDiff {
	d := GroupDiff{Name: rg.Name}
	for _, t := range rg.Targets {
		ft := fg.Target(t.ID)
		switch {
		case ft == nil:
			d.Registered = append(d.Registered, TargetWeight{t.ID, t.Weight})
		case ft.Weight != t.Weight:
			d.Reweighted = append(d.Reweighted, Reweighted{t.ID, ft.Weight, t.Weight})
		}
		if t.Drain != nil {
			d.Drained = append(d.Drained, Drained{t.ID, t.Drain.Mode.String()})
		}
	}
	for _, t := range fg.Targets {
		if rg.Target(t.ID) == nil {
			d.Deregistered = append(d.Deregistered, TargetWeight{t.ID, t.Weight})
		}
	}
	fa, ra := fg.Attributes(), rg.Attributes()
	keys := make([]string, 0, len(ra))
	for k := range ra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if fa[k] != ra[k] {
			d.Attributes = append(d.Attributes, AttributeDiff{Key: k, File: fa[k], Value: ra[k]})
		}
	}
	return d
}

// ReloadResult is POST /api/v1/reload's answer.
type ReloadResult struct {
	Version uint64 `json:"version"` // the running config's, after the reload
}

func (a *Admin) reload(r *http.Request) (reply, error) {
	if a.o.Reload == nil {
		return reply{}, &apiError{status: http.StatusNotImplemented, msg: "this latch has no config file to reload"}
	}
	if err := a.o.Reload(r.Context()); err != nil {
		e := &apiError{status: http.StatusUnprocessableEntity, msg: "reload refused; the running config stays: " + err.Error()}
		var ps config.Problems
		if errors.As(err, &ps) {
			e.msg = fmt.Sprintf("reload refused; the running config stays: %d problems", len(ps))
			e.problems = ps
		}
		return reply{}, e
	}
	sn := a.o.Server.Snapshot()
	return reply{etag: configETag(sn.Version), body: ReloadResult{Version: sn.Version}}, nil
}
