package sticky

import (
	"hash/fnv"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
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
// from a request's cookies and makes the cookies for a response.
//
// Opening and sealing a cookie costs about a microsecond each, so a Policy
// remembers, in two small lock-free caches, the values it has opened and
// the values it has sealed this second: the many requests a browser sends
// during a page load, or an API client that does not update its cookies,
// then cost no cryptography at all.
type Policy struct {
	Name     string // AWSALB, or the configured name
	CORSName string // Name + "CORS", or "" when the CORS twin is off
	duration int64  // seconds
	group    uint64
	keys     *Keyring
	// Everything after "Expires=<date>", precomputed per listener kind.
	attrs, corsAttrs, corsAttrsTLS string

	opened cache[openedEntry]
	sealed cache[sealedEntry]
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
	p.opened.init()
	p.sealed.init()
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

// ReadFields returns the session carried by a request's Cookie fields.
// Either of the two cookies is accepted; when both are present and
// differ, the first that opens wins.
func (p *Policy) ReadFields(fields []h1.Field, now time.Time) (Session, Miss) {
	miss := NoCookie
	for _, f := range fields {
		if len(f.Name) != 6 || !h1.EqualFold(f.Name, cookieName) {
			continue
		}
		if s, m := p.readLine(f.Value, now); m == Hit {
			return s, Hit
		} else if miss == NoCookie {
			miss = m
		}
	}
	return Session{}, miss
}

var cookieName = []byte("Cookie")

// Read is ReadFields for a net/http header (the HTTP/2 path's).
func (p *Policy) Read(h http.Header, now time.Time) (Session, Miss) {
	miss := NoCookie
	for _, line := range h["Cookie"] {
		if s, m := p.readLine([]byte(line), now); m == Hit {
			return s, Hit
		} else if miss == NoCookie {
			miss = m
		}
	}
	return Session{}, miss
}

// readLine looks for our cookies in one Cookie line.
func (p *Policy) readLine(line []byte, now time.Time) (Session, Miss) {
	miss := NoCookie
	for len(line) > 0 {
		var pair []byte
		if i := indexByte(line, ';'); i >= 0 {
			pair, line = line[:i], line[i+1:]
		} else {
			pair, line = line, nil
		}
		pair = trimSpace(pair)
		eq := indexByte(pair, '=')
		if eq < 0 {
			continue
		}
		name := pair[:eq]
		if string(name) != p.Name && (p.CORSName == "" || string(name) != p.CORSName) {
			continue
		}
		s, m := p.open(pair[eq+1:], now)
		if m == Hit {
			return s, Hit
		}
		if miss == NoCookie {
			miss = m
		}
	}
	return Session{}, miss
}

func (p *Policy) open(value []byte, now time.Time) (Session, Miss) {
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	var s Session
	slot := p.opened.slot(value)
	if e := slot.Load(); e != nil && e.value == string(value) {
		s = e.s
	} else {
		var err error
		s, err = p.keys.decode(value)
		switch err {
		case nil:
			slot.Store(&openedEntry{value: string(value), s: s})
		case ErrUnknownKey:
			return s, UnknownKey
		case ErrTampered:
			return s, Tampered
		default:
			return s, Malformed
		}
	}
	if s.Group != p.group {
		return s, OtherGroup
	}
	if now.Unix()-s.LastSeen > p.duration {
		return s, Expired
	}
	return s, Hit
}

// AppendValue appends the cookie value that pins target (generation gen),
// for a session that first picked it at issued (0: now). Every response
// carries a fresh value: its last-seen time, renewed, makes the duration
// a sliding window.
func (p *Policy) AppendValue(dst []byte, target string, gen uint64, issued int64, now time.Time) []byte {
	sec := now.Unix()
	if issued == 0 {
		issued = sec
	}
	slot := p.sealed.slotFor(target, gen, issued)
	if e := slot.Load(); e != nil && e.sec == sec && e.issued == issued && e.gen == gen && e.target == target {
		return append(dst, e.value...)
	}
	start := len(dst)
	dst = p.keys.appendEncode(dst, Session{Group: p.group, Target: target, Generation: gen, Issued: issued, LastSeen: sec})
	slot.Store(&sealedEntry{target: target, gen: gen, issued: issued, sec: sec, value: string(dst[start:])})
	return dst
}

// AppendSetCookie appends one Set-Cookie field value (without the field
// name): the main cookie, or its CORS twin (which carries SameSite=None,
// and Secure on HTTPS listeners).
func (p *Policy) AppendSetCookie(dst []byte, cors bool, value []byte, tls bool, now time.Time) []byte {
	name, attrs := p.Name, p.attrs
	if cors {
		name, attrs = p.CORSName, p.corsAttrs
		if tls {
			attrs = p.corsAttrsTLS
		}
	}
	dst = append(dst, name...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	dst = append(dst, "; Expires="...)
	dst = append(dst, expires(now)...)
	return append(dst, attrs...)
}

// Issue adds the Set-Cookie fields that pin target t (generation gen) to
// a net/http header: the HTTP/2 path's form of AppendValue and
// AppendSetCookie.
func (p *Policy) Issue(h http.Header, target string, gen uint64, issued int64, tls bool, now time.Time) {
	var buf [2 * MaxValueLen]byte
	v := p.AppendValue(buf[:0], target, gen, issued, now)
	cookies := append(h["Set-Cookie"], string(p.AppendSetCookie(v[len(v):], false, v, tls, now)))
	if p.CORSName != "" {
		cookies = append(cookies, string(p.AppendSetCookie(v[len(v):], true, v, tls, now)))
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

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
