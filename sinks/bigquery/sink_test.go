package bigquery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"cloud.google.com/go/bigquery"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/googleapi"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

const project = "vaultsink-test"

func testConfig(srv *bqtest.Server, t testing.TB) Config {
	cfg := Config{Project: project, Dataset: "audit", Location: "US", Endpoint: srv.URL(), WithoutAuthentication: true,
		GroupDelay: -1, TempDir: t.TempDir()}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newSink(t testing.TB, srv *bqtest.Server, mod func(*Config)) *Sink {
	t.Helper()
	cfg := testConfig(srv, t)
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(context.Background(), cfg, sinks.Env{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s.retryBase = 10 * time.Millisecond
	s.pollBase = 5 * time.Millisecond
	return s
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinks.Reader) {
		srv := bqtest.Start(t, project)
		s := newSink(t, srv, nil)
		return s, s
	})
}

// ids reads the target's ids of w through the sink's Reader.
func ids(t *testing.T, s *Sink, w event.Window) []string {
	t.Helper()
	var out []string
	if err := s.EventIDs(context.Background(), w, func(id string) error { out = append(out, id); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

func openUnit(t testing.TB, s *Sink, w event.Window, ids []string) sinks.Unit {
	t.Helper()
	ctx := context.Background()
	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 500 {
		rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(w, ids[i:min(i+500, len(ids))]))
		err := u.Write(ctx, rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	return u
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func countRows(t *testing.T, srv *bqtest.Server, q string) int {
	t.Helper()
	rows, err := srv.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestCatchUpBatching: 200 orgs catch up 2 days of hourly windows through
// CommitBatch (max_batch windows per call), concurrently, with group commit
// across orgs. The jobs per table must stay far inside BigQuery's daily
// quotas: the bound asserted is the no-cross-org-grouping worst case.
func TestCatchUpBatching(t *testing.T) {
	orgs, days := 200, 2
	switch {
	case raceEnabled:
		orgs = 20
	case testing.Short():
		orgs = 40
	}
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, func(c *Config) { c.GroupDelay = 50 * time.Millisecond })
	defer s.Close()
	ctx := context.Background()
	hours := days * 24
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // the planner's bounded parallelism
	errs := make(chan error, orgs)
	for o := 0; o < orgs; o++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			org := fmt.Sprintf("org_%03d", o)
			for h := 0; h < hours; h += s.MaxBatch() {
				var us []sinks.Unit
				for k := h; k < min(h+s.MaxBatch(), hours); k++ {
					w := sinktest.Window(org, k)
					n := 3
					if k%7 == 3 {
						n = 0 // some empty windows
					}
					us = append(us, openUnit(t, s, w, sinktest.IDs(fmt.Sprintf("%s-h%d", org, k), 0, n)))
				}
				res, err := s.CommitBatch(ctx, us)
				if err != nil {
					errs <- err
					return
				}
				if len(res) != len(us) {
					errs <- fmt.Errorf("%d results for %d units", len(res), len(us))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := 0
	for o := 0; o < orgs; o++ {
		for k := 0; k < hours; k++ {
			if k%7 != 3 {
				want += 3
			}
		}
	}
	if got := countRows(t, srv, `SELECT count(*) FROM "audit"."vaultterm_events"`); got != want {
		t.Fatalf("target holds %d rows, want %d", got, want)
	}
	if got := countRows(t, srv, `SELECT count(*) - count(DISTINCT event_id) FROM "audit"."vaultterm_events"`); got != 0 {
		t.Fatalf("%d duplicate ids", got)
	}
	loads, queries := srv.Totals()
	dml := srv.DMLJobs("audit", "vaultterm_events")
	calls := orgs * ((hours + s.MaxBatch() - 1) / s.MaxBatch())
	t.Logf("%d orgs x %d days = %d windows, %d CommitBatch calls: %d load jobs, %d DML jobs on the target, %d query jobs",
		orgs, days, orgs*hours, calls, loads, dml, queries)
	// Worst case without cross-org grouping is one load and one DML per call;
	// BigQuery allows 1,500 table modifications per table per day.
	if loads > calls || dml > calls || dml > 1500 {
		t.Fatalf("%d loads, %d DML for %d CommitBatch calls: batching did not happen", loads, dml, calls)
	}
	// Group commit must have merged orgs: well under one job per call.
	if dml > calls/2 {
		t.Fatalf("%d DML jobs for %d calls: group commit did not merge orgs", dml, calls)
	}
	for _, tb := range srv.Tables("audit") {
		if n := srv.LoadJobs("audit", tb); n > 1 {
			t.Errorf("staging table %s got %d load jobs, want 1", tb, n)
		}
	}
	if got := srv.Tables("audit"); len(got) != 3 {
		t.Errorf("tables left in the dataset: %v, want the target and its quarantine and fence tables (staging dropped)", got)
	}
}

// TestLostResponses: BigQuery accepted the load (and then the DML) but the
// answer was lost, as when the process or the connection dies right after
// jobs.insert. The retry under the same job id gets 409 duplicate, waits for
// the existing job and succeeds; nothing is loaded or added twice, and the
// rows the window held are kept.
func TestLostResponses(t *testing.T) {
	for _, kind := range []bqtest.JobKind{bqtest.LoadJob, bqtest.DMLJob} {
		t.Run(string(kind), func(t *testing.T) {
			srv := bqtest.Start(t, project)
			s := newSink(t, srv, nil)
			defer s.Close()
			w := sinktest.Window("org_a", 5)
			old := sinktest.IDs("old", 0, 50)
			sinktest.WriteWindow(t, s, w, old, 1000)
			loads0, queries0 := srv.Totals()
			srv.Inject(kind, bqtest.LoseResponse, "", 1)
			sinktest.WriteWindow(t, s, w, sinktest.IDs("evt", 0, 1200), 1000)
			want := append(sinktest.IDs("evt", 0, 1200), old...)
			if got := ids(t, s, w); !equal(got, sorted(want)) {
				t.Fatalf("after recovery: %d ids, want %d", len(got), len(want))
			}
			loads, queries := srv.Totals()
			// One load, the count and the DML (plus the read query): the 409
			// retry created no job.
			if loads-loads0 != 1 || queries-queries0 != 3 {
				t.Fatalf("jobs created: %d loads, %d queries; want 1 and 3", loads-loads0, queries-queries0)
			}
		})
	}
}

// TestRerunAfterCrash: a run loaded the staging table and died before the
// DML; a later run with the very same bytes finds the load job (409) and
// goes on. Simulated by committing the same prepared batch twice after the
// first commit's DML was rejected.
func TestRerunAfterCrash(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	w := sinktest.Window("org_a", 7)
	want := sinktest.IDs("evt", 0, 300)
	u := openUnit(t, s, w, want).(*unit)
	if err := u.finish(); err != nil {
		t.Fatal(err)
	}
	srv.Inject(bqtest.DMLJob, bqtest.RejectInsert, "invalid", 1) // the "crash": the DML never ran
	err := s.commitGroup(ctx, []*unit{u}, 1)
	var je *JobError
	if !errors.As(err, &je) || je.Kind != "dml" || je.Reason != "invalid" || !errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("first run: %v, want a permanent dml JobError with reason invalid", err)
	}
	if n := len(ids(t, s, w)); n != 0 {
		t.Fatalf("%d rows visible after a failed DML", n)
	}
	loads0, _ := srv.Totals()
	if err := s.commitGroup(ctx, []*unit{u}, 1); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if loads, _ := srv.Totals(); loads != loads0 {
		t.Fatalf("rerun created %d new load jobs, want 0 (409 -> existing job)", loads-loads0)
	}
	if got := ids(t, s, w); !equal(got, sorted(want)) {
		t.Fatalf("after rerun: %d ids, want %d", len(got), len(want))
	}
	u.Abort(ctx)
}

// TestRerunAfterPermanentJobFailure: a DML job that ran and failed for a
// permanent reason (a schema problem since fixed, say) stays in BigQuery's job
// history under its deterministic id. A rerun of the same window must not be
// stuck on that failed job forever: it moves on to the next id of the sequence.
func TestRerunAfterPermanentJobFailure(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	w := sinktest.Window("org_a", 8)
	want := sinktest.IDs("evt", 0, 200)
	u := openUnit(t, s, w, want).(*unit)
	if err := u.finish(); err != nil {
		t.Fatal(err)
	}
	srv.Inject(bqtest.DMLJob, bqtest.FailJob, "invalidQuery", 1)
	if err := s.commitGroup(ctx, []*unit{u}, 1); err == nil {
		t.Fatal("first run: the injected permanent failure should surface")
	}
	for run := 2; run <= 3; run++ {
		if err := s.commitGroup(ctx, []*unit{u}, 1); err != nil {
			t.Fatalf("run %d: %v (stuck on the earlier failed job?)", run, err)
		}
		if got := ids(t, s, w); !equal(got, sorted(want)) {
			t.Fatalf("run %d: %d ids, want %d", run, len(got), len(want))
		}
	}
	u.Abort(ctx)
}

// TestTransientJobFailures: jobs.insert rejected with 503 and jobs that fail
// with backendError are retried (the latter under the next id).
func TestTransientJobFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind bqtest.JobKind
		mode bqtest.FaultMode
	}{
		{"load insert 503", bqtest.LoadJob, bqtest.RejectInsert},
		{"load job backendError", bqtest.LoadJob, bqtest.FailJob},
		{"dml insert 503", bqtest.DMLJob, bqtest.RejectInsert},
		{"dml job backendError", bqtest.DMLJob, bqtest.FailJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bqtest.Start(t, project)
			s := newSink(t, srv, nil)
			defer s.Close()
			w := sinktest.Window("org_a", 9)
			want := sinktest.IDs("evt", 0, 100)
			srv.Inject(tc.kind, tc.mode, "backendError", 2)
			sinktest.WriteWindow(t, s, w, want, 1000)
			if got := ids(t, s, w); !equal(got, sorted(want)) {
				t.Fatalf("%d ids, want %d", len(got), len(want))
			}
		})
	}
}

// TestResumableUpload forces the resumable path with a small chunk size.
func TestResumableUpload(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	s.mediaOpts = []googleapi.MediaOption{googleapi.ChunkSize(256 * 1024)}
	w := sinktest.Window("org_r", 1)
	want := sinktest.IDs("evt", 0, 30000)
	res := sinktest.WriteWindow(t, s, w, want, 1000)
	if res.Bytes < 3*256*1024 {
		t.Fatalf("file of %d bytes does not span several chunks; grow the window", res.Bytes)
	}
	if got := ids(t, s, w); !equal(got, sorted(want)) {
		t.Fatalf("%d ids, want %d", len(got), len(want))
	}
	if mp, sessions, chunks := srv.Uploads(); mp != 0 || sessions != 1 || chunks < 3 {
		t.Fatalf("uploads: %d multipart, %d resumable sessions, %d chunks; want 0, 1, >= 3", mp, sessions, chunks)
	}
	// And a lost response on the resumable path recovers the same way (a
	// re-pull of fewer events keeps every row).
	srv.Inject(bqtest.LoadJob, bqtest.LoseResponse, "", 1)
	sinktest.WriteWindow(t, s, w, slices.Concat(want[:20000], sinktest.IDs("late", 0, 100)), 1000)
	if got := ids(t, s, w); !equal(got, sorted(slices.Concat(want, sinktest.IDs("late", 0, 100)))) {
		t.Fatalf("%d ids, want %d", len(got), len(want)+100)
	}
}

func TestIncompatibleSchema(t *testing.T) {
	for _, tc := range []struct {
		name, ddl string
		ok        bool
	}{
		{"timestamp is a string", `CREATE TABLE audit.vaultterm_events (event_id STRING NOT NULL, org_id STRING NOT NULL, timestamp STRING NOT NULL)`, false},
		{"unknown required column", `CREATE TABLE audit.vaultterm_events (event_id STRING NOT NULL, org_id STRING NOT NULL, timestamp TIMESTAMP NOT NULL, tenant STRING NOT NULL)`, false},
		{"missing columns are added", `CREATE TABLE audit.vaultterm_events (event_id STRING NOT NULL, org_id STRING NOT NULL, timestamp TIMESTAMP NOT NULL, mine STRING)`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bqtest.Start(t, project)
			s := newSink(t, srv, nil)
			defer s.Close()
			ctx := context.Background()
			// Made through the API as a user would: dataset, then the table by DDL.
			if err := s.client.Dataset("audit").Create(ctx, nil); err != nil {
				t.Fatal(err)
			}
			q := s.client.Query(tc.ddl)
			job, err := q.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
				t.Fatalf("ddl: %v %v", err, st.Err())
			}
			w := sinktest.Window("org_a", 2)
			u := openUnit(t, s, w, sinktest.IDs("evt", 0, 10))
			defer u.Abort(ctx)
			_, err = u.Commit(ctx)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(t, s, w); len(got) != 10 {
					t.Fatalf("%d ids, want 10", len(got))
				}
				return
			}
			if !errors.Is(err, sinks.ErrPermanent) {
				t.Fatalf("commit: %v, want ErrPermanent", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

// TestRealBigQuery runs the conformance suite and the cases the stand-in
// models (fencing, concurrent writers, poison JSON) against the real
// service, and checks with dry runs that the commit's reads prune
// partitions.
func TestRealBigQuery(t *testing.T) {
	proj := os.Getenv("VAULTSINK_BQ_PROJECT")
	if proj == "" {
		t.Skip("set VAULTSINK_BQ_PROJECT (and Application Default Credentials or GOOGLE_APPLICATION_CREDENTIALS) to run against real BigQuery")
	}
	if os.Getenv("GOOGLE_APPLICATION_CREDENTIALS") == "" {
		if _, err := os.Stat(os.ExpandEnv("$HOME/.config/gcloud/application_default_credentials.json")); err != nil {
			t.Skip("VAULTSINK_BQ_PROJECT is set but no credentials were found (GOOGLE_APPLICATION_CREDENTIALS or gcloud ADC)")
		}
	}
	dataset := os.Getenv("VAULTSINK_BQ_DATASET")
	if dataset == "" {
		dataset = "vaultsink_it"
	}
	location := os.Getenv("VAULTSINK_BQ_LOCATION")
	if location == "" {
		location = "US"
	}
	// real makes sinks on a fresh table of the test's own.
	real := func(t *testing.T) backend {
		table := fmt.Sprintf("it_%d", time.Now().UnixNano())
		return backend{newSink: func(t *testing.T, mod func(*Config)) *Sink {
			cfg := Config{Project: proj, Dataset: dataset, Location: location, GroupDelay: -1, TempDir: t.TempDir(), Table: table}
			cfg.SetDefaults()
			if mod != nil {
				mod(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			s, err := New(context.Background(), cfg, sinks.Env{Registerer: prometheus.NewRegistry(), Version: "it"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx := context.Background()
				for _, tb := range []string{cfg.Table, s.quarantineTable(), s.fenceTable()} {
					s.client.Dataset(dataset).Table(tb).Delete(ctx)
				}
				s.Close()
			})
			return s
		}}
	}
	t.Run("Conformance", func(t *testing.T) {
		sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinks.Reader) {
			s := real(t).newSink(t, nil)
			return s, s
		})
	})
	t.Run("Fence", func(t *testing.T) { testFence(t, real(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, real(t)) })
	t.Run("PoisonJSON", func(t *testing.T) { testPoisonJSON(t, real(t)) })
	t.Run("PruningDryRun", func(t *testing.T) { testPruningDryRun(t, real(t)) })
}

// testPruningDryRun: with rows on two days, a dry run of the count query
// for a window of one day processes fewer bytes than the same query with
// its constant bounds opened to all time: the bounds prune partitions.
func testPruningDryRun(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.newSink(t, nil)
	for _, h := range []int{1, 49} {
		w := sinktest.Window("org_x", h)
		sinktest.WriteWindow(t, s, w, sinktest.IDs(fmt.Sprint("d", h), 0, 2000), 1000)
	}
	dry := func(sql string, params []bigquery.QueryParameter) int64 {
		q := s.client.Query(sql)
		q.Parameters = params
		q.DryRun = true
		q.Location = s.loc()
		job, err := q.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := job.LastStatus()
		if st == nil || st.Statistics == nil {
			t.Fatal("dry run returned no statistics")
		}
		return st.Statistics.TotalBytesProcessed
	}
	sql, params := s.countSQL([]*unit{{s: s, w: sinktest.Window("org_x", 1)}}, "")
	pruned := dry(sql, params)
	wide := slices.Clone(params)
	for i := range wide {
		switch wide[i].Name {
		case "lo":
			wide[i].Value = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		case "hi":
			wide[i].Value = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		}
	}
	all := dry(sql, wide)
	t.Logf("count query: %d bytes with its bounds, %d without", pruned, all)
	if pruned <= 0 || pruned >= all {
		t.Fatalf("the bounded count query processes %d bytes, the unbounded %d: no partition was pruned", pruned, all)
	}
}

// TestBatchQuarantine: quarantined records of several units committed in one
// batch are merged into one staging file and all land in <table>_quarantine.
func TestBatchQuarantine(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	var units []sinks.Unit
	for h := 0; h < 3; h++ {
		w := sinktest.Window("org_q", h)
		u := openUnit(t, s, w, sinktest.IDs(fmt.Sprintf("e%d_", h), 0, 50))
		for i := 0; i <= h; i++ {
			q := event.Quarantined{Org: w.Org, Window: w.Range(), Page: 1, Reason: "missing timestamp", Raw: fmt.Sprintf(`{"n":%d}`, i)}
			if err := u.Quarantine(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		units = append(units, u)
	}
	res, err := s.CommitBatch(ctx, units)
	if err != nil {
		t.Fatal(err)
	}
	var nq int64
	for _, r := range res {
		nq += r.Quarantined
	}
	rows, err := srv.Query(ctx, `SELECT count(*) FROM "audit"."vaultterm_events_quarantine" WHERE org_id = 'org_q'`)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	rows.Close()
	if n != 6 || nq != 6 {
		t.Fatalf("quarantine table holds %d rows, results say %d; want 6 (1+2+3)", n, nq)
	}
}
