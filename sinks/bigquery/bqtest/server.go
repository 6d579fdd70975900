package bqtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the engine that executes the SQL
	bq "google.golang.org/api/bigquery/v2"
)

// Server is a BigQuery REST stand-in backed by an in-memory DuckDB database.
type Server struct {
	project string
	http    *httptest.Server
	dir     string

	mu       sync.Mutex // guards the metadata below; jobs run outside it
	cond     *sync.Cond // on mu: a job finished, a table was released
	db       *sql.DB
	conn     *sql.Conn // metadata statements, under mu
	az       *analyzer
	datasets map[string]*bq.Dataset
	tables   map[tableRef]*bq.Table
	jobs     map[string]*jobRecord
	uploads  map[string]*upload
	faults   []*fault
	loads    map[tableRef]int
	dml      map[tableRef]int
	queries  int
	uploadN  [3]int // multipart requests, resumable sessions, resumable chunks
	now      func() time.Time
	order    []string        // job ids in creation order
	denied   map[string]bool // permissions testIamPermissions says are lacking (Deny)

	// DML concurrency: the job that may mutate each table now (an open
	// transaction that mutated it, or a running DML statement), and the
	// commit sequence number of each table's last change.
	writers   map[tableRef]string
	committed map[tableRef]uint64
	seq       uint64
	conflicts int // transactions cancelled for a concurrent update
	queued    int // waits of DML statements queued behind another writer
	latency   time.Duration
	running   sync.WaitGroup
}

type jobRecord struct {
	job     *bq.Job
	kind    JobKind
	schema  *bq.TableSchema
	rows    [][]any // values: string, int64 microseconds (TIMESTAMP) or nil
	tsCols  []bool
	dmlRows int64
	scans   []PartitionScan

	ctx     context.Context // ends at jobs.cancel or jobTimeoutMs
	cancel  context.CancelFunc
	done    chan struct{} // closed when DONE
	held    map[tableRef]bool
	txBegin uint64 // s.seq when its transaction began
}

// upload is a resumable session; its bytes go to a file so that a large
// upload does not sit on the Go heap of the test process.
type upload struct {
	job  *bq.Job
	file *os.File
	size int64
	// result answers a repeated final chunk: the client retries a chunk whose
	// answer was lost, and a finished session returns what it returned before.
	result any
	err    error
}

// ErrNoNode is returned by New when Node.js, which runs the ZetaSQL
// analyzer, is not installed.
var ErrNoNode = errors.New("node (Node.js) is not installed")

