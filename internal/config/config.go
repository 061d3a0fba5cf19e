// Package config reads latch's YAML configuration into typed values and checks a configuration however it was built.
package config

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/latch-lb/latch/internal/desync"
)

// Config is a whole latch configuration. A Config returned by Parse or Load
// is complete: defaults are filled in and every value has been checked. One
// built in Go starts from DefaultListener and DefaultTargetGroup and is
// checked with Validate. The zero Config is not valid: it has no listener.
type Config struct {
	// Listeners and TargetGroups need one each at least. A nil list is
	// reported as missing, an empty one as empty.
	Listeners    []Listener
	TargetGroups []TargetGroup
	// StateDir is where latch keeps what must survive a restart (cookie keys,
	// target registrations). Relative paths in a file are resolved against
	// the directory of the config file ("latch-state" there by default); it
	// must not be empty.
	StateDir string
	// CookieKeys, when set, replace the key ring kept in StateDir. The first
	// key encrypts; all of them decrypt. Nil: the key ring in StateDir.
	CookieKeys []CookieKey
	// Admin is the admin listener's settings; the zero value is off (a
	// file's default is DefaultAdmin).
	Admin Admin
	// AccessLog, when set, has latch write one line per request (see
	// AccessLog); nil: no access log.
	AccessLog *AccessLog
	// Cluster, when set, shares the running state with the other nodes of
	// a cluster through etcd (see Cluster); nil: a lone latch.
	Cluster *Cluster
}

// Listener accepts client connections on one address. The zero value is not
// valid (it has no name, address or target group); DefaultListener returns
// one with ALB's defaults for everything else.
type Listener struct {
	Name    string // 1-32 letters, digits or hyphens; unique
	Address string // host:port to listen on; port 0 picks a free one
	// Protocol is HTTP (the zero value) or HTTPS.
	Protocol      Protocol
	DefaultAction Action
	// Rules are evaluated lowest Priority first; the first whose conditions
	// all match gives the action, and DefaultAction applies when none does.
	// They are in file order here (see rules.go and package route).
	Rules []Rule
	// IdleTimeout is ALB's idle_timeout.timeout_seconds: the longest a client
	// or target connection may send and receive nothing (0.05 s to 4000 s).
	IdleTimeout time.Duration
	// DesyncMode is ALB's routing.http.desync_mitigation_mode; its zero
	// value is desync.Defensive, ALB's default.
	DesyncMode desync.Mode
	// H2C serves cleartext HTTP/2 to clients that start with its preface
	// (latch's routing.http2.h2c.enabled). It needs HTTP2.
	H2C bool
	// XFFMode is ALB's routing.http.xff_header_processing.mode (zero:
	// append); XFFClientPort its routing.http.xff_client_port.enabled.
	XFFMode       XFFMode
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
	// package tlsconf). Nil on an HTTP listener (a non-nil empty list there
	// is reported, as a file that sets certificates: [] is).
	Certificates []Certificate
	// SSLPolicy is an HTTPS listener's ALB security policy (ssl_policy): its
	// TLS versions and TLS 1.2 cipher suites. Empty means
	// tlsconf.DefaultPolicy (which a file's HTTPS listener gets when it
	// names none); it must be empty on an HTTP listener.
	SSLPolicy string
}

// Action is what a listener does with a request. The zero value is a
// forward that names no group, which Validate refuses.
type Action struct {
	Type ActionType // zero: ActionForward
	// TargetGroup is where a forward sends every request. It is also set
	// when TargetGroups lists exactly one group, and empty when it lists
	// several (a weighted forward) or Type is not ActionForward.
	TargetGroup string
	// TargetGroups is a forward's weighted groups (forward.target_groups);
	// nil when the forward names one target_group. Non-nil makes the
	// forward a weighted one, so an empty list is reported as such.
	TargetGroups []WeightedGroup
	// GroupStickiness keeps a client on the group a weighted forward
	// picked for it (ALB's AWSALBTG cookie); zero: off.
	GroupStickiness GroupStickiness
	Redirect        *Redirect      // for ActionRedirect; nil otherwise
	FixedResponse   *FixedResponse // for ActionFixedResponse; nil otherwise
}

