package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// offlineConfig writes a valid config whose API nobody serves: enough for
// everything that fails or finishes before the first request.
func offlineConfig(t *testing.T, orgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "source:\n  base_url: http://127.0.0.1:9\norgs:\n")
	for _, o := range orgs {
		fmt.Fprintf(&b, "  - id: %s\n    token: vt_%s\n", o, o)
	}
	fmt.Fprintf(&b, "start: 2026-01-01T00:00:00Z\nsink:\n  type: local\n  path: %s\ncheckpoint:\n  type: file\n  path: %s\n",
		filepath.Join(dir, "out"), filepath.Join(dir, "state"))
	p := filepath.Join(dir, "vaultsink.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run1 runs one command in-process and returns its output and exit status.
func run1(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), exitStatus(err)
}

// commandPaths lists every command a user can call, as argument lists.
func commandPaths(c *cobra.Command) [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Hidden || c.Name() == cobra.ShellCompRequestCmd {
			return
		}
		out = append(out, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(c, nil)
	return out
}

// TestHelpEverywhere: --help works for every command and subcommand
// without a config, exits 0 and prints the command's own description,
// usage and examples on stdout.
func TestHelpEverywhere(t *testing.T) {
	root := newRoot(&env{stdout: &bytes.Buffer{}, con: newConsole(&bytes.Buffer{})})
	paths := commandPaths(root)
	if len(paths) < 16 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	for _, p := range paths {
		c, _, err := root.Find(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.Join(append([]string{"vaultsink"}, p...), " "), func(t *testing.T) {
			if c.Short == "" || c.Long == "" || c.Example == "" {
				t.Errorf("needs Short, Long and Example: %q / %d bytes / %d bytes", c.Short, len(c.Long), len(c.Example))
			}
			out, errs, code := run1(t, append(append([]string{}, p...), "--help")...)
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			firstLine, _, _ := strings.Cut(strings.TrimSpace(c.Long), "\n")
			for _, want := range []string{firstLine, "Usage:", "Examples:"} {
				if !strings.Contains(out, want) {
					t.Errorf("help does not show %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestHelpWithoutConfig is the user's view of the same: the bare flag
// package printed "Usage of run:" on stderr, and `checkpoint --help`
// failed with "--config is required".
func TestHelpWithoutConfig(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--help"}, {"sync", "-h"}, {"backfill", "--help"}, {"verify", "--help"},
		{"checkpoint", "--help"}, {"checkpoint", "set", "--help"}, {"checkpoint", "list", "-h"},
		{"rewindow", "--help"}, {"check-config", "--help"}, {"help", "backfill"}, {"--help"},
	} {
		out, errs, code := run1(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") || strings.Contains(out+errs, "Usage of") {
			t.Errorf("vaultsink %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
		}
	}
}

// TestUsageErrors: bad flags, arguments and orgs exit 2 with a message
// that names the command; nothing runs.
func TestUsageErrors(t *testing.T) {
	cfg := offlineConfig(t, "org_1", "org_2", "org_3")
	one := offlineConfig(t, "org_1")
	range_ := []string{"--from", "2026-01-01", "--to", "2026-01-02"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sync"}, "vaultsink: sync: --config is required\n"},
		{[]string{"checkpoint", "set", "--config", cfg, "--org", "org_1"}, "vaultsink: checkpoint set: --to is required\n"},
		{[]string{"checkpoint", "show", "--config", cfg}, "vaultsink: checkpoint show: --org is required\n"},
		{[]string{"checkpoint", "reset", "--config", cfg, "--org", "org_1"}, "vaultsink: checkpoint reset: the next sync of org_1 starts over at its start; pass --yes to confirm\n"},
		{[]string{"checkpoint", "show", "--config", cfg, "--org", "org_9"}, `vaultsink: checkpoint show: --org "org_9" is not in the config (its orgs: org_1, org_2, org_3)` + "\n"},
		{[]string{"sync", "--config", cfg, "--org", "org_2,org_9"}, `vaultsink: sync: --org "org_9" is not in the config (its orgs: org_1, org_2, org_3)` + "\n"},
		{append([]string{"backfill", "--config", cfg, "--org", "org_1", "--org", "org_4"}, range_...), `vaultsink: backfill: --org "org_4" is not in the config (its orgs: org_1, org_2, org_3)` + "\n"},
		{append([]string{"verify", "--config", one, "--org", "org_2"}, range_...), `vaultsink: verify: --org "org_2" is not in the config (its orgs: org_1)` + "\n"},
		{append([]string{"backfill", "--config", cfg}, range_...), "vaultsink: backfill: --org or --all-orgs is required\n"},
		{append([]string{"backfill", "--config", cfg, "--org", "org_1", "--all-orgs"}, range_...), "vaultsink: backfill: --org and --all-orgs exclude each other\n"},
		{[]string{"backfill", "--config", cfg, "--all-orgs", "--from", "2026-01-01"}, "vaultsink: backfill: --to is required\n"},
		{[]string{"backfill", "--config", cfg, "--all-orgs", "--from", "2026-01-02", "--to", "2026-01-01"}, "vaultsink: backfill: --to 2026-01-01 is not after --from 2026-01-02\n"},
		{[]string{"verify", "--config", cfg, "--from", "yesterday", "--to", "2026-01-01"}, `vaultsink: verify: --from "yesterday": want RFC 3339 (2026-06-01T10:00:00Z) or a date (2026-06-01)` + "\n"},
		{[]string{"rewindow", "--config", cfg}, "vaultsink: rewindow: --org is required\n"},
		{[]string{"sync", "--config", cfg, "now"}, `vaultsink: sync: unexpected argument "now" (see 'vaultsink sync --help')` + "\n"},
		{[]string{"verify", "--orgs", "x"}, "vaultsink: verify: unknown flag: --orgs (see 'vaultsink verify --help')\n"},
		{[]string{"checkpoint", "frob"}, `vaultsink: checkpoint: unknown subcommand "frob" (see 'vaultsink checkpoint --help')` + "\n"},
		{[]string{"frob"}, `vaultsink: unknown command "frob" for "vaultsink" (see 'vaultsink --help')` + "\n"},
		{[]string{"check-config", "--config", filepath.Join(t.TempDir(), "none.yaml")}, "vaultsink: check-config: config "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errs, code := run1(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.HasPrefix(errs, tc.want) {
				t.Errorf("stderr:\n%s\nwant it to start with:\n%s", errs, tc.want)
			}
			if out != "" {
				t.Errorf("stdout: %q", out)
			}
		})
	}

	// No command, or a checkpoint command without its subcommand: the
	// usage on stderr, exit 2.
	for _, args := range [][]string{{}, {"checkpoint"}} {
		out, errs, code := run1(t, args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, "Usage:") {
			t.Errorf("vaultsink %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
		}
	}
}

// TestSingleDashLongFlags: the flag package this CLI was built on took
// -config as well as --config; scripts that pass it keep working.
func TestSingleDashLongFlags(t *testing.T) {
	cfg := offlineConfig(t, "org_1")
	out, errs, code := run1(t, "check-config", "-config", cfg)
	if code != 0 || !strings.Contains(out, "is valid: 1 org, sink local, checkpoint file, window 1h, schedule") {
		t.Fatalf("check-config -config: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = run1(t, "check-config", "-config="+cfg, "-log-level=debug")
	if code != 0 {
		t.Fatalf("check-config -config=F -log-level=debug: exit %d\n%s%s", code, out, errs)
	}
}

// TestCheckConfigLine: the org count is spelt right and the window is
// written as a config writes it (it said "1 orgs" and "window 1h0m0s").
func TestCheckConfigLine(t *testing.T) {
	for n, want := range map[int]string{1: "1 org,", 3: "3 orgs,"} {
		orgs := []string{"org_1", "org_2", "org_3"}[:n]
		cfg := offlineConfig(t, orgs...)
		out, errs, code := run1(t, "check-config", "--config", cfg)
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "window 1h,") {
			t.Errorf("check-config with %d orgs: exit %d: %q%s", n, code, out, errs)
		}
	}
}

// TestCompletion: `vaultsink completion SHELL` prints each shell's script,
// bash's parses, and the completion it drives knows the command tree.
func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash":       "__start_vaultsink",
		"zsh":        "#compdef vaultsink",
		"fish":       "complete -c vaultsink",
		"powershell": "Register-ArgumentCompleter",
	} {
		out, errs, code := run1(t, "completion", shell)
		if code != 0 || !strings.Contains(out, marker) {
			t.Errorf("completion %s: exit %d, %d bytes without %q\n%s", shell, code, len(out), marker, errs)
		}
		if shell == "bash" {
			if bash, err := exec.LookPath("bash"); err == nil {
				cmd := exec.Command(bash, "-n")
				cmd.Stdin = strings.NewReader(out)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("bash -n on the bash completion: %v\n%s", err, b)
				}
			}
		}
	}
	// What the scripts ask the binary: the flags of backfill, the
	// subcommands of checkpoint.
	for args, want := range map[string][]string{
		"backfill --":   {"--all-orgs", "--concurrency", "--config", "--force", "--from", "--org", "--to"},
		"checkpoint s":  {"set", "show"},
		"verify --verb": {"--verbose"},
	} {
		a := append([]string{cobra.ShellCompRequestCmd}, strings.Split(args, " ")...)
		out, errs, code := run1(t, a...)
		for _, w := range want {
			if code != 0 || !strings.Contains(out, "\n"+w) && !strings.HasPrefix(out, w) {
				t.Errorf("completing %q: exit %d, no %s in:\n%s%s", args, code, w, out, errs)
			}
		}
	}
}

// TestVerboseSpellings: -v on verify is its own (verbose), not the root's
// version flag, in every spelling it had.
func TestVerboseSpellings(t *testing.T) {
	root := newRoot(&env{stdout: &bytes.Buffer{}, con: newConsole(&bytes.Buffer{})})
	verify, _, err := root.Find([]string{"verify"})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-v"}, {"--v"}, {"--verbose"}} {
		if err := verify.ParseFlags(args); err != nil {
			t.Fatalf("verify %v: %v", args, err)
		}
		if v, _ := verify.Flags().GetBool("verbose"); !v {
			t.Errorf("verify %v: not verbose", args)
		}
		_ = verify.Flags().Set("verbose", "false")
	}
}