// Start starts a stand-in for project on 127.0.0.1 and stops it when t ends.
// It skips t, saying why, when Node.js is not installed.
func Start(t testing.TB, project string) *Server {
	t.Helper()
	s, err := New(project, t.TempDir())
	if errors.Is(err, ErrNoNode) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatalf("bqtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a stand-in for project whose uploaded files live under dir.
// Close stops it.
func New(project, dir string) (*Server, error) {
	a, skip, err := sharedAnalyzer()
	if skip != "" {
		return nil, fmt.Errorf("%w: %s", ErrNoNode, skip)
	}
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("duckdb conn: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SET GLOBAL TimeZone='UTC'"); err != nil {
		db.Close()
		return nil, fmt.Errorf("duckdb timezone: %w", err)
	}
	if err := registerFuncs(conn); err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{
		az:        a,
		writers:   map[tableRef]string{},
		committed: map[tableRef]uint64{},
		project:   project,
		dir:       dir,
		db:        db,
		conn:      conn,
		datasets:  map[string]*bq.Dataset{},
		tables:    map[tableRef]*bq.Table{},
		jobs:      map[string]*jobRecord{},
		uploads:   map[string]*upload{},
		loads:     map[tableRef]int{},
		dml:       map[tableRef]int{},
		now:       time.Now,
		denied:    map[string]bool{},
	}
	s.cond = sync.NewCond(&s.mu)
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	return s, nil
}

// URL is the endpoint to pass to option.WithEndpoint.
func (s *Server) URL() string { return s.http.URL + "/" }

// Project is the only project the stand-in serves.
func (s *Server) Project() string { return s.project }

// Close stops the server, cancels the jobs still running and closes the
// database.
func (s *Server) Close() {
	s.http.Close()
	s.mu.Lock()
	for _, rec := range s.jobs {
		rec.cancel()
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	s.running.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.Close()
	s.db.Close()
}

// SetStatementLatency makes every statement of a query job take at least d
// (default 0), so that jobs overlap as they do on BigQuery.
func (s *Server) SetStatementLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Conflicts is the number of transactions cancelled for a concurrent
// update, and Queued the number of times a DML statement waited for a
// table another job was mutating.
func (s *Server) Conflicts() (conflicts, queued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conflicts, s.queued
}

// JobInfo describes a job for test assertions.
type JobInfo struct {
	ID, Location, State string
	Query               string // for query jobs
	Labels              map[string]string
	Error               string // "reason: message" of a failed job
	Scans               []PartitionScan
}

// Jobs lists the jobs created, oldest first.
func (s *Server) Jobs() []JobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []JobInfo
	for _, id := range s.order {
		rec := s.jobs[id]
		j := JobInfo{ID: id, Location: rec.job.JobReference.Location, State: rec.job.Status.State,
			Labels: rec.job.Configuration.Labels, Scans: slices.Clone(rec.scans)}
		if q := rec.job.Configuration.Query; q != nil {
			j.Query = q.Query
		}
		if e := rec.job.Status.ErrorResult; e != nil {
			j.Error = e.Reason + ": " + e.Message
		}
		out = append(out, j)
	}
	return out
}

// CreateDataset creates a dataset in location, as a user would beforehand.
func (s *Server) CreateDataset(id, location string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.datasets[id]; ok {
		return fmt.Errorf("dataset %s exists", id)
	}
	if _, err := s.conn.ExecContext(context.Background(), "CREATE SCHEMA "+quoteIdent(id)); err != nil {
		return err
	}
	s.datasets[id] = &bq.Dataset{Kind: "bigquery#dataset", Id: s.project + ":" + id, Location: location,
		DatasetReference: &bq.DatasetReference{ProjectId: s.project, DatasetId: id}, CreationTime: s.now().UnixMilli()}
	return nil
}

// JobKind selects the jobs a Fault applies to.
type JobKind string

// Job kinds.
const (
	LoadJob  JobKind = "load"
	QueryJob JobKind = "query" // any query job
	// DMLJob is a query job that may modify tables (a DML statement or a
	// script), not a read-only SELECT.
	DMLJob JobKind = "dml"
)

// FaultMode is how an injected fault shows itself.
type FaultMode int

const (
	// RejectInsert answers jobs.insert with an HTTP error; no job is created.
	RejectInsert FaultMode = iota
	// FailJob creates the job and finishes it with an error result.
	FailJob
	// LoseResponse starts the job, then answers jobs.insert with 503, as if
	// the connection died after BigQuery accepted it.
	LoseResponse
	// HangJob creates the job and leaves it RUNNING until it is cancelled
	// or its jobTimeoutMs passes, as a job stuck in BigQuery.
	HangJob
)

type fault struct {
	kind   JobKind
	mode   FaultMode
	reason string
	n      int
}

// Inject makes the next n jobs of kind fail in mode with BigQuery's reason
// (e.g. "backendError", "rateLimitExceeded", "invalid"; ignored for LoseResponse).
func (s *Server) Inject(kind JobKind, mode FaultMode, reason string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{kind: kind, mode: mode, reason: reason, n: n})
}

func (s *Server) takeFault(kinds ...JobKind) *fault {
	for i, f := range s.faults {
		if slices.Contains(kinds, f.kind) {
			f.n--
			if f.n <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

// LoadJobs is the number of load jobs created with dataset.table as destination.
func (s *Server) LoadJobs(dataset, table string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads[tableRef{dataset, table}]
}

// DMLJobs is the number of query jobs whose DML or DDL modified dataset.table.
func (s *Server) DMLJobs(dataset, table string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dml[tableRef{dataset, table}]
}

// Uploads counts media uploads: multipart requests, resumable sessions and
// the chunks sent to them (retries included).
func (s *Server) Uploads() (multipart, resumable, chunks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploadN[0], s.uploadN[1], s.uploadN[2]
}

// Totals returns the number of load jobs and of query jobs created (failed
// ones included, as BigQuery's quotas count them).
func (s *Server) Totals() (loads, queries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.loads {
		loads += n
	}
	return loads, s.queries
}

// Tables lists the tables of dataset, sorted by name order of creation is not kept.
func (s *Server) Tables(dataset string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	var out []string
	for ref := range s.tables {
		if ref.dataset == dataset {
			out = append(out, ref.table)
		}
	}
	return out
}

// Query runs a DuckDB statement directly, for test assertions. Table names
// are "dataset"."table".
func (s *Server) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn.QueryContext(ctx, query, args...)
}

// Exec runs a DuckDB statement directly, for test setup.
func (s *Server) Exec(ctx context.Context, query string, args ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.conn.ExecContext(ctx, query, args...)
	return err
}

var (
	reDatasets = regexp.MustCompile(`^projects/([^/]+)/datasets$`)
	reDataset  = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)$`)
	reTables   = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables$`)
	reTable    = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)$`)
	reTestIam  = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables/([^/:]+):testIamPermissions$`)
	reData     = regexp.MustCompile(`^projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)/data$`)
	reJobs     = regexp.MustCompile(`^projects/([^/]+)/jobs$`)
	reJob      = regexp.MustCompile(`^projects/([^/]+)/jobs/([^/]+)$`)
	reCancel   = regexp.MustCompile(`^projects/([^/]+)/jobs/([^/]+)/cancel$`)
	reQueries  = regexp.MustCompile(`^projects/([^/]+)/queries$`)
	reResults  = regexp.MustCompile(`^projects/([^/]+)/queries/([^/]+)$`)
	reUpload   = regexp.MustCompile(`^upload/bigquery/v2/projects/([^/]+)/jobs$`)
)

