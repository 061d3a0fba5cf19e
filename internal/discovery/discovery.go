// Package discovery registers and drains target groups' targets as DNS names them.
package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// Options configure a Discovery.
type Options struct {
	Server *server.Server
	// Log gets a line for each target registered, drained, undrained or
	// deregistered, and for lookups that fail; nil: none.
	Log *slog.Logger
	// ResolvConf is the system's resolver config, for groups that name no
	// resolver; "": /etc/resolv.conf.
	ResolvConf string
	// OnLookup, when set, is called with a group's status after each of
	// its lookups has been applied (or has failed), from the group's
	// goroutine: a test waits on it.
	OnLookup func(Status)
}

// Discovery runs the DNS discovery of a server's target groups: one
// goroutine per group with discovery, which looks its name up on a
// schedule and changes the group's targets through Server.Update, so that
// a discovered target is a runtime registration like any (generations,
// reloads, runtime.json). The request path never waits on it.
type Discovery struct {
	o        Options
	mu       sync.Mutex
	watchers map[string]*watcher // by group
	stopped  bool
}

// New returns a Discovery that runs nothing until Apply.
func New(o Options) *Discovery {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	return &Discovery{o: o, watchers: map[string]*watcher{}}
}

// Apply makes the running discovery cfg's: a group whose discovery
// settings are new or changed gets a watcher that looks its name up at
// once; one whose settings did not change keeps its watcher; one with no
// discovery (or gone) has none. A discovered target stays registered when
// its group's discovery stops: it is then as if registered through the
// admin API.
func (d *Discovery) Apply(cfg *config.Config) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	want := map[string]config.DNSDiscovery{}
	for _, g := range cfg.TargetGroups {
		if g.Discovery != nil && g.Discovery.DNS != nil {
			want[g.Name] = *g.Discovery.DNS
		}
	}
	for name, w := range d.watchers {
		if c, ok := want[name]; !ok || c != w.cfg {
			w.stop()
			delete(d.watchers, name)
		}
	}
	for name, c := range want {
		if d.watchers[name] == nil {
			d.watchers[name] = startWatcher(d.o, name, c)
		}
	}
}

// Stop stops every watcher and waits for them. Apply does nothing after.
func (d *Discovery) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	for name, w := range d.watchers {
		w.stop()
		delete(d.watchers, name)
	}
}

// Status is a group's discovery as it runs.
type Status struct {
	Group string
	Name  string
	Type  string
	// Lookups and Failures count the lookups since the watcher started
	// (a change of the group's discovery settings starts a new one).
	Lookups, Failures uint64
	LastLookup        time.Time
	LastSuccess       time.Time // zero: none yet
	// Error is the last lookup's failure; "" when it succeeded. While it
	// fails, the group keeps the targets of the last answer.
	Error string
	// Targets are the last answer's targets (host:port), sorted.
	Targets []string
	// Next is when the name is looked up next.
	Next time.Time
}

// Status returns every group's discovery status, by group name.
func (d *Discovery) Status() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Status, 0, len(d.watchers))
	for _, w := range d.watchers {
		out = append(out, w.statusCopy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// watcher runs one group's discovery.
type watcher struct {
	group    string
	cfg      config.DNSDiscovery
	srv      *server.Server
	log      *slog.Logger
	res      *resolver
	onLookup func(Status)
	cancel   context.CancelFunc
	done     chan struct{}

	// Read by the watcher's goroutine only.
	answer        map[string]int // the last answer; nil before the first
	loggedErr     string
	loggedErrTime time.Time

	mu     sync.Mutex
	status Status
}

func startWatcher(o Options, group string, cfg config.DNSDiscovery) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{group: group, cfg: cfg, srv: o.Server, res: newResolver(cfg, o.ResolvConf), onLookup: o.OnLookup,
		log:    o.Log.With("target_group", group, "dns_name", cfg.Name, "dns_type", cfg.Type.String()),
		cancel: cancel, done: make(chan struct{}),
		status: Status{Group: group, Name: cfg.Name, Type: cfg.Type.String()}}
	// Subscribed before the goroutine starts, so that no drain's
	// completion is missed between the first lookup and the first wait.
	sub := o.Server.Subscribe(64)
	go w.run(ctx, sub)
	return w
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
}

func (w *watcher) statusCopy() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Targets = slices.Clone(s.Targets)
	return s
}

// run looks the name up now, then again when the answer's TTL or the
// refresh interval ends, whichever is sooner, never sooner than
// config.MinDNSRefresh after the last; a completed drain of one of the
// group's targets applies the last answer again, so that the target is
// deregistered at once. It ends with ctx, or when the server shuts down.
func (w *watcher) run(ctx context.Context, sub *server.Subscription) {
	defer close(w.done)
	defer sub.Close()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			wait := w.refresh(ctx)
			if ctx.Err() != nil {
				return
			}
			w.mu.Lock()
			w.status.Next = time.Now().Add(wait)
			w.mu.Unlock()
			if w.onLookup != nil {
				w.onLookup(w.statusCopy())
			}
			timer.Reset(wait)
		case e, ok := <-sub.C:
			if !ok {
				return // the server shut down
			}
			if e.Kind == server.DrainCompleted && e.Group == w.group && w.answer != nil {
				w.reconcile(ctx)
			}
		}
	}
}

