package sticky

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/h1"
)

func mustRing(t testing.TB, keys ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func key(id uint32, fill byte) Key {
	return Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32)}
}

func TestCodecRoundTrip(t *testing.T) {
	kr := mustRing(t, key(7, 1))
	want := Session{ID: 0x1122334455667788, Group: GroupTag("web"), Target: "10.0.0.1:8080", Generation: 42, Issued: 1700000000, LastSeen: 1700000100}
	v := kr.Encode(want)
	got, err := kr.Decode(v)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if strings.Contains(v, "10.0.0.1") {
		t.Errorf("cookie %q shows the target address", v)
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		t.Fatalf("value is not standard base64: %v", err)
	}
	if bytes.Contains(raw, []byte("10.0.0.1")) {
		t.Errorf("decoded cookie holds the target address in clear")
	}
	if v2 := kr.Encode(want); v2 == v {
		t.Errorf("two encodings of one session are equal (%q): nonces repeat", v)
	}
}

func TestCodecLongestTarget(t *testing.T) {
	kr := mustRing(t, key(1, 1))
	id := strings.Repeat("h", 249) + ":65535"
	v := kr.Encode(Session{Target: id})
	if len(v) > MaxValueLen {
		t.Fatalf("value is %d long, MaxValueLen is %d", len(v), MaxValueLen)
	}
	s, err := kr.Decode(v)
	if err != nil || s.Target != id {
		t.Fatalf("got %q, %v; want %q", s.Target, err, id)
	}
}

func TestCodecRejects(t *testing.T) {
	kr := mustRing(t, key(1, 1))
	other := mustRing(t, key(2, 2))
	sameIDOtherSecret := mustRing(t, key(1, 9))
	good := kr.Encode(Session{Target: "a:1", Generation: 1, LastSeen: 5})
	for !strings.ContainsAny(good, "+/=") {
		// A value URL-encoding changes: a few percent of random nonces
		// give a value without '+', '/' or padding.
		good = kr.Encode(Session{Target: "a:1", Generation: 1, LastSeen: 5})
	}

	flip := func(v string, i int) string {
		raw, _ := base64.StdEncoding.DecodeString(v)
		raw[i] ^= 0x01
		return base64.StdEncoding.EncodeToString(raw)
	}
	raw, _ := base64.StdEncoding.DecodeString(good)
	tests := []struct {
		name  string
		value string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"not base64", "!!!!", ErrMalformed},
		{"url-encoded", url.QueryEscape(good), ErrMalformed},
		{"truncated", good[:len(good)-8], ErrMalformed},
		{"too long", good + strings.Repeat("A", MaxValueLen), ErrMalformed},
		{"wrong version", func() string { r := append([]byte(nil), raw...); r[0] = 3; return base64.StdEncoding.EncodeToString(r) }(), ErrMalformed},
		{"version 0", func() string { r := append([]byte(nil), raw...); r[0] = 0; return base64.StdEncoding.EncodeToString(r) }(), ErrMalformed},
		// A version 2 value relabelled version 1 fails authentication: the
		// version is additional data.
		{"version 2 read as 1", func() string { r := append([]byte(nil), raw...); r[0] = 1; return base64.StdEncoding.EncodeToString(r) }(), ErrTampered},
		{"foreign key", other.Encode(Session{Target: "a:1"}), ErrUnknownKey},
		{"same key id, other secret", sameIDOtherSecret.Encode(Session{Target: "a:1"}), ErrTampered},
		{"flipped ciphertext bit", flip(good, len(raw)-20), ErrTampered},
		{"flipped tag bit", flip(good, len(raw)-1), ErrTampered},
		{"flipped nonce bit", flip(good, 6), ErrTampered},
		{"key id changed to one in the ring", func() string {
			r := append([]byte(nil), raw...)
			r[4] ^= 3 // id 1 -> 2
			return base64.StdEncoding.EncodeToString(r)
		}(), ErrTampered},
	}
	both := mustRing(t, key(1, 1), key(2, 2))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring := kr
			if tt.name == "key id changed to one in the ring" {
				ring = both
			}
			if _, err := ring.Decode(tt.value); err != tt.want {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	old, next := key(1, 1), key(2, 2)
	before := mustRing(t, old)
	during := mustRing(t, next, old) // new key first: it seals, both open
	after := mustRing(t, next)

	v := before.Encode(Session{Target: "a:1"})
	if _, err := during.Decode(v); err != nil {
		t.Errorf("a cookie sealed by the old key does not open during rotation: %v", err)
	}
	v2 := during.Encode(Session{Target: "a:1"})
	if _, err := before.Decode(v2); err != ErrUnknownKey {
		t.Errorf("the rotated ring sealed with the old key: got %v, want ErrUnknownKey from the old ring", err)
	}
	if _, err := after.Decode(v2); err != nil {
		t.Errorf("a cookie sealed during rotation does not open after it: %v", err)
	}
	if _, err := after.Decode(v); err != ErrUnknownKey {
		t.Errorf("an old-key cookie after the old key was removed: got %v, want ErrUnknownKey", err)
	}
}

