// Package cluster is latch's cluster mode: nodes that share one etcd
// (its endpoints and prefix) share their target registrations with their
// generations, weights, drains, attribute changes and cookie key ring
// through it. A Cluster is the server's SharedStore: every change made on a
// node is written to etcd before it is applied, and every node watches the
// prefix from the revision it has applied and applies the others' changes
// through the server's one validate-and-apply path. The request path never
// touches etcd: it reads what the server applied.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/state"
	"github.com/latch-lb/latch/internal/sticky"
)

// SnapshotFile is the file in state_dir where a node keeps the shared state
// it last applied, to start from while etcd cannot be reached.
const SnapshotFile = "cluster-snapshot.json"

// Options configure a Cluster.
type Options struct {
	Config *config.Cluster
	// Node is this node's name (config.Cluster.Node gives the default).
	Node string
	// StateDir keeps the snapshot, and the key ring a lone latch used,
	// which seeds an empty cluster's so that its cookies stay good.
	StateDir string
	// Admin is the node's admin API address, published in its record.
	Admin   string
	Version string
	Log     *slog.Logger
	// Timeout bounds each call to etcd; 0: 2 s.
	Timeout time.Duration
	// NodeInterval is how often the node publishes its record (and
	// checks etcd); 0: 500 ms.
	NodeInterval time.Duration
}

// Cluster is one node's share of a cluster. It implements
// server.SharedStore.
type Cluster struct {
	o      Options
	log    *slog.Logger
	cli    *clientv3.Client
	prefix string // with a trailing slash
	dir    *state.Dir

	mu sync.Mutex
	m  *mirror
	// own are the keys this node wrote last, with the revision of its
	// write, until it has applied that revision.
	own map[string]int64
	// applied is the revision of the shared state the server runs;
	// pending the one the overlay being applied reads.
	applied, pending int64

	srv     atomic.Pointer[server.Server]
	up      atomic.Bool
	downAt  atomic.Int64 // unix nanoseconds the outage began; 0: up
	resyncs atomic.Uint64
	kick    chan struct{} // a change to apply, for the syncer
	lease   clientv3.LeaseID
	started time.Time
	// What publishNode last wrote, when, under which lease (nodeLoop's).
	lastRec   *NodeRecord
	lastPut   time.Time
	lastLease clientv3.LeaseID

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ server.SharedStore = (*Cluster)(nil)

// Open connects to etcd and reads the shared state, seeding what it lacks
// from file (the groups no node has shared yet, with their targets and
// attributes, and a cookie key ring). If etcd cannot be reached, the node
// starts from the snapshot it kept in state_dir, and catches up when etcd
// returns; with no snapshot, Open fails: a node that never saw the
// cluster's state has nothing to serve. Call Run once the server has
// applied the file.
func Open(ctx context.Context, o Options, file *config.Config) (*Cluster, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.NodeInterval == 0 {
		o.NodeInterval = 500 * time.Millisecond
	}
	e := o.Config.Etcd
	cc := clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: o.Timeout,
		Logger:      zap.NewNop(),
		// Keep-alive pings find a dead etcd in seconds, not minutes.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		// gRPC's own backoff between connection attempts grows to 2
		// minutes: after a long outage a node would go on refusing admin
		// writes that long after etcd returned (after 10 s away, 5-7 s).
		// A connection refused costs nothing to try again each second.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 20 * time.Second, // gRPC's default: a slow connection is not cut short
		})},
	}
	if e.TLS != nil {
		t, err := etcdTLS(e.TLS)
		if err != nil {
			return nil, err
		}
		cc.TLS = t
		if t.ServerName != "" {
			// The etcd client checks each endpoint's certificate for the
			// connection's authority, not the TLS config's ServerName.
			cc.DialOptions = append(cc.DialOptions, grpc.WithAuthority(t.ServerName))
		}
	}
	if e.Username != "" {
		b, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.password_file: %v", err)
		}
		cc.Username, cc.Password = e.Username, strings.TrimSpace(string(b))
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd at %s: %v", strings.Join(e.Endpoints, ", "), err)
	}
	c := &Cluster{o: o, log: o.Log.With("node", o.Node), cli: cli, prefix: e.Prefix + "/", dir: state.NewDir(o.StateDir),
		m: newMirror(), own: map[string]int64{}, kick: make(chan struct{}, 1), started: time.Now()}
	if e.Prefix == "/" {
		c.prefix = "/"
	}
	if err := c.load(ctx); err != nil {
		snap, serr := c.loadSnapshot()
		if serr != nil || snap == nil {
			cli.Close()
			if serr == nil {
				serr = errors.New("none kept yet")
			}
			return nil, fmt.Errorf("cluster: etcd at %s cannot be reached (%v), and no snapshot of the cluster's state to start from (%s: %v)",
				strings.Join(e.Endpoints, ", "), err, c.snapshotPath(), serr)
		}
		c.m = snap
		c.applied = snap.Rev
		c.setUp(false, err)
		c.log.Warn("etcd cannot be reached: serving the cluster's state from the snapshot; admin writes are refused until etcd returns",
			"revision", snap.Rev, "snapshot", c.snapshotPath(), "err", err)
		return c, nil
	}
	c.setUp(true, nil)
	if err := c.nameFree(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	if err := c.seed(ctx, file); err != nil {
		cli.Close()
		return nil, err
	}
	c.saveSnapshot()
	return c, nil
}

