package bigquery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

// openEvents opens a unit of w holding evs, with the fence f when non-nil.
func openEvents(t testing.TB, s *Sink, w event.Window, evs []sinktest.Event, f *sinks.Fence) *unit {
	t.Helper()
	ctx := context.Background()
	x, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	u := x.(*unit)
	if f != nil {
		u.SetFence(*f)
	}
	if len(evs) > 0 {
		rec := sinktest.Batch(memory.DefaultAllocator, evs)
		defer rec.Release()
		if err := u.Write(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// backend makes sinks on one table for a test that runs on the stand-in
// and, in TestRealBigQuery, on BigQuery.
type backend struct {
	newSink func(t *testing.T, mod func(*Config)) *Sink
	srv     *bqtest.Server // nil on BigQuery
}

func standIn(t *testing.T) backend {
	srv := bqtest.Start(t, project)
	return backend{srv: srv, newSink: func(t *testing.T, mod func(*Config)) *Sink {
		s := newSink(t, srv, mod)
		t.Cleanup(func() { s.Close() })
		return s
	}}
}

// TestFence: two writers of one org, the lease's epoch 1 and its successor
// epoch 2. The epoch-2 writer commits first; the epoch-1 commit that comes
// after is refused with sinks.ErrFenced naming the newer owner and epoch,
// and writes nothing. Another org committed in the same group as the
// refused one is written.
func TestFence(t *testing.T) { testFence(t, standIn(t)) }

func testFence(t *testing.T, b backend) {
	ctx := context.Background()
	old := b.newSink(t, nil)
	cur := b.newSink(t, nil)
	w := sinktest.Window("org_f", 3)
	stale := openEvents(t, old, w, sinktest.Events(w, sinktest.IDs("stale", 0, 40)), &sinks.Fence{Owner: "host-a-1", Epoch: 1})
	fresh := openEvents(t, cur, w, sinktest.Events(w, sinktest.IDs("fresh", 0, 60)), &sinks.Fence{Owner: "host-b-2", Epoch: 2})
	if _, err := fresh.Commit(ctx); err != nil {
		t.Fatalf("epoch 2: %v", err)
	}
	// The stale writer commits its window with another org's: only its own
	// is refused.
	other := sinktest.Window("org_g", 3)
	otherUnit := openEvents(t, old, other, sinktest.Events(other, sinktest.IDs("other", 0, 10)), &sinks.Fence{Owner: "host-a-1", Epoch: 7})
	var wg sync.WaitGroup
	var staleErr, otherErr error
	wg.Add(2)
	go func() { defer wg.Done(); _, staleErr = stale.Commit(ctx) }()
	go func() { defer wg.Done(); _, otherErr = otherUnit.Commit(ctx) }()
	wg.Wait()
	if !errors.Is(staleErr, sinks.ErrFenced) || !strings.Contains(staleErr.Error(), "lease lost to host-b-2 (epoch 2)") {
		t.Fatalf("epoch-1 commit after epoch 2: %v, want sinks.ErrFenced naming host-b-2 (epoch 2)", staleErr)
	}
	if errors.Is(staleErr, sinks.ErrPermanent) {
		t.Fatalf("a fenced commit is not a permanent sink error: %v", staleErr)
	}
	var fe *FencedError
	if !errors.As(staleErr, &fe) || fe.Org != "org_f" || fe.Epoch != 2 || fe.Ours.Epoch != 1 {
		t.Fatalf("FencedError = %+v", fe)
	}
	if otherErr != nil {
		t.Fatalf("another org in the refused commit's group: %v", otherErr)
	}
	stale.Abort(ctx)
	if got := ids(t, cur, w); !equal(got, sorted(sinktest.IDs("fresh", 0, 60))) {
		t.Fatalf("the window holds %d ids, want the epoch-2 writer's 60 and none of the stale writer's", len(got))
	}
	if got := ids(t, cur, other); len(got) != 10 {
		t.Fatalf("org_g holds %d ids, want 10", len(got))
	}
	// The epoch-2 writer goes on; a unit without a fence (a tool) is not
	// checked.
	more := openEvents(t, cur, sinktest.Window("org_f", 4), sinktest.Events(sinktest.Window("org_f", 4), sinktest.IDs("more", 0, 5)), &sinks.Fence{Owner: "host-b-2", Epoch: 2})
	if _, err := more.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tool := openEvents(t, old, sinktest.Window("org_f", 5), sinktest.Events(sinktest.Window("org_f", 5), sinktest.IDs("tool", 0, 5)), nil)
	if _, err := tool.Commit(ctx); err != nil {
		t.Fatalf("a unit without a fence: %v", err)
	}
	if n := testutil.ToFloat64(old.m.fenced); n != 1 {
		t.Errorf("vaultsink_bigquery_fenced_total = %v, want 1", n)
	}
	if b.srv != nil {
		rows, err := b.srv.Query(ctx, `SELECT org_id, epoch, owner FROM "audit"."vaultterm_events_fence" ORDER BY org_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var org, owner string
			var epoch int64
			if err := rows.Scan(&org, &epoch, &owner); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s=%d/%s", org, epoch, owner))
		}
		if want := "org_f=2/host-b-2 org_g=7/host-a-1"; strings.Join(got, " ") != want {
			t.Fatalf("fence table: %v, want %s", got, want)
		}
	}
	// An equal epoch passes. The org's checkpoint is lost: a new lease
	// starts at epoch 1 again, refused until the org's fence row is reset.
	third := b.newSink(t, nil)
	commit := func(h int, f sinks.Fence) error {
		w := sinktest.Window("org_f", h)
		u := openEvents(t, third, w, sinktest.Events(w, sinktest.IDs(fmt.Sprint("h", h), 0, 3)), &f)
		defer u.Abort(ctx)
		_, err := u.Commit(ctx)
		return err
	}
	if err := commit(6, sinks.Fence{Owner: "host-c-3", Epoch: 2}); err != nil {
		t.Fatalf("an equal epoch: %v", err)
	}
	if err := commit(7, sinks.Fence{Owner: "host-d-4", Epoch: 1}); !errors.Is(err, sinks.ErrFenced) {
		t.Fatalf("epoch 1 after epoch 2: %v, want ErrFenced", err)
	}
	if err := third.ResetFence(ctx, "org_f"); err != nil {
		t.Fatal(err)
	}
	if err := commit(7, sinks.Fence{Owner: "host-d-4", Epoch: 1}); err != nil {
		t.Fatalf("epoch 1 after ResetFence: %v", err)
	}
}

// TestConcurrentWriters: two processes (two sinks) commit windows of their
// own orgs to one table at the same moments, as static shards on one
// schedule do. BigQuery cancels one of two transactions that change a table
// at once; the sink retries it, and every row lands once.
func TestConcurrentWriters(t *testing.T) { testConcurrentWriters(t, standIn(t)) }

func testConcurrentWriters(t *testing.T, b backend) {
	if b.srv != nil {
		b.srv.SetStatementLatency(40 * time.Millisecond) // transactions overlap
	}
	ctx := context.Background()
	sinksOf := []*Sink{b.newSink(t, nil), b.newSink(t, nil)}
	const rounds = 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for p, s := range sinksOf {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := 0; h < rounds; h++ {
				w := sinktest.Window(fmt.Sprintf("shard%d", p), h)
				u := openEvents(t, s, w, sinktest.Events(w, sinktest.IDs(fmt.Sprintf("p%d-h%d", p, h), 0, 30)), &sinks.Fence{Owner: fmt.Sprintf("proc-%d", p), Epoch: 1})
				if _, err := u.Commit(ctx); err != nil {
					errs <- fmt.Errorf("process %d, hour %d: %w", p, h, err)
					u.Abort(ctx)
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
	for p, s := range sinksOf {
		for h := 0; h < rounds; h++ {
			w := sinktest.Window(fmt.Sprintf("shard%d", p), h)
			if got := ids(t, s, w); !equal(got, sorted(sinktest.IDs(fmt.Sprintf("p%d-h%d", p, h), 0, 30))) {
				t.Fatalf("process %d, hour %d: %d ids, want 30", p, h, len(got))
			}
		}
	}
	retried := testutil.ToFloat64(sinksOf[0].m.conflicts) + testutil.ToFloat64(sinksOf[1].m.conflicts)
	t.Logf("conflicts retried: %v", retried)
	if b.srv != nil {
		conflicts, _ := b.srv.Conflicts()
		if conflicts == 0 || retried != float64(conflicts) {
			t.Fatalf("the stand-in cancelled %d transactions, the sinks counted %v retries: the test did not make them collide", conflicts, retried)
		}
	}
}

// TestPoisonJSON: a detail nested 600 levels (the source keeps up to 1,000,
// BigQuery's JSON type holds 500), a number out of a DOUBLE's range and
// an extra with a repeated key commit with their window: the first two are
// stored as JSON strings holding their text, the third keeps its first
// member (BigQuery's rule).
func TestPoisonJSON(t *testing.T) { testPoisonJSON(t, standIn(t)) }

func testPoisonJSON(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.newSink(t, nil)
	w := sinktest.Window("org_p", 2)
	evs := sinktest.Events(w, sinktest.IDs("evt", 0, 4))
	deep := strings.Repeat(`{"a":`, 600) + "1" + strings.Repeat("}", 600)
	evs[0].Detail = deep
	evs[1].Detail = `{"amount":1e400,"ok":true}`
	evs[2].Extra = `{"ticket":"CHG-1","ticket":"CHG-2"}`
	u := openEvents(t, s, w, evs, nil)
	res, err := u.Commit(ctx)
	if err != nil {
		t.Fatalf("a window with poison JSON: %v", err)
	}
	if res.Events != 4 {
		t.Fatalf("%d events committed, want 4", res.Events)
	}
	if b.srv == nil {
		return
	}
	rows, err := b.srv.Query(ctx, `SELECT event_id, json_type(detail), json_extract_string(detail, '$'), CAST(extra AS VARCHAR)
		FROM "audit"."vaultterm_events" ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, typ string
		var text, extra *string
		if err := rows.Scan(&id, &typ, &text, &extra); err != nil {
			t.Fatal(err)
		}
		switch id {
		case evs[0].ID:
			if typ != "VARCHAR" || text == nil || *text != deep {
				t.Errorf("600-level detail stored as %s, not as the JSON string of its text", typ)
			}
		case evs[1].ID:
			if typ != "VARCHAR" || text == nil || *text != evs[1].Detail {
				t.Errorf("detail with 1e400 stored as %s %v", typ, text)
			}
		case evs[2].ID:
			if typ != "OBJECT" || extra == nil || *extra != `{"ticket":"CHG-1"}` {
				t.Errorf("extra with a repeated key stored as %v, want the first member only", extra)
			}
		case evs[3].ID:
			if typ != "OBJECT" || extra != nil {
				t.Errorf("a plain row: detail %s, extra %v", typ, extra)
			}
		}
		got = append(got, id)
	}
	if len(got) != 4 {
		t.Fatalf("%d rows, want 4", len(got))
	}
}

// TestLocationLostInsertResponse: the dataset is in europe-west1 and no
// location is configured; the answer to the transaction's jobs.insert is
// lost. The sink reads the location from the dataset, so its retry finds
// the job it started (a job outside the US and EU multi-regions is found
// only with its location) instead of failing.
func TestLocationLostInsertResponse(t *testing.T) {
	for _, kind := range []bqtest.JobKind{bqtest.LoadJob, bqtest.DMLJob} {
		t.Run(string(kind), func(t *testing.T) {
			srv := bqtest.Start(t, project)
			if err := srv.CreateDataset("audit", "europe-west1"); err != nil {
				t.Fatal(err)
			}
			s := newSink(t, srv, func(c *Config) { c.Location = "" })
			defer s.Close()
			w := sinktest.Window("org_eu", 1)
			srv.Inject(kind, bqtest.LoseResponse, "", 1)
			sinktest.WriteWindow(t, s, w, sinktest.IDs("evt", 0, 50), 50)
			if got := ids(t, s, w); len(got) != 50 {
				t.Fatalf("%d ids, want 50", len(got))
			}
			for _, j := range srv.Jobs() {
				if j.Location != "europe-west1" {
					t.Errorf("job %s ran in %s", j.ID, j.Location)
				}
			}
		})
	}
}

// TestLocationConfig: where datasets are is checked before anything is
// written.
func TestLocationConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prepare  func(*bqtest.Server) error
		location string
		staging  string
		want     string // in the error; "" = commits
	}{
		{"missing dataset, no location", nil, "", "", "location: required"},
		{"missing dataset created where configured", nil, "EU", "", ""},
		{"configured location differs from the dataset's", func(s *bqtest.Server) error { return s.CreateDataset("audit", "europe-west1") }, "US", "", "is in europe-west1"},
		{"staging dataset elsewhere", func(s *bqtest.Server) error {
			return errors.Join(s.CreateDataset("audit", "EU"), s.CreateDataset("stage", "US"))
		}, "", "stage", "cannot read across locations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bqtest.Start(t, project)
			if tc.prepare != nil {
				if err := tc.prepare(srv); err != nil {
					t.Fatal(err)
				}
			}
			s := newSink(t, srv, func(c *Config) {
				c.Location = tc.location
				if tc.staging != "" {
					c.StagingDataset = tc.staging
				}
			})
			defer s.Close()
			w := sinktest.Window("org_l", 1)
			u := openEvents(t, s, w, sinktest.Events(w, sinktest.IDs("e", 0, 3)), nil)
			defer u.Abort(context.Background())
			_, err := u.Commit(context.Background())
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range srv.Jobs() {
					if j.Location != tc.location {
						t.Errorf("job %s ran in %s, want %s", j.ID, j.Location, tc.location)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, sinks.ErrPermanent) {
				t.Fatalf("commit: %v, want a permanent error saying %q", err, tc.want)
			}
			if n := len(srv.Jobs()); n != 0 {
				t.Fatalf("%d jobs ran before the location was checked", n)
			}
		})
	}
}

// TestHungJob: a transaction that never finishes fails its group when
// commit_timeout passes (BigQuery cancels the job at its JobTimeout); the
// next group, another org's, commits.
func TestHungJob(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, func(c *Config) { c.CommitTimeout = 2 * time.Second })
	defer s.Close()
	ctx := context.Background()
	srv.Inject(bqtest.DMLJob, bqtest.HangJob, "", 1)
	w := sinktest.Window("org_h", 1)
	u := openEvents(t, s, w, sinktest.Events(w, sinktest.IDs("stuck", 0, 5)), nil)
	done := make(chan error, 1)
	began := time.Now()
	go func() { _, err := u.Commit(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "commit_timeout") {
			t.Fatalf("commit of a hung transaction: %v, want a commit_timeout error", err)
		}
		t.Logf("failed after %s: %v", time.Since(began).Round(10*time.Millisecond), err)
	case <-time.After(30 * time.Second):
		t.Fatal("the commit of a hung transaction did not return within 30s")
	}
	u.Abort(ctx)
	other := sinktest.Window("org_ok", 1)
	v := openEvents(t, s, other, sinktest.Events(other, sinktest.IDs("fine", 0, 5)), nil)
	if _, err := v.Commit(ctx); err != nil {
		t.Fatalf("the next group: %v", err)
	}
	// BigQuery itself stops the stuck job at its JobTimeout.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var state string
		for _, j := range srv.Jobs() {
			if strings.HasPrefix(j.ID, "vaultsink_merge_") && strings.HasPrefix(j.Error, "timeout") {
				state = j.State
			}
		}
		if state == "DONE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hung job was not stopped by its JobTimeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPartitionPruning: every scan of the target and of the quarantine
// table that a commit's statements make is bounded by constants to the
// days of the committed windows and of their neighbours, so BigQuery prunes
// partitions (the stand-in records the range ZetaSQL resolves).
func TestPartitionPruning(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	var us []sinks.Unit
	for _, h := range []int{30, 31, 40} { // 2026-06-02 06:00 .. 2026-06-02 16:00
		w := sinktest.Window("org_c", h)
		u := openEvents(t, s, w, sinktest.Events(w, sinktest.IDs(fmt.Sprintf("h%d", h), 0, 5)), &sinks.Fence{Owner: "o", Epoch: 1})
		u.Quarantine(ctx, event.Quarantined{Org: w.Org, Window: w.Range(), Page: 1, Reason: "bad", Raw: "{}"})
		us = append(us, u)
	}
	if _, err := s.CommitBatch(ctx, us); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, j := range srv.Jobs() {
		if !strings.HasPrefix(j.ID, "vaultsink_merge_") && j.Labels["vaultsink"] != "count" {
			continue
		}
		for _, sc := range j.Scans {
			days := sc.Days()
			if !sc.Bounded || len(days) != 1 || days[0] != "2026-06-02" {
				t.Errorf("job %s scans %s over %v (bounded %v), want only the day 2026-06-02", j.ID, sc.Table, days, sc.Bounded)
			}
			checked++
		}
	}
	if checked < 3 {
		t.Fatalf("only %d partitioned scans recorded; want the count's, the INSERT's and the quarantine DELETE's", checked)
	}
}

// withIngestedAt returns rec with every ingested_at set to ts.
func withIngestedAt(rec arrow.RecordBatch, ts time.Time) arrow.RecordBatch {
	b := array.NewTimestampBuilder(memory.DefaultAllocator, event.TimestampType)
	defer b.Release()
	for i := 0; i < int(rec.NumRows()); i++ {
		b.Append(arrow.Timestamp(ts.UnixMicro()))
	}
	col := b.NewArray()
	defer col.Release()
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		cols[i] = rec.Column(i)
	}
	cols[event.ColIngestedAt] = col
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
}

// TestRerunSameJobIDs: a rerun after a crash pulls the same events at
// another time (ingested_at differs) and in another order: its job ids are
// the first run's, so it finds that run's transaction (409) instead of
// running a new one. (Its staging table was dropped after the first
// commit, so it is loaded again under a new id, and the count is right.)
func TestRerunSameJobIDs(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	w := sinktest.Window("org_r", 6)
	evs := sinktest.Events(w, sinktest.IDs("evt", 0, 100))
	commit := func(ingested time.Time, order []sinktest.Event) {
		x, err := s.Open(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		rec := sinktest.Batch(memory.DefaultAllocator, order)
		r2 := withIngestedAt(rec, ingested)
		rec.Release()
		defer r2.Release()
		if err := x.Write(ctx, r2); err != nil {
			t.Fatal(err)
		}
		if _, err := x.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	commit(time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC), evs)
	loads0, _ := srv.Totals()
	rev := make([]sinktest.Event, len(evs))
	for i := range evs {
		rev[len(evs)-1-i] = evs[i]
	}
	commit(time.Date(2026, 6, 9, 0, 0, 0, 0, time.UTC), rev) // later, another order
	if loads, _ := srv.Totals(); loads-loads0 > 1 {
		t.Fatalf("the rerun ran %d new load jobs, want at most the reload of its dropped staging table", loads-loads0)
	}
	var loadIDs, merges []string
	for _, j := range srv.Jobs() {
		switch {
		case strings.HasPrefix(j.ID, "vaultsink_merge_"):
			merges = append(merges, j.ID)
		case strings.HasPrefix(j.ID, "vaultsink_load_"):
			loadIDs = append(loadIDs, j.ID)
		}
	}
	if len(merges) != 1 {
		t.Fatalf("merge jobs %v, want one: the rerun's ids differ from the first run's", merges)
	}
	for _, id := range loadIDs[1:] {
		if !strings.HasPrefix(id, loadIDs[0]+"_reload_") {
			t.Fatalf("load jobs %v: the rerun's load id is not the first run's", loadIDs)
		}
	}
	if got := ids(t, s, w); len(got) != 100 {
		t.Fatalf("%d ids, want 100", len(got))
	}
}

// TestRerunWithoutQuarantineClearsIt: a window's quarantine is replaced by
// its latest commit's, so a rerun that quarantines nothing removes it.
func TestRerunWithoutQuarantineClearsIt(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	w := sinktest.Window("org_q", 2)
	u := openEvents(t, s, w, sinktest.Events(w, sinktest.IDs("e", 0, 5)), nil)
	for i := 0; i < 2; i++ {
		u.Quarantine(ctx, event.Quarantined{Org: w.Org, Window: w.Range(), Page: 1, Reason: "bad", Raw: fmt.Sprint(i)})
	}
	if _, err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		if err := s.QuarantinedIn(ctx, w.Org, w.Start, w.End, func(event.Quarantined) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("%d quarantined, want 2", n)
	}
	v := openEvents(t, s, w, sinktest.Events(w, sinktest.IDs("e", 0, 5)), nil)
	if _, err := v.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d quarantined after a rerun that quarantined nothing, want 0", n)
	}
}

// TestParameterBudget: a group of max_group_slices windows of as many orgs,
// each fenced, stays within BigQuery's 10,000 query parameters.
func TestParameterBudget(t *testing.T) {
	s := &Sink{cfg: Config{Project: project, Dataset: "audit", StagingDataset: "audit", Table: DefaultTable}}
	var units []*unit
	for i := 0; i < MaxGroupSlices; i++ {
		units = append(units, &unit{s: s, w: sinktest.Window(fmt.Sprintf("org_%04d", i), i%48), fence: &sinks.Fence{Owner: "o", Epoch: 1}})
	}
	_, params, err := s.commitSQL(units, "stage", "stage_q")
	if err != nil {
		t.Fatal(err)
	}
	if len(params) > MaxQueryParameters || len(params) != MaxGroupSlices*paramsPerSlice+paramsFixed {
		t.Fatalf("%d parameters for %d slices; want %d, at most %d", len(params), MaxGroupSlices, MaxGroupSlices*paramsPerSlice+paramsFixed, MaxQueryParameters)
	}
	if _, _, err := s.commitSQL(append(units, units[:MaxGroupSlices/4]...), "stage", ""); !errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("a group over the budget: %v, want a permanent error", err)
	}
}

// TestConfigValidation: names BigQuery accepts or refuses, with errors
// that say which field and why.
func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"domain-scoped project", func(c *Config) { c.Project = "example.com:my-project" }, ""},
		{"project of 30", func(c *Config) { c.Project = "p" + strings.Repeat("x", 29) }, ""},
		{"project of 31", func(c *Config) { c.Project = "p" + strings.Repeat("x", 30) }, "project:"},
		{"project ending with a hyphen", func(c *Config) { c.Project = "my-project-" }, "project:"},
		{"project with an upper-case letter", func(c *Config) { c.Project = "My-project" }, "project:"},
		{"bad domain", func(c *Config) { c.Project = "-example.com:my-project" }, "project:"},
		{"table of 1013 bytes", func(c *Config) { c.Table = strings.Repeat("t", 1013) }, ""},
		{"table of 1014 bytes", func(c *Config) { c.Table = strings.Repeat("t", 1014) }, "_quarantine"},
		{"table of 600 two-byte letters", func(c *Config) { c.Table = strings.Repeat("é", 600) }, "1200 bytes"},
		{"location region", func(c *Config) { c.Location = "europe-west1" }, ""},
		{"location with a space", func(c *Config) { c.Location = "europe west1" }, "location:"},
		{"max_group_slices at the limit", func(c *Config) { c.MaxGroupSlices = MaxGroupSlices }, ""},
		{"max_group_slices over", func(c *Config) { c.MaxGroupSlices = MaxGroupSlices + 1 }, "max_group_slices"},
		{"commit_timeout too short", func(c *Config) { c.CommitTimeout = time.Second }, "commit_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Project: "my-project", Dataset: "audit", Location: "US"}
			tc.mod(&c)
			c.SetDefaults()
			err := c.Validate()
			if tc.want == "" && err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestWaitsForEarlierJobs: a job of this table that a killed process left
// running is waited for before the first commit's jobs start.
func TestWaitsForEarlierJobs(t *testing.T) {
	srv := bqtest.Start(t, project)
	s := newSink(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	srv.Inject(bqtest.QueryJob, bqtest.HangJob, "", 1)
	q := s.client.Query("SELECT 1")
	q.Labels = s.labels("merge")
	q.JobTimeout = time.Second // it ends after 1s
	orphan, err := q.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	w := sinktest.Window("org_w", 1)
	if _, err := openEvents(t, s, w, sinktest.Events(w, sinktest.IDs("e", 0, 3)), nil).Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 900*time.Millisecond {
		t.Fatalf("the commit took %s: it did not wait for the earlier job", d)
	}
	jobs := srv.Jobs()
	if jobs[0].ID != orphan.ID() || jobs[0].State != "DONE" || len(jobs) < 2 {
		t.Fatalf("jobs %+v", jobs)
	}
}
