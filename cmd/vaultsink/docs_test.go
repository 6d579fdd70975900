package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMECommands checks that every vaultsink command line in the README
// names a real subcommand and only flags that subcommand defines, so the
// docs cannot drift from the CLI.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmdLine := regexp.MustCompile("(?:bin/)?vaultsink ((?:checkpoint [a-z|]+|[a-z-]+)(?: [^`|\\n]*)?)")
	checked := 0
	for _, m := range cmdLine.FindAllStringSubmatch(string(readme), -1) {
		fields := strings.Fields(m[1])
		sub := []string{fields[0]}
		rest := fields[1:]
		if fields[0] == "checkpoint" {
			sub = append(sub, strings.Split(fields[1], "|")[0])
			rest = fields[2:]
		}
		switch sub[0] {
		case "version", "help":
			continue
		case "run", "sync", "backfill", "verify", "checkpoint", "check-config":
		default:
			// Prose such as "vaultsink mirrors": only known words are commands.
			continue
		}
		var stderr bytes.Buffer
		_ = Run(context.Background(), append(sub, "-h"), &stderr, &stderr)
		usage := stderr.String()
		if !strings.Contains(usage, "-config") {
			t.Errorf("README shows `vaultsink %s`, which has no usage text:\n%s", strings.Join(sub, " "), usage)
			continue
		}
		for _, f := range rest {
			f = strings.Trim(f, "[]`")
			if !strings.HasPrefix(f, "-") {
				continue
			}
			name := strings.TrimLeft(strings.SplitN(f, "=", 2)[0], "-")
			if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `\b`).MatchString(usage) {
				t.Errorf("README: `vaultsink %s` uses flag --%s, which it does not define", strings.Join(sub, " "), name)
			}
			checked++
		}
	}
	if checked < 15 {
		t.Fatalf("only %d flags checked: the README parser found too little", checked)
	}
}

// TestREADMEMetrics checks that every metric the README lists is registered
// somewhere in the code.
func TestREADMEMetrics(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	err = filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".tools" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`(vaultsink_[a-z_]+)`").FindAllStringSubmatch(string(readme), -1)
	if len(names) < 20 {
		t.Fatalf("only %d metrics found in the README", len(names))
	}
	for _, n := range names {
		if !strings.Contains(code.String(), `"`+n[1]+`"`) {
			t.Errorf("README lists metric %s, which no code registers", n[1])
		}
	}
}
