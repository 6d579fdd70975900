package main

import (
	"context"
	"io"

	"github.com/vaultsink/vaultsink/runner"
)

func cmdRun(ctx context.Context, args []string, _, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("run", stderr, &c)
	if err := parseFlags(fs, args, &c); err != nil {
		return err
	}
	a, err := open(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	a.probeFencing(ctx)
	work, cancel := workContext(ctx, a.cfg.ShutdownGrace)
	defer cancel()
	return a.engine.Run(ctx, work, runner.DaemonOptions{
		Schedule: a.cfg.Schedule,
		Jitter:   a.cfg.Jitter,
		Listen:   a.cfg.Server.Listen,
		Gatherer: a.reg,
	})
}
