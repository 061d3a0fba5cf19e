package proxy

import (
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/latch-lb/latch/internal/config"
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

	cum         []int  // running sums of the backends' weights, for a weighted pick
	body        []byte // a redirect's body
	contentType []byte // a fixed response's Content-Type
}

// NewRedirect returns a redirect action.
func NewRedirect(r *config.Redirect) *Action {
	return &Action{Kind: Redirect, Redirect: r, body: []byte(redirectBody(r.StatusCode))}
}

// NewFixedResponse returns a fixed-response action.
func NewFixedResponse(f *config.FixedResponse) *Action {
	return &Action{Kind: FixedResponse, Fixed: f, contentType: []byte(f.ContentType)}
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
	// Retry says which failed requests go once more to another target
	// (retry.go); its zero value retries connect failures only, with no
	// budget to spare for them.
	Retry config.Retry
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
	x.groupName, x.groupIssued, x.groupID = "", 0, 0
	if len(a.Backends) == 1 {
		return a.Backends[0]
	}
	if a.Groups != nil {
		if s, miss := a.Groups.ReadFields(&x.req, now); miss == sticky.Hit {
			for _, b := range a.Backends {
				if b.Group.Name == s.Target && healthy(b) {
					x.groupName, x.groupIssued, x.groupID = b.Group.Name, s.Issued, s.ID
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

// redirectBody is what ALB sends with a redirect.
func redirectBody(status int) string {
	t := strconv.Itoa(status) + " " + http.StatusText(status)
	return "<html>\r\n<head><title>" + t + "</title></head>\r\n<body>\r\n<center><h1>" + t + "</h1></center>\r\n</body>\r\n</html>\r\n"
}
