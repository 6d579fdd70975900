// Package bqtest is a BigQuery REST stand-in for tests: the real
// cloud.google.com/go/bigquery client talks to it through
// option.WithEndpoint(s.URL()) and option.WithoutAuthentication(); every
// statement it receives is analysed by Google's ZetaSQL analyzer, then
// executed on an in-memory DuckDB database.
//
// It imports github.com/duckdb/duckdb-go/v2 (cgo): only tests may import it,
// never the shipped binary (built with CGO_ENABLED=0).
//
// # ZetaSQL
//
// Every query job's SQL, a single statement or a script (analysed statement
// by statement with parse_resume_location), goes through ZetaSQL, the
// GoogleSQL front end BigQuery uses, before DuckDB sees it: the catalog is
// every table of the stand-in (as `project.dataset.table` and
// `dataset.table`), with the job's query parameters typed, the maximum
// language features and BigQuery's product mode. A statement ZetaSQL
// rejects (a STRING into a JSON column, an unknown named argument, QUALIFY
// without WHERE, a type mismatch) fails the job with reason invalidQuery
// and ZetaSQL's message, as BigQuery reports it. ZetaSQL comes as the npm
// package named by ZetaSQLPackage (a local analyzer server for Linux and
// macOS); zetasql_bridge.js links it to this package over stdin and stdout.
// It runs under Node.js: Start skips its test, saying why, when node is not
// installed. The package is found in $VAULTSINK_TOOLS/zetasql or
// .tools/zetasql at the module root (make tools installs it there), and
// installed there with npm on first use otherwise.
//
// # What it implements, as the Go client v1.86 calls it
//   - datasets get/insert/delete, with a location (US when none is given);
//     tables get/insert/patch/delete with schema, timePartitioning,
//     clustering, expirationTime (tables expire lazily, on the next
//     request), labels, description, etag/If-Match on patch. Schema patches
//     may add NULLABLE columns or relax REQUIRED; anything else is 400.
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
//     jobs.list (stateFilter), jobs.cancel, getQueryResults (waits up to
//     timeoutMs, paged rows, int64 or float timestamps), tabledata.list. A
//     failed query job answers getQueryResults with its error, like BigQuery.
//   - Jobs run concurrently, each in its own goroutine on its own DuckDB
//     connection: jobs.insert answers RUNNING and clients poll, as with
//     BigQuery. SetStatementLatency makes each statement take real time.
//     jobTimeoutMs cancels a job (reason "timeout"), jobs.cancel stops one
//     (reason "stopped"); a transaction stopped midway is rolled back.
//   - DML concurrency as BigQuery documents it: a transaction that mutates a
//     table while another open transaction (or a running DML statement)
//     mutates it, or after another writer committed a change to it since
//     the transaction began, is cancelled with "Transaction is aborted due to
//     concurrent update against table ..." (reason invalidQuery: a client
//     must recognise it by its message); a DML statement outside a
//     transaction waits (queues) until the table is free. Conflicts counts
//     both.
//   - Locations: a job runs where the datasets it names are (or where
//     jobReference.location says; a dataset elsewhere is then notFound).
//     jobs.get, getQueryResults and jobs.cancel find a job outside the US
//     and EU multi-regions only with its location, as BigQuery does.
//   - JSON limits: PARSE_JSON fails on nesting deeper than 500 levels, on a
//     number out of a DOUBLE's range (1e400) whatever wide_number_mode, and,
//     in the default 'exact' mode, on a number a DOUBLE holds only
//     approximately ('round' rounds it); a repeated key keeps its first
//     member; SAFE.PARSE_JSON answers NULL instead of failing.
//   - Partition pruning: for each statement, the scans of partitioned
//     tables with the range of the partitioning column that constant
//     filters (query parameters) bound, as ZetaSQL resolves them (Jobs,
//     PartitionScan.Days).
//   - job ids are remembered: a repeated id is 409 with reason "duplicate".
//   - dry runs of query jobs: analysed as a run would be (the tables exist,
//     ZetaSQL accepts the statement, in the job's location), answered DONE
//     with 0 bytes processed, or with the job's error (404 notFound, 400
//     otherwise); nothing runs and the job is not remembered.
//   - tables.testIamPermissions: every permission asked for is held except
//     those a test named with Deny (nothing else checks permissions).
//
// SQL: after ZetaSQL, statements are translated for dialect only, then run
// by DuckDB: `project.dataset.table` (or `dataset.table`) becomes
// "dataset"."table", other backtick names become quoted identifiers, "text"
// becomes a string literal, @name parameters (STRING, INT64, FLOAT64, BOOL,
// TIMESTAMP, DATE) are inlined as typed literals, INSERT ROW becomes INSERT
// *, [SAFE.]PARSE_JSON becomes the stand-in's own function with BigQuery's
// limits, ERROR becomes error(), FORMAT printf(), CURRENT_TIMESTAMP()
// now(), and BigQuery type names in CREATE/ALTER become DuckDB types.
// Scripts run statement by statement; BEGIN TRANSACTION ... COMMIT
// TRANSACTION is a real DuckDB transaction rolled back on error. Tables and
// datasets that do not exist are 404/notFound. TIMESTAMP is DuckDB
// TIMESTAMPTZ in UTC; JSON is DuckDB JSON.
//
// Counters for tests: LoadJobs and DMLJobs per table, Totals, Uploads,
// Conflicts, Jobs; faults with Inject: reject the next N jobs.insert of a
// kind, fail the job, start it and lose the response (503) as a connection
// cut after acceptance would, or leave it hanging (HangJob).
//
// What it does NOT check or model: authentication and IAM (beyond what
// Deny makes testIamPermissions answer); quotas and rate
// limits (it only counts jobs, it never refuses for quota); the limit of 2
// concurrent mutating DML statements and 20 queued per table (queued
// statements wait without bound); PENDING jobs, slots and job priority;
// partition expiration, require_partition_filter, clustering (stored, never
// used); bytes billed (a dry run
// answers 0 bytes: TestRealBigQuery checks totalBytesProcessed); the 10,000-partition limit; GoogleSQL semantics
// where DuckDB differs at run time (function behaviour, JSON comparison and
// normalisation, NUMERIC precision, string collation, division and overflow
// errors, NULL ordering) — ZetaSQL checks names, types and syntax, not
// results; that the language features enabled are exactly BigQuery's
// (ZetaSQL's maximum set is wider); procedural statements (DECLARE, IF,
// LOOP, EXCEPTION handlers); project ids other than its own; streaming
// inserts, the Storage Read/Write APIs, copy and extract jobs, Cloud
// Storage URIs, CSV/JSON/Avro loads, nested and repeated fields, views,
// routines, snapshots, time travel, sessions; resumable session expiry;
// checksums of uploads; job history expiry.
package bqtest
