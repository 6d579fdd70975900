package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/runner"
)

// summaryLines maps the first word of each stdout line to the line.
func summaryLines(out string) map[string]string {
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[0]] = l
		}
	}
	return lines
}

// TestSyncOrgFilter: `sync --org` runs the orgs named and no other.
func TestSyncOrgFilter(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 100, hours: 4})
	out := e.mustRun("sync", "--org", "org_2")
	lines := summaryLines(out)
	if !strings.Contains(lines["org_2"], "current") || lines["org_1"] != "" || lines["org_3"] != "" {
		t.Fatalf("sync --org org_2 summary:\n%s", out)
	}
	got := idsByOrg(t, duck(t), e.outDir())
	if len(got["org_2"]) == 0 || len(got["org_1"]) != 0 || len(got["org_3"]) != 0 {
		t.Fatalf("rows per org after sync --org org_2: %d %d %d", len(got["org_1"]), len(got["org_2"]), len(got["org_3"]))
	}
	out = e.mustRun("sync", "--org", "org_1,org_3")
	lines = summaryLines(out)
	wrote := regexp.MustCompile(`current +windows=[1-9]`)
	if !wrote.MatchString(lines["org_1"]) || !wrote.MatchString(lines["org_3"]) || lines["org_2"] != "" {
		t.Fatalf("sync --org org_1,org_3 summary:\n%s", out)
	}
}

// TestSyncEveryOrgYielded: a sync whose orgs are all held by another
// process still exits 0, but says so, and names the holder.
func TestSyncEveryOrgYielded(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 100, hours: 2})
	cfg, err := config.Load(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cfg.Checkpoint.Config.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	for _, org := range e.sim.Orgs() {
		cp := checkpoint.Checkpoint{Org: org, Lease: &checkpoint.Lease{Owner: "host-b/4242", Expires: until, Epoch: 7}}
		if _, err := store.Put(context.Background(), cp); err != nil {
			t.Fatal(err)
		}
	}
	_ = store.Close()
	out := e.mustRun("sync")
	for _, want := range []string{
		"org_1: yielded: the org was being synced by host-b/4242 (lease epoch 7, until " + until.Format(time.RFC3339) + ")",
		"sync: every org (3 orgs) was being synced by another process: this pass pulled nothing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %q:\n%s", want, out)
		}
	}
}

// TestBackfillSeveralOrgs: one backfill runs several orgs; off a terminal
// it draws no bar and logs its progress as JSON lines whose durations are
// seconds.
func TestBackfillSeveralOrgs(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 100, hours: 4})
	out, errs, err := e.run(context.Background(), "backfill", "--org", "org_1", "--org", "org_3", "--log-level", "info",
		"--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339))
	if err != nil {
		t.Fatalf("backfill: %v\n%s%s", err, out, errs)
	}
	for _, org := range []string{"org_1", "org_3"} {
		if !strings.Contains(out, "backfill "+org+": 4 windows: 4 written, 0 skipped") {
			t.Errorf("no summary of %s:\n%s", org, out)
		}
	}
	if strings.Contains(out, "org_2") {
		t.Errorf("org_2 was not asked for:\n%s", out)
	}
	got := idsByOrg(t, duck(t), e.outDir())
	if len(got["org_1"]) == 0 || len(got["org_2"]) != 0 || len(got["org_3"]) == 0 {
		t.Fatalf("rows per org: %d %d %d", len(got["org_1"]), len(got["org_2"]), len(got["org_3"]))
	}
	if strings.Contains(errs, "\r") {
		t.Errorf("a bar was drawn off a terminal:\n%q", errs)
	}
	progressed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(errs))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("a stderr line is not JSON: %q", sc.Text())
		}
		if rec["msg"] != "backfill progress" {
			continue
		}
		progressed[rec["org"].(string)] = true
		d, ok := rec["duration"].(float64)
		if !ok || d <= 0 || d > 600 {
			t.Errorf("duration %v: want seconds as a float", rec["duration"])
		}
		if rec["windows_total"] != 4.0 {
			t.Errorf("windows_total %v, want 4", rec["windows_total"])
		}
	}
	if !progressed["org_1"] || !progressed["org_3"] {
		t.Errorf("no backfill progress line for each org:\n%s", errs)
	}
}

// TestBackfillRangeNotes: a range in the future, and a --to not closed
// yet, are each stated with the reason, not silently cut.
func TestBackfillRangeNotes(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 100, hours: 2})
	future := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Hour)
	out, errs, err := e.run(context.Background(), "backfill", "--org", "org_1",
		"--from", future.Format(time.RFC3339), "--to", future.Add(time.Hour).Format(time.RFC3339))
	if err != nil || !regexp.MustCompile(`backfill org_1: nothing to do: the range starts at \S+, after the last closed window, which ends at \S+ \(a 1h window closes settle \(5m\) after its end\)`).MatchString(out) {
		t.Errorf("future range: %v\n%s%s", err, out, errs)
	}
	out, errs, err = e.run(context.Background(), "backfill", "--org", "org_1",
		"--from", e.to.Add(-time.Hour).Format(time.RFC3339), "--to", future.Format(time.RFC3339))
	if err != nil || !strings.Contains(out, "backfill org_1: --to "+future.Format(time.RFC3339)+" is not closed yet: the range ends at ") {
		t.Errorf("open --to: %v\n%s%s", err, out, errs)
	}
}

