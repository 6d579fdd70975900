package main

import (
	"context"
	"errors"
	"fmt"
	"io"
)

func cmdSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("sync", stderr, &c)
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
	sum := a.engine.Sync(ctx, work)
	fmt.Fprint(stdout, sum.String())
	if !sum.OK() {
		return &exitError{code: exitFailed, err: errors.New("not every org is current (see the summary above)")}
	}
	return nil
}
