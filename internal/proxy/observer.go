package proxy

import (
	"time"

	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

// Observer sees every request and client connection a handler serves:
// metrics and access logs plug in here. Its methods are called on the
// request path, in the goroutine or event loop serving the request: they
// must not block, should not allocate, and must not keep the *Record (it
// is reused for the next request; copy what is needed).
type Observer interface {
	// Begin is called when a request has been read and admitted, before
	// rules, stickiness and forwarding.
	Begin(r *Record)
	// End is called once for every request Begin saw, when its answer has
	// been written (or could not be: the client or the target went away
	// mid-response): forwarded to a target, or answered by latch itself
	// (ByLatch: a redirect, a fixed response, an error).
	End(r *Record)
	// Refused is called for a request latch refused before it began:
	// malformed, over a limit, blocked by desync mitigation, or not sent
	// within the idle timeout. Begin and End never see it.
	Refused(r *Record)
	// Conn is called when a client connection opens, moves from an event
	// loop to a goroutine, completes or fails its TLS handshake, and
	// closes.
	Conn(e ConnEvent)
}

// Record is what latch knows of one request. Byte slices point into the
// connection's buffers and are valid only during the call.
type Record struct {
	Listener string
	// Proto and Port are the listener's: "http" or "https", and its port.
	Proto, Port string
	// Client is the client's address, "ip:port" ("[ipv6]:port").
	Client []byte
	// Start is when latch had read the request's head; Duration, at End,
	// how long it took from then to the end of the answer.
	Start    time.Time
	Duration time.Duration
	// HTTP2 says the request came on an HTTP/2 stream; Minor is the
	// HTTP/1.x version's minor number otherwise.
	HTTP2  bool
	Minor  int
	Method []byte
	// Host is the request's host (its Host field, :authority, or an
	// absolute-form target's authority), URI its target and Version its
	// version exactly as sent, UserAgent its User-Agent field; nil when
	// the request did not say (or could not be read that far).
	Host, URI, Version, UserAgent []byte
	// TLSVersion and TLSCipher are the client connection's TLS version and
	// cipher suite (crypto/tls's values; 0 without TLS), SNI the server
	// name the client asked for in its handshake ("" for none).
	TLSVersion, TLSCipher uint16
	SNI                   string
	// Status is the answer's status code (0: none was sent, the client
	// having gone away).
	Status int
	// ByLatch says latch answered itself (a redirect, a fixed response,
	// an error), not a target; Cause then says why, for errors.
	ByLatch bool
	Cause   string
	// Routed says the rules ran and gave Action (a request refused before
	// them, for a TRACE or a 463, has none); Rule is the matched rule's
	// priority, 0 for the default action. Redirect is a redirect's
	// Location.
	Routed   bool
	Action   ActionKind
	Rule     int
	Redirect []byte
	// Group and Target are where the request went (Target nil: nowhere);
	// Retried says it failed on a first target and went to a second;
	// RetryRefused that a retry was safe but the group's retry budget
	// refused it.
	Group        string
	Target       *target.Target
	Retried      bool
	RetryRefused bool
	// Sticky is what became of the request's session, and StickyReason
	// why it moved or did not hold; MovedFrom is the target it left (the
	// X-Latch-Session-Moved value).
	Sticky       sticky.Outcome
	StickyReason sticky.Reason
	MovedFrom    string
	// Sent is when the request was last sent to a target, and Head when
	// the target's response head came (zero: none came). ALB's
	// request_processing_time is Start to Sent, its target_processing_time
	// (and TargetResponseTime metric) Sent to Head, its
	// response_processing_time Head to the end.
	Sent, Head time.Time
	// TargetStatus is the status code of the target's response (0: no
	// target's response came; Status is then latch's own).
	TargetStatus int
	// Trace is the trace header's value latch sent to the target
	// (X-Amzn-Trace-Id, the last one sent after a retry); nil when none
	// was sent.
	Trace []byte
	// ErrorReason names what went wrong, in the style of ALB's
	// error_reason: AWSALBTGCookieInvalid for a group-stickiness cookie
	// that is no live session, and latch's codes for a forward that
	// failed (ErrorReason* constants); "" for none.
	ErrorReason string
	// BytesIn and BytesOut count the request and response bodies' bytes.
	BytesIn, BytesOut int64
	// Classified says the request was classified for desync mitigation
	// (HTTP/1.x requests that could be read), as Desync; DesyncBlocked
	// says mitigation refused it.
	Classified    bool
	Desync        desync.Verdict
	DesyncBlocked bool
}

// ConnEventKind says what happened to a client connection.
type ConnEventKind uint8

const (
	ConnOpened ConnEventKind = iota
	// ConnHandedOff: an event loop handed the connection to a goroutine
	// (a body still coming, an upgrade, HTTP/2...).
	ConnHandedOff
	ConnClosed
	// ConnHandshake: a TLS connection's handshake completed;
	// ConnHandshakeFailed: it failed (or timed out), and the connection
	// closes.
	ConnHandshake
	ConnHandshakeFailed
	// ConnToLoop: a connection its goroutine served moved to an event
	// loop: a TLS one carrying HTTP/2 after its handshake, or HTTP/1.1
	// between its first request and the next.
	ConnToLoop
)

// ConnEvent is one client connection event.
type ConnEvent struct {
	Kind     ConnEventKind
	Listener string
	// OnLoop says an event loop serves the connection (ConnOpened).
	OnLoop bool
}

// Tee returns an Observer that passes each call to every one of obs, in
// order (nil ones skipped): metrics and the access log both watch.
func Tee(obs ...Observer) Observer {
	var list tee
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

type tee []Observer

func (t tee) Begin(r *Record) {
	for _, o := range t {
		o.Begin(r)
	}
}

func (t tee) End(r *Record) {
	for _, o := range t {
		o.End(r)
	}
}

func (t tee) Refused(r *Record) {
	for _, o := range t {
		o.Refused(r)
	}
}

func (t tee) Conn(e ConnEvent) {
	for _, o := range t {
		o.Conn(e)
	}
}

// noObserver is the Observer of a handler that has none.
type noObserver struct{}

func (noObserver) Begin(*Record)   {}
func (noObserver) End(*Record)     {}
func (noObserver) Refused(*Record) {}
func (noObserver) Conn(ConnEvent)  {}

// The error reasons latch records. ALB documents error_reason codes for
// authentication, Lambda targets and weighted target groups only; for a
// target that fails, latch's codes name the cause as statusFor's answer
// does, in the same style.
const (
	// ErrorReasonGroupCookieInvalid is ALB's own: an AWSALBTG value that
	// is no live group session (the group was picked anew by weight).
	ErrorReasonGroupCookieInvalid = "AWSALBTGCookieInvalid"
	ErrorReasonConnectRefused     = "TargetConnectionRefused"     // 502
	ErrorReasonConnectTimeout     = "TargetConnectionTimeout"     // 504
	ErrorReasonResponseTimeout    = "TargetResponseTimeout"       // 504
	ErrorReasonTargetClosed       = "TargetConnectionClosed"      // 502
	ErrorReasonInvalidResponse    = "TargetInvalidResponse"       // 502
	ErrorReasonDeregistered       = "TargetDeregistrationTimeout" // 502: its delay elapsed
	ErrorReasonResponseCut        = "TargetResponseIncomplete"    // the target cut its response short
	ErrorReasonClientClosed       = "ClientConnectionClosed"      // the client went away (ALB's 460)
	ErrorReasonBadRequestBody     = "ClientBodyMalformed"         // 400: the request body's framing was bad
)
