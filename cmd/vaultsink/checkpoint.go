package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/sinks"
)

const checkpointUsage = `usage: vaultsink checkpoint list|show|set|reset|adopt --config F [--org O] [--to T] [--yes]
  list                 every org of the config with its checkpoint
  show  --org O        one checkpoint as JSON
  set   --org O --to T move the checkpoint (the next sync starts at T, a window boundary);
                       moving it forward skips the windows in between: it needs --yes
  reset --org O --yes  delete the checkpoint (the next sync starts again at the org's start;
                       windows the sink holds keep their rows: a re-pull only adds)
  adopt --org O --yes  record the configured sink and window in the checkpoint, for a sink
                       whose history you copied from the one the checkpoint was made for`

func cmdCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, checkpointUsage)
		return usageError("checkpoint: missing subcommand")
	}
	sub := args[0]
	var c commonFlags
	fs := newFlagSet("checkpoint "+sub, stderr, &c)
	org := fs.String("org", "", "org id")
	to := fs.String("to", "", "with set: the new checkpoint")
	yes := fs.Bool("yes", false, "confirm reset, adopt, or a set that moves the checkpoint forward")
	if err := parseFlags(fs, args[1:], &c); err != nil {
		return err
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	store, err := cfg.Checkpoint.Config.Build(ctx, log)
	if err != nil {
		return fmt.Errorf("checkpoint store (%s): %w", cfg.Checkpoint.Type, err)
	}
	defer store.Close()
	needOrg := func() (config.Resolved, error) {
		if *org == "" {
			return config.Resolved{}, usageError("checkpoint %s: --org is required", sub)
		}
		r, ok := cfg.OrgSettings(*org)
		if !ok {
			return r, usageError("checkpoint %s: --org %q is not in the config", sub, *org)
		}
		return r, nil
	}
	switch sub {
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ORG\tCHECKPOINT\tLAG\tEVENTS\tWINDOWS\tLAST SUCCESS\tLAST ERROR")
		for _, o := range cfg.Orgs {
			cp, err := store.Get(ctx, o.ID)
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
				lag = time.Since(cp.End).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", o.ID, fmtT(cp.End), lag, cp.Events, cp.Windows, fmtT(cp.LastSuccess), cp.LastError)
		}
		return tw.Flush()
	case "show":
		if _, err := needOrg(); err != nil {
			return err
		}
		cp, err := store.Get(ctx, *org)
		if err != nil {
			return fmt.Errorf("checkpoint show %s: %w", *org, err)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cp)
	case "set":
		r, err := needOrg()
		if err != nil {
			return err
		}
		t, err := parseTime("to", *to)
		if err != nil {
			return err
		}
		if t.Truncate(r.Window) != t {
			return usageError("checkpoint set: --to %s is not aligned to the org's %s window", *to, durfmt.String(r.Window))
		}
		if limit := time.Now().Add(r.Window); t.After(limit) {
			return usageError("checkpoint set: --to %s lies in the future (now %s): every sync would pull nothing", fmtT(t), fmtT(time.Now()))
		}
		cp, err := store.Get(ctx, *org)
		if errors.Is(err, checkpoint.ErrNotFound) {
			cp = checkpoint.Checkpoint{Org: *org}
		} else if err != nil {
			return fmt.Errorf("checkpoint set %s: %w", *org, err)
		}
		old := cp.End
		if cur := old; (cur.IsZero() && t.After(r.Start)) || (!cur.IsZero() && t.After(cur)) {
			if cur.IsZero() {
				cur = r.Start
			}
			if !*yes {
				return usageError("checkpoint set: moving %s's checkpoint forward from %s to %s skips the windows in between (a sync never pulls them); pass --yes to confirm, or fill them later with `vaultsink backfill --org %s --from %s --to %s`",
					*org, fmtT(cur), fmtT(t), *org, fmtT(cur), fmtT(t))
			}
		}
		if w := cp.Window.D(); w != 0 && w != r.Window {
			return usageError("checkpoint set: %s's units were written with %s windows, the config says %s: run `vaultsink rewindow --org %s` first",
				*org, durfmt.String(w), durfmt.String(r.Window), *org)
		}
		cp.End = t
		if _, err := store.Put(ctx, cp); err != nil {
			return fmt.Errorf("checkpoint set %s: %w", *org, err)
		}
		fmt.Fprintf(stdout, "%s: checkpoint moved from %s to %s\n", *org, fmtT(old), fmtT(t))
		return nil
	case "reset":
		if _, err := needOrg(); err != nil {
			return err
		}
		if !*yes {
			return usageError("checkpoint reset: the next sync of %s starts over at its start; pass --yes to confirm", *org)
		}
		if err := store.Delete(ctx, *org); err != nil {
			return fmt.Errorf("checkpoint reset %s: %w", *org, err)
		}
		fmt.Fprintf(stdout, "%s: checkpoint deleted\n", *org)
		return nil
	case "adopt":
		r, err := needOrg()
		if err != nil {
			return err
		}
		if !*yes {
			return usageError("checkpoint adopt: this declares that the configured sink holds %s's history up to its checkpoint (you copied it over); pass --yes to confirm", *org)
		}
		cp, err := store.Get(ctx, *org)
		if err != nil {
			return fmt.Errorf("checkpoint adopt %s: %w", *org, err)
		}
		snk, err := r.Sink.Config.Build(ctx, sinks.Env{Logger: log, Registerer: prometheus.NewRegistry(), Version: version})
		if err != nil {
			return fmt.Errorf("checkpoint adopt %s: sink: %w", *org, err)
		}
		defer snk.Close()
		if w := cp.Window.D(); w != 0 && w != r.Window {
			return usageError("checkpoint adopt: %s's units were written with %s windows, the config says %s: set the window back, or run `vaultsink rewindow --org %s` after adopting with the old window",
				*org, durfmt.String(w), durfmt.String(r.Window), *org)
		}
		old := cp.Sink
		cp.Sink = snk.Identity()
		cp.Window = checkpoint.Duration(r.Window)
		if _, err := store.Put(ctx, cp); err != nil {
			return fmt.Errorf("checkpoint adopt %s: %w", *org, err)
		}
		fmt.Fprintf(stdout, "%s: checkpoint now belongs to %s (was %s)\n", *org, cp.Sink, orDash(old))
		return nil
	}
	fmt.Fprintln(stderr, checkpointUsage)
	return usageError("checkpoint: unknown subcommand %q", sub)
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