func TestBackfillRange(t *testing.T) {
	now := time.Date(2026, 6, 1, 10, 30, 0, 0, time.UTC)
	spec := runner.OrgSpec{Resolved: config.Resolved{Window: time.Hour}}
	d := func(h, m int) time.Time { return time.Date(2026, 6, 1, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		from, to time.Time
		n        int
		note     string
	}{
		{d(0, 0), d(8, 0), 8, ""},
		{d(0, 0), d(12, 0), 10, "is not closed yet: the range ends at 2026-06-01T10:00:00Z"},
		{d(0, 0), d(7, 30), 7, "falls inside a 1h window: the range ends at 2026-06-01T07:00:00Z"},
		{d(7, 10), d(7, 50), 0, "nothing to do: the range 2026-06-01T07:10:00Z..2026-06-01T07:50:00Z lies inside one 1h window"},
		{d(11, 0), d(13, 0), 0, "nothing to do: the range starts at 2026-06-01T11:00:00Z, after the last closed window"},
	} {
		n, note := backfillRange(spec, tc.from, tc.to, now, 5*time.Minute)
		if n != tc.n || (tc.note == "") != (note == "") || !strings.Contains(note, tc.note) {
			t.Errorf("%s..%s: %d windows, %q; want %d, %q", tc.from, tc.to, n, note, tc.n, tc.note)
		}
	}
}

// TestBackfillInterrupted: a stop during a backfill says how far it got and
// that rerunning resumes, and exits 130 (it said "backfill stopped:
// context canceled" and exited 1).
func TestBackfillInterrupted(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 2000, latency: 30 * time.Millisecond, pageSize: 100, hours: 8})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && len(listParquet(t, e.outDir())) < 2 {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	out, errs, err := e.run(ctx, "backfill", "--org", "org_1", "--concurrency", "2",
		"--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339))
	if code := exitStatus(err); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d\n%s%s", code, err, exitInterrupted, out, errs)
	}
	m := regexp.MustCompile(`backfill org_1: interrupted: (\d+) of 8 windows done .*rerun the same command to (resume|finish)`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" {
		t.Fatalf("no interrupted summary with windows done:\n%s", out)
	}
	if strings.Contains(out+errs, "context canceled") {
		t.Errorf("the bare cancellation leaks out:\n%s%s", out, errs)
	}
	// Rerunning finishes the job.
	out = e.mustRun("backfill", "--org", "org_1", "--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339))
	if !strings.Contains(out, "backfill org_1: 8 windows:") {
		t.Fatalf("rerun:\n%s", out)
	}
}

// TestConsoleOneFormat: notices (the signal messages) and durations take
// the logger's format once there is one; a plain line before.
func TestConsoleOneFormat(t *testing.T) {
	var buf bytes.Buffer
	con := newConsole(&buf)
	con.notice(slog.LevelWarn, "stopping: before the logger")
	if buf.String() != "vaultsink: stopping: before the logger\n" {
		t.Fatalf("before the logger: %q", buf.String())
	}
	buf.Reset()
	log, err := newLogger(config.Log{Level: "info", Format: "json"}, con)
	if err != nil {
		t.Fatal(err)
	}
	con.notice(slog.LevelWarn, "stopping: no new windows start")
	log.Info("window committed", "duration", 1500*time.Millisecond)
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 2 || recs[0]["msg"] != "stopping: no new windows start" || recs[0]["level"] != "WARN" {
		t.Fatalf("records: %v", recs)
	}
	if recs[1]["duration"] != 1.5 {
		t.Errorf("JSON duration %v, want 1.5 (seconds)", recs[1]["duration"])
	}

	buf.Reset()
	con = newConsole(&buf)
	log, err = newLogger(config.Log{Level: "info", Format: "text"}, con)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("window committed", "duration", 90*time.Minute)
	if !strings.Contains(buf.String(), "duration=1h30m ") && !strings.HasSuffix(strings.TrimSpace(buf.String()), "duration=1h30m") {
		t.Errorf("text duration: %q", buf.String())
	}
}

// TestConsoleRouting: while bars are drawn the console's writes (the log)
// go to their container; after, to stderr again.
func TestConsoleRouting(t *testing.T) {
	var stderr, bars bytes.Buffer
	con := newConsole(&stderr)
	log, err := newLogger(config.Log{Level: "info", Format: "json"}, con)
	if err != nil {
		t.Fatal(err)
	}
	restore := con.route(&bars)
	log.Info("window committed")
	restore()
	log.Info("backfill done")
	if !strings.Contains(bars.String(), "window committed") || strings.Contains(bars.String(), "backfill done") {
		t.Errorf("routed: %q", bars.String())
	}
	if strings.Contains(stderr.String(), "window committed") || !strings.Contains(stderr.String(), "backfill done") {
		t.Errorf("stderr: %q", stderr.String())
	}
}

// TestBackfillCountsEmptyWindows: windows the API has no events for are
// written (nothing) and said to be empty, with why a rerun pulls them again;
// before, they counted as plain "written".
func TestBackfillCountsEmptyWindows(t *testing.T) {
	e := newE2E(t, e2eOpts{rate: 100, hours: 4})
	from := e.from.Add(-3 * time.Hour) // before the simulator's history
	out, errs, err := e.run(context.Background(), "backfill", "--org", "org_1",
		"--from", from.Format(time.RFC3339), "--to", e.from.Add(time.Hour).Format(time.RFC3339))
	if err != nil {
		t.Fatalf("backfill: %v\n%s%s", err, out, errs)
	}
	if want := "backfill org_1: 4 windows: 4 written (3 of them empty: the API had no events there, and a rerun pulls them again), 0 skipped"; !strings.Contains(out, want) {
		t.Errorf("backfill output lacks %q:\n%s", want, out)
	}
}
