package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultsink/vaultsink/runner"
)

func newSyncCmd(e *env) *cobra.Command {
	var c commonFlags
	var orgs []string
	var output string
	cmd := &cobra.Command{
		Use:   "sync --config F [--org O]... [--output text|json]",
		Short: "One catch-up pass for every org (or the orgs named), then exit",
		Long: `sync brings every org of the config (or only the orgs named by --org) up to
date once, then exits: for each org, every window closed since its checkpoint
is pulled and committed to the sink, in order, and the checkpoint advanced; the
org's lookback windows are pulled again for late events. Orgs run in parallel
(the config's concurrency); one org's failure does not stop the others.

It prints one line per org on stdout (status, windows, events, checkpoint, the
error if any) and a line of pipeline busy times; an org another process holds
(a daemon, another sync) is left to it, and the summary says which process
holds it until when. With --output json it prints the same as one JSON
document instead (ok, orgs[], pipeline), for scripts. Logs go to stderr.

Exit 0 when every org is current or left to another process, 1 otherwise,
2 on bad flags or config or an --org the config does not have, 130 on a second
signal (the first lets the windows in flight commit, then exits 1: not current).`,
		Example: `  vaultsink sync --config vaultsink.yaml
  vaultsink sync --config vaultsink.yaml --org org_1 --org org_2
  vaultsink sync --config vaultsink.yaml --org org_1,org_2
  vaultsink sync --config vaultsink.yaml --output json | jq '.orgs[] | {org, status, events}'`,
		DisableFlagsInUseLine: true,
		RunE: e.runE(func(ctx context.Context) error {
			if output != "text" && output != "json" {
				return usageError("--output %q is not text or json", output)
			}
			a, work, done, err := openWriting(ctx, c, e.con, orgs)
			if err != nil {
				return err
			}
			defer done()
			sum := a.engine.Sync(ctx, work)
			if output == "json" {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(sum.Report()); err != nil {
					return err
				}
			} else {
				fmt.Fprint(e.stdout, sum.String())
				a.printYielded(ctx, e.stdout, sum)
			}
			if !sum.OK() {
				return errors.New("not every org is current (see the summary above)")
			}
			return nil
		}),
	}
	c.add(cmd)
	cmd.Flags().StringVar(&output, "output", "text", "the summary's format on stdout: text (a line per org) or json (one document)")
	cmd.Flags().StringSliceVar(&orgs, "org", nil, "only these orgs of the config: repeat the flag or give a comma list (default every org)")
	return cmd
}

// printYielded says, for each org another process held, which process
// holds it until when; and when that was every org, that this pass pulled
// nothing (the exit status is still 0: the org is being synced).
func (a *app) printYielded(ctx context.Context, w io.Writer, sum runner.Summary) {
	n := 0
	for _, r := range sum.Results {
		if r.Status != runner.StatusYielded {
			continue
		}
		n++
		holder := "another process, which has let it go since"
		if cp, err := a.store.Get(ctx, r.Org); err == nil && cp.Lease != nil && time.Now().Before(cp.Lease.Expires) {
			holder = fmt.Sprintf("%s (lease epoch %d, until %s)", cp.Lease.Owner, cp.Lease.Epoch, fmtT(cp.Lease.Expires))
		}
		fmt.Fprintf(w, "%s: yielded: the org was being synced by %s\n", r.Org, holder)
	}
	if n > 0 && n == len(sum.Results) {
		fmt.Fprintf(w, "sync: every org (%s) was being synced by another process: this pass pulled nothing\n", plural(n, "org", "orgs"))
	}
}
