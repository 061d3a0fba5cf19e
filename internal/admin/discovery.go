package admin

import (
	"time"

	"github.com/latch-lb/latch/internal/discovery"
)

// Discovery is DNS discovery's status (discovery.Discovery).
type Discovery interface {
	Status() []discovery.Status
}

// DiscoveryView is a group's DNS discovery as it runs: the name, the
// last lookup, and its failure while it fails (the group then keeps the
// last answer's targets).
type DiscoveryView struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Lookups     uint64   `json:"lookups"`
	Failures    uint64   `json:"failures"`
	LastLookup  string   `json:"last_lookup,omitempty"`
	LastSuccess string   `json:"last_success,omitempty"`
	Error       string   `json:"error,omitempty"`
	Targets     []string `json:"targets"` // the last answer's
	Next        string   `json:"next_lookup,omitempty"`
}

// discoveryView returns group's discovery status, or nil.
func (a *Admin) discoveryView(group string) *DiscoveryView {
	if a.o.Discovery == nil {
		return nil
	}
	for _, s := range a.o.Discovery.Status() {
		if s.Group != group {
			continue
		}
		v := &DiscoveryView{Name: s.Name, Type: s.Type, Lookups: s.Lookups, Failures: s.Failures, Error: s.Error,
			Targets: append([]string{}, s.Targets...), LastLookup: rfc3339(s.LastLookup), LastSuccess: rfc3339(s.LastSuccess),
			Next: rfc3339(s.Next)}
		return v
	}
	return nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
