package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// userDocs is the README and the guides in docs/ (not the generated CLI
// reference), the text a user copies commands and metric names from.
func userDocs(t *testing.T) []byte {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, f := range append([]string{"../../README.md"}, files...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestREADMECommands checks that every vaultsink command line in the README
// names a real command and only flags that command defines, so the docs
// cannot drift from the CLI. "checkpoint list|show|set" lines may use a
// flag any of the alternatives defines.
func TestREADMECommands(t *testing.T) {
	readme := userDocs(t)
	root := newRoot(&env{stdout: io.Discard, con: newConsole(io.Discard)})
	cmdLine := regexp.MustCompile("(?:bin/)?vaultsink ((?:checkpoint [a-z|]+|[a-z-]+)(?: [^`|\\n]*)?)")
	checked := 0
	for _, m := range cmdLine.FindAllStringSubmatch(string(readme), -1) {
		fields := strings.Fields(m[1])
		var cmds []*cobra.Command
		rest := fields[1:]
		alts := []string{""}
		if fields[0] == "checkpoint" && len(fields) > 1 {
			alts, rest = strings.Split(fields[1], "|"), fields[2:]
		}
		for _, alt := range alts {
			c, args, err := root.Find(strings.Fields(fields[0] + " " + alt))
			if err == nil && c != root && len(args) == 0 {
				cmds = append(cmds, c)
			}
		}
		if len(cmds) == 0 {
			// Prose such as "vaultsink mirrors": only commands are checked.
			continue
		}
		for _, f := range rest {
			f = strings.Trim(f, "[]`")
			if !strings.HasPrefix(f, "-") {
				continue
			}
			name := strings.TrimLeft(strings.SplitN(f, "=", 2)[0], "-")
			if !slices.ContainsFunc(cmds, func(c *cobra.Command) bool {
				return c.Flags().Lookup(name) != nil || len(name) == 1 && c.Flags().ShorthandLookup(name) != nil
			}) {
				t.Errorf("README: `vaultsink %s` uses flag --%s, which it does not define", m[1], name)
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
	readme := userDocs(t)
	var code strings.Builder
	err := filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
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
