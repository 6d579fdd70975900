package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/sinks"
)

func newCheckpointCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "checkpoint list|show|set|reset|adopt",
		DisableFlagsInUseLine: true,
		Short:                 "Inspect and repair the orgs' checkpoints",
		Long: `An org's checkpoint is the end of the last window committed to its sink, with
running totals, the last run's outcome and the lease of the process syncing it.
A sync starts at the checkpoint and moves it only after a window is committed.
These commands read it (list, show) or change it (set, reset, adopt); a change
needs --yes where it skips windows or forgets history.

` + timesNote + `

Exit 0 on success, 1 when the checkpoint store fails, 2 on bad flags, bad
config, an --org the config does not have, or a change that needs --yes.`,
		Example: `  vaultsink checkpoint list --config vaultsink.yaml
  vaultsink checkpoint show --config vaultsink.yaml --org org_1
  vaultsink checkpoint set --config vaultsink.yaml --org org_1 --to 2026-06-01T10:00:00Z`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				fmt.Fprint(e.con, cmd.UsageString())
				return usageError("checkpoint: missing subcommand: list, show, set, reset or adopt")
			}
			return usageError("checkpoint: unknown subcommand %q (see 'vaultsink checkpoint --help')", args[0])
		},
	}
	cmd.AddCommand(
		newCheckpointListCmd(e),
		newCheckpointShowCmd(e),
		newCheckpointSetCmd(e),
		newCheckpointResetCmd(e),
		newCheckpointAdoptCmd(e),
	)
	return cmd
}

// ckpt is what the checkpoint commands work with: the config, its
// checkpoint store and a logger; not the sinks or the API.
type ckpt struct {
	cfg   *config.Config
	log   *slog.Logger
	store checkpoint.Store
}

func openCheckpoints(ctx context.Context, c commonFlags, con *console) (*ckpt, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	log, err := newLogger(cfg.Log, con)
	if err != nil {
		return nil, err
	}
	store, err := cfg.Checkpoint.Config.Build(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store (%s): %w", cfg.Checkpoint.Type, err)
	}
	return &ckpt{cfg: cfg, log: log, store: store}, nil
}

// org returns the settings of org id, which the command requires.
func (k *ckpt) org(id string) (config.Resolved, error) {
	if id == "" {
		return config.Resolved{}, usageError("--org is required")
	}
	r, ok := k.cfg.OrgSettings(id)
	if !ok {
		return r, unknownOrg(k.cfg, id)
	}
	return r, nil
}

// checkpointCmd completes a checkpoint subcommand: its body gets the
// opened store.
func (e *env) checkpointCmd(cmd *cobra.Command, body func(context.Context, *ckpt) error) *cobra.Command {
	var c commonFlags
	c.add(cmd)
	cmd.DisableFlagsInUseLine = true
	cmd.RunE = e.runE(func(ctx context.Context) error {
		k, err := openCheckpoints(ctx, c, e.con)
		if err != nil {
			return err
		}
		defer k.store.Close()
		return body(ctx, k)
	})
	return cmd
}

