package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestAccessLogDecode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "latch.yaml")
	cases := []struct {
		name, yaml string
		want       *AccessLog
	}{
		{"absent", "", nil},
		{"relative path, default format", "access_log: {path: logs/access.log}\n",
			&AccessLog{Path: filepath.Join(dir, "logs/access.log"), Format: AccessLogALB}},
		{"absolute path, json", "access_log: {path: /var/log/latch.log, format: json}\n",
			&AccessLog{Path: "/var/log/latch.log", Format: AccessLogJSON}},
		{"stdout", "access_log:\n  path: \"-\"\n  format: alb\n", &AccessLog{Path: Stdout}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustParse(t, minimal+c.yaml, file)
			switch {
			case c.want == nil && cfg.AccessLog != nil:
				t.Fatalf("AccessLog = %+v, want nil", *cfg.AccessLog)
			case c.want != nil && (cfg.AccessLog == nil || *cfg.AccessLog != *c.want):
				t.Fatalf("AccessLog = %+v, want %+v", cfg.AccessLog, *c.want)
			}
		})
	}
}

func TestAccessLogRefusals(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"access_log: {format: json}\n", "latch.yaml:11: access_log.path: missing"},
		{"access_log: {path: \"\"}\n", `latch.yaml:11: access_log.path: must not be empty (a file, or "-" for standard output)`},
		{"access_log: {path: a.log, format: jsn}\n", `latch.yaml:11: access_log.format: "jsn" is not one of alb, json; did you mean "json"?`},
		{"access_log: {path: a.log, fromat: json}\n", `latch.yaml:11: access_log.fromat: unknown key; did you mean "format"?`},
		{"access_log: a.log\n", "latch.yaml:11: access_log: expected a mapping, got \"a.log\""},
	}
	for _, c := range cases {
		_, err := Parse([]byte(minimal+c.yaml), "latch.yaml")
		if err == nil {
			t.Errorf("%q: no error, want %s", c.yaml, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got\n%v\nwant a line %s", c.yaml, err, c.want)
		}
	}
}

func TestAccessLogValidate(t *testing.T) {
	cfg := mustParse(t, minimal, "latch.yaml")
	cfg.AccessLog = &AccessLog{Format: AccessLogFormat(7)}
	err := cfg.Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate: %v, want Problems", err)
	}
	got := err.Error()
	for _, want := range []string{"access_log.path: must not be empty", "access_log.format: AccessLogFormat(7) is not one of alb, json"} {
		if !strings.Contains(got, want) {
			t.Errorf("Validate: got\n%s\nwant a line with %s", got, want)
		}
	}
}

func TestAccessLogIsTheFiles(t *testing.T) {
	running := mustParse(t, minimal, "latch.yaml")
	next := running.Clone()
	next.AccessLog = &AccessLog{Path: "x.log"}
	err := CheckRuntimeChange(running, next)
	if err == nil || !strings.Contains(err.Error(), "access_log: set by the config file") {
		t.Errorf("CheckRuntimeChange: got %v, want access_log named as the file's", err)
	}
}
