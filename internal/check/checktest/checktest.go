// Package checktest holds the assertions the tests of check findings
// share.
package checktest

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/internal/check"
)

// Expect fails t unless rs are, in order, the findings want describes:
// each "<status> <text>", the status as it prints ("ok", "warn", "FAIL")
// and text a part of the message.
func Expect(t testing.TB, rs []check.Result, want ...string) {
	t.Helper()
	if len(rs) != len(want) {
		t.Fatalf("%d findings, want %d: %+v", len(rs), len(want), rs)
	}
	for i, r := range rs {
		status, msg, _ := strings.Cut(want[i], " ")
		if r.Status.String() != status || !strings.Contains(r.Msg, msg) {
			t.Errorf("finding %d: %s %q, want %s %q", i, r.Status, r.Msg, status, msg)
		}
	}
}

// Find returns the first of rs whose message holds text.
func Find(t testing.TB, rs []check.Result, text string) check.Result {
	t.Helper()
	for _, r := range rs {
		if strings.Contains(r.Msg, text) {
			return r
		}
	}
	t.Fatalf("no finding %q in %+v", text, rs)
	return check.Result{}
}

// Tree lists every path under dir, dir included, in lexical order: two
// lists that differ show what a check created or removed.
func Tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
