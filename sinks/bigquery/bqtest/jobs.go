package bqtest

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	bq "google.golang.org/api/bigquery/v2"
)

// insertJob creates, runs and remembers a job. Jobs run to completion before
// jobs.insert answers, so every job the client sees is DONE.
func (s *Server) insertJob(job *bq.Job, media string) (any, error) {
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
	if job.JobReference.Location == "" {
		job.JobReference.Location = "US"
	}
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
	rec := &jobRecord{job: job}
	s.jobs[id] = rec

	var runErr error
	if f != nil && f.mode == FailJob {
		runErr = &queryError{reason: f.reason, msg: "injected job failure"}
		if kind == LoadJob {
			s.loads[tableRef{job.Configuration.Load.DestinationTable.DatasetId, job.Configuration.Load.DestinationTable.TableId}]++
		} else {
			s.queries++
		}
	} else if kind == LoadJob {
		runErr = s.runLoad(rec, media)
	} else {
		runErr = s.runQuery(rec)
	}
	job.Statistics.EndTime = s.now().UnixMilli()
	job.Status = &bq.JobStatus{State: "DONE"}
	if runErr != nil {
		ep := &bq.ErrorProto{Reason: "invalid", Message: runErr.Error()}
		var qe *queryError
		var ae *apiError
		switch {
		case errors.As(runErr, &qe):
			ep = &bq.ErrorProto{Reason: qe.reason, Message: qe.msg}
		case errors.As(runErr, &ae):
			ep = &bq.ErrorProto{Reason: ae.reason, Message: ae.msg}
		}
		job.Status.ErrorResult = ep
		job.Status.Errors = []*bq.ErrorProto{ep}
	}
	if f != nil && f.mode == LoseResponse {
		return nil, errf(http.StatusServiceUnavailable, "backendError", "injected: response lost after the job was accepted")
	}
	return job, nil
}

// readOnly reports whether a query is a single SELECT (or WITH ... SELECT).
func readOnly(q string) bool {
	q = strings.ToUpper(strings.TrimSpace(q))
	return (strings.HasPrefix(q, "SELECT") || strings.HasPrefix(q, "WITH")) && !strings.Contains(strings.TrimRight(q, "; \n\t"), ";")
}

func httpStatus(reason string) int {
	switch reason {
	case "backendError":
		return 503
	case "internalError":
		return 500
	case "rateLimitExceeded", "quotaExceeded", "accessDenied":
		return 403
	case "notFound":
		return 404
	case "duplicate":
		return 409
	}
	return 400
}

// parquetTypes maps DuckDB's view of Parquet columns to the types BigQuery
// gives them on load.
func bqTypeOf(duck string) (string, bool) {
	d := strings.ToUpper(duck)
	switch {
	case d == "VARCHAR":
		return "STRING", true
	case d == "BIGINT" || d == "INTEGER" || d == "SMALLINT" || d == "TINYINT" || d == "UINTEGER" || d == "USMALLINT" || d == "UTINYINT" || d == "HUGEINT" || d == "UBIGINT":
		return "INTEGER", true
	case d == "DOUBLE" || d == "FLOAT":
		return "FLOAT", true
	case d == "BOOLEAN":
		return "BOOLEAN", true
	case d == "TIMESTAMP WITH TIME ZONE" || d == "TIMESTAMPTZ":
		return "TIMESTAMP", true
	case d == "TIMESTAMP":
		return "DATETIME", true
	case d == "DATE":
		return "DATE", true
	case d == "TIME":
		return "TIME", true
	case d == "BLOB":
		return "BYTES", true
	case d == "JSON":
		return "JSON", true
	case strings.HasPrefix(d, "DECIMAL"):
		return "NUMERIC", true
	}
	return "", false
}

