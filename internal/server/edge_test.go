package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange sends head, a whole request, on a connection of its own and
// returns the response with its body.
func rawExchange(t *testing.T, url, head string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestTraceAndConnectRefused: TRACE and CONNECT get latch's own 405, a
// text body naming the method, and never reach the target (README, "ALB's
// edge behaviour").
func TestTraceAndConnectRefused(t *testing.T) {
	b := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{b.addr}})
	for _, c := range []struct{ method, head string }{
		{"TRACE", "TRACE / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
	} {
		resp, body := rawExchange(t, lb.url, c.head)
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
			!strings.Contains(body, c.method) {
			t.Errorf("%s: got %d, %q, body %q; want 405, text/plain, a body naming %s",
				c.method, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.method)
		}
		if resp.Header.Get("X-Backend") != "" {
			t.Errorf("%s: the answer came from the target", c.method)
		}
	}
	if n := b.hits.Load(); n != 0 {
		t.Errorf("the target got %d requests, want none", n)
	}
	// The same listener forwards other methods.
	if r := get(t, lb.url+"/", ""); r.status != 200 || r.backend != "a" {
		t.Errorf("GET after: got %d from %q, want 200 from a", r.status, r.backend)
	}
}

// TestForwardedForLimit: a request whose X-Forwarded-For fields hold more
// than 30 addresses in all (each field a comma-separated list, as latch
// and ALB count them) gets 463 and never reaches the target; 30 pass,
// and the target sees them with the client appended. Over HTTP/1.1 and
// HTTP/2 (h2c).
func TestForwardedForLimit(t *testing.T) {
	b := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: map[string]string{"routing.http2.h2c.enabled": "true"}})
	// list returns n addresses from 198.51.100.<from>, comma-separated.
	list := func(from, n int) string {
		var as []string
		for i := range n {
			as = append(as, fmt.Sprintf("198.51.100.%d", from+i))
		}
		return strings.Join(as, ", ")
	}
	for _, proto := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1", client}, {"HTTP/2", h2cClient()}} {
		for _, c := range []struct {
			name   string
			fields []string
			want   int
		}{
			// Empty entries are not addresses, on either protocol.
			{"30 and empty entries", []string{list(0, 15) + ", ,", list(15, 15)}, 200},
			{"30 in one field", []string{list(0, 30)}, 200},
			{"30 over two fields", []string{list(0, 15), list(15, 15)}, 200},
			{"31 in one field", []string{list(0, 31)}, 463},
			{"31 over two fields", []string{list(0, 15), list(15, 16)}, 463},
		} {
			t.Run(proto.name+"/"+c.name, func(t *testing.T) {
				before := b.hits.Load()
				req, _ := http.NewRequest("GET", lb.url+"/", nil)
				req.Header["X-Forwarded-For"] = c.fields
				resp, err := proto.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Fatalf("got %d %q, want %d", resp.StatusCode, body, c.want)
				}
				hits := b.hits.Load() - before
				if c.want == 463 {
					if hits != 0 || !strings.Contains(string(body), "X-Forwarded-For") {
						t.Errorf("the target got %d requests, body %q; want none, a body naming X-Forwarded-For", hits, body)
					}
					return
				}
				got := strings.Join(b.lastRequest().Header.Values("X-Forwarded-For"), ", ")
				if len(c.fields) == 2 && strings.HasSuffix(c.fields[0], ",") {
					// The empty entries pass as the client sent them.
					got = strings.Replace(got, ", ,", "", 1)
				}
				if want := list(0, 30) + ", 127.0.0.1"; hits != 1 || got != want {
					t.Errorf("the target got %d requests, X-Forwarded-For %q; want 1, %q", hits, got, want)
				}
			})
		}
	}
}

