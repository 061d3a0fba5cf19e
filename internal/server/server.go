// Package server owns a running latch: its listeners, target groups, event
// loops and state store, and the one path by which every change (a file
// reload, the admin API, a cluster peer) is validated and applied.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/route"
	"github.com/latch-lb/latch/internal/state"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/tlsconf"
)

// Server is a running latch, and the one owner of its running state: the
// running config, and the listeners, target groups and event loops that
// serve it. Apply (a file loaded or reloaded) and Update (a change made
// while latch serves: the admin API, a cluster peer) are its only writers;
// both validate the whole config and apply it, or change nothing. Readers
// take a Snapshot, or Subscribe to its events.
type Server struct {
	log    *slog.Logger
	obs    proxy.Observer
	loops  *proxy.Loops // nil: a goroutine per connection
	store  Store        // Options.Store, or nil for files in state_dir
	events events

	mu      sync.Mutex     // serialises Apply, Update and Shutdown
	file    *config.Config // the file's config as last applied: Rebase's base
	running *config.Config // what runs: file plus the runtime changes since
	version uint64
	dir     *state.Dir      // the store when Options.Store is nil
	keys    *sticky.Keyring // the cookie key ring the last Apply loaded
	// groupPolicies are the weighted forwards' group stickiness policies,
	// kept across changes; nextGroupPolicies those the change being
	// applied uses.
	groupPolicies, nextGroupPolicies map[groupPolicyKey]*sticky.Policy
	groups                           map[string]*group
	retired                          []*group // groups the config no longer has, whose targets drain
	listeners                        map[string]*listener
	retiring                         retiring // listeners and handlers shutting down after a change
	shut                             bool

	published atomic.Pointer[published] // what Snapshot reads
}

// Store keeps what latch must remember across restarts and, in a cluster,
// agree on with its peers. state.Dir keeps it in files.
type Store interface {
	// Registrations makes the stored registrations exactly current (each
	// group's targets, with the generation each runs with, 0 for a new
	// one) and returns the generation of each, by group and id: one fixed
	// when its registration was stored, the same for every reader of the
	// store, so that a target registered anew (a new instance on an old
	// address) never inherits an old one's sessions. A registration the
	// store has with another generation than the one it runs with was
	// made anew elsewhere: the server registers it anew. current is the
	// whole running view; a shared store (cluster mode) feeds its
	// registrations to the server through Update, so that the view it
	// writes back is the cluster's. The generations may come with an error
	// that says they could not all be kept.
	Registrations(ctx context.Context, current map[string][]state.Registration) (map[string]map[string]uint64, error)
	// Keys returns the cookie key ring, the first key sealing, made the
	// first time it is asked for.
	Keys(ctx context.Context) ([]sticky.Key, error)
}

// SharedStore is a Store that other nodes change too: cluster mode's etcd.
// The running state's runtime-owned parts (each group's targets, with
// weights, drains and generations, and its attributes) are the store's: a
// change made on this node (Apply, Update) is applied only once Share has
// written it, and a change another node made is applied with
// UpdateFrom(FromCluster).
type SharedStore interface {
	Store
	// Restore returns file with the store's runtime state in place of the
	// file's for every group the store has, at a process's first Apply
	// (prev nil); at a reload, for the groups prev (the running config)
	// lacks, as the file's changes to the others are shared. The groups
	// the store lacks stay the file's, and Share seeds the store with them.
	Restore(ctx context.Context, prev, file *config.Config) (*config.Config, error)
	// Share writes what next changes against prev (nil at the first
	// Apply) to the store, gens being the generations next's targets run
	// with, or fails, and then the change is refused: a change the other
	// nodes cannot see is never applied. A change from FromCluster came
	// from the store, and is written nowhere.
	Share(ctx context.Context, src Source, prev, next *config.Config, gens map[string]map[string]uint64) error
}

// Errors a SharedStore's Share wraps, so that callers (the admin API) can
// tell a store that cannot be reached from a change that lost a race.
var (
	// ErrStoreUnavailable: the shared store cannot be reached; the change
	// is refused, as the other nodes could not see it.
	ErrStoreUnavailable = errors.New("the cluster's store cannot be reached")
	// ErrStoreConflict: another node changed the same item meanwhile.
	ErrStoreConflict = errors.New("another node changed the same item meanwhile")
)

