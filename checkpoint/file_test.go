package checkpoint_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/checkpoint/checkpointtest"
)

func openStore(t *testing.T, dir string) *checkpoint.FileStore {
	t.Helper()
	s, err := checkpoint.OpenFileStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFileConformance(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) checkpoint.Store {
		return openStore(t, filepath.Join(t.TempDir(), "state"))
	})
}

func TestFileRegistered(t *testing.T) {
	c, err := checkpoint.New("file")
	if err != nil {
		t.Fatal(err)
	}
	fc, ok := c.(*checkpoint.FileConfig)
	if !ok {
		t.Fatalf("checkpoint.New(file) = %T", c)
	}
	fc.SetDefaults()
	if fc.Path != "./state" {
		t.Fatalf("default path %q", fc.Path)
	}
	if err := fc.Validate(); err != nil {
		t.Fatal(err)
	}
	fc.Path = filepath.Join(t.TempDir(), "st")
	s, err := fc.Build(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(context.Background(), checkpointtest.Full("o")); err != nil {
		t.Fatal(err)
	}
	if err := (&checkpoint.FileConfig{Path: "  "}).Validate(); err == nil || !strings.Contains(err.Error(), "path") {
		t.Fatalf("blank path: %v", err)
	}
}

func TestFilePermissionsAndLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openStore(t, dir)
	ctx := context.Background()
	if _, err := s.Put(ctx, checkpointtest.Full("org_1")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, want 0700", st.Mode().Perm())
	}
	fst, err := os.Stat(filepath.Join(dir, "org_1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fst.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, want 0600", fst.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "org_1.json" && n != ".lock" {
			t.Errorf("unexpected file %s", n)
		}
	}
	// A stray temp file of a crashed Put is not an org.
	if err := os.WriteFile(filepath.Join(dir, ".org_2.json.tmp-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	orgs, err := s.List(ctx)
	if err != nil || len(orgs) != 1 || orgs[0] != "org_1" {
		t.Fatalf("List = %v, %v; want [org_1]", orgs, err)
	}
}

func TestFileCorruptIsLoud(t *testing.T) {
	ctx := context.Background()
	for name, content := range map[string]string{
		"empty":      "",
		"truncated":  `{"org_id":"org_1","end":"2026-06-01T10:00:00Z"`,
		"not json":   "hello",
		"wrong org":  `{"org_id":"org_2","end":"2026-06-01T10:00:00Z"}`,
		"bad time":   `{"org_id":"org_1","end":"yesterday"}`,
		"two values": `{"org_id":"org_1"} {"org_id":"org_1"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			p := filepath.Join(dir, "org_1.json")
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Get(ctx, "org_1")
			if err == nil || errors.Is(err, checkpoint.ErrNotFound) {
				t.Fatalf("Get = %v, want a loud error that is not ErrNotFound", err)
			}
			for _, want := range []string{p, "vaultsink checkpoint reset --config <config> --org org_1 --yes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			// Nor may a blind create overwrite it.
			if _, err := s.Put(ctx, checkpointtest.Full("org_1")); !errors.Is(err, checkpoint.ErrConflict) {
				t.Fatalf("Put over a corrupt file with empty version = %v, want ErrConflict", err)
			}
		})
	}
}

func TestFileUnreadableIsLoud(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads 0000 files; use a directory in place of the file instead.
		dir := t.TempDir()
		s := openStore(t, dir)
		if err := os.Mkdir(filepath.Join(dir, "org_1.json"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(context.Background(), "org_1"); err == nil || errors.Is(err, checkpoint.ErrNotFound) ||
			!strings.Contains(err.Error(), "checkpoint reset") {
			t.Fatalf("Get = %v, want a loud error with a hint", err)
		}
		return
	}
	dir := t.TempDir()
	s := openStore(t, dir)
	p := filepath.Join(dir, "org_1.json")
	if err := os.WriteFile(p, []byte("{}"), 0o000); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "org_1"); err == nil || errors.Is(err, checkpoint.ErrNotFound) ||
		!strings.Contains(err.Error(), "checkpoint reset") {
		t.Fatalf("Get = %v, want a loud error with a hint", err)
	}
}

func TestFileBadOrgNames(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	for _, org := range []string{"", ".", "..", "a/b", `a\b`, ".hidden"} {
		if _, err := s.Get(ctx, org); err == nil || errors.Is(err, checkpoint.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want an error", org, err)
		}
		if _, err := s.Put(ctx, checkpoint.Checkpoint{Org: org}); err == nil {
			t.Errorf("Put(%q) succeeded", org)
		}
	}
}

// Two stores on one directory stand in for two processes: each has its own
// mutex, so only the flock and the content hash keep them apart.
func TestFileTwoStoresOneDirectory(t *testing.T) {
	dir := t.TempDir()
	a, b := openStore(t, dir), openStore(t, dir)
	ctx := context.Background()
	v0, err := a.Put(ctx, checkpointtest.Full("org_1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "org_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != v0 {
		t.Fatalf("b sees version %q, a wrote %q", got.Version, v0)
	}

	const rounds = 20
	var wg sync.WaitGroup
	wins := make([]int, 2)
	for i, s := range []*checkpoint.FileStore{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				cp, err := s.Get(ctx, "org_1")
				if err != nil {
					t.Error(err)
					return
				}
				cp.Windows++
				cp.LastError = "writer " + string(rune('a'+i))
				if _, err := s.Put(ctx, cp); err == nil {
					wins[i]++
				} else if !errors.Is(err, checkpoint.ErrConflict) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	final, err := a.Get(ctx, "org_1")
	if err != nil {
		t.Fatal(err)
	}
	// Every successful Put incremented from the value it read, so no update
	// was lost exactly when the count equals the number of wins.
	if want := checkpointtest.Full("org_1").Windows + int64(wins[0]+wins[1]); final.Windows != want {
		t.Fatalf("windows = %d after %d+%d wins, want %d (a lost update)", final.Windows, wins[0], wins[1], want)
	}
}

// TestFileRemovesStaleTemps: a writer killed between creating its temp file
// and renaming it leaves the temp behind. The checkpoint itself is intact
// (Get ignores the temp), and the next Put of that org replaces the temp
// without looking at any other file.
func TestFileRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	v0, err := s.Put(ctx, checkpointtest.Full("org_1"))
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".org_1.json.tmp")
	other := filepath.Join(dir, ".org_2.json.tmp")
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("{half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, "org_1")
	if err != nil || got.Version != v0 {
		t.Fatalf("Get beside a stale temp = version %q, %v; want the last written %q", got.Version, err, v0)
	}
	if orgs, err := s.List(ctx); err != nil || len(orgs) != 1 {
		t.Fatalf("List = %v, %v; want [org_1]", orgs, err)
	}
	got.Windows = 77
	if _, err := s.Put(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file of org_1 still there: %v", err)
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "{half" {
		t.Fatalf("org_2's temp file must be left to org_2's own Put: %q, %v", b, err)
	}
	if got, err := s.Get(ctx, "org_1"); err != nil || got.Windows != 77 {
		t.Fatalf("after the Put: windows %d, %v", got.Windows, err)
	}
	// org_2's own Put replaces its temp; nothing but checkpoints and the
	// lock remain.
	if _, err := s.Put(ctx, checkpointtest.Full("org_2")); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "org_1.json" && n != "org_2.json" && n != ".lock" {
			t.Errorf("unexpected file %s", n)
		}
	}
}

// TestFileStaleTempIsALink: whatever was left at the temp file's name, a
// Put writes a new file there and never through it.
func TestFileStaleTempIsALink(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, ".org_1.json.tmp")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), checkpointtest.Full("org_1")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep" {
		t.Fatalf("the link's target was written: %q, %v", b, err)
	}
	st, err := os.Lstat(filepath.Join(dir, "org_1.json"))
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Fatalf("org_1.json: %v, %v", st, err)
	}
}

// TestFileRemovesLegacyTemps: temp files of earlier versions
// (.<org>.json.tmp-<random>) left by crashed writers are removed when the
// store is opened, since no Put looks for them any more.
func TestFileRemovesLegacyTemps(t *testing.T) {
	dir := t.TempDir()
	legacy := []string{filepath.Join(dir, ".org_1.json.tmp-123456"), filepath.Join(dir, ".org_2.json.tmp-99")}
	for _, p := range legacy {
		if err := os.WriteFile(p, []byte("{half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(dir, "org_3.json.tmp-1") // not a temp file name of this store
	if err := os.WriteFile(keep, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir)
	for _, p := range legacy {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("%s removed: %v", keep, err)
	}
}
