package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// env is what the commands write to.
type env struct {
	stdout io.Writer
	con    *console
}

// execute runs the command args name. Errors come back as an *exitError
// with the exit status, or as a plain error: a run that failed (exit 1).
func execute(ctx context.Context, args []string, stdout io.Writer, con *console) error {
	root := newRoot(&env{stdout: stdout, con: con})
	if len(args) == 0 {
		fmt.Fprint(con, root.UsageString())
		return &exitError{code: exitUsage, err: errors.New("")}
	}
	root.SetArgs(singleDashLongFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	// cobra's own: an unknown command or argument.
	return usageError("%v (see '%s --help')", err, cmd.CommandPath())
}

const timesNote = `Times are RFC 3339 (2026-06-01T10:00:00Z) or dates (2026-06-01, midnight UTC).`

const exitNote = `Exit statuses: 0 success; 1 the run failed (the summary says which org and why);
2 bad flags or config (nothing was touched); 3 verify found a difference;
130 stopped by a signal before the work was done (a second signal exits at once).`

// newRoot builds the command tree.
func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "vaultsink",
		Short: "Mirror VaultTerm's audit events into Parquet (local, S3) or BigQuery, exactly once",
		Long: `vaultsink mirrors VaultTerm's audit event stream into Parquet files on a local
directory or S3, or into BigQuery tables, exactly once: each org's history is cut
into fixed windows, each window is written as one unit named by the org and the
window, and the org's checkpoint moves only after the unit is committed.

It runs as a daemon (run), as one catch-up pass (sync, for cron jobs), fills
history (backfill), checks the sink against the API (verify) and inspects and
repairs checkpoints (checkpoint). Every command that touches data reads the same
YAML config (--config).

` + timesNote + `

` + exitNote,
		Example: `  vaultsink check-config --config vaultsink.yaml --connect
  vaultsink sync --config vaultsink.yaml
  vaultsink run --config vaultsink.yaml
  vaultsink completion bash > /etc/bash_completion.d/vaultsink`,
		Version:       versionLine(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(e.stdout)
	root.SetErr(e.con)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError("%s: %v (see '%s --help')", name(cmd), err, cmd.CommandPath())
	})
	root.AddCommand(
		newRunCmd(e),
		newSyncCmd(e),
		newBackfillCmd(e),
		newVerifyCmd(e),
		newCheckpointCmd(e),
		newRewindowCmd(e),
		newCheckConfigCmd(e),
		newVersionCmd(e),
		newDocsCmd(),
	)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  vaultsink help backfill\n  vaultsink help checkpoint set"
		case "completion":
			c.Example = completionExamples("")
			for _, sh := range c.Commands() {
				sh.Example = completionExamples(sh.Name())
			}
		}
	}
	return root
}

func completionExamples(shell string) string {
	ex := map[string]string{
		"bash":       "  source <(vaultsink completion bash)                       # this shell\n  vaultsink completion bash > /etc/bash_completion.d/vaultsink   # every new shell",
		"zsh":        "  vaultsink completion zsh > \"${fpath[1]}/_vaultsink\"",
		"fish":       "  vaultsink completion fish > ~/.config/fish/completions/vaultsink.fish",
		"powershell": "  vaultsink completion powershell | Out-String | Invoke-Expression",
	}
	if shell != "" {
		return ex[shell]
	}
	return ex["bash"] + "\n" + ex["zsh"] + "\n" + ex["fish"] + "\n" + ex["powershell"]
}

// name is cmd's path without "vaultsink ", as usage errors name it.
func name(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// runE adapts a command's body: arguments are refused (every input is a
// flag), a usage error is prefixed by the command's name, and any other
// error is a failed run (exit 1).
func (e *env) runE(body func(context.Context) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		var err error
		if len(args) > 0 {
			err = usageError("unexpected argument %q (see '%s --help')", args[0], cmd.CommandPath())
		} else {
			err = body(cmd.Context())
		}
		var ee *exitError
		switch {
		case err == nil:
			return nil
		case !errors.As(err, &ee):
			return &exitError{code: exitFailed, err: err}
		case ee.code == exitUsage && !strings.HasPrefix(err.Error(), name(cmd)+":"):
			return &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", name(cmd), err)}
		}
		return err
	}
}

// singleDashLongFlags rewrites "-config F" as "--config F": the flag
// package this CLI used before accepted long flags with one dash, and
// scripts may still pass them. One-letter flags (-v, -h) are left alone.
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	long := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if len(f.Name) > 1 {
					long[f.Name] = true
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		flagName, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && long[flagName] {
			out[i] = "-" + a
		}
	}
	return out
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go release it was built with and the platform",
		Long: `version prints one line: the version, the Go release the binary was built with
(its standard library serves HTTPS and /metrics) and the platform, e.g.
"vaultsink v0.1.0-12-gabc (go1.27.3, linux/amd64)". The version of every
module in the binary: go version -m vaultsink.`,
		Example: "  vaultsink version\n  vaultsink --version",
		RunE: e.runE(func(context.Context) error {
			_, err := fmt.Fprintln(e.stdout, versionLine())
			return err
		}),
	}
}
