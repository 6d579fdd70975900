// Command peakrss runs a command and writes the peak resident set size of
// that command's process alone (in bytes) to a file: peakrss OUT PROG ARGS...
//
// A test cannot read a child's peak RSS from its own wait status: Go starts
// children with clone(CLONE_VM|CLONE_VFORK), and Linux carries the parent's
// high-water mark into the child's at exec, so a test process that grew
// large reports its own size. This small process is the parent instead: its
// mark is a few MiB, the floor of what it measures.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: peakrss OUT PROG [ARGS...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	// Signals for the command (a test's SIGTERM) reach it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if code < 0 {
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
	case err != nil:
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(2)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		_ = os.WriteFile(os.Args[1], []byte(strconv.FormatInt(ru.Maxrss*1024, 10)), 0o600)
	}
	os.Exit(code)
}
