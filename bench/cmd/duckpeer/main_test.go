//go:build cgo

package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// TestPeerWritesTheWindowOnce walks a simulator window the way `make
// bench` runs the peer and reads its Parquet back with DuckDB: every id
// once, the truth's digest, vaultsink's columns and types, and no NDJSON
// temp file left behind.
func TestPeerWritesTheWindowOnce(t *testing.T) {
	from := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(5 * time.Hour)
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 7, Orgs: 1, Rate: 2500, From: from, To: to})
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(sim.Creds()[0].Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "events.parquet")
	var stdout bytes.Buffer
	args := []string{"-base", sim.URL, "-token-file", tokFile, "-from", from.Format(time.RFC3339), "-to", to.Format(time.RFC3339), "-out", out}
	if err := run(context.Background(), args, &stdout); err != nil {
		t.Fatal(err)
	}
	count, digest := sim.Truth("org_1", from, to)
	if count < 2000 {
		t.Fatalf("truth holds only %d events: more than one page is the point", count)
	}
	for _, want := range []string{"events=" + strconv.Itoa(count) + " ", "fetch_seconds=", "copy_seconds=", "fetch_cpu_seconds=", "copy_cpu_seconds=", "ndjson_bytes=", "duckdb=v"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output %q lacks %q", stdout.String(), want)
		}
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
		t.Errorf("out holds %d files, want the Parquet file only (the NDJSON temp file removed)", len(ents))
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cols := strs(t, db, `SELECT column_name || ' ' || column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))`, out)
	want := "event_id VARCHAR,org_id VARCHAR,timestamp TIMESTAMP WITH TIME ZONE,action VARCHAR,category VARCHAR,severity VARCHAR," +
		"title VARCHAR,actor VARCHAR,resource VARCHAR,source_ip VARCHAR,detail JSON,ingested_at TIMESTAMP WITH TIME ZONE"
	if got := strings.Join(cols, ","); got != want {
		t.Errorf("columns:\n got %s\nwant %s", got, want)
	}
	ids := strs(t, db, `SELECT event_id FROM read_parquet(?)`, out)
	if len(ids) != count || vaultsim.DigestIDs(ids) != digest {
		t.Fatalf("%d ids, digest %s; truth %d, %s", len(ids), vaultsim.DigestIDs(ids), count, digest)
	}
	// Every timestamp was parsed, as an instant inside the window.
	var outside int
	if err := db.QueryRow(`SELECT count(*) FROM read_parquet(?) WHERE "timestamp" IS NULL OR "timestamp" < ?::TIMESTAMPTZ OR "timestamp" >= ?::TIMESTAMPTZ`,
		out, from.Format(time.RFC3339), to.Format(time.RFC3339)).Scan(&outside); err != nil {
		t.Fatal(err)
	}
	if outside != 0 {
		t.Errorf("%d timestamps outside the window", outside)
	}
}

// TestPeerStopsOnAnAPIError: a bad token is an error naming the page and
// status, not an empty file.
func TestPeerStopsOnAnAPIError(t *testing.T) {
	from := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 7, Orgs: 1, From: from, To: from.Add(time.Hour)})
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.parquet")
	err := run(context.Background(), []string{"-base", sim.URL, "-token-file", tokFile, "-from", from.Format(time.RFC3339),
		"-to", from.Add(time.Hour).Format(time.RFC3339), "-out", out}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "fetch page 1: status 401") {
		t.Fatalf("err = %v, want fetch page 1: status 401", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an output was written: %v", err)
	}
}

// strs is the one string column a query returns.
func strs(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
