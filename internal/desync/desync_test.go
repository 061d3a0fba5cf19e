package desync

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestModeAction(t *testing.T) {
	tests := []struct {
		mode Mode
		want [4]Action // for Compliant, Acceptable, Ambiguous, Severe
	}{
		{Monitor, [4]Action{Allow, Allow, Allow, Allow}},
		{Defensive, [4]Action{Allow, Allow, AllowAndClose, Block}},
		{Strictest, [4]Action{Allow, Block, Block, Block}},
		{Mode(200), [4]Action{Allow, Allow, AllowAndClose, Block}}, // unknown modes defend
	}
	for _, tt := range tests {
		for tier, want := range tt.want {
			if got := tt.mode.Action(Tier(tier)); got != want {
				t.Errorf("%v.Action(%v) = %v, want %v", tt.mode, Tier(tier), got, want)
			}
		}
		if got, want := tt.mode.Action(Tier(9)), tt.mode.Action(Severe); got != want {
			t.Errorf("%v.Action(Tier(9)) = %v, want %v as for Severe", tt.mode, got, want)
		}
	}
	var unset Mode
	if unset != Defensive {
		t.Errorf("zero Mode is %v, want defensive, ALB's default", unset)
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
	}{
		{"monitor", Monitor},
		{"defensive", Defensive},
		{"strictest", Strictest},
	} {
		got, err := ParseMode(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
	for _, in := range []string{"", "Defensive", "strict", " monitor", "off"} {
		got, err := ParseMode(in)
		if err == nil {
			t.Errorf("ParseMode(%q) = %v, want an error", in, got)
			continue
		}
		msg := err.Error()
		for _, want := range []string{`"` + in + `"`, `"monitor"`, `"defensive"`, `"strictest"`} {
			if !strings.Contains(msg, want) {
				t.Errorf("ParseMode(%q) error %q does not name %s", in, msg, want)
			}
		}
	}
}

func TestModeText(t *testing.T) {
	var cfg struct {
		Mode Mode `yaml:"mode"`
	}
	if err := yaml.Unmarshal([]byte("mode: strictest\n"), &cfg); err != nil || cfg.Mode != Strictest {
		t.Errorf("decoded %v, %v; want strictest", cfg.Mode, err)
	}
	if err := yaml.Unmarshal([]byte("mode: paranoid\n"), &cfg); err == nil || !strings.Contains(err.Error(), `"paranoid"`) {
		t.Errorf("decoding paranoid: %v", err)
	}
	out, err := yaml.Marshal(struct{ Mode Mode }{Monitor})
	if err != nil || string(out) != "mode: monitor\n" {
		t.Errorf("encoded %q, %v", out, err)
	}
	if _, err := Mode(9).MarshalText(); err == nil {
		t.Error("Mode(9) encoded")
	}
}

func TestStrings(t *testing.T) {
	tiers := []string{"Compliant", "Acceptable", "Ambiguous", "Severe"}
	for i, want := range tiers {
		if got := Tier(i).String(); got != want {
			t.Errorf("Tier(%d) = %q, want %q", i, got, want)
		}
	}
	if got := Tier(4).String(); got != "Tier(4)" {
		t.Errorf("Tier(4) = %q", got)
	}

	// ALB's reason codes, as access logs show them, with their tiers.
	reasons := []struct {
		r    Reason
		name string
		tier Tier
	}{
		{ReasonCompliant, "Compliant", Compliant},
		{GetHeadZeroContentLength, "GetHeadZeroContentLength", Acceptable},
		{NonCompliantHeader, "NonCompliantHeader", Acceptable},
		{NonCompliantVersion, "NonCompliantVersion", Acceptable},
		{SpaceInUri, "SpaceInUri", Acceptable},
		{AmbiguousUri, "AmbiguousUri", Ambiguous},
		{BothTeClPresent, "BothTeClPresent", Ambiguous},
		{DuplicateContentLength, "DuplicateContentLength", Ambiguous},
		{EmptyHeader, "EmptyHeader", Ambiguous},
		{SuspiciousHeader, "SuspiciousHeader", Ambiguous},
		{UndefinedContentLengthSemantics, "UndefinedContentLengthSemantics", Ambiguous},
		{UndefinedTransferEncodingSemantics, "UndefinedTransferEncodingSemantics", Ambiguous},
		{BadContentLength, "BadContentLength", Severe},
		{BadHeader, "BadHeader", Severe},
		{BadTransferEncoding, "BadTransferEncoding", Severe},
		{BadUri, "BadUri", Severe},
		{BadMethod, "BadMethod", Severe},
		{BadVersion, "BadVersion", Severe},
		{MultipleContentLength, "MultipleContentLength", Severe},
		{MultipleTransferEncodingChunked, "MultipleTransferEncodingChunked", Severe},
	}
	if len(reasons) != int(numReasons) {
		t.Fatalf("testing %d reasons of %d", len(reasons), numReasons)
	}
	for _, tt := range reasons {
		if got := tt.r.String(); got != tt.name {
			t.Errorf("Reason(%d) = %q, want %q", tt.r, got, tt.name)
		}
		if got := tt.r.Tier(); got != tt.tier {
			t.Errorf("%v.Tier() = %v, want %v", tt.r, got, tt.tier)
		}
	}
	if got := numReasons.String(); got != "Reason(20)" {
		t.Errorf("Reason(20) = %q", got)
	}

	for a, want := range []string{"Allow", "AllowAndClose", "Block"} {
		if got := Action(a).String(); got != want {
			t.Errorf("Action(%d) = %q, want %q", a, got, want)
		}
	}
	if got := Mode(3).String(); got != "Mode(3)" {
		t.Errorf("Mode(3) = %q", got)
	}
}
