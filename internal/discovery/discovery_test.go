package discovery

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// TestARecordsAppearDrainAndComeBack: targets appear as A records are
// added; one that disappears drains with its sessions (keep_sessions),
// comes back undrained while draining, and once its drain completes is
// deregistered, its sessions moving; back again, it is a new registration
// whose old cookies are not honoured.
func TestARecordsAppearDrainAndComeBack(t *testing.T) {
	ts := targetsOn(t, "127.0.0.2", "127.0.0.3")
	a, b := ts[0].addr, ts[1].addr
	port := strings.Split(a, ":")[1]
	d := startDNS(t)
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2"})
	// The idle window (3 s) is longer than a refresh (1 s) and its jitter,
	// so that b comes back while its drain still waits; with 1 s each, the
	// drain could complete first (seen once in CI).
	l := startLB(t, latchYAML(t.TempDir(), nil, fmt.Sprintf("name: app.test, port: %s, refresh_seconds: 1, resolver: %q, drain_idle_seconds: 3", port, d.addr)))

	l.waitTarget(t, server.TargetRegistered, a)
	l.waitHealthy(t, a)
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2", "app.test. 1 IN A 127.0.0.3"})
	reg := l.waitTarget(t, server.TargetRegistered, b)
	l.waitHealthy(t, b)
	gen := reg.Generation

	c := stuckTo(t, l.url, b)
	oldCookie := c.cookie

	// b leaves the answer: drained, its session stays; new ones go to a.
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2"})
	l.waitEvent(t, "drain of "+b, func(e server.Event) bool { return e.Kind == server.TargetDrain && e.Target == b && e.Drained })
	if r := c.get(t, l.url); r.backend != b || r.moved != "" {
		t.Fatalf("a session on a draining target: served by %s (moved %q), want %s", r.backend, r.moved, b)
	}
	for range 4 {
		if r := (&client{}).get(t, l.url); r.backend != a {
			t.Fatalf("a new session went to %s while %s drains, want %s", r.backend, b, a)
		}
	}
	// b back while draining: undrained, same registration.
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2", "app.test. 1 IN A 127.0.0.3"})
	e := l.waitEvent(t, "undrain of "+b, func(e server.Event) bool { return e.Kind == server.TargetDrain && e.Target == b && !e.Drained })
	if e.Generation != gen {
		t.Errorf("undrained %s has generation %d, want %d (the same registration)", b, e.Generation, gen)
	}
	if r := c.get(t, l.url); r.backend != b || r.moved != "" {
		t.Fatalf("a session on an undrained target: served by %s (moved %q), want %s", r.backend, r.moved, b)
	}

	// b leaves again, and its session stays idle: the drain completes
	// after the idle window and b is deregistered.
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2"})
	l.waitEvent(t, "drain of "+b, func(e server.Event) bool { return e.Kind == server.TargetDrain && e.Target == b && e.Drained })
	start := time.Now()
	l.waitTarget(t, server.DrainCompleted, b)
	l.waitTarget(t, server.TargetDeregistered, b)
	if waited := time.Since(start); waited < 2900*time.Millisecond {
		t.Errorf("deregistered %v after the drain, want the idle window (3 s) first", waited)
	}
	if ts := l.targetStatus(b); ts != nil && ts.Health.State.String() != "draining" && ts.Health.State.String() != "unused" {
		t.Errorf("after deregistration %s is %v", b, ts.Health.State)
	}
	if r := c.get(t, l.url); r.backend != a || r.moved != b {
		t.Errorf("a session whose target was deregistered: served by %s (moved %q), want %s moved from %s", r.backend, r.moved, a, b)
	}

	// b back for good: a new registration, which an old cookie does not
	// reach.
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2", "app.test. 1 IN A 127.0.0.3"})
	reg = l.waitTarget(t, server.TargetRegistered, b)
	if reg.Generation == gen || reg.Generation == 0 {
		t.Fatalf("re-registered %s has generation %d, old %d: want a new one", b, reg.Generation, gen)
	}
	old := &client{cookie: oldCookie}
	if r := old.get(t, l.url); r.moved != b {
		t.Errorf("an old cookie for %s after it came back: served by %s with moved %q, want moved %q", b, r.backend, r.moved, b)
	}
	if !strings.Contains(l.logs.String(), "DNS discovery: deregistered a target whose drain completed") {
		t.Errorf("no log line for the deregistration")
	}
}

