package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestVersion checks that `vaultsink version` prints the version, the Go
// release the binary was built with and the platform.
func TestVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v0.1.0-12-gabc"
	want := fmt.Sprintf("vaultsink v0.1.0-12-gabc (%s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, arg := range []string{"version", "--version", "-v"} {
		var stdout, stderr bytes.Buffer
		if err := Run(context.Background(), []string{arg}, &stdout, &stderr); err != nil {
			t.Fatalf("vaultsink %s: %v", arg, err)
		}
		if got := stdout.String(); got != want {
			t.Errorf("vaultsink %s printed %q, want %q", arg, got, want)
		}
		if stderr.Len() != 0 {
			t.Errorf("vaultsink %s wrote to stderr: %q", arg, stderr.String())
		}
	}
}

// TestVersionBinary builds the binary as `make build` does and checks what
// the README promises: `vaultsink version` names the -X version and the Go
// release, and `go version -m` lists the Go release and the module versions.
func TestVersionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "vaultsink")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// `go test` puts its own GOROOT/bin first on PATH: this is the go that built the test.
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v9.8.7-test", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("vaultsink version: %v\n%s", err, out)
	}
	want := fmt.Sprintf("vaultsink v9.8.7-test (%s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if string(out) != want {
		t.Errorf("vaultsink version printed %q, want %q", out, want)
	}

	out, err = exec.CommandContext(ctx, "go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	text := string(out)
	if first, _, _ := strings.Cut(text, "\n"); first != bin+": "+runtime.Version() {
		t.Errorf("go version -m: first line %q, want %q", first, bin+": "+runtime.Version())
	}
	for _, line := range []string{
		"\tpath\tgithub.com/vaultsink/vaultsink/cmd/vaultsink\n",
		"\tdep\tgithub.com/aws/aws-sdk-go-v2\tv",
		"\tdep\tgithub.com/apache/arrow-go/v18\tv",
		"\tdep\tcloud.google.com/go/bigquery\tv",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("go version -m does not list %q:\n%s", strings.TrimSpace(line), text)
		}
	}
}
