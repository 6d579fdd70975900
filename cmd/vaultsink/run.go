package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/vaultsink/vaultsink/runner"
)

func newRunCmd(e *env) *cobra.Command {
	var c commonFlags
	cmd := &cobra.Command{
		Use:   "run --config F",
		Short: "The daemon: sync on a cron schedule, serve /metrics, /healthz and /readyz",
		Long: `run is the daemon. It makes a catch-up pass over every org at start, then one per
tick of the config's schedule (each org jittered by up to jitter, never
overlapping itself), and serves /metrics, /healthz and /readyz on server.listen.
It writes units to the configured sinks and advances each org's checkpoint; it
logs to stderr (JSON unless stderr is a terminal) and prints nothing on stdout.

It runs until SIGINT or SIGTERM: then no new window starts and the one in
flight has shutdown_grace to commit (exit 0); a second signal exits at once
(exit 130); an uncommitted window is simply redone by the next run.
Exit 2: bad flags or config.`,
		Example:               "  vaultsink run --config /etc/vaultsink/config.yaml",
		DisableFlagsInUseLine: true,
		RunE: e.runE(func(ctx context.Context) error {
			a, work, done, err := openWriting(ctx, c, e.con, nil)
			if err != nil {
				return err
			}
			defer done()
			return a.engine.Run(ctx, work, runner.DaemonOptions{
				Schedule: a.cfg.Schedule,
				Jitter:   a.cfg.Jitter,
				Listen:   a.cfg.Server.Listen,
				Gatherer: a.reg,
			})
		}),
	}
	c.add(cmd)
	return cmd
}
