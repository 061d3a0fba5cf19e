package h1

import (
	"bytes"
	"testing"
)

// These tests hold Frame to what its comment promises: it refuses what
// cannot be forwarded safely in any desync mitigation mode (monitor mode
// forwards everything Frame accepts), and it applies the RFC 9110/9112
// rules the proxy relies on.

func frameOf(t *testing.T, in string) (*Request, error) {
	t.Helper()
	rd, _ := newFeed(in, feeds[0].wrap)
	req := new(Request)
	if _, err := rd.ReadRequest(req); err != nil {
		return req, err
	}
	return req, req.Frame()
}

// TestFrameRefusesEmptyTarget: "GET  HTTP/1.1" (two spaces) splits into an
// empty target; forwarded verbatim, a target that splits on runs of
// whitespace reads it as an HTTP/0.9 request for "HTTP/1.1". (Fixed in
// 2b17d27.)
func TestFrameRefusesEmptyTarget(t *testing.T) {
	req, err := frameOf(t, "GET  HTTP/1.1\r\nHost: a\r\n\r\n")
	if err == nil {
		t.Errorf("Frame accepted a request with an empty target (Method %q, Target %q, Proto %q), want ErrRequestLine",
			req.Method, req.Target, req.Proto)
	}
}

// TestFrameNeverForwardsWhitespaceBeforeFieldName: a field line that
// starts with SP or HTAB is obs-fold to whatever line comes before it (RFC
// 9112 §5.2, §2.2). parse folds it only into a named field; after a line
// without a colon, or right after the request line, it becomes a field
// whose name starts with whitespace. Forwarded, the target would fold it
// into the field latch wrote before it (Host, say): Frame must refuse the
// request or drop the field. (Before 2b17d27 it forwarded it.)
func TestFrameNeverForwardsWhitespaceBeforeFieldName(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n X: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\tHost: evil\r\n\r\n",
		"GET / HTTP/1.0\r\n X: b\r\n\r\n",
		"GET / HTTP/1.1\r\n\tX: b\r\nHost: a\r\n\r\n",
	} {
		req, err := frameOf(t, in)
		if err != nil {
			continue
		}
		for i, f := range req.Fields {
			if len(f.Name) > 0 && (f.Name[0] == ' ' || f.Name[0] == '\t') && !req.Kinds[i].HopByHop() {
				t.Errorf("Frame(%q) would forward field %q (kind %s)", in, f.Name, kindName(req.Kinds[i]))
			}
		}
	}
}

// TestExpectIgnoredInHTTP10: RFC 9110 §10.1.1, "A server that receives a
// 100-continue expectation in an HTTP/1.0 request MUST ignore that
// expectation." With Expect100 set the proxy answers "HTTP/1.1 100
// Continue" to an HTTP/1.0 client, which takes it for the final response.
func TestExpectIgnoredInHTTP10(t *testing.T) {
	req, err := frameOf(t, "POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if req.Expect100 {
		t.Errorf("Expect100 = true for an HTTP/1.0 request, want false")
	}
}

// TestUpgradeIgnoredInHTTP10: RFC 9110 §7.8, "A server MUST ignore an
// Upgrade header field that is received in an HTTP/1.0 request."
func TestUpgradeIgnoredInHTTP10(t *testing.T) {
	req, err := frameOf(t, "GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if req.Upgrade {
		t.Errorf("Upgrade = true for an HTTP/1.0 request, want false")
	}
}

// TestHTTP10TransferEncodingCloses: RFC 9112 §6.1, "A server or client that
// receives an HTTP/1.0 message containing a Transfer-Encoding header field
// MUST treat the message as if the framing is faulty, even if a
// Content-Length is present, and close the connection after processing
// the message." Frame refuses chunked in HTTP/1.0, but accepts identity
// and keeps the connection.
func TestHTTP10TransferEncodingCloses(t *testing.T) {
	req, err := frameOf(t, "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: identity\r\nContent-Length: 4\r\n\r\n")
	if err != nil {
		return // refusing it is fine too
	}
	if req.KeepAlive && !req.BothTEAndCL {
		t.Errorf("KeepAlive = true, BothTEAndCL = false for an HTTP/1.0 request with Transfer-Encoding; want the connection closed after it")
	}
}

// TestAbsoluteFormUserinfo: with an absolute-form target the Host field is
// replaced by the target URI's host and port (RFC 9112 §3.2.2), not its
// whole authority: "http://user@example.com/" must not route, and be
// forwarded, as Host "user@example.com". RFC 9110 §4.2.4 has a recipient
// treat userinfo in an http URI as an error; refusing it is fine too.
func TestAbsoluteFormUserinfo(t *testing.T) {
	for _, in := range []string{
		"GET http://user@example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET http://admin.example.com:pw@public.example.com/ HTTP/1.1\r\nHost: public.example.com\r\n\r\n",
	} {
		req, err := frameOf(t, in)
		if err != nil {
			continue
		}
		if bytes.IndexByte(req.Host, '@') >= 0 {
			t.Errorf("%q: Host = %q, want the host and port only (or an error)", in, req.Host)
		}
	}
}
