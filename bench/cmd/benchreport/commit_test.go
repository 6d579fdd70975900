package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommitIgnoresOwnReport: a checkout whose only changes are the
// report's own files is not labelled dirty; any other tracked change is.
func TestCommitIgnoresOwnReport(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.email=t@example", "-c", "user.name=t"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("bench/REPORT.md", "old\n")
	write("bench/report.json", "{}\n")
	write("main.go", "package main\n")
	git("add", ".")
	git("commit", "-q", "-m", "c")
	t.Chdir(dir)

	clean := commit()
	if clean == "" || strings.HasSuffix(clean, "-dirty") {
		t.Fatalf("clean checkout: %q", clean)
	}
	write("bench/REPORT.md", "new\n")
	write("bench/report.json", "{\"x\":1}\n")
	write("untracked.txt", "x\n")
	if got := commit(); got != clean {
		t.Fatalf("only the report changed: %q, want %q", got, clean)
	}
	write("main.go", "package main // changed\n")
	if got := commit(); got != clean+"-dirty" {
		t.Fatalf("code changed: %q, want %q", got, clean+"-dirty")
	}
}
