package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vaultsink/vaultsink/runner"
	"github.com/vaultsink/vaultsink/sinks"
)

func newVerifyCmd(e *env) *cobra.Command {
	var (
		c        commonFlags
		orgs     []string
		from, to string
		verbose  bool
	)
	cmd := &cobra.Command{
		Use:   "verify --config F [--org O]... --from T --to T [-v]",
		Short: "Compare the sink with the API, window by window",
		Long: `verify lists everything the sink holds for each org (every org, or those named
by --org) and the range (any key, any window size) and compares it with what the
API returns, window by window: missing, extra and duplicated ids ("first 5 of
N"), overlapping units, rows outside their unit's range, boundary events found
only in quarantine, and (with auto or page pagination) a cross-check of each
window against its sub-windows that a truncating walk cannot match. It does not
rely on the keys or the walk a sync used, so it can disagree with sync. Windows
not closed yet or past the checkpoint are "not synced yet". It writes nothing.

It prints each window that differs (every window with -v) and the findings on
stdout, then a summary line that starts "verify: N windows, ...".

` + timesNote + `

Exit 0 when everything matches, 3 when a window differs or a finding is
reported, 1 when the check itself failed, 2 on bad flags or config.`,
		Example: `  vaultsink verify --config vaultsink.yaml --from 2026-06-01 --to 2026-06-02
  vaultsink verify --config vaultsink.yaml --org org_1 --from 2026-06-01T10:00:00Z --to 2026-06-01T14:00:00Z -v`,
		DisableFlagsInUseLine: true,
		RunE: e.runE(func(ctx context.Context) error {
			return e.verify(ctx, c, orgs, from, to, verbose)
		}),
	}
	c.add(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&orgs, "org", nil, "only these orgs: repeat the flag or give a comma list (default every org)")
	fl.StringVar(&from, "from", "", "first instant, RFC 3339 or date (required)")
	fl.StringVar(&to, "to", "", "end, exclusive (required)")
	fl.BoolVarP(&verbose, "verbose", "v", false, "print every window, not only those that differ")
	// -v was a flag named "v": --v still works.
	fl.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "v" {
			name = "verbose"
		}
		return pflag.NormalizedName(name)
	})
	return cmd
}

// verify compares the sink with the API (runner.Engine.Verify does the
// work) and prints what differs: exit 0 when everything matches, 3 when a
// window differs or a finding is reported.
func (e *env) verify(ctx context.Context, c commonFlags, orgs []string, from, to string, verbose bool) error {
	f, err := parseTime("from", from)
	if err != nil {
		return err
	}
	t, err := parseTime("to", to)
	if err != nil {
		return err
	}
	if !f.Before(t) {
		return usageError("--from %s is not before --to %s", from, to)
	}
	a, err := open(ctx, c, e.con, orgs)
	if err != nil {
		return err
	}
	defer a.Close()
	stdout, specs := e.stdout, a.specs
	for _, s := range specs {
		if _, ok := s.Sink.(sinks.Inventory); !ok {
			return usageError("the sink of org %s cannot list what it holds", s.Org.ID)
		}
	}
	tty := e.con.tty()
	var total runner.VerifySummary
	findings, infos, seen := 0, 0, 0
	for _, s := range specs {
		sum, err := a.engine.Verify(ctx, s, f, t, func(v runner.VerifyWindow) {
			seen++
			if v.Differs() || verbose {
				printVerifyWindow(stdout, v)
			}
			if tty {
				fmt.Fprintf(e.con, "\rverified %s", plural(seen, "window", "windows"))
			} else if seen%100 == 0 {
				a.log.Info("verify progress", "windows", seen)
			}
		})
		if err != nil {
			if tty {
				fmt.Fprintln(e.con)
			}
			return err
		}
		if verbose {
			cp, cross := "none", "off (cursor or link pagination, or date bounds)"
			if sum.Checkpoint {
				cp = sum.CheckpointEnd.UTC().Format(time.RFC3339)
			}
			if sum.CrossChecked {
				cross = "on"
			}
			fmt.Fprintf(stdout, "%-8s %s: checkpoint %s, the API's clock %s, %d units listed, paging cross-check %s\n",
				"org", sum.Org, cp, sum.APINow.UTC().Format(time.RFC3339), sum.Units, cross)
		}
		for _, fd := range sum.Findings {
			label := "FINDING"
			if fd.Info {
				label = "info"
				infos++
			} else {
				findings++
			}
			fmt.Fprintf(stdout, "%-8s %s %s: %s: %s\n", label, sum.Org, fd.Kind, fd.Unit, fd.Detail)
		}
		total.Add(sum)
	}
	if tty {
		fmt.Fprintln(e.con)
	}
	// The summary's start is parsed by tests and scripts: keep its shape.
	fmt.Fprintf(stdout, "verify: %s, %s in the API, %s in the sink: %d missing, %d extra, %d duplicated; %s "+
		"(%s only in quarantine, %s outside their unit, %s with disagreeing API paging); %s not synced yet; %s",
		plural(total.Windows, "window", "windows"), plural(total.API, "event", "events"), plural(total.Sink, "row", "rows"),
		total.Missing, total.Extra, total.Duplicated, plural(total.Differ, "window differs", "windows differ"),
		plural(total.QuarantineOnly, "event", "events"), plural(total.Outside, "row", "rows"), plural(total.PagingDiffers, "window", "windows"),
		plural(total.NotSynced, "window", "windows"), plural(findings, "finding", "findings"))
	if total.Adjacent > 0 {
		fmt.Fprintf(stdout, "; %s archived once in an adjacent one",
			plural(total.Adjacent, "id the API returns in a window is", "ids the API returns in a window are"))
	}
	if infos > 0 {
		fmt.Fprintf(stdout, " (and %d for information)", infos)
	}
	fmt.Fprintln(stdout)
	if total.Differ > 0 || findings > 0 {
		return &exitError{code: exitDiffers, err: errors.New("the sink differs from the API")}
	}
	return nil
}

func printVerifyWindow(w io.Writer, v runner.VerifyWindow) {
	if v.NotSynced != "" {
		fmt.Fprintf(w, "%-8s %s sink=%d: not synced yet (%s)\n", "-", v.Window, v.Sink, v.NotSynced)
		return
	}
	status := "ok"
	if v.Differs() {
		status = "DIFFERS"
	}
	fmt.Fprintf(w, "%-8s %s api=%d sink=%d units=%d missing=%d extra=%d duplicated=%d quarantine-only=%d outside=%d\n",
		status, v.Window, v.API, v.Sink, v.Units, v.Missing.N, v.Extra.N, v.Duplicated.N, v.QuarantineOnly.N, v.Outside.N)
	for _, x := range []struct {
		what string
		ids  runner.IDSample
	}{
		{"missing", v.Missing},
		{"only in quarantine (a boundary event the sync set aside)", v.QuarantineOnly},
		{"extra", v.Extra},
		{"duplicated", v.Duplicated},
		{"outside their unit's range", v.Outside},
		{"archived once in an adjacent window (not a difference)", v.Adjacent},
	} {
		if x.ids.N > 0 {
			fmt.Fprintf(w, "         %s: %s\n", x.what, x.ids)
		}
	}
	if p := v.Paging; p.Differs() {
		fmt.Fprintf(w, "         API paging disagrees: the whole window's walk returned %d ids, its 4 quarters' walks %d "+
			"(%d only in the quarters, %d only in the whole walk): a walk was truncated; the union is taken as the API's truth\n",
			p.Whole, p.Split, p.OnlySplit, p.OnlyWhole)
	}
}