// apiError is an error answered as BigQuery's JSON error body.
type apiError struct {
	code   int
	reason string
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.code, e.reason, e.msg) }

func errf(code int, reason, format string, args ...any) *apiError {
	return &apiError{code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	if !strings.HasPrefix(path, "upload/") {
		path = strings.TrimPrefix(path, "bigquery/v2/")
	}
	res, err := s.dryRunRequest(r, path)
	if res == nil && err == nil {
		res, err = s.route(r, path)
	}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = errf(http.StatusInternalServerError, "internalError", "%v", err)
		}
		writeError(w, ae)
		return
	}
	if h, ok := res.(headerResult); ok {
		for k, v := range h.header {
			w.Header()[k] = v
		}
		res = h.body
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if res == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	json.NewEncoder(w).Encode(res)
}

// dryRunRequest answers a jobs.insert of a dry-run job (dryRun), which
// runs nothing and so is answered outside s.mu, while ZetaSQL analyses it;
// nil, nil for every other request, whose body it leaves to be read.
func (s *Server) dryRunRequest(r *http.Request, path string) (any, error) {
	sm := reJobs.FindStringSubmatch(path)
	if r.Method != "POST" || sm == nil {
		return nil, nil
	}
	if err := s.checkProject(sm[1]); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, errf(400, "invalid", "read job body: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var job bq.Job
	if json.Unmarshal(body, &job) != nil || job.Configuration == nil || !job.Configuration.DryRun {
		return nil, nil // route answers it, errors included
	}
	res, err := s.dryRun(r.Context(), &job)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(res)
	return json.RawMessage(b), err
}

// testIamPermissions answers tables.testIamPermissions: the stand-in
// models no IAM, so every permission asked for is held except those Deny
// named. Only this call knows of Deny: jobs and other calls still succeed.
func (s *Server) testIamPermissions(r *http.Request, ref tableRef) (any, error) {
	if _, ok := s.datasets[ref.dataset]; !ok {
		return nil, errf(404, "notFound", "Not found: Dataset %s:%s", s.project, ref.dataset)
	}
	if _, ok := s.tables[ref]; !ok {
		return nil, errf(404, "notFound", "Not found: Table %s:%s.%s", s.project, ref.dataset, ref.table)
	}
	var req bq.TestIamPermissionsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, errf(400, "invalid", "bad testIamPermissions body: %v", err)
	}
	res := &bq.TestIamPermissionsResponse{}
	for _, p := range req.Permissions {
		if !s.denied[p] {
			res.Permissions = append(res.Permissions, p)
		}
	}
	return res, nil
}

// Deny makes tables.testIamPermissions answer that the caller lacks
// perms (e.g. "bigquery.tables.updateData"), for tests of what reports
// missing permissions; nothing else checks them.
func (s *Server) Deny(perms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range perms {
		s.denied[p] = true
	}
}

type headerResult struct {
	header http.Header
	body   any
}

func writeError(w http.ResponseWriter, e *apiError) {
	status := map[int]string{400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 500: "INTERNAL", 503: "UNAVAILABLE", 429: "RESOURCE_EXHAUSTED"}[e.code]
	body := map[string]any{"error": map[string]any{
		"code": e.code, "message": e.msg, "status": status,
		"errors": []map[string]string{{"message": e.msg, "domain": "global", "reason": e.reason}},
	}}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(e.code)
	json.NewEncoder(w).Encode(body)
}

func (s *Server) checkProject(p string) error {
	if p != s.project {
		return errf(404, "notFound", "Not found: Project %s", p)
	}
	return nil
}

