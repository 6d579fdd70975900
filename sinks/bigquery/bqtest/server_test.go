package bqtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

func setup(t *testing.T) (*bqtest.Server, *bigquery.Client) {
	srv := bqtest.Start(t, "proj-test")
	c, err := bigquery.NewClient(context.Background(), "proj-test", option.WithEndpoint(srv.URL()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Dataset("ds").Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func parquetOf(t *testing.T, org string, hour int, ids []string) []byte {
	var buf bytes.Buffer
	w := sinktest.Window(org, hour)
	pw, err := pqenc.NewWriter(&buf, pqenc.Meta{Window: w}, pqenc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(w, ids))
	defer rec.Release()
	if err := pw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func load(ctx context.Context, c *bigquery.Client, table, id string, data []byte, wd bigquery.TableWriteDisposition, cd bigquery.TableCreateDisposition, schema bigquery.Schema) error {
	src := bigquery.NewReaderSource(bytes.NewReader(data))
	src.SourceFormat = bigquery.Parquet
	src.Schema = schema
	l := c.Dataset("ds").Table(table).LoaderFrom(src)
	l.WriteDisposition, l.CreateDisposition = wd, cd
	l.JobID = id
	job, err := l.Run(ctx)
	if err != nil {
		return err
	}
	st, err := job.Wait(ctx)
	if err != nil {
		return err
	}
	return st.Err()
}

func run(ctx context.Context, c *bigquery.Client, sql string, params ...bigquery.QueryParameter) error {
	q := c.Query(sql)
	q.Parameters = params
	job, err := q.Run(ctx)
	if err != nil {
		return err
	}
	st, err := job.Wait(ctx)
	if err != nil {
		return err
	}
	return st.Err()
}

func count(t *testing.T, c *bigquery.Client, sql string, params ...bigquery.QueryParameter) int64 {
	t.Helper()
	q := c.Query(sql)
	q.Parameters = params
	it, err := q.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil {
		t.Fatal(err)
	}
	return row[0].(int64)
}

func reason(err error) string {
	var be *bigquery.Error
	if errors.As(err, &be) {
		return be.Reason
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) && len(ge.Errors) > 0 {
		return ge.Errors[0].Reason
	}
	return ""
}

func TestLoadDispositions(t *testing.T) {
	_, c := setup(t)
	ctx := context.Background()
	a := parquetOf(t, "o", 1, sinktest.IDs("a", 0, 10))
	b := parquetOf(t, "o", 2, sinktest.IDs("b", 0, 5))
	steps := []struct {
		name   string
		id     string
		data   []byte
		wd     bigquery.TableWriteDisposition
		cd     bigquery.TableCreateDisposition
		rows   int64
		reason string
	}{
		{"create never on a missing table", "j0", a, bigquery.WriteAppend, bigquery.CreateNever, -1, "notFound"},
		{"create", "j1", a, bigquery.WriteEmpty, bigquery.CreateIfNeeded, 10, ""},
		{"write empty on rows", "j2", b, bigquery.WriteEmpty, bigquery.CreateIfNeeded, 10, "duplicate"},
		{"append", "j3", b, bigquery.WriteAppend, bigquery.CreateNever, 15, ""},
		{"truncate", "j4", b, bigquery.WriteTruncate, bigquery.CreateNever, 5, ""},
		{"same job id again", "j4", b, bigquery.WriteAppend, bigquery.CreateNever, 5, "duplicate"},
	}
	for _, st := range steps {
		err := load(ctx, c, "t", st.id, st.data, st.wd, st.cd, nil)
		if got := reason(err); got != st.reason {
			t.Fatalf("%s: error %v (reason %q), want reason %q", st.name, err, got, st.reason)
		}
		if st.rows >= 0 {
			if n := count(t, c, "SELECT count(*) FROM `proj-test.ds.t`"); n != st.rows {
				t.Fatalf("%s: %d rows, want %d", st.name, n, st.rows)
			}
		}
	}
	// BigQuery does not load Parquet into JSON columns.
	schema := bigquery.Schema{{Name: "event_id", Type: bigquery.StringFieldType}, {Name: "detail", Type: bigquery.JSONFieldType}}
	if err := c.Dataset("ds").Table("j").Create(ctx, &bigquery.TableMetadata{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	if err := load(ctx, c, "j", "j5", a, bigquery.WriteAppend, bigquery.CreateNever, nil); reason(err) != "invalid" {
		t.Fatalf("parquet into a JSON column: %v, want reason invalid", err)
	}
}

// TestMerge runs the MERGE ... ON FALSE slice replacement from the design
// notes, with parameters and INSERT ROW, and checks only the slice changed.
func TestMerge(t *testing.T) {
	_, c := setup(t)
	ctx := context.Background()
	if err := load(ctx, c, "target", "l1", parquetOf(t, "o1", 1, sinktest.IDs("old", 0, 4)), bigquery.WriteAppend, bigquery.CreateIfNeeded, nil); err != nil {
		t.Fatal(err)
	}
	if err := load(ctx, c, "target", "l2", parquetOf(t, "o2", 1, sinktest.IDs("other", 0, 3)), bigquery.WriteAppend, bigquery.CreateIfNeeded, nil); err != nil {
		t.Fatal(err)
	}
	if err := load(ctx, c, "stage", "l3", parquetOf(t, "o1", 1, sinktest.IDs("new", 0, 6)), bigquery.WriteTruncate, bigquery.CreateIfNeeded, nil); err != nil {
		t.Fatal(err)
	}
	w := sinktest.Window("o1", 1)
	err := run(ctx, c, "MERGE `proj-test.ds.target` T USING `proj-test.ds.stage` S ON FALSE "+
		"WHEN NOT MATCHED BY SOURCE AND T.org_id = @org AND T.`timestamp` >= @start AND T.`timestamp` < @end THEN DELETE "+
		"WHEN NOT MATCHED THEN INSERT ROW",
		bigquery.QueryParameter{Name: "org", Value: "o1"}, bigquery.QueryParameter{Name: "start", Value: w.Start}, bigquery.QueryParameter{Name: "end", Value: w.End})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, c, "SELECT count(*) FROM `proj-test.ds.target` WHERE org_id = @o AND STARTS_WITH(event_id, 'new')", bigquery.QueryParameter{Name: "o", Value: "o1"}); n != 6 {
		t.Fatalf("%d new rows, want 6", n)
	}
	if n := count(t, c, "SELECT count(*) FROM `proj-test.ds.target`"); n != 9 {
		t.Fatalf("%d rows, want 9 (6 new + 3 of the other org)", n)
	}
	// Reading rows back with tabledata.list.
	it := c.Dataset("ds").Table("target").Read(ctx)
	it.PageInfo().MaxSize = 4
	var seen int
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := row[2].(time.Time); !ok {
			t.Fatalf("timestamp column read as %T", row[2])
		}
		seen++
	}
	if seen != 9 {
		t.Fatalf("tabledata.list returned %d rows, want 9", seen)
	}
}

func TestRejectsWhatItCannotRun(t *testing.T) {
	_, c := setup(t)
	ctx := context.Background()
	if err := load(ctx, c, "t", "l1", parquetOf(t, "o", 1, sinktest.IDs("a", 0, 2)), bigquery.WriteAppend, bigquery.CreateIfNeeded, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ sql, reason string }{
		{"SELECT count(*) FROM `proj-test.ds.t` WHERE org_id = @missing", "invalidQuery"},
		{"SELECT event_id::INT FROM `proj-test.ds.t`", "invalidQuery"},
		{"MERGE `proj-test.ds.t` T USING `proj-test.ds.t` S ON FALSE WHEN NOT MATCHED THEN INSERT *", "invalidQuery"},
		{"DELETE FROM t WHERE TRUE", "invalidQuery"},
		{"SELECT * FROM `proj-test.ds.nope`", "notFound"},
		{"SELECT * FROM `other-proj.ds.t`", "notFound"},
		{"SELEKT 1", "invalidQuery"},
	} {
		err := run(ctx, c, tc.sql)
		if reason(err) != tc.reason {
			t.Errorf("%s: %v, want reason %s", tc.sql, err, tc.reason)
		}
	}
	// A job id is remembered: 409 duplicate.
	q := c.Query("SELECT 1")
	q.JobID = "fixed"
	if _, err := q.Run(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := q.Run(ctx)
	var ge *googleapi.Error
	if !errors.As(err, &ge) || ge.Code != http.StatusConflict || reason(err) != "duplicate" {
		t.Fatalf("second insert of a job id: %v, want 409 duplicate", err)
	}
	if !strings.Contains(ge.Message, "fixed") {
		t.Errorf("409 message %q does not name the job", ge.Message)
	}
}

// TestZetaSQLRejects: statements DuckDB would run but BigQuery refuses are
// refused, with BigQuery's error shape (reason invalidQuery, ZetaSQL's
// message); their valid forms run.
func TestZetaSQLRejects(t *testing.T) {
	_, c := setup(t)
	ctx := context.Background()
	schema := bigquery.Schema{{Name: "id", Type: bigquery.StringFieldType}, {Name: "doc", Type: bigquery.JSONFieldType}, {Name: "s", Type: bigquery.StringFieldType}}
	if err := c.Dataset("ds").Table("j").Create(ctx, &bigquery.TableMetadata{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ bad, good, says string }{
		{"INSERT INTO `proj-test.ds.j` (id, doc) SELECT 'a', '{}'", "INSERT INTO `proj-test.ds.j` (id, doc) SELECT 'a', PARSE_JSON('{}')", "cannot be inserted into column doc"},
		{"SELECT PARSE_JSON('{}', wide_nmber_mode => 'round')", "SELECT PARSE_JSON('{}', wide_number_mode => 'round')", "wide_nmber_mode"},
		{"SELECT id FROM `proj-test.ds.j` QUALIFY ROW_NUMBER() OVER (ORDER BY id) = 1", "SELECT id FROM `proj-test.ds.j` WHERE TRUE QUALIFY ROW_NUMBER() OVER (ORDER BY id) = 1", "QUALIFY"},
		{"SELECT 1 + 'a'", "SELECT 1 + 2", "Could not cast literal"},
		{"BEGIN TRANSACTION; DELETE FROM `proj-test.ds.j` WHERE id = 1; COMMIT TRANSACTION", "BEGIN TRANSACTION; DELETE FROM `proj-test.ds.j` WHERE id = '1'; COMMIT TRANSACTION", "STRING"},
	} {
		err := run(ctx, c, tc.bad)
		if reason(err) != "invalidQuery" || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want invalidQuery saying %q", tc.bad, err, tc.says)
		}
		if err := run(ctx, c, tc.good); err != nil {
			t.Errorf("%s: %v", tc.good, err)
		}
	}
}

// TestJSONLimitsInSQL: PARSE_JSON fails where BigQuery's does,
// SAFE.PARSE_JSON answers NULL instead.
func TestJSONLimitsInSQL(t *testing.T) {
	_, c := setup(t)
	deep := strings.Repeat("[", 501) + strings.Repeat("]", 501)
	if err := run(context.Background(), c, "SELECT PARSE_JSON(@j, wide_number_mode => 'round')", bigquery.QueryParameter{Name: "j", Value: `{"n":1e400}`}); !strings.Contains(fmt.Sprint(err), "number overflow") {
		t.Fatalf("PARSE_JSON of 1e400: %v, want number overflow", err)
	}
	if err := run(context.Background(), c, "SELECT PARSE_JSON(@j)", bigquery.QueryParameter{Name: "j", Value: deep}); !strings.Contains(fmt.Sprint(err), "nesting depth") {
		t.Fatalf("PARSE_JSON of 501 levels: %v, want a nesting error", err)
	}
	if n := count(t, c, "SELECT COUNTIF(SAFE.PARSE_JSON(@j) IS NULL) FROM UNNEST([1])", bigquery.QueryParameter{Name: "j", Value: deep}); n != 1 {
		t.Fatalf("SAFE.PARSE_JSON of 501 levels is not NULL")
	}
}

// TestJobLocation: a job runs where its dataset is; outside the US and EU
// multi-regions it is found only with its location.
func TestJobLocation(t *testing.T) {
	srv := bqtest.Start(t, "proj-test")
	if err := srv.CreateDataset("eu1", "europe-west1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := bigquery.NewClient(ctx, "proj-test", option.WithEndpoint(srv.URL()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Dataset("eu1").Table("t").Create(ctx, &bigquery.TableMetadata{Schema: bigquery.Schema{{Name: "a", Type: bigquery.IntegerFieldType}}}); err != nil {
		t.Fatal(err)
	}
	q := c.Query("SELECT count(*) FROM `proj-test.eu1.t`")
	q.JobID = "located"
	job, err := q.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if job.Location() != "europe-west1" {
		t.Fatalf("job placed in %q, want the dataset's europe-west1", job.Location())
	}
	if _, err := c.JobFromIDLocation(ctx, "located", ""); reason(err) != "notFound" {
		t.Fatalf("lookup without location: %v, want notFound", err)
	}
	if _, err := c.JobFromIDLocation(ctx, "located", "europe-west1"); err != nil {
		t.Fatalf("lookup with location: %v", err)
	}
	q = c.Query("SELECT count(*) FROM `proj-test.eu1.t`")
	q.Location = "US"
	if err := func() error {
		job, err := q.Run(ctx)
		if err != nil {
			return err
		}
		st, err := job.Wait(ctx)
		if err != nil {
			return err
		}
		return st.Err()
	}(); reason(err) != "notFound" || !strings.Contains(err.Error(), "location US") {
		t.Fatalf("a US job reading a europe-west1 dataset: %v, want notFound", err)
	}
}

// TestTransactionConflicts: of two transactions that mutate one table at
// once, the second to mutate it is cancelled with BigQuery's message; DML
// outside a transaction waits for the table instead.
func TestTransactionConflicts(t *testing.T) {
	srv, c := setup(t)
	ctx := context.Background()
	if err := c.Dataset("ds").Table("t").Create(ctx, &bigquery.TableMetadata{Schema: bigquery.Schema{{Name: "a", Type: bigquery.IntegerFieldType}}}); err != nil {
		t.Fatal(err)
	}
	srv.SetStatementLatency(150 * time.Millisecond)
	tx := "BEGIN TRANSACTION; INSERT INTO `proj-test.ds.t` (a) VALUES (1); SELECT 1; COMMIT TRANSACTION"
	start := func(sql string) *bigquery.Job {
		job, err := c.Query(sql).Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	wait := func(j *bigquery.Job) error {
		st, err := j.Wait(ctx)
		if err != nil {
			return err
		}
		return st.Err()
	}
	a := start(tx)
	time.Sleep(100 * time.Millisecond)
	b := start(tx)
	errA, errB := wait(a), wait(b)
	if errA != nil || errB == nil || !strings.Contains(errB.Error(), "Transaction is aborted due to concurrent update against table proj-test.ds.t") {
		t.Fatalf("first transaction: %v; second: %v, want it cancelled for a concurrent update", errA, errB)
	}
	// A DML statement queues behind the open transaction and then runs.
	a = start(tx)
	time.Sleep(400 * time.Millisecond) // a has inserted (BEGIN and INSERT take 150ms each)
	d := start("INSERT INTO `proj-test.ds.t` (a) VALUES (2)")
	if err := errors.Join(wait(a), wait(d)); err != nil {
		t.Fatal(err)
	}
	if conflicts, queued := srv.Conflicts(); conflicts != 1 || queued == 0 {
		t.Fatalf("%d conflicts, %d queued waits; want 1 and > 0", conflicts, queued)
	}
	if n := count(t, c, "SELECT count(*) FROM `proj-test.ds.t`"); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
}

// TestListAndCancel: jobs.list filters by state and carries labels;
// jobs.cancel stops a running job.
func TestListAndCancel(t *testing.T) {
	srv, c := setup(t)
	ctx := context.Background()
	srv.Inject(bqtest.QueryJob, bqtest.HangJob, "", 1)
	q := c.Query("SELECT 1")
	q.Labels = map[string]string{"vaultsink_table": "abc"}
	job, err := q.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	it := c.Jobs(ctx)
	it.State = bigquery.Running
	var found []string
	for {
		j, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := j.Config()
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, j.ID()+"="+cfg.(*bigquery.QueryConfig).Labels["vaultsink_table"])
	}
	if len(found) != 1 || found[0] != job.ID()+"=abc" {
		t.Fatalf("running jobs %v, want the hung one with its label", found)
	}
	if err := job.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := job.Wait(ctx)
	if err == nil {
		err = st.Err()
	}
	if reason(err) != "stopped" {
		t.Fatalf("cancelled job: %v, want reason stopped", err)
	}
}

// TestDryRun: a dry run is analysed like a run and answered DONE without
// running or being remembered; what a run would refuse, a dry run refuses
// with the same reason.
func TestDryRun(t *testing.T) {
	srv, c := setup(t)
	ctx := context.Background()
	if err := load(ctx, c, "t", "l1", parquetOf(t, "o", 1, sinktest.IDs("a", 0, 2)), bigquery.WriteAppend, bigquery.CreateIfNeeded, nil); err != nil {
		t.Fatal(err)
	}
	jobs := len(srv.Jobs())
	dry := func(sql string) error {
		q := c.Query(sql)
		q.DryRun = true
		job, err := q.Run(ctx)
		if err != nil {
			return err
		}
		if st := job.LastStatus(); st == nil || !st.Done() || st.Err() != nil {
			t.Fatalf("%s: dry run status %+v", sql, st)
		}
		return nil
	}
	if err := dry("DELETE FROM `proj-test.ds.t` WHERE org_id = 'o'"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, c, "SELECT count(*) FROM `proj-test.ds.t`"); n != 2 {
		t.Fatalf("a dry-run DELETE changed the table: %d rows, want 2", n)
	}
	for _, tc := range []struct{ sql, reason string }{
		{"SELECT event_id::INT FROM `proj-test.ds.t`", "invalidQuery"},
		{"SELECT * FROM `proj-test.ds.nope`", "notFound"},
	} {
		if err := dry(tc.sql); reason(err) != tc.reason {
			t.Errorf("dry run of %s: %v, want reason %s", tc.sql, err, tc.reason)
		}
	}
	if n := len(srv.Jobs()) - jobs; n != 1 { // the count above
		t.Fatalf("%d jobs remembered since the dry runs, want 1 (the count)", n)
	}
}

// TestTestIamPermissions: every permission asked for is held but those
// Deny names.
func TestTestIamPermissions(t *testing.T) {
	srv, c := setup(t)
	ctx := context.Background()
	if err := load(ctx, c, "t", "l1", parquetOf(t, "o", 1, sinktest.IDs("a", 0, 2)), bigquery.WriteAppend, bigquery.CreateIfNeeded, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"bigquery.tables.getData", "bigquery.tables.updateData"}
	srv.Deny("bigquery.tables.updateData")
	got, err := c.Dataset("ds").Table("t").IAM().TestPermissions(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "bigquery.tables.getData" {
		t.Fatalf("held %v, want [bigquery.tables.getData]", got)
	}
	if _, err := c.Dataset("ds").Table("nope").IAM().TestPermissions(ctx, want); reason(err) != "notFound" {
		t.Fatalf("a missing table: %v, want notFound", err)
	}
}
