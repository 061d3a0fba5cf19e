package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Discovery is how a target group finds targets that the file does not
// list. It belongs to the file alone: a runtime change cannot set it.
type Discovery struct {
	// DNS registers the addresses a DNS name resolves to; nil: none.
	DNS *DNSDiscovery
}

// DNSDiscovery resolves a name on a schedule (package discovery): the
// addresses that appear are registered, those that disappear are drained
// (keep_sessions) and then deregistered. The zero value is not valid (it
// has no name); a file's defaults are DefaultDNSDiscovery's.
type DNSDiscovery struct {
	// Name is the name looked up: a DNS name of at most 253 characters,
	// labels of letters, digits, hyphens and underscores (SRV names start
	// with _service._proto).
	Name string
	// Type is the record type asked for: A (the zero value), AAAA or SRV.
	Type DNSType
	// Port is the targets' port for A and AAAA (1-65535, required); SRV
	// records carry their own ports, so it must be 0 for SRV.
	Port int
	// Refresh is the longest time between two lookups (1 s to 3600 s;
	// DefaultDNSRefresh in a file). A shorter TTL in the answer resolves
	// sooner, never more often than MinDNSRefresh.
	Refresh time.Duration
	// Resolver is the DNS server asked, an IP address and port
	// (127.0.0.1:53, [::1]:5353); "": the system's, from /etc/resolv.conf.
	Resolver string
	// DrainIdle and DrainDeadline are the keep_sessions drain given to a
	// target whose address the name no longer resolves to (see Drain):
	// DrainIdle 1 s to 24 h, 0 meaning DefaultDrainIdle; DrainDeadline 0
	// (none) or from DrainIdle to 7 days.
	DrainIdle     time.Duration
	DrainDeadline time.Duration
}

// Bounds and defaults of DNS discovery's schedule.
const (
	DefaultDNSRefresh = 10 * time.Second
	// MinDNSRefresh is the floor under every re-resolution, however short
	// the TTL (0 included): a resolver is never asked more than once a
	// second per group.
	MinDNSRefresh = time.Second
	MaxDNSRefresh = time.Hour
)

// DefaultDNSDiscovery returns a file's defaults: type A, a refresh every
// 10 s, the system's resolver, drains of DefaultDrainIdle.
func DefaultDNSDiscovery() DNSDiscovery {
	return DNSDiscovery{Refresh: DefaultDNSRefresh}
}

// Drain returns the drain discovery gives a target that disappeared.
func (d *DNSDiscovery) Drain() Drain {
	return Drain{Mode: DrainKeepSessions, Idle: d.DrainIdle, Deadline: d.DrainDeadline, Discovery: true}
}

// DNSType is the record type DNS discovery asks for.
type DNSType uint8

const (
	DNSTypeA DNSType = iota
	DNSTypeAAAA
	DNSTypeSRV
)

var dnsTypeNames = []string{DNSTypeA: "A", DNSTypeAAAA: "AAAA", DNSTypeSRV: "SRV"}

func (t DNSType) String() string                { return enumString("DNSType", dnsTypeNames, int(t)) }
func (t DNSType) MarshalText() ([]byte, error)  { return enumText(t, dnsTypeNames, int(t)) }
func (t DNSType) valid() bool                   { return int(t) < len(dnsTypeNames) }
func (t *DNSType) UnmarshalText(b []byte) error { return t.set(string(b)) }

func (t *DNSType) set(s string) error {
	i := index(dnsTypeNames, s)
	if i < 0 {
		return fmt.Errorf("%q is not one of %s%s", s, strings.Join(dnsTypeNames, ", "), suggestion(s, dnsTypeNames))
	}
	*t = DNSType(i)
	return nil
}

// dnsRefresh is refresh_seconds' range; its parse refuses only what is not
// a number, Validate the rest.
var dnsRefresh = seconds{lo: 1, hi: 3600}

func (d *decoder) discovery(n *yaml.Node, path string) *Discovery {
	if n == nil {
		return nil
	}
	m := d.mapping(n, path, "dns")
	if m == nil {
		return nil
	}
	disc := &Discovery{}
	if dn := d.required(n, m, path, "dns"); dn != nil {
		disc.DNS = d.dnsDiscovery(dn, path+".dns")
	}
	return disc
}