// route answers a request with its body already encoded: the metadata it
// returns may change once s.mu is released.
func (s *Server) route(r *http.Request, path string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.routeLocked(r, path)
	if err != nil || res == nil {
		return res, err
	}
	enc := func(v any) (any, error) {
		if v == nil {
			return nil, nil
		}
		if raw, ok := v.(json.RawMessage); ok {
			return raw, nil
		}
		b, err := json.Marshal(v)
		return json.RawMessage(b), err
	}
	if h, ok := res.(headerResult); ok {
		body, err := enc(h.body)
		return headerResult{header: h.header, body: body}, err
	}
	return enc(res)
}

func (s *Server) routeLocked(r *http.Request, path string) (any, error) {
	s.expireLocked()
	m := func(re *regexp.Regexp) []string {
		sm := re.FindStringSubmatch(path)
		if sm == nil {
			return nil
		}
		return sm
	}
	var sm []string
	switch {
	case r.Method == "POST" && r.URL.Query().Get("upload_id") != "":
		return s.resumeUpload(r)
	case func() bool { sm = m(reUpload); return sm != nil }():
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.startUpload(r)
	case func() bool { sm = m(reDatasets); return sm != nil }() && r.Method == "POST":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.insertDataset(r)
	case func() bool { sm = m(reDataset); return sm != nil }():
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		ds, ok := s.datasets[sm[2]]
		if !ok {
			return nil, errf(404, "notFound", "Not found: Dataset %s:%s", s.project, sm[2])
		}
		switch r.Method {
		case "GET":
			return ds, nil
		case "DELETE":
			return nil, s.deleteDataset(r, sm[2])
		}
	case func() bool { sm = m(reTables); return sm != nil }() && r.Method == "POST":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.insertTable(r, sm[2])
	case func() bool { sm = m(reTestIam); return sm != nil }() && r.Method == "POST":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.testIamPermissions(r, tableRef{sm[2], sm[3]})
	case func() bool { sm = m(reTable); return sm != nil }():
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		ref := tableRef{sm[2], sm[3]}
		if _, ok := s.datasets[ref.dataset]; !ok {
			return nil, errf(404, "notFound", "Not found: Dataset %s:%s", s.project, ref.dataset)
		}
		if _, ok := s.tables[ref]; !ok {
			return nil, errf(404, "notFound", "Not found: Table %s:%s.%s", s.project, ref.dataset, ref.table)
		}
		switch r.Method {
		case "GET":
			return s.tableMeta(ref)
		case "PATCH", "PUT":
			return s.patchTable(r, ref)
		case "DELETE":
			return nil, s.dropTable(ref)
		}
	case func() bool { sm = m(reData); return sm != nil }() && r.Method == "GET":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.listData(r, tableRef{sm[2], sm[3]})
	case func() bool { sm = m(reJobs); return sm != nil }() && r.Method == "POST":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		var job bq.Job
		if err := json.NewDecoder(r.Body).Decode(&job); err != nil {
			return nil, errf(400, "invalid", "bad job body: %v", err)
		}
		return s.insertJob(&job, "")
	case func() bool { sm = m(reJobs); return sm != nil }() && r.Method == "GET":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.listJobs(r)
	case func() bool { sm = m(reCancel); return sm != nil }() && r.Method == "POST":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.cancelJob(r, sm[2])
	case func() bool { sm = m(reJob); return sm != nil }() && r.Method == "GET":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		rec, err := s.findJob(r, sm[2])
		if err != nil {
			return nil, err
		}
		return snapshot(rec.job), nil
	case func() bool { sm = m(reQueries); return sm != nil }() && r.Method == "POST":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.jobsQuery(r)
	case func() bool { sm = m(reResults); return sm != nil }() && r.Method == "GET":
		if err := s.checkProject(sm[1]); err != nil {
			return nil, err
		}
		return s.queryResults(r, sm[2])
	}
	return nil, errf(404, "notFound", "the stand-in does not serve %s %s", r.Method, r.URL.Path)
}

func (s *Server) insertDataset(r *http.Request) (any, error) {
	var ds bq.Dataset
	if err := json.NewDecoder(r.Body).Decode(&ds); err != nil {
		return nil, errf(400, "invalid", "bad dataset body: %v", err)
	}
	if ds.DatasetReference == nil || ds.DatasetReference.DatasetId == "" {
		return nil, errf(400, "invalid", "datasetReference.datasetId is required")
	}
	id := ds.DatasetReference.DatasetId
	if _, ok := s.datasets[id]; ok {
		return nil, errf(409, "duplicate", "Already Exists: Dataset %s:%s", s.project, id)
	}
	if _, err := s.conn.ExecContext(context.Background(), "CREATE SCHEMA "+quoteIdent(id)); err != nil {
		return nil, err
	}
	ds.DatasetReference.ProjectId = s.project
	ds.Id = s.project + ":" + id
	if ds.Location == "" {
		ds.Location = "US"
	}
	ds.CreationTime = s.now().UnixMilli()
	ds.Kind = "bigquery#dataset"
	s.datasets[id] = &ds
	return &ds, nil
}

