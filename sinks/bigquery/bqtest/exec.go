package bqtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	bq "google.golang.org/api/bigquery/v2"
)

// Job states as BigQuery reports them.
const (
	statePending = "PENDING"
	stateRunning = "RUNNING"
	stateDone    = "DONE"
)

// insertJob creates and remembers a job and starts it; it answers with the
// job RUNNING (or already DONE), as BigQuery does. Called with s.mu held.
func (s *Server) insertJob(job *bq.Job, media string) (any, error) {
	keepMedia := false
	defer func() {
		if media != "" && !keepMedia {
			os.Remove(media)
		}
	}()
	if job.Configuration == nil {
		return nil, errf(400, "invalid", "job.configuration is required")
	}
	var kind JobKind
	switch {
	case job.Configuration.Load != nil:
		kind = LoadJob
		job.Configuration.JobType = "LOAD"
	case job.Configuration.Query != nil:
		kind = QueryJob
		job.Configuration.JobType = "QUERY"
	default:
		return nil, errf(400, "invalid", "the stand-in runs only load and query jobs")
	}
	if job.Configuration.DryRun {
		return nil, errf(400, "invalid", "the stand-in dry-runs only query jobs (jobs.insert without media)")
	}
	if job.JobReference == nil {
		job.JobReference = &bq.JobReference{}
	}
	if job.JobReference.JobId == "" {
		job.JobReference.JobId = "job_" + newEtag()
	}
	id := job.JobReference.JobId
	if len(id) > 1024 || strings.IndexFunc(id, func(r rune) bool {
		return !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) >= 0 {
		return nil, errf(400, "invalid", "Invalid job ID %q", id)
	}
	job.JobReference.ProjectId = s.project
	preErr := s.placeLocked(job)
	if _, dup := s.jobs[id]; dup {
		return nil, errf(409, "duplicate", "Already Exists: Job %s:%s.%s", s.project, job.JobReference.Location, id)
	}
	kinds := []JobKind{kind}
	if kind == QueryJob && !readOnly(job.Configuration.Query.Query) {
		kinds = append(kinds, DMLJob)
	}
	f := s.takeFault(kinds...)
	if f != nil && f.mode == RejectInsert {
		return nil, errf(httpStatus(f.reason), f.reason, "injected fault on jobs.insert")
	}
	now := s.now().UnixMilli()
	job.Id = s.project + ":" + job.JobReference.Location + "." + id
	job.Kind = "bigquery#job"
	job.Statistics = &bq.JobStatistics{CreationTime: now, StartTime: now}
	job.Status = &bq.JobStatus{State: stateRunning}
	ctx, cancel := context.WithCancel(context.Background())
	if ms := job.Configuration.JobTimeoutMs; ms > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
	}
	rec := &jobRecord{job: job, kind: kind, ctx: ctx, cancel: cancel, done: make(chan struct{}), held: map[tableRef]bool{}}
	s.jobs[id] = rec
	s.order = append(s.order, id)
	if kind == QueryJob {
		s.queries++
		for _, ref := range s.queryTargets(job) {
			s.dml[ref]++
		}
	}
	if f != nil && f.mode == FailJob {
		preErr = &queryError{reason: f.reason, msg: "injected job failure"}
	}
	hang := f != nil && f.mode == HangJob
	keepMedia = true
	s.running.Add(1)
	go s.execute(rec, media, preErr, hang)
	if f != nil && f.mode == LoseResponse {
		return nil, errf(http.StatusServiceUnavailable, "backendError", "injected: response lost after the job was accepted")
	}
	return snapshot(job), nil
}

// placeLocked sets where job runs: where its datasets are. Without a
// location it is placed by the first dataset it names, else in US; with
// one, every dataset it names must be there, or the job fails with the
// notFound error placeLocked returns. Called with s.mu held.
func (s *Server) placeLocked(job *bq.Job) error {
	datasets := s.jobDatasets(job)
	loc := job.JobReference.Location
	if loc == "" {
		loc = "US"
		for _, d := range datasets {
			if ds := s.datasets[d]; ds != nil {
				loc = ds.Location
				break
			}
		}
	}
	job.JobReference.Location = loc
	for _, d := range datasets {
		if ds := s.datasets[d]; ds != nil && !strings.EqualFold(ds.Location, loc) {
			return &queryError{"notFound", fmt.Sprintf("Not found: Dataset %s:%s was not found in location %s", s.project, d, loc)}
		}
	}
	return nil
}

