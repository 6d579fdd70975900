// Package sinktest is the conformance suite every sinks.Sink passes, plus
// helpers for sink tests: deterministic synthetic events built into Arrow
// batches, and an independent (parquet-go) check of committed Parquet files.
package sinktest