// nameFree waits for no live node to hold this node's name: the node's
// own previous run may still hold it until its lease expires (a crash), but
// two nodes of one name would overwrite each other's records and ignore
// each other's sessions.
func (c *Cluster) nameFree(ctx context.Context) error {
	key := c.prefix + "nodes/" + c.o.Node
	deadline := time.Now().Add((nodeTTL + 2) * time.Second)
	for {
		c.mu.Lock()
		n, held := c.m.Nodes[c.o.Node]
		c.mu.Unlock()
		if !held {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: a live node already uses the name %q (admin %s, started %s): give each node its own cluster.node_name",
				c.o.Node, n.Admin, n.Started.Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		cctx, cancel := c.call(ctx)
		resp, err := c.cli.Get(cctx, key)
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: reading etcd: %v", err)
		}
		c.mu.Lock()
		if len(resp.Kvs) == 0 {
			delete(c.m.Nodes, c.o.Node)
		}
		c.mu.Unlock()
	}
}

func etcdTLS(t *config.EtcdTLS) (*tls.Config, error) {
	tc := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.tls.ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.etcd.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.tls: cert_file and key_file: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Node returns the node's name.
func (c *Cluster) Node() string { return c.o.Node }

// call is a context for one call to etcd.
func (c *Cluster) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.o.Timeout)
}