// DataPath is how plain-HTTP client connections are served.
type DataPath uint8

const (
	// Loops serves them on event loops, one per CPU, where the system has
	// them (Linux), and with a goroutine per connection elsewhere.
	Loops DataPath = iota
	// Goroutines serves each with a goroutine of its own.
	Goroutines
)

// ParseDataPath reads a data path's name: "loops" or "goroutines" ("" is
// loops).
func ParseDataPath(s string) (DataPath, error) {
	switch s {
	case "", "loops":
		return Loops, nil
	case "goroutines":
		return Goroutines, nil
	}
	return Loops, fmt.Errorf("data path %q is not one of loops, goroutines", s)
}

func (p DataPath) String() string {
	if p == Goroutines {
		return "goroutines"
	}
	return "loops"
}

// Options configure a Server. The zero value serves on event loops, keeps
// its state in the config's state_dir, and logs nothing.
type Options struct {
	Log      *slog.Logger
	DataPath DataPath
	// Store keeps generations and cookie keys; nil: files in the config's
	// state_dir (state.Dir).
	Store Store
	// Observer sees every request; nil: none.
	Observer proxy.Observer
}

// loopCount is how many event loops a server runs: one per CPU latch may
// use, GOMAXPROCS as Go sets it (from the CPUs and the cgroup's quota) or
// as the operator did. Unless the operator set GOMAXPROCS, it is then
// raised by one, a P to spare: Go's sysmon takes a P back from a thread
// in a system call after 20 µs when no P is idle (after 10 ms when one
// is), so with one P per loop every loop's wait in epoll_wait lost its P,
// to be won back at the next wake, and sysmon, finding that work every 20
// µs, never slept longer. On the bench host that cost 10-20% of latch's
// CPU per request and throughput (HTTP/1.1 17.1 against 19.5-21.9 µs a
// request; h2c 10.7 against 12.2; HTTPS 18.9 against 21.5).
var loopCount = sync.OnceValue(func() int {
	n := runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(n + 1)
	}
	return n
})

// New returns a server with nothing applied. Its event loops start now,
// and stop at Shutdown. It never fails today; the error is for stores and
// options that may.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: o.Log, obs: o.Observer, store: o.Store, groups: map[string]*group{}, listeners: map[string]*listener{}}
	if o.DataPath == Loops {
		loops, err := proxy.NewLoops(loopCount())
		switch {
		case err == nil:
			s.loops = loops
		case errors.Is(err, proxy.ErrNoLoops):
			// Not on this system: a goroutine per connection.
		default:
			// Out of descriptors, or epoll refused by a sandbox: latch
			// serves on, as it does where there are no loops.
			o.Log.Warn("cannot start event loops; serving a goroutine per connection", "err", err)
		}
	}
	s.published.Store(&published{})
	return s, nil
}

// Source says where a change came from.
type Source string

const (
	FromFile   Source = "file"   // Apply: the config file, loaded or reloaded
	FromUpdate Source = "update" // Update: a change made while latch serves
	// FromCluster is a change another node of the cluster made, read from
	// the shared store (UpdateFrom).
	FromCluster Source = "cluster"
)

var errShutDown = errors.New("the server is shut down")

// Apply makes file the config file's content: the first call starts
// everything; later ones are reloads. Changes made with Update since the
// last Apply stay, unless file changes the same thing (config.Rebase says
// how they combine, and the README's "Runtime changes and reloads"):
// targets still registered keep their state and sessions, removed targets
// drain, and listeners keep their connections. Apply reads the files the
// config names again (certificates, the state directory's key ring), so
// that renewed ones serve. On any error nothing changes.
func (s *Server) Apply(ctx context.Context, file *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return errShutDown
	}
	var next *config.Config
	var overridden []string
	if s.file != nil {
		next, overridden = config.Rebase(s.file, s.running, file)
		if shared, ok := s.store.(SharedStore); ok {
			var err error
			if next, err = shared.Restore(ctx, s.running, next); err != nil {
				s.refused(FromFile, err)
				return err
			}
		}
	} else {
		// A process's first Apply: the runtime changes made before the
		// restart come back, as on a reload.
		store, dir := s.storeFor(file)
		var err error
		if next, overridden, err = restoreRuntime(ctx, store, dir, file); err != nil {
			s.refused(FromFile, err)
			return err
		}
	}
	if err := s.commit(ctx, next, file, FromFile); err != nil {
		return err
	}
	msg := "the reloaded file overrides a runtime change"
	if s.file == nil {
		msg = "the config file overrides a runtime change made before the restart"
	}
	for _, o := range overridden {
		s.log.Warn(msg, "change", o)
	}
	s.file = file.Clone()
	return nil
}

