package ctl

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args     []string
		pos      []string
		wait     bool
		deadline string
	}{
		{[]string{"web", "10.0.0.1:80", "-wait"}, []string{"web", "10.0.0.1:80"}, true, ""},
		{[]string{"-wait", "web", "-deadline", "5m", "10.0.0.1:80"}, []string{"web", "10.0.0.1:80"}, true, "5m"},
		{[]string{"web", "--wait", "--deadline=1m", "[::1]:80"}, []string{"web", "[::1]:80"}, true, "1m"},
		{[]string{"web", "--", "-odd", "-wait"}, []string{"web", "-odd", "-wait"}, false, ""},
		{nil, nil, false, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		wait := fs.Bool("wait", false, "")
		deadline := fs.String("deadline", "", "")
		pos, err := parseInterspersed(fs, c.args)
		if err != nil || !slices.Equal(pos, c.pos) || *wait != c.wait || *deadline != c.deadline {
			t.Errorf("%q: got %q wait %v deadline %q (%v), want %q wait %v deadline %q",
				c.args, pos, *wait, *deadline, err, c.pos, c.wait, c.deadline)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseInterspersed(fs, []string{"web", "-nope"}); err == nil {
		t.Error("an unknown flag after an argument: got no error")
	}
}

func TestPathEscapesTargetIDs(t *testing.T) {
	for _, c := range []struct {
		segs []string
		want string
	}{
		{[]string{"target-groups", "web", "targets", "10.0.0.1:80"}, "/api/v1/target-groups/web/targets/10.0.0.1:80"},
		{[]string{"target-groups", "web", "targets", "[::1]:80", "drain"}, "/api/v1/target-groups/web/targets/%5B::1%5D:80/drain"},
		{[]string{"target-groups", "a/b"}, "/api/v1/target-groups/a%2Fb"},
	} {
		if got := path(c.segs...); got != c.want {
			t.Errorf("%q: got %s, want %s", c.segs, got, c.want)
		}
	}
}