// TestSRVWeightsAndPriorities: SRV weights become target weights, scaled
// into 1-1000 when they do not fit; only the lowest priority is used; a
// target host without additional records is asked for.
func TestSRVWeightsAndPriorities(t *testing.T) {
	ts := targetsOn(t, "127.0.0.1")
	ts = append(ts, targetsOn(t, "127.0.0.1")...)
	ts = append(ts, targetsOn(t, "127.0.0.1")...)
	p := func(i int) string { return strings.Split(ts[i].addr, ":")[1] }
	d := startDNS(t)
	name := "_http._tcp.app.test"
	d.set(t, "one.test", dns.TypeA, []string{"one.test. 5 IN A 127.0.0.1"})
	d.set(t, "two.test", dns.TypeA, []string{"two.test. 5 IN A 127.0.0.1"})
	d.set(t, "three.test", dns.TypeA, []string{"three.test. 5 IN A 127.0.0.1"})
	d.set(t, name, dns.TypeSRV, []string{
		name + ". 5 IN SRV 10 10 " + p(0) + " one.test.",
		name + ". 5 IN SRV 10 30 " + p(1) + " two.test.",
		name + ". 5 IN SRV 20 50 " + p(2) + " three.test.", // a backup: not used while priority 10 has records
	}, "one.test. 5 IN A 127.0.0.1") // glue for one; two is asked for
	l := startLB(t, latchYAML(t.TempDir(), nil, fmt.Sprintf("name: %s, type: SRV, refresh_seconds: 1, resolver: %q, drain_idle_seconds: 1", name, d.addr)))

	l.waitLookup(t, "with two targets", func(s Status) bool { return len(s.Targets) == 2 })
	weights := func() map[string]int {
		out := map[string]int{}
		for _, tg := range l.srv.Snapshot().Config.TargetGroup("web").Targets {
			if tg.Drain == nil {
				out[tg.ID] = tg.Weight
			}
		}
		return out
	}
	if got, want := weights(), map[string]int{ts[0].addr: 10, ts[1].addr: 30}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("weights %v, want %v", got, want)
	}

	d.set(t, name, dns.TypeSRV, []string{
		name + ". 5 IN SRV 10 10 " + p(0) + " one.test.",
		name + ". 5 IN SRV 10 60000 " + p(1) + " two.test.",
		name + ". 5 IN SRV 20 50 " + p(2) + " three.test.",
	})
	l.waitEvent(t, "weight of "+ts[1].addr, func(e server.Event) bool { return e.Kind == server.TargetWeight && e.Target == ts[1].addr })
	l.waitEvent(t, "the change applied", func(e server.Event) bool { return e.Kind == server.ConfigApplied })
	if got, want := weights(), map[string]int{ts[0].addr: 1, ts[1].addr: 1000}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("weights after 60000 and 10: %v, want %v (scaled by 1000/60000, at least 1)", got, want)
	}

	// Priority 10 gone: the backup is used, the others drain.
	d.set(t, name, dns.TypeSRV, []string{name + ". 5 IN SRV 20 50 " + p(2) + " three.test."})
	l.waitTarget(t, server.TargetRegistered, ts[2].addr)
	left := map[string]bool{ts[0].addr: true, ts[1].addr: true}
	l.waitEvent(t, "both drains completed", func(e server.Event) bool {
		if e.Kind == server.DrainCompleted {
			delete(left, e.Target)
		}
		return len(left) == 0
	})
	if got, want := weights(), map[string]int{ts[2].addr: 50}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("weights with priority 20 alone: %v, want %v", got, want)
	}
}