// TargetGroup is a set of targets with one health check, one balancing
// algorithm and one stickiness policy, as an ALB target group. The zero
// value is not valid (several of ALB's defaults are not zero: the cookie's
// name, the durations, the health check); start from DefaultTargetGroup.
// The fields set by attributes are read and written as strings by
// Attributes and SetAttribute.
type TargetGroup struct {
	Name        string // 1-32 letters, digits or hyphens; unique
	Targets     []Target
	HealthCheck HealthCheck
	Stickiness  Stickiness
	// ProtocolVersion is how latch speaks to the targets: HTTP1 (the zero
	// value) or HTTP2 (cleartext, with prior knowledge), as ALB's.
	ProtocolVersion ProtocolVersion
	// Algorithm is ALB's load_balancing.algorithm.type; zero: round robin.
	Algorithm Algorithm
	// DeregistrationDelay is how long a deregistered target keeps its
	// in-flight requests (0 to 3600 s; ALB's default is 300 s).
	DeregistrationDelay time.Duration
	// ConnectTimeout bounds the TCP connect to a target (0.05 s to 120 s;
	// ALB: 10 s, fixed).
	ConnectTimeout time.Duration
	// MinHealthyCount (at least 1) and MinHealthyPercent (1-100, 0 = off)
	// are ALB's unhealthy_state_routing thresholds: below either, the group
	// fails open.
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
	// PassiveHealth ejects targets that fail real requests (latch's own).
	PassiveHealth PassiveHealth
	// Retry says which failed requests go once more to another target.
	Retry Retry
	// Discovery finds targets besides Targets (DNS); nil: none. It is the
	// file's: a runtime change cannot set it.
	Discovery *Discovery
}

// PassiveHealth is a target group's passive health checking (outlier
// detection, latch's own): a target that fails ConsecutiveFailures requests
// in a row is ejected (unhealthy, Target.PassiveFailures) for Ejection,
// longer for each ejection soon after the last, up to MaxEjection, and
// comes back once that time has passed and its active checks pass. The
// zero value is off; DefaultTargetGroup returns latch's defaults.
type PassiveHealth struct {
	Enabled bool
	// ConsecutiveFailures is how many failed requests in a row eject a
	// target (1-1000). A failure is latch's own 5xx for the target: a
	// connect failure, a reset or close before the response, an invalid
	// response, a response timeout; and its own 5xx with Target5xx.
	ConsecutiveFailures int
	Target5xx           bool
	// Ejection is a first ejection's length (0.05-3600 s); MaxEjection
	// bounds repeat offenders' (Ejection to 86400 s).
	Ejection, MaxEjection time.Duration
	// MaxEjectedPercent caps the share of the group's targets ejected at
	// once (0-100; at least one target of a group of two or more).
	MaxEjectedPercent int
}

// Retry says which requests that failed on a target latch sends once more,
// to another target. A request that never reached its target (a connect
// failure) always goes again. The zero value retries nothing else and has
// no budget; DefaultTargetGroup returns latch's defaults.
type Retry struct {
	// Idempotent retries a request with an idempotent method (RFC 9110
	// §9.2.2) or an Idempotency-Key, and no body, that failed before any
	// response byte came: the target reset or closed the connection, or
	// sent an invalid response.
	Idempotent bool
	// OnTimeout also retries such a request when the target did not answer
	// within the idle timeout.
	OnTimeout bool
	// BudgetPercent (0-100) and BudgetPerSecond (0-10000) cap the retries
	// of requests that reached their target: at most BudgetPercent% of
	// the group's requests over the last 10 s, plus BudgetPerSecond for
	// each second, as Finagle's and Linkerd's retry budgets. Connect
	// failures are retried whatever the budget.
	BudgetPercent   int
	BudgetPerSecond int
}

// Target is one registered target. Its ID is the address latch connects to.
// The zero value is not valid: a target needs an ID and a weight.
type Target struct {
	ID     string // host:port, at most 255 characters; unique in its group
	Weight int    // 1-1000; a file's default is 1
	// Drain is set when the target is drained at run time: registered, it
	// takes no new sessions (nor, drained immediately, any request). Set
	// by the admin API, never by the file (the decoder does not accept a
	// drain key); nil: not drained.
	Drain *Drain
	// Discovered says the group's discovery registered the target (never
	// the file): discovery drains and deregisters only the targets it
	// registered.
	Discovered bool
}

