package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// rebaseConfig is goConfig with the groups given, the listener forwarding
// to the first.
func rebaseConfig(groups ...TargetGroup) *Config {
	c := goConfig()
	c.TargetGroups = groups
	c.Listeners[0].DefaultAction.TargetGroup = groups[0].Name
	return c
}

func group(name string, targets ...Target) TargetGroup {
	g := DefaultTargetGroup()
	g.Name, g.Targets = name, targets
	return g
}

// checkRebase runs Rebase and checks that merged shares nothing with the
// inputs and that the inputs are left as they were.
func checkRebase(t *testing.T, old, running, new *Config) (*Config, []string) {
	t.Helper()
	inputs := []*Config{old.Clone(), running.Clone(), new.Clone()}
	merged, over := Rebase(old, running, new)
	for i, in := range []*Config{old, running, new} {
		if where := shared(reflect.ValueOf(merged), reflect.ValueOf(in), "Config"); len(where) > 0 {
			t.Errorf("merged shares memory with input %d at %v", i, where)
		}
		if !reflect.DeepEqual(in, inputs[i]) {
			t.Errorf("Rebase changed input %d", i)
		}
	}
	return merged, over
}

func TestRebaseTargets(t *testing.T) {
	const a, b, c, d = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"
	T := func(id string, w int) Target { return Target{ID: id, Weight: w} }
	D := func(id string, w int) Target { return Target{ID: id, Weight: w, Drain: &Drain{}} }
	const web = `target_groups[0] ("web"): target `
	for _, tc := range []struct {
		name                    string
		old, running, new, want []Target
		overridden              []string
	}{
		{"no runtime change",
			[]Target{T(a, 1), T(b, 1)}, []Target{T(a, 1), T(b, 1)}, []Target{T(a, 1), T(b, 2), T(c, 1)},
			[]Target{T(a, 1), T(b, 2), T(c, 1)}, nil},
		{"a runtime weight kept where the file did not touch the target",
			[]Target{T(a, 1), T(b, 1)}, []Target{T(a, 3), T(b, 1)}, []Target{T(a, 1), T(b, 2)},
			[]Target{T(a, 3), T(b, 2)}, nil},
		{"the file's new weight wins over the runtime's",
			[]Target{T(a, 1)}, []Target{T(a, 3)}, []Target{T(a, 2)},
			[]Target{T(a, 2)}, []string{web + a + ": weight 3 set at run time, the file now says 2"}},
		{"the file's new weight, the runtime's alike",
			[]Target{T(a, 1)}, []Target{T(a, 2)}, []Target{T(a, 2)},
			[]Target{T(a, 2)}, nil},
		{"a runtime-registered target kept, after the file's",
			[]Target{T(a, 1)}, []Target{T(c, 4), T(a, 1)}, []Target{T(a, 1), T(b, 1)},
			[]Target{T(a, 1), T(b, 1), T(c, 4)}, nil},
		{"a runtime-registered target the file does not list: kept",
			nil, []Target{T(a, 2)}, nil,
			[]Target{T(a, 2)}, nil},
		{"registered at run time and by the file, with another weight",
			nil, []Target{T(a, 3)}, []Target{T(a, 2)},
			[]Target{T(a, 2)}, []string{web + a + ": registered at run time with weight 3, the file now says 2"}},
		{"registered at run time and by the file alike: its drain kept",
			nil, []Target{D(a, 2)}, []Target{T(a, 2)},
			[]Target{D(a, 2)}, nil},
		{"a runtime-deregistered target stays deregistered",
			[]Target{T(a, 1), T(b, 1)}, []Target{T(a, 1)}, []Target{T(a, 1), T(b, 1), T(c, 1)},
			[]Target{T(a, 1), T(c, 1)}, nil},
		{"a runtime-deregistered target the file changed is back",
			[]Target{T(a, 1), T(b, 1)}, []Target{T(a, 1)}, []Target{T(a, 1), T(b, 5)},
			[]Target{T(a, 1), T(b, 5)}, []string{web + b + ": deregistered at run time, the file now lists it with weight 5"}},
		{"deregistered at run time and by the file",
			[]Target{T(a, 1), T(b, 1)}, []Target{T(a, 1)}, []Target{T(a, 1)},
			[]Target{T(a, 1)}, nil},
		{"a target the file removes goes, though its weight changed at run time",
			[]Target{T(a, 1), T(b, 1)}, []Target{T(a, 1), T(b, 3)}, []Target{T(a, 1)},
			[]Target{T(a, 1)}, []string{web + b + ": weight 3 set at run time, the file now removes it"}},
		{"a drained target the file removes goes",
			[]Target{T(a, 1), T(b, 1)}, []Target{T(a, 1), D(b, 7)}, []Target{T(a, 1)},
			[]Target{T(a, 1)}, []string{web + b + ": weight 7 set and drained at run time, the file now removes it"}},
		{"drain kept on a target the file does not touch",
			[]Target{T(a, 1), T(b, 1)}, []Target{D(a, 1), T(b, 1)}, []Target{T(a, 1), T(b, 1), T(c, 1)},
			[]Target{D(a, 1), T(b, 1), T(c, 1)}, nil},
		{"drain kept on a target whose weight the file changes",
			[]Target{T(a, 1)}, []Target{D(a, 1)}, []Target{T(a, 4)},
			[]Target{D(a, 4)}, nil},
		{"drain and weight at run time: the file's weight wins, the drain stays",
			[]Target{T(a, 1)}, []Target{D(a, 3)}, []Target{T(a, 4)},
			[]Target{D(a, 4)}, []string{web + a + ": weight 3 set at run time, the file now says 4"}},
		{"the order: the file's, then the runtime's own in its order",
			[]Target{T(a, 1)}, []Target{T(d, 1), T(a, 1), T(c, 1)}, []Target{T(b, 1), T(a, 1)},
			[]Target{T(b, 1), T(a, 1), T(d, 1), T(c, 1)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := rebaseConfig(group("web", tc.old...))
			running := rebaseConfig(group("web", tc.running...))
			new := rebaseConfig(group("web", tc.new...))
			merged, over := checkRebase(t, old, running, new)
			if got := merged.TargetGroups[0].Targets; !reflect.DeepEqual(got, tc.want) && (len(got) > 0 || len(tc.want) > 0) {
				t.Errorf("targets:\ngot  %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(over, tc.overridden) {
				t.Errorf("overridden:\ngot  %q\nwant %q", over, tc.overridden)
			}
			// Only the targets are rebased here.
			merged.TargetGroups[0].Targets = new.TargetGroups[0].Targets
			if !reflect.DeepEqual(merged, new) {
				t.Errorf("merged differs from newFile beyond its targets:\ngot  %+v\nwant %+v", merged, new)
			}
		})
	}
}

func TestRebaseAttributes(t *testing.T) {
	with := func(attrs map[string]string) *Config {
		g := group("web", Target{ID: "10.0.0.1:80", Weight: 1})
		for k, v := range attrs {
			if err := g.SetAttribute(k, v); err != nil {
				t.Fatalf("SetAttribute(%q, %q): %v", k, v, err)
			}
		}
		return rebaseConfig(g)
	}
	old := with(map[string]string{"stickiness.type": "header", "stickiness.header.name": "X-S"})
	running := with(map[string]string{
		"stickiness.type": "header", "stickiness.header.name": "X-S",
		"stickiness.enabled":                   "true",                       // at run time only: kept
		"deregistration_delay.timeout_seconds": "0.5",                        // at run time only, fractional: kept exactly
		"load_balancing.algorithm.type":        "least_outstanding_requests", // and in the file: the file's
		"stickiness.header.duration_seconds":   "3600",                       // and in the file, alike: not listed
		"stickiness.source_ip.trusted_proxies": "10.0.0.0/8",                 // at run time only: kept
	})
	new := with(map[string]string{
		"stickiness.type": "header", "stickiness.header.name": "X-S",
		"load_balancing.algorithm.type":         "weighted_random",
		"stickiness.header.duration_seconds":    "3600",
		"stickiness.lb_cookie.duration_seconds": "60", // in the file only: the file's
	})
	merged, over := checkRebase(t, old, running, new)
	want := new.TargetGroups[0]
	for k, v := range map[string]string{
		"stickiness.enabled":                   "true",
		"deregistration_delay.timeout_seconds": "0.5",
		"stickiness.source_ip.trusted_proxies": "10.0.0.0/8",
	} {
		if err := want.SetAttribute(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if got := merged.TargetGroups[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("merged group:\ngot  %+v\nwant %+v", got, want)
	}
	wantOver := []string{`target_groups[0] ("web"): attribute load_balancing.algorithm.type: least_outstanding_requests set at run time, the file now says weighted_random`}
	if !reflect.DeepEqual(over, wantOver) {
		t.Errorf("overridden:\ngot  %q\nwant %q", over, wantOver)
	}

	// A value no file can hold stays at run time's side.
	running.TargetGroups[0].Algorithm = Algorithm(9)
	new.TargetGroups[0].Algorithm = old.TargetGroups[0].Algorithm
	merged, over = Rebase(old, running, new)
	if merged.TargetGroups[0].Algorithm != old.TargetGroups[0].Algorithm || len(over) != 1 {
		t.Errorf("an invalid runtime value: got algorithm %v, overridden %q", merged.TargetGroups[0].Algorithm, over)
	}
}

// TestRebaseGroups checks what runtime changes do not own: which groups
// exist, and everything but targets and attributes.
func TestRebaseGroups(t *testing.T) {
	target := Target{ID: "10.0.0.1:80", Weight: 1}
	old := rebaseConfig(group("web", target), group("gone", target))
	running := old.Clone()
	running.TargetGroups[0].Targets[0].Weight = 5 // kept
	running.TargetGroups[1].Targets[0].Weight = 5 // its group goes
	running.Listeners[0].IdleTimeout = time.Second
	running.TargetGroups[0].HealthCheck.Path = "/runtime"
	running.TargetGroups[0].ProtocolVersion = HTTP2
	running.StateDir = "elsewhere"
	new := rebaseConfig(group("added", target), group("web", target))
	new.Listeners[0].IdleTimeout = 2 * time.Second

	merged, over := checkRebase(t, old, running, new)
	want := new.Clone()
	want.TargetGroups[1].Targets[0].Weight = 5
	if !reflect.DeepEqual(merged, want) {
		t.Errorf("merged:\ngot  %+v\nwant %+v", merged, want)
	}
	if len(over) != 0 {
		t.Errorf("overridden: got %q, want none", over)
	}
}

func TestRebaseNoRuntimeChange(t *testing.T) {
	old, _ := parseEverything(t)
	new := old.Clone()
	new.TargetGroups[0].Targets = append(new.TargetGroups[0].Targets, Target{ID: "10.0.0.9:80", Weight: 9})
	new.TargetGroups[1].Stickiness.Enabled = true
	merged, over := checkRebase(t, old, old.Clone(), new)
	if !reflect.DeepEqual(merged, new) || len(over) != 0 {
		t.Errorf("with no runtime change: got %+v, %q; want newFile and nothing overridden", merged, over)
	}
	for _, c := range [][2]*Config{{nil, old}, {old, nil}} {
		if merged, over := Rebase(c[0], c[1], new); !reflect.DeepEqual(merged, new) || over != nil {
			t.Errorf("Rebase with a nil input: got %+v, %q; want newFile", merged, over)
		}
	}
}

// TestCheckRuntimeChange: a runtime change may change targets and
// attributes; what else it touches is the file's, each at its path.
func TestCheckRuntimeChange(t *testing.T) {
	running := mustParse(t, example, "")
	for _, c := range []struct {
		name   string
		change func(*Config)
		paths  []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"targets, weights, drain", func(c *Config) {
			g := &c.TargetGroups[0]
			g.Targets[0].Weight, g.Targets[1].Drain = 9, &Drain{}
			g.Targets = append(g.Targets, Target{ID: "10.0.0.9:80", Weight: 1})
		}, nil},
		{"attributes", func(c *Config) {
			g := &c.TargetGroups[0]
			g.SetAttribute("load_balancing.algorithm.type", "least_outstanding_requests")
			g.SetAttribute("stickiness.lb_cookie.duration_seconds", "60")
		}, nil},
		{"a listener", func(c *Config) { c.Listeners[0].IdleTimeout = time.Minute * 2 }, []string{"listeners[0]"}},
		{"a listener more", func(c *Config) { c.Listeners = append(c.Listeners, c.Listeners[0]) }, []string{"listeners"}},
		{"a group more", func(c *Config) { c.TargetGroups = append(c.TargetGroups, c.TargetGroups[0]) }, []string{"target_groups"}},
		{"a group's name, protocol and checks", func(c *Config) {
			g := &c.TargetGroups[0]
			g.Name, g.ProtocolVersion, g.HealthCheck.Path = "api", HTTP2, "/up"
		}, []string{"target_groups[0].name", "target_groups[0].protocol_version", "target_groups[0].health_check"}},
		{"state and keys", func(c *Config) {
			c.StateDir = "/elsewhere"
			c.CookieKeys = []CookieKey{{ID: 1, Secret: make([]byte, 32)}}
		}, []string{"state_dir", "cookie_keys"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			next := running.Clone()
			c.change(next)
			err := CheckRuntimeChange(running, next)
			var ps Problems
			errors.As(err, &ps)
			var got []string
			for _, p := range ps {
				got = append(got, p.Path)
				if !strings.Contains(p.Msg, "set by the config file") {
					t.Errorf("%s: %q", p.Path, p.Msg)
				}
			}
			if !slices.Equal(got, c.paths) {
				t.Errorf("got problems at %v, want %v (%v)", got, c.paths, err)
			}
		})
	}
}
