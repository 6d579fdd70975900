package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/vaultsink/vaultsink/runner"
)

func cmdBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("backfill", stderr, &c)
	org := fs.String("org", "", "org id from the config (required)")
	from := fs.String("from", "", "first instant, RFC 3339 or date (required)")
	to := fs.String("to", "", "end, exclusive, RFC 3339 or date (required)")
	conc := fs.Int("concurrency", 4, "windows fetched in parallel")
	force := fs.Bool("force", false, "rewrite windows that already exist in the sink")
	if err := parseFlags(fs, args, &c); err != nil {
		return err
	}
	if *org == "" {
		return usageError("backfill: --org is required")
	}
	if *conc < 1 || *conc > 256 {
		return usageError("backfill: --concurrency %d: must be 1..256", *conc)
	}
	f, err := parseTime("from", *from)
	if err != nil {
		return err
	}
	t, err := parseTime("to", *to)
	if err != nil {
		return err
	}
	if !t.After(f) {
		return usageError("backfill: --to %s is not after --from %s", *to, *from)
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
	a.probeFencing(ctx)
	work, cancel := workContext(ctx, a.cfg.ShutdownGrace)
	defer cancel()
	began := time.Now()
	res, err := a.engine.Backfill(ctx, work, spec, runner.BackfillOptions{
		From: f, To: t, Concurrency: *conc, Force: *force, Progress: progress(stderr, a, *org),
	})
	if isTerminal(stderr) {
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "backfill %s: %d windows: %d written, %d skipped (already in the sink), %d failed; %d events, %d bytes in %s\n",
		*org, res.Windows, res.Written, res.Skipped, res.Failed, res.Events, res.Bytes, time.Since(began).Round(time.Millisecond))
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a bar on a terminal and logs a line every 10 s otherwise.
func progress(w io.Writer, a *app, org string) func(done, skipped, total int, events int64) {
	tty := isTerminal(w)
	var mu sync.Mutex
	last := time.Now()
	return func(done, skipped, total int, events int64) {
		mu.Lock()
		defer mu.Unlock()
		n := done + skipped
		if tty {
			const width = 30
			fill := 0
			if total > 0 {
				fill = n * width / total
			}
			bar := make([]byte, width)
			for i := range bar {
				bar[i] = '.'
				if i < fill {
					bar[i] = '#'
				}
			}
			fmt.Fprintf(w, "\r%s [%s] %d/%d windows (%d skipped) %d events", org, bar, n, total, skipped, events)
			return
		}
		if time.Since(last) >= 10*time.Second || n == total {
			last = time.Now()
			a.log.Info("backfill progress", "org", org, "windows_done", n, "windows_total", total, "skipped", skipped, "rows", events)
		}
	}
}
