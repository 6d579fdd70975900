package check_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/internal/check/checktest"
)

func TestDir(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(root, "full")
	if err := os.Mkdir(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, ".lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		status     check.Status
		msg        string
	}{
		{"existing", full, check.OK, "sect.key " + full + ": directory exists, readable and writable"},
		{"empty", root, check.OK, "directory exists"},
		{"missing", filepath.Join(root, "a", "b"), check.OK, "sect.key " + filepath.Join(root, "a", "b") + " does not exist yet; vaultsink creates it on first use (" + root + " is writable)"},
		{"a file", file, check.Fail, "sect.key " + file + " is not a directory"},
		{"under a file", filepath.Join(file, "sub"), check.Fail, "cannot be created: " + file + " is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := checktest.Tree(t, root)
			r := check.Dir(tc.path, "sect.key", ".lock")
			if r.Status != tc.status || !strings.Contains(r.Msg, tc.msg) {
				t.Fatalf("Dir(%s) = %s %q, want %s and %q", tc.path, r.Status, r.Msg, tc.status, tc.msg)
			}
			if r.Status == check.Fail && !strings.Contains(r.Hint, "sect.key") {
				t.Fatalf("the hint %q does not name the key", r.Hint)
			}
			if after := checktest.Tree(t, root); !slices.Equal(before, after) {
				t.Fatalf("Dir changed the tree:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestDirNotWritable needs a user the permission bits bind (not root).
func TestDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root is not bound by permission bits")
	}
	root := t.TempDir()
	ro := filepath.Join(root, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	if r := check.Dir(ro, "sect.key"); r.Status != check.Fail || !strings.Contains(r.Msg, "cannot create a file in it") {
		t.Fatalf("read-only directory: %s %q", r.Status, r.Msg)
	}
	if r := check.Dir(filepath.Join(ro, "sub"), "sect.key"); r.Status != check.Fail || !strings.Contains(r.Msg, "is not writable") {
		t.Fatalf("missing directory under a read-only one: %s %q", r.Status, r.Msg)
	}
}