// Drain is how a target is drained at run time.
type Drain struct {
	Mode DrainMode
	// Idle is how long no sticky request may have reached the target for
	// a keep_sessions drain to be complete, counted from Since or its
	// last session; 1s-24h; 0 means DefaultDrainIdle (WithDefaults).
	Idle time.Duration
	// Deadline ends a keep_sessions drain at Since+Deadline whatever its
	// sessions do: those left move then. 0: none; else at least Idle and
	// at most 7 days.
	Deadline time.Duration
	// Since is when the drain began; the zero time means when it is
	// applied (the server sets it then).
	Since time.Time
	// Discovery says discovery drained the target because its name no
	// longer resolved to it: the drain discovery ends if the address comes
	// back, where an operator's stays.
	Discovery bool
}

// DrainMode is how a drain treats the target's sticky sessions.
type DrainMode uint8

const (
	// DrainKeepSessions takes the target out of new picks while the
	// sessions stuck to it go on there, until none has come for Idle, or
	// until Deadline.
	DrainKeepSessions DrainMode = iota
	// DrainImmediate is ALB's deregistration: every session moves at once.
	DrainImmediate
)

var drainModeNames = []string{"keep_sessions", "immediate"}

func (m DrainMode) String() string {
	if int(m) < len(drainModeNames) {
		return drainModeNames[m]
	}
	return fmt.Sprintf("DrainMode(%d)", m)
}

// ParseDrainMode returns the mode of that name (keep_sessions or
// immediate).
func ParseDrainMode(name string) (DrainMode, error) {
	for i, n := range drainModeNames {
		if n == name {
			return DrainMode(i), nil
		}
	}
	return 0, fmt.Errorf("drain mode %q is not one of %s", name, strings.Join(drainModeNames, ", "))
}

// DefaultDrainIdle is a keep_sessions drain's idle window when none is set.
const DefaultDrainIdle = 60 * time.Second

// Bounds of a drain's windows.
const (
	MinDrainIdle     = time.Second
	MaxDrainIdle     = 24 * time.Hour
	MaxDrainDeadline = 7 * 24 * time.Hour
)

// WithDefaults returns d with Idle defaulted. A config keeps Idle 0 as
// given, so that what persists says the default was taken.
func (d Drain) WithDefaults() Drain {
	if d.Idle == 0 {
		d.Idle = DefaultDrainIdle
	}
	return d
}

// problems returns what is wrong with d (defaulted): for each problem,
// the path under the target's drain and a message.
func (d Drain) problems() (path, msg []string) {
	if int(d.Mode) >= len(drainModeNames) {
		path = append(path, "mode")
		msg = append(msg, fmt.Sprintf("drain mode %v is not one of %s", d.Mode, strings.Join(drainModeNames, ", ")))
	}
	if d.Idle < MinDrainIdle || d.Idle > MaxDrainIdle {
		path = append(path, "idle")
		msg = append(msg, fmt.Sprintf("idle %v is not between %v and %v", d.Idle, MinDrainIdle, MaxDrainIdle))
	}
	if d.Deadline != 0 && (d.Deadline < d.Idle || d.Deadline > MaxDrainDeadline) {
		path = append(path, "deadline")
		msg = append(msg, fmt.Sprintf("deadline %v is neither 0 (none) nor between the idle window (%v) and %v", d.Deadline, d.Idle, MaxDrainDeadline))
	}
	return path, msg
}

// HealthCheck is a target group's active health check. The zero value is
// not valid; DefaultHealthCheck returns ALB's.
type HealthCheck struct {
	Enabled            bool
	Protocol           Protocol // HTTP; HTTPS is not supported yet
	Port               int      // 0: the target's own (traffic) port
	Path               string
	Interval           time.Duration // 0.05 s to 300 s, longer than Timeout
	Timeout            time.Duration // 0.05 s to 120 s
	HealthyThreshold   int           // 2-10
	UnhealthyThreshold int           // 2-10
	Matcher            Matcher
	UserAgent          string // one line
}

