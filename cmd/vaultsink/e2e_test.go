package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/vaultsink/vaultsink/runner"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// e2e is one simulator plus one vaultsink config in a temp dir.
type e2e struct {
	t        *testing.T
	sim      *vaultsim.Running
	dir      string
	cfg      string
	from, to time.Time // the simulator's history
}

type e2eOpts struct {
	rate     float64
	faults   string
	latency  time.Duration
	now      func() time.Time
	extra    string            // appended top-level YAML
	tokens   map[string]string // org -> token override
	pageSize int
	hours    int    // history length; default 72
	sink     string // YAML of the sink section body (indented two spaces); "" = local
	ckpt     string // YAML of the checkpoint section body; "" = file
}

func newE2E(t *testing.T, o e2eOpts) *e2e {
	t.Helper()
	if o.rate == 0 {
		o.rate = 300
	}
	if o.pageSize == 0 {
		o.pageSize = 250
	}
	if o.hours == 0 {
		o.hours = 72
	}
	// The history ends at an hour whose last window is already closed under
	// the config's 5m settle, even when the test runs in an hour's first
	// minutes (otherwise that hour is, rightly, not pulled yet).
	to := time.Now().UTC().Add(-15 * time.Minute).Truncate(time.Hour)
	from := to.Add(-time.Duration(o.hours) * time.Hour)
	faults, err := vaultsim.ParseFaults(o.faults)
	if err != nil {
		t.Fatal(err)
	}
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 11, Orgs: 3, From: from, To: to, Rate: o.rate,
		Faults: faults, Latency: o.latency, Now: o.now})
	dir := t.TempDir()
	var orgs strings.Builder
	for _, c := range sim.Creds() {
		tok := c.Token
		if v, ok := o.tokens[c.OrgID]; ok {
			tok = v
		}
		p := filepath.Join(dir, c.OrgID+".token")
		if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&orgs, "  - id: %s\n    token_file: %s\n", c.OrgID, p)
	}
	sink := o.sink
	if sink == "" {
		sink = "  type: local\n  path: " + filepath.Join(dir, "out") + "\n"
	}
	ckpt := o.ckpt
	if ckpt == "" {
		ckpt = "  type: file\n  path: " + filepath.Join(dir, "state") + "\n"
	}
	cfg := fmt.Sprintf(`source:
  base_url: %s
  page_size: %d
  retry:
    initial_backoff: 5ms
    max_backoff: 50ms
    max_attempts: 40
orgs:
%sstart: %s
window: 1h
settle: 5m
concurrency: 3
shutdown_grace: 200ms
server:
  listen: ""
log:
  level: warn
  format: json
sink:
%scheckpoint:
%s%s`, sim.URL, o.pageSize, orgs.String(), from.Format(time.RFC3339), sink, ckpt, o.extra)
	path := filepath.Join(dir, "vaultsink.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &e2e{t: t, sim: sim, dir: dir, cfg: path, from: from, to: to}
}

func (e *e2e) run(ctx context.Context, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := Run(ctx, append(args, "--config", e.cfg), &out, &errb)
	return out.String(), errb.String(), err
}