// TestFailingResolverKeepsTheLastSet: SERVFAIL, then a resolver that is
// gone, keep the targets of the last answer and are reported; NXDOMAIN is
// an answer, and drains.
func TestFailingResolverKeepsTheLastSet(t *testing.T) {
	ts := targetsOn(t, "127.0.0.2")
	port := strings.Split(ts[0].addr, ":")[1]
	d := startDNS(t)
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2"})
	l := startLB(t, latchYAML(t.TempDir(), nil, fmt.Sprintf("name: app.test, port: %s, refresh_seconds: 1, resolver: %q, drain_idle_seconds: 1", port, d.addr)))
	l.waitTarget(t, server.TargetRegistered, ts[0].addr)

	d.setServfail(true)
	s := l.waitLookup(t, "that fails", func(s Status) bool { return s.Error != "" })
	if !strings.Contains(s.Error, "SERVFAIL") || s.Failures == 0 || s.LastSuccess.IsZero() || len(s.Targets) != 1 {
		t.Errorf("status after SERVFAIL: %+v, want the error named, a failure counted, the last answer's target", s)
	}
	if got := l.disc.Status(); len(got) != 1 || got[0].Error != s.Error {
		t.Errorf("Status() = %+v, want the failure", got)
	}
	// Once more, so that the failure has been acted on twice.
	l.waitLookup(t, "that fails again", func(s Status) bool { return s.Error != "" })
	if st := l.targetStatus(ts[0].addr); st == nil || st.Drained {
		t.Fatalf("after SERVFAIL: %+v, want the target registered and not drained", st)
	}
	if !strings.Contains(l.logs.String(), "DNS lookup failed; keeping the targets of the last answer") {
		t.Errorf("no log line for the failure:\n%s", l.logs.String())
	}

	d.stop()
	s = l.waitLookup(t, "to a closed server", func(s Status) bool { return s.Error != "" && !strings.Contains(s.Error, "SERVFAIL") })
	if st := l.targetStatus(ts[0].addr); st == nil || st.Drained {
		t.Fatalf("with the resolver gone (%s): %+v, want the target registered and not drained", s.Error, st)
	}
	if r := (&client{}).get(t, l.url); r.backend != ts[0].addr {
		t.Errorf("with the resolver gone: served by %s, want %s", r.backend, ts[0].addr)
	}
}

// TestNXDOMAINIsAnAnswer: a name that no longer exists drains its
// targets: it is the DNS's answer, not a failure.
func TestNXDOMAINIsAnAnswer(t *testing.T) {
	ts := targetsOn(t, "127.0.0.2")
	port := strings.Split(ts[0].addr, ":")[1]
	d := startDNS(t)
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2"})
	l := startLB(t, latchYAML(t.TempDir(), nil, fmt.Sprintf("name: app.test, port: %s, refresh_seconds: 1, resolver: %q", port, d.addr)))
	l.waitTarget(t, server.TargetRegistered, ts[0].addr)
	d.set(t, "app.test", dns.TypeA, nil)
	l.waitEvent(t, "drain", func(e server.Event) bool { return e.Kind == server.TargetDrain && e.Drained })
	if s := l.disc.Status()[0]; s.Error != "" || len(s.Targets) != 0 {
		t.Errorf("status after NXDOMAIN: %+v, want a success with no target", s)
	}
}

// TestTTLHonoured: a record with a 1 s TTL is looked up again within
// about a second though refresh_seconds is 30; a TTL of 0 never more
// often than once a second.
func TestTTLHonoured(t *testing.T) {
	for _, c := range []struct {
		ttl      int
		min, max time.Duration
	}{{1, 900 * time.Millisecond, 2500 * time.Millisecond}, {0, 900 * time.Millisecond, 2500 * time.Millisecond}} {
		t.Run(fmt.Sprintf("ttl %d", c.ttl), func(t *testing.T) {
			d := startDNS(t)
			d.set(t, "app.test", dns.TypeA, []string{fmt.Sprintf("app.test. %d IN A 127.0.0.2", c.ttl)})
			startLB(t, latchYAML(t.TempDir(), nil, fmt.Sprintf("name: app.test, port: 80, refresh_seconds: 30, resolver: %q", d.addr)))
			var at []time.Time
			timeout := time.After(10 * time.Second)
			for len(at) < 3 {
				select {
				case q := <-d.queries:
					at = append(at, q.at)
				case <-timeout:
					t.Fatalf("%d queries within 10 s, want 3", len(at))
				}
			}
			for i := 1; i < len(at); i++ {
				if gap := at[i].Sub(at[i-1]); gap < c.min || gap > c.max {
					t.Errorf("query %d came %v after the one before, want %v-%v", i, gap, c.min, c.max)
				}
			}
		})
	}
}

