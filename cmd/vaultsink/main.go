// Command vaultsink mirrors VaultTerm's audit event stream into Parquet files
// (local or S3) or BigQuery, exactly once. See README.md and docs/cli.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// The console is shared with Run so that the signal messages go through
	// the command's logger once it has one (JSON lines stay JSON).
	con := newConsole(os.Stderr)
	ctx = withConsole(ctx, con)
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		con.notice(slog.LevelWarn, "stopping: no new windows start; the one in flight may finish (signal again to exit at once)")
		cancel()
		<-sig
		con.exit(exitInterrupted, "second signal: exiting now; uncommitted windows are simply redone next run")
	}()
	os.Exit(exitStatus(Run(ctx, os.Args[1:], os.Stdout, os.Stderr)))
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
	exitOK          = 0
	exitFailed      = 1   // the job ran and something failed (per-org summary printed)
	exitUsage       = 2   // bad flags or config: nothing was touched
	exitDiffers     = 3   // verify found a difference
	exitInterrupted = 130 // stopped by a signal before the work was done
)

func usageError(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// exitStatus is the process exit status for Run's error.
func exitStatus(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}

// Run runs one vaultsink command and reports its error on stderr (through
// the command's logger once it has one, as a plain line before that and
// for usage errors). Cancelling ctx is the first stop signal: no new window
// starts, and the one in flight gets the configured grace.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	con := consoleFrom(ctx, stderr)
	err := execute(ctx, args, stdout, con)
	con.report(err)
	return err
}