func newCheckpointListCmd(e *env) *cobra.Command {
	var orgs []string
	cmd := e.checkpointCmd(&cobra.Command{
		Use:   "list --config F [--org O]...",
		Short: "Every org of the config with its checkpoint",
		Long: `list prints a table on stdout: for each org of the config (or those named by
--org), its checkpoint, how far it lags behind now, the events and windows it
has committed, its last success and its last error.`,
		Example: `  vaultsink checkpoint list --config vaultsink.yaml
  vaultsink checkpoint list --config vaultsink.yaml --org org_1,org_2`,
	}, func(ctx context.Context, k *ckpt) error {
		if err := checkOrgs(k.cfg, orgs); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ORG\tCHECKPOINT\tLAG\tEVENTS\tWINDOWS\tLAST SUCCESS\tLAST ERROR")
		for _, o := range k.cfg.Orgs {
			if len(orgs) > 0 && !slices.Contains(orgs, o.ID) {
				continue
			}
			cp, err := k.store.Get(ctx, o.ID)
			switch {
			case errors.Is(err, checkpoint.ErrNotFound):
				fmt.Fprintf(tw, "%s\t-\t-\t0\t0\t-\t(no checkpoint yet)\n", o.ID)
				continue
			case err != nil:
				fmt.Fprintf(tw, "%s\tERROR\t-\t-\t-\t-\t%v\n", o.ID, err)
				continue
			}
			lag := "-"
			if !cp.End.IsZero() {
				lag = durfmt.String(time.Since(cp.End).Round(time.Second))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", o.ID, fmtT(cp.End), lag, cp.Events, cp.Windows, fmtT(cp.LastSuccess), cp.LastError)
		}
		return tw.Flush()
	})
	cmd.Flags().StringSliceVar(&orgs, "org", nil, "only these orgs: repeat the flag or give a comma list (default every org)")
	return cmd
}

func newCheckpointShowCmd(e *env) *cobra.Command {
	var org string
	cmd := e.checkpointCmd(&cobra.Command{
		Use:   "show --config F --org O",
		Short: "One org's checkpoint as JSON",
		Long: `show prints the org's checkpoint as the store holds it, as indented JSON on
stdout: its end, window size and sink, totals, last run and error, lease.`,
		Example: "  vaultsink checkpoint show --config vaultsink.yaml --org org_1",
	}, func(ctx context.Context, k *ckpt) error {
		if _, err := k.org(org); err != nil {
			return err
		}
		cp, err := k.store.Get(ctx, org)
		if err != nil {
			return fmt.Errorf("checkpoint show %s: %w", org, err)
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cp)
	})
	cmd.Flags().StringVar(&org, "org", "", "org id from the config (required)")
	return cmd
}

func newCheckpointSetCmd(e *env) *cobra.Command {
	var org, to string
	var yes bool
	cmd := e.checkpointCmd(&cobra.Command{
		Use:   "set --config F --org O --to T [--yes]",
		Short: "Move an org's checkpoint: the next sync starts there",
		Long: `set moves the org's checkpoint to --to, a boundary of the org's window: the next
sync starts there. Moving it back makes the next sync pull the windows again
(the sink only adds what it lacks). Moving it forward skips the windows in
between (a sync never pulls them; backfill can): that needs --yes. A time in the
future is refused, and so is a checkpoint whose units were written with another
window size (run rewindow first).`,
		Example: `  vaultsink checkpoint set --config vaultsink.yaml --org org_1 --to 2026-06-01T10:00:00Z
  vaultsink checkpoint set --config vaultsink.yaml --org org_1 --to 2026-06-02 --yes`,
	}, func(ctx context.Context, k *ckpt) error {
		r, err := k.org(org)
		if err != nil {
			return err
		}
		t, err := parseTime("to", to)
		if err != nil {
			return err
		}
		if t.Truncate(r.Window) != t {
			return usageError("--to %s is not aligned to the org's %s window", to, durfmt.String(r.Window))
		}
		if limit := time.Now().Add(r.Window); t.After(limit) {
			return usageError("--to %s lies in the future (now %s): every sync would pull nothing", fmtT(t), fmtT(time.Now()))
		}
		cp, err := k.store.Get(ctx, org)
		if errors.Is(err, checkpoint.ErrNotFound) {
			cp = checkpoint.Checkpoint{Org: org}
		} else if err != nil {
			return fmt.Errorf("checkpoint set %s: %w", org, err)
		}
		old := cp.End
		if cur := old; (cur.IsZero() && t.After(r.Start)) || (!cur.IsZero() && t.After(cur)) {
			if cur.IsZero() {
				cur = r.Start
			}
			if !yes {
				return usageError("moving %s's checkpoint forward from %s to %s skips the windows in between (a sync never pulls them); pass --yes to confirm, or fill them later with `vaultsink backfill --org %s --from %s --to %s`",
					org, fmtT(cur), fmtT(t), org, fmtT(cur), fmtT(t))
			}
		}
		if w := cp.Window.D(); w != 0 && w != r.Window {
			return usageError("%s's units were written with %s windows, the config says %s: run `vaultsink rewindow --org %s` first",
				org, durfmt.String(w), durfmt.String(r.Window), org)
		}
		cp.End = t
		if _, err := k.store.Put(ctx, cp); err != nil {
			return fmt.Errorf("checkpoint set %s: %w", org, err)
		}
		fmt.Fprintf(e.stdout, "%s: checkpoint moved from %s to %s\n", org, fmtT(old), fmtT(t))
		return nil
	})
	fl := cmd.Flags()
	fl.StringVar(&org, "org", "", "org id from the config (required)")
	fl.StringVar(&to, "to", "", "the new checkpoint, a window boundary, RFC 3339 or date (required)")
	fl.BoolVar(&yes, "yes", false, "confirm a move forward, which skips the windows in between")
	return cmd
}

func newCheckpointResetCmd(e *env) *cobra.Command {
	var org string
	var yes bool
	cmd := e.checkpointCmd(&cobra.Command{
		Use:   "reset --config F --org O --yes",
		Short: "Delete an org's checkpoint: the next sync starts over at its start",
		Long: `reset deletes the org's checkpoint: the next sync starts again at the org's
start and pulls every window again. The windows the sink holds keep their rows
(a re-pull only adds what they lack), so nothing is duplicated. Needs --yes.`,
		Example: "  vaultsink checkpoint reset --config vaultsink.yaml --org org_2 --yes",
	}, func(ctx context.Context, k *ckpt) error {
		if _, err := k.org(org); err != nil {
			return err
		}
		if !yes {
			return usageError("the next sync of %s starts over at its start; pass --yes to confirm", org)
		}
		if err := k.store.Delete(ctx, org); err != nil {
			return fmt.Errorf("checkpoint reset %s: %w", org, err)
		}
		fmt.Fprintf(e.stdout, "%s: checkpoint deleted\n", org)
		return nil
	})
	cmd.Flags().StringVar(&org, "org", "", "org id from the config (required)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm")
	return cmd
}

func newCheckpointAdoptCmd(e *env) *cobra.Command {
	var org string
	var yes bool
	cmd := e.checkpointCmd(&cobra.Command{
		Use:   "adopt --config F --org O --yes",
		Short: "Record the configured sink and window in an org's checkpoint",
		Long: `adopt records the configured sink and window size in the org's checkpoint, for
a sink whose history you copied from the one the checkpoint was made for (a
sync refuses a checkpoint that names another sink). Needs --yes: it declares
that the configured sink holds the org's history up to the checkpoint.`,
		Example: "  vaultsink checkpoint adopt --config vaultsink.yaml --org org_1 --yes",
	}, func(ctx context.Context, k *ckpt) error {
		r, err := k.org(org)
		if err != nil {
			return err
		}
		if !yes {
			return usageError("this declares that the configured sink holds %s's history up to its checkpoint (you copied it over); pass --yes to confirm", org)
		}
		cp, err := k.store.Get(ctx, org)
		if err != nil {
			return fmt.Errorf("checkpoint adopt %s: %w", org, err)
		}
		snk, err := r.SinkSection.Config.Build(ctx, sinks.Env{Logger: k.log, Registerer: prometheus.NewRegistry(), Version: version})
		if err != nil {
			return fmt.Errorf("checkpoint adopt %s: sink: %w", org, err)
		}
		defer snk.Close()
		if w := cp.Window.D(); w != 0 && w != r.Window {
			return usageError("%s's units were written with %s windows, the config says %s: set the window back, or run `vaultsink rewindow --org %s` after adopting with the old window",
				org, durfmt.String(w), durfmt.String(r.Window), org)
		}
		old := cp.Sink
		cp.Sink = snk.Identity()
		cp.Window = checkpoint.Duration(r.Window)
		if _, err := k.store.Put(ctx, cp); err != nil {
			return fmt.Errorf("checkpoint adopt %s: %w", org, err)
		}
		fmt.Fprintf(e.stdout, "%s: checkpoint now belongs to %s (was %s)\n", org, cp.Sink, orDash(old))
		return nil
	})
	cmd.Flags().StringVar(&org, "org", "", "org id from the config (required)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtT(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// plural is n with the singular or plural noun: "1 window", "2 windows".
func plural[N int | int64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