// dryRun answers jobs.insert of a dry-run query job as BigQuery does,
// without running or remembering it: the statement is analysed as
// runQuery analyses it (ZetaSQL, then the stand-in's own checks) and the
// job comes back DONE, or the request fails with the job's error (404
// notFound, 400 otherwise). Bytes processed are not modelled: 0.
func (s *Server) dryRun(ctx context.Context, job *bq.Job) (any, error) {
	if job.Configuration.Query == nil {
		return nil, errf(400, "invalid", "the stand-in dry-runs only query jobs")
	}
	if job.JobReference == nil {
		job.JobReference = &bq.JobReference{}
	}
	job.JobReference.ProjectId = s.project
	s.mu.Lock()
	err := s.placeLocked(job)
	s.mu.Unlock()
	var stmts []translated
	if err == nil {
		stmts, _, err = s.analyzeQuery(ctx, job.Configuration.Query)
	}
	if err != nil {
		var qe *queryError
		if errors.As(err, &qe) {
			code := 400
			if qe.reason == "notFound" {
				code = 404
			}
			return nil, errf(code, qe.reason, "%s", qe.msg)
		}
		return nil, err
	}
	stats := &bq.JobStatistics2{StatementType: "SCRIPT"}
	if len(stmts) == 1 {
		stats.StatementType = stmts[0].kind
	}
	job.Configuration.JobType = "QUERY"
	job.Kind = "bigquery#job"
	job.Status = &bq.JobStatus{State: stateDone}
	job.Statistics = &bq.JobStatistics{Query: stats}
	return job, nil
}

// jobDatasets lists the datasets a job names (its location decides where
// it may run).
func (s *Server) jobDatasets(job *bq.Job) []string {
	var out []string
	if l := job.Configuration.Load; l != nil && l.DestinationTable != nil {
		out = append(out, l.DestinationTable.DatasetId)
	}
	if q := job.Configuration.Query; q != nil {
		if toks, err := tokenize(q.Query); err == nil {
			for _, t := range toks {
				if t.kind != tokBacktick {
					continue
				}
				name := strings.TrimPrefix(t.text, s.project+".")
				if parts := strings.Split(name, "."); len(parts) == 2 && !slices.Contains(out, parts[0]) {
					out = append(out, parts[0])
				}
			}
		}
	}
	return out
}

// queryTargets lists the tables a query job's statements modify.
func (s *Server) queryTargets(job *bq.Job) []tableRef {
	q := job.Configuration.Query
	stmts, err := translate(q.Query, s.project, q.QueryParameters)
	if err != nil {
		return nil
	}
	var out []tableRef
	for _, st := range stmts {
		if st.target != nil && !slices.Contains(out, *st.target) {
			out = append(out, *st.target)
		}
	}
	return out
}

// snapshot copies a job for an answer: its goroutine may change it while
// the answer is written.
func snapshot(job *bq.Job) json.RawMessage {
	b, err := json.Marshal(job)
	if err != nil {
		panic(fmt.Sprintf("bqtest: marshal job: %v", err)) // plain API struct
	}
	return b
}

