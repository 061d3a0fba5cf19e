package proxy

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
	"github.com/latch-lb/latch/internal/route"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// ActionKind is what a rule does with a request.
type ActionKind uint8

const (
	Forward ActionKind = iota
	Redirect
	FixedResponse
)

// Action is a rule's action at run time, its target groups resolved.
type Action struct {
	Kind ActionKind
	// Backends are a forward's target groups: one, or several weighted.
	Backends []*Backend
	// Groups is the weighted forward's group stickiness (AWSALBTG), or nil.
	Groups   *sticky.Policy
	Redirect *config.Redirect
	Fixed    *config.FixedResponse

	cum  []int  // running sums of the backends' weights, for a weighted pick
	body string // a redirect's body
}

// NewRedirect returns a redirect action.
func NewRedirect(r *config.Redirect) *Action {
	return &Action{Kind: Redirect, Redirect: r, body: redirectBody(r.StatusCode)}
}

// NewFixedResponse returns a fixed-response action.
func NewFixedResponse(f *config.FixedResponse) *Action {
	return &Action{Kind: FixedResponse, Fixed: f}
}

// Backend is a target group as a forward action reaches it.
type Backend struct {
	Group          *target.Group
	Sticky         *sticky.Policy // the group's own stickiness, or nil
	ConnectTimeout time.Duration
	Weight         int // in a weighted forward: 0-999
	// BalanceFactor keeps new sessions off targets above that multiple
	// of the mean load (0: off); RebalanceIdle moves sessions idle that
	// long to a new, lightly loaded target (0: never).
	BalanceFactor float64
	RebalanceIdle time.Duration
	// Key, when set, is the group's hash affinity (source_ip or hash): its
	// picker is a *balance.Hash.
	Key *HashKey
	// H2, when set, speaks HTTP/2 to the targets (protocol_version HTTP2).
	H2 *http.Transport
}

// NewForward returns a forward action to backends, with group stickiness
// when groups is set.
func NewForward(backends []*Backend, groups *sticky.Policy) *Action {
	a := &Action{Kind: Forward, Backends: backends, Groups: groups, cum: make([]int, len(backends))}
	sum := 0
	for i, b := range backends {
		sum += b.Weight
		a.cum[i] = sum
	}
	return a
}

// backend chooses the target group for a request: the one its group
// cookie names, if any (even at weight 0, so that a blue/green switch
// drains the old group's sessions instead of breaking them), as long as
// the group can serve; otherwise one by weight among the groups that can.
// A group with no healthy target is passed over (ALB answers 503 until
// the group cookie expires); when none can serve, the weights decide
// among all of them.
func (x *exchange) backend(a *Action, now time.Time) *Backend {
	x.groupName, x.groupIssued = "", 0
	if len(a.Backends) == 1 {
		return a.Backends[0]
	}
	if a.Groups != nil {
		if s, miss := a.Groups.ReadFields(&x.req, now); miss == sticky.Hit {
			for _, b := range a.Backends {
				if b.Group.Name == s.Target && healthy(b) {
					x.groupName, x.groupIssued = b.Group.Name, s.Issued
					return b
				}
			}
		}
	}
	b := a.pick(healthy)
	if b == nil {
		b = a.pick(func(*Backend) bool { return true })
	}
	if a.Groups != nil {
		x.groupName = b.Group.Name
	}
	return b
}

// healthy reports whether a group has a target that may take new requests
// without failing open.
func healthy(b *Backend) bool {
	v := b.Group.View()
	return v.Picker != nil && !v.FailOpen
}

// pick chooses a backend by weight among those ok accepts.
func (a *Action) pick(ok func(*Backend) bool) *Backend {
	total := a.cum[len(a.cum)-1]
	if total > 0 {
		for range 8 {
			i := sort.SearchInts(a.cum, rand.IntN(total)+1)
			if ok(a.Backends[i]) {
				return a.Backends[i]
			}
		}
	}
	// Few or no acceptable groups: the first acceptable one with weight,
	// then any acceptable one.
	for _, b := range a.Backends {
		if b.Weight > 0 && ok(b) {
			return b
		}
	}
	for _, b := range a.Backends {
		if ok(b) {
			return b
		}
	}
	return nil
}

// input fills x.in, what the rules look at, from the request head.
func (x *exchange) input() *route.Input {
	req, in := &x.req, &x.in
	in.Host, in.Method, in.Fields, in.Source = req.Host, req.Method, req.Fields, x.src
	t := originTarget(req)
	if i := bytes.IndexByte(t, '#'); i >= 0 {
		t = t[:i]
	}
	in.Path, in.Query = t, nil
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		in.Path, in.Query = t[:i], t[i+1:]
	}
	if len(in.Path) == 0 {
		in.Path = slash
	}
	return in
}

var slash = []byte("/")

// originTarget is the request target without an absolute form's
// "scheme://authority" (which may leave it empty, or starting with '?').
func originTarget(req *h1.Request) []byte {
	t := req.Target
	if !req.HostFromTarget {
		return t
	}
	t = t[bytes.Index(t, schemeSep)+3:]
	if j := bytes.IndexAny(t, "/?#"); j >= 0 {
		return t[j:]
	}
	return t[len(t):]
}

var schemeSep = []byte("://")

// redirectBody is what ALB sends with a redirect.
func redirectBody(status int) string {
	t := strconv.Itoa(status) + " " + http.StatusText(status)
	return "<html>\r\n<head><title>" + t + "</title></head>\r\n<body>\r\n<center><h1>" + t + "</h1></center>\r\n</body>\r\n</html>\r\n"
}

// answer serves a redirect or fixed-response action.
func (x *exchange) answer(rt *Route, a *Action) bool {
	keep := x.mayKeep(x.body.Done())
	x.cl.touch(x.h.now().UnixNano(), rt.IdleTimeout)
	if a.Kind == Redirect {
		loc := route.AppendLocation(x.buf[:0], a.Redirect, x.input(), x.h.proto, x.h.port)
		x.cl.writeReply(a.Redirect.StatusCode, "text/html", loc, a.body, keep)
		x.buf = loc[:0]
		return keep
	}
	f := a.Fixed
	x.cl.writeReply(f.StatusCode, f.ContentType, nil, f.MessageBody, keep)
	return keep
}

// peerAddr is what an exchange keeps of its client's address s
// (host:port): the address as X-Forwarded-For carries it (an IPv4-mapped
// IPv6 address as IPv4), and as rules and source-IP affinity see it.
func peerAddr(s string) ([]byte, netip.Addr) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return []byte(s), netip.Addr{}
	}
	a := ap.Addr().Unmap()
	return a.AppendTo(nil), a
}