func (d *decoder) dnsDiscovery(n *yaml.Node, path string) *DNSDiscovery {
	dd := DefaultDNSDiscovery()
	m := d.mapping(n, path, "name", "type", "port", "refresh_seconds", "resolver", "drain_idle_seconds", "drain_deadline_seconds")
	if m == nil {
		return &dd
	}
	if v := d.required(n, m, path, "name"); v != nil {
		dd.Name, _ = d.scalar(v, path+".name")
	}
	typed := true
	if v := m["type"]; v != nil {
		typed = d.text(v, path+".type", &dd.Type)
	}
	if v := m["port"]; v != nil {
		d.int(v, path+".port", &dd.Port)
	} else if typed && dd.Type != DNSTypeSRV {
		d.addf(n, path+".port", "missing; A and AAAA records carry no port")
	}
	if v := m["refresh_seconds"]; v != nil {
		d.seconds(v, path+".refresh_seconds", dnsRefresh, &dd.Refresh)
	}
	if v := m["resolver"]; v != nil {
		dd.Resolver, _ = d.scalar(v, path+".resolver")
	}
	if v := m["drain_idle_seconds"]; v != nil {
		d.seconds(v, path+".drain_idle_seconds", seconds{lo: 1, hi: MaxDrainIdle.Seconds()}, &dd.DrainIdle)
	}
	if v := m["drain_deadline_seconds"]; v != nil {
		d.seconds(v, path+".drain_deadline_seconds", seconds{lo: 1, hi: MaxDrainDeadline.Seconds(), zero: "none"}, &dd.DrainDeadline)
	}
	return &dd
}

// discovery validates a group's discovery settings.
func (v *validator) discovery(disc *Discovery, path string) {
	if disc == nil {
		return
	}
	path += ".discovery"
	if disc.DNS == nil {
		v.add(path+".dns", "missing; dns is the only kind of discovery")
		return
	}
	d := disc.DNS
	path += ".dns"
	if msg := checkDNSName(d.Name); msg != "" {
		v.add(path+".name", msg)
	}
	if !d.Type.valid() {
		v.add(path+".type", enumProblem(d.Type, dnsTypeNames))
	}
	switch {
	case d.Type == DNSTypeSRV && d.Port != 0:
		v.addf(path+".port", "%d: SRV records carry their own ports; remove port", d.Port)
	case d.Type != DNSTypeSRV:
		if msg := checkRange(d.Port, 1, 65535, ""); msg != "" {
			v.add(path+".port", msg)
		}
	}
	if msg := dnsRefresh.check(d.Refresh); msg != "" {
		v.add(path+".refresh_seconds", msg)
	}
	if d.Resolver != "" {
		if ap, err := netip.ParseAddrPort(d.Resolver); err != nil || ap.Port() == 0 {
			v.addf(path+".resolver", "%q is not an IP address and port, such as 127.0.0.1:53 or [::1]:53", d.Resolver)
		}
	}
	// A drain's own check, with the discovery's names for its fields.
	paths, msgs := d.Drain().WithDefaults().problems()
	for k := range paths {
		v.add(path+".drain_"+paths[k]+"_seconds", msgs[k])
	}
}

// checkDNSName returns what is wrong with a name to look up, or "".
func checkDNSName(name string) string {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return "must not be empty"
	}
	if len(n) > 253 {
		return fmt.Sprintf("%q is longer than 253 characters", name)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Sprintf("%q is not a DNS name: each label is 1-63 characters", name)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Sprintf("%q is not a DNS name: use letters, digits, hyphens and underscores", name)
			}
		}
	}
	return ""
}

// cloneDiscovery returns a deep copy of d.
func cloneDiscovery(d *Discovery) *Discovery {
	if d == nil {
		return nil
	}
	c := *d
	if d.DNS != nil {
		dns := *d.DNS
		c.DNS = &dns
	}
	return &c
}

// sameDiscovery says a and b have the same settings.
func sameDiscovery(a, b *Discovery) bool { return reflect.DeepEqual(a, b) }
