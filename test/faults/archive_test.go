package faults_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// The archive's invariants under what operators change and what imperfect
// APIs do: every test below runs the real binary against the simulator
// over HTTP and reads the tree back with DuckDB, and each failed on the code
// before these invariants were enforced (the row of the issue it backs is
// named in its comment).

// archiveEnv is an API whose history ends a few hours ago, and a config.
type archiveEnv struct {
	sim        *vaultsim.Running
	env        *env
	from, to   time.Time
	opts       cfgOpts
	t          *testing.T
	orgs       []string
	tokenPaths map[string]string
}

func newArchiveEnv(t *testing.T, cfg vaultsim.Config, hours int, o cfgOpts) *archiveEnv {
	t.Helper()
	to := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Hour)
	from := to.Add(-time.Duration(hours) * time.Hour)
	if cfg.From.IsZero() {
		cfg.From, cfg.To = from, to
	}
	if cfg.Orgs == 0 {
		cfg.Orgs = 1
	}
	if cfg.Rate == 0 {
		cfg.Rate = 400
	}
	sim := vaultsim.Start(t, cfg)
	o.url = sim.URL
	if o.tokens == nil {
		o.tokens = simTokens(sim)
	}
	if o.start.IsZero() {
		o.start = from
	}
	a := &archiveEnv{t: t, sim: sim, from: from, to: to, opts: o}
	a.env = newEnv(t, o)
	for org := range o.tokens {
		a.orgs = append(a.orgs, org)
	}
	return a
}

// rewrite writes the config again with changed options, keeping the
// directories (the sink and the checkpoints stay).
func (a *archiveEnv) rewrite(change func(*cfgOpts)) {
	a.t.Helper()
	change(&a.opts)
	if a.opts.out == "" {
		a.opts.out = a.env.out
	}
	e := newEnv(a.t, a.opts)
	data, err := os.ReadFile(e.cfg)
	if err != nil {
		a.t.Fatal(err)
	}
	// Same state directory, same token files: only the config's keys change.
	data = []byte(strings.ReplaceAll(string(data), e.state, a.env.state))
	data = []byte(strings.ReplaceAll(string(data), e.dir, a.env.dir))
	if err := os.WriteFile(a.env.cfg, data, 0o600); err != nil {
		a.t.Fatal(err)
	}
	for org, tok := range a.opts.tokens {
		if err := os.WriteFile(filepath.Join(a.env.dir, org+".token"), []byte(tok+"\n"), 0o600); err != nil {
			a.t.Fatal(err)
		}
	}
}

func (a *archiveEnv) run(args ...string) result {
	a.t.Helper()
	return run(a.t, append(args, "--config", a.env.cfg)...)
}

func (a *archiveEnv) mustSync() result {
	a.t.Helper()
	r := a.run("sync")
	if r.code != 0 {
		a.t.Fatalf("sync: exit %d\n%s\n%s", r.code, r.stdout, tailLines(r.stderr, 10))
	}
	return r
}

// exact: the tree holds every event of the truth [from, to) once, read
// with DuckDB over every Parquet file (as a Hive reader sees them).
func (a *archiveEnv) exact(org string) {
	a.t.Helper()
	exact(a.t, idsByOrg(a.t, a.env.out), org, a.sim.EventIDs(org, a.from, a.to))
}