func (s *Server) deleteDataset(r *http.Request, id string) error {
	contents := r.URL.Query().Get("deleteContents") == "true"
	for ref := range s.tables {
		if ref.dataset == id {
			if !contents {
				return errf(400, "resourceInUse", "Dataset %s:%s is still in use", s.project, id)
			}
			if err := s.dropTable(ref); err != nil {
				return err
			}
		}
	}
	delete(s.datasets, id)
	_, err := s.conn.ExecContext(context.Background(), "DROP SCHEMA "+quoteIdent(id)+" CASCADE")
	return err
}

func (s *Server) insertTable(r *http.Request, dataset string) (any, error) {
	if _, ok := s.datasets[dataset]; !ok {
		return nil, errf(404, "notFound", "Not found: Dataset %s:%s", s.project, dataset)
	}
	var t bq.Table
	if err := json.NewDecoder(r.Body).Decode(&t); err != nil {
		return nil, errf(400, "invalid", "bad table body: %v", err)
	}
	if t.TableReference == nil || t.TableReference.TableId == "" {
		return nil, errf(400, "invalid", "tableReference.tableId is required")
	}
	if t.View != nil || t.MaterializedView != nil || t.ExternalDataConfiguration != nil {
		return nil, errf(400, "invalid", "the stand-in only creates native tables")
	}
	ref := tableRef{dataset, t.TableReference.TableId}
	if _, ok := s.tables[ref]; ok {
		return nil, errf(409, "duplicate", "Already Exists: Table %s:%s.%s", s.project, ref.dataset, ref.table)
	}
	if err := s.checkLayout(&t); err != nil {
		return nil, err
	}
	if err := s.createTable(ref, t.Schema); err != nil {
		return nil, err
	}
	t.TableReference.ProjectId = s.project
	t.TableReference.DatasetId = dataset
	s.registerTable(ref, &t)
	return s.tableMeta(ref)
}

// checkLayout applies BigQuery's rules on partitioning and clustering columns
// that matter to a table definition.
func (s *Server) checkLayout(t *bq.Table) error {
	fields := map[string]*bq.TableFieldSchema{}
	if t.Schema != nil {
		for _, f := range t.Schema.Fields {
			fields[strings.ToLower(f.Name)] = f
		}
	}
	if p := t.TimePartitioning; p != nil {
		switch p.Type {
		case "DAY", "HOUR", "MONTH", "YEAR":
		default:
			return errf(400, "invalid", "Invalid time partitioning type %q", p.Type)
		}
		if p.Field != "" {
			f, ok := fields[strings.ToLower(p.Field)]
			if !ok {
				return errf(400, "invalid", "The field specified for time partitioning can only be found in the schema: %s", p.Field)
			}
			if f.Type != "TIMESTAMP" && f.Type != "DATE" && f.Type != "DATETIME" {
				return errf(400, "invalid", "Partitioning field %s has type %s", p.Field, f.Type)
			}
		}
	}
	if c := t.Clustering; c != nil {
		if len(c.Fields) > 4 {
			return errf(400, "invalid", "Too many clustering fields: %d, only 4 are allowed", len(c.Fields))
		}
		for _, name := range c.Fields {
			f, ok := fields[strings.ToLower(name)]
			if !ok {
				return errf(400, "invalid", "The field specified for clustering cannot be found in the schema: %s", name)
			}
			if f.Type == "JSON" || f.Type == "FLOAT" || f.Type == "FLOAT64" || f.Type == "RECORD" {
				return errf(400, "invalid", "Field %s of type %s is not supported for clustering", name, f.Type)
			}
		}
	}
	return nil
}

func (s *Server) registerTable(ref tableRef, t *bq.Table) {
	now := s.now().UnixMilli()
	t.Id = fmt.Sprintf("%s:%s.%s", s.project, ref.dataset, ref.table)
	t.Kind = "bigquery#table"
	t.Type = "TABLE"
	t.CreationTime = now
	t.LastModifiedTime = uint64(now)
	t.Etag = newEtag()
	if ds := s.datasets[ref.dataset]; ds != nil {
		t.Location = ds.Location
	}
	s.tables[ref] = t
}

