package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// startLBYAML runs latch on a whole config, with the test key; the
// listener must be "front".
func startLBYAML(t testing.TB, yaml string) *running {
	t.Helper()
	return startRunning(t, yaml+keyYAML(), "", "http")
}

func (r *running) reloadYAML(t testing.TB, yaml string) {
	t.Helper()
	r.applyYAML(t, yaml+keyYAML())
}

// groupYAML renders a target group without health checks.
func groupYAML(name string, sticky bool, targets ...string) string {
	s := fmt.Sprintf("  - name: %s\n    targets:\n", name)
	for _, t := range targets {
		s += "      - id: " + t + "\n"
	}
	return s + fmt.Sprintf("    health_check: { enabled: false }\n    attributes:\n      stickiness.enabled: %t\n      deregistration_delay.timeout_seconds: 0\n", sticky)
}

func request(t testing.TB, method, url, host, cookie string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if host != "" {
		req.Host = host
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

var noRedirects = &http.Client{
	Transport:     &http.Transport{MaxIdleConnsPerHost: 16},
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func TestRulesRouteByHostPathAndSource(t *testing.T) {
	api, shop, web := startBackend(t, "api"), startBackend(t, "shop"), startBackend(t, "web")
	lb := startLBYAML(t, `listeners:
  - name: front
    address: 127.0.0.1:0
    rules:
      - priority: 10
        conditions: [ { host_header: ["api.example.com"] } ]
        action: { type: forward, forward: { target_group: api } }
      - priority: 20
        conditions: [ { path_pattern: ["/shop/*"] }, { http_request_method: [GET] } ]
        action: { type: forward, forward: { target_group: shop } }
      - priority: 30
        conditions: [ { source_ip: ["10.0.0.0/8"] } ]
        action: { type: forward, forward: { target_group: api } }
    default_action: { type: forward, forward: { target_group: web } }
target_groups:
`+groupYAML("api", false, api.addr)+groupYAML("shop", false, shop.addr)+groupYAML("web", false, web.addr))
	for _, tt := range []struct {
		method, path, host, want string
	}{
		{"GET", "/", "api.example.com", "api"},
		{"GET", "/shop/cart?x=1", "API.Example.com:8080", "api"}, // priority 10 first; host case and port ignored
		{"GET", "/shop/cart?x=1", "www.example.com", "shop"},
		{"POST", "/shop/cart", "www.example.com", "web"}, // the method condition fails
		{"GET", "/shopping", "www.example.com", "web"},
		{"GET", "http://api.example.com/x", "www.example.com", "api"}, // absolute form: its authority is the host
	} {
		url := lb.url + tt.path
		var resp *http.Response
		if strings.HasPrefix(tt.path, "http://") {
			resp = rawGet(t, lb.url, tt.path, tt.host)
		} else {
			resp = request(t, tt.method, url, tt.host, "")
		}
		if got := resp.Header.Get("X-Backend"); got != tt.want {
			t.Errorf("%s %s (Host %s): served by %q, want %q", tt.method, tt.path, tt.host, got, tt.want)
		}
	}
}

// rawGet sends a request with an absolute-form target, which net/http's
// client does not send to a non-proxy.
func rawGet(t testing.TB, base, target, host string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufioReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp
}

func TestRedirectAndFixedResponse(t *testing.T) {
	web := startBackend(t, "web")
	lb := startLBYAML(t, `listeners:
  - name: front
    address: 127.0.0.1:0
    rules:
      - priority: 1
        conditions: [ { path_pattern: ["/old/*"] } ]
        action:
          type: redirect
          redirect: { protocol: HTTPS, port: "443", path: "/new/#{path}", query: "#{query}&from=old", status_code: HTTP_301 }
      - priority: 2
        conditions: [ { path_pattern: ["/ping"] } ]
        action:
          type: fixed-response
          fixed_response: { status_code: "503", content_type: application/json, message_body: '{"down":true}' }
    default_action: { type: forward, forward: { target_group: web } }
target_groups:
`+groupYAML("web", false, web.addr))
	resp := request(t, "GET", lb.url+"/old/a/b?x=1", "shop.example.com", "")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://shop.example.com:443/new/old/a/b?x=1&from=old" {
		t.Errorf("redirect: got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if web.hits.Load() != 0 {
		t.Errorf("the target saw %d requests, want none", web.hits.Load())
	}

	req, _ := http.NewRequest("GET", lb.url+"/ping", nil)
	r2, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 503 || r2.Header.Get("Content-Type") != "application/json" || string(body) != `{"down":true}` {
		t.Errorf("fixed response: got %d %q %q", r2.StatusCode, r2.Header.Get("Content-Type"), body)
	}
	if head := request(t, "HEAD", lb.url+"/ping", "", ""); head.StatusCode != 503 || head.ContentLength != 13 {
		t.Errorf("fixed response to HEAD: got %d, length %d", head.StatusCode, head.ContentLength)
	}
	if got := get(t, lb.url+"/other", ""); got.backend != "web" {
		t.Errorf("default action: served by %q, want web", got.backend)
	}
}

func weightedYAML(blue, green int, addrBlue, addrGreen string) string {
	return fmt.Sprintf(`listeners:
  - name: front
    address: 127.0.0.1:0
    default_action:
      type: forward
      forward:
        target_groups: [ { name: blue, weight: %d }, { name: green, weight: %d } ]
        stickiness: { enabled: true, duration_seconds: 3600 }
target_groups:
`, blue, green) + groupYAML("blue", true, addrBlue) + groupYAML("green", true, addrGreen)
}

// groupCookie returns the AWSALBTG cookie a response set.
func groupCookie(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == "AWSALBTG" {
			return c.Value
		}
	}
	return ""
}

func TestWeightedGroupsWithGroupStickiness(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	lb := startLBYAML(t, weightedYAML(50, 50, blue.addr, green.addr))

	// New sessions spread by weight, and each sticks to its group.
	type session struct{ tg, target, group string }
	var sessions []session
	seen := map[string]int{}
	for range 40 {
		resp := request(t, "GET", lb.url+"/", "", "")
		s := session{tg: groupCookie(resp), group: resp.Header.Get("X-Backend")}
		for _, c := range resp.Cookies() {
			if c.Name == "AWSALB" {
				s.target = c.Value
			}
		}
		if s.tg == "" || s.target == "" {
			t.Fatalf("a new session got AWSALBTG %q and AWSALB %q; want both", s.tg, s.target)
		}
		seen[s.group]++
		sessions = append(sessions, s)
	}
	if seen["blue"] == 0 || seen["green"] == 0 {
		t.Fatalf("40 new sessions went %v; want both groups used", seen)
	}
	for _, s := range sessions[:10] {
		resp := request(t, "GET", lb.url+"/", "", "AWSALBTG="+s.tg+"; AWSALB="+s.target)
		if got := resp.Header.Get("X-Backend"); got != s.group {
			t.Errorf("a session of %s went to %s", s.group, got)
		}
	}

	// Blue/green: blue's weight drops to 0. Its sessions stay (they drain);
	// new sessions all go green.
	lb.reloadYAML(t, weightedYAML(0, 100, blue.addr, green.addr))
	for _, s := range sessions {
		if s.group != "blue" {
			continue
		}
		if got := request(t, "GET", lb.url+"/", "", "AWSALBTG="+s.tg).Header.Get("X-Backend"); got != "blue" {
			t.Errorf("a blue session at weight 0 went to %s; want it kept on blue", got)
		}
	}
	for range 10 {
		if got := request(t, "GET", lb.url+"/", "", "").Header.Get("X-Backend"); got != "green" {
			t.Errorf("a new session at blue weight 0 went to %s, want green", got)
		}
	}
}

func TestWeightedGroupWithoutHealthyTargetsRepicks(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	yaml := strings.Replace(weightedYAML(50, 50, blue.addr, green.addr),
		"  - name: blue\n    targets:\n      - id: "+blue.addr+"\n    health_check: { enabled: false }",
		"  - name: blue\n    targets:\n      - id: "+blue.addr+"\n    health_check:\n"+fastHealth, 1)
	lb := startLBYAML(t, yaml)
	lb.waitFor(t, 5*time.Second, "blue healthy", func() bool { return lb.Health("blue")[0].State.String() == "healthy" })
	var tg string
	for tg == "" {
		if resp := request(t, "GET", lb.url+"/", "", ""); resp.Header.Get("X-Backend") == "blue" {
			tg = groupCookie(resp)
		}
	}
	blue.healthy.Store(false)
	lb.waitFor(t, 5*time.Second, "blue unhealthy", func() bool { return lb.Health("blue")[0].State.String() == "unhealthy" })
	// ALB answers 503 until the group cookie expires; latch re-picks by
	// weight among the groups that can serve.
	resp := request(t, "GET", lb.url+"/", "", "AWSALBTG="+tg)
	if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "green" {
		t.Fatalf("a blue session with blue unhealthy: got %d from %q, want 200 from green", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
	if groupCookie(resp) == "" || groupCookie(resp) == tg {
		t.Errorf("the session was not re-stuck to green with a new AWSALBTG")
	}
}

func TestWeightedGroupsWithoutStickinessSpreadByWeight(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	lb := startLBYAML(t, `listeners:
  - name: front
    address: 127.0.0.1:0
    default_action:
      type: forward
      forward: { target_groups: [ { name: ga, weight: 900 }, { name: gb, weight: 100 } ] }
target_groups:
`+groupYAML("ga", false, a.addr)+groupYAML("gb", false, b.addr))
	n := map[string]int{}
	for range 1000 {
		n[get(t, lb.url+"/", "").backend]++
	}
	// 900:100 by weight; a binomial spread of 1000 draws stays well
	// within these bounds (about 10 standard deviations).
	if n["a"] < 800 || n["b"] < 30 || n["a"]+n["b"] != 1000 {
		t.Errorf("1000 requests went %v; want about 900 to a and 100 to b", n)
	}
}

// h2cClient speaks HTTP/2 with prior knowledge over one connection.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
}

func TestHTTP2PriorKnowledgeAndFirstBurst(t *testing.T) {
	_, addrs := threeBackends(t)
	lb := startLB(t, lbConfig{targets: addrs, sticky: true, listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})
	c := h2cClient()
	ring := testRing(t)

	// A page load: 20 requests at once on one HTTP/2 connection, no cookie
	// yet. All go to one target, as one session.
	var wg sync.WaitGroup
	var mu sync.Mutex
	backends, sessions := map[string]bool{}, map[string]bool{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(lb.url + "/")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("response over %s, want HTTP/2", resp.Proto)
			}
			for _, ck := range resp.Cookies() {
				if ck.Name == "AWSALB" {
					s, err := ring.Decode(ck.Value)
					if err != nil {
						t.Errorf("latch issued a cookie its own key does not open: %v", err)
						return
					}
					mu.Lock()
					sessions[fmt.Sprintf("%s@%d", s.Target, s.Issued)] = true
					mu.Unlock()
				}
			}
			mu.Lock()
			backends[resp.Header.Get("X-Backend")] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(backends) != 1 || len(sessions) != 1 {
		t.Errorf("20 concurrent first requests on one connection went to %v as sessions %v; want one target, one session", backends, sessions)
	}

	// Without h2c on, the preface is refused (it is not HTTP/1.1).
	plain := startLB(t, lbConfig{targets: addrs})
	if _, err := h2cClient().Get(plain.url + "/"); err == nil {
		t.Errorf("h2c to a listener without routing.http2.h2c.enabled succeeded")
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
