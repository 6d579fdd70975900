package checkpoint_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/check/checktest"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// TestFileCheck: a missing directory is to be created and is not; an
// existing one has its checkpoints read, and one that does not parse is
// a FAIL naming it and the reset command.
func TestFileCheck(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	cfg := &checkpoint.FileConfig{Path: dir}
	checktest.Expect(t, cfg.Check(ctx, "checkpoint"), "ok checkpoint.path "+dir+" does not exist yet")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the check created %s (%v)", dir, err)
	}

	st, err := checkpoint.OpenFileStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, checkpoint.Checkpoint{Org: "good"}); err != nil {
		t.Fatal(err)
	}
	checktest.Expect(t, cfg.Check(ctx, "checkpoint"),
		"ok directory exists, readable and writable", "ok flock works", "ok 1 checkpoints read (good)")
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	rs := cfg.Check(ctx, "checkpoint")
	checktest.Expect(t, rs, "ok directory exists", "ok flock works", "FAIL checkpoint of org bad at "+filepath.Join(dir, "bad.json")+" is unreadable")
	if !strings.Contains(rs[2].Msg, "checkpoint reset --config <config> --org bad") {
		t.Fatalf("no repair command in %q", rs[2].Msg)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Fatalf("the check changed %s: %v, then %v", dir, before, after)
	}
}

// TestS3Check: against versitygw the store's compare-and-swap works and
// the scratch checkpoint is gone afterwards; a missing bucket is a FAIL.
func TestS3Check(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Versity(t)
	cfg := &checkpoint.S3Config{ClientConfig: srv.ClientConfig(), Bucket: srv.Bucket}
	cfg.SetDefaults()
	checktest.Expect(t, cfg.Check(ctx, "checkpoint"),
		"ok bucket vaultsink-test: exists",
		"ok s3://vaultsink-test/vaultsink/state/: 0 checkpoints read",
		"ok compare-and-swap works")
	if keys := s3test.Keys(t, srv); len(keys) != 0 {
		t.Fatalf("the check left %v", keys)
	}

	cfg.Bucket = "nope"
	checktest.Expect(t, cfg.Check(ctx, "checkpoint"), "FAIL bucket nope does not exist")
}