// load reads the whole prefix into a fresh mirror: at start, and when the
// watch's revision was compacted away.
func (c *Cluster) load(ctx context.Context) error {
	cctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := c.cli.Get(cctx, c.prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	m := newMirror()
	m.Rev = resp.Header.Revision
	for _, kv := range resp.Kvs {
		rel := strings.TrimPrefix(string(kv.Key), c.prefix)
		if err := m.put(rel, kv.Value, kv.ModRevision); err != nil {
			c.log.Error("a key in etcd cannot be read; ignored", "key", string(kv.Key), "err", err)
		}
	}
	c.mu.Lock()
	c.m = m
	c.mu.Unlock()
	return nil
}

// seed writes what the cluster lacks: a key ring (the lone latch's own, if
// state_dir has one, so that its cookies stay good), and each of file's
// groups that no node has shared yet. Each is written only if still
// absent, so that nodes starting at once agree on one.
func (c *Cluster) seed(ctx context.Context, file *config.Config) error {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		m := c.m
		var ops []clientv3.Op
		var cmps []clientv3.Cmp
		if len(m.Keys.Keys) == 0 && len(file.CookieKeys) == 0 {
			keys, err := c.dir.Keys(ctx)
			if err != nil {
				c.mu.Unlock()
				return fmt.Errorf("cluster: the key ring to seed etcd with: %v", err)
			}
			now := time.Now().UTC().Truncate(time.Second)
			var r keyRing
			for i, k := range keys {
				kr := keyRecord{ID: k.ID, Secret: base64.StdEncoding.EncodeToString(k.Secret), State: keyOld, Added: now}
				if i == 0 {
					kr.State, kr.Sealing = keySealing, now
				} else {
					kr.Retire = now.Add(maxStickiness(file))
				}
				r.Keys = append(r.Keys, kr)
			}
			b, _ := json.Marshal(r)
			ops = append(ops, clientv3.OpPut(c.prefix+"keys", string(b)))
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.prefix+"keys"), "=", 0))
		}
		next := m.NextGen
		for _, g := range file.TargetGroups {
			if m.Groups[g.Name] != nil {
				continue
			}
			key := c.prefix + "groups/" + g.Name
			b, _ := json.Marshal(groupRecord{Attributes: g.Attributes()})
			ops = append(ops, clientv3.OpPut(key, string(b)))
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			for _, t := range g.Targets {
				b, _ := json.Marshal(record(t, next))
				next++
				ops = append(ops, clientv3.OpPut(key+"/targets/"+t.ID, string(b)))
			}
		}
		if next != m.NextGen {
			ops = append(ops, clientv3.OpPut(c.prefix+"generation", strconv.FormatUint(next, 10)))
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(c.prefix+"generation"), "=", m.GenMod))
		}
		c.mu.Unlock()
		if len(ops) == 0 {
			return nil
		}
		cctx, cancel := c.call(ctx)
		resp, err := c.cli.Txn(cctx).If(cmps...).Then(ops...).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: seeding etcd with the file's groups: %v", err)
		}
		if err := c.load(ctx); err != nil {
			return fmt.Errorf("cluster: reading etcd: %v", err)
		}
		if resp.Succeeded {
			c.log.Info("seeded the cluster's state from the config file", "revision", resp.Header.Revision)
			return nil
		}
		if attempt == 4 {
			return errors.New("cluster: seeding etcd: other nodes kept changing the same keys; try again")
		}
		// Another node seeded meanwhile: read what it wrote and seed the
		// rest.
	}
}

// maxStickiness is the longest stickiness duration of cfg's groups: how
// long a cookie sealed by a key that stops sealing may still come back.
func maxStickiness(cfg *config.Config) time.Duration {
	d := 24 * time.Hour // lb_cookie's default, ALB's
	for _, g := range cfg.TargetGroups {
		st := g.Stickiness
		d = max(d, st.LBCookieDuration, st.AppCookieDuration, st.HeaderDuration, st.AbsoluteTimeout)
	}
	return d
}

// Restore is the server's first Apply: file with the shared state of every
// group the cluster has in place of the file's; a later Apply (a reload)
// only for the groups new to this node, so that the file's changes to the
// others go to the cluster through Share.
func (c *Cluster) Restore(_ context.Context, prev, file *config.Config) (*config.Config, error) {
	next := file.Clone()
	c.mu.Lock()
	defer c.mu.Unlock()
	var selects func(string) bool
	if prev != nil {
		selects = func(g string) bool { return prev.TargetGroup(g) == nil }
	}
	if err := c.m.overlay(next, selects); err != nil {
		return nil, err
	}
	if prev == nil {
		c.pending = c.m.Rev
	}
	return next, nil
}

// Keys returns the cluster's cookie key ring, its sealing key first.
func (c *Cluster) Keys(context.Context) ([]sticky.Key, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Keys.ring()
}