func (e *e2e) mustRun(args ...string) string {
	e.t.Helper()
	out, errs, err := e.run(context.Background(), args...)
	if err != nil {
		e.t.Fatalf("vaultsink %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errs)
	}
	return out
}

func (e *e2e) outDir() string { return filepath.Join(e.dir, "out") }

// duck opens an in-memory DuckDB: the independent reader of our Parquet.
func duck(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// idsByOrg reads every event_id of every Parquet file with DuckDB.
func idsByOrg(t *testing.T, db *sql.DB, dir string) map[string][]string {
	t.Helper()
	rows, err := db.Query(fmt.Sprintf(`SELECT org_id, event_id FROM read_parquet('%s/**/*.parquet') ORDER BY org_id, timestamp, event_id`, dir))
	if err != nil {
		t.Fatal(err)
	}
	return scanIDs(t, rows)
}

// scanIDs collects (org_id, event_id) rows by org, in row order.
func scanIDs(t *testing.T, rows *sql.Rows) map[string][]string {
	t.Helper()
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var org, id string
		if err := rows.Scan(&org, &id); err != nil {
			t.Fatal(err)
		}
		out[org] = append(out[org], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// contentDigest is a digest of every file's rows, ingested_at aside (it
// records when a row was written, so it differs by design between runs).
func contentDigest(t *testing.T, db *sql.DB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		var n int64
		var h string
		q := fmt.Sprintf(`SELECT count(*), coalesce(sum(hash(event_id, org_id, timestamp, action, category, severity, title, actor, resource, source_ip, detail, extra)), 0)::VARCHAR FROM read_parquet('%s')`, p)
		if err := db.QueryRow(q).Scan(&n, &h); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%d/%s", n, h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestE2ESyncMatchesTruth(t *testing.T) {
	e := newE2E(t, e2eOpts{})
	out := e.mustRun("sync", "--output", "json")
	var rep runner.SummaryReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("sync --output json: %v\n%s", err, out)
	}
	status := map[string]runner.Status{}
	for _, o := range rep.Orgs {
		status[o.Org] = o.Status
	}
	for _, org := range e.sim.Orgs() {
		if status[org] != runner.StatusCurrent {
			t.Fatalf("summary does not report %s current:\n%s", org, out)
		}
	}
	// The summary says how long decode and encode were busy (pipeclock).
	if p := rep.Pipeline; !rep.OK || p.DecodeBusySeconds < 0.01 || p.EncodeBusySeconds < 0.01 {
		t.Fatalf("summary has no pipeline decode and encode busy times:\n%s", out)
	}
	db := duck(t)
	got := idsByOrg(t, db, e.outDir())
	for _, org := range e.sim.Orgs() {
		want := e.sim.EventIDs(org, e.from, e.to)
		if len(want) == 0 {
			t.Fatalf("no truth for %s", org)
		}
		if !slices.Equal(got[org], want) {
			t.Fatalf("%s: DuckDB reads %d ids, truth has %d (or order/content differs)", org, len(got[org]), len(want))
		}
	}
	// Types as an independent reader sees them.
	types := map[string]string{}
	rows, err := db.Query(fmt.Sprintf(`DESCRIBE SELECT * FROM read_parquet('%s/**/*.parquet')`, e.outDir()))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, typ string
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			t.Fatal(err)
		}
		types[name] = typ
	}
	rows.Close()
	for col, want := range map[string]string{"timestamp": "TIMESTAMP WITH TIME ZONE", "ingested_at": "TIMESTAMP WITH TIME ZONE", "event_id": "VARCHAR", "detail": "VARCHAR"} {
		if types[col] != want {
			t.Errorf("column %s is %q, want %q (all: %v)", col, types[col], want, types)
		}
	}
	// Hive partitions are readable as such.
	var parts int
	if err := db.QueryRow(fmt.Sprintf(`SELECT count(DISTINCT (date, hour)) FROM read_parquet('%s/**/*.parquet', hive_partitioning=true, hive_types={'date': DATE, 'hour': INTEGER})`, e.outDir())).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 72 {
		t.Fatalf("%d (date,hour) partitions, want 72", parts)
	}

	before := contentDigest(t, db, e.outDir())
	stamp := mtimes(t, e.outDir())

	// A second sync changes nothing.
	out = e.mustRun("sync")
	if !strings.Contains(out, "windows=0 ") {
		t.Fatalf("second sync wrote windows:\n%s", out)
	}
	if !mapsEqual(stamp, mtimes(t, e.outDir())) {
		t.Fatal("second sync touched files")
	}

	// Deleting the checkpoints and syncing again leaves the same files with
	// the same contents: the key is a function of the window alone.
	if err := os.RemoveAll(filepath.Join(e.dir, "state")); err != nil {
		t.Fatal(err)
	}
	e.mustRun("sync")
	after := contentDigest(t, db, e.outDir())
	if !mapsEqual(before, after) {
		t.Fatalf("files differ after a checkpoint-less rerun: %d files before, %d after", len(before), len(after))
	}

	// verify agrees, and exits 0.
	out = e.mustRun("verify", "--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339))
	if !strings.Contains(out, "0 missing, 0 extra, 0 duplicated") {
		t.Fatalf("verify:\n%s", out)
	}
}

func mtimes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			out[p] = fi.ModTime().String()
		}
		return nil
	})
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestE2EVerifyCatchesDifferences: verify is not a rubber stamp.
func TestE2EVerifyCatchesDifferences(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 100})
	e.mustRun("sync")
	var victim string
	_ = filepath.WalkDir(e.outDir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && victim == "" && strings.HasSuffix(p, ".parquet") {
			victim = p
		}
		return nil
	})
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run(context.Background(), "verify", "--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitDiffers {
		t.Fatalf("verify after deleting a file: want exit %d, got %v\n%s", exitDiffers, err, out)
	}
	if !strings.Contains(out, "DIFFERS") || strings.Contains(out, " 0 missing") {
		t.Fatalf("verify output does not report the missing window:\n%s", out)
	}
}

