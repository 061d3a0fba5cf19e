package conformance_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// wsTarget is a target that says who it is: /page answers with its name, and
// /ws is a WebSocket endpoint that first sends "hello from <name>", then
// echoes every message back with its type. Both carry X-Target: <name>.
func wsTarget(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Target", name)
		io.WriteString(w, name)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Target", name)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(4 << 20)
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if c.Write(ctx, websocket.MessageText, []byte("hello from "+name)) != nil {
			return
		}
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			if c.Write(ctx, typ, data) != nil {
				return
			}
		}
	})
	return mux
}

// TestWebSocket: a browser-like client GETs a page (and so its AWSALB
// cookie), then opens a WebSocket through latch with that cookie: the
// upgrade reaches the same target as the page, messages pass both ways
// (text and binary, empty to 1 MiB, several in flight at once), and every
// reconnection with the cookie lands on that target again. Upgrades
// (RFC 9110 §7.8) are what ALB, HAProxy and nginx (with the Upgrade
// headers set) all carry.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	names := []string{"alpha", "bravo", "charlie"}
	var addrs []string
	for _, name := range names {
		addrs = append(addrs, startHTTPTarget(t, wsTarget(name)))
	}
	l := startLatch(t, addrs...)
	client := newClient(t)
	messages := []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("hello")},
		{websocket.MessageBinary, []byte{0, 1, 2, 0xfe, 0xff}},
		{websocket.MessageText, []byte(strings.Repeat("caf\u00e9 ", 2000))},
		{websocket.MessageBinary, payload(1<<20, 3)},
		{websocket.MessageText, []byte{}},
		{websocket.MessageBinary, payload(70000, 4)}, // a 64-bit frame length
		{websocket.MessageText, []byte("last")},
	}
	seen := map[string]bool{}
	for session := range 3 {
		resp, err := client.Get(l.url("/page"))
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var cookie string
		for _, ck := range resp.Cookies() {
			if ck.Name == "AWSALB" {
				cookie = ck.Value
			}
		}
		if cookie == "" {
			t.Fatalf("session %d: the page came without an AWSALB cookie: %q", session, resp.Header["Set-Cookie"])
		}
		owner := string(page)
		seen[owner] = true
		for attempt := range 3 {
			func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				defer cancel()
				conn, hresp, err := websocket.Dial(ctx, "ws://"+l.addr+"/ws", &websocket.DialOptions{
					HTTPClient: client,
					HTTPHeader: http.Header{"Cookie": {"AWSALB=" + cookie}},
				})
				if err != nil {
					status := 0
					if hresp != nil {
						status = hresp.StatusCode
					}
					t.Fatalf("session %d, connection %d: the WebSocket handshake failed: %v (status %d)", session, attempt+1, err, status)
				}
				defer conn.CloseNow()
				conn.SetReadLimit(4 << 20)
				if got := hresp.Header.Get("X-Target"); got != owner {
					t.Errorf("session %d, connection %d: the WebSocket reached %q, but the session belongs to %q", session, attempt+1, got, owner)
				}
				if typ, data, err := conn.Read(ctx); err != nil || typ != websocket.MessageText || string(data) != "hello from "+owner {
					t.Fatalf("the target's first message: got %v %q, %v; want text %q", typ, data, err, "hello from "+owner)
				}
				toSend := messages
				if attempt > 0 {
					toSend = messages[:1]
				}
				// Write everything at once while reading the echoes, so that
				// both directions are busy together.
				wrote := make(chan error, 1)
				go func() {
					for _, m := range toSend {
						if err := conn.Write(ctx, m.typ, m.data); err != nil {
							wrote <- err
							return
						}
					}
					wrote <- nil
				}()
				for i, m := range toSend {
					typ, data, err := conn.Read(ctx)
					if err != nil {
						t.Fatalf("echo %d: %v", i, err)
					}
					if typ != m.typ || !bytes.Equal(data, m.data) {
						t.Fatalf("echo %d: got %v of %d bytes (sha256 %s), want %v of %d bytes (sha256 %s)",
							i, typ, len(data), sha(data), m.typ, len(m.data), sha(m.data))
					}
				}
				if err := await(t, wrote, "the client's writes"); err != nil {
					t.Fatalf("writing: %v", err)
				}
				if err := conn.Close(websocket.StatusNormalClosure, "done"); err != nil {
					t.Errorf("closing: %v", err)
				}
			}()
		}
	}
	if len(seen) < 2 {
		t.Errorf("three new sessions all went to %v: the test needs sessions on several targets", seen)
	}
}

