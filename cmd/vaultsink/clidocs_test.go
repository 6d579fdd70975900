package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCLIDocsCurrent regenerates the command reference and fails when
// docs/cli differs from it, so the reference cannot drift from the CLI.
func TestCLIDocsCurrent(t *testing.T) {
	const regen = "docs/cli is out of date: regenerate it with `go generate ./cmd/vaultsink` " +
		"(that is, `go run ./cmd/vaultsink docs --dir docs/cli` at the repository's root) and commit it"
	dir := t.TempDir()
	if out, errs, code := run1(t, "docs", "--dir", dir); code != 0 {
		t.Fatalf("vaultsink docs: exit %d\n%s%s", code, out, errs)
	}
	want, got := mdFiles(t, dir), mdFiles(t, filepath.Join("..", "..", "docs", "cli"))
	if len(want) < 16 {
		t.Fatalf("only %d pages written: %v", len(want), want)
	}
	if !slices.Equal(want, got) {
		t.Fatalf("%s: pages %v, want %v", regen, got, want)
	}
	for _, name := range want {
		w, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		g, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(w) != string(g) {
			t.Errorf("%s: %s differs", regen, name)
		}
	}
}

func mdFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	slices.Sort(names)
	return names
}
