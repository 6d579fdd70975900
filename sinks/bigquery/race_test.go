//go:build race

package bigquery

// raceEnabled shrinks the slowest tests: the race detector makes encoding
// thousands of small Parquet files ~10x slower.
const raceEnabled = true