func (s *Server) runLoad(rec *jobRecord, path string) error {
	cfg := rec.job.Configuration.Load
	if cfg.DestinationTable == nil {
		return &queryError{"invalid", "load job needs a destinationTable"}
	}
	dest := tableRef{cfg.DestinationTable.DatasetId, cfg.DestinationTable.TableId}
	if cfg.DestinationTable.ProjectId != "" && cfg.DestinationTable.ProjectId != s.project {
		return &queryError{"notFound", "Not found: Project " + cfg.DestinationTable.ProjectId}
	}
	s.loads[dest]++
	if len(cfg.SourceUris) > 0 || path == "" {
		return &queryError{"invalid", "the stand-in loads only uploaded media, not Cloud Storage URIs"}
	}
	if cfg.SourceFormat != "PARQUET" {
		return &queryError{"invalid", fmt.Sprintf("the stand-in loads only PARQUET, got %q", cfg.SourceFormat)}
	}
	if len(cfg.SchemaUpdateOptions) > 0 {
		return &queryError{"invalid", "schemaUpdateOptions are not supported by the stand-in"}
	}
	if _, ok := s.datasets[dest.dataset]; !ok {
		return &queryError{"notFound", fmt.Sprintf("Not found: Dataset %s:%s", s.project, dest.dataset)}
	}
	ctx := context.Background()
	src := "read_parquet('" + strings.ReplaceAll(path, "'", "''") + "')"

	// The Parquet's own schema, as BigQuery derives it.
	fileSchema, err := s.parquetSchema(ctx, path, src)
	if err != nil {
		return err
	}
	loadSchema := fileSchema
	if cfg.Schema != nil && len(cfg.Schema.Fields) > 0 {
		if err := compatible(dest.table, cfg.Schema, fileSchema, true); err != nil {
			return err
		}
		loadSchema = cfg.Schema
	}

	t, exists := s.tables[dest]
	write := cfg.WriteDisposition
	if write == "" {
		write = "WRITE_APPEND"
	}
	create := cfg.CreateDisposition
	if create == "" {
		create = "CREATE_IF_NEEDED"
	}
	tbl := quoteIdent(dest.dataset) + "." + quoteIdent(dest.table)
	if !exists {
		if create == "CREATE_NEVER" {
			return &queryError{"notFound", fmt.Sprintf("Not found: Table %s:%s.%s", s.project, dest.dataset, dest.table)}
		}
		nt := &bq.Table{TableReference: &bq.TableReference{ProjectId: s.project, DatasetId: dest.dataset, TableId: dest.table},
			Schema: loadSchema, TimePartitioning: cfg.TimePartitioning, Clustering: cfg.Clustering}
		if err := s.checkLayout(nt); err != nil {
			return err
		}
		if err := s.createTable(dest, loadSchema); err != nil {
			return err
		}
		s.registerTable(dest, nt)
		t = nt
	} else {
		switch write {
		case "WRITE_EMPTY":
			var n int64
			if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return &queryError{"duplicate", fmt.Sprintf("Already Exists: Table %s:%s.%s (writeDisposition WRITE_EMPTY and the table has data)", s.project, dest.dataset, dest.table)}
			}
		case "WRITE_APPEND":
		case "WRITE_TRUNCATE":
		default:
			return &queryError{"invalid", "unknown writeDisposition " + write}
		}
		if write != "WRITE_TRUNCATE" {
			if err := compatible(dest.table, t.Schema, loadSchema, false); err != nil {
				return err
			}
		}
	}
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if exists && write == "WRITE_TRUNCATE" {
		// Truncation replaces data and schema; partitioning and clustering stay.
		if t.TimePartitioning != nil && t.TimePartitioning.Field != "" && !hasField(loadSchema, t.TimePartitioning.Field) {
			return &queryError{"invalid", "Incompatible table partitioning specification: field " + t.TimePartitioning.Field + " is missing"}
		}
		if _, err := tx.ExecContext(ctx, "DROP TABLE "+tbl); err != nil {
			return err
		}
		cols, err := columnsDDL(loadSchema)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "CREATE TABLE "+tbl+" ("+cols+")"); err != nil {
			return err
		}
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" BY NAME SELECT * FROM "+src)
	if err != nil {
		return duckError(err)
	}
	if err := tx.Commit(); err != nil {
		return duckError(err)
	}
	if exists && write == "WRITE_TRUNCATE" {
		t.Schema = loadSchema
	}
	n, _ := res.RowsAffected()
	t.LastModifiedTime = uint64(s.now().UnixMilli())
	rec.job.Statistics.Load = &bq.JobStatistics3{InputFiles: 1, InputFileBytes: fileSize(path), OutputRows: n}
	return nil
}

