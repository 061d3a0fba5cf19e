package faults

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

// Scenario 13 of issue 9: requests over ALB's limits (README "ALB's edge
// behaviour": a request line of 16 KiB, a field of 16 KiB, a head of 64
// KiB, 500 fields), and chunk sizes no body can have. What latch promises:
// each is refused with 400 before anything reaches a target, over
// HTTP/1.1 and HTTP/2 alike, and latch goes on serving.

// oversized is one request over a limit.
type oversized struct {
	name string
	id   string
	// raw is the whole request as HTTP/1.1 sends it; for HTTP/2, the
	// request is built from path and fields.
	raw    string
	path   string
	fields [][2]string
	h1only bool // chunked framing has no HTTP/2 form
}

func oversizedRequests() []oversized {
	kib := func(n int) string { return strings.Repeat("a", n<<10) }
	var many [][2]string
	for i := range 501 {
		many = append(many, [2]string{fmt.Sprintf("X-F%d", i), "v"})
	}
	var big [][2]string
	for i := range 5 {
		big = append(big, [2]string{fmt.Sprintf("X-Big%d", i), kib(13)})
	}
	cs := []oversized{
		{name: "a request line of 17 KiB", id: "line", path: "/" + kib(17)},
		{name: "a field of 17 KiB", id: "field", path: "/", fields: [][2]string{{"X-Big", kib(17)}}},
		{name: "a head of 65 KiB (5 fields of 13 KiB)", id: "head", path: "/", fields: big},
		{name: "501 fields", id: "count", path: "/", fields: many},
		{name: "a chunk size of 17 hex digits", id: "chunk", h1only: true,
			raw: "POST /upload HTTP/1.1\r\nHost: latch\r\nX-Request-Id: big-chunk\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n"},
		{name: "a chunk-size line of 5 KiB (extensions)", id: "chunkline", h1only: true,
			raw: "POST /upload HTTP/1.1\r\nHost: latch\r\nX-Request-Id: big-chunkline\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=" + kib(5) + "\r\nabc\r\n0\r\n\r\n"},
	}
	for i, c := range cs {
		if c.raw != "" {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: latch\r\nX-Request-Id: big-%s\r\n", c.path, c.id)
		for _, f := range c.fields {
			fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
		}
		b.WriteString("\r\n")
		cs[i].raw = b.String()
	}
	return cs
}

func testOversized(t *testing.T, v variant, r *row) {
	led := newLedger()
	ts := startTargets(t, led, 3, modeOK)
	p := startLatch(t, r, v, latchOptions{targets: addrs(ts)})
	var answers []string
	refused := 0
	cases := oversizedRequests()
	tried := 0
	for _, c := range cases {
		if c.h1only && v.proto != "" {
			continue
		}
		tried++
		var got string
		if v.proto == "" {
			got = sendRawH1(p.addr, c.raw)
		} else {
			got = sendH2(p, v.proto, c)
		}
		answers = append(answers, got)
		if got == "400" || strings.HasPrefix(got, "refused by the client") {
			refused++
		} else {
			r.errorf(t, "%s: got %s, want 400", c.name, got)
		}
	}
	led.sync(t, ts...)
	reached := led.requests(func(e entry) bool { return strings.HasPrefix(e.id, "big-") })
	var control result
	if v.proto == "" || v.proto == "https" {
		control = send(p.client(), http.MethodGet, p.url+"/control", "control", "")
	} else {
		control = send(h2Client(p, v.proto), http.MethodGet, p.url+"/control", "control", "")
	}

	switch v.proto {
	case "":
		r.fault = "over ALB's limits on HTTP/1.1: request line, field, head, field count (17 KiB, 17 KiB, 65 KiB, 501); chunk size, chunk-size line"
		r.load = fmt.Sprintf("%d requests on raw sockets", tried)
	default:
		r.fault = fmt.Sprintf("over ALB's limits on HTTP/2 (%s): :path, field, head, field count (17 KiB, 17 KiB, 65 KiB, 501)", v.proto)
		r.load = fmt.Sprintf("%d requests from net/http's HTTP/2 client", tried)
	}
	r.saw = tally(answers) + "; then a normal request: " + fmt.Sprint(control.status)
	r.lost = fmt.Sprintf("requests over the limits that reached a target: %d", len(reached))
	for _, e := range reached {
		r.errorf(t, "request %s reached target %s, want nothing over the limits to reach one", e.id, e.target)
	}
	if !control.ok() {
		r.errorf(t, "a normal request after them got %d %q, want 200", control.status, control.err)
	}
	if code := p.stop(t); code != 0 {
		r.errorf(t, "latch exited %d on SIGTERM, want 0", code)
	}
}

// sendRawH1 writes req on a new connection, while reading the answer (a
// big request may still be going out when latch answers), and returns
// the status, or what went wrong.
func sendRawH1(addr, req string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, req)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "no answer: " + err.Error()
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// h2Client is an HTTP/2 client of latch: cleartext with prior knowledge
// (h2c) or over TLS (h2).
func h2Client(p *latchProc, proto string) *http.Client {
	var ps http.Protocols
	if proto == "h2c" {
		ps.SetUnencryptedHTTP2(true)
	} else {
		ps.SetHTTP2(true)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: p.tlsConfig(), Protocols: &ps}}
}

// sendH2 sends c over HTTP/2 on a connection of its own, and returns the
// status, or why there is none. A request the client itself refuses to
// send because latch advertised a smaller SETTINGS_MAX_HEADER_LIST_SIZE is
// refused too: nothing left the client.
func sendH2(p *latchProc, proto string, c oversized) string {
	cl := h2Client(p, proto)
	defer cl.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, p.url+c.path, nil)
	if err != nil {
		return "bad request: " + err.Error()
	}
	req.Header.Set("X-Request-Id", "big-"+c.id)
	for _, f := range c.fields {
		req.Header.Add(f[0], f[1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "advertised limit") {
			return "refused by the client (latch's advertised header list limit)"
		}
		return "error: " + err.Error()
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return fmt.Sprintf("%d over HTTP/%d.%d, want HTTP/2", resp.StatusCode, resp.ProtoMajor, resp.ProtoMinor)
	}
	return fmt.Sprint(resp.StatusCode)
}

// tally counts equal answers: "400×5, 200×1".
func tally(answers []string) string {
	var order []string
	n := map[string]int{}
	for _, a := range answers {
		if n[a] == 0 {
			order = append(order, a)
		}
		n[a]++
	}
	var parts []string
	for _, a := range order {
		parts = append(parts, fmt.Sprintf("%s×%d", a, n[a]))
	}
	return strings.Join(parts, ", ")
}
