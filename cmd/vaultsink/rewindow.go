package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vaultsink/vaultsink/internal/durfmt"
)

func cmdRewindow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("rewindow", stderr, &c)
	org := fs.String("org", "", "org id from the config (required)")
	if err := parseFlags(fs, args, &c); err != nil {
		return err
	}
	if *org == "" {
		return usageError("rewindow: --org is required")
	}
	a, err := open(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	spec, err := a.spec(*org)
	if err != nil {
		return err
	}
	res, err := a.engine.Rewindow(ctx, spec)
	if err != nil {
		return fmt.Errorf("rewindow %s: %w (nothing is lost: run the same command again to finish)", *org, err)
	}
	if res.From == res.To {
		fmt.Fprintf(stdout, "rewindow %s: its units already have %s windows; nothing to do\n", *org, durfmt.String(res.To))
		return nil
	}
	fmt.Fprintf(stdout, "rewindow %s: %s -> %s windows: %d spans rewritten (%d already done), %d units read, %d written, %d rows (%d repeats kept once); checkpoint now %s\n",
		*org, durfmt.String(res.From), durfmt.String(res.To), res.Groups, res.Skipped, res.UnitsRead, res.UnitsStaged, res.Rows, res.Duplicates, fmtT(res.End))
	return nil
}