// execute runs a job in its own goroutine and marks it DONE.
func (s *Server) execute(rec *jobRecord, media string, preErr error, hang bool) {
	defer s.running.Done()
	defer rec.cancel()
	if media != "" {
		defer os.Remove(media)
	}
	err := preErr
	if err == nil && hang {
		<-rec.ctx.Done()
		err = s.ctxError(rec)
	}
	if err == nil {
		if rec.kind == LoadJob {
			s.mu.Lock()
			err = s.runLoad(rec, media)
			s.mu.Unlock()
		} else {
			err = s.runQuery(rec)
		}
	}
	if err != nil && rec.ctx.Err() != nil {
		err = s.ctxError(rec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(rec, false)
	job := rec.job
	job.Statistics.EndTime = s.now().UnixMilli()
	job.Status = &bq.JobStatus{State: stateDone}
	if err != nil {
		ep := &bq.ErrorProto{Reason: "invalid", Message: err.Error()}
		var qe *queryError
		var ae *apiError
		switch {
		case errors.As(err, &qe):
			ep = &bq.ErrorProto{Reason: qe.reason, Message: qe.msg}
		case errors.As(err, &ae):
			ep = &bq.ErrorProto{Reason: ae.reason, Message: ae.msg}
		}
		job.Status.ErrorResult = ep
		job.Status.Errors = []*bq.ErrorProto{ep}
	}
	close(rec.done)
	s.cond.Broadcast()
}

// ctxError is the error of a job stopped by jobs.cancel or its jobTimeoutMs.
func (s *Server) ctxError(rec *jobRecord) error {
	if errors.Is(rec.ctx.Err(), context.DeadlineExceeded) {
		return &queryError{"timeout", fmt.Sprintf("Job %s exceeded its timeout of %dms (jobTimeoutMs) and was cancelled",
			rec.job.JobReference.JobId, rec.job.Configuration.JobTimeoutMs)}
	}
	return &queryError{"stopped", "Job execution was cancelled: User requested cancellation"}
}

// runQuery runs a query job: ZetaSQL analyses the whole script first, then
// DuckDB runs it statement by statement on a connection of its own, under
// the stand-in's model of BigQuery's DML concurrency.
func (s *Server) runQuery(rec *jobRecord) error {
	ctx := rec.ctx
	stmts, scans, err := s.analyzeQuery(ctx, rec.job.Configuration.Query)
	if err != nil {
		return err
	}
	s.mu.Lock()
	rec.scans = scans
	s.mu.Unlock()

	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	inTx := false
	rollback := func() {
		if inTx {
			conn.ExecContext(context.Background(), "ROLLBACK")
			inTx = false
		}
	}
	defer rollback()
	stats := &bq.JobStatistics2{StatementType: "SCRIPT"}
	if len(stmts) == 1 {
		stats.StatementType = stmts[0].kind
	}
	for _, st := range stmts {
		if d := s.statementLatency(); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return s.ctxError(rec)
			}
		}
		mutates := st.target != nil && (st.kind == "MERGE" || st.kind == "INSERT" || st.kind == "UPDATE" || st.kind == "DELETE")
		switch st.kind {
		case "SELECT":
			r, err := runSelect(ctx, conn, st.sql)
			if err != nil {
				return err
			}
			s.mu.Lock()
			rec.schema, rec.rows, rec.tsCols = r.schema, r.rows, r.tsCols
			s.mu.Unlock()
			continue
		case "BEGIN":
			if inTx {
				return &queryError{"invalidQuery", "Nested transactions are not supported"}
			}
			s.mu.Lock()
			rec.txBegin = s.seq
			s.mu.Unlock()
		case "COMMIT", "ROLLBACK":
			if !inTx {
				return &queryError{"invalidQuery", st.kind + " without BEGIN TRANSACTION"}
			}
		}
		if mutates {
			if err := s.claim(rec, *st.target, inTx); err != nil {
				return err
			}
		}
		res, err := conn.ExecContext(ctx, st.sql)
		if err != nil {
			return duckError(err)
		}
		switch st.kind {
		case "BEGIN":
			inTx = true
		case "COMMIT", "ROLLBACK":
			inTx = false
			s.mu.Lock()
			s.releaseLocked(rec, st.kind == "COMMIT")
			s.mu.Unlock()
		}
		s.mu.Lock()
		if mutates {
			n, _ := res.RowsAffected()
			rec.dmlRows += n
			if t := s.tables[*st.target]; t != nil {
				t.LastModifiedTime = uint64(s.now().UnixMilli())
			}
			if !inTx {
				s.releaseLocked(rec, true)
			}
		}
		if st.schemaDDL && st.target != nil {
			err = s.resync(context.Background(), *st.target)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if inTx {
		return &queryError{"invalidQuery", "Transaction is still active at the end of the script"}
	}
	s.mu.Lock()
	stats.NumDmlAffectedRows = rec.dmlRows
	rec.job.Statistics.Query = stats
	s.mu.Unlock()
	return nil
}

// analyzeQuery checks a query job's GoogleSQL before it runs (or instead,
// for a dry run): the tables it names exist, ZetaSQL accepts it, and the
// stand-in can translate it for DuckDB. It returns the translated
// statements and the partition scans ZetaSQL resolved.
func (s *Server) analyzeQuery(ctx context.Context, cfg *bq.JobConfigurationQuery) ([]translated, []PartitionScan, error) {
	if cfg.UseLegacySql == nil || *cfg.UseLegacySql {
		return nil, nil, &queryError{"invalidQuery", "the stand-in runs only GoogleSQL (useLegacySql=false)"}
	}
	if cfg.DestinationTable != nil {
		return nil, nil, &queryError{"invalid", "query destination tables are not supported by the stand-in"}
	}
	s.mu.Lock()
	stmts, terr := translate(cfg.Query, s.project, cfg.QueryParameters)
	if terr == nil {
		terr = s.checkTablesLocked(stmts)
	}
	req := s.catalogLocked(cfg)
	s.mu.Unlock()
	var qe *queryError
	if errors.As(terr, &qe) && qe.reason == "notFound" {
		return nil, nil, terr
	}
	// ZetaSQL's verdict on the GoogleSQL comes before the stand-in's own
	// limits (what it cannot translate for DuckDB).
	req.SQL = cfg.Query
	res, err := s.az.analyze(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if res.Error != "" {
		reason := "invalidQuery"
		if strings.HasPrefix(res.Error, "Table not found") {
			if terr != nil {
				return nil, nil, terr // an unqualified name: BigQuery asks for a dataset
			}
			reason = "notFound"
		}
		return nil, nil, &queryError{reason, res.Error}
	}
	if terr != nil {
		return nil, nil, terr
	}
	return stmts, partitionScans(res, cfg.QueryParameters), nil
}

// checkTablesLocked answers notFound for datasets and tables a script names
// that do not exist.
func (s *Server) checkTablesLocked(stmts []translated) error {
	for _, st := range stmts {
		for _, ref := range st.tables {
			if _, ok := s.datasets[ref.dataset]; !ok {
				return &queryError{"notFound", fmt.Sprintf("Not found: Dataset %s:%s", s.project, ref.dataset)}
			}
			if _, ok := s.tables[ref]; !ok && !(st.kind == "CREATE_TABLE" && st.target != nil && *st.target == ref) {
				return &queryError{"notFound", fmt.Sprintf("Not found: Table %s:%s.%s", s.project, ref.dataset, ref.table)}
			}
		}
	}
	return nil
}

// catalogLocked describes every table and the query's parameters to ZetaSQL.
func (s *Server) catalogLocked(cfg *bq.JobConfigurationQuery) analyzeRequest {
	var req analyzeRequest
	refs := make([]tableRef, 0, len(s.tables))
	for ref := range s.tables {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool {
		return refs[i].dataset+"."+refs[i].table < refs[j].dataset+"."+refs[j].table
	})
	for _, ref := range refs {
		t := s.tables[ref]
		ct := catalogTable{Names: []string{s.project + "." + ref.dataset + "." + ref.table, ref.dataset + "." + ref.table}}
		if t.Schema != nil {
			for _, f := range t.Schema.Fields {
				ct.Columns = append(ct.Columns, [2]string{f.Name, f.Type})
			}
		}
		if p := t.TimePartitioning; p != nil && p.Field != "" {
			ct.Partition = p.Field
		}
		req.Tables = append(req.Tables, ct)
	}
	for _, p := range cfg.QueryParameters {
		if p.ParameterType != nil {
			req.Params = append(req.Params, [2]string{p.Name, p.ParameterType.Type})
		}
	}
	return req
}

// claim lets rec mutate table ref, as BigQuery's DML concurrency allows: a
// transaction that mutates a table another open transaction (or a running
// DML statement) mutates, or that another writer committed since the
// transaction began, is cancelled; a DML statement outside a transaction
// waits (queues) until the table is free.
func (s *Server) claim(rec *jobRecord, ref tableRef, inTx bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := rec.job.JobReference.JobId
	if inTx {
		if w := s.writers[ref]; (w != "" && w != id) || s.committed[ref] > rec.txBegin {
			s.conflicts++
			return &queryError{"invalidQuery", fmt.Sprintf("Transaction is aborted due to concurrent update against table %s.%s.%s. Transaction ID: %s",
				s.project, ref.dataset, ref.table, id)}
		}
		s.writers[ref] = id
		rec.held[ref] = true
		return nil
	}
	for {
		if w := s.writers[ref]; w == "" || w == id {
			break
		}
		if rec.ctx.Err() != nil {
			return s.ctxError(rec)
		}
		s.queued++
		s.cond.Wait()
	}
	s.writers[ref] = id
	rec.held[ref] = true
	return nil
}

// releaseLocked frees the tables rec holds; committed marks them changed.
func (s *Server) releaseLocked(rec *jobRecord, committed bool) {
	if len(rec.held) == 0 {
		return
	}
	id := rec.job.JobReference.JobId
	for ref := range rec.held {
		if s.writers[ref] == id {
			delete(s.writers, ref)
		}
		if committed {
			s.seq++
			s.committed[ref] = s.seq
		}
		delete(rec.held, ref)
	}
	s.cond.Broadcast()
}

func (s *Server) statementLatency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}

// findJob looks a job up as jobs.get does: a job outside the US and EU
// multi-regions is found only with its location.
func (s *Server) findJob(r *http.Request, id string) (*jobRecord, error) {
	rec, ok := s.jobs[id]
	notFound := errf(404, "notFound", "Not found: Job %s:%s", s.project, id)
	if !ok {
		return nil, notFound
	}
	loc := r.URL.Query().Get("location")
	jl := rec.job.JobReference.Location
	if loc == "" && !strings.EqualFold(jl, "US") && !strings.EqualFold(jl, "EU") {
		return nil, notFound
	}
	if loc != "" && !strings.EqualFold(loc, jl) {
		return nil, notFound
	}
	return rec, nil
}

// cancelJob serves jobs.cancel: the job stops at its next statement (a
// transaction is rolled back) and ends DONE with reason "stopped".
func (s *Server) cancelJob(r *http.Request, id string) (any, error) {
	rec, err := s.findJob(r, id)
	if err != nil {
		return nil, err
	}
	rec.cancel()
	s.cond.Broadcast()
	return map[string]any{"kind": "bigquery#jobCancelResponse", "job": snapshot(rec.job)}, nil
}

// listJobs serves jobs.list, newest first, filtered by stateFilter.
func (s *Server) listJobs(r *http.Request) (any, error) {
	states := r.URL.Query()["stateFilter"]
	out := &bq.JobList{Kind: "bigquery#jobList"}
	for i := len(s.order) - 1; i >= 0; i-- {
		rec := s.jobs[s.order[i]]
		state := rec.job.Status.State
		if len(states) > 0 && !slices.ContainsFunc(states, func(x string) bool { return strings.EqualFold(x, state) }) {
			continue
		}
		var j bq.Job
		if err := json.Unmarshal(snapshot(rec.job), &j); err != nil {
			return nil, err
		}
		out.Jobs = append(out.Jobs, &bq.JobListJobs{Id: j.Id, Kind: j.Kind, JobReference: j.JobReference,
			Configuration: j.Configuration, Status: j.Status, Statistics: j.Statistics, State: state, ErrorResult: j.Status.ErrorResult})
	}
	return out, nil
}

// waitDone waits (releasing s.mu) until rec is DONE, timeout passes or the
// request ends. Called with s.mu held.
func (s *Server) waitDone(r *http.Request, rec *jobRecord, timeout time.Duration) bool {
	if rec.job.Status.State == stateDone {
		return true
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-rec.done:
		case <-time.After(timeout):
		case <-r.Context().Done():
		case <-stop:
			return
		}
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	deadline := time.Now().Add(timeout)
	for rec.job.Status.State != stateDone && time.Now().Before(deadline) && r.Context().Err() == nil {
		s.cond.Wait()
	}
	return rec.job.Status.State == stateDone
}

// waitTimeout is timeoutMs of a request (BigQuery's default: 10s).
func waitTimeout(r *http.Request, body int64) time.Duration {
	ms := body
	if v := r.URL.Query().Get("timeoutMs"); v != "" {
		ms, _ = strconv.ParseInt(v, 10, 64)
	}
	if ms <= 0 {
		ms = 10000
	}
	return time.Duration(ms) * time.Millisecond
}

// jobsQuery serves jobs.query: a query job with a generated id whose first
// page of results comes back in the same response when it finishes within
// timeoutMs.
func (s *Server) jobsQuery(r *http.Request) (any, error) {
	var req bq.QueryRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, errf(400, "invalid", "bad query request: %v", err)
	}
	job := &bq.Job{
		JobReference:  &bq.JobReference{Location: req.Location},
		Configuration: &bq.JobConfiguration{Query: &bq.JobConfigurationQuery{Query: req.Query, QueryParameters: req.QueryParameters, UseLegacySql: req.UseLegacySql}, Labels: req.Labels},
	}
	if job.Configuration.Query.UseLegacySql == nil {
		// jobs.query defaults to legacy SQL too; the Go client always says.
		t := true
		job.Configuration.Query.UseLegacySql = &t
	}
	if _, err := s.insertJob(job, ""); err != nil {
		return nil, err
	}
	rec := s.jobs[job.JobReference.JobId]
	if !s.waitDone(r, rec, waitTimeout(r, req.TimeoutMs)) {
		return &bq.QueryResponse{Kind: "bigquery#queryResponse", JobComplete: false, JobReference: job.JobReference}, nil
	}
	if e := job.Status.ErrorResult; e != nil {
		return nil, errf(httpStatus(e.Reason), e.Reason, "%s", e.Message)
	}
	q := r.URL.Query()
	if req.MaxResults > 0 {
		q.Set("maxResults", fmt.Sprint(req.MaxResults))
	}
	if req.FormatOptions != nil && req.FormatOptions.UseInt64Timestamp {
		q.Set("formatOptions.useInt64Timestamp", "true")
	}
	r.URL.RawQuery = q.Encode()
	page, token, err := pageRows(rec, r)
	if err != nil {
		return nil, err
	}
	return &bq.QueryResponse{Kind: "bigquery#queryResponse", JobComplete: true, JobReference: job.JobReference,
		Schema: rec.schema, Rows: page, TotalRows: uint64(len(rec.rows)), PageToken: token, NumDmlAffectedRows: rec.dmlRows}, nil
}

// queryResults serves jobs.getQueryResults: it waits up to timeoutMs for
// the job; a failed job answers with its error, as BigQuery does.
func (s *Server) queryResults(r *http.Request, id string) (any, error) {
	rec, err := s.findJob(r, id)
	if err != nil {
		return nil, err
	}
	if rec.job.Configuration.Query == nil {
		return nil, errf(400, "invalid", "Job %s is not a query job", id)
	}
	if !s.waitDone(r, rec, waitTimeout(r, 0)) {
		return &bq.GetQueryResultsResponse{Kind: "bigquery#getQueryResultsResponse", JobComplete: false, JobReference: rec.job.JobReference}, nil
	}
	if e := rec.job.Status.ErrorResult; e != nil {
		return nil, errf(httpStatus(e.Reason), e.Reason, "%s", e.Message)
	}
	page, token, err := pageRows(rec, r)
	if err != nil {
		return nil, err
	}
	schema := rec.schema
	if schema == nil {
		schema = &bq.TableSchema{}
	}
	return &bq.GetQueryResultsResponse{Kind: "bigquery#getQueryResultsResponse", JobComplete: true, JobReference: rec.job.JobReference,
		Schema: schema, Rows: page, TotalRows: uint64(len(rec.rows)), PageToken: token, NumDmlAffectedRows: rec.dmlRows}, nil
}

// PartitionScan is a scan of a partitioned table by one statement of a
// query job, with the range of the partitioning column its filters bound
// by constants (query parameters): what BigQuery prunes to.
type PartitionScan struct {
	Table    string    // project.dataset.table
	From, To time.Time // [From, To); zero when unbounded on that side
	Bounded  bool      // both ends bounded: the scan is pruned
}

// Days lists the day partitions (YYYY-MM-DD, UTC) the scan reads, or nil
// when it reads them all.
func (p PartitionScan) Days() []string {
	if !p.Bounded {
		return nil
	}
	var out []string
	for d := p.From.UTC().Truncate(24 * time.Hour); d.Before(p.To); d = d.Add(24 * time.Hour) {
		out = append(out, d.Format("2006-01-02"))
	}
	return out
}

// partitionScans turns the bridge's bounds into time ranges with the
// parameters' values.
func partitionScans(res analysis, params []*bq.QueryParameter) []PartitionScan {
	values := map[string]time.Time{}
	for _, p := range params {
		if p.ParameterType == nil || p.ParameterType.Type != "TIMESTAMP" || p.ParameterValue == nil {
			continue
		}
		if lit, err := literal(p); err == nil {
			if ts, err := time.Parse("2006-01-02 15:04:05.000000", strings.TrimSuffix(strings.TrimPrefix(lit, "TIMESTAMPTZ '"), "+00'")); err == nil {
				values[strings.ToLower(p.Name)] = ts.UTC()
			}
		}
	}
	var out []PartitionScan
	for _, st := range res.Statements {
		for _, sc := range st.Scans {
			ps := PartitionScan{Table: sc.Table}
			var lo, hi bool
			for _, b := range sc.Bounds {
				v, ok := values[strings.ToLower(b.Param)]
				if !ok {
					continue
				}
				switch b.Op {
				case ">=", ">", "=":
					if !lo || v.After(ps.From) {
						ps.From, lo = v, true
					}
				}
				switch b.Op {
				case "<", "<=", "=":
					end := v
					if b.Op != "<" {
						end = v.Add(time.Microsecond)
					}
					if !hi || end.Before(ps.To) {
						ps.To, hi = end, true
					}
				}
			}
			ps.Bounded = lo && hi
			if !lo {
				ps.From = time.Time{}
			}
			if !hi {
				ps.To = time.Time{}
			}
			out = append(out, ps)
		}
	}
	return out
}
