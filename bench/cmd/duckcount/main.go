//go:build cgo

// Command duckcount counts the event ids of Parquet files with DuckDB, for
// `make bench` to check that an output is exact without trusting the
// program that wrote it:
//
//	duckcount 'DIR/**/*.parquet'
//
// It prints one line: rows=N distinct=M digest=HEX, where digest is the
// sha256 of the sorted ids joined by "\n" (vaultsim truth's digest). It runs
// as its own process so that DuckDB's memory never inflates the peak RSS of
// the processes benchreport measures afterwards (internal/testbin/peakrss).
package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2"
)

// countSQL reads the files' event_id column only. DuckDB sorts VARCHAR by
// bytes, as Go's sort.Strings does.
const countSQL = `SELECT count(*), count(DISTINCT event_id),
  sha256(coalesce(string_agg(event_id, chr(10) ORDER BY event_id), ''))
FROM read_parquet(%s)`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "duckcount:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: duckcount GLOB")
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	var rows, distinct int64
	var digest string
	q := fmt.Sprintf(countSQL, "'"+strings.ReplaceAll(args[0], "'", "''")+"'")
	if err := db.QueryRow(q).Scan(&rows, &distinct, &digest); err != nil {
		return fmt.Errorf("count %s: %w", args[0], err)
	}
	_, err = fmt.Fprintf(stdout, "rows=%d distinct=%d digest=%s\n", rows, distinct, digest)
	return err
}
