package config

import (
	"fmt"
	"strings"
)

// The typed values of a config. Each is a small integer whose zero value is
// ALB's default, so that a zero field in a Go-built config means what an
// absent key means in a file. Each reads and writes itself as the file
// spells it (MarshalText, UnmarshalText); UnmarshalText's errors are the
// messages a file's mistake gets. Validate refuses a value out of range
// (a Go caller can write Algorithm(9)), and String never panics on one.

// Protocol is a listener's protocol, or a health check's. The zero value is
// HTTP.
type Protocol uint8

const (
	HTTP Protocol = iota
	HTTPS
)

var protocolNames = []string{HTTP: "HTTP", HTTPS: "HTTPS"}

func (p Protocol) String() string                { return enumString("Protocol", protocolNames, int(p)) }
func (p Protocol) MarshalText() ([]byte, error)  { return enumText(p, protocolNames, int(p)) }
func (p Protocol) valid() bool                   { return int(p) < len(protocolNames) }
func (p *Protocol) UnmarshalText(b []byte) error { return p.set(string(b)) }

func (p *Protocol) set(s string) error {
	i := index(protocolNames, s)
	if i < 0 {
		return fmt.Errorf("%q is not one of HTTP, HTTPS", s)
	}
	*p = Protocol(i)
	return nil
}

// ProtocolVersion is how latch speaks to a target group's targets, as ALB's
// protocol_version: HTTP/1.1, or cleartext HTTP/2 with prior knowledge. The
// zero value is HTTP1.
type ProtocolVersion uint8

const (
	HTTP1 ProtocolVersion = iota
	HTTP2
)

var protocolVersionNames = []string{HTTP1: "HTTP1", HTTP2: "HTTP2"}

func (v ProtocolVersion) String() string {
	return enumString("ProtocolVersion", protocolVersionNames, int(v))
}
func (v ProtocolVersion) MarshalText() ([]byte, error) {
	return enumText(v, protocolVersionNames, int(v))
}
func (v ProtocolVersion) valid() bool                   { return int(v) < len(protocolVersionNames) }
func (v *ProtocolVersion) UnmarshalText(b []byte) error { return v.set(string(b)) }

func (v *ProtocolVersion) set(s string) error {
	if s == "GRPC" {
		return fmt.Errorf("GRPC target groups are not supported yet by latch (supported: HTTP1, HTTP2; gRPC works over HTTP2)")
	}
	i := index(protocolVersionNames, s)
	if i < 0 {
		return fmt.Errorf("%q is not one of HTTP1, HTTP2%s", s, suggestion(s, protocolVersionNames))
	}
	*v = ProtocolVersion(i)
	return nil
}

// Algorithm is a target group's load-balancing algorithm, ALB's
// load_balancing.algorithm.type. The zero value is RoundRobin.
type Algorithm uint8

const (
	RoundRobin Algorithm = iota
	LeastOutstandingRequests
	WeightedRandom
)

var algorithmNames = []string{
	RoundRobin:               "round_robin",
	LeastOutstandingRequests: "least_outstanding_requests",
	WeightedRandom:           "weighted_random",
}

func (a Algorithm) String() string                { return enumString("Algorithm", algorithmNames, int(a)) }
func (a Algorithm) MarshalText() ([]byte, error)  { return enumText(a, algorithmNames, int(a)) }
func (a Algorithm) valid() bool                   { return int(a) < len(algorithmNames) }
func (a *Algorithm) UnmarshalText(b []byte) error { return a.set(string(b)) }

func (a *Algorithm) set(s string) error {
	i, err := oneOfIndex(s, algorithmNames)
	if err == nil {
		*a = Algorithm(i)
	}
	return err
}

// StickinessType is a target group's kind of session affinity:
// ALB's lb_cookie and app_cookie, or latch's header, source_ip and hash.
// The zero value is LBCookie.
type StickinessType uint8

const (
	LBCookie StickinessType = iota
	AppCookie
	Header
	StickySourceIP
	Hash
)

var stickinessTypeNames = []string{
	LBCookie:       "lb_cookie",
	AppCookie:      "app_cookie",
	Header:         "header",
	StickySourceIP: "source_ip",
	Hash:           "hash",
}

func (t StickinessType) String() string {
	return enumString("StickinessType", stickinessTypeNames, int(t))
}
func (t StickinessType) MarshalText() ([]byte, error) {
	return enumText(t, stickinessTypeNames, int(t))
}
func (t StickinessType) valid() bool                   { return int(t) < len(stickinessTypeNames) }
func (t *StickinessType) UnmarshalText(b []byte) error { return t.set(string(b)) }

func (t *StickinessType) set(s string) error {
	if s == "source_ip_dest_ip" || s == "source_ip_dest_ip_proto" {
		return fmt.Errorf("%q is a Gateway Load Balancer type; an HTTP balancer offers %s", s, strings.Join(stickinessTypeNames, ", "))
	}
	i, err := oneOfIndex(s, stickinessTypeNames)
	if err == nil {
		*t = StickinessType(i)
	}
	return err
}

// XFFMode is what a listener does with a request's X-Forwarded-For, ALB's
// routing.http.xff_header_processing.mode. The zero value is XFFAppend.
type XFFMode uint8

const (
	XFFAppend XFFMode = iota
	XFFPreserve
	XFFRemove
)

