package sticky

import (
	"bytes"
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

// Policy is one stickiness that carries the session in a sealed value:
// a target group's lb_cookie, app_cookie or header stickiness, or a
// forward action's group stickiness (which pins a target group rather than
// a target). It reads the session from a request's fields and makes the
// fields of the response that carry it on.
//
// Opening and sealing a cookie costs about a microsecond each, so a Policy
// remembers, in two small lock-free caches, the values it has opened and
// the values it has sealed this second: the many requests a browser sends
// during a page load, or an API client that does not update its cookies,
// then cost no cryptography at all.
type Policy struct {
	Kind     Kind
	Name     string // lb_cookie: AWSALB or the configured name; header: the header
	CORSName string // lb_cookie: Name + "CORS", or "" when the CORS twin is off
	// AppCookie is app_cookie's application cookie: stickiness starts when
	// a target sets it, and holds while requests carry it.
	AppCookie string
	name      []byte // Name, for the header kind's field
	duration  int64  // the idle timeout, seconds
	absolute  int64  // the absolute timeout, seconds; 0: none
	session   bool   // session cookies: no Expires
	group     uint64
	keys      *Keyring
	// Everything after "Expires=<date>" (or the value, for a session
	// cookie), precomputed per listener kind.
	attrs, corsAttrs, corsAttrsTLS string

	opened cache[openedEntry]
	sealed cache[sealedEntry]
}

// Kind is how a policy carries its sealed session value.
type Kind uint8

const (
	LBCookie  Kind = iota // AWSALB and AWSALBCORS, issued on every response
	AppCookie             // AWSALBAPP-0..3, once the target sets its own cookie
	Header                // a request header, answered in the same response header
)

// appShards and appShardSize are ALB's: the AWSALBAPP value is split into
// at most 4 cookies of 4 KiB, unused ones carrying the value _remove_.
const (
	appShards    = 4
	appShardSize = 4096
	appRemoved   = "_remove_"
)

var removed = []byte(appRemoved)

// appShardNames are AWSALBAPP-0..3.
var appShardNames = [appShards]string{"AWSALBAPP-0", "AWSALBAPP-1", "AWSALBAPP-2", "AWSALBAPP-3"}

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
// off or is not carried in a sealed value (source_ip and hash are not).
func NewPolicy(group string, s config.Stickiness, keys *Keyring) *Policy {
	if !s.Enabled {
		return nil
	}
	c := s.Cookie
	p := &Policy{
		Name:     c.Name,
		duration: int64(s.IdleTimeout() / time.Second),
		absolute: int64(s.AbsoluteTimeout / time.Second),
		session:  c.Session,
		group:    GroupTag(group),
		keys:     keys,
	}
	switch s.Type {
	case config.LBCookie:
	case config.AppCookie:
		// ALB's generated cookie has a fixed name, Path=/ and no other
		// attribute but SameSite=None; Secure for the browsers that need it.
		p.Kind, p.AppCookie = AppCookie, s.AppCookie
		p.Name, c = "", config.Cookie{Path: "/"}
		p.session = false
	case config.Header:
		p.Kind, p.Name, p.name = Header, s.Header, []byte(s.Header)
	default:
		return nil
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
	if c.SameSite != config.SameSiteUnset {
		p.attrs += "; SameSite=" + c.SameSite.String()
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
	if p.Kind == AppCookie {
		p.corsAttrs = p.attrs + "; SameSite=None; Secure"
	}
	return p
}

// ReadFields returns the session req carries: in the header named Name
// (header); in AWSALBAPP-0..3, joined, along with the application's cookie
// (app_cookie); or in either of the cookies Name and CORSName (lb_cookie),
// where, when both are present and differ, the first that opens wins.
// Cookies may be spread over several Cookie fields.
func (p *Policy) ReadFields(req *h1.Request, now time.Time) (Session, Miss) {
	switch p.Kind {
	case Header:
		for _, f := range req.Fields {
			if len(f.Name) == len(p.Name) && h1.EqualFold(f.Name, []byte(p.Name)) {
				return p.open(f.Value, now)
			}
		}
		return Session{}, NoCookie
	case AppCookie:
		var ar appReader
		for i, f := range req.Fields {
			if IsCookie(req, i) {
				ar.feed(p, f.Value)
			}
		}
		return ar.open(p, now)
	}
	miss := NoCookie
	for i, f := range req.Fields {
		if !IsCookie(req, i) {
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

// IsCookie reports whether req's field i is a Cookie field, by the kind
// the parser gave it. A Cookie field that Connection names is hop-by-hop
// (never forwarded), which is its kind then, but its cookies are still the
// client's, for latch to read.
func IsCookie(req *h1.Request, i int) bool {
	switch req.Kinds[i] {
	case h1.KindCookie:
		return true
	case h1.KindNamedInConnection:
		return h1.KindOf(req.Fields[i].Name) == h1.KindCookie
	}
	return false
}

// NextCookie splits the first name=value pair off a Cookie line; ok is
// false when the line holds no more. Pairs without '=' are skipped.
func NextCookie(line []byte) (name, value, rest []byte, ok bool) {
	for len(line) > 0 {
		var pair []byte
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			pair, line = line[:i], line[i+1:]
		} else {
			pair, line = line, nil
		}
		pair = h1.TrimOWS(pair)
		if eq := bytes.IndexByte(pair, '='); eq >= 0 {
			return pair[:eq], pair[eq+1:], line, true
		}
	}
	return nil, nil, nil, false
}

// readLine looks for our cookies in one Cookie line.
func (p *Policy) readLine(line []byte, now time.Time) (Session, Miss) {
	miss := NoCookie
	for name, value, rest, ok := NextCookie(line); ok; name, value, rest, ok = NextCookie(rest) {
		if string(name) != p.Name && (p.CORSName == "" || string(name) != p.CORSName) {
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
	return Session{}, miss
}

// appReader gathers an app_cookie session from a request's Cookie lines:
// it holds only while the request carries both the application's cookie and
// AWSALBAPP (ALB: "clients have to send back both cookies"). The AWSALBAPP
// shards are joined in order.
type appReader struct {
	shards [appShards][]byte
	app    bool
}

func (ar *appReader) feed(p *Policy, line []byte) {
	for name, value, rest, ok := NextCookie(line); ok; name, value, rest, ok = NextCookie(rest) {
		if string(name) == p.AppCookie {
			ar.app = true
			continue
		}
		for i, n := range appShardNames {
			if string(name) == n && string(value) != appRemoved {
				ar.shards[i] = value
			}
		}
	}
}

func (ar *appReader) open(p *Policy, now time.Time) (Session, Miss) {
	if !ar.app || ar.shards[0] == nil {
		return Session{}, NoCookie
	}
	value := ar.shards[0]
	if ar.shards[1] != nil {
		// A joined value longer than the longest sealed one, quoted, can
		// never open: no need for room to join it.
		n := 0
		for _, sh := range ar.shards {
			if sh == nil {
				break
			}
			n += len(sh)
		}
		if n > MaxValueLen+2 {
			return Session{}, Malformed
		}
		var buf [MaxValueLen + 2]byte
		value = append(buf[:0], ar.shards[0]...)
		for _, sh := range ar.shards[1:] {
			if sh == nil {
				break
			}
			value = append(value, sh...)
		}
	}
	return p.open(value, now)
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
	if now.Unix()-s.LastSeen > p.duration || p.absolute > 0 && now.Unix()-s.Issued > p.absolute {
		return s, Expired
	}
	return s, Hit
}

// appendValue appends the cookie value that pins target (generation gen),
// for session id (0: a new session) that first picked it at issued (0:
// now), and returns the session's ID. Every response carries a fresh
// value: its last-seen time, renewed, makes the duration a sliding window.
// A new session is always sealed afresh, for an ID of its own.
func (p *Policy) appendValue(dst []byte, target string, gen uint64, issued int64, id uint64, now time.Time) ([]byte, uint64) {
	sec := now.Unix()
	if issued == 0 {
		issued = sec
	}
	var slot *atomic.Pointer[sealedEntry]
	if id != 0 {
		slot = p.sealed.slotFor(target, gen, issued, id)
		if e := slot.Load(); e != nil && e.sec == sec && e.id == id && e.issued == issued && e.gen == gen && e.target == target {
			return append(dst, e.value...), id
		}
	}
	start := len(dst)
	dst, id = p.keys.appendEncode(dst, Session{ID: id, Group: p.group, Target: target, Generation: gen, Issued: issued, LastSeen: sec})
	if slot != nil {
		slot.Store(&sealedEntry{target: target, gen: gen, issued: issued, id: id, sec: sec, value: string(dst[start:])})
	}
	return dst, id
}

// appendSetCookie appends one Set-Cookie field value (without the field
// name): the main cookie, or its CORS twin (which carries SameSite=None,
// and Secure on HTTPS listeners).
func (p *Policy) appendSetCookie(dst []byte, cors bool, value []byte, tls bool, now time.Time) []byte {
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
	if !p.session {
		dst = append(dst, "; Expires="...)
		dst = append(dst, expires(now)...)
	}
	return append(dst, attrs...)
}

// Response is what a policy needs to know of the response it issues its
// fields in.
type Response struct {
	TLS bool
	Now time.Time
	// Stuck says the request carried a session (live, or moved off its
	// target): app_cookie renews it even when the target does not set its
	// cookie again.
	Stuck bool
	// AppCookieSet says the target's response sets the application cookie:
	// where app_cookie stickiness starts.
	AppCookieSet bool
	// SameSiteNone says the client is a browser that needs
	// SameSite=None; Secure on third-party cookies (Chromium 80 and later).
	SameSiteNone bool
	// Session is the session's ID: the one the request carried, or 0 for
	// a new session, which WriteFields sets to the ID it sealed (0 when it
	// sealed none: app_cookie with no session).
	Session uint64
}

// FieldSink takes the header fields a policy issues: an h1.Writer writes
// them on the wire, an HTTP/2 response adds them to its header.
type FieldSink interface {
	WriteField(name, value []byte)
}

var setCookie = []byte("Set-Cookie")

// WriteFields writes to sink the response header fields that pin the
// session r.Session (0: a new one, whose ID it sets there) to target
// (generation gen), first picked at issued (0: now):
// AWSALB and AWSALBCORS on every response; AWSALBAPP-0..3 (the value, or
// _remove_) for app_cookie; the header for the header kind. buf is scratch
// space, returned grown for the next call, so that a caller that keeps it
// allocates nothing; sink must copy what it keeps.
func (p *Policy) WriteFields(sink FieldSink, buf []byte, target string, gen uint64, issued int64, r *Response) []byte {
	buf = buf[:0]
	if p.Kind == AppCookie && !r.Stuck && !r.AppCookieSet {
		// No session, none starting: ALB clears the shards.
		r.Session = 0
		for _, n := range appShardNames {
			buf = p.appShard(buf[:0], n, removed, r)
			sink.WriteField(setCookie, buf)
		}
		return buf
	}
	buf, r.Session = p.appendValue(buf, target, gen, issued, r.Session, r.Now)
	v := len(buf)
	switch p.Kind {
	case Header:
		sink.WriteField(p.name, buf[:v])
	case AppCookie:
		for i, shard := range splitShards(buf[:v]) {
			start := len(buf)
			buf = p.appShard(buf, appShardNames[i], shard, r)
			sink.WriteField(setCookie, buf[start:])
		}
	default:
		start := len(buf)
		buf = p.appendSetCookie(buf, false, buf[:v], r.TLS, r.Now)
		sink.WriteField(setCookie, buf[start:])
		if p.CORSName != "" {
			start = len(buf)
			buf = p.appendSetCookie(buf, true, buf[:v], r.TLS, r.Now)
			sink.WriteField(setCookie, buf[start:])
		}
	}
	return buf
}

// splitShards splits an AWSALBAPP value into ALB's 4 KiB shards; the
// shards it does not need carry _remove_. (latch's values are a few hundred
// bytes, so only AWSALBAPP-0 carries one; the split is ALB's contract.)
func splitShards(value []byte) [appShards][]byte {
	var shards [appShards][]byte
	for i := range shards {
		if len(value) == 0 {
			shards[i] = removed
			continue
		}
		shards[i] = value[:min(len(value), appShardSize)]
		value = value[len(shards[i]):]
	}
	return shards
}

// appShard appends one AWSALBAPP shard's Set-Cookie value. As ALB's, it
// carries SameSite=None; Secure only for browsers that need it.
func (p *Policy) appShard(dst []byte, name string, value []byte, r *Response) []byte {
	dst = append(dst, name...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	dst = append(dst, "; Expires="...)
	dst = append(dst, expires(r.Now)...)
	if r.SameSiteNone {
		return append(dst, p.corsAttrs...)
	}
	return append(dst, p.attrs...)
}

// SetsCookie reports whether a Set-Cookie field value sets the named cookie.
func SetsCookie(value []byte, name string) bool {
	value = h1.TrimOWS(value)
	return len(value) > len(name) && value[len(name)] == '=' && string(value[:len(name)]) == name
}

// NeedsSameSiteNone reports whether a User-Agent is a Chromium of version
// 80 or later, which drops third-party cookies without SameSite=None;
// Secure: ALB sets those on AWSALBAPP for such browsers only.
func NeedsSameSiteNone(ua []byte) bool {
	for _, marker := range []string{"Chrome/", "Chromium/", "CriOS/"} {
		if i := bytes.Index(ua, []byte(marker)); i >= 0 {
			v := 0
			for _, c := range ua[i+len(marker):] {
				if c < '0' || c > '9' {
					break
				}
				v = v*10 + int(c-'0')
				if v > 10000 {
					break
				}
			}
			return v >= 80
		}
	}
	return false
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

// Mint seals a new session that pins target (generation gen) from now, as
// a response of the data path would, and returns where a request carries
// it: the cookie's or header's name, and the sealed value. An app_cookie
// session holds only while the request also carries the application's
// cookie (AppCookie), as ALB's.
func (p *Policy) Mint(target string, gen uint64, now time.Time) (name, value string) {
	v, _ := p.appendValue(nil, target, gen, now.Unix(), 0, now)
	switch p.Kind {
	case AppCookie:
		return appShardNames[0], string(v)
	default:
		return p.Name, string(v)
	}
}
