// Package bigquery is the BigQuery sink (type "bigquery"): every window is
// written into one shared, day-partitioned table, where rerunning a window
// adds only the rows whose ids the table does not hold yet.
//
// # How a commit works
//
// A unit streams its batches through the shared Parquet encoder (sinks/pqenc)
// into a temp file, hashing the bytes as they go; memory is bounded by a row
// group. A commit (Unit.Commit, or CommitBatch for several units) then:
//
//  1. loads the units' Parquet (re-encoded into one file when there are
//     several) into ONE staging table, vaultsink_stage_<id>, expiring after a
//     day, with WRITE_TRUNCATE, under the load job id vaultsink_load_<id>;
//
//  2. counts, in a read-only query, what the target holds for each unit's
//     window, how many of those ids the staged rows (the walk's answer) no
//     longer hold (Result.Vanished), and how many staged rows the commit
//     will add (Result.New);
//
//  3. runs ONE query job, under the job id vaultsink_merge_<id>, a transaction:
//
//     BEGIN TRANSACTION;
//     INSERT INTO target (...) SELECT ..., PARSE_JSON(detail), ... FROM staging S
//     WHERE NOT EXISTS (the target holds S.event_id in S's window or an adjacent one)
//     QUALIFY ROW_NUMBER() OVER (PARTITION BY org_id, event_id ...) = 1;
//     DELETE FROM <table>_quarantine WHERE (org_id, window_start) of every unit;
//     INSERT INTO <table>_quarantine SELECT ... FROM the quarantine staging table;
//     COMMIT TRANSACTION
//
//     so the table only grows: a re-pull that returns less removes nothing,
//     a rerun adds nothing twice, and an id repeated across a window
//     boundary is kept once (the copy stored first wins), as in the Parquet
//     sinks. Every read of the target is also bounded by constant
//     timestamps around all the windows, so BigQuery prunes partitions. A
//     window's quarantine is replaced by its latest pull's (none clears it);
//
//  4. drops the staging tables.
//
// <id> is a hash of the windows and the sha256 of their Parquet bytes, so a
// retry of the same batch reuses every name. The Go client does not retry
// jobs.insert when it carries media, so the sink retries with the same job id
// and a fresh reader; a 409 "duplicate" means an earlier attempt exists: the
// sink fetches that job, waits for it and takes its success as its own. A job
// that finished with a transient failure cannot be rerun under its id: the
// next attempt uses id_r1, id_r2, id_r3. Errors name the job id and BigQuery's
// reason; invalid, invalidQuery and accessDenied wrap sinks.ErrPermanent.
//
// detail and extra are JSON in the target but STRING in staging, converted
// with PARSE_JSON, because BigQuery load jobs fill JSON columns only from
// CSV, Avro and newline-delimited JSON, not from Parquet; so the INSERT names
// its columns. Every unit of a commit takes part, even one with nothing to
// write: its quarantine is cleared and what the table holds for it counted.
//
// # The table
//
// Created if missing: the columns of source.Schema (event_id, org_id,
// timestamp, ingested_at REQUIRED; detail and extra JSON), partitioned by DAY
// on timestamp (hourly partitions would exhaust the 10,000-partition limit in
// ~13.7 months), clustered by org_id and action, with the configured partition
// expiration, description and labels. An existing table missing some of these
// columns gets them as NULLABLE columns; a column of another type, a REQUIRED
// column vaultsink may leave NULL, or an unknown REQUIRED column is a
// sinks.ErrPermanent error naming the columns.
//
// # Group commit and the quota arithmetic
//
// Commits of different orgs that arrive within group_delay (default 2s), or
// while the previous group is running, are merged into one group: one load
// job and one DML transaction for all of them, up to max_group_slices (1,000)
// (org, window-range) predicates. One group runs at a time per sink, so the
// process never has more than one mutating DML on the table (BigQuery runs 2
// concurrently per table and queues at most 20 more; a 21st queued fails).
//
// A commit waits for its group even when its context ends, because the group
// reads the unit's files; Close cancels a running group (its callers get an
// error and rerun the windows later, which the insert-if-absent makes
// harmless).
//
// The limits that matter (BigQuery quotas page): 1,500 table modifications
// (load/copy/query-destination jobs) per table per day; 100,000 load jobs per
// project per day; DML statements do not count toward the per-table limit but
// are subject to the queue limit above; 10,000 partitions per table.
//
// 500 orgs on a 15-minute schedule with hourly windows: a window closes once
// per hour per org, so three of the four ticks in an hour find nothing to do
// and cost no job. The tick after the hour commits 500 windows.
//   - Without batching: 500 loads + 500 DML jobs per hour = 12,000 + 12,000 a
//     day. Loads go to fresh staging tables, so the per-table 1,500 limit does
//     not bind, but 500 DML jobs arriving together overflow the DML queue (2
//     running + 20 queued) and most of them fail.
//   - With group commit: the 500 commits of a tick arrive within a few
//     seconds (bounded by the planner's parallelism) and collapse into G
//     groups, G ≈ (time to pull the tick) / (time of one load+DML). With
//     G ≤ 10 a tick costs ≤ 10 loads and ≤ 10 DML jobs: ≤ 240 + 240 a day,
//     16% of the per-table figure even if the DML jobs counted against it, and
//     0.24% of the project's load quota; at most one DML job of ours is ever queued.
//     Even G = 62 per tick (one group per org, the worst case) stays within
//     1,500 a day.
//   - Catching up (the planner's CommitBatch with max_batch 24 windows = one
//     day per org): N orgs × D days cost at most N×D loads and DML jobs without
//     grouping across orgs, and far fewer with it; 500 orgs × 2 days = ≤ 1,000
//     jobs of each kind, under 1,500 even with no cross-org grouping at all.
//     TestCatchUpBatching measures 200 orgs × 2 days against the stand-in.
//
// The constant timestamp bounds (query parameters) on every read of the
// target let BigQuery prune to the days of the committed windows (not
// verified by the stand-in).
//
// Tests run against sinks/bigquery/bqtest, a REST stand-in that executes the
// statements on DuckDB; TestRealBigQuery runs against the real service when
// VAULTSINK_BQ_PROJECT and credentials are set.
package bigquery
