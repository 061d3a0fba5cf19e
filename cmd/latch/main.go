// Command latch is a load balancer with ALB's target-group semantics and
// sticky sessions nobody can forge.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/latch-lb/latch/internal/accesslog"
	"github.com/latch-lb/latch/internal/admin"
	"github.com/latch-lb/latch/internal/cluster"
	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/ctl"
	"github.com/latch-lb/latch/internal/dashboard"
	"github.com/latch-lb/latch/internal/demo"
	"github.com/latch-lb/latch/internal/discovery"
	"github.com/latch-lb/latch/internal/metrics"
	"github.com/latch-lb/latch/internal/proxy"
	"github.com/latch-lb/latch/internal/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: latch <command> [flags]

commands:
  serve     -config FILE   run the load balancer (SIGHUP reloads, SIGINT/SIGTERM stop)
  validate  -config FILE   check a config and print every problem (exit 2 on any)
  demo                     run a login demo behind latch, with and without stickiness
  ctl       VERB ...       operate a running latch through its admin API (latch ctl help)
  version                  print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code: 0 on
// success, 1 on a runtime failure, 2 on bad usage or an invalid config.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "validate":
		return validate(args, stdout, stderr)
	case "demo":
		return runDemo(args, stdout, stderr)
	case "ctl":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return ctl.Run(ctx, args, os.Getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "latch", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "latch: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("latch "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func validate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", stderr)
	path := fs.String("config", "latch.yaml", "config file")
	if fs.Parse(args) != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d target groups)\n", *path, len(cfg.Listeners), len(cfg.TargetGroups))
	return 0
}

func serve(args []string, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "latch.yaml", "config file")
	grace := fs.Duration("shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish on SIGINT/SIGTERM")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text or json")
	if fs.Parse(args) != nil {
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "latch serve: -log-level: %v\n", err)
		return 2
	}
	var handler slog.Handler
	switch *format {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl})
	default:
		fmt.Fprintf(stderr, "latch serve: -log-format: %q is not one of text, json\n", *format)
		return 2
	}
	log := slog.New(handler)
	server.TuneRuntime(log)
	// LATCH_DATA_PATH=goroutines serves every connection with a goroutine
	// of its own instead of the event loops: a diagnostic switch, to
	// compare the two data paths on one binary.
	dataPath, err := server.ParseDataPath(os.Getenv("LATCH_DATA_PATH"))
	if err != nil {
		fmt.Fprintf(stderr, "latch serve: LATCH_DATA_PATH: %v\n", err)
		return 2
	}

	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// Signals are caught before anything listens, so none is missed.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	// The access log is closed after the server's shutdown, so that every
	// request's line is written.
	alog := accesslog.NewSwitch(log)
	if err := alog.Apply(cfg.AccessLog); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer alog.Close()
	// Metrics are served on the admin listener: without it, none are
	// counted.
	var m *metrics.Metrics
	if cfg.Admin.Enabled {
		m = metrics.New()
		defer m.Close()
		m.CountDroppedLogLines(alog.Dropped)
	}
	// In cluster mode etcd keeps the shared state: the server's store.
	var cl *cluster.Cluster
	var store server.Store
	if cfg.Cluster != nil {
		if cl, err = openCluster(cfg, log); err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		defer cl.Close()
		store = cl
	}
	b, err := server.New(server.Options{Log: log, DataPath: dataPath, Observer: proxy.Tee(observer(m), alog), Store: store})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if m != nil {
		m.Watch(b) // before Apply: the first config counts
	}
	if err := b.Apply(context.Background(), cfg); err != nil {
		log.Error("cannot start", "err", err)
		b.Shutdown(context.Background())
		return 1
	}
	// DNS discovery starts once the first config runs, and stops before
	// the server does.
	disc := discovery.New(discovery.Options{Server: b, Log: log})
	disc.Apply(cfg)
	defer disc.Stop()
	if m != nil {
		m.CountDNSLookups(func() []metrics.DNSLookups { return dnsLookups(disc) })
	}
	// SIGHUP and the admin API's reload are this one function, one call at
	// a time: two reloads interleaved could leave the access log of the
	// file read first with the config of the one read last.
	var reloading sync.Mutex
	reload := func(ctx context.Context) error {
		reloading.Lock()
		defer reloading.Unlock()
		return reloadFile(ctx, b, alog, disc, *path, cfg, log)
	}
	adm, err := startAdmin(cfg.Admin, b, m, cl, disc, reload, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		b.Shutdown(context.Background())
		return 1
	}
	if cl != nil {
		if adm != nil {
			cl.SetAdmin(adm.Addr())
		}
		cl.Run(b)
		if m != nil {
			m.WatchCluster(cl)
		}
	}
	log.Info("latch started", "version", versionString(), "config", *path)
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			reload(context.Background())
			continue
		case syscall.SIGUSR1:
			alog.Reopen() // logrotate moved the file; Reopen logs its own failure
			continue
		}
		log.Info("shutting down", "signal", sig.String(), "timeout", *grace)
		disc.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), *grace)
		if adm != nil {
			adm.Shutdown(ctx)
		}
		if cl != nil {
			cl.Close() // the node's record goes at once
		}
		err := b.Shutdown(ctx)
		cancel()
		if err != nil {
			log.Warn("requests were still running at the shutdown timeout", "err", err)
		}
		return 0
	}
	return 0
}

