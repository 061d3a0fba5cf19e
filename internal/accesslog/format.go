package accesslog

import (
	"crypto/tls"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/latch-lb/latch/internal/desync"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/sticky"
)

// Fields are the names of a line's fields, in order: ALB's 33 (its access
// log's, as AWS documents them and Athena's table names them), then
// latch's own, appended as AWS tells parsers to expect ("ignore any fields
// at the end of the log entry that you were not expecting"). A JSON line
// uses them as its keys.
var Fields = []string{
	"type", "time", "elb", "client:port", "target:port",
	"request_processing_time", "target_processing_time", "response_processing_time",
	"elb_status_code", "target_status_code", "received_bytes", "sent_bytes",
	"request", "user_agent", "ssl_cipher", "ssl_protocol", "target_group_arn",
	"trace_id", "domain_name", "chosen_cert_arn", "matched_rule_priority",
	"request_creation_time", "actions_executed", "redirect_url", "error_reason",
	"target:port_list", "target_status_code_list", "classification", "classification_reason",
	"conn_trace_id", "transformed_host", "transformed_uri", "request_transform_status",
	// latch's own.
	"sticky", "sticky_reason", "session_moved_from", "retried",
}

// Quoted says which of Fields ALB writes in double quotes (they may hold
// spaces); the others are single tokens.
var Quoted = map[string]bool{
	"request": true, "user_agent": true, "trace_id": true, "domain_name": true, "chosen_cert_arn": true,
	"actions_executed": true, "redirect_url": true, "error_reason": true, "target:port_list": true,
	"target_status_code_list": true, "classification": true, "classification_reason": true,
	"transformed_host": true, "transformed_uri": true, "request_transform_status": true,
}

// maxUserAgent is where ALB truncates a user agent: 8 KB.
const maxUserAgent = 8 << 10

// line appends one field at a time to b, as ALB's space-separated line or
// as a JSON object: what a field is (a token, a quoted string, a number, a
// duration) decides how each format writes it, and absence ("-" in ALB's
// line) is null in JSON. It allocates nothing.
type line struct {
	b    []byte
	json bool
	n    int // fields written
}

func (l *line) sep(name string) {
	if l.json {
		if l.n == 0 {
			l.b = append(l.b, '{')
		} else {
			l.b = append(l.b, ',')
		}
		l.b = append(l.b, '"')
		l.b = append(l.b, name...)
		l.b = append(l.b, `":`...)
	} else if l.n > 0 {
		l.b = append(l.b, ' ')
	}
	l.n++
}

func (l *line) end() {
	if l.json {
		l.b = append(l.b, '}')
	}
	l.b = append(l.b, '\n')
}

// absent writes a field that has no value: - (or "-" when ALB quotes the
// field), null in JSON.
func (l *line) absent(name string, quoted bool) {
	l.sep(name)
	switch {
	case l.json:
		l.b = append(l.b, "null"...)
	case quoted:
		l.b = append(l.b, `"-"`...)
	default:
		l.b = append(l.b, '-')
	}
}

// token writes a value that holds no space or quote (a name latch chose,
// an address); "" is absent.
func (l *line) token(name, v string) {
	if v == "" {
		l.absent(name, false)
		return
	}
	l.sep(name)
	if l.json {
		l.b = appendJSONString(l.b, v)
	} else {
		l.b = appendEscaped(l.b, v, false)
	}
}

// quoted writes a value ALB quotes, from the client or a target (it may
// hold anything); empty is absent.
func (l *line) quoted(name string, v []byte) {
	if len(v) == 0 {
		l.absent(name, true)
		return
	}
	l.sep(name)
	if l.json {
		l.b = appendJSONString(l.b, v)
		return
	}
	l.b = append(l.b, '"')
	l.b = appendEscaped(l.b, v, true)
	l.b = append(l.b, '"')
}

func (l *line) quotedString(name, v string) {
	if v == "" {
		l.absent(name, true)
		return
	}
	l.sep(name)
	if l.json {
		l.b = appendJSONString(l.b, v)
		return
	}
	l.b = append(l.b, '"')
	l.b = appendEscaped(l.b, v, true)
	l.b = append(l.b, '"')
}

// number writes an integer; ok false is absent.
func (l *line) number(name string, v int64, ok bool) {
	if !ok {
		l.absent(name, false)
		return
	}
	l.sep(name)
	l.b = strconv.AppendInt(l.b, v, 10)
}

