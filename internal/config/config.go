// Package config turns a latch YAML file into a typed, validated configuration.
package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config is a whole latch configuration. A Config returned by Parse or Load
// is complete: defaults are filled in and every value has been checked.
type Config struct {
	Listeners    []Listener
	TargetGroups []TargetGroup
	// StateDir is where latch keeps what must survive a restart (cookie keys,
	// target registrations). Relative paths are resolved against the
	// directory of the config file.
	StateDir string
	// CookieKeys, when set, replace the key ring kept in StateDir. The first
	// key encrypts; all of them decrypt.
	CookieKeys []CookieKey
}

// Listener accepts client connections on one address.
type Listener struct {
	Name          string
	Address       string
	Protocol      string // "HTTP" or "HTTPS"
	DefaultAction Action
	// Rules are evaluated lowest Priority first; the first whose conditions
	// all match gives the action, and DefaultAction applies when none does.
	// They are in file order here (see rules.go and package route).
	Rules []Rule
	// IdleTimeout is ALB's idle_timeout.timeout_seconds: the longest a client
	// or target connection may send and receive nothing.
	IdleTimeout time.Duration
	// DesyncMode is ALB's routing.http.desync_mitigation_mode:
	// "monitor", "defensive" (the default) or "strictest".
	DesyncMode string
	// H2C serves cleartext HTTP/2 to clients that start with its preface
	// (latch's routing.http2.h2c.enabled).
	H2C bool
	// XFFMode is ALB's routing.http.xff_header_processing.mode: append
	// (the default), preserve or remove; XFFClientPort its
	// routing.http.xff_client_port.enabled.
	XFFMode       string
	XFFClientPort bool
	// DropInvalidHeaders is ALB's
	// routing.http.drop_invalid_header_fields.enabled: header fields whose
	// names are not letters, digits and hyphens are not forwarded.
	DropInvalidHeaders bool
	// TraceHeader is the request-tracing header latch adds or extends
	// (latch's routing.http.trace_header.name; X-Amzn-Trace-Id by
	// default, empty for none).
	TraceHeader string
	// HTTP2 is ALB's routing.http2.enabled (default true): an HTTPS
	// listener offers h2 in ALPN before http/1.1; when false, only http/1.1.
	HTTP2 bool
	// Certificates are an HTTPS listener's certificates. The first is the
	// default, for clients that send no SNI or a name no certificate holds
	// (ALB's default certificate); the others are chosen by SNI (see
	// package tlsconf). Nil on an HTTP listener.
	Certificates []Certificate
	// SSLPolicy is an HTTPS listener's ALB security policy (ssl_policy): its
	// TLS versions and TLS 1.2 cipher suites. tlsconf.DefaultPolicy when
	// unset; empty on an HTTP listener.
	SSLPolicy string
}

// Action is what a listener does with a request.
type Action struct {
	Type string // "forward", "redirect" or "fixed-response"
	// TargetGroup is where a forward sends every request. It is also set
	// when TargetGroups lists exactly one group, and empty when it lists
	// several (a weighted forward) or Type is not "forward".
	TargetGroup string
	// TargetGroups is a forward's weighted groups (forward.target_groups);
	// nil when the forward names one target_group.
	TargetGroups []WeightedGroup
	// GroupStickiness keeps a client on the group a weighted forward
	// picked for it (ALB's AWSALBTG cookie).
	GroupStickiness GroupStickiness
	Redirect        *Redirect      // for "redirect"
	FixedResponse   *FixedResponse // for "fixed-response"

	groupLine int // where TargetGroup was set, for messages
}

