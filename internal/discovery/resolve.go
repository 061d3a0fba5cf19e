package discovery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/latch-lb/latch/internal/config"
)

// The standard library's resolver gives neither a record's TTL nor an SRV
// record's weight and priority as the server sent them (net.LookupSRV
// sorts and shuffles by them), so latch asks with github.com/miekg/dns.

// queryTimeout bounds one query to one server.
const queryTimeout = 2 * time.Second

// answer is one lookup's result: the targets the name resolves to, by id
// (host:port), with their weights, and how long it may be kept.
type answer struct {
	targets map[string]int
	ttl     time.Duration // noTTL: the answer said nothing (no record, no SOA)
}

// noTTL is the TTL of an answer that gives none.
const noTTL = time.Duration(math.MaxInt64)

// resolver looks a group's name up.
type resolver struct {
	cfg        config.DNSDiscovery
	resolvConf string // the system's resolver config, read at each lookup
	udp, tcp   *dns.Client
}

func newResolver(cfg config.DNSDiscovery, resolvConf string) *resolver {
	return &resolver{cfg: cfg, resolvConf: resolvConf,
		udp: &dns.Client{Net: "udp", Timeout: queryTimeout}, tcp: &dns.Client{Net: "tcp", Timeout: queryTimeout}}
}

// lookup resolves the group's name. An error (no server answered, or one
// answered SERVFAIL, REFUSED or another failure) means the name's targets
// are unknown; a name that does not exist (NXDOMAIN) or has no record of
// the type is an answer with no target.
func (r *resolver) lookup(ctx context.Context) (answer, error) {
	servers, names, err := r.servers()
	if err != nil {
		return answer{}, err
	}
	switch r.cfg.Type {
	case config.DNSTypeSRV:
		return r.lookupSRV(ctx, servers, names)
	default:
		qtype := dns.TypeA
		if r.cfg.Type == config.DNSTypeAAAA {
			qtype = dns.TypeAAAA
		}
		msg, err := r.query(ctx, servers, names, qtype)
		if err != nil {
			return answer{}, err
		}
		a := answer{targets: map[string]int{}, ttl: negativeTTL(msg)}
		for _, ip := range addresses(msg.Answer, qtype, "") {
			a.targets[net.JoinHostPort(ip.addr.String(), fmt.Sprint(r.cfg.Port))] = 1
			a.ttl = minTTL(a.ttl, ip.ttl)
		}
		return a, nil
	}
}

// servers returns the servers to ask, in order, and the names to ask
// them, in order: the configured resolver and the name as written (fully
// qualified), or /etc/resolv.conf's servers and its search list.
func (r *resolver) servers() (servers, names []string, err error) {
	if r.cfg.Resolver != "" {
		return []string{r.cfg.Resolver}, []string{dns.Fqdn(r.cfg.Name)}, nil
	}
	cc, err := dns.ClientConfigFromFile(r.resolvConf)
	if err != nil {
		return nil, nil, fmt.Errorf("the system's resolver: %v", err)
	}
	if len(cc.Servers) == 0 {
		return nil, nil, fmt.Errorf("the system's resolver: %s names no nameserver", r.resolvConf)
	}
	for _, s := range cc.Servers {
		servers = append(servers, net.JoinHostPort(s, cc.Port))
	}
	return servers, cc.NameList(r.cfg.Name), nil
}

// query asks for names in turn, each of servers in turn, until a server
// answers for a name that exists. It returns the last name's answer when
// none exists (NXDOMAIN: an answer), and an error when no server answered
// one of them.
func (r *resolver) query(ctx context.Context, servers, names []string, qtype uint16) (*dns.Msg, error) {
	var last *dns.Msg
	for _, name := range names {
		msg, err := r.ask(ctx, servers, name, qtype)
		if err != nil {
			return nil, err
		}
		last = msg
		if msg.Rcode == dns.RcodeSuccess {
			return msg, nil
		}
	}
	return last, nil
}

