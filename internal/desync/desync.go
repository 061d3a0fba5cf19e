// Package desync classifies HTTP/1.x requests by request-smuggling risk the way AWS ALB's desync mitigation mode does.
package desync

import "fmt"

// The rules follow aws/http-desync-guardian, the library behind ALB's desync
// mitigation mode, and are checked against that library's own test corpus in
// testdata/corpus. Where this package deliberately differs, the comment at the
// difference says so.

// Tier is how risky a request is. Higher tiers are worse, so a classification
// only ever moves a request up.
type Tier uint8

const (
	// Compliant requests follow RFC 7230.
	Compliant Tier = iota
	// Acceptable requests break RFC 7230 in ways no known desync attack uses.
	Acceptable
	// Ambiguous requests may be framed differently by different HTTP engines.
	Ambiguous
	// Severe requests are malformed or carry a known smuggling pattern.
	Severe
)

var tierNames = [...]string{"Compliant", "Acceptable", "Ambiguous", "Severe"}

func (t Tier) String() string {
	if int(t) < len(tierNames) {
		return tierNames[t]
	}
	return fmt.Sprintf("Tier(%d)", uint8(t))
}

// Reason is why a request got its tier. The names are ALB's classification
// reasons, which access logs show, so String must not change them.
type Reason uint8

const (
	// ReasonCompliant is the reason of a Compliant request. It is not called
	// Compliant only because the Tier of that name takes the identifier; its
	// String is "Compliant", as in ALB's logs.
	ReasonCompliant Reason = iota

	// Acceptable.
	GetHeadZeroContentLength // GET or HEAD with Content-Length: 0
	NonCompliantHeader       // a header name or value with characters RFC 7230 does not allow
	NonCompliantVersion      // HTTP/0.9, HTTP/1.2 and up, or whitespace around the version
	SpaceInUri               // an unescaped space in the request target

	// Ambiguous.
	AmbiguousUri                       // a control character other than CR, LF or NUL in the request target
	BothTeClPresent                    // both Transfer-Encoding and Content-Length
	DuplicateContentLength             // several Content-Length headers with the same value
	EmptyHeader                        // an empty header name, or one starting with ':'
	SuspiciousHeader                   // a header name that resembles Transfer-Encoding or Content-Length
	UndefinedContentLengthSemantics    // Content-Length where it has no meaning: GET/HEAD with a body, HTTP/0.9
	UndefinedTransferEncodingSemantics // Transfer-Encoding where it has no meaning: GET/HEAD, HTTP/1.0 or older

	// Severe.
	BadContentLength                // a Content-Length that is not a 64-bit decimal number
	BadHeader                       // CR, LF or NUL in a header name or value
	BadTransferEncoding             // an unknown transfer coding
	BadUri                          // CR, LF or NUL in the request target
	BadMethod                       // a method that is not a token
	BadVersion                      // a version that is neither HTTP/1.x nor HTTP/0.9
	MultipleContentLength           // several Content-Length headers with different values
	MultipleTransferEncodingChunked // chunked applied more than once in a row

	numReasons
)

var reasonNames = [numReasons]string{
	ReasonCompliant:                    "Compliant",
	GetHeadZeroContentLength:           "GetHeadZeroContentLength",
	NonCompliantHeader:                 "NonCompliantHeader",
	NonCompliantVersion:                "NonCompliantVersion",
	SpaceInUri:                         "SpaceInUri",
	AmbiguousUri:                       "AmbiguousUri",
	BothTeClPresent:                    "BothTeClPresent",
	DuplicateContentLength:             "DuplicateContentLength",
	EmptyHeader:                        "EmptyHeader",
	SuspiciousHeader:                   "SuspiciousHeader",
	UndefinedContentLengthSemantics:    "UndefinedContentLengthSemantics",
	UndefinedTransferEncodingSemantics: "UndefinedTransferEncodingSemantics",
	BadContentLength:                   "BadContentLength",
	BadHeader:                          "BadHeader",
	BadTransferEncoding:                "BadTransferEncoding",
	BadUri:                             "BadUri",
	BadMethod:                          "BadMethod",
	BadVersion:                         "BadVersion",
	MultipleContentLength:              "MultipleContentLength",
	MultipleTransferEncodingChunked:    "MultipleTransferEncodingChunked",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Tier is the tier that a request classified for this reason has: every
// reason belongs to exactly one tier.
func (r Reason) Tier() Tier {
	switch {
	case r == ReasonCompliant:
		return Compliant
	case r <= SpaceInUri:
		return Acceptable
	case r <= UndefinedTransferEncodingSemantics:
		return Ambiguous
	default:
		return Severe
	}
}

// Verdict is the classification of one request.
type Verdict struct {
	Tier   Tier
	Reason Reason
	// Message says what was wrong, naming the offending header where there is
	// one; control bytes are escaped as \r, \n, \t or \0xNN and values of
	// headers other than Transfer-Encoding and Content-Length are masked, so
	// it is safe to log. It is empty for a Compliant request.
	Message string
}

// Mode is the desync mitigation mode, ALB's
// routing.http.desync_mitigation_mode attribute. The zero value is Defensive,
// ALB's default, so an unset mode never silently turns mitigation off.
type Mode uint8

const (
	Defensive Mode = iota
	Monitor
	Strictest
)

var modeNames = [...]string{Defensive: "defensive", Monitor: "monitor", Strictest: "strictest"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses a mode as ALB spells it: "monitor", "defensive" or
// "strictest".
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return Defensive, fmt.Errorf("desync mitigation mode %q: want one of \"monitor\", \"defensive\" or \"strictest\"", s)
}

// MarshalText and UnmarshalText let configuration decoders (YAML, JSON,
// flag.TextVar) read and write a Mode as ALB spells it.
func (m Mode) MarshalText() ([]byte, error) {
	if int(m) >= len(modeNames) {
		return nil, fmt.Errorf("desync mitigation mode %d is not one of monitor, defensive or strictest", uint8(m))
	}
	return []byte(modeNames[m]), nil
}

func (m *Mode) UnmarshalText(b []byte) error {
	mode, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = mode
	return nil
}

// Action is what the load balancer does with a request.
type Action uint8

const (
	// Allow forwards the request and keeps both connections.
	Allow Action = iota
	// AllowAndClose forwards the request, then closes the client and the
	// target connection after the response, so nothing smuggled behind the
	// request can be read from either.
	AllowAndClose
	// Block answers 400 and closes the client connection without forwarding.
	Block
)

var actionNames = [...]string{"Allow", "AllowAndClose", "Block"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// actions is ALB's table of what each mode does with each tier.
var actions = [...][Severe + 1]Action{
	Monitor:   {Allow, Allow, Allow, Allow},
	Defensive: {Allow, Allow, AllowAndClose, Block},
	Strictest: {Allow, Block, Block, Block},
}

// Action returns what mode m does with a request of tier t. An unknown mode
// acts as Defensive and an unknown tier as Severe, so a corrupted value errs
// towards protecting the targets.
func (m Mode) Action(t Tier) Action {
	if int(m) >= len(actions) {
		m = Defensive
	}
	if t > Severe {
		t = Severe
	}
	return actions[m][t]
}
