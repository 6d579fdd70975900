// Package bigquery is the BigQuery sink (type "bigquery"): every window is
// written into one shared, day-partitioned table, where rerunning a window
// adds only the rows whose ids the table does not hold yet.
//
// # How a commit works
//
// A unit streams its batches through the shared Parquet encoder (sinks/pqenc)
// into a temp file, and digests its rows as they go (see below); memory is
// bounded by a row group. A commit (Unit.Commit, or CommitBatch for several
// units) then:
//
//  1. loads the units' Parquet (re-encoded into one file when there are
//     several) into ONE staging table, vaultsink_stage_<id>, expiring after a
//     day, with WRITE_TRUNCATE, under the load job id vaultsink_load_<id>,
//     and checks that the staging table holds the rows (a job found under
//     the id may be an earlier run's whose table is gone: then it loads
//     again under a new id);
//
//  2. counts, in a read-only query, what the target holds for each unit's
//     window, how many of those ids the staged rows (the walk's answer) no
//     longer hold (Result.Vanished), and how many staged rows the commit
//     will add (Result.New);
//
//  3. runs ONE query job, under the job id vaultsink_merge_<id>, a transaction:
//
//     BEGIN TRANSACTION;
//     SELECT ERROR(...) FROM <table>_fence JOIN (the units' fences)
//     WHERE a newer epoch holds an org;          -- the fence check
//     MERGE <table>_fence ... (the units' org, epoch, owner);
//     INSERT INTO target (...) SELECT ..., <detail and extra as JSON>, ... FROM staging S
//     WHERE NOT EXISTS (the target holds S.event_id in S's window or an adjacent one)
//     QUALIFY ROW_NUMBER() OVER (PARTITION BY org_id, event_id ...) = 1;
//     DELETE FROM <table>_quarantine WHERE (org_id, window_start) of every unit;
//     INSERT INTO <table>_quarantine SELECT ... FROM the quarantine staging table;
//     COMMIT TRANSACTION
//
//     so the table only grows: a re-pull that returns less removes nothing,
//     a rerun adds nothing twice, and an id repeated across a window
//     boundary is kept once (the copy stored first wins), as in the Parquet
//     sinks. A window's quarantine is replaced by its latest pull's (none
//     clears it);
//
//  4. drops the staging tables.
//
// # Job ids
//
// <id> is a hash of the windows and of a digest of their rows' content: each
// row is hashed without ingested_at (the time of the pull) and the row
// hashes are summed, so the digest depends on neither the order of the rows
// nor the time of the pull. A retry of the same batch, and a rerun after a
// crash that pulls the same events, reuse every job id and staging name.
// The Go client does not retry jobs.insert when it carries media, so the
// sink retries with the same job id and a fresh reader; a 409 "duplicate"
// means an earlier attempt exists: the sink fetches that job (with the
// location), waits for it and takes its success as its own. A job that
// finished with a transient failure cannot be rerun under its id: the next
// attempt uses id_r1, id_r2, id_r3. Errors name the job id and BigQuery's
// reason; invalid, invalidQuery and accessDenied wrap sinks.ErrPermanent.
//
// Before its first commit the sink waits for the jobs of its table that are
// still running (labelled vaultsink_table=<hash of the table>), as a killed
// process leaves them: a transaction beside one would be cancelled. Listing
// jobs needs bigquery.jobs.list (roles/bigquery.user); without it the sink
// logs a warning and relies on the conflict retries below.
//
// # Fencing
//
// The runner hands each unit its org's lease (sinks.FencedUnit: owner and
// epoch). <table>_fence holds one row per org: the epoch and owner of the
// last writer that committed. The transaction first fails, with ERROR
// naming the org, owner and epoch, when that row holds a newer epoch, then
// records the units' fence; so a writer that lost its lease while it pulled
// writes nothing, and its commit returns a FencedError wrapping
// sinks.ErrFenced ("lease lost to OWNER (epoch N)"). The other orgs of a
// refused group are committed again without it. Units without a fence
// (tools, tests) are not checked. (A stale writer whose commit is identical
// to one already made, the same windows and rows, finds that transaction
// under the same job id and takes it as its own: it writes nothing either.)
// The runner's epochs keep growing when a checkpoint is lost or reset (a
// new lease's epoch is at least the clock in milliseconds); Sink.ResetFence
// removes an org's row for a writer that numbers them otherwise.
//
// # Conflicts: retried, not serialised
//
// BigQuery cancels a transaction that changes a table while another one
// changes it ("Transaction is aborted due to concurrent update against
// table ..."); DML statements outside transactions queue instead. One sink
// runs one group at a time, but other processes (static shards on one
// schedule, an overlapping rollout, the CronJob beside the Deployment), an
// analyst's DML and a killed process's job share the table. The sink
// expects conflicts: a cancelled transaction is retried under the next job
// id after a jittered pause (full jitter, growing to 30s), at most 10 times
// and within commit_timeout, and counted in
// vaultsink_bigquery_conflicts_total. Serialising writers across processes
// would need a lock BigQuery does not offer (a lock row would itself be a
// contended table, and a dead holder would stall every writer until a
// timeout), while a retry costs one more transaction over staged data that
// is already loaded.
//
// # JSON that BigQuery cannot hold
//
// detail and extra are JSON in the target but STRING in staging, because
// BigQuery load jobs fill JSON columns only from CSV, Avro and
// newline-delimited JSON, not from Parquet; so the INSERT names its columns.
// The source keeps any JSON it can parse, up to 1,000 levels deep, but
// BigQuery's JSON type refuses nesting deeper than 500 and numbers out of a
// DOUBLE's range (1e400, even with wide_number_mode 'round'): one such value
// would fail its transaction on every retry, and its group with it. The
// INSERT converts with
//
//	COALESCE(SAFE.PARSE_JSON(x, wide_number_mode => 'round'), TO_JSON(x))
//
// so such a value is stored as a JSON string holding its text
// (JSON_TYPE(detail) = 'string'): nothing is lost and its window commits.
// Numbers a DOUBLE holds only approximately are rounded; a key repeated in
// an object of detail keeps its first member, as PARSE_JSON does (the
// source never repeats a key in extra). Every unit of a
// commit takes part, even one with nothing to write: its quarantine is
// cleared and what the table holds for it counted.
//
// # Location
//
// Every job call (insert, the 409 lookup, polling) carries the location:
// outside the US and EU multi-regions BigQuery finds a job only with it.
// The location is the configured one, or, when none is configured, the
// target dataset's. A missing dataset is created in the configured
// location; with none configured it is a configuration error (a dataset
// cannot move). A configured location other than an existing dataset's,
// or a staging dataset in another location than the target's (a query
// cannot read across locations), is a configuration error too.
//
// # Deadlines
//
// A commit group runs under commit_timeout (default 10m): its loads, its
// count, its transaction, their retries and conflict pauses. Every job
// carries the time left as its JobTimeout, so BigQuery cancels a job that
// outlives the group, and every wait for a job ends with the group. A group
// stuck in BigQuery fails alone, with an error naming commit_timeout; the
// next group starts, and the failed windows are redone on a later run.
// A commit waits for its group even when its own context ends, because the
// group reads the unit's files; Close cancels a running group.
//
// # The table
//
// Created if missing: the columns of event.Schema (event_id, org_id,
// timestamp, ingested_at REQUIRED; detail and extra JSON), partitioned by DAY
// on timestamp (hourly partitions would exhaust the 10,000-partition limit in
// ~13.7 months), clustered by org_id and action, with the configured partition
// expiration, description and labels; beside it <table>_quarantine
// (partitioned by window_start) and <table>_fence. An existing table missing
// some of these columns gets them as NULLABLE columns; a column of another
// type, a REQUIRED column vaultsink may leave NULL, or an unknown REQUIRED
// column is a sinks.ErrPermanent error naming the columns.
//
// # Cost: partition pruning
//
// DML bills every column of every partition it scans. Every read of the
// target (the count, the INSERT's NOT EXISTS) is bounded by constant
// timestamps (@lo, @hi: the units' windows and their neighbours) beside
// the per-window predicates, and the quarantine DELETE by @qlo, @qhi on
// window_start, so BigQuery prunes to the days of the committed windows.
// The stand-in records the partitions each statement's filters bound
// (TestPartitionPruning), and TestRealBigQuery compares a dry run's
// totalBytesProcessed with and without the bounds.
//
// # Group commit and the quota arithmetic
//
// Commits of different orgs that arrive within group_delay (default 2s), or
// while the previous group is running, are merged into one group: one load
// job and one transaction for all of them, up to max_group_slices (1,000)
// windows. A group takes at most 8 query parameters per window (its
// window's 5, its org's fence's 3) and 4 more: max_group_slices is capped
// at 1,249 to stay within BigQuery's 10,000 parameters, and a script over
// the limit fails before it is sent.
//
// The BigQuery quotas that matter here: 1,500 table modifications
// (load/copy/query-destination jobs) per table per day; 100,000 load jobs per
// project per day; DML statements do not count toward the per-table limit;
// 10,000 partitions per table.
//
// 500 orgs on a 15-minute schedule with hourly windows: a window closes once
// per hour per org, so three of the four ticks in an hour find nothing to do
// and cost no job. The tick after the hour commits 500 windows.
//   - Without batching: 500 loads + 500 transactions per hour = 12,000 +
//     12,000 a day, and transactions of one table cancel each other.
//   - With group commit: the 500 commits of a tick arrive within a few
//     seconds (bounded by the planner's parallelism) and collapse into G
//     groups, G ≈ (time to pull the tick) / (time of one load+transaction).
//     With G ≤ 10 a tick costs ≤ 10 loads and ≤ 10 transactions: ≤ 240 + 240
//     a day, 16% of the per-table figure even if they counted against it,
//     and 0.24% of the project's load quota. Even G = 62 per tick (one group
//     per org, the worst case) stays within 1,500 a day.
//   - Catching up (the planner's CommitBatch with max_batch 24 windows = one
//     day per org): N orgs × D days cost at most N×D loads and transactions
//     without grouping across orgs, and far fewer with it; 500 orgs × 2 days
//     = ≤ 1,000 jobs of each kind, under 1,500 even with no cross-org
//     grouping at all. TestCatchUpBatching measures 200 orgs × 2 days
//     against the stand-in.
//
// Tests run against sinks/bigquery/bqtest, a REST stand-in that checks every
// statement with Google's ZetaSQL analyzer and executes it on DuckDB, with
// BigQuery's transaction conflicts, locations and JSON limits;
// TestRealBigQuery runs the same cases against the real service when
// VAULTSINK_BQ_PROJECT and credentials are set.
package bigquery
