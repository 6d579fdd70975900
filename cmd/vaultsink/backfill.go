package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/runner"
	"github.com/vaultsink/vaultsink/sinks"
)

type backfillFlags struct {
	common      commonFlags
	orgs        []string
	allOrgs     bool
	from, to    string
	concurrency int
	force       bool
}

func newBackfillCmd(e *env) *cobra.Command {
	var f backfillFlags
	cmd := &cobra.Command{
		Use:   "backfill --config F (--org O... | --all-orgs) --from T --to T [--concurrency N] [--force]",
		Short: "Write the windows of a time range, for one org or several, in parallel",
		Long: `backfill writes every window of [--from, --to) for the orgs named (or every org
with --all-orgs): exactly the units a sync would write, several windows at a
time (--concurrency per org; the config's concurrency orgs at a time). A window
the sink already holds is skipped (sinks that can tell: S3) or pulled again and
merged, never duplicated; --force rewrites it. The range is cut to whole
windows and ends at the last closed one: a later --to, or one inside a window,
is cut, and a range that starts after it has nothing to do (each says so).
When the range reaches the org's checkpoint and every window succeeded, the
checkpoint moves to the range's end. A daemon holding the org lets it go at
the end of its pass; backfill waits for it.

On a terminal it draws a bar per org (windows done of total, events/s,
elapsed, ETA) with the log lines above the bars; elsewhere it logs a
"backfill progress" line per org every 10 s. At the end it prints a line per
org on stdout: windows written, skipped and failed, events, bytes, time.

` + timesNote + `

Exit 0 when every window was written, 1 when one failed (rerun the same
command to retry them), 2 on bad flags or config, 130 when stopped by a signal:
the summary says how many windows were done, and rerunning the same command
resumes.`,
		Example: `  vaultsink backfill --config vaultsink.yaml --org org_1 --from 2026-01-01 --to 2026-06-01
  vaultsink backfill --config vaultsink.yaml --org org_1,org_2 --from 2026-05-01 --to 2026-06-01 --concurrency 8
  vaultsink backfill --config vaultsink.yaml --all-orgs --from 2026-05-31T00:00:00Z --to 2026-06-01T00:00:00Z --force`,
		DisableFlagsInUseLine: true,
		RunE:                  e.runE(func(ctx context.Context) error { return e.backfill(ctx, f) }),
	}
	f.common.add(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&f.orgs, "org", nil, "orgs of the config: repeat the flag or give a comma list (this or --all-orgs is required)")
	fl.BoolVar(&f.allOrgs, "all-orgs", false, "every org of the config")
	fl.StringVar(&f.from, "from", "", "first instant, RFC 3339 or date (required)")
	fl.StringVar(&f.to, "to", "", "end, exclusive, RFC 3339 or date (required)")
	fl.IntVar(&f.concurrency, "concurrency", 4, "windows fetched in parallel, per org")
	fl.BoolVar(&f.force, "force", false, "rewrite windows that already exist in the sink")
	return cmd
}

// orgBackfill is one org's part of a backfill.
type orgBackfill struct {
	spec    runner.OrgSpec
	windows int // whole closed windows in the range, by this host's clock
	started bool
	res     runner.BackfillResult
	err     error
	took    time.Duration
}

func (e *env) backfill(ctx context.Context, f backfillFlags) error {
	switch {
	case len(f.orgs) == 0 && !f.allOrgs:
		return usageError("--org or --all-orgs is required")
	case len(f.orgs) > 0 && f.allOrgs:
		return usageError("--org and --all-orgs exclude each other")
	case f.concurrency < 1 || f.concurrency > 256:
		return usageError("--concurrency %d: must be 1..256", f.concurrency)
	}
	from, err := parseTime("from", f.from)
	if err != nil {
		return err
	}
	to, err := parseTime("to", f.to)
	if err != nil {
		return err
	}
	if !to.After(from) {
		return usageError("--to %s is not after --from %s", f.to, f.from)
	}
	a, work, done, err := openWriting(ctx, f.common, e.con, f.orgs)
	if err != nil {
		return err
	}
	defer done()

	now := time.Now()
	jobs := make([]*orgBackfill, len(a.specs))
	for i, s := range a.specs {
		n, note := backfillRange(s, from, to, now, a.cfg.Settle)
		jobs[i] = &orgBackfill{spec: s, windows: n}
		if note != "" {
			fmt.Fprintf(e.stdout, "backfill %s: %s\n", s.Org.ID, note)
		}
	}

	view := newProgress(a)
	bars := make([]*orgProgress, len(jobs))
	for i, j := range jobs {
		if j.windows > 0 {
			bars[i] = view.add(j.spec.Org.ID, j.windows)
		}
	}
	slots := make(chan struct{}, a.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, j := range jobs {
		if j.windows == 0 {
			continue
		}
		wg.Go(func() {
			ok := false
			defer func() { bars[i].end(ok) }()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-slots }()
			if ctx.Err() != nil {
				return
			}
			j.started = true
			bars[i].start()
			began := time.Now()
			j.res, j.err = a.engine.Backfill(ctx, work, j.spec, runner.BackfillOptions{
				From: from, To: to, Concurrency: f.concurrency, Force: f.force, Progress: bars[i].update,
			})
			j.took = time.Since(began)
			ok = j.err == nil
		})
	}
	wg.Wait()
	view.wait()

	var errs []error
	interrupted := false
	for _, j := range jobs {
		if j.windows == 0 {
			continue
		}
		if ctx.Err() != nil && (!j.started || j.err != nil) {
			interrupted = true
			fmt.Fprintf(e.stdout, "backfill %s: %s\n", j.spec.Org.ID, j.interrupted(f.force))
			continue
		}
		fmt.Fprintf(e.stdout, "backfill %s: %s\n", j.spec.Org.ID, j.summary())
		if j.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", j.spec.Org.ID, j.err))
		}
	}
	if interrupted {
		return &exitError{code: exitInterrupted, err: errors.Join(append(errs,
			errors.New("backfill stopped by a signal: rerun the same command to resume (see the summary above)"))...)}
	}
	return errors.Join(errs...)
}

