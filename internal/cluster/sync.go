package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/target"
)

// nodeTTL is how long a node's record outlives its last keep-alive: a node
// that stops is gone from `latch ctl nodes`, and no longer holds drains,
// that long after.
const nodeTTL = 5 // seconds

// Run follows the cluster for srv, which has applied the file with c as its
// store: it watches the prefix from the revision applied and applies every
// change through srv.UpdateFrom, publishes the node's record, rotates the
// key ring when a rotation is due, and keeps the snapshot. It returns at
// once; Close stops it.
func (c *Cluster) Run(srv *server.Server) {
	c.srv.Store(srv)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.watch(ctx)
	}()
	go func() {
		defer c.wg.Done()
		c.nodeLoop(ctx)
	}()
	// What Open read may be newer than what the first Apply saw.
	c.kickSnapshot()
}

// Close stops following the cluster, removes the node's record (its lease
// revoked) and closes the connection to etcd.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
		if c.lease != 0 && c.up.Load() {
			// A clean leave: the node's reports no longer count.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.cli.Delete(ctx, c.prefix+"members/"+c.o.Node)
			c.cli.Revoke(ctx, c.lease)
			cancel()
		}
		c.cli.Close()
	})
	return nil
}

// SetAdmin sets the admin API address the node's record publishes (known
// once the admin listener has bound its port). Call it before Run.
func (c *Cluster) SetAdmin(addr string) { c.o.Admin = addr }

// watch applies the cluster's changes as they come, from the revision the
// mirror has; when that revision was compacted away it reads the whole
// prefix again (a resync), and goes on from there.
func (c *Cluster) watch(ctx context.Context) {
	for ctx.Err() == nil {
		c.mu.Lock()
		rev := c.m.Rev
		c.mu.Unlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := c.cli.Watch(wctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
		compacted := false
		for resp := range wch {
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				compacted = true
				break
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					c.log.Warn("the watch on etcd ended; watching again", "err", err)
				}
				break
			}
			state := c.applyEvents(resp.Events)
			if state {
				c.sync(ctx)
			}
			c.holdDrains()
		}
		cancel()
		if compacted && ctx.Err() == nil {
			c.resync(ctx, rev)
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// resync reads the whole prefix after the revision the watch stood at
// was compacted away, and applies it.
func (c *Cluster) resync(ctx context.Context, from int64) {
	for ctx.Err() == nil {
		if err := c.load(ctx); err != nil {
			c.setUp(false, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		c.resyncs.Add(1)
		c.mu.Lock()
		rev := c.m.Rev
		c.mu.Unlock()
		c.log.Warn("etcd compacted the revisions after this node's: read the whole state again", "from", from, "revision", rev)
		c.sync(ctx)
		c.holdDrains()
		return
	}
}

// applyEvents puts a watch response's events into the mirror, and reports
// whether the shared state changed (nodes' records aside).
func (c *Cluster) applyEvents(evs []*clientv3.Event) (state bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A transaction's keys share one revision and come in one response:
	// what the mirror had before this response is what is skipped.
	had := c.m.Rev
	for _, ev := range evs {
		kv := ev.Kv
		if kv.ModRevision <= had {
			continue // this node's own write, already in the mirror
		}
		rel := strings.TrimPrefix(string(kv.Key), c.prefix)
		if !strings.HasPrefix(rel, "nodes/") && !strings.HasPrefix(rel, "members/") {
			state = true
		}
		switch ev.Type {
		case clientv3.EventTypePut:
			if err := c.m.put(rel, kv.Value, kv.ModRevision); err != nil {
				c.log.Error("a key in etcd cannot be read; ignored", "key", string(kv.Key), "err", err)
			}
		case clientv3.EventTypeDelete:
			c.m.del(rel)
		}
		c.m.Rev = max(c.m.Rev, kv.ModRevision)
	}
	return state
}

// sync applies the mirror to the server, and keeps it as the snapshot. A
// state the server refuses (a value this version cannot read) is logged,
// and the node serves on with what it had.
func (c *Cluster) sync(ctx context.Context) {
	srv := c.srv.Load()
	if srv == nil {
		return
	}
	err := srv.UpdateFrom(ctx, server.FromCluster, func(cfg *config.Config) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.pending = c.m.Rev
		return c.m.overlay(cfg, nil)
	})
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("cannot apply the cluster's state; serving what was applied before", "err", err)
		}
		return
	}
	c.saveSnapshot()
}

// nodeLoop publishes the node's record under its lease, which tells
// whether etcd answers, and does what is due: a key rotation's next step,
// applying what this node wrote itself.
func (c *Cluster) nodeLoop(ctx context.Context) {
	t := time.NewTicker(c.o.NodeInterval)
	defer t.Stop()
	for {
		c.publishNode(ctx)
		if c.up.Load() {
			c.reseed(ctx)
			c.rotateStep(ctx)
		}
		c.holdDrains()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
			// A write of this node's: apply it now (the watch brings it
			// back too), and keep it.
			c.sync(ctx)
		}
	}
}

