package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/term"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/runner"
	"github.com/vaultsink/vaultsink/sinks"
	_ "github.com/vaultsink/vaultsink/sinks/all" // register every sink type
	"github.com/vaultsink/vaultsink/source"
)

// app is everything a command needs, built from the config file.
type app struct {
	cfg    *config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	client *source.Client
	store  checkpoint.Store
	sinks  map[*config.SinkSection]sinks.Sink
	specs  []runner.OrgSpec
	engine *runner.Engine
}

// commonFlags are shared by the commands that load a config.
type commonFlags struct {
	config   string
	logLevel string
}

func newFlagSet(name string, stderr io.Writer, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "path to the YAML config (required)")
	fs.StringVar(&c.logLevel, "log-level", "", "override log.level: debug, info, warn, error")
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string, c *commonFlags) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: exitOK, err: errors.New("")}
		}
		return &exitError{code: exitUsage, err: errors.New("")}
	}
	if fs.NArg() > 0 {
		return usageError("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	if c.config == "" {
		return usageError("%s: --config is required", fs.Name())
	}
	return nil
}

// loadConfig reads and validates the config; any error is a usage error,
// so the process exits 2 before touching anything.
func loadConfig(c commonFlags) (*config.Config, error) {
	cfg, err := config.Load(c.config)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("config %s:\n%w", c.config, err)}
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	return cfg, nil
}

func newLogger(l config.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, usageError("log.level: %q: must be debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := l.Format
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// open loads the config named by c and builds the app: the common start of
// every command that runs the job. The caller closes the app.
func open(ctx context.Context, c commonFlags, stderr io.Writer) (*app, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	return build(ctx, cfg, c.config, stderr)
}

// build constructs the client, store, sinks and engine for cfg, read from
// path (quoted in the repair commands errors print).
func build(ctx context.Context, cfg *config.Config, path string, stderr io.Writer) (*app, error) {
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry(), sinks: map[*config.SinkSection]sinks.Sink{}}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vaultsink_build_info", Help: "Build version."}, []string{"version"})
	buildInfo.WithLabelValues(version).Set(1)
	a.reg.MustRegister(buildInfo)

	a.client, err = source.NewClient(cfg.Source, log, a.reg)
	if err != nil {
		return nil, err
	}
	a.store, err = cfg.Checkpoint.Config.Build(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("checkpoint (%s): %w", cfg.Checkpoint.Type, err)
	}
	env := sinks.Env{Logger: log, Registerer: a.reg, Version: version}
	for _, o := range cfg.Orgs {
		r, _ := cfg.OrgSettings(o.ID)
		snk, ok := a.sinks[r.Sink]
		if !ok {
			snk, err = r.Sink.Config.Build(ctx, env)
			if err != nil {
				a.Close()
				return nil, fmt.Errorf("sink (%s) for org %s: %w", r.Sink.Type, o.ID, err)
			}
			a.sinks[r.Sink] = snk
		}
		a.specs = append(a.specs, runner.OrgSpec{
			Org:      source.Org{ID: r.ID, Credential: r.Credential, RateLimit: r.RateLimit},
			Start:    r.Start,
			Window:   r.Window,
			Lookback: r.Lookback,
			Sink:     snk,
		})
	}
	a.engine = runner.New(runner.Options{
		Source:      a.client,
		Store:       a.store,
		Orgs:        a.specs,
		Settle:      cfg.Settle,
		Concurrency: cfg.Concurrency,
		Owner:       runner.OwnerID(cfg.Lease.Owner),
		LeaseTTL:    cfg.Lease.TTL,
		Log:         log,
		Registerer:  a.reg,
		ConfigPath:  path,
	})
	return a, nil
}

// probeFencing asks each sink whose fencing depends on its store what the
// store honours, and logs the guarantee that remains (commands that write).
func (a *app) probeFencing(ctx context.Context) {
	for sec, snk := range a.sinks {
		p, ok := snk.(sinks.FencingProber)
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		msg, err := p.ProbeFencing(ctx)
		cancel()
		if err != nil {
			a.log.Warn("could not probe the sink's conditional writes; fencing rests on the lease check before each commit", "sink", sec.Type, "err", err)
			continue
		}
		a.log.Info("fencing", "sink", sec.Type, "guarantee", msg)
	}
}

func (a *app) Close() {
	for _, s := range a.sinks {
		_ = s.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
}

// spec returns the OrgSpec of org id.
func (a *app) spec(id string) (runner.OrgSpec, error) {
	for _, s := range a.specs {
		if s.Org.ID == id {
			return s, nil
		}
	}
	var ids []string
	for _, s := range a.specs {
		ids = append(ids, s.Org.ID)
	}
	return runner.OrgSpec{}, usageError("--org %q is not in the config (orgs: %s)", id, strings.Join(ids, ", "))
}

// workContext returns a context that outlives stop by grace: when stop is
// cancelled no new window starts, and the window in flight has grace to
// commit before it is abandoned uncommitted. Every call honours the
// context, so the process ends soon after; should one not (a stuck call
// that ignores its context), the process exits hardStop after the grace
// all the same: an uncommitted window is redone by the next run, and a
// lease not released expires.
func workContext(stop context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(stop))
	ended := make(chan struct{})
	var once sync.Once
	end := func() {
		once.Do(func() { close(ended) })
		cancel()
	}
	go func() {
		select {
		case <-stop.Done():
		case <-ended:
			return
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ended:
			return
		}
		t.Reset(hardStop)
		select {
		case <-t.C:
		case <-ended:
			return
		}
		fmt.Fprintf(os.Stderr, "vaultsink: still not stopped %s after shutdown_grace (%s) ended; exiting now: "+
			"windows not committed are redone by the next run\n", hardStop, grace)
		os.Exit(exitFailed)
	}()
	return work, end
}

// hardStop is how long after shutdown_grace a process that has not ended
// is made to exit.
const hardStop = 10 * time.Second

// parseTime accepts RFC 3339 or a bare date (UTC midnight).
func parseTime(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, usageError("--%s is required", flagName)
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, usageError("--%s %q: want RFC 3339 (2026-06-01T10:00:00Z) or a date (2026-06-01)", flagName, v)
}