// backfillRange is how many windows of [from, to) the org has closed by
// now, and a line that says why the range is cut or empty, if it is.
// (The runner judges by the API's clock, which the sync probes; this
// host's is close enough to say what will happen.)
func backfillRange(spec runner.OrgSpec, from, to, now time.Time, settle time.Duration) (int, string) {
	size := spec.Window
	start := from.UTC().Truncate(size)
	closed := now.Add(-settle).UTC().Truncate(size) // the end of the last closed window
	why := fmt.Sprintf("a %s window closes settle (%s) after its end", durfmt.String(size), durfmt.String(settle))
	if !start.Before(closed) {
		return 0, fmt.Sprintf("nothing to do: the range starts at %s, after the last closed window, which ends at %s (%s)",
			fmtT(start), fmtT(closed), why)
	}
	switch end := to.UTC().Truncate(size); {
	case to.After(closed):
		return int(closed.Sub(start) / size), fmt.Sprintf("--to %s is not closed yet: the range ends at %s, the end of the last closed window (%s); sync pulls the rest as it closes",
			fmtT(to), fmtT(closed), why)
	case !end.Equal(to) && !end.After(start):
		return 0, fmt.Sprintf("nothing to do: the range %s..%s lies inside one %s window, which it does not cover whole",
			fmtT(from), fmtT(to), durfmt.String(size))
	case !end.Equal(to):
		return int(end.Sub(start) / size), fmt.Sprintf("--to %s falls inside a %s window: the range ends at %s (only whole windows are written)",
			fmtT(to), durfmt.String(size), fmtT(end))
	default:
		return int(end.Sub(start) / size), ""
	}
}

func (j *orgBackfill) summary() string {
	r := j.res
	written := fmt.Sprintf("%d written", r.Written)
	if r.Empty > 0 {
		written += fmt.Sprintf(" (%d of them empty: the API had no events there, and a rerun pulls them again)", r.Empty)
	}
	return fmt.Sprintf("%s: %s, %d skipped (already in the sink), %d failed; %s, %d bytes in %s",
		plural(r.Windows, "window", "windows"), written, r.Skipped, r.Failed, plural(int(r.Events), "event", "events"),
		r.Bytes, durfmt.String(j.took.Round(time.Millisecond)))
}

// interrupted says how far a backfill a signal stopped got, and what a
// rerun does.
func (j *orgBackfill) interrupted(force bool) string {
	if !j.started {
		return fmt.Sprintf("not started (stopped by a signal first): %s to do", plural(j.windows, "window", "windows"))
	}
	r := j.res
	total := max(r.Windows, j.windows)
	rerun := "rerun the same command to resume: the windows already in the sink are skipped"
	if _, ok := j.spec.Sink.(sinks.Stater); !ok || force {
		rerun = "rerun the same command to finish: the windows already written are pulled again and merged, never duplicated"
	}
	return fmt.Sprintf("interrupted: %d of %s done (%d written, %d skipped, %d failed); %s, %d bytes in %s; %s",
		r.Written+r.Skipped, plural(total, "window", "windows"), r.Written, r.Skipped, r.Failed,
		plural(int(r.Events), "event", "events"), r.Bytes, durfmt.String(j.took.Round(time.Millisecond)), rerun)
}