// refresh looks the name up and applies the answer, and returns how long
// to wait for the next lookup.
func (w *watcher) refresh(ctx context.Context) time.Duration {
	a, err := w.res.lookup(ctx)
	if ctx.Err() != nil {
		return w.cfg.Refresh
	}
	now := time.Now()
	w.mu.Lock()
	w.status.Lookups++
	w.status.LastLookup = now
	if err != nil {
		w.status.Failures++
		w.status.Error = err.Error()
	} else {
		w.status.Error = ""
		w.status.LastSuccess = now
		w.status.Targets = sortedKeys(a.targets)
	}
	w.mu.Unlock()
	if err != nil {
		// The last answer stays: a resolver that fails never empties
		// the group. Logged when the failure changes, and once a minute
		// while it lasts.
		if msg := err.Error(); msg != w.loggedErr || now.Sub(w.loggedErrTime) >= time.Minute {
			w.log.Warn("DNS lookup failed; keeping the targets of the last answer", "err", msg)
			w.loggedErr, w.loggedErrTime = msg, now
		}
		return w.cfg.Refresh
	}
	if w.loggedErr != "" {
		w.log.Info("DNS lookup succeeded again", "targets", len(a.targets))
		w.loggedErr = ""
	}
	w.answer = a.targets
	w.reconcile(ctx)
	return max(min(w.cfg.Refresh, a.ttl), config.MinDNSRefresh)
}

// reconcile makes the group's discovered targets the last answer's,
// through one Update, when anything is to change.
func (w *watcher) reconcile(ctx context.Context) {
	sn := w.srv.Snapshot()
	g := sn.Config.TargetGroup(w.group)
	if g == nil {
		return // a reload removed the group; Apply stops this watcher
	}
	complete := map[string]time.Time{}
	for _, gs := range sn.Groups {
		if gs.Name != w.group {
			continue
		}
		for _, ts := range gs.Targets {
			if ts.Drain != nil && ts.Drain.Complete {
				complete[ts.ID] = ts.Drain.Since
			}
		}
	}
	dry := *g
	dry.Targets = slices.Clone(g.Targets)
	if len(w.plan(&dry, complete)) == 0 {
		return
	}
	var changes []change
	err := w.srv.Update(ctx, func(cfg *config.Config) error {
		g := cfg.TargetGroup(w.group)
		if g == nil {
			return fmt.Errorf("target group %q does not exist", w.group)
		}
		changes = w.plan(g, complete)
		return nil
	})
	if err != nil {
		w.log.Error("cannot apply the DNS answer", "err", err)
		return
	}
	for _, c := range changes {
		w.log.Info("DNS discovery: "+c.verb, "target", c.id)
	}
}

// change is one thing plan changed, for the log.
type change struct{ verb, id string }

// plan changes g's targets to follow the last answer, and returns what it
// changed:
//   - an address the answer names that g lacks is registered, marked
//     discovered (weight 1 for A and AAAA, the SRV weight for SRV);
//   - a discovered target the answer names is undrained if discovery had
//     drained it, and takes its SRV weight;
//   - a discovered target the answer does not name is drained
//     (keep_sessions, the discovery's idle window and deadline) and, once
//     its drain is complete (complete holds the start of each complete
//     drain), deregistered;
//   - a target discovery did not register (the file's, the admin API's)
//     is left as it is, named or not.
//
// It replaces Drain pointers rather than writing through them, so that a
// dry run on a copy of the targets changes nothing shared.
func (w *watcher) plan(g *config.TargetGroup, complete map[string]time.Time) []change {
	var out []change
	seen := map[string]bool{}
	kept := g.Targets[:0:0]
	for _, t := range g.Targets {
		seen[t.ID] = true
		weight, named := w.answer[t.ID]
		if !t.Discovered {
			kept = append(kept, t)
			continue
		}
		switch {
		case named:
			if t.Drain != nil && t.Drain.Discovery {
				t.Drain = nil
				out = append(out, change{"undrained a target its name resolves to again", t.ID})
			}
			if w.cfg.Type == config.DNSTypeSRV && t.Weight != weight {
				t.Weight = weight
				out = append(out, change{fmt.Sprintf("weight %d from the SRV record", weight), t.ID})
			}
		case t.Drain == nil:
			d := w.cfg.Drain()
			t.Drain = &d
			out = append(out, change{"draining a target its name no longer resolves to (keep_sessions)", t.ID})
		default:
			if since, ok := complete[t.ID]; ok && since.Equal(t.Drain.Since) {
				out = append(out, change{"deregistered a target whose drain completed", t.ID})
				continue
			}
		}
		kept = append(kept, t)
	}
	for _, id := range sortedKeys(w.answer) {
		if !seen[id] {
			kept = append(kept, config.Target{ID: id, Weight: w.answer[id], Discovered: true})
			out = append(out, change{"registered a target its name resolves to", id})
		}
	}
	g.Targets = kept
	return out
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