func newEtag() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) createTable(ref tableRef, schema *bq.TableSchema) error {
	var cols []string
	if schema != nil {
		for _, f := range schema.Fields {
			d, err := duckType(f)
			if err != nil {
				return err
			}
			cols = append(cols, quoteIdent(f.Name)+" "+d)
		}
	}
	if len(cols) == 0 {
		// BigQuery allows a table without a schema; DuckDB does not.
		cols = []string{`"__no_schema" BOOLEAN`}
	}
	q := fmt.Sprintf("CREATE TABLE %s.%s (%s)", quoteIdent(ref.dataset), quoteIdent(ref.table), strings.Join(cols, ", "))
	_, err := s.conn.ExecContext(context.Background(), q)
	return err
}

func duckType(f *bq.TableFieldSchema) (string, error) {
	if f.Mode == "REPEATED" || f.Type == "RECORD" || f.Type == "STRUCT" || f.Type == "GEOGRAPHY" || f.Type == "RANGE" {
		return "", errf(400, "invalid", "field %s: type %s mode %s is not supported by the stand-in", f.Name, f.Type, f.Mode)
	}
	d, ok := bqTypes[f.Type]
	if !ok {
		return "", errf(400, "invalid", "field %s: unknown type %s", f.Name, f.Type)
	}
	if f.Mode == "REQUIRED" {
		d += " NOT NULL"
	}
	return d, nil
}

func (s *Server) dropTable(ref tableRef) error {
	delete(s.tables, ref)
	_, err := s.conn.ExecContext(context.Background(), fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", quoteIdent(ref.dataset), quoteIdent(ref.table)))
	return err
}

// expireLocked drops tables whose expirationTime has passed, as BigQuery
// does (lazily here: on the next request).
func (s *Server) expireLocked() {
	now := s.now().UnixMilli()
	for ref, t := range s.tables {
		if t.ExpirationTime != 0 && t.ExpirationTime <= now {
			s.dropTable(ref)
		}
	}
}

func (s *Server) tableMeta(ref tableRef) (*bq.Table, error) {
	t := s.tables[ref]
	var n int64
	err := s.conn.QueryRowContext(context.Background(), fmt.Sprintf("SELECT count(*) FROM %s.%s", quoteIdent(ref.dataset), quoteIdent(ref.table))).Scan(&n)
	if err != nil {
		return nil, err
	}
	t.NumRows = uint64(n)
	return t, nil
}

// patchTable applies the fields present in the request, as tables.patch does.
// Schema changes may only add NULLABLE columns or relax REQUIRED to NULLABLE.
func (s *Server) patchTable(r *http.Request, ref tableRef) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	cur := s.tables[ref]
	if m := r.Header.Get("If-Match"); m != "" && m != cur.Etag {
		return nil, errf(412, "conditionNotMet", "Precondition check failed.")
	}
	var present map[string]json.RawMessage
	var p bq.Table
	if err := json.Unmarshal(body, &present); err != nil {
		return nil, errf(400, "invalid", "bad table body: %v", err)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, errf(400, "invalid", "bad table body: %v", err)
	}
	if _, ok := present["schema"]; ok && p.Schema != nil {
		if err := s.alterSchema(ref, cur.Schema, p.Schema); err != nil {
			return nil, err
		}
		cur.Schema = p.Schema
	}
	if _, ok := present["expirationTime"]; ok {
		cur.ExpirationTime = p.ExpirationTime
	}
	if _, ok := present["description"]; ok {
		cur.Description = p.Description
	}
	if _, ok := present["friendlyName"]; ok {
		cur.FriendlyName = p.FriendlyName
	}
	if _, ok := present["labels"]; ok {
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range p.Labels {
			cur.Labels[k] = v
		}
		for _, k := range p.NullFields {
			if strings.HasPrefix(k, "Labels.") {
				delete(cur.Labels, strings.TrimPrefix(k, "Labels."))
			}
		}
	}
	if _, ok := present["timePartitioning"]; ok && p.TimePartitioning != nil {
		if cur.TimePartitioning == nil || cur.TimePartitioning.Field != p.TimePartitioning.Field || cur.TimePartitioning.Type != p.TimePartitioning.Type {
			return nil, errf(400, "invalid", "Cannot change partitioning spec of table %s", cur.Id)
		}
		cur.TimePartitioning.ExpirationMs = p.TimePartitioning.ExpirationMs
	}
	if _, ok := present["clustering"]; ok {
		cur.Clustering = p.Clustering
	}
	cur.Etag = newEtag()
	cur.LastModifiedTime = uint64(s.now().UnixMilli())
	return s.tableMeta(ref)
}

