package bqtest

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	bq "google.golang.org/api/bigquery/v2"
)

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

// runSelect runs a query on conn and keeps its rows for paging.
func runSelect(ctx context.Context, conn *sql.Conn, q string) (*jobRecord, error) {
	rows, err := conn.QueryContext(ctx, q)
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

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