// publishNode writes the node's record, under its lease.
func (c *Cluster) publishNode(ctx context.Context) {
	srv := c.srv.Load()
	if srv == nil {
		return
	}
	rec := c.record(srv)
	// Each put is an etcd revision: while nothing changes and no drain
	// needs fresh reports, the lease's keep-alive alone says the node
	// lives, and the record is written again every recordRefresh.
	same := rec.Sessions == nil && c.lastRec != nil && sameRecord(*c.lastRec, rec) && time.Since(c.lastPut) < recordRefresh
	b, _ := json.Marshal(rec)
	cctx, cancel := c.call(ctx)
	defer cancel()
	down := func(err error) {
		if ctx.Err() == nil { // not Close's
			c.setUp(false, err)
		}
	}
	if c.lease == 0 {
		lr, err := c.cli.Grant(cctx, nodeTTL)
		if err != nil {
			down(err)
			return
		}
		c.lease = lr.ID
	}
	if !same || c.lease != c.lastLease {
		if _, err := c.cli.Txn(cctx).Then(clientv3.OpPut(c.prefix+"nodes/"+c.o.Node, string(b), clientv3.WithLease(c.lease)),
			clientv3.OpPut(c.prefix+"members/"+c.o.Node, string(b))).Commit(); err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				c.lease = 0 // expired while etcd was away: a new one next time
			}
			down(err)
			return
		}
		c.lastRec, c.lastPut, c.lastLease = &rec, time.Now(), c.lease
	}
	if _, err := c.cli.KeepAliveOnce(cctx, c.lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			c.lease = 0
		}
		down(err)
		return
	}
	c.setUp(true, nil)
}

// recordRefresh is how often a node writes its record when nothing in it
// changed.
const recordRefresh = 10 * time.Second

// sameRecord reports whether two records say the same but for when.
func sameRecord(a, b NodeRecord) bool {
	a.Updated, b.Updated = time.Time{}, time.Time{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// record is the node's record as of now.
func (c *Cluster) record(srv *server.Server) NodeRecord {
	now := time.Now()
	c.mu.Lock()
	rec := NodeRecord{Name: c.o.Node, Admin: c.o.Admin, Version: c.o.Version, Started: c.started.UTC(), Updated: now.UTC(),
		Revision: c.applied}
	c.mu.Unlock()
	rec.Health = map[string]map[string]string{}
	sn := srv.Snapshot()
	for _, g := range sn.Groups {
		h := map[string]string{}
		for _, t := range g.Targets {
			h[t.ID] = t.State.String()
			if d := t.Drain; d != nil {
				if rec.Sessions == nil {
					rec.Sessions = map[string]map[string]NodeSessions{}
				}
				if rec.Sessions[g.Name] == nil {
					rec.Sessions[g.Name] = map[string]NodeSessions{}
				}
				rec.Sessions[g.Name][t.ID] = NodeSessions{LastSession: d.LastSession, Left: d.SessionsLeft, Complete: d.Complete}
			}
		}
		rec.Health[g.Name] = h
	}
	rec.Keys = srv.KeyIDs()
	rec.OwnKeys = sn.Config != nil && len(sn.Config.CookieKeys) > 0
	return rec
}

// holdDrains tells every drained target what the other nodes have seen:
// their last session on it, and how recent their reports are, so that a
// drain completes only when no node has seen a session for its idle
// window.
func (c *Cluster) holdDrains() {
	srv := c.srv.Load()
	if srv == nil {
		return
	}
	c.mu.Lock()
	peers := c.m.peers(c.o.Node, time.Now())
	c.mu.Unlock()
	srv.EachTarget(func(group string, t *target.Target) {
		if !t.Drained() {
			return
		}
		// A peer's report counts up to when it was made, and only if it
		// reports the target's drain: a peer that runs the group and has
		// not applied the drain yet may still give the target new
		// sessions. A peer that does not run the group has none to give.
		clock := time.Unix(0, math.MaxInt64)
		for _, n := range peers {
			if _, runs := n.Health[group]; !runs {
				continue
			}
			s, ok := n.Sessions[group][t.ID]
			if !ok {
				clock = time.Unix(0, 1)
				continue
			}
			if !s.LastSession.IsZero() {
				t.NoteSession(s.LastSession)
			}
			if n.Updated.Before(clock) {
				clock = n.Updated
			}
		}
		// After NoteSession: a drain reads the clock first (drain.go).
		t.SetClusterClock(clock)
	})
}

// Status is the node's view of the cluster, for the admin API.
type Status struct {
	Node      string       `json:"node"`
	Endpoints []string     `json:"endpoints"`
	Prefix    string       `json:"prefix"`
	Up        bool         `json:"etcd_up"`
	DownSince time.Time    `json:"etcd_down_since,omitzero"`
	Applied   int64        `json:"revision_applied"`
	Resyncs   uint64       `json:"resyncs"`
	Nodes     []NodeRecord `json:"nodes"`
	// Away are members whose lease expired without a clean leave, less
	// than memberTimeout ago: cut off from etcd, perhaps still serving.
	// Key rotations and drains wait for them.
	Away []NodeRecord `json:"away"`
	Keys []KeyStatus  `json:"keys"`
}

// KeyStatus is one cookie key of the ring, its secret left out.
type KeyStatus struct {
	ID      uint32    `json:"id"`
	State   string    `json:"state"`
	Added   time.Time `json:"added"`
	Sealing time.Time `json:"sealing,omitzero"`
	Retire  time.Time `json:"retire,omitzero"`
	// Nodes are the nodes that open cookies with it.
	Nodes []string `json:"nodes"`
}

// Status returns the node's view of the cluster.
func (c *Cluster) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Node: c.o.Node, Endpoints: c.o.Config.Etcd.Endpoints, Prefix: c.o.Config.Etcd.Prefix, Up: c.up.Load(),
		Applied: c.applied, Resyncs: c.resyncs.Load(), Nodes: []NodeRecord{}, Keys: []KeyStatus{}}
	if n := c.downAt.Load(); n != 0 {
		st.DownSince = time.Unix(0, n).UTC()
	}
	for _, n := range c.m.Nodes {
		st.Nodes = append(st.Nodes, n)
	}
	slices.SortFunc(st.Nodes, func(a, b NodeRecord) int { return strings.Compare(a.Name, b.Name) })
	st.Away = []NodeRecord{}
	for _, n := range c.m.peers(c.o.Node, time.Now()) {
		if _, live := c.m.Nodes[n.Name]; !live {
			st.Away = append(st.Away, n)
		}
	}
	slices.SortFunc(st.Away, func(a, b NodeRecord) int { return strings.Compare(a.Name, b.Name) })
	for _, k := range c.m.Keys.Keys {
		ks := KeyStatus{ID: k.ID, State: string(k.State), Added: k.Added, Sealing: k.Sealing, Retire: k.Retire, Nodes: []string{}}
		for _, n := range st.Nodes {
			if slices.Contains(n.Keys, k.ID) {
				ks.Nodes = append(ks.Nodes, n.Name)
			}
		}
		st.Keys = append(st.Keys, ks)
	}
	return st
}

