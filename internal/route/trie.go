package route

import "strings"

// tnode is a node of a radix tree of literal keys: path prefixes, and the
// reversed suffixes of wildcard hosts. A lookup walks the tree along one
// request's path (or host) and visits every key that starts it, so its
// cost grows with the length of the path, not the number of keys.
type tnode[V any] struct {
	label string // the key bytes on the edge into this node
	val   V
	set   bool        // a key ends here
	first string      // first[i] == kids[i].label[0]
	kids  []*tnode[V] // in the order of first
}

// insert returns the value of key, adding the key if it is new. n is the
// root, whose label is empty.
func (n *tnode[V]) insert(key string) *V {
	for {
		if key == "" {
			n.set = true
			return &n.val
		}
		i := strings.IndexByte(n.first, key[0])
		if i < 0 {
			k := &tnode[V]{label: key, set: true}
			n.first += key[:1]
			n.kids = append(n.kids, k)
			return &k.val
		}
		k := n.kids[i]
		common := 0
		for common < len(k.label) && common < len(key) && k.label[common] == key[common] {
			common++
		}
		if common < len(k.label) {
			// Split k's edge where key leaves it.
			mid := &tnode[V]{label: k.label[:common], first: k.label[common : common+1], kids: []*tnode[V]{k}}
			k.label = k.label[common:]
			n.kids[i] = mid
			k = mid
		}
		n, key = k, key[common:]
	}
}

// A walker visits the nodes of a tree whose keys start s, shortest first.
// With rev, s is read from its end and in lower case (reversed host
// suffixes are stored lower case).
type walker[V any] struct {
	n     *tnode[V] // the node reached, or nil when the walk is over
	fresh bool      // n is not visited yet
	s     []byte
	i     int // bytes of s consumed
	rev   bool
}

func walk[V any](root *tnode[V], s []byte, rev bool) walker[V] {
	return walker[V]{n: root, fresh: true, s: s, rev: rev}
}

// next returns the next node on the walk that ends a key, or nil.
func (w *walker[V]) next() *tnode[V] {
	for w.n != nil {
		if w.fresh {
			w.fresh = false
			if w.n.set {
				return w.n
			}
		}
		n := w.n
		w.n = nil
		if w.i == len(w.s) {
			return nil
		}
		i := strings.IndexByte(n.first, w.at(w.i))
		if i < 0 {
			return nil
		}
		k := n.kids[i]
		if len(w.s)-w.i < len(k.label) {
			return nil
		}
		for j := 1; j < len(k.label); j++ {
			if w.at(w.i+j) != k.label[j] {
				return nil
			}
		}
		w.i += len(k.label)
		w.n, w.fresh = k, true
	}
	return nil
}

func (w *walker[V]) at(i int) byte {
	if w.rev {
		return lower(w.s[len(w.s)-1-i])
	}
	return w.s[i]
}