// TestDiscoveryLeavesOthersTargets: a target the file lists, or the admin
// API registered, is never drained or deregistered by discovery, named or
// not; a reload of the file keeps the discovered targets; discovery
// settings that change restart the lookups.
func TestDiscoveryLeavesOthersTargets(t *testing.T) {
	ts := targetsOn(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	port := strings.Split(ts[0].addr, ":")[1]
	d := startDNS(t)
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2", "app.test. 1 IN A 127.0.0.3"})
	dir := t.TempDir()
	settings := fmt.Sprintf("name: app.test, port: %s, refresh_seconds: 1, resolver: %q", port, d.addr)
	yaml := latchYAML(dir, []string{"{id: \"" + ts[2].addr + "\"}"}, settings)
	l := startLB(t, yaml)
	l.waitLookup(t, "with two targets", func(s Status) bool { return len(s.Targets) == 2 })
	// The admin API's registration of an address DNS names too.
	l.waitTarget(t, server.TargetRegistered, ts[1].addr)

	// 127.0.0.3 registered by discovery; make it the API's: deregister
	// and register it by hand (as the admin API does).
	err := l.srv.Update(context.Background(), func(cfg *config.Config) error {
		g := cfg.TargetGroup("web")
		for i := range g.Targets {
			if g.Targets[i].ID == ts[1].addr {
				g.Targets[i].Discovered = false
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// DNS now names only 127.0.0.4 (the file's target) and .2.
	d.set(t, "app.test", dns.TypeA, []string{"app.test. 1 IN A 127.0.0.2", "app.test. 1 IN A 127.0.0.4"})
	l.waitLookup(t, "without .3", func(s Status) bool { return len(s.Targets) == 2 && s.Targets[1] == ts[2].addr })
	l.waitLookup(t, "once more", func(Status) bool { return true })
	for _, id := range []string{ts[1].addr, ts[2].addr} {
		if st := l.targetStatus(id); st == nil || st.Drained {
			t.Errorf("%s, not discovery's: %+v, want registered and not drained", id, st)
		}
	}
	if tg := l.srv.Snapshot().Config.TargetGroup("web").Target(ts[2].addr); tg == nil || tg.Discovered {
		t.Errorf("the file's target: %+v, want it the file's", tg)
	}

	// A reload of the same file keeps the discovered target.
	cfg, err := config.Parse([]byte(yaml), "latch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if tg := l.srv.Snapshot().Config.TargetGroup("web").Target(ts[0].addr); tg == nil || !tg.Discovered {
		t.Errorf("after a reload: %+v, want the discovered target kept", tg)
	}

	// New settings (a longer refresh): a new lookup at once.
	for len(d.queries) > 0 {
		<-d.queries
	}
	cfg, err = config.Parse([]byte(strings.Replace(yaml, "refresh_seconds: 1", "refresh_seconds: 2", 1)), "latch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	l.disc.Apply(cfg)
	s := l.waitLookup(t, "after new settings", func(s Status) bool { return s.Lookups == 1 })
	if s.Error != "" {
		t.Errorf("lookup after new settings: %s", s.Error)
	}
}

func TestWeight(t *testing.T) {
	for _, c := range []struct {
		w    int
		all  []int
		want int
	}{
		{0, []int{0, 0}, 1},
		{10, []int{10, 30}, 10},
		{1000, []int{1000, 5}, 1000},
		{0, []int{0, 10}, 1},
		{65535, []int{65535, 32768, 1}, 1000},
		{32768, []int{65535, 32768, 1}, 500},
		{1, []int{65535, 32768, 1}, 1},
	} {
		all := map[string]int{}
		for i, w := range c.all {
			all[fmt.Sprint(i)] = w
		}
		if got := Weight(c.w, all); got != c.want {
			t.Errorf("Weight(%d, %v) = %d, want %d", c.w, c.all, got, c.want)
		}
	}
}