// seconds writes a duration as ALB does, in seconds with millisecond
// precision (0.012), or -1 when ok is false (ALB's "-1 if the load
// balancer can't dispatch the request to a target").
func (l *line) seconds(name string, d time.Duration, ok bool) {
	l.sep(name)
	if !ok {
		l.b = append(l.b, "-1"...)
		return
	}
	ms := (d + time.Millisecond/2) / time.Millisecond
	if ms < 0 {
		ms = 0
	}
	l.b = strconv.AppendInt(l.b, int64(ms/1000), 10)
	l.b = append(l.b, '.')
	frac := int64(ms % 1000)
	l.b = append(l.b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// isoLayout is ALB's time format: ISO 8601, UTC, microseconds.
const isoLayout = "2006-01-02T15:04:05.000000Z"

func (l *line) time(name string, t time.Time) {
	l.sep(name)
	if l.json {
		l.b = append(l.b, '"')
	}
	l.b = appendISO(l.b, t)
	if l.json {
		l.b = append(l.b, '"')
	}
}

// appendISO appends t as isoLayout does, by hand: time.AppendFormat
// takes a quarter of a line's formatting.
func appendISO(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, int(mo), 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, h, 2)
	b = append(b, ':')
	b = appendDigits(b, mi, 2)
	b = append(b, ':')
	b = appendDigits(b, s, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends v, 0 <= v < 10^n, in n digits.
func appendDigits(b []byte, v, n int) []byte {
	var d [9]byte
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
}

func (l *line) boolean(name string, v bool) {
	l.sep(name)
	l.b = strconv.AppendBool(l.b, v)
}

// appendEscaped appends s with what would break a line or a field
// escaped as \xHH: control bytes, bytes past ASCII, the backslash, and
// in a quoted field the double quote, so that a quoted field never holds
// a bare quote (the regular expressions of Athena's ALB table, Vector and
// GoAccess end a quoted field at the first one). Outside quotes a space
// is escaped too: a token must stay one.
func appendEscaped[S string | []byte](b []byte, s S, quoted bool) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' || c == '"' || !quoted && c == ' ' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control bytes escaped, and bytes that are not UTF-8 replaced with
// U+FFFD, so that every line is valid JSON whatever a client sent.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		var r rune
		var n int
		switch v := any(s).(type) {
		case string:
			r, n = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, n = utf8.DecodeRune(v[i:])
		}
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// appendRecord appends r's line to l; elb names the load balancer (ALB's
// elb field).
func appendRecord(l *line, r *proxy.Record, elb string) {
	l.token("type", typeOf(r))
	end := r.Start.Add(r.Duration)
	l.time("time", end)
	l.token("elb", elb)
	l.sep("client:port")
	if l.json {
		l.b = appendJSONString(l.b, r.Client)
	} else {
		l.b = appendEscaped(l.b, r.Client, false)
	}
	target := ""
	if r.Target != nil {
		target = r.Target.ID
	}
	l.token("target:port", target)

	// ALB's three processing times: Start to Sent, Sent to Head, Head to
	// the end; -1 from where the request did not get.
	sent, head := !r.Sent.IsZero(), !r.Head.IsZero()
	l.seconds("request_processing_time", r.Sent.Sub(r.Start), sent)
	l.seconds("target_processing_time", r.Head.Sub(r.Sent), sent && head)
	l.seconds("response_processing_time", end.Sub(r.Head), sent && head)
	status := r.Status
	if status == 0 {
		status = 460 // ALB's: the client closed the connection first
	}
	l.number("elb_status_code", int64(status), true)
	l.number("target_status_code", int64(r.TargetStatus), r.TargetStatus != 0)
	l.number("received_bytes", r.BytesIn, true)
	l.number("sent_bytes", r.BytesOut, true)

	l.sep("request")
	if !l.json {
		l.b = append(l.b, '"')
	}
	start := len(l.b)
	l.b = appendRequestLine(l.b, r)
	if l.json {
		// The line was built unescaped: escape it in place, through the
		// tail of the buffer.
		n := len(l.b)
		l.b = appendJSONString(l.b, l.b[start:n])
		l.b = append(l.b[:start], l.b[n:]...)
	} else {
		n := len(l.b)
		l.b = appendEscaped(l.b, l.b[start:n], true)
		l.b = append(l.b[:start], l.b[n:]...)
		l.b = append(l.b, '"')
	}

	ua := r.UserAgent
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	l.quoted("user_agent", ua)
	if r.TLSVersion != 0 {
		l.token("ssl_cipher", cipherName(r.TLSCipher))
		l.token("ssl_protocol", protocolName(r.TLSVersion))
	} else {
		l.absent("ssl_cipher", false)
		l.absent("ssl_protocol", false)
	}
	l.token("target_group_arn", r.Group)
	l.quoted("trace_id", r.Trace)
	l.quotedString("domain_name", r.SNI)
	l.absent("chosen_cert_arn", true)
	l.number("matched_rule_priority", int64(r.Rule), r.Routed)
	l.time("request_creation_time", r.Start)
	if r.Routed {
		l.quotedString("actions_executed", actionName(r.Action))
	} else {
		l.absent("actions_executed", true)
	}
	l.quoted("redirect_url", r.Redirect)
	l.quotedString("error_reason", r.ErrorReason)
	l.quotedString("target:port_list", target)
	if r.TargetStatus != 0 {
		l.sep("target_status_code_list") // a string in both formats: ALB's list
		l.b = append(l.b, '"')
		l.b = strconv.AppendInt(l.b, int64(r.TargetStatus), 10)
		l.b = append(l.b, '"')
	} else {
		l.absent("target_status_code_list", true)
	}
	// ALB writes - for a compliant request, and for one not classified.
	if r.Classified && r.Desync.Tier != desync.Compliant {
		l.quotedString("classification", r.Desync.Tier.String())
		l.quotedString("classification_reason", r.Desync.Reason.String())
	} else {
		l.absent("classification", true)
		l.absent("classification_reason", true)
	}
	l.absent("conn_trace_id", false)
	l.absent("transformed_host", true)
	l.absent("transformed_uri", true)
	l.absent("request_transform_status", true)

	if r.Sticky == sticky.NotSticky {
		l.absent("sticky", false)
	} else {
		l.token("sticky", r.Sticky.String())
	}
	l.token("sticky_reason", r.StickyReason.String())
	l.token("session_moved_from", r.MovedFrom)
	l.boolean("retried", r.Retried)
	l.end()
}

// typeOf is ALB's type: http, https, h2 (every HTTP/2 stream, h2c's too),
// ws or wss (a protocol switch the target accepted: logged when the
// tunnel closes).
func typeOf(r *proxy.Record) string {
	tls := r.Proto == "https"
	switch {
	case r.Status == 101:
		if tls {
			return "wss"
		}
		return "ws"
	case r.HTTP2:
		return "h2"
	case tls:
		return "https"
	}
	return "http"
}

// appendRequestLine appends the request as ALB writes it, unescaped:
// method, then scheme://host:port followed by the path and query as the
// client sent them, then the version ("GET https://example.com:443/a?b
// HTTP/1.1"); "- - -" when the request line could not be read.
func appendRequestLine(b []byte, r *proxy.Record) []byte {
	if len(r.Method) == 0 {
		return append(b, "- - -"...)
	}
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.Proto...)
	b = append(b, "://"...)
	host := stripPort(r.Host)
	if len(host) == 0 {
		b = append(b, '-')
	} else {
		b = append(b, host...)
	}
	b = append(b, ':')
	b = append(b, r.Port...)
	b = append(b, pathOf(r.URI)...)
	switch {
	case r.HTTP2:
		return append(b, " HTTP/2.0"...)
	case len(r.Version) == 0:
		return append(b, " -"...) // HTTP/0.9's line has none
	}
	b = append(b, ' ')
	return append(b, r.Version...)
}

// stripPort returns host without a port ("example.com:8080", "[::1]:80").
func stripPort(host []byte) []byte {
	for i := len(host) - 1; i >= 0; i-- {
		switch c := host[i]; {
		case c == ':':
			return host[:i]
		case c < '0' || c > '9':
			return host
		}
	}
	return host
}

// pathOf returns the path and query of a request target: an absolute-form
// target's (http://host/path) less its scheme and authority.
func pathOf(uri []byte) []byte {
	if len(uri) == 0 || uri[0] == '/' || uri[0] == '*' {
		return uri
	}
	for i := 0; i+2 < len(uri); i++ {
		if uri[i] == ':' && uri[i+1] == '/' && uri[i+2] == '/' {
			rest := uri[i+3:]
			for j, c := range rest {
				if c == '/' || c == '?' {
					return rest[j:]
				}
			}
			return nil
		}
	}
	return uri
}

func actionName(k proxy.ActionKind) string {
	switch k {
	case proxy.Forward:
		return "forward"
	case proxy.Redirect:
		return "redirect"
	case proxy.FixedResponse:
		return "fixed-response"
	}
	return ""
}

// protocolName is the TLS version as ALB (and OpenSSL) write it.
func protocolName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return "unknown"
}

// cipherName is the cipher suite as ALB writes it: OpenSSL's name
// (ECDHE-RSA-AES128-GCM-SHA256), which TLS 1.3's suites share with IANA.
func cipherName(id uint16) string {
	if n, ok := opensslNames[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

var opensslNames = map[uint16]string{
	tls.TLS_AES_128_GCM_SHA256:                        "TLS_AES_128_GCM_SHA256",
	tls.TLS_AES_256_GCM_SHA384:                        "TLS_AES_256_GCM_SHA384",
	tls.TLS_CHACHA20_POLY1305_SHA256:                  "TLS_CHACHA20_POLY1305_SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       "ECDHE-ECDSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         "ECDHE-RSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       "ECDHE-ECDSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         "ECDHE-RSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   "ECDHE-RSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256:       "ECDHE-ECDSA-AES128-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256:         "ECDHE-RSA-AES128-SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:          "ECDHE-ECDSA-AES128-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:            "ECDHE-RSA-AES128-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:          "ECDHE-ECDSA-AES256-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:            "ECDHE-RSA-AES256-SHA",
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256:               "AES128-GCM-SHA256",
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384:               "AES256-GCM-SHA384",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA256:               "AES128-SHA256",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA:                  "AES128-SHA",
	tls.TLS_RSA_WITH_AES_256_CBC_SHA:                  "AES256-SHA",
}