func TestNewKeyringErrors(t *testing.T) {
	for _, keys := range [][]Key{nil, {{ID: 0, Secret: make([]byte, 32)}}, {key(1, 1), key(1, 2)}, {{ID: 1, Secret: make([]byte, 16)}}} {
		if _, err := NewKeyring(keys); err == nil {
			t.Errorf("NewKeyring(%d keys) accepted a bad ring", len(keys))
		}
	}
}

func policy(t testing.TB, mod func(*config.Stickiness)) *Policy {
	s := config.Stickiness{Enabled: true, Type: config.LBCookie, LBCookieDuration: time.Hour,
		Cookie: config.Cookie{Name: "AWSALB", CORS: true, Path: "/"}}
	if mod != nil {
		mod(&s)
	}
	return NewPolicy("web", s, mustRing(t, key(1, 1)))
}

// request returns a request head holding fields, each of the kind the
// parser gives its name.
func request(fields ...h1.Field) *h1.Request {
	req := &h1.Request{Fields: fields}
	for _, f := range fields {
		req.Kinds = append(req.Kinds, h1.KindOf(f.Name))
	}
	return req
}

// cookies returns a request head with one Cookie field per line.
func cookies(lines ...string) *h1.Request {
	var fields []h1.Field
	for _, l := range lines {
		fields = append(fields, h1.Field{Name: []byte("Cookie"), Value: []byte(l)})
	}
	return request(fields...)
}

// lines is a FieldSink that renders fields as HTTP/1.1 header lines.
type lines []byte

func (l *lines) WriteField(name, value []byte) {
	*l = append(*l, name...)
	*l = append(*l, ": "...)
	*l = append(*l, value...)
	*l = append(*l, "\r\n"...)
}

// appendFields returns the header lines p.WriteFields issues, appended to
// dst.
func appendFields(p *Policy, dst []byte, target string, gen uint64, issued int64, r *Response) []byte {
	l := lines(dst)
	p.WriteFields(&l, nil, target, gen, issued, r)
	return l
}

// setCookies returns the Set-Cookie field values WriteFields issues to
// pin target (generation gen), first picked at issued (0: now).
func setCookies(p *Policy, target string, gen uint64, issued int64, tls bool, now time.Time) []string {
	out := string(appendFields(p, nil, target, gen, issued, &Response{TLS: tls, Now: now}))
	var values []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
		values = append(values, strings.TrimPrefix(l, "Set-Cookie: "))
	}
	return values
}

