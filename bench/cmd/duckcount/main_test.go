//go:build cgo

package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// TestCountsIDs writes Parquet files with DuckDB and counts them: rows,
// distinct ids and vaultsim's digest of the sorted ids, over a glob that
// spans directories; a duplicate must show.
func TestCountsIDs(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name     string
		files    map[string][]string
		distinct int
	}{
		{"one file", map[string][]string{"x.parquet": {"evt_b", "evt_a", "evt_C"}}, 3},
		{"tree with a duplicate", map[string][]string{
			"date=1/x.parquet":        {"evt_b", "evt_a", "evt_C"},
			"date=1/hour=2/y.parquet": {"evt_d", "evt_a"},
			"date=2/z.parquet":        {"evt_10", "evt_9"},
			"date=2/empty.parquet":    {},
		}, 6},
		{"empty", map[string][]string{"empty.parquet": {}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var all []string
			for name, ids := range tc.files {
				all = append(all, ids...)
				rows := "SELECT NULL::VARCHAR AS event_id WHERE false"
				if len(ids) > 0 {
					rows = "SELECT * FROM (VALUES ('" + strings.Join(ids, "'),('") + "')) t(event_id)"
				}
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet)", rows, p)); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			if err := run([]string{filepath.Join(dir, "**", "*.parquet")}, &out); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("rows=%d distinct=%d digest=%s\n", len(all), tc.distinct, vaultsim.DigestIDs(all))
			if out.String() != want {
				t.Fatalf("got %q, want %q", out.String(), want)
			}
		})
	}
}