// Update changes the running config: change gets a copy of it, and the
// result is validated and applied as a whole. If change returns an error,
// or the result is invalid, or changes what only the file may (listeners,
// which groups exist, health checks, state_dir, cookie_keys: see
// config.CheckRuntimeChange), the error lists every problem (a
// config.Problems) and nothing changes. change runs with the server's lock
// held: it must not call Apply or Update, nor keep the config it is given
// (it becomes the running config). Update reads no file: the certificates
// and key ring the last Apply loaded stay.
func (s *Server) Update(ctx context.Context, change func(*config.Config) error) error {
	return s.UpdateFrom(ctx, FromUpdate, change)
}

// UpdateFrom is Update for a change from src: FromUpdate, or FromCluster
// for the shared store's state, which is then written back nowhere and
// reloads the store's cookie key ring.
func (s *Server) UpdateFrom(ctx context.Context, src Source, change func(*config.Config) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return errShutDown
	}
	if s.running == nil {
		return errors.New("no config is running yet")
	}
	next := s.running.Clone()
	if err := change(next); err != nil {
		s.refused(src, err)
		return err
	}
	if err := config.CheckRuntimeChange(s.running, next); err != nil {
		if verr, ok := next.ValidateExceptFiles().(config.Problems); ok {
			err = append(verr, err.(config.Problems)...)
		}
		s.refused(src, err)
		return err
	}
	return s.commit(ctx, next, s.file, src)
}