// TargetGroup is a set of targets with one health check, one balancing
// algorithm and one stickiness policy, as an ALB target group.
type TargetGroup struct {
	Name        string
	Targets     []Target
	HealthCheck HealthCheck
	Stickiness  Stickiness
	// ProtocolVersion is how latch speaks to the targets: HTTP1 (the
	// default) or HTTP2 (cleartext, with prior knowledge), as ALB's.
	ProtocolVersion string
	// Algorithm is round_robin, least_outstanding_requests or weighted_random.
	Algorithm           string
	DeregistrationDelay time.Duration
	// ConnectTimeout bounds the TCP connect to a target (ALB: 10 s, fixed).
	ConnectTimeout time.Duration
	// MinHealthyCount and MinHealthyPercent (0 = off) are ALB's
	// unhealthy_state_routing thresholds: below either, the group fails open.
	MinHealthyCount   int
	MinHealthyPercent int
	// HashBalanceFactor bounds the load of the source_ip and hash kinds:
	// no target takes more than this multiple of the mean (0: unbounded).
	HashBalanceFactor float64
	// SlowStart ramps a newly healthy target's share over this long (0: off).
	SlowStart time.Duration
	// AnomalyMitigation turns on ALB's automatic target weights
	// (weighted_random only).
	AnomalyMitigation bool

	// The durations of the kinds not chosen, kept until the type is known.
	appDuration, headerDuration time.Duration
}

// Target is one registered target. Its ID is the address latch connects to.
type Target struct {
	ID     string
	Weight int
}

// HealthCheck is a target group's active health check.
type HealthCheck struct {
	Enabled            bool
	Protocol           string // "HTTP"
	Port               int    // 0: the target's own (traffic) port
	Path               string
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	Matcher            Matcher
	UserAgent          string
}

// Stickiness is a target group's session affinity.
type Stickiness struct {
	Enabled bool
	// Type is lb_cookie or app_cookie (ALB's), or latch's header,
	// source_ip or hash.
	Type string
	// Duration is the session's idle timeout (GEP-1619's idleTimeout):
	// ALB's lb_cookie.duration_seconds or app_cookie.duration_seconds, or
	// latch's header.duration_seconds. Every response renews it.
	Duration time.Duration
	// AbsoluteTimeout ends a session that long after its first pick,
	// however active (GEP-1619's absoluteTimeout); 0: never.
	AbsoluteTimeout time.Duration
	Cookie          Cookie // lb_cookie's cookie
	// AppCookie is app_cookie's application cookie name.
	AppCookie string
	// Header is the header kind's request and response header.
	Header string
	// HashHeader or HashCookie names the hash kind's key.
	HashHeader, HashCookie string
	// TrustedProxies are the peers whose X-Forwarded-For names the client,
	// for source_ip; from any other peer the TCP address is the client.
	TrustedProxies []netip.Prefix
	// BalanceFactor, when set (> 1), keeps new sessions of the cookie and
	// header kinds off targets above that multiple of the mean load.
	BalanceFactor float64
	// RebalanceIdle lets a session idle that long move to a lightly loaded
	// target after a target joined the group; 0: never.
	RebalanceIdle time.Duration
}

// Cookie holds the attributes of the cookie latch issues for lb_cookie
// stickiness. The zero value of each field is ALB's behaviour.
type Cookie struct {
	Name     string // AWSALB
	CORS     bool   // also issue <Name>CORS with SameSite=None
	Path     string
	Domain   string
	SameSite string // "", Lax, Strict or None
	Secure   bool
	HTTPOnly bool
	// Session makes it a session cookie (no Expires): GEP-1619's
	// lifetimeType Session. ALB's is permanent (Expires in 7 days).
	Session bool
}

// CookieKey is one key of the cookie key ring.
type CookieKey struct {
	ID     uint32
	Secret []byte // 32 bytes
}

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse decodes and validates a config. file names the source in messages
// and anchors relative paths; it may be empty. The error, if any, is a
// Problems listing every mistake found.
func Parse(data []byte, file string) (*Config, error) {
	d := &decoder{file: file, dir: "."}
	if file != "" {
		d.dir = filepath.Dir(file)
	}
	cfg := d.decode(data)
	if len(d.probs) > 0 {
		sort.SliceStable(d.probs, func(i, j int) bool { return d.probs[i].Line < d.probs[j].Line })
		return nil, d.probs
	}
	return cfg, nil
}

// Problem is one mistake in a config file.
type Problem struct {
	File string
	Line int // 0 when unknown
	Path string
	Msg  string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:", p.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every mistake found in one config, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// TargetGroup returns the group with the given name, or nil.
func (c *Config) TargetGroup(name string) *TargetGroup {
	for i := range c.TargetGroups {
		if c.TargetGroups[i].Name == name {
			return &c.TargetGroups[i]
		}
	}
	return nil
}