func TestPolicyIssueAndRead(t *testing.T) {
	p := policy(t, nil)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	issued := setCookies(p, "10.0.0.1:80", 3, 0, false, now)
	if len(issued) != 2 {
		t.Fatalf("got %d Set-Cookie lines, want 2: %q", len(issued), issued)
	}
	v := strings.TrimPrefix(strings.SplitN(issued[0], ";", 2)[0], "AWSALB=")
	wantMain := "AWSALB=" + v + "; Expires=Wed, 02 Dec 2026 10:00:00 GMT; Path=/"
	wantCORS := "AWSALBCORS=" + v + "; Expires=Wed, 02 Dec 2026 10:00:00 GMT; Path=/; SameSite=None"
	if issued[0] != wantMain || issued[1] != wantCORS {
		t.Errorf("got\n%q\n%q\nwant\n%q\n%q", issued[0], issued[1], wantMain, wantCORS)
	}

	if tlsCookies := setCookies(p, "10.0.0.1:80", 3, 0, true, now); !strings.HasSuffix(tlsCookies[1], "; SameSite=None; Secure") {
		t.Errorf("CORS cookie on HTTPS: %q, want SameSite=None; Secure", tlsCookies[1])
	}

	for _, hdr := range []string{
		"AWSALB=" + v,
		"AWSALBCORS=" + v,
		"a=b; AWSALB=" + v + "; c=d",
		"AWSALB=\"" + v + "\"",
		"AWSALB=garbage; AWSALBCORS=" + v, // the valid one of the two wins
	} {
		s, miss := p.ReadFields(cookies(hdr), now.Add(time.Minute))
		if miss != Hit || s.Target != "10.0.0.1:80" || s.Generation != 3 {
			t.Errorf("Cookie %q: got %v %+v, want a hit on 10.0.0.1:80 gen 3", hdr, miss, s)
		}
	}
	// A client may split cookies over several Cookie fields.
	if _, miss := p.ReadFields(cookies("a=b", "AWSALB="+v), now); miss != Hit {
		t.Errorf("cookie on a second Cookie line: got %v, want hit", miss)
	}
	// A Cookie field that Connection names is hop-by-hop, but still
	// carries the client's cookies to latch.
	named := cookies("AWSALB=" + v)
	named.Kinds[0] = h1.KindNamedInConnection
	if _, miss := p.ReadFields(named, now); miss != Hit {
		t.Errorf("cookie in a Cookie field that Connection names: got %v, want hit", miss)
	}
	// Another field is not a Cookie field, whatever its value.
	if _, miss := p.ReadFields(request(h1.Field{Name: []byte("X-Cookie"), Value: []byte("AWSALB=" + v)}), now); miss != NoCookie {
		t.Errorf("our cookie in X-Cookie: got %v, want no cookie", miss)
	}
}