// startAdmin starts the admin listener the config asks for, or returns
// nil when it is off.
func startAdmin(ac config.Admin, b *server.Server, m *metrics.Metrics, cl *cluster.Cluster, disc *discovery.Discovery,
	reload func(context.Context) error, log *slog.Logger) (*admin.Admin, error) {
	if !ac.Enabled {
		return nil, nil
	}
	token, err := admin.Token(ac, os.Getenv(admin.TokenEnv))
	if err != nil {
		return nil, err
	}
	o := adminOptions(b, m, ac.Address, token, log, reload, cl)
	o.Discovery = disc
	adm, err := admin.Start(o)
	if err != nil {
		return nil, err
	}
	log.Info("admin API listening", "address", adm.Addr(), "url", "http://"+adm.Addr()+"/api/v1/",
		"dashboard", "http://"+adm.Addr()+"/", "token", token != "")
	return adm, nil
}

// openCluster joins the cluster cfg names: the node's name is
// cluster.node_name, or the host's name and the admin port.
func openCluster(cfg *config.Config, log *slog.Logger) (*cluster.Cluster, error) {
	host, _ := os.Hostname()
	port := ""
	if cfg.Admin.Enabled {
		_, port, _ = net.SplitHostPort(cfg.Admin.Address)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cluster.Open(ctx, cluster.Options{Config: cfg.Cluster, Node: cfg.Cluster.Node(host, port), StateDir: cfg.StateDir,
		Version: versionString(), Log: log}, cfg)
}

// adminOptions are the admin listener's: the API, the metrics, the
// dashboard and its stream.
func adminOptions(b *server.Server, m *metrics.Metrics, address, token string, log *slog.Logger, reload func(context.Context) error,
	cl *cluster.Cluster) admin.Options {
	d := dashboard.New(b, m, log)
	o := admin.Options{Server: b, Address: address, Token: token, Reload: reload, Log: log,
		Metrics: m.Handler(), Dashboard: d.Handler(), Stream: d.Stream()}
	if cl != nil {
		d.ShowCluster(cl)
		o.Cluster = cl
	}
	return o
}

// dnsLookups is disc's status as the metrics read it.
func dnsLookups(disc *discovery.Discovery) []metrics.DNSLookups {
	var out []metrics.DNSLookups
	for _, s := range disc.Status() {
		out = append(out, metrics.DNSLookups{Group: s.Group, Lookups: s.Lookups, Failures: s.Failures,
			Failing: s.Error != "", Targets: len(s.Targets)})
	}
	return out
}

// observer is m's request observer, or nil without metrics.
func observer(m *metrics.Metrics) proxy.Observer {
	if m == nil {
		return nil
	}
	return m.Observer()
}

// reloadFile validates the config file and applies it; on any problem the
// running config stays, every problem is logged and returned. started is
// the config latch started with: a change to its admin or cluster section
// takes effect at the next start.
func reloadFile(ctx context.Context, b *server.Server, alog *accesslog.Switch, disc *discovery.Discovery, path string, started *config.Config, log *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		logProblems(log, "reload rejected; keeping the running config", err)
		return err
	}
	if err := b.Apply(ctx, cfg); err != nil {
		// The file with the changes made at run time carried over
		// (Rebase) may not go together: its problems, one a line.
		logProblems(log, "reload failed; keeping the running config", err)
		return err
	}
	// Groups whose discovery settings changed look their names up anew.
	disc.Apply(cfg)
	if err := alog.Apply(cfg.AccessLog); err != nil {
		// The config is running; only the access log stays as it was.
		log.Error("access log unchanged", "err", err)
	}
	if cfg.Admin != started.Admin {
		log.Warn("the admin section changed in the file; it takes effect when latch restarts")
	}
	if !reflect.DeepEqual(cfg.Cluster, started.Cluster) {
		log.Warn("the cluster section changed in the file; it takes effect when latch restarts")
	}
	log.Info("config reloaded", "config", path)
	return nil
}

// logProblems logs err, a config's problems one a line.
func logProblems(log *slog.Logger, msg string, err error) {
	var probs config.Problems
	if !errors.As(err, &probs) {
		log.Error(msg, "err", err)
		return
	}
	for _, p := range probs {
		log.Error(msg, "problem", p.Error())
	}
}

// demoAdmin is the demo's admin address: next to serve's default
// (127.0.0.1:9901), so that a demo and a latch serve run side by side.
const demoAdmin = "127.0.0.1:9902"

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address for latch to listen on")
	sticky := fs.Bool("sticky", true, "turn lb_cookie stickiness on")
	adminAddr := fs.String("admin", demoAdmin, `address for the admin API and dashboard ("" for none)`)
	if fs.Parse(args) != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dataPath, err := server.ParseDataPath(os.Getenv("LATCH_DATA_PATH"))
	if err != nil {
		fmt.Fprintf(stderr, "latch demo: LATCH_DATA_PATH: %v\n", err)
		return 2
	}
	o := demo.Options{Addr: *addr, Sticky: *sticky, Out: stdout, Log: log, DataPath: dataPath}
	if *adminAddr != "" {
		token := admin.NewToken() // printed: the demo is one person's, on loopback
		m := metrics.New()
		defer m.Close()
		o.Observer = m.Observer()
		o.Admin = func(b *server.Server) admin.Options {
			m.Watch(b)
			return adminOptions(b, m, *adminAddr, token, log, nil, nil)
		}
	}
	if err := demo.Run(ctx, o); err != nil {
		fmt.Fprintln(stderr, "latch demo:", err)
		return 1
	}
	return 0
}
