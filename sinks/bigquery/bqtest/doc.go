// Package bqtest is a BigQuery REST stand-in for tests: the real
// cloud.google.com/go/bigquery client talks to it through
// option.WithEndpoint(s.URL()) and option.WithoutAuthentication(), and it
// really executes the SQL it receives on an in-memory DuckDB database.
//
// It imports github.com/duckdb/duckdb-go/v2 (cgo): only tests may import it,
// never the shipped binary (built with CGO_ENABLED=0).
//
// What it implements, as the Go client v1.86 calls it:
//   - datasets get/insert/delete; tables get/insert/patch/delete with schema,
//     timePartitioning, clustering, expirationTime (tables expire lazily, on
//     the next request), labels, description, etag/If-Match on patch. Schema
//     patches may add NULLABLE columns or relax REQUIRED; anything else is 400.
//   - jobs.insert of load jobs from media: uploadType=multipart
//     (multipart/related) and uploadType=resumable (a session Location,
//     chunks with Content-Range, intermediate chunks answered 200 with
//     X-Http-Status-Code-Override: 308 for clients sending
//     X-GUploader-No-308: yes; retried chunks overwrite). Only PARQUET is
//     loaded, into the DuckDB table by column name; the schema comes from
//     the file (REQUIRED from Parquet repetition) or the job. Dispositions:
//     WRITE_TRUNCATE (data and schema replaced, partitioning kept),
//     WRITE_APPEND (types must match, no new columns), WRITE_EMPTY (fails on
//     a table with rows); CREATE_IF_NEEDED / CREATE_NEVER. Loading Parquet
//     into a JSON column fails, as in BigQuery.
//   - jobs.insert of query jobs (GoogleSQL only), jobs.query, jobs.get,
//     getQueryResults (paged rows, int64 or float timestamps), tabledata.list.
//     A failed query job answers getQueryResults with its error, like BigQuery.
//   - job ids are remembered: a repeated id is 409 with reason "duplicate".
//     Every job runs to completion inside jobs.insert, so jobs are DONE at
//     once (clients never see PENDING or RUNNING).
//
// SQL: statements are translated for dialect only, then run by DuckDB:
// `project.dataset.table` (or `dataset.table`) becomes "dataset"."table",
// other backtick names become quoted identifiers, "text" becomes a string
// literal, @name parameters (STRING, INT64, FLOAT64, BOOL, TIMESTAMP, DATE)
// are inlined as typed literals, INSERT ROW becomes INSERT *, PARSE_JSON
// becomes json() (which rejects invalid JSON; wide_number_mode is dropped),
// and BigQuery type names in CREATE/ALTER become DuckDB types. Scripts run
// statement by statement; BEGIN TRANSACTION ... COMMIT TRANSACTION is a real
// DuckDB transaction rolled back on error. Rejected with 400 invalidQuery:
// legacy SQL, unknown parameters, positional, ARRAY and STRUCT parameters,
// `::` casts, INSERT *, system variables, DML on an unqualified table, and
// whatever DuckDB cannot parse or run. Tables and datasets that do not exist
// are 404/notFound. TIMESTAMP is DuckDB TIMESTAMPTZ in UTC; JSON is DuckDB JSON.
//
// Counters for tests: LoadJobs and DMLJobs per table, Totals; faults with
// Inject: reject the next N jobs.insert of a kind, fail the job, or run it
// and lose the response (503) as a connection cut after acceptance would.
//
// What it does NOT check or model: authentication and IAM; quotas and rate
// limits (it only counts jobs, it never refuses for quota); the DML
// concurrency and queue limits; job states other than DONE, slots, timing;
// partition pruning, partition expiration, require_partition_filter,
// clustering (stored, never used); the 10,000-partition limit; location
// rules (one location for everything); project ids other than its own;
// GoogleSQL semantics where DuckDB differs (function names and behaviour,
// JSON comparison and normalisation, NUMERIC precision, string collation,
// division and overflow errors, NULL ordering); BigQuery's type coercion
// rules (DuckDB casts more implicitly); that every statement of a script is
// GoogleSQL beyond the translated tokens; streaming inserts, the Storage
// Read/Write APIs, copy and extract jobs, Cloud Storage URIs, CSV/JSON/Avro
// loads, nested and repeated fields, views, routines, snapshots, time travel;
// resumable session expiry; checksums of uploads; job history expiry.
package bqtest
