package server

import (
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/sticky"
	"github.com/latch-lb/latch/internal/target"
)

func threeBackends(t *testing.T) ([]*backend, []string) {
	var bs []*backend
	var addrs []string
	for _, n := range []string{"a", "b", "c"} {
		b := startBackend(t, n)
		bs = append(bs, b)
		addrs = append(addrs, b.addr)
	}
	return bs, addrs
}

func decode(t *testing.T, v string) sticky.Session {
	t.Helper()
	s, err := testRing(t).Decode(v)
	if err != nil {
		t.Fatalf("latch issued a cookie its own key does not open: %v", err)
	}
	return s
}

func TestStickySessionHolds(t *testing.T) {
	_, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs, sticky: true})

	first := get(t, lb.url+"/", "")
	if first.status != 200 || first.cookie == "" {
		t.Fatalf("first request: status %d, cookie %q", first.status, first.cookie)
	}
	var corsAttrs string
	for _, sc := range first.header["Set-Cookie"] {
		if strings.HasPrefix(sc, "AWSALBCORS=") {
			corsAttrs = sc
		}
	}
	if !strings.HasPrefix(corsAttrs, "AWSALBCORS="+first.cookie+"; Expires=") || !strings.HasSuffix(corsAttrs, "; Path=/; SameSite=None") {
		t.Errorf("AWSALBCORS: got %q, want the same value with SameSite=None", corsAttrs)
	}
	cookie := first.cookie
	for i := range 30 {
		name := "AWSALB"
		if i%2 == 1 {
			name = "AWSALBCORS" // either cookie pins the session
		}
		r := get(t, lb.url+"/", name+"="+cookie)
		if r.backend != first.backend {
			t.Fatalf("request %d went to %s, want %s", i, r.backend, first.backend)
		}
		// Every response re-issues the cookie, renewing its last-seen time
		// (within one second the value may repeat: it is the same value).
		if r.cookie == "" {
			t.Fatalf("request %d: the cookie was not re-issued", i)
		}
		prev, next := decode(t, cookie), decode(t, r.cookie)
		if next.Target != prev.Target || next.Issued != prev.Issued || next.LastSeen < prev.LastSeen {
			t.Fatalf("request %d: re-issued %+v after %+v, want the same session renewed", i, next, prev)
		}
		cookie = r.cookie
	}
	// Without a cookie, round robin spreads new sessions.
	seen := map[string]bool{}
	for range 6 {
		seen[get(t, lb.url+"/", "").backend] = true
	}
	if len(seen) != 3 {
		t.Errorf("new sessions reached %d backends, want 3", len(seen))
	}
}

func TestStickyBadCookiesRepick(t *testing.T) {
	_, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs, sticky: true, attrs: map[string]string{"stickiness.lb_cookie.duration_seconds": "60"}})
	now := time.Now().Unix()
	foreign := testRing(t, sticky.Key{ID: 78, Secret: []byte("another key, another load balanc")})
	valid := get(t, lb.url+"/", "").cookie
	s := decode(t, valid)

	// A live session's value that URL-encoding changes (a few percent of
	// values hold no '+', '/' or padding, and would pass encoded as they are).
	encodable := valid
	for !strings.ContainsAny(encodable, "+/=") {
		encodable = testRing(t).Encode(sticky.Session{Group: s.Group, Target: s.Target, Generation: s.Generation, Issued: now, LastSeen: now})
	}
	tampered := []byte(valid)
	tampered[40] ^= 1
	if tampered[40] == '+' || tampered[40] == '/' || tampered[40] == '=' {
		tampered[40] = 'A'
	}
	tests := []struct {
		name, cookie string
		moved        string // the X-Latch-Session-Moved the target should see
	}{
		{"missing", "", ""},
		{"undecodable", "AWSALB=not-a-cookie", ""},
		{"url-encoded", "AWSALB=" + url.QueryEscape(encodable), ""},
		{"tampered", "AWSALB=" + string(tampered), ""},
		{"foreign key", "AWSALB=" + foreign.Encode(sticky.Session{Group: s.Group, Target: s.Target, Generation: s.Generation, LastSeen: now}), ""},
		{"other group", "AWSALB=" + testRing(t).Encode(sticky.Session{Group: sticky.GroupTag("api"), Target: s.Target, Generation: s.Generation, LastSeen: now}), ""},
		{"expired by duration", "AWSALB=" + testRing(t).Encode(sticky.Session{Group: s.Group, Target: s.Target, Generation: s.Generation, Issued: now - 500, LastSeen: now - 61}), ""},
		{"unknown target", "AWSALB=" + testRing(t).Encode(sticky.Session{Group: s.Group, Target: "127.0.0.1:1", Generation: 1, LastSeen: now}), "127.0.0.1:1"},
		{"stale generation", "AWSALB=" + testRing(t).Encode(sticky.Session{Group: s.Group, Target: s.Target, Generation: s.Generation + 100, LastSeen: now}), s.Target},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, lb.url+"/", tt.cookie)
			if r.status != 200 {
				t.Fatalf("status %d, want 200", r.status)
			}
			if r.cookie == "" {
				t.Fatal("no new cookie issued")
			}
			ns := decode(t, r.cookie)
			if ns.Issued < now || ns.LastSeen < now {
				t.Errorf("re-issued cookie carries the old session's times: %+v", ns)
			}
			if r.moved != tt.moved {
				t.Errorf("target saw %s %q, want %q", "X-Latch-Session-Moved", r.moved, tt.moved)
			}
			// The new cookie pins the new target.
			if again := get(t, lb.url+"/", "AWSALB="+r.cookie); again.backend != r.backend {
				t.Errorf("the re-issued cookie sent the next request to %s, want %s", again.backend, r.backend)
			}
		})
	}
}

