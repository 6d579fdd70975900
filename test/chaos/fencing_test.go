package chaos_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// Fencing: a stale writer never overwrites what a newer one committed. The
// tests run two vaultsink processes against one sink and one checkpoint
// store with a short lease TTL, and stall one of them.

// proc is a vaultsink process running in the background.
type proc struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	errb   lockedBuffer
	done   chan struct{}
	code   int
	killed bool
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bins.vaultsink, args...), done: make(chan struct{})}
	p.errb.b = &bytes.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.killed = true
			}
			p.code = ee.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

func (p *proc) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("vaultsink still running after %s\n%s", limit, tail(p.errb.String(), 20))
	}
}

// fencingConfig is a config for sim with lease owner label and TTL.
func fencingConfig(t *testing.T, base, owner string, ttl time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "owner: chaos-host\n  ttl: 10m", "owner: "+owner+"\n  ttl: "+ttl.String(), 1)
	s = strings.Replace(s, "lookback: 2\n", "lookback: 0\n", 1)
	p := filepath.Join(filepath.Dir(base), owner+".yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fencingSink is a sink under test: its config section, its checkpoint
// section ("" = a file store), a fingerprint of what it holds, and the
// count of each event id it holds, by org, for the truth check.
type fencingSink struct {
	name        string
	setup       func(t *testing.T, dir string) (sink, ckpt string)
	fingerprint func(t *testing.T, dir string) string
	counts      func(t *testing.T, dir string) map[string]map[string]int
}

func fencingSinks() []fencingSink {
	var srv *s3test.Server
	var bq *bqtest.Server
	bqRows := func(t *testing.T, query string) *sql.Rows {
		t.Helper()
		rows, err := bq.Query(context.Background(), query)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	return []fencingSink{
		{
			name: "local",
			setup: func(t *testing.T, dir string) (string, string) {
				return "  type: local\n  path: " + filepath.Join(dir, "out"), ""
			},
			fingerprint: func(t *testing.T, dir string) string {
				return treeDigest(t, filepath.Join(dir, "out"))
			},
			counts: func(t *testing.T, dir string) map[string]map[string]int {
				return parquetCounts(t, filepath.Join(dir, "out"))
			},
		},
		{
			name: "s3",
			setup: func(t *testing.T, dir string) (string, string) {
				srv = s3test.Versity(t)
				return s3Section(srv, "s3", "  prefix: vaultterm/events"), s3Section(srv, "s3", "  prefix: vaultsink/state")
			},
			fingerprint: func(t *testing.T, dir string) string {
				local, _ := s3test.Download(t, srv, "vaultterm/events")
				return treeDigest(t, local)
			},
			counts: func(t *testing.T, dir string) map[string]map[string]int {
				local, _ := s3test.Download(t, srv, "vaultterm/events")
				return parquetCounts(t, local)
			},
		},
		{
			// The stand-in's table; the fence is the commit transaction's
			// check of <table>_fence, the checkpoints are files.
			name: "bigquery",
			setup: func(t *testing.T, dir string) (string, string) {
				bq = bqtest.Start(t, "fencing-project")
				tmp := filepath.Join(dir, "bqtmp")
				if err := os.MkdirAll(tmp, 0o700); err != nil {
					t.Fatal(err)
				}
				return "  type: bigquery\n  project: fencing-project\n  dataset: audit\n  location: US\n  endpoint: " + bq.URL() +
					"\n  without_authentication: true\n  temp_dir: " + tmp, ""
			},
			fingerprint: func(t *testing.T, dir string) string {
				rows := bqRows(t, `SELECT org_id, event_id, CAST(ingested_at AS VARCHAR) FROM "audit"."vaultterm_events" ORDER BY ALL`)
				defer rows.Close()
				h := sha256.New()
				for rows.Next() {
					var org, id, at string
					if err := rows.Scan(&org, &id, &at); err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(h, "%s\x00%s\x00%s\n", org, id, at)
				}
				return hex.EncodeToString(h.Sum(nil))
			},
			counts: func(t *testing.T, dir string) map[string]map[string]int {
				return scanCounts(t, bqRows(t, `SELECT org_id, event_id, count(*) FROM "audit"."vaultterm_events" GROUP BY ALL`))
			},
		},
	}
}

// treeDigest is a digest of every Parquet file's path and bytes under dir.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, f)
		h.Write([]byte(rel))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestFencingStalledWriter: A walks a window, then stalls (SIGSTOP) past its
// lease TTL; B takes the org over and commits everything; A resumes. A must
// stop with "lease lost to b@… (epoch N)" and write nothing: the sink stays
// exactly as B left it, and equals the truth.
func TestFencingStalledWriter(t *testing.T) {
	for _, fs := range fencingSinks() {
		t.Run(fs.name, func(t *testing.T) {
			buildBinaries(t)
			const window = time.Hour
			from, to, _, _ := chaosHistory(window, 2)
			sim := startSim(t, simOpts{seed: 91, orgs: 1, rate: 3000, from: from, to: to, latency: 60 * time.Millisecond})
			dir := t.TempDir()
			sink, ckpt := fs.setup(t, dir)
			base := chaosConfig(t, dir, sim, window, 100, sink, ckpt)
			const ttl = 2 * time.Second
			cfgA, cfgB := fencingConfig(t, base, "a", ttl), fencingConfig(t, base, "b", ttl)

			a := startProc(t, "sync", "--config", cfgA)
			time.Sleep(1200 * time.Millisecond) // A is walking its first window
			a.signal(syscall.SIGSTOP)
			time.Sleep(ttl + time.Second)
			b := vaultsink(t, nil, 0, 2*time.Minute, "sync", "--config", cfgB)
			if b.killed || b.code != 0 {
				t.Fatalf("B: %s\n%s\n%s", b, b.stdout, tail(b.stderr, 10))
			}
			before := fs.fingerprint(t, dir)
			a.signal(syscall.SIGCONT)
			a.wait(t, time.Minute)
			if a.code != 1 || !strings.Contains(a.out.String()+a.errb.String(), "lease lost to b@") {
				t.Fatalf("A after its stall: exit %d, want 1 with the fencing error\n%s\n%s", a.code, a.out.String(), tail(a.errb.String(), 10))
			}
			if after := fs.fingerprint(t, dir); after != before {
				t.Fatal("the stale writer changed the sink after it lost its lease")
			}
			f := figures{kills: map[string]int{}}
			compareTruth(t, fs.counts(t, dir), sim.truth(t), &f)
		})
	}
}

// TestFencingSlowAPI: a window takes longer than the lease TTL (a slow
// API, no signal). The lease is renewed while the window runs, so a second
// process started meanwhile yields, and the first finishes.
func TestFencingSlowAPI(t *testing.T) {
	buildBinaries(t)
	const window = time.Hour
	from, to, _, _ := chaosHistory(window, 2)
	sim := startSim(t, simOpts{seed: 92, orgs: 1, rate: 3000, from: from, to: to, latency: 80 * time.Millisecond})
	dir := t.TempDir()
	base := chaosConfig(t, dir, sim, window, 100, "  type: local\n  path: "+filepath.Join(dir, "out"), "")
	const ttl = time.Second
	a := startProc(t, "sync", "--config", fencingConfig(t, base, "a", ttl))
	time.Sleep(3 * ttl) // A is past its first TTL in its first window
	b := vaultsink(t, nil, 0, time.Minute, "sync", "--config", fencingConfig(t, base, "b", ttl))
	if b.code != 0 || !strings.Contains(b.stdout, "yielded") {
		t.Fatalf("B while A works: %s, want exit 0 with the org yielded\n%s", b, b.stdout)
	}
	a.wait(t, 2*time.Minute)
	if a.code != 0 {
		t.Fatalf("A: exit %d\n%s\n%s", a.code, a.out.String(), tail(a.errb.String(), 10))
	}
	f := figures{kills: map[string]int{}}
	checkTruth(t, filepath.Join(dir, "out"), sim.truth(t), &f)
}

// TestFencingSameOwnerLabel: two processes started from one config (the
// same lease.owner) are still two lease owners: they never write an org at
// once, and the sink ends exact.
func TestFencingSameOwnerLabel(t *testing.T) {
	buildBinaries(t)
	const window = time.Hour
	from, to, _, _ := chaosHistory(window, 3)
	sim := startSim(t, simOpts{seed: 93, orgs: 2, rate: 3000, from: from, to: to, latency: 20 * time.Millisecond})
	dir := t.TempDir()
	cfg := fencingConfig(t, chaosConfig(t, dir, sim, window, 100, "  type: local\n  path: "+filepath.Join(dir, "out"), ""), "replica", 10*time.Second)
	a := startProc(t, "sync", "--config", cfg)
	b := startProc(t, "sync", "--config", cfg)
	a.wait(t, 2*time.Minute)
	b.wait(t, 2*time.Minute)
	all := a.out.String() + b.out.String()
	if a.code != 0 || b.code != 0 || !strings.Contains(all, "yielded") {
		t.Fatalf("two replicas of one config: exit %d and %d, want 0 and 0 with a yield\n%s", a.code, b.code, all)
	}
	finish(t, cfg, sim, &figures{kills: map[string]int{}})
	f := figures{kills: map[string]int{}}
	checkTruth(t, filepath.Join(dir, "out"), sim.truth(t), &f)
}

// TestFencingBackfillBesideDaemon: a forced backfill of the whole history
// while a daemon syncs the same org every second: the backfill waits for
// the lease, the daemon yields while the backfill holds it, nothing is
// fenced and the sink ends exact.
func TestFencingBackfillBesideDaemon(t *testing.T) {
	buildBinaries(t)
	const window = time.Hour
	from, to, _, _ := chaosHistory(window, 4)
	sim := startSim(t, simOpts{seed: 94, orgs: 1, rate: 3000, from: from, to: to, latency: 5 * time.Millisecond})
	dir := t.TempDir()
	base := chaosConfig(t, dir, sim, window, 200, "  type: local\n  path: "+filepath.Join(dir, "out"), "")
	daemon := startProc(t, "run", "--config", fencingConfig(t, base, "daemon", 2*time.Second))
	time.Sleep(500 * time.Millisecond)
	bf := vaultsink(t, nil, 0, 2*time.Minute, "backfill", "--config", fencingConfig(t, base, "backfill", 2*time.Second),
		"--org", "org_1", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--force")
	if bf.code != 0 {
		t.Fatalf("backfill beside the daemon: %s\n%s\n%s", bf, bf.stdout, tail(bf.stderr, 10))
	}
	time.Sleep(1500 * time.Millisecond)
	daemon.signal(syscall.SIGTERM)
	daemon.wait(t, 30*time.Second)
	if strings.Contains(daemon.errb.String()+bf.stderr, "lease lost") {
		t.Fatalf("a process was fenced out: they did not take turns\n%s\n%s", tail(daemon.errb.String(), 10), tail(bf.stderr, 10))
	}
	f := figures{kills: map[string]int{}}
	checkTruth(t, filepath.Join(dir, "out"), sim.truth(t), &f)
}

// TestChaosTwoDaemons: two daemons on one sink and one store, one of them
// stalled (SIGSTOP past the lease TTL, then SIGCONT) or killed again and
// again; a final sync then shows the sink exact: stalls and kills never
// lose or duplicate an event, whichever process committed what.
func TestChaosTwoDaemons(t *testing.T) {
	t.Parallel()
	buildBinaries(t)
	rounds := envInt("VAULTSINK_CHAOS_KILLS", 10) / 2
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x2d))
	const window = time.Hour
	from, to, lateDelay, visible := chaosHistory(window, 4)
	sim := startSim(t, simOpts{seed: seed%1000 + 1, orgs: 2, rate: 6000, from: from, to: to,
		faults: chaosFaults, lateDelay: lateDelay, latency: 10 * time.Millisecond})
	dir := t.TempDir()
	base := chaosConfig(t, dir, sim, window, 200, "  type: local\n  path: "+filepath.Join(dir, "out"), "")
	const ttl = time.Second
	cfgs := []string{fencingConfig(t, base, "one", ttl), fencingConfig(t, base, "two", ttl)}
	stalls, kills, fenced := 0, 0, 0
	for r := 0; r < max(rounds, 1); r++ {
		ps := []*proc{startProc(t, "run", "--config", cfgs[0]), startProc(t, "run", "--config", cfgs[1])}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		victim := ps[rng.IntN(2)]
		if rng.IntN(2) == 0 {
			victim.signal(syscall.SIGSTOP)
			time.Sleep(ttl + time.Duration(rng.IntN(1500))*time.Millisecond)
			victim.signal(syscall.SIGCONT)
			stalls++
		} else {
			victim.signal(syscall.SIGKILL)
			kills++
		}
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		for _, p := range ps {
			p.signal(syscall.SIGKILL)
			<-p.done
			if strings.Contains(p.errb.String(), "lease lost to") {
				fenced++
			}
		}
	}
	if d := time.Until(visible); d > 0 {
		time.Sleep(d + time.Second)
	}
	// The last sync runs with the base config: its lookback re-pulls the
	// last window, whose late events surfaced after the daemons were gone,
	// and its TTL is the default's (a loaded machine may well starve a
	// 1s lease's renewal, which fences the daemons out, as it should).
	f := figures{kills: map[string]int{}}
	finish(t, base, sim, &f)
	checkTruth(t, filepath.Join(dir, "out"), sim.truth(t), &f)
	t.Logf("two daemons: %d rounds, %d stalls past the TTL, %d kills, %d processes fenced out", max(rounds, 1), stalls, kills, fenced)
}
