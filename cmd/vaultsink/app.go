package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/runner"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// app is everything a command needs, built from the config file.
type app struct {
	cfg    *config.Config
	con    *console
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

func (c *commonFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.config, "config", "", "path to the YAML config (required)")
	cmd.Flags().StringVar(&c.logLevel, "log-level", "", "override log.level: debug, info, warn, error")
}

// loadConfig reads and validates the config; any error is a usage error,
// so the process exits 2 before touching anything.
func loadConfig(c commonFlags) (*config.Config, error) {
	if c.config == "" {
		return nil, usageError("--config is required")
	}
	cfg, err := config.Load(c.config)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("config %s:\n%w", c.config, err)}
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	return cfg, nil
}

// checkOrgs returns a usage error naming the configured orgs when an id
// of ids is not one of them.
func checkOrgs(cfg *config.Config, ids []string) error {
	for _, id := range ids {
		if _, ok := cfg.OrgSettings(id); !ok {
			return unknownOrg(cfg, id)
		}
	}
	return nil
}

func unknownOrg(cfg *config.Config, id string) error {
	ids := make([]string, 0, len(cfg.Orgs))
	for _, o := range cfg.Orgs {
		ids = append(ids, o.ID)
	}
	return usageError("--org %q is not in the config (its orgs: %s)", id, strings.Join(ids, ", "))
}

// open loads the config named by c and builds the app for the orgs only
// (every org when only is empty): the common start of every command that
// runs the job. The caller closes the app.
func open(ctx context.Context, c commonFlags, con *console, only []string) (*app, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	if err := checkOrgs(cfg, only); err != nil {
		return nil, err
	}
	return build(ctx, cfg, c.config, con, only)
}

// openWriting is open for the commands that write (run, sync, backfill):
// it also logs the fencing each sink provides, and returns the work
// context (see workContext). done ends the work context and closes the app.
func openWriting(ctx context.Context, c commonFlags, con *console, only []string) (a *app, work context.Context, done func(), err error) {
	a, err = open(ctx, c, con, only)
	if err != nil {
		return nil, nil, nil, err
	}
	a.probeFencing(ctx)
	work, cancel := a.workContext(ctx)
	return a, work, func() { cancel(); a.Close() }, nil
}

// build constructs the client, store, sinks and engine for cfg, read from
// path (quoted in the repair commands errors print), for the orgs only
// (every org when only is empty).
func build(ctx context.Context, cfg *config.Config, path string, con *console, only []string) (*app, error) {
	log, err := newLogger(cfg.Log, con)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, con: con, log: log, reg: prometheus.NewRegistry(), sinks: map[*config.SinkSection]sinks.Sink{}}
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
		if len(only) > 0 && !slices.Contains(only, o.ID) {
			continue
		}
		r, _ := cfg.OrgSettings(o.ID)
		snk, ok := a.sinks[r.SinkSection]
		if !ok {
			snk, err = r.SinkSection.Config.Build(ctx, env)
			if err != nil {
				a.Close()
				return nil, fmt.Errorf("sink (%s) for org %s: %w", r.SinkSection.Type, o.ID, err)
			}
			a.sinks[r.SinkSection] = snk
		}
		a.specs = append(a.specs, runner.OrgSpec{Resolved: r, Sink: snk})
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
	return runner.OrgSpec{}, unknownOrg(a.cfg, id)
}

// workContext returns a context that outlives stop by grace: when stop is
// cancelled no new window starts, and the window in flight has grace to
// commit before it is abandoned uncommitted. Every call honours the
// context, so the process ends soon after; should one not (a stuck call
// that ignores its context), the process exits hardStop after the grace
// all the same: an uncommitted window is redone by the next run, and a
// lease not released expires.
func (a *app) workContext(stop context.Context) (context.Context, context.CancelFunc) {
	grace := a.cfg.ShutdownGrace
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
		a.con.exit(exitFailed, fmt.Sprintf("still not stopped %s after shutdown_grace (%s) ended; exiting now: "+
			"windows not committed are redone by the next run", durfmt.String(hardStop), durfmt.String(grace)))
	}()
	return work, end
}

// hardStop is how long after shutdown_grace a process that has not ended
// is made to exit.
const hardStop = 10 * time.Second

// parseTime accepts RFC 3339 or a bare date (UTC midnight) for flag name.
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, usageError("--%s is required", name)
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, usageError("--%s %q: want RFC 3339 (2026-06-01T10:00:00Z) or a date (2026-06-01)", name, v)
}
