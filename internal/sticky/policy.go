package sticky

import (
	"hash/fnv"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
)

// Miss says why a request's cookie did not pin a target: ALB's
// NonStickyRequestCount cases, told apart.
type Miss uint8

const (
	Hit           Miss = iota // the cookie pins a live target
	NoCookie                  // no cookie of ours
	Malformed                 // undecodable: bad base64, URL-encoded, truncated
	UnknownKey                // sealed by a key not in the ring
	Tampered                  // failed authentication
	OtherGroup                // issued by another target group
	Expired                   // older than the stickiness duration
	UnknownTarget             // names a target not registered (or registered anew) in the group
	Unavailable               // names a target that is unhealthy, draining or failed to connect
)

var missNames = [...]string{"hit", "no_cookie", "malformed", "unknown_key", "tampered", "other_group",
	"expired", "unknown_target", "unavailable"}

func (m Miss) String() string { return missNames[m] }

// Policy is one target group's lb_cookie stickiness: it reads the session
// from a request's cookies and issues the cookies for a response.
type Policy struct {
	Name     string // AWSALB, or the configured name
	CORSName string // Name + "CORS", or "" when the CORS twin is off
	duration int64  // seconds
	group    uint64
	keys     *Keyring
	// Everything after "Expires=<date>", precomputed per listener kind.
	attrs, corsAttrs, corsAttrsTLS string
}

// cookieLifetime is the Expires of every cookie latch issues. As ALB's, it is
// fixed at 7 days; the configured duration is enforced inside the value.
const cookieLifetime = 7 * 24 * time.Hour

// GroupTag identifies a target group inside a cookie.
func GroupTag(group string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(group))
	return h.Sum64()
}

// NewPolicy returns the policy of the named group, or nil when stickiness is
// off.
func NewPolicy(group string, s config.Stickiness, keys *Keyring) *Policy {
	if !s.Enabled {
		return nil
	}
	c := s.Cookie
	p := &Policy{
		Name:     c.Name,
		duration: int64(s.Duration / time.Second),
		group:    GroupTag(group),
		keys:     keys,
	}
	var common strings.Builder
	common.WriteString("; Path=" + c.Path)
	if c.Domain != "" {
		common.WriteString("; Domain=" + c.Domain)
	}
	if c.HTTPOnly {
		common.WriteString("; HttpOnly")
	}
	p.attrs = common.String()
	if c.SameSite != "" {
		p.attrs += "; SameSite=" + c.SameSite
	}
	if c.Secure {
		p.attrs += "; Secure"
	}
	if c.CORS {
		p.CORSName = c.Name + "CORS"
		p.corsAttrs = common.String() + "; SameSite=None"
		p.corsAttrsTLS = p.corsAttrs + "; Secure"
		if c.Secure {
			p.corsAttrs = p.corsAttrsTLS
		}
	}
	return p
}

// Read returns the session carried by the request's cookies. Either of the
// two cookies is accepted; when both are present and differ, the first that
// opens wins.
func (p *Policy) Read(h http.Header, now time.Time) (Session, Miss) {
	miss := NoCookie
	for _, line := range h["Cookie"] {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || (name != p.Name && (p.CORSName == "" || name != p.CORSName)) {
				continue
			}
			s, m := p.open(value, now)
			if m == Hit {
				return s, Hit
			}
			if miss == NoCookie {
				miss = m
			}
		}
	}
	return Session{}, miss
}

func (p *Policy) open(value string, now time.Time) (Session, Miss) {
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	s, err := p.keys.Decode(value)
	switch err {
	case nil:
	case ErrUnknownKey:
		return s, UnknownKey
	case ErrTampered:
		return s, Tampered
	default:
		return s, Malformed
	}
	if s.Group != p.group {
		return s, OtherGroup
	}
	if now.Unix()-s.LastSeen > p.duration {
		return s, Expired
	}
	return s, Hit
}

// Issue adds the Set-Cookie lines that pin target t (generation gen) to h.
// issued is when the session first picked t (now, for a new pick); every
// response renews the last-seen time, so the duration slides.
func (p *Policy) Issue(h http.Header, target string, gen uint64, issued int64, tls bool, now time.Time) {
	if issued == 0 {
		issued = now.Unix()
	}
	v := p.keys.Encode(Session{Group: p.group, Target: target, Generation: gen, Issued: issued, LastSeen: now.Unix()})
	exp := expires(now)
	cookies := h["Set-Cookie"]
	cookies = append(cookies, p.Name+"="+v+"; Expires="+exp+p.attrs)
	if p.CORSName != "" {
		attrs := p.corsAttrs
		if tls {
			attrs = p.corsAttrsTLS
		}
		cookies = append(cookies, p.CORSName+"="+v+"; Expires="+exp+attrs)
	}
	h["Set-Cookie"] = cookies
}

type expiry struct {
	unix int64
	text string
}

var expiryCache atomic.Pointer[expiry]

// expires formats now+7 days as an IMF-fixdate, once per second.
func expires(now time.Time) string {
	sec := now.Unix()
	if e := expiryCache.Load(); e != nil && e.unix == sec {
		return e.text
	}
	e := &expiry{sec, time.Unix(sec, 0).Add(cookieLifetime).UTC().Format(http.TimeFormat)}
	expiryCache.Store(e)
	return e.text
}