// commit validates next and makes it the running config. Everything that
// can fail (validation, the state store, rules, certificates, binding new
// listeners) happens before anything changes. A change from the file
// reads the files it names; an Update, which cannot change listeners or
// the key ring, keeps what they gave. file is the file's config next is
// based on: the runtime changes kept in the store are next's over it.
// s.mu is held.
func (s *Server) commit(ctx context.Context, next, file *config.Config, src Source) (err error) {
	defer func() {
		if err != nil {
			s.refused(src, err)
		}
	}()
	stampDrains(next, time.Now())
	// The certificate files are read below, where they are loaded.
	if err := next.ValidateExceptFiles(); err != nil {
		return err
	}
	store, dir := s.storeFor(next)
	keys := s.keys
	if src == FromFile || src == FromCluster || keys == nil {
		if keys, err = s.keyring(ctx, next, store); err != nil {
			return err
		}
		if src == FromCluster && s.keys != nil && slices.Equal(keys.IDs(), s.keys.IDs()) {
			// The cluster's ring as it was: the policies sealing with it
			// stay.
			keys = s.keys
		}
	}
	var tables []*route.Table
	tlss := make([]*tlsconf.Settings, len(next.Listeners)) // nil: keep the listener's
	for i, lc := range next.Listeners {
		t, err := route.Compile(lc.Rules)
		if err != nil {
			return fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		tables = append(tables, t)
		if src == FromFile {
			if tlss[i], err = tlsSettings(lc); err != nil {
				return fmt.Errorf("listener %s: %w", lc.Name, err)
			}
		}
	}
	bound := map[string]*listener{}
	closeBound := func() {
		for _, l := range bound {
			l.ln.Close()
		}
	}
	for _, lc := range next.Listeners {
		if old := s.listeners[lc.Name]; old != nil && old.cfg.Address == lc.Address {
			continue
		}
		l, err := newListener(lc, s.log)
		if err != nil {
			closeBound()
			return err
		}
		bound[lc.Name] = l
	}
	current := make(map[string][]state.Registration, len(next.TargetGroups))
	for _, gc := range next.TargetGroups {
		var running map[string]uint64
		if g := s.groups[gc.Name]; g != nil {
			running = g.generations()
		}
		regs := make([]state.Registration, len(gc.Targets))
		for i, t := range gc.Targets {
			regs[i] = state.Registration{ID: t.ID, Generation: running[t.ID]}
		}
		current[gc.Name] = regs
	}
	gens, err := store.Registrations(ctx, current)
	if gens == nil {
		closeBound()
		return fmt.Errorf("target registrations: %w", err)
	}
	if err != nil {
		s.log.Error("cannot keep target registrations; a restart will start new sessions", "err", err)
	}
	if shared, ok := store.(SharedStore); ok {
		err = shared.Share(ctx, src, s.running, next, gens)
	} else {
		err = saveRuntime(ctx, store, dir, file, next)
	}
	if err != nil {
		closeBound()
		return err
	}

	// From here on nothing fails.
	s.dir, s.keys = dir, keys
	s.applyGroups(next, gens)
	s.applyListeners(next, tables, tlss, bound, keys)
	s.running = next
	s.version++
	s.publish()
	s.events.publish(Event{Kind: ConfigApplied, Version: s.version, Source: src})
	return nil
}

// refused tells subscribers a change was refused.
func (s *Server) refused(src Source, err error) {
	s.events.publish(Event{Kind: ConfigRefused, Version: s.version, Source: src, Err: err})
}

// storeFor returns the store of cfg: Options.Store, or the files of its
// state_dir (the same Dir while the directory stays).
func (s *Server) storeFor(cfg *config.Config) (Store, *state.Dir) {
	if s.store != nil {
		return s.store, nil
	}
	if s.dir != nil && s.dir.Path() == cfg.StateDir {
		return s.dir, s.dir
	}
	d := state.NewDir(cfg.StateDir)
	return d, d
}

// keyring returns the configured key ring, or the store's.
func (s *Server) keyring(ctx context.Context, cfg *config.Config, store Store) (*sticky.Keyring, error) {
	var keys []sticky.Key
	if len(cfg.CookieKeys) > 0 {
		for _, k := range cfg.CookieKeys {
			keys = append(keys, sticky.Key{ID: k.ID, Secret: k.Secret})
		}
	} else {
		var err error
		if keys, err = store.Keys(ctx); err != nil {
			return nil, fmt.Errorf("cookie keys: %w", err)
		}
	}
	return sticky.NewKeyring(keys)
}

// Shutdown stops accepting connections, lets requests in flight finish until
// ctx is done, then closes everything: connections, health checks, target
// connections, event loops. It returns ctx's error if requests were still
// running. Apply and Update fail after it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shut = true
	var wg sync.WaitGroup
	errs := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.close(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	if s.retiring.wait(ctx) != nil && err == nil {
		err = ctx.Err()
	}
	for _, g := range s.groups {
		g.close()
	}
	for _, g := range s.retired {
		g.close()
	}
	s.retired = nil
	if s.loops != nil {
		s.loops.Close()
		s.loops = nil
	}
	s.listeners = map[string]*listener{}
	s.groups = map[string]*group{}
	s.publish()
	s.events.close()
	return err
}

// KeyIDs returns the ids of the cookie key ring the server runs with, the
// sealing key's first.
func (s *Server) KeyIDs() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		return nil
	}
	return s.keys.IDs()
}

// Addr returns the bound address of the named listener ("" if none), which
// tells the port when the config asked for port 0.
func (s *Server) Addr(name string) string {
	for _, l := range s.published.Load().listeners {
		if l.name == name {
			return l.addr
		}
	}
	return ""
}

// retire shuts a listener or a replaced handler down in the background:
// it accepts no more, and its connections close once their requests are
// answered, or when Shutdown's deadline comes.
func (s *Server) retire(close func(context.Context) error) { s.retiring.start(close) }

// retiring keeps track of what retire started.
type retiring struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	next    int
	cancels map[int]context.CancelFunc
}

func (r *retiring) start(close func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	if r.cancels == nil {
		r.cancels = map[int]context.CancelFunc{}
	}
	id := r.next
	r.next++
	r.cancels[id] = cancel
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		close(ctx)
		r.mu.Lock()
		delete(r.cancels, id)
		r.mu.Unlock()
		cancel()
	}()
}

// wait waits for what is retiring to finish, until ctx is done; then it
// cuts what is left (their contexts end), waits for that, and returns
// ctx's error.
func (r *retiring) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	for _, cancel := range r.cancels {
		cancel()
	}
	r.mu.Unlock()
	<-done
	return ctx.Err()
}
