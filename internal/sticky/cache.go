package sticky

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"
)

// cache is a small direct-mapped table of immutable entries: a lookup is
// one hash and one atomic load, an insert one atomic store that may evict
// whatever held the slot. It needs no lock and no eviction bookkeeping,
// and a miss only costs the work the cache would have saved.
type cache[E any] struct {
	seed  maphash.Seed
	slots []atomic.Pointer[E]
}

// cacheSlots bounds each cache: 4096 slots of a pointer each, holding at
// most 4096 small entries.
const cacheSlots = 4096

func (c *cache[E]) init() {
	c.seed = maphash.MakeSeed()
	c.slots = make([]atomic.Pointer[E], cacheSlots)
}

func (c *cache[E]) slot(key []byte) *atomic.Pointer[E] {
	return &c.slots[maphash.Bytes(c.seed, key)&(cacheSlots-1)]
}

// slotFor is the slot of a sealed value's inputs.
func (c *cache[E]) slotFor(target string, gen uint64, issued int64, id uint64) *atomic.Pointer[E] {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(target)
	var b [24]byte
	binary.LittleEndian.PutUint64(b[:], gen)
	binary.LittleEndian.PutUint64(b[8:], uint64(issued))
	binary.LittleEndian.PutUint64(b[16:], id)
	h.Write(b[:])
	return &c.slots[h.Sum64()&(cacheSlots-1)]
}

// openedEntry is a cookie value that opened, and what it held.
type openedEntry struct {
	value string
	s     Session
}

// sealedEntry is the value sealed for a session, target and issue time
// during one second (its last-seen time).
type sealedEntry struct {
	target string
	gen    uint64
	issued int64
	id     uint64
	sec    int64
	value  string
}
