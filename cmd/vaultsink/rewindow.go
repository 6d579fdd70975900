package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vaultsink/vaultsink/internal/durfmt"
)

func newRewindowCmd(e *env) *cobra.Command {
	var c commonFlags
	var org string
	cmd := &cobra.Command{
		Use:   "rewindow --config F --org O",
		Short: "Rewrite an org's units into the configured window size",
		Long: `rewindow rewrites the org's units into the config's window size, after the
window was changed (a sync refuses the org until then: its units would overlap
the new ones). New units are staged where readers do not look, the old ones
removed, the staged ones published, so a reader never sees an event twice (it
may miss a span's events for the moment between removal and publication).
BigQuery only has its checkpoint changed (rows are keyed by id).

It is crash-safe and idempotent: run it again until it succeeds; syncs refuse
the org meanwhile. It prints one line on stdout: spans rewritten, units read and
written, rows, and the checkpoint.

Exit 0 when done (or nothing to do), 1 when it failed (run it again), 2 on bad
flags or config.`,
		Example:               "  vaultsink rewindow --config vaultsink.yaml --org org_1",
		DisableFlagsInUseLine: true,
		RunE: e.runE(func(ctx context.Context) error {
			if org == "" {
				return usageError("--org is required")
			}
			a, err := open(ctx, c, e.con, []string{org})
			if err != nil {
				return err
			}
			defer a.Close()
			spec, err := a.spec(org)
			if err != nil {
				return err
			}
			res, err := a.engine.Rewindow(ctx, spec)
			if err != nil {
				return fmt.Errorf("rewindow %s: %w (nothing is lost: run the same command again to finish)", org, err)
			}
			if res.From == res.To {
				fmt.Fprintf(e.stdout, "rewindow %s: its units already have %s windows; nothing to do\n", org, durfmt.String(res.To))
				return nil
			}
			fmt.Fprintf(e.stdout, "rewindow %s: %s -> %s windows: %s rewritten (%d already done), %s read, %d written, %s (%s kept once); checkpoint now %s\n",
				org, durfmt.String(res.From), durfmt.String(res.To), plural(res.Groups, "span", "spans"), res.Skipped,
				plural(res.UnitsRead, "unit", "units"), res.UnitsStaged, plural(res.Rows, "row", "rows"), plural(res.Duplicates, "repeat", "repeats"), fmtT(res.End))
			return nil
		}),
	}
	c.add(cmd)
	cmd.Flags().StringVar(&org, "org", "", "org id from the config (required)")
	return cmd
}
