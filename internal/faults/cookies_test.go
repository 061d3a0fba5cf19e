package faults

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/sticky"
)

// Scenario 14 of issue 9: hostile cookies. What latch promises: a cookie
// routes a request only where its sealed value says (README "Sticky
// sessions": forged, tampered, truncated, URL-encoded, foreign-key and
// other-group cookies make a fresh pick), and no cookie crashes latch.
//
// How a request's route is told apart: the scenario knows latch's cookie
// key, so it opens the cookie latch sends back. The cookie under attack is
// a real session re-sealed as first picked an hour ago; a request that
// latch routed by it gets back a cookie with that hour-old first pick, and
// one that got a fresh pick a cookie first picked now.

// cookieClient sends requests on one kept-alive connection, dialling
// again when latch closes it.
type cookieClient struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
}

// answer is what latch sent back to one cookie.
type answer struct {
	status  int
	backend string
	cookie  string // the AWSALB latch set, "" for none
	err     error
}

func (cc *cookieClient) get(path, id, cookie string) answer {
	for attempt := 0; ; attempt++ {
		if cc.c == nil {
			c, err := net.Dial("tcp", cc.addr)
			if err != nil {
				return answer{err: err}
			}
			cc.c, cc.br = c, bufio.NewReader(c)
		}
		cc.c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err := fmt.Fprintf(cc.c, "GET %s HTTP/1.1\r\nHost: latch\r\nX-Request-Id: %s\r\nCookie: AWSALB=%s\r\n\r\n", path, id, cookie)
		var resp *http.Response
		if err == nil {
			resp, err = http.ReadResponse(cc.br, nil)
		}
		if err != nil {
			cc.c.Close()
			cc.c = nil
			if attempt == 0 {
				continue // latch closed the kept-alive connection after its last answer
			}
			return answer{err: err}
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		a := answer{status: resp.StatusCode, backend: resp.Header.Get("X-Backend")}
		for _, c := range resp.Cookies() {
			if c.Name == "AWSALB" {
				a.cookie = c.Value
			}
		}
		if resp.Close {
			cc.c.Close()
			cc.c = nil
		}
		return a
	}
}

// cookieValue returns the value of AWSALB as a Cookie line "AWSALB=v"
// carries it (RFC 6265: the pair ends at ';', without surrounding
// whitespace or one pair of quotes).
func cookieValue(v string) string {
	pair, _, _ := strings.Cut("AWSALB="+v, ";")
	pair = strings.Trim(pair, " \t")
	_, val, _ := strings.Cut(pair, "=")
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = val[1 : len(val)-1]
	}
	return val
}

// mutation is one hostile cookie value.
type mutation struct {
	kind, value string
	path        string // where it is sent: "/c" (group web) unless set
}

