package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/cluster"
)

// Usage is `latch ctl`'s usage text.
const Usage = `usage: latch ctl [-admin URL] [-token-file FILE] [-o json] VERB [ARGS] [FLAGS]

verbs:
  groups                                   the target groups
  targets GROUP                            a group's targets with their health
  register GROUP ID [-weight N]            register a target (host:port)
  deregister GROUP ID                      deregister a target
  weight GROUP ID N                        set a target's weight (1-1000)
  drain GROUP ID [-mode keep_sessions|immediate] [-idle D] [-deadline D] [-wait]
                                           drain a target; -wait returns once it is drained
  undrain GROUP ID                         end a target's drain
  mint-cookie GROUP ID                     print a Cookie header value that sticks to the target
  sessions GROUP [-window D]               distinct sticky sessions per target lately
  diff                                     the runtime changes: the running config against the file
  reload                                   reload the config file, as SIGHUP does
  nodes                                    the cluster's nodes (cluster mode)
  keys [rotate]                            the cluster's cookie keys; rotate starts a rotation

-admin defaults to $LATCH_ADMIN, else http://127.0.0.1:9901; the token comes from -token-file,
else $LATCH_ADMIN_TOKEN. Flags may come before or after the verb's arguments.
Exit status: 0 done, 1 refused by latch (its message on stderr) or latch not reached, 2 usage.
`

// DefaultAdmin is where ctl looks for the admin API when neither -admin
// nor LATCH_ADMIN says.
const DefaultAdmin = "http://127.0.0.1:9901"

// AdminEnv is the environment variable naming the admin API's URL.
const AdminEnv = "LATCH_ADMIN"

// errUsage is a usage error already described on stderr.
var errUsage = errors.New("usage")

// cmd is one invocation: the client, the output form, where to write.
type cmd struct {
	c      *Client
	json   bool
	stdout io.Writer
	ctx    context.Context
}

// globals are the flags every verb takes, before or after it.
type globals struct {
	admin, tokenFile, output string
}

func (g *globals) add(fs *flag.FlagSet) {
	fs.StringVar(&g.admin, "admin", g.admin, "the admin API's URL ($"+AdminEnv+")")
	fs.StringVar(&g.tokenFile, "token-file", g.tokenFile, "a file holding the admin token (else $"+admin.TokenEnv+")")
	fs.StringVar(&g.output, "o", g.output, "output: table or json")
}

