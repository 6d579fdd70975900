package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
)

func bqYAML(t *testing.T, srv *bqtest.Server) string {
	return fmt.Sprintf(`  type: bigquery
  project: %s
  dataset: audit
  location: US
  endpoint: %s
  without_authentication: true
  group_delay: 100ms
  temp_dir: %s
`, srv.Project(), srv.URL(), t.TempDir())
}

// bqIDs reads the target table straight from the stand-in's engine.
func bqIDs(t *testing.T, srv *bqtest.Server) map[string][]string {
	t.Helper()
	rows, err := srv.Query(context.Background(), `SELECT org_id, event_id FROM "audit"."vaultterm_events" ORDER BY org_id, timestamp, event_id`)
	if err != nil {
		t.Fatal(err)
	}
	return scanIDs(t, rows)
}

func (e *e2e) expectTruth(t *testing.T, got map[string][]string) {
	t.Helper()
	for _, org := range e.sim.Orgs() {
		if want := e.sim.EventIDs(org, e.from, e.to); !slices.Equal(got[org], want) {
			t.Fatalf("%s: the sink holds %d ids, truth %d (or they differ)", org, len(got[org]), len(want))
		}
	}
}

func TestE2EBigQuery(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	e := newE2E(t, e2eOpts{rate: 150, sink: bqYAML(t, srv)})
	e.mustRun("sync")
	e.expectTruth(t, bqIDs(t, srv))

	// Batching: 3 orgs x 72 hourly windows went up in far fewer jobs than windows.
	loads, dml := srv.LoadJobs("audit", "vaultterm_events"), srv.DMLJobs("audit", "vaultterm_events")
	if dml == 0 || dml > 3*5 {
		t.Fatalf("%d DML jobs (and %d loads) for 216 windows: batching did not happen", dml, loads)
	}

	// A second sync runs no job; a checkpoint-less rerun (a crash after the
	// replace, before the checkpoint) replaces every slice: same rows.
	_, q0 := srv.Totals()
	e.mustRun("sync")
	if _, q1 := srv.Totals(); q1 != q0 {
		t.Fatalf("a sync with nothing to do ran %d query jobs", q1-q0)
	}
	if err := os.RemoveAll(filepath.Join(e.dir, "state")); err != nil {
		t.Fatal(err)
	}
	e.mustRun("sync")
	e.expectTruth(t, bqIDs(t, srv))

	out := e.mustRun("verify", "--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339))
	if !strings.Contains(out, "0 missing, 0 extra, 0 duplicated") {
		t.Fatalf("verify:\n%s", out)
	}
}

// TestE2EBigQueryCrashBetweenLoadAndReplace: the replace fails after the
// load (as if the process died there); the checkpoint stays; a rerun ends
// with exactly the truth.
func TestE2EBigQueryCrashBetweenLoadAndReplace(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	e := newE2E(t, e2eOpts{rate: 100, hours: 30, sink: bqYAML(t, srv)})
	srv.Inject(bqtest.DMLJob, bqtest.FailJob, "invalidQuery", 1)
	if _, _, err := e.run(context.Background(), "sync"); err == nil {
		t.Fatal("the injected DML failure should fail the sync")
	}
	e.mustRun("sync")
	e.expectTruth(t, bqIDs(t, srv))
}

func TestE2EBigQueryLookbackLateEvents(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	var simNow time.Time
	clock := func() time.Time {
		if simNow.IsZero() {
			return time.Now()
		}
		return simNow
	}
	e := newE2E(t, e2eOpts{rate: 300, hours: 12, faults: "late=0.2", now: clock, extra: "lookback: 4\n", sink: bqYAML(t, srv)})
	e.mustRun("sync")
	org := "org_1"
	want := e.sim.EventIDs(org, e.from, e.to)
	if got := bqIDs(t, srv)[org]; len(got) >= len(want) {
		t.Fatalf("late events visible at once (%d of %d): the test proves nothing", len(got), len(want))
	}
	simNow = time.Now().Add(3 * time.Hour)
	e.mustRun("sync")
	e.expectTruth(t, bqIDs(t, srv))
}

// TestE2EBigQueryTwoShards: two daemons' worth of vaultsink (static shards:
// org_1 and org_2 in one, org_3 in the other, each with its own state)
// sync into one table at the same time. BigQuery cancels one of two
// transactions that change a table at once; both runs retry and end with
// exactly the truth.
func TestE2EBigQueryTwoShards(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	srv.SetStatementLatency(50 * time.Millisecond) // transactions overlap
	e := newE2E(t, e2eOpts{rate: 100, hours: 24, sink: bqYAML(t, srv)})
	base, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	shard := func(name string, keep func(org string) bool) string {
		var out []string
		lines := strings.Split(string(base), "\n")
		for i := 0; i < len(lines); i++ {
			if org, ok := strings.CutPrefix(lines[i], "  - id: "); ok && !keep(org) {
				i++ // and its token_file line
				continue
			}
			out = append(out, strings.Replace(lines[i], filepath.Join(e.dir, "state"), filepath.Join(e.dir, "state-"+name), 1))
			if lines[i] == "  group_delay: 100ms" {
				out = append(out, "  max_batch: 2") // many small commits: the shards' transactions meet
			}
		}
		p := filepath.Join(e.dir, name+".yaml")
		if err := os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgs := []string{shard("a", func(o string) bool { return o != "org_3" }), shard("b", func(o string) bool { return o == "org_3" })}
	errs := make(chan error, len(cfgs))
	for _, c := range cfgs {
		go func() {
			var out, errb strings.Builder
			err := Run(context.Background(), []string{"sync", "--config", c}, &out, &errb)
			if err != nil {
				err = fmt.Errorf("sync --config %s: %w\n%s%s", filepath.Base(c), err, out.String(), errb.String())
			}
			errs <- err
		}()
	}
	for range cfgs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	e.expectTruth(t, bqIDs(t, srv))
	conflicts, _ := srv.Conflicts()
	t.Logf("transactions cancelled by a concurrent update (and retried): %d", conflicts)
}