var xffModeNames = []string{XFFAppend: "append", XFFPreserve: "preserve", XFFRemove: "remove"}

func (m XFFMode) String() string                { return enumString("XFFMode", xffModeNames, int(m)) }
func (m XFFMode) MarshalText() ([]byte, error)  { return enumText(m, xffModeNames, int(m)) }
func (m XFFMode) valid() bool                   { return int(m) < len(xffModeNames) }
func (m *XFFMode) UnmarshalText(b []byte) error { return m.set(string(b)) }

func (m *XFFMode) set(s string) error {
	i, err := oneOfIndex(s, xffModeNames)
	if err == nil {
		*m = XFFMode(i)
	}
	return err
}

// SameSite is the SameSite attribute of the lb_cookie latch issues. The
// zero value, SameSiteUnset, sends none, as ALB. It reads case-insensitively
// and writes as the RFC spells it (Lax, Strict, None).
type SameSite uint8

const (
	SameSiteUnset SameSite = iota
	SameSiteLax
	SameSiteStrict
	SameSiteNone
)

var sameSiteNames = []string{SameSiteUnset: "", SameSiteLax: "Lax", SameSiteStrict: "Strict", SameSiteNone: "None"}

func (s SameSite) String() string                { return enumString("SameSite", sameSiteNames, int(s)) }
func (s SameSite) MarshalText() ([]byte, error)  { return enumText(s, sameSiteNames, int(s)) }
func (s SameSite) valid() bool                   { return int(s) < len(sameSiteNames) }
func (s *SameSite) UnmarshalText(b []byte) error { return s.set(string(b)) }

func (s *SameSite) set(v string) error {
	for i, name := range sameSiteNames {
		if strings.EqualFold(v, name) {
			*s = SameSite(i)
			return nil
		}
	}
	return fmt.Errorf("%q is not one of Lax, Strict, None (or empty for none)", v)
}

// ActionType is what a listener's action does with a request. The zero
// value is ActionForward.
type ActionType uint8

const (
	ActionForward ActionType = iota
	ActionRedirect
	ActionFixedResponse
)

var actionTypeNames = []string{ActionForward: "forward", ActionRedirect: "redirect", ActionFixedResponse: "fixed-response"}

func (t ActionType) String() string                { return enumString("ActionType", actionTypeNames, int(t)) }
func (t ActionType) MarshalText() ([]byte, error)  { return enumText(t, actionTypeNames, int(t)) }
func (t ActionType) valid() bool                   { return int(t) < len(actionTypeNames) }
func (t *ActionType) UnmarshalText(b []byte) error { return t.set(string(b)) }

func (t *ActionType) set(s string) error {
	i, err := oneOfIndex(s, actionTypeNames)
	if err == nil {
		*t = ActionType(i)
	}
	return err
}

// key is the action's settings key in a file: forward, redirect or
// fixed_response.
func (t ActionType) key() string {
	if t == ActionFixedResponse {
		return "fixed_response"
	}
	return t.String()
}

// ConditionField is what a rule's condition tests. The zero value is
// HostHeader.
type ConditionField uint8

const (
	HostHeader ConditionField = iota
	PathPattern
	HTTPHeader
	HTTPRequestMethod
	QueryString
	CondSourceIP
)

var conditionFieldNames = []string{
	HostHeader:        "host_header",
	PathPattern:       "path_pattern",
	HTTPHeader:        "http_header",
	HTTPRequestMethod: "http_request_method",
	QueryString:       "query_string",
	CondSourceIP:      "source_ip",
}

func (f ConditionField) String() string {
	return enumString("ConditionField", conditionFieldNames, int(f))
}
func (f ConditionField) MarshalText() ([]byte, error) {
	return enumText(f, conditionFieldNames, int(f))
}
func (f ConditionField) valid() bool                   { return int(f) < len(conditionFieldNames) }
func (f *ConditionField) UnmarshalText(b []byte) error { return f.set(string(b)) }

func (f *ConditionField) set(s string) error {
	i := index(conditionFieldNames, s)
	if i >= 0 {
		*f = ConditionField(i)
		return nil
	}
	if hint := suggestion(s, conditionFieldNames); hint != "" {
		return fmt.Errorf("unknown condition%s", hint)
	}
	return fmt.Errorf("unknown condition; conditions are %s", strings.Join(conditionFieldNames, ", "))
}

// onePerRule reports whether a rule may hold one condition of f at most;
// http_header and query_string may repeat (each is then AND-ed with the
// others).
func (f ConditionField) onePerRule() bool {
	return f == HostHeader || f == PathPattern || f == HTTPRequestMethod || f == CondSourceIP
}

func enumString(typ string, names []string, i int) string {
	if i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("%s(%d)", typ, i)
}

func enumText(v fmt.Stringer, names []string, i int) ([]byte, error) {
	if i < len(names) {
		return []byte(names[i]), nil
	}
	return nil, fmt.Errorf("%v is not one of %s", v, strings.Join(names, ", "))
}

// enumProblem is Validate's message for a value out of range.
func enumProblem(v fmt.Stringer, names []string) string {
	return fmt.Sprintf("%v is not one of %s", v, strings.Join(names, ", "))
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// oneOfIndex is oneOf that also returns where s is in list.
func oneOfIndex(s string, list []string) (int, error) {
	if err := oneOf(s, list); err != nil {
		return -1, err
	}
	return index(list, s), nil
}
