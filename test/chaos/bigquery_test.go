package chaos_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
)

// TestChaosBigQuery is the chaos run against the BigQuery REST stand-in
// (started in this process; the vaultsink child talks to its URL). Kills
// land between a load job and its MERGE, and between a job's insert and
// its completion: the deterministic job ids make the reruns converge.
func TestChaosBigQuery(t *testing.T) {
	t.Parallel()
	kills := envInt("VAULTSINK_CHAOS_KILLS", 10)
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0xb9))
	srv := bqtest.Start(t, "chaos-project")
	const window = time.Hour
	from, to, lateDelay, visible := chaosHistory(window, 8)
	sim := startSim(t, simOpts{seed: seed%1000 + 1, orgs: 2, rate: 1500, from: from, to: to,
		faults: chaosFaults, lateDelay: lateDelay, latency: 2 * time.Millisecond})
	dir := t.TempDir()
	// The sink does not create temp_dir; a missing one fails every window.
	if err := os.MkdirAll(filepath.Join(dir, "bqtmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := chaosConfig(t, dir, sim, window, 200, "  type: bigquery\n  project: chaos-project\n  dataset: audit\n  endpoint: "+srv.URL()+
		"\n  location: US\n  without_authentication: true\n  temp_dir: "+filepath.Join(dir, "bqtmp"), "")

	f := chaos(t, cfg, sim, kills, rng, window, 8, 2*time.Second)
	if d := time.Until(visible); d > 0 {
		t.Logf("waiting %s for the last late events to become visible", d.Round(time.Second))
		time.Sleep(d + time.Second)
	}
	finish(t, cfg, sim, &f)
	rows, err := srv.Query(context.Background(), `SELECT org_id, event_id, count(*) FROM "audit"."vaultterm_events" GROUP BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	compareTruth(t, scanCounts(t, rows), sim.truth(t), &f)
	loads, queries := srv.Totals()
	t.Logf("chaos figures (bigquery): %v; jobs: %d loads, %d queries", f, loads, queries)
	if f.totalKills() < kills {
		t.Fatalf("only %d kills, want %d", f.totalKills(), kills)
	}
}
