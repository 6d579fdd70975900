// Package testbin builds the project's commands once per test process, the
// way they ship (CGO_ENABLED=0, -trimpath, no -race), for tests that run them
// as real processes (chaos, faults, security).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
)

// Build returns the path of ./cmd/<name> built into a temp dir shared by the
// process; the first call for a name builds it. Call Cleanup from TestMain.
func Build(t testing.TB, name string) string {
	t.Helper()
	return build(t, name, "./cmd/"+name)
}

// PeakRSS rewrites cmd (not started yet) to run under the peakrss helper,
// and returns a function that, once cmd has run, tells the peak resident
// set size of cmd's own process in bytes (0 if unknown). A child's wait
// status cannot tell it (see internal/testbin/peakrss).
func PeakRSS(t testing.TB, cmd *exec.Cmd) func() int64 {
	t.Helper()
	helper := build(t, "peakrss", "./internal/testbin/peakrss")
	f, err := os.CreateTemp("", "vaultsink-peakrss-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := f.Name()
	cmd.Args = append([]string{helper, out, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = helper
	return func() int64 {
		defer os.Remove(out)
		b, err := os.ReadFile(out)
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
}

func build(t testing.TB, name, pkg string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "vaultsink-testbin-"); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[name] = out
	return out
}

// Cleanup removes the built binaries.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the vaultsink module")
	}
	return filepath.Dir(mod), nil
}