func TestPolicyMisses(t *testing.T) {
	p := policy(t, nil)
	now := time.Unix(1800000000, 0)
	var v string
	// A value that URL-encoding changes (one with '+' or '/'; a few
	// percent of random values have neither).
	for issued := now.Unix(); !strings.ContainsAny(v, "+/"); issued-- {
		v = strings.TrimPrefix(strings.SplitN(setCookies(p, "t:1", 1, issued, false, now)[0], ";", 2)[0], "AWSALB=")
	}

	otherGroup := NewPolicy("api", config.Stickiness{Enabled: true, LBCookieDuration: time.Hour, Cookie: config.Cookie{Name: "AWSALB", Path: "/"}}, p.keys)
	vOther := strings.TrimPrefix(strings.SplitN(setCookies(otherGroup, "t:1", 1, 0, false, now)[0], ";", 2)[0], "AWSALB=")

	foreign := NewPolicy("web", config.Stickiness{Enabled: true, LBCookieDuration: time.Hour, Cookie: config.Cookie{Name: "AWSALB", Path: "/"}}, mustRing(t, key(9, 9)))
	vForeign := strings.TrimPrefix(strings.SplitN(setCookies(foreign, "t:1", 1, 0, false, now)[0], ";", 2)[0], "AWSALB=")

	tests := []struct {
		name   string
		cookie string
		at     time.Time
		want   Miss
	}{
		{"none", "", now, NoCookie},
		{"other cookies only", "session=abc; AWSALBX=1", now, NoCookie},
		{"malformed", "AWSALB=abc", now, Malformed},
		{"url-encoded", "AWSALB=" + url.QueryEscape(v), now, Malformed},
		{"tampered", "AWSALB=" + v[:10] + flipChar(v[10]) + v[11:], now, Tampered},
		{"foreign key", "AWSALB=" + vForeign, now, UnknownKey},
		{"other group", "AWSALB=" + vOther, now, OtherGroup},
		{"within duration", "AWSALB=" + v, now.Add(time.Hour), Hit},
		{"expired", "AWSALB=" + v, now.Add(time.Hour + time.Second), Expired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := cookies()
			if tt.cookie != "" {
				req = cookies(tt.cookie)
			}
			if _, got := p.ReadFields(req, tt.at); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestPolicySlidingWindow(t *testing.T) {
	p := policy(t, nil)
	start := time.Unix(1800000000, 0)
	issued := setCookies(p, "t:1", 1, 0, false, start)
	// Each request comes 40 minutes after the last response: always within
	// the one-hour duration because every response renews it.
	at := start
	for i := range 5 {
		at = at.Add(40 * time.Minute)
		v := strings.TrimPrefix(strings.SplitN(issued[0], ";", 2)[0], "AWSALB=")
		s, miss := p.ReadFields(cookies("AWSALB="+v), at)
		if miss != Hit {
			t.Fatalf("request %d, %v after start: got %v, want hit", i, at.Sub(start), miss)
		}
		if s.Issued != start.Unix() {
			t.Errorf("issued time drifted: got %d, want %d", s.Issued, start.Unix())
		}
		issued = setCookies(p, s.Target, s.Generation, s.Issued, false, at)
	}
}

func TestPolicyCookieAttributes(t *testing.T) {
	p := policy(t, func(s *config.Stickiness) {
		s.Cookie = config.Cookie{Name: "LATCH", CORS: false, Path: "/app", Domain: "example.com", SameSite: config.SameSiteLax, Secure: true, HTTPOnly: true}
	})
	issued := setCookies(p, "t:1", 1, 0, false, time.Unix(1800000000, 0))
	if len(issued) != 1 {
		t.Fatalf("got %q, want one cookie with the CORS twin off", issued)
	}
	c := issued[0]
	for _, want := range []string{"LATCH=", "; Path=/app", "; Domain=example.com", "; HttpOnly", "; SameSite=Lax", "; Secure"} {
		if !strings.Contains(c, want) {
			t.Errorf("cookie %q lacks %q", c, want)
		}
	}
	if p2 := NewPolicy("web", config.Stickiness{}, nil); p2 != nil {
		t.Errorf("stickiness off gave a policy")
	}
}

func FuzzDecode(f *testing.F) {
	kr := mustRing(f, key(1, 1))
	f.Add(kr.Encode(Session{Target: "10.0.0.1:80", Generation: 1, LastSeen: 1}))
	f.Add("")
	f.Add("AQAAAAE=")
	f.Add(strings.Repeat("A", MaxValueLen))
	f.Fuzz(func(t *testing.T, v string) {
		s, err := kr.Decode(v)
		if err != nil {
			return
		}
		// Anything that opens must be what we sealed: re-encoding round-trips.
		back, err := kr.Decode(kr.Encode(s))
		if err != nil || back != s {
			t.Fatalf("decoded %+v does not round-trip: %+v, %v", s, back, err)
		}
	})
}

// FuzzPolicyRead reads request heads a client chose with each kind of
// policy (lb_cookie, app_cookie, header; kind picks one). The head is one
// field a line, "Name: value", a line without ": " a Cookie field. Only
// what latch sealed may pin a target, an app_cookie session only beside
// the application's cookie, and a second read (from the policy's cache of
// opened values) must say what the first said.
func FuzzPolicyRead(f *testing.F) {
	now := time.Unix(1800000000, 0)
	ring := mustRing(f, key(1, 1))
	policies := []*Policy{
		NewPolicy("web", config.Stickiness{Enabled: true, Type: config.LBCookie, LBCookieDuration: time.Hour,
			Cookie: config.Cookie{Name: "AWSALB", CORS: true, Path: "/"}}, ring),
		NewPolicy("web", config.Stickiness{Enabled: true, Type: config.AppCookie, AppCookie: "JSESSIONID",
			AppCookieDuration: time.Hour}, ring),
		NewPolicy("web", config.Stickiness{Enabled: true, Type: config.Header, Header: "X-Session",
			HeaderDuration: time.Hour, AbsoluteTimeout: 3 * time.Hour}, ring),
	}
	// A head that carries back what each policy issued.
	for k, p := range policies {
		out := string(appendFields(p, nil, "t:1", 1, 0, &Response{Now: now.Add(-time.Minute), AppCookieSet: true}))
		var head []string
		for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
			if v, ok := strings.CutPrefix(l, "Set-Cookie: "); ok {
				head = append(head, strings.SplitN(v, ";", 2)[0])
			} else {
				head = append(head, l)
			}
		}
		if p.Kind == AppCookie {
			head = append(head, "JSESSIONID=abc")
		}
		f.Add(uint8(k), strings.Join(head, "\n"))
	}
	f.Add(uint8(0), "AWSALB=; AWSALBCORS=\"\"; ;;=;")
	f.Add(uint8(1), "JSESSIONID=1; AWSALBAPP-0=\"AQ; AWSALBAPP-1=AAAA\"\nAWSALBAPP-2=_remove_")
	f.Add(uint8(2), "x-session: \"\"\nX-Session: AQAAAAE=")
	f.Fuzz(func(t *testing.T, kind uint8, head string) {
		p := policies[int(kind)%len(policies)]
		var fields []h1.Field
		for _, l := range strings.Split(head, "\n") {
			name, value, ok := strings.Cut(l, ": ")
			if !ok {
				name, value = "Cookie", l
			}
			fields = append(fields, h1.Field{Name: []byte(name), Value: []byte(value)})
		}
		req := request(fields...)
		s, miss := p.ReadFields(req, now)
		if again, miss2 := p.ReadFields(req, now); again != s || miss2 != miss {
			t.Fatalf("read twice: %+v %v, then %+v %v", s, miss, again, miss2)
		}
		if miss > Unavailable {
			t.Fatalf("miss %d", miss)
		}
		if miss != Hit {
			return
		}
		if s.Target != "t:1" || s.Group != p.group || s.LastSeen < now.Unix()-3600 || s.Issued < now.Unix()-3*3600 {
			t.Fatalf("a hit on a session nobody sealed: %+v", s)
		}
		switch p.Kind {
		case AppCookie:
			app := false
			for i, f := range req.Fields {
				for n, _, rest, ok := NextCookie(f.Value); ok && IsCookie(req, i); n, _, rest, ok = NextCookie(rest) {
					app = app || string(n) == "JSESSIONID"
				}
			}
			if !app {
				t.Fatal("an app_cookie hit without the application's cookie")
			}
		case Header:
			if !strings.Contains(strings.ToLower(head), "x-session: ") {
				t.Fatal("a header hit without the header")
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	kr := mustRing(b, key(1, 1))
	s := Session{Group: 1, Target: "10.0.0.1:8080", Generation: 1, Issued: 1, LastSeen: 2}
	b.ReportAllocs()
	for b.Loop() {
		kr.Encode(s)
	}
}

func BenchmarkDecode(b *testing.B) {
	kr := mustRing(b, key(1, 1))
	v := kr.Encode(Session{Group: 1, Target: "10.0.0.1:8080", Generation: 1, Issued: 1, LastSeen: 2})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Decode(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPolicyReadIssue(b *testing.B) {
	p := policy(b, nil)
	now := time.Now()
	req := cookies("_ga=GA1.2.3; " + strings.SplitN(setCookies(p, "10.0.0.1:8080", 1, 0, false, now)[0], ";", 2)[0] + "; theme=dark")
	buf := make([]byte, 0, 2048)
	out := make(lines, 0, 2048)
	r := &Response{Now: now}
	b.ReportAllocs()
	for b.Loop() {
		s, miss := p.ReadFields(req, now)
		if miss != Hit {
			b.Fatal(miss)
		}
		out = out[:0]
		r.Session = s.ID
		buf = p.WriteFields(&out, buf, s.Target, s.Generation, s.Issued, r)
	}
}

func TestSplitShards(t *testing.T) {
	for _, n := range []int{1, 200, appShardSize, appShardSize + 1, 3*appShardSize + 5, 4 * appShardSize} {
		v := bytes.Repeat([]byte{'v'}, n)
		shards := splitShards(v)
		var joined []byte
		used := 0
		for i, sh := range shards {
			if string(sh) == appRemoved {
				for _, rest := range shards[i:] {
					if string(rest) != appRemoved {
						t.Fatalf("%d bytes: a used shard after a _remove_ one", n)
					}
				}
				break
			}
			if len(sh) > appShardSize {
				t.Errorf("%d bytes: shard %d holds %d bytes, over %d", n, i, len(sh), appShardSize)
			}
			joined = append(joined, sh...)
			used++
		}
		if !bytes.Equal(joined, v) || used != (n+appShardSize-1)/appShardSize {
			t.Errorf("%d bytes: %d shards joined to %d bytes", n, used, len(joined))
		}
	}
}

func appPolicy(t testing.TB) *Policy {
	return NewPolicy("web", config.Stickiness{Enabled: true, Type: config.AppCookie, AppCookie: "JSESSIONID", AppCookieDuration: time.Hour},
		mustRing(t, key(1, 1)))
}

func TestAppCookieNeedsBothCookies(t *testing.T) {
	p := appPolicy(t)
	now := time.Unix(1800000000, 0)
	out := string(appendFields(p, nil, "t:1", 1, 0, &Response{Now: now, AppCookieSet: true}))
	lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
	if len(lines) != 4 {
		t.Fatalf("got %d fields, want 4 shards:\n%s", len(lines), out)
	}
	v := strings.TrimPrefix(strings.SplitN(lines[0], ";", 2)[0], "Set-Cookie: AWSALBAPP-0=")
	for i, l := range lines[1:] {
		if !strings.HasPrefix(l, fmt.Sprintf("Set-Cookie: AWSALBAPP-%d=_remove_; Expires=", i+1)) {
			t.Errorf("shard %d: %q, want _remove_", i+1, l)
		}
	}
	read := func(cookie string) Miss {
		_, m := p.ReadFields(cookies(cookie), now)
		return m
	}
	if m := read("JSESSIONID=abc; AWSALBAPP-0=" + v + "; AWSALBAPP-1=_remove_"); m != Hit {
		t.Errorf("both cookies: %v, want hit", m)
	}
	if m := read("AWSALBAPP-0=" + v); m != NoCookie {
		t.Errorf("AWSALBAPP without the application's cookie: %v, want no session", m)
	}
	if m := read("JSESSIONID=abc"); m != NoCookie {
		t.Errorf("the application's cookie alone: %v, want no session", m)
	}
	// A value split over two shards still opens.
	if m := read("JSESSIONID=abc; AWSALBAPP-0=" + v[:40] + "; AWSALBAPP-1=" + v[40:] + "; AWSALBAPP-2=_remove_"); m != Hit {
		t.Errorf("a value over two shards: %v, want hit", m)
	}
	if m := read("JSESSIONID=abc; AWSALBAPP-0=\"" + v[:40] + "; AWSALBAPP-1=" + v[40:] + "\""); m != Hit {
		t.Errorf("a quoted value over two shards: %v, want hit", m)
	}
	if m := read("JSESSIONID=abc; AWSALBAPP-0=" + v + "; AWSALBAPP-1=" + strings.Repeat("A", appShardSize)); m != Malformed {
		t.Errorf("a joined value longer than any sealed one: %v, want malformed", m)
	}
	// No session and none starting: every shard is cleared.
	none := string(appendFields(p, nil, "t:1", 1, 0, &Response{Now: now}))
	if strings.Count(none, "=_remove_;") != 4 {
		t.Errorf("a response that starts no session: %q, want 4 shards of _remove_", none)
	}
	// SameSite=None; Secure only for the browsers that need it.
	chrome := string(appendFields(p, nil, "t:1", 1, 0, &Response{Now: now, AppCookieSet: true, SameSiteNone: true}))
	if strings.Count(chrome, "; SameSite=None; Secure\r\n") != 4 || strings.Contains(out, "SameSite") {
		t.Errorf("SameSite: for Chromium %q; otherwise %q", chrome, out)
	}
}

func TestNeedsSameSiteNone(t *testing.T) {
	for ua, want := range map[string]bool{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36": true,
		"Mozilla/5.0 AppleWebKit/537.36 Chrome/79.0.3945.130 Safari/537.36":                                     false,
		"Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 CriOS/119.0 Mobile/15E148":                                   true,
		"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0":                                false,
		"curl/8.4.0": false,
		"":           false,
	} {
		if got := NeedsSameSiteNone([]byte(ua)); got != want {
			t.Errorf("%q: got %v, want %v", ua, got, want)
		}
	}
}

func TestHeaderPolicyAndTimeouts(t *testing.T) {
	p := NewPolicy("api", config.Stickiness{Enabled: true, Type: config.Header, Header: "X-Session",
		HeaderDuration: time.Hour, AbsoluteTimeout: 3 * time.Hour}, mustRing(t, key(1, 1)))
	start := time.Unix(1800000000, 0)
	out := string(appendFields(p, nil, "t:1", 1, 0, &Response{Now: start}))
	if !strings.HasPrefix(out, "X-Session: ") || !strings.HasSuffix(out, "\r\n") || strings.Count(out, "\r\n") != 1 {
		t.Fatalf("got %q, want one X-Session field", out)
	}
	v := strings.TrimSuffix(strings.TrimPrefix(out, "X-Session: "), "\r\n")
	read := func(v string, at time.Time) (Session, Miss) {
		return p.ReadFields(request(h1.Field{Name: []byte("x-session"), Value: []byte(v)}), at)
	}
	if _, m := read(v, start.Add(59*time.Minute)); m != Hit {
		t.Errorf("within the idle timeout: %v", m)
	}
	if _, m := read(v, start.Add(61*time.Minute)); m != Expired {
		t.Errorf("after the idle timeout: %v, want expired", m)
	}
	// Renewed every 50 minutes, the session lives until its absolute
	// timeout, not past it.
	at := start
	for at.Sub(start) < 3*time.Hour {
		at = at.Add(50 * time.Minute)
		s, m := read(v, at)
		if want := at.Sub(start) <= 3*time.Hour; (m == Hit) != want {
			t.Fatalf("%v after the first pick: %v, want hit %v", at.Sub(start), m, want)
		}
		if m != Hit {
			break
		}
		out := string(appendFields(p, nil, s.Target, s.Generation, s.Issued, &Response{Now: at}))
		v = strings.TrimSuffix(strings.TrimPrefix(out, "X-Session: "), "\r\n")
	}
}

func TestSessionCookieHasNoExpires(t *testing.T) {
	p := policy(t, func(s *config.Stickiness) { s.Cookie.Session = true })
	out := string(appendFields(p, nil, "t:1", 1, 0, &Response{Now: time.Unix(1800000000, 0)}))
	if strings.Contains(out, "Expires=") || strings.Count(out, "Set-Cookie: ") != 2 {
		t.Errorf("session cookies: %q, want two Set-Cookie fields without Expires", out)
	}
}

// BenchmarkSelection measures each carried-value kind's request path as the
// proxy runs it: read the session from the request's fields (a cache hit,
// as for every request of a session after its first), then append the
// response's fields (a sealed-value cache hit within the second).
func BenchmarkSelection(b *testing.B) {
	now := time.Unix(1800000000, 0)
	for _, tt := range []struct {
		name string
		s    config.Stickiness
		req  func(v string) []h1.Field
	}{
		{"lb_cookie", config.Stickiness{Enabled: true, Type: config.LBCookie, LBCookieDuration: time.Hour,
			Cookie: config.Cookie{Name: "AWSALB", CORS: true, Path: "/"}},
			func(v string) []h1.Field {
				return []h1.Field{{Name: []byte("Cookie"), Value: []byte("a=b; AWSALB=" + v)}}
			}},
		{"app_cookie", config.Stickiness{Enabled: true, Type: config.AppCookie, AppCookie: "JSESSIONID", AppCookieDuration: time.Hour},
			func(v string) []h1.Field {
				return []h1.Field{{Name: []byte("Cookie"), Value: []byte("JSESSIONID=x; AWSALBAPP-0=" + v + "; AWSALBAPP-1=_remove_")}}
			}},
		{"header", config.Stickiness{Enabled: true, Type: config.Header, Header: "X-Session", HeaderDuration: time.Hour},
			func(v string) []h1.Field { return []h1.Field{{Name: []byte("X-Session"), Value: []byte(v)}} }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			p := NewPolicy("web", tt.s, mustRing(b, key(1, 1)))
			vb, _ := p.appendValue(nil, "10.0.0.1:8080", 1, now.Unix(), 0, now)
			v := string(vb)
			req := request(tt.req(v)...)
			buf := make([]byte, 0, 2048)
			out := make(lines, 0, 2048)
			r := &Response{Now: now, Stuck: true}
			b.ReportAllocs()
			for b.Loop() {
				s, m := p.ReadFields(req, now)
				if m != Hit {
					b.Fatal(m)
				}
				out = out[:0]
				r.Session = s.ID
				buf = p.WriteFields(&out, buf, s.Target, s.Generation, s.Issued, r)
			}
		})
	}
}

// sealV1 seals s in the version 1 format latch used before sessions had an
// identity, as an older latch did.
func sealV1(kr *Keyring, s Session) string {
	raw := make([]byte, headerLen+nonceLen, maxSealed)
	raw[0] = version1
	binary.BigEndian.PutUint32(raw[1:5], kr.primary)
	rand.Read(raw[headerLen:])
	nonce := raw[headerLen : headerLen+nonceLen]
	var p []byte
	p = binary.BigEndian.AppendUint64(p, s.Group)
	p = binary.BigEndian.AppendUint64(p, s.Generation)
	p = binary.BigEndian.AppendUint64(p, uint64(s.Issued))
	p = binary.BigEndian.AppendUint64(p, uint64(s.LastSeen))
	p = append(p, byte(len(s.Target)))
	p = append(p, s.Target...)
	raw = kr.aeads[kr.primary].Seal(raw, nonce, p, raw[:headerLen])
	return base64.StdEncoding.EncodeToString(raw)
}

func TestVersion1OpensAndKeepsItsID(t *testing.T) {
	kr := mustRing(t, key(1, 1))
	p := policy(t, nil)
	p.keys = kr
	now := time.Unix(1800000000, 0)
	old := Session{Group: p.group, Target: "10.0.0.1:8080", Generation: 3, Issued: now.Unix() - 10, LastSeen: now.Unix() - 5}
	v1 := sealV1(kr, old)
	got, err := kr.Decode(v1)
	if err != nil {
		t.Fatalf("Decode(version 1): %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(v1)
	wantID := binary.BigEndian.Uint64(raw[headerLen:])
	old.ID = wantID
	if got != old {
		t.Fatalf("got %+v, want %+v (ID from the nonce)", got, old)
	}
	// Sealed again (the response to its next request), it is version 2
	// with the same ID.
	r := &Response{Now: now, Stuck: true, Session: got.ID}
	out := string(appendFields(p, nil, got.Target, got.Generation, got.Issued, r))
	v2 := strings.SplitN(strings.TrimPrefix(out, "Set-Cookie: AWSALB="), ";", 2)[0]
	raw2, _ := base64.StdEncoding.DecodeString(v2)
	if len(raw2) == 0 || raw2[0] != version2 {
		t.Fatalf("re-sealed value %q is not version 2", v2)
	}
	s2, err := kr.Decode(v2)
	if err != nil || s2.ID != wantID || r.Session != wantID {
		t.Errorf("re-sealed: got ID %x (Response.Session %x), %v; want %x", s2.ID, r.Session, err, wantID)
	}
}

func TestNewSessionsGetTheirOwnID(t *testing.T) {
	now := time.Unix(1800000000, 0)
	for _, kind := range []string{"lb_cookie", "app_cookie", "header"} {
		t.Run(kind, func(t *testing.T) {
			p := policy(t, func(s *config.Stickiness) {
				switch kind {
				case "app_cookie":
					s.Type, s.AppCookie, s.AppCookieDuration = config.AppCookie, "JSESSIONID", time.Hour
				case "header":
					s.Type, s.Header, s.HeaderDuration = config.Header, "X-Session", time.Hour
				}
			})
			seen := map[uint64]string{}
			values := map[string]bool{}
			for range 50 {
				// 50 clients starting on one target in one second.
				r := &Response{Now: now, AppCookieSet: true}
				var out lines
				p.WriteFields(&out, nil, "10.0.0.1:8080", 1, now.Unix(), r)
				if r.Session == 0 {
					t.Fatalf("WriteFields sealed no session ID")
				}
				if prev, ok := seen[r.Session]; ok {
					t.Fatalf("ID %x given twice (first with %q)", r.Session, prev)
				}
				seen[r.Session] = string(out)
				if values[string(out)] {
					t.Fatalf("two new sessions got the same fields %q", out)
				}
				values[string(out)] = true
				// The value opens to that ID.
				v := valueOf(t, p, string(out))
				if s, err := p.keys.Decode(v); err != nil || s.ID != r.Session {
					t.Fatalf("value opens to ID %x, %v; WriteFields said %x", s.ID, err, r.Session)
				}
			}
		})
	}
}

// valueOf finds the sealed value in the fields a policy wrote.
func valueOf(t *testing.T, p *Policy, out string) string {
	for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
		name, v, _ := strings.Cut(l, ": ")
		if p.Kind == Header {
			if name == p.Name {
				return v
			}
			continue
		}
		v, _, _ = strings.Cut(v, ";")
		if n, val, _ := strings.Cut(v, "="); (n == "AWSALB" || n == "AWSALBAPP-0") && val != appRemoved {
			return val
		}
	}
	t.Fatalf("no sealed value in %q", out)
	return ""
}
