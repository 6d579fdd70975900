// Command vaultsink mirrors VaultTerm's audit event stream into Parquet files
// (local or S3) or BigQuery, exactly once. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// versionLine is what `vaultsink version` prints: the version, the Go release
// the binary was built with (its standard library is the one that serves
// HTTPS and /metrics) and the platform, e.g.
// "vaultsink v0.1.0-12-gabc (go1.27.3, linux/amd64)". The module versions are
// in the binary too: `go version -m vaultsink`.
func versionLine() string {
	return fmt.Sprintf("vaultsink %s (%s, %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "vaultsink: stopping: no new windows start; the one in flight may finish (signal again to exit at once)")
		cancel()
		<-sig
		fmt.Fprintln(os.Stderr, "vaultsink: second signal: exiting now; uncommitted windows are simply redone next run")
		os.Exit(130)
	}()
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // the job ran and something failed (per-org summary printed)
	exitUsage   = 2 // bad flags or config: nothing was touched
	exitDiffers = 3 // verify found a difference
)

func usageError(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "vaultsink:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "vaultsink:", err)
	return exitFailed
}

const usage = `vaultsink mirrors VaultTerm's audit events into Parquet (local, S3) or BigQuery, exactly once.

Usage:
  vaultsink run          --config F            the daemon: sync on a cron schedule, serve /metrics /healthz /readyz
  vaultsink sync         --config F            one catch-up pass for every org, then exit (0 = all current)
  vaultsink backfill     --config F --org O --from T --to T [--concurrency N] [--force]
  vaultsink verify       --config F [--org O] --from T --to T   compare the sink with the API, window by window
  vaultsink checkpoint   list|show|set|reset|adopt --config F [--org O] [--to T] [--yes]
  vaultsink rewindow     --config F --org O   rewrite an org's units into the configured window size
  vaultsink check-config --config F [--connect]
  vaultsink version

Times are RFC 3339 (2026-06-01T10:00:00Z) or dates (2026-06-01), UTC.
`

// Run runs one vaultsink command. Cancelling ctx is the first stop signal:
// no new window starts, and the one in flight gets the configured grace.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: exitUsage, err: errors.New("")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "sync":
		return cmdSync(ctx, rest, stdout, stderr)
	case "backfill":
		return cmdBackfill(ctx, rest, stdout, stderr)
	case "verify":
		return cmdVerify(ctx, rest, stdout, stderr)
	case "checkpoint":
		return cmdCheckpoint(ctx, rest, stdout, stderr)
	case "rewindow":
		return cmdRewindow(ctx, rest, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError("unknown command %q", cmd)
}
