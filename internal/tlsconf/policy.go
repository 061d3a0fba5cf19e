package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Policy is an ALB security policy (a listener's ssl_policy) as latch
// applies it: the TLS versions it allows and its TLS 1.2 cipher suites.
// TLS 1.3's suites are not configurable in Go; every ALB policy with TLS 1.3
// allows the same three that Go offers.
type Policy struct {
	Name       string
	MinVersion uint16
	// MaxVersion is tls.VersionTLS12 for the policies from before TLS 1.3,
	// which ALB serves without it; 0 (Go's newest, TLS 1.3) otherwise.
	MaxVersion uint16
	// CipherSuites are the policy's TLS 1.2 suites that Go counts as secure
	// (tls.CipherSuites). ALB's lists also hold AES-CBC with SHA-256/384
	// and RSA key exchange, which Go implements only as insecure (no
	// Lucky13 countermeasures, no forward secrecy) or not at all; latch
	// leaves them out. Nil for a TLS 1.3-only policy.
	CipherSuites []uint16
}

// DefaultPolicy is the policy of an HTTPS listener that names none: ALB's
// recommended policy, TLS 1.2 and 1.3. (ALB's API defaults to
// ELBSecurityPolicy-2016-08, which allows TLS 1.0 and which latch refuses.)
const DefaultPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"

// ErrUnknownPolicy is the error of LookupPolicy for a name that is no
// ALB security policy latch knows.
var ErrUnknownPolicy = errors.New("unknown security policy")

// The TLS 1.2 suites of ALB's policies that Go offers as secure. ChaCha20
// is in no ALB policy's TLS 1.2 list (only in TLS 1.3's).
var (
	ecdheGCM = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	}
	// ecdheGCMCBC adds AES-CBC with SHA-1 MACs (ECDHE-*-AES128-SHA and
	// -AES256-SHA), which the "Ext" policies keep for older clients.
	ecdheGCMCBC = append(ecdheGCM[:len(ecdheGCM):len(ecdheGCM)],
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	)
)

// policies are the ALB policies latch accepts: every one whose oldest TLS
// version is 1.2 or later (docs.aws.amazon.com/elasticloadbalancing/latest/
// application/describe-ssl-policies.html). The -PQ- policies add hybrid
// post-quantum key exchange, which Go 1.24+ offers with every policy
// (X25519MLKEM768 and, since Go 1.26, the SecP*MLKEM* groups), so they
// read as their classical twins.
var policies = map[string]Policy{}

func init() {
	for _, p := range []Policy{
		{Name: "ELBSecurityPolicy-TLS13-1-3-2021-06", MinVersion: tls.VersionTLS13},
		{Name: "ELBSecurityPolicy-TLS13-1-2-2021-06", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCM},
		{Name: "ELBSecurityPolicy-TLS13-1-2-Res-2021-06", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCM},
		{Name: "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCMCBC},
		{Name: "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCMCBC},
		{Name: "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09", MinVersion: tls.VersionTLS13},
		{Name: "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCM},
		{Name: "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCM},
		{Name: "ELBSecurityPolicy-TLS13-1-2-Ext1-PQ-2025-09", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCMCBC},
		{Name: "ELBSecurityPolicy-TLS13-1-2-Ext2-PQ-2025-09", MinVersion: tls.VersionTLS12, CipherSuites: ecdheGCMCBC},
		// Before TLS 1.3: ALB serves these with TLS 1.2 only, and so does latch.
		{Name: "ELBSecurityPolicy-FS-1-2-Res-2020-10", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: ecdheGCM},
		{Name: "ELBSecurityPolicy-FS-1-2-Res-2019-08", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: ecdheGCM},
		{Name: "ELBSecurityPolicy-FS-1-2-2019-08", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: ecdheGCMCBC},
		{Name: "ELBSecurityPolicy-TLS-1-2-2017-01", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: ecdheGCM},
		{Name: "ELBSecurityPolicy-TLS-1-2-Ext-2018-06", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: ecdheGCMCBC},
	} {
		policies[p.Name] = p
	}
}

// refused are ALB's policies that allow TLS 1.0 or 1.1, by the oldest
// version they allow. latch refuses them by name rather than serving them
// with TLS 1.2, so that nobody believes old clients still connect.
var refused = map[string]string{
	"ELBSecurityPolicy-2016-08":              "1.0",
	"ELBSecurityPolicy-2015-05":              "1.0",
	"ELBSecurityPolicy-TLS-1-0-2015-04":      "1.0",
	"ELBSecurityPolicy-FS-2018-06":           "1.0",
	"ELBSecurityPolicy-TLS13-1-0-2021-06":    "1.0",
	"ELBSecurityPolicy-TLS13-1-0-PQ-2025-09": "1.0",
	"ELBSecurityPolicy-TLS-1-1-2017-01":      "1.1",
	"ELBSecurityPolicy-FS-1-1-2019-08":       "1.1",
	"ELBSecurityPolicy-TLS13-1-1-2021-06":    "1.1",
	"ELBSecurityPolicy-TLS13-1-1-PQ-2025-09": "1.1",
}

// widest is the accepted policy with the most TLS 1.2 suites, suggested to
// whoever needs old clients.
const widest = "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06"

// LookupPolicy returns the named ALB security policy. Its errors are
// messages for a config file: why a known policy is refused, or
// ErrUnknownPolicy.
func LookupPolicy(name string) (Policy, error) {
	if p, ok := policies[name]; ok {
		return p, nil
	}
	if v, ok := refused[name]; ok {
		return Policy{}, fmt.Errorf("%s allows TLS %s, and latch accepts only policies with TLS 1.2 or later "+
			"(RFC 8996 deprecates TLS 1.0 and 1.1); %s keeps the most TLS 1.2 ciphers", name, v, widest)
	}
	if strings.HasPrefix(name, "ELBSecurityPolicy-") && strings.Contains(name, "FIPS") {
		return Policy{}, fmt.Errorf("%s is a FIPS policy, which latch does not support yet", name)
	}
	return Policy{}, ErrUnknownPolicy
}

// PolicyNames lists the policies latch accepts, sorted.
func PolicyNames() []string {
	names := make([]string, 0, len(policies))
	for n := range policies {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
