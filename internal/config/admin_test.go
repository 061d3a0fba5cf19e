package config

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestAdminRefusals: the admin section's mistakes, each on its line and
// path; a token in the file is refused with where to put it instead.
func TestAdminRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		yaml string
		want []wantProblem
	}{
		{"token in the file", minimal + "admin:\n  token: s3cret\n",
			[]wantProblem{{12, "admin.token", "the token is never written in the config: put it in a file named by token_file (relative to this file), or in LATCH_ADMIN_TOKEN in the environment"}}},
		{"token and a typo", minimal + "admin:\n  token: s3cret\n  adress: 127.0.0.1:1\n",
			[]wantProblem{
				{12, "admin.token", "the token is never written in the config: put it in a file named by token_file (relative to this file), or in LATCH_ADMIN_TOKEN in the environment"},
				{13, "admin.adress", `unknown key; did you mean "address"?`},
			}},
		{"bad address", minimal + "admin:\n  address: localhost\n",
			[]wantProblem{{12, "admin.address", `"localhost" is not a host:port address`}}},
		{"bad port", minimal + "admin:\n  address: 127.0.0.1:99999\n",
			[]wantProblem{{12, "admin.address", `"127.0.0.1:99999" has an invalid port "99999"`}}},
		{"empty token_file", minimal + "admin:\n  token_file: \"\"\n",
			[]wantProblem{{12, "admin.token_file", "must not be empty (leave token_file out for no token file)"}}},
		{"enabled not a bool", minimal + "admin:\n  enabled: maybe\n",
			[]wantProblem{{12, "admin.enabled", `"maybe" is not true or false`}}},
		{"the listener's address", minimal + "admin:\n  address: 127.0.0.1:8080\n",
			[]wantProblem{{12, "admin.address", `address 127.0.0.1:8080 is already used by listener "public"`}}},
	} {
		t.Run(c.name, func(t *testing.T) { checkExact(t, c.yaml, c.want) })
	}
}

func TestAdminDecode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "latch.yaml")
	cfg := mustParse(t, minimal, file)
	if got, want := cfg.Admin, DefaultAdmin(); got != want {
		t.Errorf("no admin section: got %+v, want %+v", got, want)
	}
	cfg = mustParse(t, minimal+"admin:\n  address: 127.0.0.1:0\n  token_file: admin.token\n", file)
	if got, want := cfg.Admin, (Admin{Enabled: true, Address: "127.0.0.1:0", TokenFile: filepath.Join(dir, "admin.token")}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Off, the address is not checked: there is nothing to bind.
	cfg = mustParse(t, minimal+"admin: { enabled: false, address: nowhere }\n", file)
	if cfg.Admin.Enabled {
		t.Errorf("got enabled, want off")
	}
}

func TestAdminLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9901": true, "[::1]:0": true, "localhost:9901": true, "127.0.0.2:1": true,
		":9901": false, "0.0.0.0:9901": false, "[::]:1": false, "10.0.0.1:9901": false, "example.com:1": false, "": false,
	} {
		if got := (Admin{Address: addr}).Loopback(); got != want {
			t.Errorf("%q: got loopback %v, want %v", addr, got, want)
		}
	}
}

// TestAdminIsTheFiles: a runtime change cannot change the admin settings.
func TestAdminIsTheFiles(t *testing.T) {
	running := mustParse(t, minimal, "latch.yaml")
	next := running.Clone()
	next.Admin.Address = "127.0.0.1:1"
	err := CheckRuntimeChange(running, next)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "admin" {
		t.Fatalf("got %v, want one problem at admin", err)
	}
}
