package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// sinkUnderTest is one of the three sinks: its config section, a reader
// of what it holds, and a way to damage it (what verify must then report).
type sinkUnderTest struct {
	name string
	make func(t *testing.T) (sink string, read func(*testing.T, *e2e) map[string][]string, damage func(*testing.T, *e2e))
}

var sinksUnderTest = []sinkUnderTest{
	{"local", func(t *testing.T) (string, func(*testing.T, *e2e) map[string][]string, func(*testing.T, *e2e)) {
		read := func(t *testing.T, e *e2e) map[string][]string { return idsByOrg(t, duck(t), e.outDir()) }
		damage := func(t *testing.T, e *e2e) {
			// A unit copied under another name beside it: its rows twice.
			var files []string
			_ = filepath.WalkDir(e.outDir(), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") && !strings.Contains(p, "/_") {
					files = append(files, p)
				}
				return nil
			})
			slices.Sort(files)
			src := files[len(files)/2]
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(strings.Replace(src, ".parquet", "-copy.parquet", 1), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return "", read, damage
	}},
	{"s3", func(t *testing.T) (string, func(*testing.T, *e2e) map[string][]string, func(*testing.T, *e2e)) {
		srv := s3test.Versity(t)
		read := func(t *testing.T, e *e2e) map[string][]string {
			dir, _ := s3test.Download(t, srv, "vaultterm/events")
			return idsByOrg(t, duck(t), dir)
		}
		damage := func(t *testing.T, e *e2e) {
			ctx := context.Background()
			cl, err := s3client.NewClient(ctx, srv.ClientConfig())
			if err != nil {
				t.Fatal(err)
			}
			_, keys := s3test.Download(t, srv, "vaultterm/events")
			src := keys[len(keys)/2]
			if !strings.HasPrefix(src, "vaultterm/events/") {
				src = "vaultterm/events/" + src
			}
			dst := strings.Replace(src, ".parquet", "-copy.parquet", 1)
			if _, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(dst),
				CopySource: aws.String(srv.Bucket + "/" + src)}); err != nil {
				t.Fatal(err)
			}
		}
		return s3YAML(srv, "s3", "  prefix: vaultterm/events\n"), read, damage
	}},
	{"bigquery", func(t *testing.T) (string, func(*testing.T, *e2e) map[string][]string, func(*testing.T, *e2e)) {
		srv := bqtest.Start(t, "vaultsink-e2e")
		read := func(t *testing.T, e *e2e) map[string][]string { return bqIDs(t, srv) }
		damage := func(t *testing.T, e *e2e) {
			// A row stored twice.
			err := srv.Exec(context.Background(), `INSERT INTO "audit"."vaultterm_events" SELECT * FROM "audit"."vaultterm_events" WHERE org_id = 'org_1' LIMIT 1`)
			if err != nil {
				t.Fatal(err)
			}
		}
		return bqYAML(t, srv), read, damage
	}},
}

// TestE2EArchiveNeverShrinksKeepsOnce: on every sink, an id repeated later
// in its window or in the next one is stored once; re-pulls by a token
// that lost part of its scope, or after a retention cut and a checkpoint
// reset, remove nothing. All three sinks end with the same rows: the truth.
func TestE2EArchiveNeverShrinksKeepsOnce(t *testing.T) {
	for _, s := range sinksUnderTest {
		t.Run(s.name, func(t *testing.T) {
			sink, read, _ := s.make(t)
			e := newE2E(t, e2eOpts{rate: 150, hours: 12, faults: "redeliver=0.05", sink: sink, extra: "lookback: 3\n"})
			e.mustRun("sync")
			e.expectTruth(t, read(t, e))

			e.sim.SetVisibleShare("org_1", 0.6)
			if out := e.mustRun("sync"); !strings.Contains(out, "vanished=") {
				t.Fatalf("re-pulls of a partial API did not report the vanished events:\n%s", out)
			}
			e.expectTruth(t, read(t, e))

			e.sim.SetRetention("org_2", e.from.Add(5*time.Hour+30*time.Minute))
			e.mustRun("checkpoint", "reset", "--org", "org_2", "--yes")
			e.mustRun("sync")
			e.expectTruth(t, read(t, e))
		})
	}
}

// editConfig replaces old with new in the e2e's config file.
func (e *e2e) editConfig(old, new string) {
	e.t.Helper()
	data, err := os.ReadFile(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		e.t.Fatalf("config has no %q", old)
	}
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(data), old, new, 1)), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// TestE2EOperatorMatrix: on each sink, a sequence of what operators do —
// a later start then an earlier one and the backfill it asks for, a window
// change refused then rewindowed, a checkpoint reset, a forced backfill, a
// token that lost part of its scope for a while — ends with the sink
// holding exactly the truth, and verify agreeing; then verify reports a
// difference as soon as the test damages the sink on purpose.
func TestE2EOperatorMatrix(t *testing.T) {
	for _, s := range sinksUnderTest {
		t.Run(s.name, func(t *testing.T) {
			sink, read, damage := s.make(t)
			e := newE2E(t, e2eOpts{rate: 150, hours: 24, sink: sink, extra: "lookback: 1\n"})
			from := e.from.Format(time.RFC3339)
			later := e.from.Add(6 * time.Hour)
			e.editConfig("start: "+from, "start: "+later.Format(time.RFC3339))
			e.mustRun("sync")
			e.editConfig("start: "+later.Format(time.RFC3339), "start: "+from)
			if _, errs, err := e.run(context.Background(), "sync"); err != nil || !strings.Contains(errs, "vaultsink backfill") {
				t.Fatalf("an earlier start: %v, want a WARN with the backfill command\n%s", err, errs)
			}
			for _, org := range e.sim.Orgs() {
				e.mustRun("backfill", "--org", org, "--from", from, "--to", later.Format(time.RFC3339))
			}
			e.expectTruth(t, read(t, e))

			// 1h -> 2h: refused, then rewindowed.
			start2h := e.from.Truncate(2 * time.Hour).Format(time.RFC3339)
			e.editConfig("window: 1h", "window: 2h")
			e.editConfig("start: "+from, "start: "+start2h)
			if out, _, err := e.run(context.Background(), "sync"); err == nil || !strings.Contains(out, "rewindow") {
				t.Fatalf("sync after a window change: %v\n%s", err, out)
			}
			for _, org := range e.sim.Orgs() {
				e.mustRun("rewindow", "--org", org)
			}
			e.mustRun("sync")
			e.expectTruth(t, read(t, e))

			e.mustRun("checkpoint", "reset", "--org", "org_2", "--yes")
			e.sim.SetVisibleShare("org_3", 0.5)
			e.mustRun("sync")
			e.mustRun("backfill", "--org", "org_1", "--from", start2h, "--to", e.to.Format(time.RFC3339), "--force")
			e.sim.SetVisibleShare("org_3", 1)
			e.mustRun("sync")
			e.expectTruth(t, read(t, e))
			vargs := []string{"verify", "--from", start2h, "--to", e.to.Format(time.RFC3339)}
			if out := e.mustRun(vargs...); !strings.Contains(out, "0 missing, 0 extra, 0 duplicated") {
				t.Fatalf("verify of the intact archive:\n%s", out)
			}
			damage(t, e)
			out, _, err := e.run(context.Background(), vargs...)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitDiffers || !strings.Contains(out, "duplicated") {
				t.Fatalf("verify of a damaged archive: %v, want exit 3 reporting duplicated rows\n%s", err, out)
			}
		})
	}
}