// Run runs `latch ctl` with args (those after "ctl") and returns the exit
// code: 0 on success, 1 when latch refused or could not be reached, 2 on
// a usage error. getenv reads LATCH_ADMIN and LATCH_ADMIN_TOKEN.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	g := &globals{admin: getenv(AdminEnv), output: "table"}
	fs := newFlagSet("latch ctl", stderr)
	g.add(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(stderr, "")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageError(stderr, "no verb given")
	}
	verb, rest := rest[0], rest[1:]
	if verb == "help" {
		fmt.Fprint(stdout, Usage)
		return 0
	}
	v, ok := verbs[verb]
	if !ok {
		return usageError(stderr, fmt.Sprintf("unknown verb %q", verb))
	}
	vfs := newFlagSet("latch ctl "+verb, stderr)
	g.add(vfs)
	opts := v.flags(vfs)
	pos, err := parseInterspersed(vfs, rest)
	if err != nil {
		return usageError(stderr, "")
	}
	if len(pos) != len(v.args) && !(v.optional && len(pos) == len(v.args)-1) {
		return usageError(stderr, fmt.Sprintf("%s takes %s; got %d arguments", verb, argsText(v.args), len(pos)))
	}
	if g.output != "table" && g.output != "json" {
		return usageError(stderr, fmt.Sprintf("-o %q: want table or json", g.output))
	}
	c, err := client(g, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "latch ctl:", err)
		return 2
	}
	x := &cmd{c: c, json: g.output == "json", stdout: stdout, ctx: ctx}
	switch err := v.run(x, pos, opts); {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return usageError(stderr, strings.TrimPrefix(err.Error(), "usage: "))
	default:
		fmt.Fprintln(stderr, "latch ctl:", err)
		return 1
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

func usageError(stderr io.Writer, msg string) int {
	if msg != "" {
		fmt.Fprintln(stderr, "latch ctl:", msg)
	}
	fmt.Fprint(stderr, Usage)
	return 2
}

func argsText(args []string) string {
	if len(args) == 0 {
		return "no arguments"
	}
	return strings.Join(args, " ")
}

// parseInterspersed parses fs's flags wherever they come among the
// positional arguments (`drain web 10.0.0.1:80 -wait`); what follows "--"
// is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, tail = args[:i], args[i+1:]
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if args = fs.Args(); len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// client makes the API client from the flags and environment.
func client(g *globals, getenv func(string) string) (*Client, error) {
	base := g.admin
	if base == "" {
		base = DefaultAdmin
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("-admin %q: want the admin API's URL, such as %s", g.admin, DefaultAdmin)
	}
	token := getenv(admin.TokenEnv)
	if g.tokenFile != "" {
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &Client{Base: strings.TrimSuffix(base, "/"), Token: strings.TrimSpace(token), HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

// verb is one of ctl's verbs.
type verb struct {
	args []string
	// optional says the last of args may be left out.
	optional bool
	flags    func(*flag.FlagSet) any // the verb's own flags, returned to run
	run      func(x *cmd, pos []string, opts any) error
}

func noFlags(*flag.FlagSet) any { return nil }

var verbs map[string]verb

func init() {
	verbs = map[string]verb{
		"groups":      {args: nil, flags: noFlags, run: groups},
		"targets":     {args: []string{"GROUP"}, flags: noFlags, run: targets},
		"register":    {args: []string{"GROUP", "ID"}, flags: registerFlags, run: register},
		"deregister":  {args: []string{"GROUP", "ID"}, flags: noFlags, run: deregister},
		"weight":      {args: []string{"GROUP", "ID", "N"}, flags: noFlags, run: weight},
		"drain":       {args: []string{"GROUP", "ID"}, flags: drainFlags, run: drain},
		"undrain":     {args: []string{"GROUP", "ID"}, flags: noFlags, run: undrain},
		"mint-cookie": {args: []string{"GROUP", "ID"}, flags: noFlags, run: mintCookie},
		"sessions": {args: []string{"GROUP"}, flags: func(fs *flag.FlagSet) any {
			return fs.Duration("window", 0, "how far back to count sessions (default: the server's)")
		}, run: sessions},
		"diff":   {args: nil, flags: noFlags, run: diff},
		"reload": {args: nil, flags: noFlags, run: reload},
		"nodes":  {args: nil, flags: noFlags, run: nodes},
		"keys":   {args: []string{"rotate"}, optional: true, flags: noFlags, run: keys},
	}
}

// nodes lists the cluster's nodes, as the node asked sees them.
func nodes(x *cmd, _ []string, _ any) error {
	var st cluster.Status
	if err := x.c.Do(x.ctx, "GET", path("cluster"), nil, &st); err != nil {
		return err
	}
	return x.print(st.Nodes, func(w io.Writer) {
		if !st.Up {
			fmt.Fprintf(w, "# etcd cannot be reached from %s since %s: it serves the state last applied and refuses writes\n",
				st.Node, st.DownSince.Format(time.RFC3339))
		}
		fmt.Fprintln(w, "NAME\tADMIN\tVERSION\tREVISION\tLAST CONTACT\tSTARTED")
		for _, n := range st.Nodes {
			name := n.Name
			if name == st.Node {
				name += " (this)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s ago\t%s\n", name, dash(n.Admin), n.Version, n.Revision,
				time.Since(n.Updated).Round(100*time.Millisecond), n.Started.Format(time.RFC3339))
		}
	})
}

// keys lists the cluster's cookie keys, or starts a rotation.
func keys(x *cmd, pos []string, _ any) error {
	var l admin.KeyList
	switch {
	case len(pos) == 0:
		if err := x.c.Do(x.ctx, "GET", path("cluster", "keys"), nil, &l); err != nil {
			return err
		}
	case pos[0] == "rotate":
		if err := x.c.Do(x.ctx, "POST", path("cluster", "keys", "rotate"), nil, &l); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: keys takes nothing or rotate; got %q", errUsage, pos[0])
	}
	return x.print(l, func(w io.Writer) {
		if l.Added != 0 {
			fmt.Fprintf(w, "# key %d added: it seals once every node opens with it\n", l.Added)
		}
		fmt.Fprintln(w, "ID\tSTATE\tADDED\tSEALING SINCE\tRETIRES\tNODES")
		for _, k := range l.Keys {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.State, k.Added.Format(time.RFC3339), timeOrDash(k.Sealing),
				timeOrDash(k.Retire), dash(strings.Join(k.Nodes, ",")))
		}
	})
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// print writes v as JSON with -o json, else the table.
func (x *cmd) print(v any, table func(w io.Writer)) error {
	if x.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(x.stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(x.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func groups(x *cmd, _ []string, _ any) error {
	var l admin.TargetGroupList
	if err := x.c.Do(x.ctx, "GET", path("target-groups"), nil, &l); err != nil {
		return err
	}
	return x.print(l.TargetGroups, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tPROTOCOL\tTARGETS\tHEALTHY\tUNHEALTHY")
		for _, g := range l.TargetGroups {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\n", g.Name, g.ProtocolVersion, g.Targets, g.Healthy, g.Unhealthy)
		}
	})
}

func targetTable(w io.Writer, ts []admin.Target) {
	clustered := slices.ContainsFunc(ts, func(t admin.Target) bool { return t.Nodes != nil })
	head := "ID\tWEIGHT\tSTATE\tREASON\tIN-FLIGHT\tSESSIONS\tDRAIN"
	if clustered {
		head += "\tNODES"
	}
	fmt.Fprintln(w, head)
	for _, t := range ts {
		id := t.ID
		if t.Discovered {
			id += " (dns)"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\t%s", id, t.Weight, t.State, dash(t.Reason), t.InFlight, t.Sessions, drainText(t.Drain))
		if clustered {
			fmt.Fprintf(w, "\t%s", nodesText(t))
		}
		fmt.Fprintln(w)
	}
}

// nodesText says how the cluster's nodes see a target: "agree" when every
// node's health checks say the same, else each node's state.
func nodesText(t admin.Target) string {
	if !t.NodesDisagree {
		return fmt.Sprintf("%d agree", len(t.Nodes))
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(t.Nodes)) {
		parts = append(parts, n+"="+t.Nodes[n])
	}
	return "DISAGREE: " + strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func drainText(d *admin.Drain) string {
	switch {
	case d == nil:
		return "-"
	case d.Complete:
		return d.Mode + ", complete"
	case d.Mode == "keep_sessions":
		return fmt.Sprintf("%s, %d sessions left", d.Mode, d.SessionsLeft)
	}
	return d.Mode
}

func targets(x *cmd, pos []string, _ any) error {
	var l admin.TargetList
	if err := x.c.Do(x.ctx, "GET", path("target-groups", pos[0], "targets"), nil, &l); err != nil {
		return err
	}
	return x.print(l.Targets, func(w io.Writer) {
		if d := l.Discovery; d != nil {
			fmt.Fprintf(w, "# DNS %s %s: %d targets in the last answer", d.Type, d.Name, len(d.Targets))
			if d.Error != "" {
				fmt.Fprintf(w, "; lookups FAILING (%s), the last answer's targets kept", d.Error)
			}
			fmt.Fprintln(w)
		}
		targetTable(w, l.Targets)
	})
}

// printTarget prints one target: its line of the table, or its JSON.
func (x *cmd) printTarget(t admin.Target) error {
	return x.print(t, func(w io.Writer) { targetTable(w, []admin.Target{t}) })
}

// optionalInt is an int flag that knows whether it was given, so that
// -weight 0 reaches latch (and is refused there) rather than meaning
// "not given".
type optionalInt struct{ v *int }

func (o *optionalInt) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.Itoa(*o.v)
}

func (o *optionalInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	o.v = &n
	return nil
}

func registerFlags(fs *flag.FlagSet) any {
	w := &optionalInt{}
	fs.Var(w, "weight", "the target's weight, 1-1000 (default 1)")
	return w
}

func register(x *cmd, pos []string, opts any) error {
	spec := admin.TargetSpec{ID: pos[1], Weight: opts.(*optionalInt).v}
	var l admin.TargetList
	if err := x.c.Do(x.ctx, "POST", path("target-groups", pos[0], "targets"), admin.RegisterRequest{Targets: []admin.TargetSpec{spec}}, &l); err != nil {
		return err
	}
	for _, t := range l.Targets {
		if t.ID == spec.ID {
			return x.printTarget(t)
		}
	}
	return fmt.Errorf("latch registered %s but does not list it in %s", spec.ID, pos[0])
}

func deregister(x *cmd, pos []string, _ any) error {
	var t admin.Target
	if err := x.c.Do(x.ctx, "DELETE", path("target-groups", pos[0], "targets", pos[1]), nil, &t); err != nil {
		return err
	}
	if t.ID == "" { // gone at once: nothing was in flight
		t = admin.Target{ID: pos[1], State: "unused", Reason: "Target.NotRegistered"}
	}
	return x.printTarget(t)
}

func weight(x *cmd, pos []string, _ any) error {
	n, err := strconv.Atoi(pos[2])
	if err != nil {
		return fmt.Errorf("%w: weight %q is not a whole number", errUsage, pos[2])
	}
	var t admin.Target
	if err := x.c.Do(x.ctx, "PUT", path("target-groups", pos[0], "targets", pos[1], "weight"), admin.WeightRequest{Weight: &n}, &t); err != nil {
		return err
	}
	return x.printTarget(t)
}

type drainOpts struct {
	mode           *string
	idle, deadline *time.Duration
	wait           *bool
	timeout        *time.Duration
}

func drainFlags(fs *flag.FlagSet) any {
	return &drainOpts{
		mode:     fs.String("mode", "", "keep_sessions (sticky sessions stay until idle) or immediate (ALB's)"),
		idle:     fs.Duration("idle", 0, "keep_sessions: the drain is complete when no session was seen for this long"),
		deadline: fs.Duration("deadline", 0, "the longest the drain may take"),
		wait:     fs.Bool("wait", false, "return once the drain is complete (exit 1 if it is not by the deadline)"),
		timeout:  fs.Duration("timeout", 10*time.Minute, "-wait with no -deadline: how long to wait"),
	}
}

func drain(x *cmd, pos []string, opts any) error {
	o := opts.(*drainOpts)
	req := admin.DrainRequest{Mode: *o.mode}
	if *o.idle != 0 {
		req.Idle = o.idle.String()
	}
	if *o.deadline != 0 {
		req.Deadline = o.deadline.String()
	}
	p := path("target-groups", pos[0], "targets", pos[1])
	var t admin.Target
	if err := x.c.Do(x.ctx, "POST", p+"/drain", req, &t); err != nil {
		return err
	}
	if *o.wait {
		limit := *o.timeout
		if *o.deadline != 0 {
			limit = *o.deadline + 10*time.Second // the server ends the drain at its deadline
		}
		var err error
		if t, err = x.waitDrained(p, t, limit); err != nil {
			return err
		}
	}
	return x.printTarget(t)
}

// waitDrained polls the target until its drain is complete, for at most
// limit.
func (x *cmd) waitDrained(p string, t admin.Target, limit time.Duration) (admin.Target, error) {
	ctx, cancel := context.WithTimeout(x.ctx, limit)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for t.Drain == nil || !t.Drain.Complete {
		if t.Drain == nil {
			return t, fmt.Errorf("target %s is no longer draining (undrained, or deregistered, meanwhile)", t.ID)
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("target %s: the drain is not complete after %v", t.ID, limit)
		case <-tick.C:
		}
		// A fresh value each time: decoding into t would keep the fields
		// the answer leaves out (omitempty) from the answer before.
		var next admin.Target
		if err := x.c.Do(ctx, "GET", p, nil, &next); err != nil {
			return t, err
		}
		t = next
	}
	return t, nil
}

func undrain(x *cmd, pos []string, _ any) error {
	var t admin.Target
	if err := x.c.Do(x.ctx, "DELETE", path("target-groups", pos[0], "targets", pos[1], "drain"), nil, &t); err != nil {
		return err
	}
	return x.printTarget(t)
}

func mintCookie(x *cmd, pos []string, _ any) error {
	var c admin.Cookie
	if err := x.c.Do(x.ctx, "POST", path("target-groups", pos[0], "targets", pos[1], "cookie"), nil, &c); err != nil {
		return err
	}
	if x.json {
		return x.print(c, nil)
	}
	_, err := fmt.Fprintln(x.stdout, c.Cookie)
	return err
}

func sessions(x *cmd, pos []string, opts any) error {
	p := path("target-groups", pos[0], "sessions")
	if w := *opts.(*time.Duration); w != 0 {
		p += "?window=" + url.QueryEscape(w.String())
	}
	var s admin.Sessions
	if err := x.c.Do(x.ctx, "GET", p, nil, &s); err != nil {
		return err
	}
	return x.print(s, func(w io.Writer) {
		fmt.Fprintf(w, "TARGET\tSESSIONS (last %s)\n", s.Window)
		for _, id := range slices.Sorted(maps.Keys(s.Targets)) {
			fmt.Fprintf(w, "%s\t%d\n", id, s.Targets[id])
		}
	})
}

func diff(x *cmd, _ []string, _ any) error {
	var d admin.Diff
	if err := x.c.Do(x.ctx, "GET", path("diff"), nil, &d); err != nil {
		return err
	}
	return x.print(d, func(w io.Writer) {
		if len(d.TargetGroups) == 0 {
			fmt.Fprintln(w, "no runtime changes: the running config is the file's")
			return
		}
		fmt.Fprintln(w, "GROUP\tCHANGE\tWHAT\tRUNNING\tFILE")
		for _, g := range d.TargetGroups {
			for _, t := range g.Registered {
				fmt.Fprintf(w, "%s\tregistered\t%s\tweight %d\t-\n", g.Name, t.ID, t.Weight)
			}
			for _, t := range g.Deregistered {
				fmt.Fprintf(w, "%s\tderegistered\t%s\t-\tweight %d\n", g.Name, t.ID, t.Weight)
			}
			for _, t := range g.Reweighted {
				fmt.Fprintf(w, "%s\tweight\t%s\t%d\t%d\n", g.Name, t.ID, t.Weight, t.FileWeight)
			}
			for _, d := range g.Drained {
				fmt.Fprintf(w, "%s\tdrained\t%s\t%s\t-\n", g.Name, d.ID, d.Mode)
			}
			for _, a := range g.Attributes {
				fmt.Fprintf(w, "%s\tattribute\t%s\t%s\t%s\n", g.Name, a.Key, quoteEmpty(a.Value), quoteEmpty(a.File))
			}
		}
	})
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func reload(x *cmd, _ []string, _ any) error {
	var r admin.ReloadResult
	if err := x.c.Do(x.ctx, "POST", path("reload"), nil, &r); err != nil {
		return err
	}
	return x.print(r, func(w io.Writer) { fmt.Fprintf(w, "reloaded: config version %d\n", r.Version) })
}