// TestArchiveWindowChange backs "window 1h -> 24h (and back), with or
// without lookback": the change is refused before anything is written,
// naming both sizes and the way out; rewindow rewrites the units; the tree
// never holds an event twice.
func TestArchiveWindowChange(t *testing.T) {
	for _, lookback := range []int{0, 1} {
		t.Run(fmt.Sprint("lookback=", lookback), func(t *testing.T) {
			a := newArchiveEnv(t, vaultsim.Config{Seed: 31}, 30, cfgOpts{lookback: lookback})
			a.mustSync()
			a.exact("org_1")
			a.rewrite(func(o *cfgOpts) { o.window = "24h"; o.start = a.from.Truncate(24 * time.Hour) })
			r := a.run("sync")
			if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "1h") || !strings.Contains(r.stdout+r.stderr, "24h") || !strings.Contains(r.stdout+r.stderr, "vaultsink rewindow") {
				t.Fatalf("sync after 1h -> 24h: exit %d, want 1 naming 1h, 24h and rewindow\n%s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
			}
			a.exact("org_1") // nothing was written
			if r := a.run("rewindow", "--org", "org_1"); r.code != 0 {
				t.Fatalf("rewindow: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			a.exact("org_1")
			a.mustSync()
			a.exact("org_1")
			for _, f := range parquetFiles(t, a.env.out) {
				if !strings.Contains(f, "T0000Z-") || !strings.HasSuffix(f, "T0000Z.parquet") {
					t.Fatalf("%s is not a day's unit", f)
				}
			}
			// And back to hours.
			a.rewrite(func(o *cfgOpts) { o.window = "1h" })
			if r := a.run("sync"); r.code != 1 {
				t.Fatalf("sync after 24h -> 1h: exit %d, want 1", r.code)
			}
			if r := a.run("rewindow", "--org", "org_1"); r.code != 0 {
				t.Fatalf("rewindow back: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			a.mustSync()
			a.exact("org_1")
		})
	}
}

// TestArchiveScopeLoss backs "the token loses part of its scope (the API
// returns 2/3), lookback 3": the re-pulled windows keep every event they
// held, and the events the API no longer returns are reported.
func TestArchiveScopeLoss(t *testing.T) {
	a := newArchiveEnv(t, vaultsim.Config{Seed: 32}, 8, cfgOpts{lookback: 3})
	a.mustSync()
	a.exact("org_1")
	a.sim.SetVisibleShare("org_1", 0.67)
	r := a.mustSync()
	if !strings.Contains(r.stderr, "no longer returns") || !strings.Contains(r.stdout, "vanished=") {
		t.Fatalf("the vanished events were not reported:\n%s\n%s", r.stdout, tailLines(r.stderr, 5))
	}
	a.exact("org_1")
	// verify says what the API no longer returns: ids the sink holds extra.
	if v := a.run("verify", "--from", a.from.Format(time.RFC3339), "--to", a.to.Format(time.RFC3339)); v.code != 3 || !strings.Contains(v.stdout, "extra") {
		t.Fatalf("verify while the API is partial: exit %d, want 3 reporting extra ids\n%s", v.code, tailLines(v.stdout, 5))
	}
}

// TestArchiveRetentionReset backs "retention cut-off mid-window, then
// checkpoint reset --yes (the repair): the cut window is re-pulled from
// its partial answer": nothing the sink holds is lost.
func TestArchiveRetentionReset(t *testing.T) {
	a := newArchiveEnv(t, vaultsim.Config{Seed: 33}, 6, cfgOpts{})
	a.mustSync()
	a.sim.SetRetention("org_1", a.from.Add(90*time.Minute)) // mid-window
	if r := a.run("checkpoint", "reset", "--org", "org_1", "--yes"); r.code != 0 {
		t.Fatalf("reset: %d %s", r.code, r.stderr)
	}
	a.mustSync()
	a.exact("org_1")
}

// TestArchiveFailClosedToken backs "a token without org context (HTTP 200,
// zero rows) for hours, then fixed": the sync fails loudly and the
// checkpoint does not move past the empty windows; once the token is fixed
// they fill in.
func TestArchiveFailClosedToken(t *testing.T) {
	now := time.Now().UTC()
	from := now.Add(-20 * time.Hour).Truncate(time.Hour)
	var clock atomic.Int64 // the API's clock
	clock.Store(now.Add(-9 * time.Hour).UnixNano())
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 34, Orgs: 1, Rate: 400, From: from, Live: true,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from, lookback: 1})
	if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
		t.Fatalf("first sync: %d\n%s", r.code, r.stdout)
	}
	tok := sim.Creds()[0].Token
	sim.SetFailClosed(tok, true) // for the 9 hours that follow
	clock.Store(now.UnixNano())
	r := run(t, "sync", "--config", e.cfg)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "lost its org context") {
		t.Fatalf("sync with a fail-closed token: exit %d, want 1 with the token hint\n%s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
	}
	sim.SetFailClosed(tok, false)
	if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
		t.Fatalf("sync after the fix: %d\n%s", r.code, r.stdout)
	}
	exact(t, idsByOrg(t, e.out), "org_1", sim.EventIDs("org_1", from, now.Truncate(time.Hour)))
}