func hasField(sc *bq.TableSchema, name string) bool {
	for _, f := range sc.Fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

func columnsDDL(sc *bq.TableSchema) (string, error) {
	var cols []string
	for _, f := range sc.Fields {
		d, err := duckType(f)
		if err != nil {
			return "", err
		}
		cols = append(cols, quoteIdent(f.Name)+" "+d)
	}
	return strings.Join(cols, ", "), nil
}

// parquetSchema reads the file's schema: types from DuckDB's reader, modes
// from the Parquet repetition (REQUIRED stays REQUIRED, as in BigQuery).
func (s *Server) parquetSchema(ctx context.Context, path, src string) (*bq.TableSchema, error) {
	rows, err := s.conn.QueryContext(ctx, "DESCRIBE SELECT * FROM "+src)
	if err != nil {
		return nil, &queryError{"invalid", "Error while reading data, error message: " + err.Error()}
	}
	sc := &bq.TableSchema{}
	for rows.Next() {
		var name, typ string
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			rows.Close()
			return nil, err
		}
		bt, ok := bqTypeOf(typ)
		if !ok {
			rows.Close()
			return nil, &queryError{"invalid", fmt.Sprintf("Error while reading data: Parquet column %s has type %s, which the stand-in does not load (nanosecond timestamps, unsigned 64-bit, nested types)", name, typ)}
		}
		sc.Fields = append(sc.Fields, &bq.TableFieldSchema{Name: name, Type: bt, Mode: "NULLABLE"})
	}
	rows.Close()
	mrows, err := s.conn.QueryContext(ctx, "SELECT name, repetition_type FROM parquet_schema('"+strings.ReplaceAll(path, "'", "''")+"')")
	if err != nil {
		return nil, err
	}
	defer mrows.Close()
	for mrows.Next() {
		var name string
		var rep sql.NullString
		if err := mrows.Scan(&name, &rep); err != nil {
			return nil, err
		}
		for _, f := range sc.Fields {
			if f.Name == name && rep.String == "REQUIRED" {
				f.Mode = "REQUIRED"
			}
		}
	}
	return sc, nil
}

// compatible checks that data of schema src can go into a table of schema
// dst by column name, as BigQuery does for WRITE_APPEND loads. declared is
// true when dst is the load job's own schema (then every file column must be
// declared and JSON columns are refused: BigQuery loads JSON only from CSV,
// Avro and newline-delimited JSON).
func compatible(table string, dst, src *bq.TableSchema, declared bool) error {
	byName := map[string]*bq.TableFieldSchema{}
	for _, f := range dst.Fields {
		byName[strings.ToLower(f.Name)] = f
	}
	inSrc := map[string]bool{}
	for _, f := range src.Fields {
		inSrc[strings.ToLower(f.Name)] = true
		d, ok := byName[strings.ToLower(f.Name)]
		if !ok {
			return &queryError{"invalid", fmt.Sprintf("Provided Schema does not match Table %s. Cannot add fields (field: %s)", table, f.Name)}
		}
		if d.Type == "JSON" && f.Type != "JSON" {
			return &queryError{"invalid", fmt.Sprintf("Field %s: loading PARQUET into a JSON column is not supported", f.Name)}
		}
		if !sameType(d.Type, f.Type) {
			return &queryError{"invalid", fmt.Sprintf("Provided Schema does not match Table %s. Field %s has changed type from %s to %s", table, f.Name, d.Type, f.Type)}
		}
	}
	for _, d := range dst.Fields {
		if d.Mode == "REQUIRED" && !inSrc[strings.ToLower(d.Name)] {
			return &queryError{"invalid", fmt.Sprintf("Provided Schema does not match Table %s. Field %s is missing in new schema", table, d.Name)}
		}
	}
	return nil
}

func duckError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Catalog Error") && strings.Contains(msg, "does not exist"):
		return &queryError{"notFound", "Not found: " + msg}
	case strings.Contains(msg, "Constraint Error"), strings.Contains(msg, "Conversion Error"), strings.Contains(msg, "Invalid Input Error"):
		return &queryError{"invalid", msg}
	}
	return &queryError{"invalidQuery", msg}
}

func (s *Server) runQuery(rec *jobRecord) error {
	cfg := rec.job.Configuration.Query
	s.queries++
	if cfg.UseLegacySql == nil || *cfg.UseLegacySql {
		return &queryError{"invalidQuery", "the stand-in runs only GoogleSQL (useLegacySql=false)"}
	}
	if cfg.DestinationTable != nil {
		return &queryError{"invalid", "query destination tables are not supported by the stand-in"}
	}
	stmts, err := translate(cfg.Query, s.project, cfg.QueryParameters)
	if err != nil {
		return err
	}
	counted := map[tableRef]bool{}
	for _, st := range stmts {
		if st.target != nil && !counted[*st.target] {
			counted[*st.target] = true
			s.dml[*st.target]++
		}
		for _, ref := range st.tables {
			if _, ok := s.datasets[ref.dataset]; !ok {
				return &queryError{"notFound", fmt.Sprintf("Not found: Dataset %s:%s", s.project, ref.dataset)}
			}
			if _, ok := s.tables[ref]; !ok && !(st.kind == "CREATE_TABLE" && st.target != nil && *st.target == ref) {
				return &queryError{"notFound", fmt.Sprintf("Not found: Table %s:%s.%s was not found in location US", s.project, ref.dataset, ref.table)}
			}
		}
	}
	ctx := context.Background()
	inTx := false
	rollback := func() {
		if inTx {
			s.conn.ExecContext(ctx, "ROLLBACK")
		}
	}
	stats := &bq.JobStatistics2{}
	if len(stmts) == 1 {
		stats.StatementType = stmts[0].kind
	} else {
		stats.StatementType = "SCRIPT"
	}
	for _, st := range stmts {
		switch st.kind {
		case "SELECT":
			r, err := s.runSelect(st.sql, rec.job)
			if err != nil {
				rollback()
				return err
			}
			rec.schema, rec.rows, rec.tsCols = r.schema, r.rows, r.tsCols
			continue
		case "BEGIN":
			if inTx {
				rollback()
				return &queryError{"invalidQuery", "Nested transactions are not supported"}
			}
			inTx = true
		case "COMMIT", "ROLLBACK":
			if !inTx {
				return &queryError{"invalidQuery", st.kind + " without BEGIN TRANSACTION"}
			}
			inTx = false
		}
		res, err := s.conn.ExecContext(ctx, st.sql)
		if err != nil {
			rollback()
			return duckError(err)
		}
		if st.kind == "MERGE" || st.kind == "INSERT" || st.kind == "UPDATE" || st.kind == "DELETE" {
			n, _ := res.RowsAffected()
			rec.dmlRows += n
			if t := s.tables[*st.target]; t != nil {
				t.LastModifiedTime = uint64(s.now().UnixMilli())
			}
		}
		if st.schemaDDL && st.target != nil {
			if err := s.resync(ctx, *st.target); err != nil {
				rollback()
				return err
			}
		}
	}
	if inTx {
		rollback()
		return &queryError{"invalidQuery", "Transaction is still active at the end of the script"}
	}
	stats.NumDmlAffectedRows = rec.dmlRows
	rec.job.Statistics.Query = stats
	return nil
}