func (s *Server) alterSchema(ref tableRef, old, next *bq.TableSchema) error {
	have := map[string]*bq.TableFieldSchema{}
	if old != nil {
		for _, f := range old.Fields {
			have[strings.ToLower(f.Name)] = f
		}
	}
	seen := map[string]bool{}
	var stmts []string
	tbl := quoteIdent(ref.dataset) + "." + quoteIdent(ref.table)
	for _, f := range next.Fields {
		key := strings.ToLower(f.Name)
		seen[key] = true
		o, ok := have[key]
		if !ok {
			if f.Mode == "REQUIRED" {
				return errf(400, "invalid", "Provided Schema does not match Table %s. Cannot add required field %s", ref.table, f.Name)
			}
			d, err := duckType(f)
			if err != nil {
				return err
			}
			stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", tbl, quoteIdent(f.Name), d))
			continue
		}
		if o.Type != f.Type && !(sameType(o.Type, f.Type)) {
			return errf(400, "invalid", "Provided Schema does not match Table %s. Field %s has changed type from %s to %s", ref.table, f.Name, o.Type, f.Type)
		}
		if o.Mode != "REQUIRED" && f.Mode == "REQUIRED" {
			return errf(400, "invalid", "Provided Schema does not match Table %s. Field %s has changed mode from NULLABLE to REQUIRED", ref.table, f.Name)
		}
		if o.Mode == "REQUIRED" && f.Mode != "REQUIRED" {
			stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", tbl, quoteIdent(f.Name)))
		}
	}
	for k, f := range have {
		if !seen[k] {
			return errf(400, "invalid", "Provided Schema does not match Table %s. Field %s is missing in new schema", ref.table, f.Name)
		}
	}
	for _, q := range stmts {
		if _, err := s.conn.ExecContext(context.Background(), q); err != nil {
			return err
		}
	}
	return nil
}