// TestArchiveForeignToken backs "another org's token: every record
// quarantined as an org mismatch, org reported current": the org fails,
// nothing of the other org is written, and the checkpoint stays.
func TestArchiveForeignToken(t *testing.T) {
	a := newArchiveEnv(t, vaultsim.Config{Seed: 35, Orgs: 2}, 4, cfgOpts{})
	toks := simTokens(a.sim)
	a.rewrite(func(o *cfgOpts) { o.tokens = map[string]string{"org_1": toks["org_1"], "org_2": toks["org_1"]} })
	r := a.run("sync")
	if r.code != 1 || !strings.Contains(r.stdout, "org_2") || !strings.Contains(r.stdout+r.stderr, "names org org_1") {
		t.Fatalf("sync with org_1's token for org_2: exit %d\n%s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
	}
	if got := idsByOrg(t, a.env.out); len(got["org_2"]) != 0 {
		t.Fatalf("%d rows written for org_2", len(got["org_2"]))
	}
	if q, _ := filepath.Glob(filepath.Join(a.env.out, "_quarantine", "org_id=org_2", "*", "*", "*")); len(q) != 0 {
		t.Fatalf("org_1's records quarantined under org_2: %v", q)
	}
	a.rewrite(func(o *cfgOpts) { o.tokens = toks })
	a.mustSync()
	a.exact("org_1")
	a.exact("org_2")
}

// TestArchivePagination backs "pagination auto, the API omits next_cursor
// on the last page, the first window has one page" and "a page-number API
// silently caps per_page at 100, without total_pages": every window is
// walked to its end.
func TestArchivePagination(t *testing.T) {
	t.Run("omitted final cursor", func(t *testing.T) {
		a := newArchiveEnv(t, vaultsim.Config{Seed: 36, OmitFinalCursor: true}, 8, cfgOpts{})
		// Start at the quietest hour, with its count as the page size: the
		// first window walked is one page without a cursor field, the later
		// ones several pages.
		quiet, n := a.from, 1<<30
		for h := a.from; h.Before(a.to); h = h.Add(time.Hour) {
			if c := len(a.sim.EventIDs("org_1", h, h.Add(time.Hour))); c < n {
				quiet, n = h, c
			}
		}
		a.rewrite(func(o *cfgOpts) { o.start, o.pageSize = quiet, n })
		a.from = quiet
		a.mustSync()
		a.exact("org_1")
	})
	t.Run("silent page cap", func(t *testing.T) {
		a := newArchiveEnv(t, vaultsim.Config{Seed: 37, Profile: vaultsim.ProfilePage, PageCap: 100, NoTotals: true}, 6, cfgOpts{pageSize: 1000})
		a.mustSync()
		a.exact("org_1")
	})
}

// TestArchiveAPIClockBehind backs "API clock 6h behind ours (lookback 2):
// windows committed short; events never pulled": windows are judged closed
// by the API's clock, so none is committed short.
func TestArchiveAPIClockBehind(t *testing.T) {
	now := time.Now().UTC()
	from := now.Add(-12 * time.Hour).Truncate(time.Hour)
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 38, Orgs: 1, Rate: 400, From: from, Live: true, ClockOffset: -6 * time.Hour})
	e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from, lookback: 2, settle: "5m"})
	r := run(t, "sync", "--config", e.cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "clock differs") {
		t.Fatalf("sync: exit %d, want 0 reporting the skew\n%s", r.code, tailLines(r.stderr, 5))
	}
	apiNow := now.Add(-6 * time.Hour)
	to := apiNow.Add(-5 * time.Minute).Truncate(time.Hour)
	exact(t, idsByOrg(t, e.out), "org_1", sim.EventIDs("org_1", from, to))
}