// TestE2ELookbackLateEvents: late events, visible only after their window
// was committed, arrive through lookback, with no duplicates.
func TestE2ELookbackLateEvents(t *testing.T) {
	var simNow time.Time
	clock := func() time.Time {
		if simNow.IsZero() {
			return time.Now()
		}
		return simNow
	}
	e := newE2E(t, e2eOpts{rate: 600, faults: "late=0.2", now: clock, extra: "lookback: 4\n"})
	e.mustRun("sync")
	db := duck(t)
	org := "org_1"
	want := e.sim.EventIDs(org, e.from, e.to)
	got := idsByOrg(t, db, e.outDir())[org]
	if len(got) >= len(want) {
		t.Fatalf("late events were visible at once (%d of %d): the test would prove nothing", len(got), len(want))
	}
	// Time passes at the API: the late events become visible.
	simNow = time.Now().Add(3 * time.Hour)
	e.mustRun("sync")
	got = idsByOrg(t, db, e.outDir())[org]
	if !slices.Equal(got, want) {
		t.Fatalf("after lookback: %d ids, truth %d", len(got), len(want))
	}
}

// TestE2EOneOrgFailsOthersGoOn: a revoked token fails its org only.
func TestE2EOneOrgFailsOthersGoOn(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 100, tokens: map[string]string{"org_2": "vt_revoked_or_wrong"}})
	out, _, err := e.run(context.Background(), "sync")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitFailed {
		t.Fatalf("want exit %d, got %v", exitFailed, err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[0]] = l
		}
	}
	if !strings.Contains(lines["org_2"], "failed") || !strings.Contains(lines["org_2"], "401") {
		t.Fatalf("org_2 should fail with the 401 named:\n%s", out)
	}
	for _, org := range []string{"org_1", "org_3"} {
		if !strings.Contains(lines[org], "current") {
			t.Fatalf("%s should be current:\n%s", org, out)
		}
	}
	got := idsByOrg(t, duck(t), e.outDir())
	if len(got["org_2"]) != 0 || len(got["org_1"]) == 0 || len(got["org_3"]) == 0 {
		t.Fatalf("rows per org: %d %d %d", len(got["org_1"]), len(got["org_2"]), len(got["org_3"]))
	}
}

// TestE2EShutdownMidWindow: a stop during a window leaves no visible partial
// file and does not move the checkpoint past written data.
func TestE2EShutdownMidWindow(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 2000, latency: 30 * time.Millisecond, pageSize: 100, hours: 8})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Stop once a few windows are in: some committed, some in flight.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if len(listParquet(t, e.outDir())) >= 3 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	out, _, err := e.run(ctx, "sync")
	if err == nil || !strings.Contains(out, "stopped") {
		t.Fatalf("an interrupted sync must not report success:\n%s (err %v)", out, err)
	}
	// No temp or partial files anywhere under the output (the sink's
	// commit lock file is not a unit, and hidden).
	_ = filepath.WalkDir(e.outDir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".parquet") && filepath.Base(p) != ".vaultsink.lock" {
			t.Errorf("leftover non-Parquet file %s", p)
		}
		return nil
	})
	// Every committed file is complete (DuckDB reads it) and the checkpoint
	// never passes a window without its file.
	db := duck(t)
	files := listParquet(t, e.outDir())
	for _, f := range files {
		var n int
		if err := db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM read_parquet('%s')`, f)).Scan(&n); err != nil || n == 0 {
			t.Fatalf("file %s unreadable or empty: %v", f, err)
		}
	}
	cps := e.mustRun("checkpoint", "list")
	for _, org := range e.sim.Orgs() {
		for _, l := range strings.Split(cps, "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != org || f[1] == "-" {
				continue
			}
			end, err := time.Parse(time.RFC3339, f[1])
			if err != nil {
				t.Fatal(err)
			}
			for w := e.from; w.Before(end); w = w.Add(time.Hour) {
				if !slices.ContainsFunc(files, func(p string) bool {
					return strings.Contains(p, "org_id="+org+"/") && strings.Contains(p, "events-"+w.Format("20060102T1504Z"))
				}) {
					t.Fatalf("checkpoint of %s is %s but window %s has no file", org, end, w)
				}
			}
		}
	}
	// And a rerun finishes the job exactly.
	e.mustRun("sync")
	got := idsByOrg(t, db, e.outDir())
	for _, org := range e.sim.Orgs() {
		if want := e.sim.EventIDs(org, e.from, e.to); !slices.Equal(got[org], want) {
			t.Fatalf("%s after resume: %d ids, truth %d", org, len(got[org]), len(want))
		}
	}
}

func listParquet(t *testing.T, dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}
