// Package chaos_test proves vaultsink's exactly-once promise with the real
// binaries: the simulator runs with faults on, vaultsink is SIGKILLed again
// and again (at random moments and at chosen crash points), restarted, then
// let finish; `vaultsink verify` and an independent DuckDB read must then
// show the sink equals the simulator's truth exactly.
//
// VAULTSINK_CHAOS_KILLS sets the kills per sink (default 10; `make chaos`
// uses 100) and VAULTSINK_CHAOS_SEED the random schedule (default: time).
package chaos_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/vaultsink/vaultsink/internal/testbin"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// binaries built once per test process, without cgo and without -race,
// as they ship.
var bins struct {
	once              sync.Once
	vaultsink, simBin string
}

func buildBinaries(t *testing.T) {
	t.Helper()
	bins.once.Do(func() {
		bins.vaultsink = testbin.Build(t, "vaultsink")
		bins.simBin = testbin.Build(t, "vaultsim")
	})
	if bins.vaultsink == "" || bins.simBin == "" {
		t.Fatal("building the binaries failed in another test")
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// simOpts configure the simulator process.
type simOpts struct {
	seed      uint64
	orgs      int
	rate      float64
	from, to  time.Time
	faults    string
	lateDelay time.Duration
	latency   time.Duration
}

// simProc is a running `vaultsim serve`.
type simProc struct {
	simOpts
	url    string
	tokens string // dir of <org>.token files
	log    *bytes.Buffer
}

func startSim(t *testing.T, o simOpts) *simProc {
	t.Helper()
	buildBinaries(t)
	s := &simProc{simOpts: o, tokens: filepath.Join(t.TempDir(), "tokens"), log: &bytes.Buffer{}}
	args := []string{"serve", "--addr", "127.0.0.1:0", "--orgs", strconv.Itoa(o.orgs),
		"--seed", strconv.FormatUint(o.seed, 10), "--rate", strconv.FormatFloat(o.rate, 'f', -1, 64),
		"--from", o.from.Format(time.RFC3339), "--to", o.to.Format(time.RFC3339),
		"--faults", o.faults, "--late-delay", o.lateDelay.String(), "--slow-delay", "50ms",
		"--latency", o.latency.String(), "--retry-after", "0", "--tokens-dir", s.tokens}
	cmd := exec.Command(bins.simBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedBuffer{b: s.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		for sc.Scan() {
		}
	}()
	select {
	case u, ok := <-line:
		if !ok || !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Fatalf("vaultsim serve did not print its URL (got %q)", u)
		}
		s.url = u
	case <-time.After(20 * time.Second):
		t.Fatal("vaultsim serve did not start")
	}
	return s
}

func (s *simProc) orgIDs() []string {
	var out []string
	for i := 1; i <= s.orgs; i++ {
		out = append(out, "org_"+strconv.Itoa(i))
	}
	return out
}

// truth is the simulator's final answer per org: every id, late ones
// included, checked against the `vaultsim truth` command's count and digest.
func (s *simProc) truth(t *testing.T) map[string][]string {
	t.Helper()
	f, err := vaultsim.ParseFaults(s.faults)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := vaultsim.New(vaultsim.Config{Seed: s.seed, Orgs: s.orgs, Rate: s.rate, From: s.from, To: s.to, Faults: f, LateDelay: s.lateDelay})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, org := range s.orgIDs() {
		ids := srv.EventIDs(org, s.from, s.to)
		b, err := exec.Command(bins.simBin, "truth", "--seed", strconv.FormatUint(s.seed, 10), "--org", org,
			"--rate", strconv.FormatFloat(s.rate, 'f', -1, 64), "--from", s.from.Format(time.RFC3339), "--to", s.to.Format(time.RFC3339)).Output()
		if err != nil {
			t.Fatalf("vaultsim truth: %v", err)
		}
		var tr struct {
			Count  int    `json:"count"`
			Digest string `json:"digest"`
		}
		if err := json.Unmarshal(b, &tr); err != nil {
			t.Fatalf("vaultsim truth output %q: %v", b, err)
		}
		if tr.Count != len(ids) || tr.Digest != vaultsim.DigestIDs(ids) {
			t.Fatalf("truth of %s: the command says %d/%s, the package %d/%s", org, tr.Count, tr.Digest, len(ids), vaultsim.DigestIDs(ids))
		}
		if len(ids) == 0 {
			t.Fatalf("no events in the truth of %s: the test would prove nothing", org)
		}
		out[org] = ids
	}
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// outcome is how one vaultsink process ended.
type outcome struct {
	killed         bool // SIGKILL, by us or by its own crash point
	code           int  // exit status when not killed
	stdout, stderr string
	took           time.Duration
}

func (o outcome) String() string {
	if o.killed {
		return fmt.Sprintf("killed after %s", o.took.Round(time.Millisecond))
	}
	return fmt.Sprintf("exit %d after %s", o.code, o.took.Round(time.Millisecond))
}

// vaultsink runs the binary with args; killAfter > 0 SIGKILLs it then if it
// is still running. env is added to the environment. A process still alive
// after limit is killed and reported as a test failure.
func vaultsink(t *testing.T, env []string, killAfter, limit time.Duration, args ...string) outcome {
	t.Helper()
	cmd := exec.Command(bins.vaultsink, args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var timers []*time.Timer
	if killAfter > 0 {
		timers = append(timers, time.AfterFunc(killAfter, func() { _ = cmd.Process.Kill() }))
	}
	var hung bool
	var mu sync.Mutex
	timers = append(timers, time.AfterFunc(limit, func() {
		mu.Lock()
		hung = true
		mu.Unlock()
		_ = cmd.Process.Kill()
	}))
	err := cmd.Wait()
	for _, tm := range timers {
		tm.Stop()
	}
	o := outcome{stdout: so.String(), stderr: se.String(), took: time.Since(start)}
	mu.Lock()
	defer mu.Unlock()
	if hung {
		t.Fatalf("vaultsink %v still running after %s\nstderr tail:\n%s", args, limit, tail(o.stderr, 20))
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			o.killed = true
		} else {
			o.code = ee.ExitCode()
		}
	default:
		t.Fatalf("vaultsink %v: %v", args, err)
	}
	return o
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// chaosConfig is the vaultsink config of a chaos run; sinkYAML and
// ckptYAML are the bodies of the `sink:` and `checkpoint:` sections
// (indented two spaces); an empty ckptYAML is a file store under dir.
func chaosConfig(t *testing.T, dir string, s *simProc, window time.Duration, pageSize int, sinkYAML, ckptYAML string) string {
	t.Helper()
	if ckptYAML == "" {
		ckptYAML = "  type: file\n  path: " + filepath.Join(dir, "state")
	}
	var orgs strings.Builder
	for _, org := range s.orgIDs() {
		fmt.Fprintf(&orgs, "  - id: %s\n    token_file: %s\n", org, filepath.Join(s.tokens, org+".token"))
	}
	cfg := fmt.Sprintf(`source:
  base_url: %s
  page_size: %d
  timeout: 10s
  retry:
    initial_backoff: 2ms
    max_backoff: 20ms
    max_attempts: 40
orgs:
%sstart: %s
window: %s
settle: 1s
lookback: 2
concurrency: %d
schedule: "@every 1s"
jitter: 0s
shutdown_grace: 1s
lease:
  owner: chaos-host
  ttl: 10m
server:
  listen: ""
log:
  level: info
  format: json
sink:
%s
checkpoint:
%s
`, s.url, pageSize, orgs.String(), s.from.Format(time.RFC3339), window, s.orgs, sinkYAML, ckptYAML)
	p := filepath.Join(dir, "vaultsink.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// figures are what a chaos run reports.
type figures struct {
	kills      map[string]int // by kind: timer, page, before-commit, after-commit, after-checkpoint
	restarts   int            // processes started after a kill
	completed  int            // runs that finished by themselves
	failed     int            // runs that exited non-zero (an org failed)
	rewinds    int            // checkpoint rewinds to make more work
	windows    int
	events     int
	missing    int
	duplicates int
	extra      int
	leftovers  int // hidden temp files or incomplete uploads left behind
}

func (f figures) totalKills() int {
	n := 0
	for _, k := range f.kills {
		n += k
	}
	return n
}

func (f figures) String() string {
	kinds := make([]string, 0, len(f.kills))
	for k, n := range f.kills {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("kills=%d (%s) restarts=%d completed=%d failed=%d rewinds=%d windows=%d events=%d missing=%d duplicates=%d extra=%d leftovers=%d",
		f.totalKills(), strings.Join(kinds, " "), f.restarts, f.completed, f.failed, f.rewinds, f.windows, f.events, f.missing, f.duplicates, f.extra, f.leftovers)
}

// crashKinds are the kill aims: a random timer (lands mostly in a page
// fetch, since the simulator adds latency) and the runner's crash points.
type crashKind struct {
	name   string
	weight int
	maxN   int // crash at the n-th arrival, n in [1,maxN]
}

func crashKinds(pagesPerWindow int) []crashKind {
	return []crashKind{
		{"timer", 35, 0},
		{"page", 20, 2 * pagesPerWindow},
		{"before-commit", 15, 4},
		{"after-commit", 20, 4},
		{"after-checkpoint", 10, 4},
	}
}

// chaos kills vaultsink `kills` times and returns the figures so far. When
// a run finishes by itself (every org current) it rewinds a random org's
// checkpoint so that the next kills land on real work again: re-writing
// committed windows under kills is the other half of the proof.
func chaos(t *testing.T, cfg string, s *simProc, kills int, rng *rand.Rand, window time.Duration, pagesPerWindow int, maxTimer time.Duration) figures {
	t.Helper()
	f := figures{kills: map[string]int{}}
	nWindows := int(s.to.Sub(s.from) / window)
	kinds := crashKinds(pagesPerWindow)
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	for round := 0; f.totalKills() < kills; round++ {
		if round > 10*kills+20 {
			t.Fatalf("no progress after %d rounds: %v", round, f)
		}
		pick := rng.IntN(total)
		kind := kinds[0]
		for _, k := range kinds {
			if pick < k.weight {
				kind = k
				break
			}
			pick -= k.weight
		}
		cmd := "sync"
		if round%4 == 3 {
			cmd = "run" // the daemon: it never exits by itself, so a timer always ends it
		}
		var env []string
		var killAfter time.Duration
		if kind.name == "timer" {
			killAfter = time.Duration(20+rng.IntN(int(maxTimer/time.Millisecond))) * time.Millisecond
		} else {
			env = append(env, fmt.Sprintf("VAULTSINK_TEST_CRASH_POINT=%s:%d", kind.name, 1+rng.IntN(kind.maxN)))
		}
		if cmd == "run" && killAfter == 0 {
			killAfter = 3 * time.Second
		}
		o := vaultsink(t, env, killAfter, 2*time.Minute, cmd, "--config", cfg)
		if round > 0 {
			f.restarts++
		}
		switch {
		case o.killed:
			k := kind.name
			if cmd == "run" && k != "timer" && o.took >= killAfter {
				k = "timer" // the crash point was not reached; our timer ended the daemon
			}
			f.kills[k]++
		case o.code == 0:
			f.completed++
		default:
			// Every injected fault is retryable within the configured
			// attempts: a run that gives up is a bug, even though the
			// next run repairs it.
			f.failed++
			t.Errorf("round %d: vaultsink %s %s (%s)\n%s\n%s", round, cmd, o, kind.name, o.stdout, tail(o.stderr, 5))
		}
		if !o.killed && o.code == 0 {
			// Every org is current: rewind one to a random earlier window
			// (sometimes to its very start) to make more work for the kills.
			org := s.orgIDs()[rng.IntN(s.orgs)]
			at := s.from.Add(time.Duration(rng.IntN(nWindows)) * window)
			args := []string{"checkpoint", "set", "--config", cfg, "--org", org, "--to", at.Format(time.RFC3339)}
			if rng.IntN(4) == 0 {
				args = []string{"checkpoint", "reset", "--config", cfg, "--org", org, "--yes"}
			}
			if r := vaultsink(t, nil, 0, time.Minute, args...); r.killed || r.code != 0 {
				t.Fatalf("vaultsink %v: %s\n%s", args, r, r.stderr)
			}
			f.rewinds++
		}
	}
	return f
}

// finish runs the last, uninterrupted sync and verify; both must succeed.
func finish(t *testing.T, cfg string, s *simProc, f *figures) {
	t.Helper()
	o := vaultsink(t, nil, 0, 5*time.Minute, "sync", "--config", cfg)
	if o.killed || o.code != 0 {
		t.Fatalf("final sync: %s\nstdout:\n%s\nstderr:\n%s", o, o.stdout, tail(o.stderr, 30))
	}
	for _, org := range s.orgIDs() {
		if !regexp.MustCompile(`(?m)^` + org + `\s+current\s`).MatchString(o.stdout) {
			t.Fatalf("final sync: %s is not current:\n%s", org, o.stdout)
		}
	}
	v := vaultsink(t, nil, 0, 5*time.Minute, "verify", "--config", cfg, "--from", s.from.Format(time.RFC3339), "--to", s.to.Format(time.RFC3339))
	if v.killed || v.code != 0 {
		t.Fatalf("verify: %s\n%s\n%s", v, v.stdout, tail(v.stderr, 20))
	}
	m := regexp.MustCompile(`verify: (\d+) windows?, (\d+) events? in the API, (\d+) rows? in the sink: (\d+) missing, (\d+) extra, (\d+) duplicated; (\d+) windows? differs?`).FindStringSubmatch(v.stdout)
	if m == nil {
		t.Fatalf("verify printed no summary:\n%s", v.stdout)
	}
	n := func(i int) int { x, _ := strconv.Atoi(m[i]); return x }
	if n(4) != 0 || n(5) != 0 || n(6) != 0 || n(7) != 0 || n(2) != n(3) {
		t.Fatalf("verify exited 0 but reports a difference: %s", m[0])
	}
	f.windows = n(1)
	t.Logf("verify: %s", m[0])
}

// checkTruth compares the sink's rows, read by DuckDB from the Parquet files
// under dir, with the simulator's truth: per org, the same ids, each once.
func checkTruth(t *testing.T, dir string, truth map[string][]string, f *figures) {
	t.Helper()
	compareTruth(t, parquetCounts(t, dir), truth, f)
}

// parquetCounts counts each event id of the Parquet files under dir, by
// org, read with DuckDB.
func parquetCounts(t *testing.T, dir string) map[string]map[string]int {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf(`SELECT org_id, event_id, count(*) FROM read_parquet('%s/**/*.parquet') GROUP BY ALL`, dir))
	if err != nil {
		t.Fatalf("DuckDB cannot read the sink's files: %v", err)
	}
	return scanCounts(t, rows)
}

func scanCounts(t *testing.T, rows *sql.Rows) map[string]map[string]int {
	t.Helper()
	defer rows.Close()
	got := map[string]map[string]int{}
	for rows.Next() {
		var org, id string
		var n int
		if err := rows.Scan(&org, &id, &n); err != nil {
			t.Fatal(err)
		}
		if got[org] == nil {
			got[org] = map[string]int{}
		}
		got[org][id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// compareTruth: per org, the sink holds exactly the truth's ids, each once.
func compareTruth(t *testing.T, got map[string]map[string]int, truth map[string][]string, f *figures) {
	t.Helper()
	for org := range got {
		if _, ok := truth[org]; !ok {
			t.Errorf("rows of org %q, which the simulator does not have", org)
		}
	}
	for org, ids := range truth {
		var missing, dups []string
		for _, id := range ids {
			f.events++
			switch n := got[org][id]; {
			case n == 0:
				missing = append(missing, id)
			case n > 1:
				dups = append(dups, id)
				f.duplicates += n - 1
			}
			delete(got[org], id)
		}
		f.missing += len(missing)
		f.extra += len(got[org])
		if len(missing)+len(dups)+len(got[org]) > 0 {
			t.Errorf("%s: %d missing (first %v), %d duplicated (first %v), %d extra", org, len(missing), first(missing), len(dups), first(dups), len(got[org]))
		}
	}
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// checkTree walks a local sink's output: every file is a committed Parquet
// file, a quarantine file of valid JSON lines, or a hidden temp file (which
// no reader sees; counted as a leftover).
func checkTree(t *testing.T, dir string, f *figures) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		switch {
		case strings.HasPrefix(name, "."):
			f.leftovers++
			t.Logf("hidden temp file left behind (invisible to readers): %s", p)
		case strings.HasSuffix(name, ".parquet"):
			if !strings.HasPrefix(name, "events-") {
				t.Errorf("unexpected Parquet file %s", p)
			}
		case strings.HasSuffix(name, ".jsonl"):
			checkQuarantine(t, p)
		default:
			t.Errorf("unexpected file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkQuarantine asserts a quarantine file is JSON lines with the fields
// that make a record recoverable.
func checkQuarantine(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		var q struct {
			Org    string `json:"org_id"`
			Window string `json:"window"`
			Reason string `json:"reason"`
			Raw    string `json:"raw"`
		}
		if err := json.Unmarshal(line, &q); err != nil || q.Org == "" || q.Reason == "" || q.Window == "" {
			t.Errorf("%s line %d is not a quarantine record (%v): %.200s", p, i+1, err, line)
		}
	}
}
