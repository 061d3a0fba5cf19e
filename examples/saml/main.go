// Command saml is latch's story with real SAML libraries: crewjam/saml's
// IdP (samlidp) and three instances of its SP (samlsp) that keep each
// AuthnRequest in process memory, behind latch. See README.md.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if env := os.Getenv(spEnv); env != "" {
		os.Exit(runSP(env))
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("saml", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8443", "latch's HTTPS listener; the SP's URL is https://localhost:PORT/")
	idpAddr := fs.String("idp-addr", "127.0.0.1:8444", "the IdP's HTTPS listener; its URL is https://127.0.0.1:PORT/, another site")
	adminAddr := fs.String("admin", "127.0.0.1:9903", "latch's admin API and dashboard")
	sticky := fs.String("sticky", "lb_cookie", "latch's stickiness: none, lb_cookie or app_cookie")
	appCookie := fs.String("app-cookie", loginCookie, "app_cookie's cookie: "+loginCookie+" (set when a login starts) or token (samlsp's session cookie, set after it: the trap)")
	algorithm := fs.String("algorithm", "round_robin", "latch's algorithm for new sessions: round_robin, weighted_random, least_outstanding_requests")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "saml: unexpected arguments %q\n", fs.Args())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e, err := Start(ctx, Options{Addr: *addr, IdPAddr: *idpAddr, AdminAddr: *adminAddr, Sticky: *sticky,
		AppCookie: *appCookie, Log: stderr, Attributes: map[string]string{"load_balancing.algorithm.type": *algorithm}})
	if err != nil {
		fmt.Fprintln(stderr, "saml:", err)
		return 1
	}
	defer e.Close()
	ca := filepath.Join(e.dir, "ca.crt")
	os.WriteFile(ca, e.Keys.CAPEM, 0o644)

	kind := *sticky
	switch kind {
	case "none":
		kind = "none: round robin sends the IdP's answer to another instance than the one that asked; watch the logins fail"
	case "app_cookie":
		kind = "app_cookie on " + *appCookie
		if *appCookie == "token" {
			kind += ", samlsp's session cookie, which exists only once a login succeeded: watch the logins fail"
		}
	}
	fmt.Fprintf(stdout, `latch SAML example: crewjam/saml's IdP and %d instances of its SP (%s, each a process
keeping its AuthnRequests in memory) behind latch, stickiness %s.

latch's config:
%s
Open %s and log in as %s, password %s.
The IdP is at %s, another site than the SP. The example made its own certificate authority
(%s): your browser warns about the certificate of each of the two hosts; accept both.
curl --cacert %s %s

Dashboard: %s/ (latch's admin API under /api/v1/)
  export LATCH_ADMIN=%s LATCH_ADMIN_TOKEN=%s
  go run ../../cmd/latch ctl targets %s

Type a command and Enter: kill N (SIGKILL sp-N, say while you are at the IdP's login form), start N,
roll (a rolling restart with session-aware drain), ps. Ctrl-C ends the example.
`, Instances, strings.Join(names(e), ", "), kind, e.YAML, e.URL, User, Password, e.IdPURL, ca, ca, e.URL,
		e.Admin, e.Admin, e.Token, Group)
	ps(e, stdout)

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return 0
		case l := <-lines:
			command(ctx, e, strings.Fields(l), stdout)
		}
	}
}

func command(ctx context.Context, e *Example, f []string, out io.Writer) {
	if len(f) == 0 {
		return
	}
	switch {
	case f[0] == "ps" && len(f) == 1:
		ps(e, out)
		return
	case f[0] == "roll" && len(f) == 1:
		if err := e.RollingRestart(ctx, out, 2*time.Second, nil); err != nil {
			fmt.Fprintln(out, "rolling restart:", err)
			return
		}
		fmt.Fprintln(out, "rolling restart done")
		ps(e, out)
		return
	case (f[0] == "kill" || f[0] == "start") && len(f) == 2:
		p := e.instance(f[1])
		if p == nil {
			fmt.Fprintf(out, "no instance %q: 1 to %d\n", f[1], len(e.SPs))
			return
		}
		if f[0] == "kill" {
			p.Kill()
			fmt.Fprintf(out, "%s killed (SIGKILL); latch moves its sessions with X-Latch-Session-Moved\n", p.Name)
			return
		}
		if err := p.Start(); err != nil {
			fmt.Fprintln(out, err)
			return
		}
		fmt.Fprintf(out, "%s started again (pid %d)\n", p.Name, p.Pid())
		return
	}
	fmt.Fprintf(out, "unknown command %q: kill N, start N, roll, ps\n", strings.Join(f, " "))
}

func ps(e *Example, out io.Writer) {
	for _, p := range e.SPs {
		if pid := p.Pid(); pid != 0 {
			fmt.Fprintf(out, "  %s  %s  pid %d\n", p.Name, p.Addr, pid)
		} else {
			fmt.Fprintf(out, "  %s  %s  not running\n", p.Name, p.Addr)
		}
	}
}

func names(e *Example) []string {
	var n []string
	for _, p := range e.SPs {
		n = append(n, p.Name)
	}
	return n
}
