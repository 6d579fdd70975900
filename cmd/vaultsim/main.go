// Command vaultsim runs the VaultTerm Events API simulator (`vaultsim serve`)
// and computes the exact truth of a window without HTTP (`vaultsim truth`).
// See package source/vaultsim.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vaultsim:", err)
		os.Exit(2)
	}
}