// Registrations returns the generation of each of current's targets: the
// cluster's for those it has, new ones from the cluster's counter for the
// others. Nothing else is written here: Share writes the registrations.
// While etcd is away, a target the cluster has never seen (a group new in
// the file of a node started from its snapshot) gets a provisional
// generation, unique by chance (random, with the top bit set, above any
// the counter gives), which the seed made when etcd returns keeps.
func (c *Cluster) Registrations(ctx context.Context, current map[string][]state.Registration) (map[string]map[string]uint64, error) {
	c.mu.Lock()
	out := make(map[string]map[string]uint64, len(current))
	type slot struct{ group, id string }
	var need []slot
	for group, regs := range current {
		gens := make(map[string]uint64, len(regs))
		sg := c.m.Groups[group]
		for _, r := range regs {
			switch {
			case sg != nil && sg.Targets[r.ID] != nil:
				gens[r.ID] = sg.Targets[r.ID].Generation
			case r.Generation != 0:
				// Running here, gone from the cluster: the change that
				// removes it is on its way, or this node shares it next.
				gens[r.ID] = r.Generation
			default:
				need = append(need, slot{group, r.ID})
			}
		}
		out[group] = gens
	}
	c.mu.Unlock()
	if len(need) == 0 {
		return out, nil
	}
	if !c.up.Load() {
		for _, s := range need {
			if c.known(s.group) {
				return nil, c.unavailable(errors.New("it has been away since "+c.downSince()), false)
			}
			out[s.group][s.id] = provisionalGeneration()
		}
		return out, nil
	}
	first, err := c.allocate(ctx, uint64(len(need)))
	if err != nil {
		return nil, err
	}
	for i, s := range need {
		out[s.group][s.id] = first + uint64(i)
	}
	return out, nil
}

// known reports whether the cluster has the group: a registration in it
// needs a generation from the cluster's counter.
func (c *Cluster) known(group string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Groups[group] != nil
}

// provisionalGeneration is a generation for a target registered while etcd
// is away in a group etcd has never had.
func provisionalGeneration() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1<<63
}

// allocate takes n generations from the cluster's counter.
func (c *Cluster) allocate(ctx context.Context, n uint64) (uint64, error) {
	key := c.prefix + "generation"
	for range 5 {
		c.mu.Lock()
		first, mod := c.m.NextGen, c.m.GenMod
		c.mu.Unlock()
		cctx, cancel := c.call(ctx)
		resp, err := c.cli.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
			Then(clientv3.OpPut(key, strconv.FormatUint(first+n, 10))).
			Else(clientv3.OpGet(key)).Commit()
		cancel()
		if err != nil {
			// Nothing registered yet: a counter taken and not used is
			// harmless.
			return 0, c.unavailable(err, false)
		}
		c.mu.Lock()
		if resp.Succeeded {
			c.m.NextGen, c.m.GenMod = max(c.m.NextGen, first+n), max(c.m.GenMod, resp.Header.Revision)
			c.mu.Unlock()
			return first, nil
		}
		// Another node took some meanwhile: take the counter as it is.
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			if err := c.m.put("generation", kvs[0].Value, kvs[0].ModRevision); err != nil {
				c.mu.Unlock()
				return 0, err
			}
		}
		c.mu.Unlock()
	}
	return 0, fmt.Errorf("%w: target generations: the counter kept changing", server.ErrStoreConflict)
}