// ask asks servers in turn for one name, until one answers NOERROR or
// NXDOMAIN.
func (r *resolver) ask(ctx context.Context, servers []string, name string, qtype uint16) (*dns.Msg, error) {
	var errs []error
	for _, server := range servers {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.RecursionDesired = true
		m.SetEdns0(4096, false)
		msg, _, err := r.udp.ExchangeContext(ctx, m, server)
		if err == nil && msg.Truncated {
			msg, _, err = r.tcp.ExchangeContext(ctx, m, server)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %s from %s: %v", name, dns.TypeToString[qtype], server, err))
		case msg.Rcode != dns.RcodeSuccess && msg.Rcode != dns.RcodeNameError:
			errs = append(errs, fmt.Errorf("%s %s from %s: %s", name, dns.TypeToString[qtype], server, dns.RcodeToString[msg.Rcode]))
		default:
			return msg, nil
		}
	}
	return nil, errors.Join(errs...)
}

// lookupSRV resolves an SRV name: the records of the lowest priority
// present, each target host's addresses (from the answer's additional
// section when the server gave them, else asked for: A, then AAAA when it
// has no A), with the records' weights.
func (r *resolver) lookupSRV(ctx context.Context, servers, names []string) (answer, error) {
	msg, err := r.query(ctx, servers, names, dns.TypeSRV)
	if err != nil {
		return answer{}, err
	}
	a := answer{targets: map[string]int{}, ttl: negativeTTL(msg)}
	var srvs []*dns.SRV
	for _, rr := range msg.Answer {
		if s, ok := rr.(*dns.SRV); ok && s.Target != "." { // "." says the service is not here (RFC 2782)
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return a, nil
	}
	lowest := slices.MinFunc(srvs, func(x, y *dns.SRV) int { return int(x.Priority) - int(y.Priority) }).Priority
	weights := map[string]int{}
	for _, s := range srvs {
		if s.Priority != lowest {
			continue
		}
		a.ttl = minTTL(a.ttl, s.Hdr.Ttl)
		ips := append(addresses(msg.Extra, dns.TypeA, s.Target), addresses(msg.Extra, dns.TypeAAAA, s.Target)...)
		if len(ips) == 0 {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
				m, err := r.query(ctx, servers, []string{s.Target}, qtype)
				if err != nil {
					return answer{}, err
				}
				if ips = addresses(m.Answer, qtype, ""); len(ips) > 0 {
					break
				}
			}
		}
		for _, ip := range ips {
			a.ttl = minTTL(a.ttl, ip.ttl)
			id := net.JoinHostPort(ip.addr.String(), fmt.Sprint(s.Port))
			// Two records for one address and port: the heavier counts.
			if w, ok := weights[id]; !ok || int(s.Weight) > w {
				weights[id] = int(s.Weight)
			}
		}
	}
	for id, w := range weights {
		a.targets[id] = Weight(w, weights)
	}
	return a, nil
}

// Weight maps an SRV weight (0-65535) onto latch's target weights
// (1-1000), given every weight of the answer: weights that all fit in
// 1-1000 are taken as they are (0 as 1: RFC 2782 gives a weight-0 record
// a small share beside heavier ones); otherwise each is scaled by
// 1000/the largest and rounded, at least 1, so that their ratios hold to
// within a thousandth of the largest.
func Weight(w int, all map[string]int) int {
	most := 0
	for _, x := range all {
		most = max(most, x)
	}
	if most > 1000 {
		w = int(math.Round(float64(w) * 1000 / float64(most)))
	}
	return min(max(w, 1), 1000)
}

type address struct {
	addr netip.Addr
	ttl  uint32
}

// addresses returns the addresses of the A or AAAA records in rrs, of
// owner (any owner when "": a resolver's answer may come through CNAMEs).
func addresses(rrs []dns.RR, qtype uint16, owner string) []address {
	var out []address
	for _, rr := range rrs {
		if owner != "" && !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		var ip net.IP
		switch v := rr.(type) {
		case *dns.A:
			if qtype == dns.TypeA {
				ip = v.A
			}
		case *dns.AAAA:
			if qtype == dns.TypeAAAA {
				ip = v.AAAA
			}
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, address{addr.Unmap(), rr.Header().Ttl})
		}
	}
	return out
}

// negativeTTL is how long an answer with no record may be kept (RFC 2308:
// the SOA's TTL, at most its minimum), noTTL when it carries no SOA.
func negativeTTL(msg *dns.Msg) time.Duration {
	for _, rr := range msg.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return noTTL
}

// minTTL returns the shorter of d and ttl seconds.
func minTTL(d time.Duration, ttl uint32) time.Duration {
	return min(d, time.Duration(ttl)*time.Second)
}
