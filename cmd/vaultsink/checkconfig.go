package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vaultsink/vaultsink/internal/durfmt"
)

func newCheckConfigCmd(e *env) *cobra.Command {
	var c commonFlags
	var connect bool
	cmd := &cobra.Command{
		Use:   "check-config --config F [--connect]",
		Short: "Validate the config; with --connect, check the tokens, the sink and the checkpoint store",
		Long: `check-config loads the config as every command does (strict YAML, ${VAR}
expansion, *_file secrets, defaults, validation) and prints a line on stdout:
the orgs, sink, checkpoint store, window and schedule. With --connect it also
checks each org's token against the API, that the checkpoint store answers and
that the sink can be written, a line each.

Exit 0 when valid (and every check passed), 1 when a --connect check failed,
2 when the config is invalid (the error names the field and the bad value).`,
		Example: `  vaultsink check-config --config vaultsink.yaml
  vaultsink check-config --config vaultsink.yaml --connect`,
		DisableFlagsInUseLine: true,
		RunE: e.runE(func(ctx context.Context) error {
			stdout, stderr := e.stdout, e.con
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "config %s is valid: %s, sink %s, checkpoint %s, window %s, schedule %q\n",
				c.config, plural(len(cfg.Orgs), "org", "orgs"), cfg.Sink.Type, cfg.Checkpoint.Type, durfmt.String(cfg.Window), cfg.Schedule)
			if !connect {
				return nil
			}
			return checkConnect(ctx, cfg, stdout, stderr)
		}),
	}
	c.add(cmd)
	cmd.Flags().BoolVar(&connect, "connect", false, "also check each org's token against the API and that the sink and checkpoint store answer")
	return cmd
}