// Stickiness is a target group's session affinity. Each duration is its own
// attribute, so a group keeps all three whatever its Type; IdleTimeout
// returns the one that applies.
type Stickiness struct {
	Enabled bool
	// Type is lb_cookie (the zero value) or app_cookie (ALB's), or latch's
	// header, source_ip or hash.
	Type StickinessType
	// LBCookieDuration, AppCookieDuration and HeaderDuration are ALB's
	// stickiness.lb_cookie.duration_seconds and
	// stickiness.app_cookie.duration_seconds and latch's
	// stickiness.header.duration_seconds: whole seconds, 1 s to 7 days,
	// 1 day by default.
	LBCookieDuration  time.Duration
	AppCookieDuration time.Duration
	HeaderDuration    time.Duration
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
	// Each is masked (no bits set after its prefix length).
	TrustedProxies []netip.Prefix
	// BalanceFactor, when set (> 1), keeps new sessions of the cookie and
	// header kinds off targets above that multiple of the mean load.
	BalanceFactor float64
	// RebalanceIdle lets a session idle that long move to a lightly loaded
	// target after a target joined the group; 0: never.
	RebalanceIdle time.Duration
}

// IdleTimeout returns the session's idle timeout (GEP-1619's idleTimeout):
// the duration attribute of s.Type. Every response renews it. The source_ip
// and hash kinds keep no session, the key itself picking the target, so
// theirs is 0.
func (s Stickiness) IdleTimeout() time.Duration {
	switch s.Type {
	case LBCookie:
		return s.LBCookieDuration
	case AppCookie:
		return s.AppCookieDuration
	case Header:
		return s.HeaderDuration
	}
	return 0
}

// Cookie holds the attributes of the cookie latch issues for lb_cookie
// stickiness. The zero value of each field but Name, CORS and Path is ALB's
// behaviour; DefaultTargetGroup sets those three as ALB does.
type Cookie struct {
	Name     string   // AWSALB
	CORS     bool     // also issue <Name>CORS with SameSite=None
	Path     string   // /
	Domain   string   // none
	SameSite SameSite // none
	Secure   bool
	HTTPOnly bool
	// Session makes it a session cookie (no Expires): GEP-1619's
	// lifetimeType Session. ALB's is permanent (Expires in 7 days).
	Session bool
}

// CookieKey is one key of the cookie key ring. The zero value is not valid.
type CookieKey struct {
	ID     uint32 // 1-4294967295, unique
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

// Parse decodes and validates a config: the file's mistakes and Validate's
// problems together, each with its line. file names the source in messages
// and anchors relative paths; it may be empty. The error, if any, is a
// Problems listing every mistake found, sorted by line; the config is then
// nil.
func Parse(data []byte, file string) (*Config, error) {
	d := newDecoder(file)
	cfg := d.decode(data)
	if cfg != nil {
		d.merge(cfg.validate(true))
	}
	if len(d.probs) > 0 {
		d.sort()
		return nil, d.probs
	}
	return cfg, nil
}

// Problem is one mistake in a config. Path says where, in the file's terms
// (target_groups[1].attributes["stickiness.type"]); File and Line are set
// by Parse, and are empty and 0 for a config validated on its own.
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

// Problems is every mistake found in one config: in file order from Parse;
// from Validate, target groups first, then listeners, state_dir, cookie
// keys and admin.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// TargetGroup returns the first group with the given name, or nil.
func (c *Config) TargetGroup(name string) *TargetGroup {
	for i := range c.TargetGroups {
		if c.TargetGroups[i].Name == name {
			return &c.TargetGroups[i]
		}
	}
	return nil
}

// Listener returns the first listener with the given name, or nil.
func (c *Config) Listener(name string) *Listener {
	for i := range c.Listeners {
		if c.Listeners[i].Name == name {
			return &c.Listeners[i]
		}
	}
	return nil
}

// Target returns the first target with the given ID, or nil.
func (g *TargetGroup) Target(id string) *Target {
	for i := range g.Targets {
		if g.Targets[i].ID == id {
			return &g.Targets[i]
		}
	}
	return nil
}