// cookieNamed returns the cookie called name that resp set, or nil.
func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestGroupStickinessCORSCookie: a weighted forward with group stickiness
// sets AWSALBTGCORS, with SameSite=None, beside AWSALBTG and with its
// value, and a request carrying only AWSALBTGCORS keeps its group, as one
// carrying AWSALBTG does (README, "Rules and actions").
func TestGroupStickinessCORSCookie(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	lb := startLBYAML(t, weightedYAML(50, 50, blue.addr, green.addr))

	// A session on each group.
	cors := map[string]string{}
	for i := 0; len(cors) < 2; i++ {
		if i == 100 {
			t.Fatalf("100 new sessions went only to %v", cors)
		}
		resp := request(t, "GET", lb.url+"/", "", "")
		tg, c := cookieNamed(resp, "AWSALBTG"), cookieNamed(resp, "AWSALBTGCORS")
		if tg == nil || c == nil {
			t.Fatalf("a new session got AWSALBTG %v and AWSALBTGCORS %v; want both", tg, c)
		}
		if c.SameSite != http.SameSiteNoneMode || c.Value != tg.Value || c.Path != "/" {
			t.Errorf("AWSALBTGCORS: %q; want SameSite=None, Path=/ and AWSALBTG's value", c.Raw)
		}
		if tg.SameSite == http.SameSiteNoneMode {
			t.Errorf("AWSALBTG: %q; want no SameSite=None (only its CORS twin has it)", tg.Raw)
		}
		cors[resp.Header.Get("X-Backend")] = c.Value
	}

	// Each group in turn at weight 0, so that every new session goes to
	// the other: a session carrying only AWSALBTGCORS stays on its group.
	for _, c := range []struct{ group, other string }{{"blue", "green"}, {"green", "blue"}} {
		w := map[string]int{c.group: 0, c.other: 100}
		lb.reloadYAML(t, weightedYAML(w["blue"], w["green"], blue.addr, green.addr))
		if got := request(t, "GET", lb.url+"/", "", "").Header.Get("X-Backend"); got != c.other {
			t.Fatalf("with %s at weight 0 a new session went to %s, want %s", c.group, got, c.other)
		}
		resp := request(t, "GET", lb.url+"/", "", "AWSALBTGCORS="+cors[c.group])
		if got := resp.Header.Get("X-Backend"); got != c.group {
			t.Errorf("a %s session carrying only AWSALBTGCORS went to %s at weight 0; want it kept on %s", c.group, got, c.group)
		}
	}
}

// TestAmbiguousRequestClosesAfterLatchsAnswer: in desync mitigation's
// defensive mode an ambiguous request (here one whose Transfer-Encoding
// name ends in a space: a field latch drops, which another server might
// read as chunked) is allowed and then both connections are closed; when
// latch answers it itself (a fixed response, a redirect, an error), the
// client's connection closes too, as after a target's answer.
func TestAmbiguousRequestClosesAfterLatchsAnswer(t *testing.T) {
	web := startBackend(t, "web")
	lb := startLBYAML(t, `listeners:
  - name: front
    address: 127.0.0.1:0
    rules:
      - priority: 1
        conditions: [ { path_pattern: ["/ping"] } ]
        action:
          type: fixed-response
          fixed_response: { status_code: "200", content_type: text/plain, message_body: "pong" }
    default_action: { type: forward, forward: { target_group: web } }
target_groups:
`+groupYAML("web", false, web.addr))
	for _, c := range []struct {
		name, body string
		close      bool
	}{
		{"compliant", "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"ambiguous", "GET /ping HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", true},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, c.body)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "pong" || resp.Close != c.close {
			t.Errorf("%s: got %s %q, Connection: close %v; want 200 pong, close %v", c.name, resp.Status, body, resp.Close, c.close)
		}
		if c.close {
			if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("%s: the connection stayed open after the answer", c.name)
			}
		}
		conn.Close()
	}
}

// TestSlowlorisHeadCutAtIdleTimeout: a client that sends its head a byte
// at a time, each well within the idle timeout, never completing it,
// gets 408 and a closed connection while it is still sending: the idle
// timeout bounds the whole head from when latch began waiting for it,
// not the time between bytes (SECURITY.md, "Slow clients").
func TestSlowlorisHeadCutAtIdleTimeout(t *testing.T) {
	b := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{b.addr}, listenAttrs: map[string]string{"idle_timeout.timeout_seconds": "0.3"}})
	c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// A byte every 50 ms for up to 5 s: a timeout between bytes would
	// never fire while this runs.
	stop, dribbling := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(dribbling)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		end := time.After(5 * time.Second)
		for {
			select {
			case <-stop:
				return
			case <-end:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("a")); err != nil {
					return // latch closed the connection
				}
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(c)
	select {
	case <-dribbling:
		t.Errorf("the connection was still open when the client stopped sending after 5 s (got %q)", got)
	default:
	}
	close(stop)
	<-dribbling
	if !strings.HasPrefix(string(got), "HTTP/1.1 408 ") {
		t.Errorf("got %q, want a 408", got)
	}
	if n := b.hits.Load(); n != 0 {
		t.Errorf("the target got %d requests, want none", n)
	}
}