// Share writes what next changes against prev to etcd, each key on the
// condition that no other node changed it since the revision this node
// runs (or since this node's own last write of it): a change another node
// made meanwhile is never overwritten. It writes only what this change
// changed, never the rest of next, which may be behind the cluster by a
// change on its way; a group the cluster lacks is written whole. A change
// FromCluster came from etcd, and is only recorded as applied.
func (c *Cluster) Share(ctx context.Context, src server.Source, prev, next *config.Config, gens map[string]map[string]uint64) error {
	if src == server.FromCluster || prev == nil {
		// From etcd, or the first Apply (which Open seeded etcd for, and
		// Restore read it): nothing to write.
		c.mu.Lock()
		c.applied = max(c.applied, c.pending)
		c.mu.Unlock()
		return nil
	}
	type write struct {
		rel   string
		value []byte // nil: delete
	}
	var writes []write
	var cmps []clientv3.Cmp
	c.mu.Lock()
	guard := func(rel string) {
		key := c.prefix + rel
		if rev, ok := c.own[rel]; ok && rev > c.applied {
			// This node's own write, newer than what it has applied:
			// unchanged since, it is what the running config has.
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
			return
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "<", c.applied+1))
	}
	for _, ng := range next.TargetGroups {
		gkey := "groups/" + ng.Name
		pg := prev.TargetGroup(ng.Name)
		sg := c.m.Groups[ng.Name]
		if sg == nil || sg.Attributes == nil {
			// The cluster lacks the group (new in this node's file, or
			// gone from etcd): this node shares it whole, unless another
			// does first.
			if pg == nil && sg != nil {
				continue
			}
			b, _ := json.Marshal(groupRecord{Attributes: ng.Attributes()})
			writes = append(writes, write{gkey, b})
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.prefix+gkey), "=", 0))
			for _, t := range ng.Targets {
				b, _ := json.Marshal(record(t, gens[ng.Name][t.ID]))
				writes = append(writes, write{gkey + "/targets/" + t.ID, b})
			}
			continue
		}
		if pg == nil {
			continue // Restore gave it the cluster's state
		}
		if na := ng.Attributes(); !equalMaps(na, pg.Attributes()) {
			b, _ := json.Marshal(groupRecord{Attributes: na})
			writes = append(writes, write{gkey, b})
			guard(gkey)
		}
		for _, t := range ng.Targets {
			rec := record(t, gens[ng.Name][t.ID])
			shared := sg.Targets[t.ID]
			pt := pg.Target(t.ID)
			changed := pt == nil || pt.Weight != t.Weight || pt.Discovered != t.Discovered || !drainToRecord(pt.Drain).equalTo(rec.Drain)
			// Only what this change changed is written: a target it left
			// as it was may be one another node deregistered meanwhile,
			// which a write would bring back.
			if !changed || (shared != nil && shared.targetRecord.equal(rec)) {
				continue
			}
			b, _ := json.Marshal(rec)
			tkey := gkey + "/targets/" + t.ID
			writes = append(writes, write{tkey, b})
			guard(tkey)
			if pt != nil {
				// A change to a registration: it must still exist (a
				// deregistration leaves no revision to compare).
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.prefix+tkey), ">", 0))
			}
		}
		for _, t := range pg.Targets {
			if ng.Target(t.ID) == nil && sg.Targets[t.ID] != nil {
				tkey := gkey + "/targets/" + t.ID
				writes = append(writes, write{tkey, nil})
				guard(tkey)
			}
		}
	}
	applied := c.applied
	c.mu.Unlock()
	if len(writes) == 0 {
		return nil
	}
	if !c.up.Load() {
		return c.unavailable(errors.New("it has been away since "+c.downSince()), false)
	}
	ops := make([]clientv3.Op, 0, len(writes))
	for _, w := range writes {
		if w.value == nil {
			ops = append(ops, clientv3.OpDelete(c.prefix+w.rel))
		} else {
			ops = append(ops, clientv3.OpPut(c.prefix+w.rel, string(w.value)))
		}
	}
	// The etcd call runs without c.mu, so that health, metrics and the
	// watch never wait on it; the server's lock keeps this node's writes
	// one at a time.
	cctx, cancel := c.call(ctx)
	resp, err := c.cli.Txn(cctx).If(cmps...).Then(ops...).Commit()
	cancel()
	if err != nil {
		return c.unavailable(err, true)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w (etcd revision %d is newer than this node's %d): read it again and retry",
			server.ErrStoreConflict, resp.Header.Revision, applied)
	}
	rev := resp.Header.Revision
	c.mu.Lock()
	defer c.mu.Unlock()
	// The watch brings the write back; until then the mirror has it, and
	// if nothing came between, the running state is the cluster's at rev.
	for _, w := range writes {
		c.own[w.rel] = rev
		if w.value == nil {
			c.m.del(w.rel)
		} else if err := c.m.put(w.rel, w.value, rev); err != nil {
			return err
		}
	}
	if c.m.Rev == rev-1 {
		c.m.Rev = rev
	}
	if c.applied == rev-1 {
		c.applied = rev
	}
	for rel, r := range c.own {
		if r <= c.applied {
			delete(c.own, rel)
		}
	}
	c.kickSnapshot()
	return nil
}

