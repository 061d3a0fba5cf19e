package conformance_test

import (
	"slices"
	"strings"
	"testing"
)

// TestMultipleSetCookie: every Set-Cookie line of the target reaches the
// client as a line of its own (Set-Cookie cannot be combined: RFC 9110
// §5.3), unchanged and in order, next to latch's own AWSALB and AWSALBCORS.
// The values hold commas, as Expires dates do.
func TestMultipleSetCookie(t *testing.T) {
	t.Parallel()
	cookies := []string{
		"session=abc123; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/; HttpOnly",
		"prefs=a,b,c; Path=/; Max-Age=3600",
		"theme=dark; Expires=Thu, 01 Jan 2037 00:00:00 GMT; Domain=example.com; Secure; SameSite=Lax",
	}
	target := setCookieTarget(t, cookies)
	l := startLatch(t, target.addr)
	c := dialRaw(t, l.addr)
	c.write("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp := c.response("GET")
	var fromTarget []string
	var awsalb, awsalbcors int
	for _, line := range resp.values("Set-Cookie") {
		switch {
		case strings.HasPrefix(line, "AWSALB="):
			awsalb++
		case strings.HasPrefix(line, "AWSALBCORS="):
			awsalbcors++
		default:
			fromTarget = append(fromTarget, line)
		}
	}
	if !slices.Equal(fromTarget, cookies) {
		t.Errorf("the target's Set-Cookie lines: got\n%q\nwant\n%q", fromTarget, cookies)
	}
	if awsalb != 1 || awsalbcors != 1 {
		t.Errorf("got %d AWSALB and %d AWSALBCORS lines, want one each; all Set-Cookie lines:\n%q",
			awsalb, awsalbcors, resp.values("Set-Cookie"))
	}
}

// setCookieTarget answers every request with 200 and a Set-Cookie line for
// each of cookies, in order.
func setCookieTarget(t *testing.T, cookies []string) *rawTarget {
	t.Helper()
	return startResponder(t, func(*targetConn, *message) string {
		resp := "HTTP/1.1 200 OK\r\n"
		for _, ck := range cookies {
			resp += "Set-Cookie: " + ck + "\r\n"
		}
		return resp + "Content-Length: 2\r\n\r\nok"
	})
}