// TestArchiveFutureCheckpoint backs "checkpoint end 2099 (corruption, or a
// checkpoint set --to typo accepted without --yes)": set refuses it, a
// forward move needs --yes, and a sync refuses a future checkpoint read
// from the store.
func TestArchiveFutureCheckpoint(t *testing.T) {
	a := newArchiveEnv(t, vaultsim.Config{Seed: 39}, 4, cfgOpts{})
	a.mustSync()
	if r := a.run("checkpoint", "set", "--org", "org_1", "--to", "2099-01-01"); r.code != 2 || !strings.Contains(r.stderr, "future") {
		t.Fatalf("checkpoint set --to 2099: exit %d\n%s", r.code, r.stderr)
	}
	fwd := time.Now().UTC().Truncate(time.Hour).Add(time.Hour) // past the checkpoint, not in the future
	if r := a.run("checkpoint", "set", "--org", "org_1", "--to", fwd.Format(time.RFC3339)); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("checkpoint set forward without --yes: exit %d\n%s", r.code, r.stderr)
	}
	p := filepath.Join(a.env.state, "org_1.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	end := a.to.Format(time.RFC3339)
	if !strings.Contains(string(data), end) {
		t.Fatalf("checkpoint file does not hold %s:\n%s", end, data)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), `"end": "`+end, `"end": "2099-01-01T00:00:00Z`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := a.run("sync")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "future") {
		t.Fatalf("sync over a checkpoint in 2099: exit %d\n%s", r.code, r.stdout)
	}
}

// TestArchiveOneIDOnce backs "same id on a later page with a later
// timestamp; same id in two adjacent windows: stored twice": each id once.
func TestArchiveOneIDOnce(t *testing.T) {
	a := newArchiveEnv(t, vaultsim.Config{Seed: 40, Faults: vaultsim.Faults{Redeliver: 0.05}, RedeliverDelay: 40 * time.Minute}, 6, cfgOpts{lookback: 2})
	a.mustSync()
	a.exact("org_1")
	a.mustSync() // the lookback re-pulls keep it so
	a.exact("org_1")
}

// TestArchiveBoundaries backs "API bounds (from, to], second-precision
// timestamps: an event exactly at a window boundary only ever reaches
// quarantine": every boundary event lands in its window once.
func TestArchiveBoundaries(t *testing.T) {
	a := newArchiveEnv(t, vaultsim.Config{Seed: 41, LeftOpenBounds: true, SecondPrecision: true, Rate: 20000}, 4, cfgOpts{window: "5m"})
	a.mustSync()
	a.exact("org_1")
	if q, _ := filepath.Glob(filepath.Join(a.env.out, "_quarantine", "*", "*", "*", "*")); len(q) != 0 {
		t.Fatalf("records quarantined: %v", q)
	}
}

// TestArchiveConfigChanges backs "an earlier start after syncing; a new
// sink path with an old checkpoint": the first is reported with the
// backfill command that fills it, the second refused.
func TestArchiveConfigChanges(t *testing.T) {
	a := newArchiveEnv(t, vaultsim.Config{Seed: 42}, 8, cfgOpts{})
	a.rewrite(func(o *cfgOpts) { o.start = a.from.Add(4 * time.Hour) })
	a.mustSync()
	a.rewrite(func(o *cfgOpts) { o.start = a.from })
	r := a.mustSync()
	if !strings.Contains(r.stderr, "vaultsink backfill") || !strings.Contains(r.stderr, a.from.Format(time.RFC3339)) {
		t.Fatalf("an earlier start was not reported with its backfill command:\n%s", tailLines(r.stderr, 5))
	}
	if r := a.run("backfill", "--org", "org_1", "--from", a.from.Format(time.RFC3339), "--to", a.from.Add(4*time.Hour).Format(time.RFC3339)); r.code != 0 {
		t.Fatalf("backfill: %d\n%s", r.code, r.stderr)
	}
	a.exact("org_1")
	if r := a.mustSync(); strings.Contains(r.stderr, "vaultsink backfill") {
		t.Fatalf("still reported after the backfill:\n%s", tailLines(r.stderr, 5))
	}
	a.rewrite(func(o *cfgOpts) { o.out = filepath.Join(a.env.dir, "elsewhere") })
	r = a.run("sync")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "checkpoint reset") {
		t.Fatalf("sync into a new sink with the old checkpoint: exit %d\n%s", r.code, r.stdout)
	}
}
