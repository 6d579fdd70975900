//go:build cgo

// Command duckpeer is the peer `make bench` measures vaultsink against: what
// a competent engineer would write as a script instead of deploying a
// connector. It pages through the Events API with the bearer token (cursor
// pagination, 1,000 events a page, one request after the other), appends
// every page's events to an NDJSON temp file, and then has DuckDB write that
// file as one zstd Parquet file with vaultsink's columns:
//
//	COPY (SELECT … FROM read_json(…)) TO 'out.parquet' (FORMAT parquet, COMPRESSION zstd)
//
// It is plain on purpose: no read-ahead, no retries, DuckDB's defaults. It
// is written in Go rather than Python or Node so that the fetch loop is no
// slower than a script's would be and DuckDB is the version go.mod pins.
//
//	duckpeer -base URL -token-file F -from T -to T -out FILE.parquet
//
// It prints one line: events=N fetch_seconds=S copy_seconds=S
// fetch_cpu_seconds=S copy_cpu_seconds=S ndjson_bytes=N duckdb=VERSION (the
// wall and CPU time of the two phases, for the report).
//
// DuckDB needs cgo: without it this command does not build, and `make
// bench` says so instead of comparing.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "duckpeer:", err)
		os.Exit(1)
	}
}

// copySQL turns the NDJSON file (first %s) into the Parquet file (second
// %s). The columns are declared, not sampled, in vaultsink's order and
// types: event_id, org_id, a TIMESTAMPTZ timestamp (Parquet TIMESTAMP
// MICROS, adjusted to UTC), the flat strings, detail as JSON text, and
// ingested_at. vaultsink's extra column (fields it does not know) has no
// counterpart: read_json drops undeclared keys.
const copySQL = `COPY (
  SELECT id AS event_id, org_id, "timestamp", action, category, severity, title,
         actor, resource, source_ip, detail, now() AS ingested_at
  FROM read_json(%s, format = 'newline_delimited', columns = {
    id: 'VARCHAR', org_id: 'VARCHAR', "timestamp": 'TIMESTAMPTZ', action: 'VARCHAR',
    category: 'VARCHAR', severity: 'VARCHAR', title: 'VARCHAR', actor: 'VARCHAR',
    resource: 'VARCHAR', source_ip: 'VARCHAR', detail: 'JSON'})
) TO %s (FORMAT parquet, COMPRESSION zstd)`

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("duckpeer", flag.ContinueOnError)
	base := fs.String("base", "", "API base URL (…/api)")
	tokenFile := fs.String("token-file", "", "file holding the org's bearer token")
	from := fs.String("from", "", "window start, RFC 3339")
	to := fs.String("to", "", "window end, RFC 3339 (exclusive)")
	out := fs.String("out", "", "Parquet file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *tokenFile == "" || *from == "" || *to == "" || *out == "" {
		return errors.New("-base, -token-file, -from, -to and -out are required")
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), "events-*.ndjson")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	t0, c0 := time.Now(), cpuTime()
	n, err := fetch(ctx, *base, strings.TrimSpace(string(tok)), *from, *to, tmp)
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	t1, c1 := time.Now(), cpuTime()
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return err
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	var version string
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&version); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf(copySQL, quote(tmp.Name()), quote(*out))); err != nil {
		return fmt.Errorf("duckdb copy: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "events=%d fetch_seconds=%.3f copy_seconds=%.3f fetch_cpu_seconds=%.3f copy_cpu_seconds=%.3f ndjson_bytes=%d duckdb=%s\n",
		n, t1.Sub(t0).Seconds(), time.Since(t1).Seconds(), (c1 - c0).Seconds(), (cpuTime() - c1).Seconds(), fi.Size(), version)
	return err
}

// fetch walks [from,to) page by page and writes each event as one NDJSON
// line. The simulator sends compact JSON, so an event's bytes hold no
// newline; DuckDB rejects the file if one ever did.
func fetch(ctx context.Context, base, token, from, to string, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	client := &http.Client{Timeout: time.Minute}
	n, cursor := 0, ""
	for page := 1; ; page++ {
		q := url.Values{"from": {from}, "to": {to}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events/v1?"+q.Encode(), nil)
		if err != nil {
			return n, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return n, fmt.Errorf("fetch page %d: %w", page, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return n, fmt.Errorf("fetch page %d: %w", page, err)
		}
		if resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("fetch page %d: status %d: %.512s", page, resp.StatusCode, b)
		}
		// ReadAll and Unmarshal cost ~15% less CPU than a json.Decoder on
		// the body, which reads the page once more to find its end.
		var body struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor *string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return n, fmt.Errorf("fetch page %d: %w", page, err)
		}
		for _, e := range body.Data {
			bw.Write(e)
			bw.WriteByte('\n')
		}
		n += len(body.Data)
		if body.NextCursor == nil || *body.NextCursor == "" {
			return n, bw.Flush()
		}
		cursor = *body.NextCursor
	}
}

// cpuTime is the CPU time this process (all its threads) has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// quote is a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
