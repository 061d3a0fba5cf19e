package config

import "fmt"

// AccessLog is where and how latch writes one line per request (package
// accesslog). A nil *AccessLog in Config means no access log.
type AccessLog struct {
	// Path is the file the lines are appended to, created if need be
	// (relative paths in a file are resolved against the directory of the
	// config file), or "-" for standard output. It must not be empty.
	Path string
	// Format is ALB's space-separated line (the zero value) or JSON.
	Format AccessLogFormat
}

// Stdout is the AccessLog.Path that writes to standard output.
const Stdout = "-"

// AccessLogFormat is how an access-log line is written. The zero value is
// AccessLogALB.
type AccessLogFormat uint8

const (
	// AccessLogALB writes ALB's access-log fields in ALB's order, then
	// latch's own.
	AccessLogALB AccessLogFormat = iota
	// AccessLogJSON writes one JSON object per line, with the same field
	// names.
	AccessLogJSON
)

var accessLogFormatNames = []string{AccessLogALB: "alb", AccessLogJSON: "json"}

func (f AccessLogFormat) String() string {
	return enumString("AccessLogFormat", accessLogFormatNames, int(f))
}
func (f AccessLogFormat) MarshalText() ([]byte, error) {
	return enumText(f, accessLogFormatNames, int(f))
}
func (f AccessLogFormat) valid() bool                   { return int(f) < len(accessLogFormatNames) }
func (f *AccessLogFormat) UnmarshalText(b []byte) error { return f.set(string(b)) }

func (f *AccessLogFormat) set(s string) error {
	i := index(accessLogFormatNames, s)
	if i < 0 {
		return fmt.Errorf("%q is not one of alb, json%s", s, suggestion(s, accessLogFormatNames))
	}
	*f = AccessLogFormat(i)
	return nil
}

// accessLog validates access_log.
func (v *validator) accessLog() {
	a := v.cfg.AccessLog
	if a == nil {
		return
	}
	if a.Path == "" {
		v.add("access_log.path", `must not be empty (a file, or "-" for standard output)`)
	}
	if !a.Format.valid() {
		v.addf("access_log.format", "%v is not one of alb, json", a.Format)
	}
}