func testCookies(t *testing.T, v variant, r *row) {
	r.fault = "hostile AWSALB cookies: forged, truncated, re-encoded, bit-flipped (every bit, raw and as text), sealed with other keys, issued by another group"
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts), other: true})
	kr, err := sticky.NewKeyring([]sticky.Key{{ID: cookieKeyID, Secret: cookieSecret}})
	if err != nil {
		t.Fatal(err)
	}
	webTag, otherTag := sticky.GroupTag("web"), sticky.GroupTag("other")
	addrOf := map[string]string{}
	for _, tp := range ts {
		addrOf[tp.name] = tp.addr
	}
	cc := &cookieClient{addr: p.addr}
	defer func() {
		if cc.c != nil {
			cc.c.Close()
		}
	}()

	// A real session, and its cookie re-sealed an hour older.
	first := cc.get("/c", "ck-first", "")
	if first.status != 200 || first.cookie == "" {
		t.Fatalf("a new session: %d, cookie %q, %v", first.status, first.cookie, first.err)
	}
	real, err := kr.Decode(first.cookie)
	if err != nil || real.Group != webTag || real.Target != addrOf[first.backend] {
		t.Fatalf("latch's cookie opens to %+v, %v; want group web and target %s", real, err, addrOf[first.backend])
	}
	now := time.Now().Unix()
	old := real
	old.Issued, old.LastSeen = now-3600, now-10
	base := kr.Encode(old)
	// The control: the re-sealed cookie routes, and latch's answer keeps
	// its first pick. Without this, the scenario could not tell a route
	// from a fresh pick.
	if a := cc.get("/c", "ck-control", base); a.status != 200 || addrOf[a.backend] != old.Target {
		t.Fatalf("the re-sealed cookie went to %q (%d), want %s", a.backend, a.status, old.Target)
	} else if s, err := kr.Decode(a.cookie); err != nil || s.Issued != old.Issued {
		t.Fatalf("latch answered the re-sealed cookie with %+v, %v; want its first pick %d kept", s, err, old.Issued)
	}

	// A real cookie of the group other, for the same target.
	var otherCookie string
	for i := 0; otherCookie == "" && i < 10; i++ {
		a := cc.get("/other/x", fmt.Sprintf("ck-other-%d", i), "")
		if s, err := kr.Decode(a.cookie); err == nil && s.Group == otherTag {
			otherCookie = a.cookie
		}
	}
	if otherCookie == "" {
		t.Fatal("the group other issued no cookie")
	}

	ms := cookieMutations(t, base, old, kr, otherCookie)
	start := time.Now().Unix()
	counts := map[string]int{}
	var refused []string
	for i, m := range ms {
		path := m.path
		if path == "" {
			path = "/c"
		}
		id := fmt.Sprintf("ck-%d", i)
		a := cc.get(path, id, m.value)
		if a.err != nil {
			r.fatalf(t, "%s cookie %q: %v: latch stopped answering", m.kind, m.value, a.err)
		}
		switch a.status {
		case 400:
			counts["400"]++
			refused = append(refused, id)
			continue
		case 200:
		default:
			r.errorf(t, "%s cookie %q: status %d, want 200 or 400", m.kind, m.value, a.status)
			continue
		}
		s, err := kr.Decode(a.cookie)
		group := webTag
		if path != "/c" {
			group = otherTag
		}
		if err != nil || s.Group != group || s.Target != addrOf[a.backend] {
			r.errorf(t, "%s cookie %q: served by %s with the cookie %+v (%v), want one for that target in the request's group", m.kind, m.value, a.backend, s, err)
			continue
		}
		if s.Issued >= start {
			counts["fresh"]++
			continue
		}
		// Routed by the cookie: only where its sealed value says.
		t.Logf("routed as sealed: %s %q", m.kind, m.value)
		if cookieValue(m.value) == base {
			counts["routed same"]++
		} else {
			counts["routed other text"]++
		}
		sealed, err := kr.Decode(cookieValue(m.value))
		if err != nil || sealed.Group != group || sealed.Target != s.Target || sealed.Issued != s.Issued {
			r.errorf(t, "%s cookie %q routed to %s (first pick %d), but its sealed value says %+v (%v)", m.kind, m.value, s.Target, s.Issued, sealed, err)
		}
	}
	// Nothing latch refused reached a target.
	led.sync(t, ts...)
	ids := led.byID()
	for _, id := range refused {
		if es := ids[id]; len(es) > 0 {
			r.errorf(t, "request %s was answered 400 but reached target %s", id, es[0].target)
		}
	}

	kinds := map[string]int{}
	for _, m := range ms {
		kinds[m.kind]++
	}
	var parts []string
	for _, k := range []string{"forged", "truncated", "re-encoded", "raw bit flip", "text bit flip", "other key", "other group"} {
		parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	r.load = fmt.Sprintf("%d requests on one kept-alive connection: %s", len(ms), strings.Join(parts, ", "))
	r.saw = fmt.Sprintf("a fresh pick for %d, 400 for %d; routed as sealed for %d (the value itself behind quotes, spaces or a ';')",
		counts["fresh"], counts["400"], counts["routed same"])
	if n := counts["routed other text"]; n > 0 {
		r.saw += fmt.Sprintf(" and %d (other text, the same sealed bytes: base64's unused bits)", n)
	}
	r.lost = "none routed where its sealed value does not say"
	if !p.alive() {
		r.fatalf(t, "latch exited: %v", p.err)
	}
	if a := send(p.client(), http.MethodGet, p.url+"/after", "ck-after", ""); !a.ok() {
		r.errorf(t, "a normal request after the cookies got %d %q, want 200", a.status, a.err)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

// cookieMutations returns the hostile values made from base (the sealed
// old session).
func cookieMutations(t *testing.T, base string, old sticky.Session, kr *sticky.Keyring, otherCookie string) []mutation {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(base)
	if err != nil {
		t.Fatal(err)
	}
	var ms []mutation
	add := func(kind, v string) {
		// A re-encoding that leaves the value as it was (URL-encoding a
		// value without '+', '/' or '=') is no mutation.
		if v != base {
			ms = append(ms, mutation{kind: kind, value: v})
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))

	// Forged: random bytes of the right length, alone and behind a real
	// header (version 1, the key's id).
	for i := range 100 {
		b := make([]byte, len(raw))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 1 {
			copy(b, raw[:5])
		}
		add("forged", base64.StdEncoding.EncodeToString(b))
	}
	// Truncated: every prefix, and the value without its first bytes.
	for n := range len(base) {
		add("truncated", base[:n])
	}
	for n := 1; n < len(base); n += 4 {
		add("truncated", base[n:])
	}
	// Re-encoded: the same bytes another way.
	for _, v := range []string{
		url.QueryEscape(base), url.PathEscape(base), strings.ReplaceAll(url.QueryEscape(base), "%", "%25"),
		base64.RawStdEncoding.EncodeToString(raw), base64.URLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw),
		base64.StdEncoding.EncodeToString([]byte(base)), hex.EncodeToString(raw), strings.ToLower(base), strings.ToUpper(base),
		" " + base, base + " ", base[:40] + " " + base[40:], base[:40] + "\t" + base[40:], base + "=", base + "==",
		`"` + base + `"`, `"` + base, base + `"`, base + ";", base + "; AWSALB=" + base,
	} {
		add("re-encoded", v)
	}
	// Every bit of the sealed bytes, and every bit of the text.
	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			add("raw bit flip", base64.StdEncoding.EncodeToString(b))
		}
	}
	for i := range len(base) {
		for bit := range 8 {
			b := []byte(base)
			b[i] ^= 1 << bit
			add("text bit flip", string(b))
		}
	}
	// Sealed with other keys: the same id with another secret, another id.
	for _, k := range []sticky.Key{{ID: cookieKeyID, Secret: []byte("another-secret-of-thirty-two-by!")}, {ID: cookieKeyID + 1, Secret: []byte("another-secret-of-thirty-two-by!")}} {
		other, err := sticky.NewKeyring([]sticky.Key{k})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			add("other key", other.Encode(old))
		}
	}
	// Issued by another group: the group other's own cookie, and the web
	// session sealed for other; and web's cookie sent to other.
	add("other group", otherCookie)
	o := old
	o.Group = sticky.GroupTag("other")
	add("other group", kr.Encode(o))
	ms = append(ms, mutation{kind: "other group", value: base, path: "/other/y"})
	return ms
}
