package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// maxRSS is what one vaultsink process may use whatever an org's input:
// half the memory limit of the shipped Deployment.
const maxRSS = 256 << 20

// memSink is one sink under the memory test: the config section, and how
// many quarantined records it holds for org in the end.
type memSink struct {
	name        string
	section     func(t *testing.T, e *env) string
	quarantined func(t *testing.T, e *env, org string) int
	files       func(t *testing.T, e *env) int // objects or files written, -1: not counted
}

func memSinks() []memSink {
	countLines := func(t *testing.T, root string) int {
		t.Helper()
		n := 0
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".jsonl") {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				n++
			}
			if err := sc.Err(); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			return nil
		})
		return n
	}
	countFiles := func(root string) int {
		n := 0
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
				n++
			}
			return nil
		})
		return n
	}
	var s3srv = map[*env]*s3test.Server{}
	var bqsrv = map[*env]*bqtest.Server{}
	return []memSink{
		{
			name:        "local",
			section:     func(t *testing.T, e *env) string { return "  type: local\n  path: " + e.out + "\n" },
			quarantined: func(t *testing.T, e *env, _ string) int { return countLines(t, e.out) },
			files:       func(t *testing.T, e *env) int { return countFiles(e.out) },
		},
		{
			name: "s3",
			section: func(t *testing.T, e *env) string {
				srv := s3test.Versity(t)
				s3srv[e] = srv
				return "  type: s3\n  prefix: vaultterm/events\n  part_size: 5242880\n" + srv.YAML("  ")
			},
			quarantined: func(t *testing.T, e *env, _ string) int {
				return countLines(t, filepath.Join(s3srv[e].DataDir, s3srv[e].Bucket))
			},
			files: func(t *testing.T, e *env) int { return countFiles(filepath.Join(s3srv[e].DataDir, s3srv[e].Bucket)) },
		},
		{
			name: "bigquery",
			section: func(t *testing.T, e *env) string {
				srv := bqtest.Start(t, "vaultsink-mem")
				bqsrv[e] = srv
				tmp := filepath.Join(e.dir, "bqtmp")
				if err := os.MkdirAll(tmp, 0o700); err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("  type: bigquery\n  project: %s\n  dataset: audit\n  location: US\n  endpoint: %s\n"+
					"  without_authentication: true\n  temp_dir: %s\n", srv.Project(), srv.URL(), tmp)
			},
			quarantined: func(t *testing.T, e *env, org string) int {
				rows, err := bqsrv[e].Query(context.Background(), `SELECT count(*) FROM "audit"."vaultterm_events_quarantine" WHERE org_id = ?`, org)
				if err != nil {
					return 0 // no quarantine table: nothing quarantined
				}
				defer rows.Close()
				n := 0
				for rows.Next() {
					if err := rows.Scan(&n); err != nil {
						t.Fatal(err)
					}
				}
				return n
			},
			files: func(t *testing.T, e *env) int {
				loads, _ := bqsrv[e].Totals()
				return loads
			},
		},
	}
}

// TestMemoryBound: a day of over a million events that all end up
// quarantined, through each sink, in one process whose peak RSS must stay
// under maxRSS. Two ways to get there:
//
//   - mixedup: org_2 configured with org_1's token. Every record names
//     another org; the day is walked, found foreign and refused before its
//     commit (nothing written), the sync exits 1 naming org_1.
//   - badts: every event's timestamp is unparseable. The day commits with
//     every record in the quarantine, each kept once.
//
// The S3 sink held a window's whole quarantine in memory (3.8 GB on the
// mixed-up day, OOM-killed in the shipped Deployment's 512 MiB).
func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("a day of over a million events per case")
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	for _, snk := range memSinks() {
		for _, kind := range []string{"mixedup", "badts"} {
			t.Run(snk.name+"/"+kind, func(t *testing.T) {
				cfg := vaultsim.Config{Seed: 71, Orgs: 2, From: day, To: day.Add(24 * time.Hour), Rate: 42000}
				if kind == "badts" {
					cfg.Orgs = 1
					cfg.Faults.BadTimestamp = 1
				}
				sim := vaultsim.Start(t, cfg)
				toks := simTokens(sim)
				org := "org_1"
				if kind == "mixedup" {
					org = "org_2"
					toks = map[string]string{org: toks["org_1"]}
				}
				events := len(sim.EventIDs("org_1", day, day.Add(24*time.Hour)))
				if events < 1_000_000 {
					t.Fatalf("the simulator's day holds %d events, want at least 1,000,000", events)
				}
				e := newEnv(t, cfgOpts{url: sim.URL, tokens: toks, start: day, window: "24h", pageSize: 1000})
				data, err := os.ReadFile(e.cfg)
				if err != nil {
					t.Fatal(err)
				}
				local := fmt.Sprintf("sink:\n  type: local\n  path: %s\n", e.out)
				if !strings.Contains(string(data), local) {
					t.Fatalf("config has no local sink section:\n%s", data)
				}
				if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(data), local, "sink:\n"+snk.section(t, e), 1)), 0o600); err != nil {
					t.Fatal(err)
				}

				began := time.Now()
				r := run(t, "sync", "--config", e.cfg)
				took := time.Since(began)
				t.Logf("%s over %d events: exit %d in %s, peak RSS %d MiB", kind, events, r.code, took.Round(time.Second), r.maxRSS>>20)
				if r.maxRSS == 0 {
					t.Fatal("no peak RSS measured")
				}
				if r.maxRSS > maxRSS {
					t.Errorf("peak RSS %d MiB, want at most %d MiB", r.maxRSS>>20, maxRSS>>20)
				}
				switch kind {
				case "mixedup":
					if r.code != 1 || !strings.Contains(lineOf(r.stdout, org), "org_1") {
						t.Fatalf("sync of org_2 with org_1's token: exit %d, want 1 naming org_1\n%.3000s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
					}
					if n := snk.files(t, e); n != 0 {
						t.Errorf("%d files, objects or loads written for a refused window, want none", n)
					}
				case "badts":
					if r.code != 0 {
						t.Fatalf("sync: exit %d\n%.3000s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
					}
					if n := snk.quarantined(t, e, org); n != events {
						t.Errorf("%d records quarantined, want every one of the day's %d", n, events)
					}
				}
			})
		}
	}
}
