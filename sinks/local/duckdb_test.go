//go:build cgo

package local

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

// TestDuckDBReadsTree reads the committed tree the way a user would, with
// DuckDB's Hive-partitioned Parquet reader: temp files, quarantine files and
// earlier versions of a unit must not show (a rerun keeps what the unit
// held and adds the rest, each id once), timestamps must be TIMESTAMP WITH
// TIME ZONE.
func TestDuckDBReadsTree(t *testing.T) {
	root := t.TempDir()
	s, _ := newSink(t, Config{Path: root})
	defer s.Close()
	want := map[string][]string{}
	for _, org := range []string{"org_a", "org_b"} {
		for h := 0; h < 3; h++ {
			w := sinktest.Window(org, 24+h) // crosses a date partition
			ids := sinktest.IDs(fmt.Sprintf("%s-%d", org, h), 0, 500+100*h)
			early := sinktest.IDs(fmt.Sprintf("%s-early-%d", org, h), 0, 50)
			sinktest.WriteWindow(t, s, w, early, 50) // kept by the rerun below
			sinktest.WriteWindow(t, s, w, append(ids, early[:10]...), 256)
			want[org] = append(append(want[org], ids...), early...)
		}
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.ToSlash(filepath.Join(root, "**", "*.parquet"))
	from := fmt.Sprintf("read_parquet('%s', hive_partitioning=true)", glob)

	var tsType, ingType, orgType string
	if err := db.QueryRow(`SELECT typeof("timestamp"), typeof(ingested_at), typeof(org_id) FROM `+from+` LIMIT 1`).Scan(&tsType, &ingType, &orgType); err != nil {
		t.Fatal(err)
	}
	if tsType != "TIMESTAMP WITH TIME ZONE" || ingType != "TIMESTAMP WITH TIME ZONE" || orgType != "VARCHAR" {
		t.Fatalf("types: timestamp %s, ingested_at %s, org_id %s", tsType, ingType, orgType)
	}

	for org, ids := range want {
		rows, err := db.Query(`SELECT event_id FROM `+from+` WHERE org_id = ?`, org)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			got = append(got, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if err := sinktest.SameIDs(got, ids); err != nil {
			t.Fatalf("%s: %v", org, err)
		}
	}

	// Every timestamp lies in its file's window (hour partition = UTC hour).
	var outside int
	if err := db.QueryRow(`SELECT count(*) FROM ` + from + ` WHERE hour(timezone('UTC', "timestamp")) <> hour OR CAST(timezone('UTC', "timestamp") AS DATE) <> CAST(date AS DATE)`).Scan(&outside); err != nil {
		t.Fatal(err)
	}
	if outside != 0 {
		t.Fatalf("%d rows outside their partition's hour", outside)
	}
}
