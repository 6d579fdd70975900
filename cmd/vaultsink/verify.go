package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vaultsink/vaultsink/runner"
	"github.com/vaultsink/vaultsink/sinks"
)

// cmdVerify compares the sink with the API (runner.Engine.Verify does the
// work) and prints what differs: exit 0 when everything matches, 3 when a
// window differs or a finding is reported.
func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("verify", stderr, &c)
	org := fs.String("org", "", "only this org (default: every org)")
	from := fs.String("from", "", "first instant, RFC 3339 or date (required)")
	to := fs.String("to", "", "end, exclusive (required)")
	verbose := fs.Bool("v", false, "print every window, not only those that differ")
	if err := parseFlags(fs, args, &c); err != nil {
		return err
	}
	f, err := parseTime("from", *from)
	if err != nil {
		return err
	}
	t, err := parseTime("to", *to)
	if err != nil {
		return err
	}
	if !f.Before(t) {
		return usageError("verify: --from %s is not before --to %s", *from, *to)
	}
	a, err := open(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	specs := a.specs
	if *org != "" {
		s, err := a.spec(*org)
		if err != nil {
			return err
		}
		specs = []runner.OrgSpec{s}
	}
	for _, s := range specs {
		if _, ok := s.Sink.(sinks.Inventory); !ok {
			return usageError("verify: the sink of org %s cannot list what it holds", s.Org.ID)
		}
	}
	tty := isTerminal(stderr)
	var total runner.VerifySummary
	findings, infos, seen := 0, 0, 0
	for _, s := range specs {
		sum, err := a.engine.Verify(ctx, s, f, t, func(v runner.VerifyWindow) {
			seen++
			if v.Differs() || *verbose {
				printVerifyWindow(stdout, v)
			}
			if tty {
				fmt.Fprintf(stderr, "\rverified %d windows", seen)
			} else if seen%100 == 0 {
				a.log.Info("verify progress", "windows", seen)
			}
		})
		if err != nil {
			if tty {
				fmt.Fprintln(stderr)
			}
			return err
		}
		if *verbose {
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
		total.Windows += sum.Windows
		total.NotSynced += sum.NotSynced
		total.Differ += sum.Differ
		total.PagingDiffers += sum.PagingDiffers
		total.API += sum.API
		total.Sink += sum.Sink
		total.Missing += sum.Missing
		total.QuarantineOnly += sum.QuarantineOnly
		total.Extra += sum.Extra
		total.Duplicated += sum.Duplicated
		total.Outside += sum.Outside
		total.Adjacent += sum.Adjacent
	}
	if tty {
		fmt.Fprintln(stderr)
	}
	// The summary's start is parsed by tests and scripts: keep its shape.
	fmt.Fprintf(stdout, "verify: %d windows, %d events in the API, %d rows in the sink: %d missing, %d extra, %d duplicated; %d windows differ "+
		"(%d events only in quarantine, %d rows outside their unit, %d windows with disagreeing API paging); %d windows not synced yet; %d findings",
		total.Windows, total.API, total.Sink, total.Missing, total.Extra, total.Duplicated, total.Differ,
		total.QuarantineOnly, total.Outside, total.PagingDiffers, total.NotSynced, findings)
	if total.Adjacent > 0 {
		fmt.Fprintf(stdout, "; %d ids the API returns in a window are archived once in an adjacent one", total.Adjacent)
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