func (r *drainRecord) equalTo(o *drainRecord) bool {
	return targetRecord{Weight: 1, Generation: 1, Drain: r}.equal(targetRecord{Weight: 1, Generation: 1, Drain: o})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// unavailable wraps err as the store being away, and marks it so. A
// write that timed out (wrote) may have been committed all the same: the
// message says so, and the watch applies it if it was.
func (c *Cluster) unavailable(err error, wrote bool) error {
	if !errors.Is(err, server.ErrStoreUnavailable) && !errors.Is(err, context.Canceled) {
		c.setUp(false, err)
	}
	if wrote && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: etcd at %s did not answer in time (%v): the change may or may not have been made; if it was, every node applies it once etcd answers: read it again then",
			server.ErrStoreUnavailable, strings.Join(c.o.Config.Etcd.Endpoints, ", "), err)
	}
	return fmt.Errorf("%w: etcd at %s: %v; admin writes are refused until it returns, so that no node applies what the others cannot see",
		server.ErrStoreUnavailable, strings.Join(c.o.Config.Etcd.Endpoints, ", "), err)
}

func (c *Cluster) downSince() string {
	n := c.downAt.Load()
	if n == 0 {
		return "just now"
	}
	return time.Unix(0, n).UTC().Format(time.RFC3339)
}

// setUp records whether etcd answers, logging each change.
func (c *Cluster) setUp(up bool, err error) {
	was := c.up.Swap(up)
	switch {
	case up && !was:
		if n := c.downAt.Swap(0); n != 0 {
			c.log.Info("etcd is back", "away", time.Since(time.Unix(0, n)).Round(time.Millisecond))
		}
	case !up && (was || c.downAt.Load() == 0):
		c.downAt.CompareAndSwap(0, time.Now().UnixNano())
		if was {
			c.log.Error("etcd cannot be reached: serving the state last applied; admin writes are refused until it returns", "err", err)
		}
	}
}

func (c *Cluster) snapshotPath() string { return c.dir.Path() + "/" + SnapshotFile }

// snapshot is what SnapshotFile holds.
type snapshot struct {
	Version int     `json:"version"`
	Node    string  `json:"node"`
	State   *mirror `json:"state"`
}

// saveSnapshot keeps the mirror in state_dir, for a start while etcd is
// away. A failure is logged: the node serves on.
func (c *Cluster) saveSnapshot() {
	c.mu.Lock()
	m := c.m.clone()
	m.Rev = c.applied
	if m.Rev == 0 {
		m.Rev = c.m.Rev
	}
	c.mu.Unlock()
	b, err := json.MarshalIndent(snapshot{Version: 1, Node: c.o.Node, State: m}, "", "  ")
	if err == nil {
		err = c.dir.Save(SnapshotFile, append(b, '\n'))
	}
	if err != nil {
		c.log.Error("cannot keep the cluster's state in state_dir; a start while etcd is away will fail", "err", err)
	}
}

func (c *Cluster) loadSnapshot() (*mirror, error) {
	b, err := c.dir.Load(SnapshotFile)
	if err != nil || b == nil {
		return nil, err
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("corrupt: %v", err)
	}
	if s.Version != 1 || s.State == nil {
		return nil, fmt.Errorf("version %d is not 1", s.Version)
	}
	m := s.State
	if m.Groups == nil {
		m.Groups = map[string]*sharedGroup{}
	}
	for _, g := range m.Groups {
		if g.Targets == nil {
			g.Targets = map[string]*sharedTarget{}
		}
	}
	m.Nodes, m.Members = map[string]NodeRecord{}, map[string]NodeRecord{}
	if _, err := m.Keys.ring(); err != nil {
		return nil, err
	}
	return m, nil
}

// kickSnapshot asks the syncer to apply and keep what changed.
func (c *Cluster) kickSnapshot() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