// EtcdUp reports whether the node reaches etcd now.
func (c *Cluster) EtcdUp() bool { return c.up.Load() }

// Applied is the revision of the shared state the node runs.
func (c *Cluster) Applied() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// NodeCount is the number of nodes with a live record.
func (c *Cluster) NodeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m.Nodes)
}

// Resyncs counts the whole reads after a compaction.
func (c *Cluster) Resyncs() uint64 { return c.resyncs.Load() }

// reseed shares the groups this node runs that etcd lacks: those of a node
// that started from its snapshot with a group new in its file, or a prefix
// emptied by hand. Each is written whole, as the node runs it (its
// targets' generations included, provisional ones too), only if still
// absent.
func (c *Cluster) reseed(ctx context.Context) {
	srv := c.srv.Load()
	if srv == nil {
		return
	}
	sn := srv.Snapshot()
	if sn.Config == nil {
		return
	}
	var ops []clientv3.Op
	var cmps []clientv3.Cmp
	var names []string
	c.mu.Lock()
	for _, gc := range sn.Config.TargetGroups {
		if sg := c.m.Groups[gc.Name]; sg != nil && sg.Attributes != nil {
			continue
		}
		gens := map[string]uint64{}
		if gs := sn.Group(gc.Name); gs != nil {
			for _, ts := range gs.Targets {
				gens[ts.ID] = ts.Generation
			}
		}
		key := c.prefix + "groups/" + gc.Name
		b, _ := json.Marshal(groupRecord{Attributes: gc.Attributes()})
		ops = append(ops, clientv3.OpPut(key, string(b)))
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		for _, t := range gc.Targets {
			if gens[t.ID] == 0 {
				continue // not applied yet: the next round
			}
			b, _ := json.Marshal(record(t, gens[t.ID]))
			ops = append(ops, clientv3.OpPut(key+"/targets/"+t.ID, string(b)))
		}
		names = append(names, gc.Name)
	}
	c.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	cctx, cancel := c.call(ctx)
	resp, err := c.cli.Txn(cctx).If(cmps...).Then(ops...).Commit()
	cancel()
	switch {
	case err != nil:
		c.log.Warn("cannot share the groups etcd lacks; trying again", "groups", names, "err", err)
	case resp.Succeeded:
		c.log.Info("shared the groups etcd lacked, as this node runs them", "groups", names, "revision", resp.Header.Revision)
	}
	// Not succeeded: another node shared one meanwhile; the watch brings
	// it, and the next round shares the rest.
}