func TestStickySlidingRenewal(t *testing.T) {
	_, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs, sticky: true, attrs: map[string]string{"stickiness.lb_cookie.duration_seconds": "60"}})
	first := get(t, lb.url+"/", "")
	s := decode(t, first.cookie)
	now := time.Now().Unix()
	// Last seen 55 s ago, first issued an hour ago: still within the 60 s
	// window, so it sticks, keeps its issued time and slides forward.
	old := testRing(t).Encode(sticky.Session{Group: s.Group, Target: s.Target, Generation: s.Generation, Issued: now - 3600, LastSeen: now - 55})
	r := get(t, lb.url+"/", "AWSALB="+old)
	if r.backend != first.backend {
		t.Fatalf("a cookie within its duration went to %s, want %s", r.backend, first.backend)
	}
	ns := decode(t, r.cookie)
	if ns.Issued != now-3600 {
		t.Errorf("issued: got %d, want %d (kept)", ns.Issued, now-3600)
	}
	if ns.LastSeen < now {
		t.Errorf("last seen: got %d, want >= %d (renewed)", ns.LastSeen, now)
	}
	exp, err := time.Parse(time.RFC1123, strings.SplitN(strings.SplitN(r.header["Set-Cookie"][0], "Expires=", 2)[1], ";", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour+time.Minute {
		t.Errorf("Expires is %v away, want 7 days (ALB's fixed cookie lifetime)", d)
	}
}

func keyID(t *testing.T, v string) uint32 {
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(raw[1:5])
}

func TestStickyKeyRotation(t *testing.T) {
	_, addrs := threeBackends(t)
	k1 := testKey
	k2 := sticky.Key{ID: 99, Secret: []byte("the next key, rotated in today!!")}
	c := lbConfig{targets: addrs, sticky: true, keys: []sticky.Key{k1}}
	lb := startLB(t, c)
	first := get(t, lb.url+"/", "")
	if keyID(t, first.cookie) != k1.ID {
		t.Fatalf("sealed with key %d, want %d", keyID(t, first.cookie), k1.ID)
	}

	c.keys = []sticky.Key{k2, k1} // rotate: the new key seals, the old still opens
	lb.reload(t, c)
	r := get(t, lb.url+"/", "AWSALB="+first.cookie)
	if r.backend != first.backend {
		t.Fatalf("during rotation an old-key cookie went to %s, want %s", r.backend, first.backend)
	}
	if keyID(t, r.cookie) != k2.ID {
		t.Errorf("during rotation the cookie was sealed with key %d, want %d", keyID(t, r.cookie), k2.ID)
	}
	rotated := r.cookie

	c.keys = []sticky.Key{k2} // the old key retired
	lb.reload(t, c)
	if r := get(t, lb.url+"/", "AWSALB="+rotated); r.backend != first.backend {
		t.Errorf("a new-key cookie after retiring the old key went to %s, want %s", r.backend, first.backend)
	}
	r = get(t, lb.url+"/", "AWSALB="+first.cookie)
	if r.status != 200 || keyID(t, r.cookie) != k2.ID {
		t.Errorf("an old-key cookie after retirement: status %d, key %d; want a fresh pick sealed by %d", r.status, keyID(t, r.cookie), k2.ID)
	}
}

func TestStickyReusedAddressNewGeneration(t *testing.T) {
	bs, addrs := threeBackends(t)
	c := lbConfig{targets: addrs, sticky: true}
	lb := startLB(t, c)
	var cookie string
	for {
		r := get(t, lb.url+"/", "")
		if r.backend == "a" {
			cookie = r.cookie
			break
		}
	}
	gen := decode(t, cookie).Generation

	c.targets = addrs[1:] // deregister a...
	lb.reload(t, c)
	c.targets = addrs // ...and register the same address again: a new target
	lb.reload(t, c)
	var newGen uint64
	for _, h := range lb.Health("web") {
		if h.ID == bs[0].addr && h.State != target.Unused && h.State != target.Draining {
			newGen = h.Generation
		}
	}
	if newGen == gen || newGen == 0 {
		t.Fatalf("re-registered target has generation %d, old one %d: want a new one", newGen, gen)
	}
	r := get(t, lb.url+"/", "AWSALB="+cookie)
	if r.moved != bs[0].addr {
		t.Errorf("target saw moved %q, want %q: the old session must not carry over", r.moved, bs[0].addr)
	}
	if ns := decode(t, r.cookie); ns.Target == bs[0].addr && ns.Generation == gen {
		t.Errorf("the new cookie still names the old registration")
	}
}

func TestStickyRestartKeepsSessions(t *testing.T) {
	_, addrs := threeBackends(t)
	dir := t.TempDir()
	// No cookie_keys: latch generates a key ring in the state directory.
	c := lbConfig{targets: addrs, sticky: true, stateDir: dir}
	yaml := strings.Replace(c.yaml(), keyYAML(), "", 1)
	first := newServer(t, nil)
	if err := first.Apply(t.Context(), parse(t, yaml, dir)); err != nil {
		t.Fatal(err)
	}
	url1 := "http://" + first.Addr("front")
	cookies := map[string]string{}
	for len(cookies) < 3 {
		r := get(t, url1+"/", "")
		cookies[r.backend] = r.cookie
	}
	first.Shutdown(t.Context())

	second := newServer(t, nil)
	if err := second.Apply(t.Context(), parse(t, yaml, dir)); err != nil {
		t.Fatal(err)
	}
	defer second.Shutdown(t.Context())
	url2 := "http://" + second.Addr("front")
	for backend, cookie := range cookies {
		r := get(t, url2+"/", "AWSALB="+cookie)
		if r.backend != backend || r.moved != "" {
			t.Errorf("after restart a session of %s went to %s (moved %q)", backend, r.backend, r.moved)
		}
	}
}

func TestStickyUnhealthyTargetMovesSession(t *testing.T) {
	bs, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs, sticky: true, health: fastHealth})
	lb.waitFor(t, 5*time.Second, "all targets healthy", func() bool {
		for _, h := range lb.Health("web") {
			if h.State != target.Healthy {
				return false
			}
		}
		return true
	})
	first := get(t, lb.url+"/", "")
	var stuck *backend
	for _, b := range bs {
		if b.name == first.backend {
			stuck = b
		}
	}
	stuck.healthy.Store(false)
	lb.waitFor(t, 5*time.Second, "the stuck target unhealthy", func() bool {
		for _, h := range lb.Health("web") {
			if h.ID == stuck.addr {
				return h.State == target.Unhealthy && h.Reason == target.ReasonResponseCodeMismatch
			}
		}
		return false
	})
	r := get(t, lb.url+"/", "AWSALB="+first.cookie)
	if r.backend == stuck.name || r.moved != stuck.addr {
		t.Fatalf("request went to %s with moved %q; want another target told the session moved from %s", r.backend, r.moved, stuck.addr)
	}
	if again := get(t, lb.url+"/", "AWSALB="+r.cookie); again.backend != r.backend || again.moved != "" {
		t.Errorf("after the move the session went to %s (moved %q), want %s", again.backend, again.moved, r.backend)
	}
}

func TestStickinessOff(t *testing.T) {
	_, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs})
	r := get(t, lb.url+"/", "")
	if len(r.header["Set-Cookie"]) != 0 {
		t.Errorf("stickiness off, yet cookies were set: %q", r.header["Set-Cookie"])
	}
}