// resync refreshes a table's metadata after DDL ran in SQL.
func (s *Server) resync(ctx context.Context, ref tableRef) error {
	rows, err := s.conn.QueryContext(ctx, "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", ref.dataset, ref.table)
	if err != nil {
		return err
	}
	defer rows.Close()
	sc := &bq.TableSchema{}
	for rows.Next() {
		var name, typ, null string
		if err := rows.Scan(&name, &typ, &null); err != nil {
			return err
		}
		bt, _ := bqTypeOf(typ)
		mode := "NULLABLE"
		if null == "NO" {
			mode = "REQUIRED"
		}
		sc.Fields = append(sc.Fields, &bq.TableFieldSchema{Name: name, Type: bt, Mode: mode})
	}
	if len(sc.Fields) == 0 {
		delete(s.tables, ref)
		return nil
	}
	if t, ok := s.tables[ref]; ok {
		t.Schema = sc
		t.Etag = newEtag()
		return nil
	}
	s.registerTable(ref, &bq.Table{TableReference: &bq.TableReference{ProjectId: s.project, DatasetId: ref.dataset, TableId: ref.table}, Schema: sc})
	return nil
}

// runSelect runs a query and keeps its rows for paging.
func (s *Server) runSelect(q string, job *bq.Job) (*jobRecord, error) {
	rows, err := s.conn.QueryContext(context.Background(), q)
	if err != nil {
		return nil, duckError(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	rec := &jobRecord{schema: &bq.TableSchema{}}
	for _, ct := range cts {
		bt, ok := bqTypeOf(ct.DatabaseTypeName())
		if !ok {
			bt = "STRING"
		}
		rec.schema.Fields = append(rec.schema.Fields, &bq.TableFieldSchema{Name: ct.Name(), Type: bt, Mode: "NULLABLE"})
		rec.tsCols = append(rec.tsCols, bt == "TIMESTAMP")
	}
	for rows.Next() {
		vals := make([]any, len(cts))
		ptrs := make([]any, len(cts))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out := make([]any, len(cts))
		for i, v := range vals {
			out[i] = cell(v, rec.schema.Fields[i].Type)
		}
		rec.rows = append(rec.rows, out)
	}
	return rec, rows.Err()
}

func cell(v any, typ string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case time.Time:
		switch typ {
		case "TIMESTAMP":
			return x.UnixMicro()
		case "DATE":
			return x.Format("2006-01-02")
		case "TIME":
			return x.Format("15:04:05.999999")
		}
		return x.Format("2006-01-02T15:04:05.999999")
	case bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, float32, float64:
		return fmt.Sprint(x)
	case fmt.Stringer:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jobsQuery serves jobs.query: a query job with a generated id whose first
// page of results comes back in the same response.
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

// queryResults serves jobs.getQueryResults. A failed job answers with its
// error, as BigQuery does.
func (s *Server) queryResults(r *http.Request, id string) (any, error) {
	rec, ok := s.jobs[id]
	if !ok {
		return nil, errf(404, "notFound", "Not found: Job %s:%s", s.project, id)
	}
	if rec.job.Configuration.Query == nil {
		return nil, errf(400, "invalid", "Job %s is not a query job", id)
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

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
