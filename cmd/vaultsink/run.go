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
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	a, err := build(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	work, cancel := workContext(ctx, cfg.ShutdownGrace)
	defer cancel()
	return a.engine.Run(ctx, work, runner.DaemonOptions{
		Schedule: cfg.Schedule,
		Jitter:   cfg.Jitter,
		Listen:   cfg.Server.Listen,
		Gatherer: a.reg,
	})
}