// TestUpgrade: an upgrade to any protocol (`Upgrade: foo`) that the target
// accepts with 101 turns the connection into a tunnel: latch forwards the
// upgrade request with its Upgrade and `Connection: upgrade`, relays the
// 101 with them, then carries raw bytes both ways until one side closes. An
// upgrade the target declines is an ordinary exchange, and the connection
// goes on as HTTP.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	tunnelled := payload(1<<20, 5) // every byte value, 1 MiB
	target := startRawTarget(t, func(c *targetConn) {
		for {
			m, err := readRequest(c.br)
			if err != nil {
				return
			}
			if !strings.Contains(m.StartLine, "/tunnel") {
				if c.write("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nno thanks") != nil {
					return
				}
				continue
			}
			if !hasToken(m.Header, "Upgrade", "foo") || !hasToken(m.Header, "Connection", "upgrade") {
				body := fmt.Sprintf("not an upgrade request: Upgrade %q, Connection %q", fieldList(m.Header, "Upgrade"), fieldList(m.Header, "Connection"))
				c.write(fmt.Sprintf("HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
				return
			}
			if c.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\nX-Tunnel: yes\r\n\r\nhello from the target\n") != nil {
				return
			}
			// The foo protocol: the client sends 1 MiB, the target sends it
			// back, then says bye and closes.
			got := make([]byte, len(tunnelled))
			if _, err := io.ReadFull(c.br, got); err != nil {
				return
			}
			c.Write(got)
			c.write("bye\n")
			return
		}
	})
	l := startLatch(t, target.addr)

	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, l.addr)
		c.write("GET /tunnel HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
		resp := c.next("GET")
		if resp.status() != 101 {
			t.Fatalf("got\n%s\nwant the target's 101", resp)
		}
		if !hasToken(resp.Header, "Upgrade", "foo") || !hasToken(resp.Header, "Connection", "upgrade") || resp.get("X-Tunnel") != "yes" {
			t.Errorf("the 101 reached the client as\n%s\nwant Upgrade: foo, Connection: upgrade, X-Tunnel: yes", resp)
		}
		if line, err := readLine(c.br); err != nil || line != "hello from the target" {
			t.Fatalf("the target's first bytes: got %q, %v", line, err)
		}
		wrote := make(chan error, 1)
		go func() { _, err := c.c.Write(tunnelled); wrote <- err }()
		back := make([]byte, len(tunnelled))
		if _, err := io.ReadFull(c.br, back); err != nil || !bytes.Equal(back, tunnelled) {
			t.Fatalf("the tunnelled bytes came back with sha256 %s (%v), want %s", sha(back), err, sha(tunnelled))
		}
		if err := await(t, wrote, "the client's write"); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(c.br)
		if err != nil || string(rest) != "bye\n" {
			t.Errorf("after the echo: got %q, %v; want %q and the connection closed", rest, err, "bye\n")
		}
	})

	t.Run("declined", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, l.addr)
		c.write("GET /plain HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: bar\r\n\r\n")
		if resp := c.response("GET"); resp.status() != 200 || string(resp.Body) != "no thanks" {
			t.Fatalf("got\n%s\nwant the target's 200", resp)
		}
		c.write("GET /plain HTTP/1.1\r\nHost: example.com\r\n\r\n")
		if resp := c.response("GET"); resp.status() != 200 || string(resp.Body) != "no thanks" {
			t.Errorf("the next request on the connection: got\n%s", resp)
		}
	})
}