func sameType(a, b string) bool {
	norm := map[string]string{"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}
	if n, ok := norm[a]; ok {
		a = n
	}
	if n, ok := norm[b]; ok {
		b = n
	}
	return a == b
}

// startUpload handles jobs.insert with media: multipart in one request, or
// the first request of a resumable session.
func (s *Server) startUpload(r *http.Request) (any, error) {
	switch r.URL.Query().Get("uploadType") {
	case "multipart":
		s.uploadN[0]++
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || !strings.HasPrefix(mt, "multipart/") {
			return nil, errf(400, "invalid", "multipart upload needs a multipart Content-Type, got %q", r.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		meta, err := mr.NextPart()
		if err != nil {
			return nil, errf(400, "invalid", "multipart: %v", err)
		}
		var job bq.Job
		if err := json.NewDecoder(meta).Decode(&job); err != nil {
			return nil, errf(400, "invalid", "multipart job metadata: %v", err)
		}
		media, err := mr.NextPart()
		if err != nil {
			return nil, errf(400, "invalid", "multipart media: %v", err)
		}
		path, err := s.writeTemp(media)
		if err != nil {
			return nil, err
		}
		return s.insertJob(&job, path) // removes path
	case "resumable":
		s.uploadN[1]++
		var job bq.Job
		if err := json.NewDecoder(r.Body).Decode(&job); err != nil {
			return nil, errf(400, "invalid", "resumable job metadata: %v", err)
		}
		id := newEtag()
		f, err := os.CreateTemp(s.dir, "upload-*.parquet")
		if err != nil {
			return nil, err
		}
		s.uploads[id] = &upload{job: &job, file: f}
		h := http.Header{}
		h.Set("Location", fmt.Sprintf("%s/upload/bigquery/v2/projects/%s/jobs?uploadType=resumable&upload_id=%s", s.http.URL, s.project, id))
		return headerResult{header: h, body: map[string]any{}}, nil
	}
	return nil, errf(400, "invalid", "uploadType %q is not supported", r.URL.Query().Get("uploadType"))
}

var reRange = regexp.MustCompile(`^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$`)

// resumeUpload takes one chunk of a resumable session. Intermediate chunks
// are answered as Google does for clients that send X-GUploader-No-308.
func (s *Server) resumeUpload(r *http.Request) (any, error) {
	id := r.URL.Query().Get("upload_id")
	up, ok := s.uploads[id]
	if !ok {
		return nil, errf(404, "notFound", "upload session %s not found", id)
	}
	if up.file == nil {
		if up.err != nil {
			var ae *apiError
			if rec, ok := s.jobs[up.job.JobReference.JobId]; ok && errors.As(up.err, &ae) && ae.code == http.StatusServiceUnavailable {
				// The lost answer was the job itself.
				return snapshot(rec.job), nil
			}
		}
		return up.result, up.err
	}
	s.uploadN[2]++
	cr := r.Header.Get("Content-Range")
	sm := reRange.FindStringSubmatch(cr)
	if sm == nil {
		return nil, errf(400, "invalid", "bad Content-Range %q", cr)
	}
	if sm[1] != "" {
		off, _ := strconv.ParseInt(sm[1], 10, 64)
		end, _ := strconv.ParseInt(sm[2], 10, 64)
		if off > up.size {
			return nil, errf(400, "invalid", "chunk at %d leaves a gap after %d bytes", off, up.size)
		}
		// A retried chunk overwrites what it covers.
		if _, err := up.file.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
		n, err := io.Copy(up.file, r.Body)
		if err != nil {
			return nil, err
		}
		if n != end-off+1 {
			return nil, errf(400, "invalid", "Content-Range %q does not match %d body bytes", cr, n)
		}
		up.size = off + n
		if err := up.file.Truncate(up.size); err != nil {
			return nil, err
		}
	}
	if sm[3] == "*" {
		if r.Header.Get("X-GUploader-No-308") != "yes" {
			return nil, errf(400, "invalid", "the stand-in only serves clients that send X-GUploader-No-308")
		}
		h := http.Header{}
		h.Set("X-Http-Status-Code-Override", "308")
		h.Set("Range", fmt.Sprintf("bytes=0-%d", up.size-1))
		return headerResult{header: h, body: map[string]any{}}, nil
	}
	total, _ := strconv.ParseInt(sm[3], 10, 64)
	if total != up.size {
		return nil, errf(400, "invalid", "upload declares %d bytes, received %d", total, up.size)
	}
	name := up.file.Name()
	up.file.Close()
	up.file = nil
	up.result, up.err = s.insertJob(up.job, name) // removes name
	return up.result, up.err
}

// listData serves tabledata.list.
func (s *Server) listData(r *http.Request, ref tableRef) (any, error) {
	t, ok := s.tables[ref]
	if !ok {
		return nil, errf(404, "notFound", "Not found: Table %s:%s.%s", s.project, ref.dataset, ref.table)
	}
	q := fmt.Sprintf("SELECT * FROM %s.%s", quoteIdent(ref.dataset), quoteIdent(ref.table))
	rec, err := runSelect(context.Background(), s.conn, q)
	if err != nil {
		return nil, err
	}
	page, token, err := pageRows(rec, r)
	if err != nil {
		return nil, err
	}
	_ = t
	return &bq.TableDataList{Kind: "bigquery#tableDataList", Rows: page, TotalRows: int64(len(rec.rows)), PageToken: token}, nil
}

// pageRows cuts one page of results by pageToken/startIndex and maxResults.
func pageRows(rec *jobRecord, r *http.Request) ([]*bq.TableRow, string, error) {
	q := r.URL.Query()
	start := 0
	if tok := q.Get("pageToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil {
			return nil, "", errf(400, "invalid", "bad pageToken %q", tok)
		}
		start = n
	} else if si := q.Get("startIndex"); si != "" {
		n, err := strconv.Atoi(si)
		if err != nil {
			return nil, "", errf(400, "invalid", "bad startIndex %q", si)
		}
		start = n
	}
	max := 10000
	if mr := q.Get("maxResults"); mr != "" {
		n, err := strconv.Atoi(mr)
		if err != nil {
			return nil, "", errf(400, "invalid", "bad maxResults %q", mr)
		}
		max = n
	}
	int64ts := q.Get("formatOptions.useInt64Timestamp") == "true"
	if start > len(rec.rows) {
		start = len(rec.rows)
	}
	end := start + max
	if end > len(rec.rows) {
		end = len(rec.rows)
	}
	var out []*bq.TableRow
	for _, row := range rec.rows[start:end] {
		tr := &bq.TableRow{}
		for i, v := range row {
			if ts, ok := v.(int64); ok && rec.tsCols[i] && !int64ts {
				v = strconv.FormatFloat(float64(ts)/1e6, 'f', 6, 64)
			} else if ok {
				v = strconv.FormatInt(ts, 10)
			}
			tr.F = append(tr.F, &bq.TableCell{V: v})
		}
		out = append(out, tr)
	}
	token := ""
	if end < len(rec.rows) && max > 0 {
		token = strconv.Itoa(end)
	}
	return out, token, nil
}

// writeTemp stores uploaded media where DuckDB can read it.
func (s *Server) writeTemp(r io.Reader) (string, error) {
	f, err := os.CreateTemp(s.dir, "upload-*.parquet")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}
