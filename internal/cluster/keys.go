package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/latch-lb/latch/internal/server"
	"github.com/latch-lb/latch/internal/sticky"
)

// Key rotation. A rotation adds a key that opens but does not seal yet;
// once every node's record says it opens with it, the key becomes the one
// that seals and the old sealing key opens only, until the longest
// stickiness duration has passed, when it leaves the ring. So no node ever
// receives a cookie it cannot open. Every step is one compare-and-swap on
// P/keys that any node may make: the first wins, the others see it done.

// Rotate starts a key rotation, and returns the new key's id. It errs
// while another rotation is under way, when the config's cookie_keys
// replace the cluster's ring, and while etcd is away.
func (c *Cluster) Rotate(ctx context.Context) (uint32, error) {
	if srv := c.srv.Load(); srv != nil {
		if _, running, _ := srv.Configs(); running != nil && len(running.CookieKeys) > 0 {
			return 0, errors.New("the config file's cookie_keys replace the cluster's key ring: rotate them in the file")
		}
	}
	var id uint32
	err := c.updateKeys(ctx, func(r *keyRing) error {
		for _, k := range r.Keys {
			if k.State == keyAdded {
				return fmt.Errorf("%w: key %d, added %s, is not sealing yet: a rotation is under way (it completes when every node opens with it)",
					errRotating, k.ID, k.Added.Format(time.RFC3339))
			}
		}
		k, err := sticky.NewKey()
		if err != nil {
			return err
		}
		for slices.ContainsFunc(r.Keys, func(o keyRecord) bool { return o.ID == k.ID }) {
			if k, err = sticky.NewKey(); err != nil {
				return err
			}
		}
		id = k.ID
		r.Keys = append(r.Keys, keyRecord{ID: k.ID, Secret: base64.StdEncoding.EncodeToString(k.Secret), State: keyAdded,
			Added: time.Now().UTC().Truncate(time.Second)})
		return nil
	})
	if err != nil {
		return 0, err
	}
	c.log.Info("cookie key rotation started: the new key seals once every node opens with it", "key", id)
	return id, nil
}

var (
	errRotating = errors.New("a key rotation is under way")
	errNoChange = errors.New("nothing to change")
)

// updateKeys changes P/keys with change, on the condition that no other
// node changed it meanwhile (retrying with what it wrote).
func (c *Cluster) updateKeys(ctx context.Context, change func(*keyRing) error) error {
	if !c.up.Load() {
		return c.unavailable(errors.New("it has been away since "+c.downSince()), false)
	}
	key := c.prefix + "keys"
	for range 5 {
		c.mu.Lock()
		r := keyRing{Keys: slices.Clone(c.m.Keys.Keys)}
		mod := c.m.KeysMod
		c.mu.Unlock()
		if err := change(&r); err != nil {
			return err
		}
		if _, err := r.ring(); err != nil {
			return err
		}
		b, _ := json.Marshal(r)
		cctx, cancel := c.call(ctx)
		resp, err := c.cli.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
			Then(clientv3.OpPut(key, string(b))).Else(clientv3.OpGet(key)).Commit()
		cancel()
		if err != nil {
			return c.unavailable(err, true)
		}
		c.mu.Lock()
		if resp.Succeeded {
			c.m.Keys, c.m.KeysMod = r, resp.Header.Revision
			if c.m.Rev == resp.Header.Revision-1 {
				c.m.Rev = resp.Header.Revision
			}
		} else if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			c.m.put("keys", kvs[0].Value, kvs[0].ModRevision)
		}
		c.mu.Unlock()
		if resp.Succeeded {
			c.kickSnapshot()
			return nil
		}
	}
	return fmt.Errorf("%w: the cookie key ring kept changing", server.ErrStoreConflict)
}

// rotateStep makes what is due of a rotation: the added key seals once
// every live node opens with it; old keys leave once their cookies have
// expired; a new rotation starts when the sealing key is older than
// cluster.key_rotation_days.
func (c *Cluster) rotateStep(ctx context.Context) {
	now := time.Now().UTC().Truncate(time.Second)
	c.mu.Lock()
	// Every node that seals with the cluster's ring: the live ones (this
	// one too), and those cut off lately, which may still serve.
	var nodes []NodeRecord
	for _, n := range append(c.m.peers(c.o.Node, time.Now()), c.m.Nodes[c.o.Node]) {
		if n.Name != "" && !n.OwnKeys {
			nodes = append(nodes, n)
		}
	}
	ring := c.m.Keys
	c.mu.Unlock()
	srv := c.srv.Load()
	if srv == nil {
		return
	}
	_, running, _ := srv.Configs()
	if running == nil || len(running.CookieKeys) > 0 {
		return
	}
	everyNode := func(id uint32) bool {
		for _, n := range nodes {
			if !slices.Contains(n.Keys, id) {
				return false
			}
		}
		return len(nodes) > 0
	}
	due := false
	for _, k := range ring.Keys {
		switch {
		case k.State == keyAdded && everyNode(k.ID):
			due = true
		case k.State == keyOld && !k.Retire.IsZero() && now.After(k.Retire):
			due = true
		}
	}
	if days := c.o.Config.KeyRotationDays; days > 0 {
		rotating := slices.ContainsFunc(ring.Keys, func(k keyRecord) bool { return k.State == keyAdded })
		if s := ring.sealing(); s != nil && !rotating && now.Sub(s.Sealing) >= time.Duration(days)*24*time.Hour {
			if _, err := c.Rotate(ctx); err != nil && !errors.Is(err, errRotating) {
				c.log.Warn("the scheduled key rotation failed; trying again later", "err", err)
			}
		}
	}
	if !due {
		return
	}
	retire := now.Add(maxStickiness(running))
	var sealed uint32
	var dropped []uint32
	err := c.updateKeys(ctx, func(r *keyRing) error {
		sealed, dropped = 0, nil
		var keep []keyRecord
		var added *keyRecord
		for i := range r.Keys {
			if r.Keys[i].State == keyAdded && everyNode(r.Keys[i].ID) {
				added = &r.Keys[i]
			}
		}
		for _, k := range r.Keys {
			switch {
			case added != nil && k.ID == added.ID:
				k.State, k.Sealing = keySealing, now
				sealed = k.ID
			case added != nil && k.State == keySealing:
				k.State, k.Retire = keyOld, retire
			case k.State == keyOld && !k.Retire.IsZero() && now.After(k.Retire):
				dropped = append(dropped, k.ID)
				continue
			}
			keep = append(keep, k)
		}
		if sealed == 0 && len(dropped) == 0 {
			return errNoChange
		}
		r.Keys = keep
		return nil
	})
	switch {
	case errors.Is(err, errNoChange):
	case err != nil:
		c.log.Warn("a key rotation step failed; trying again", "err", err)
	default:
		if sealed != 0 {
			c.log.Info("every node opens with the new cookie key: it seals now", "key", sealed, "old keys retire", retire)
		}
		for _, id := range dropped {
			c.log.Info("an old cookie key left the ring: its cookies have expired", "key", id)
		}
	}
}
