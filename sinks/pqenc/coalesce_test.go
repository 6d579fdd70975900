package pqenc

import (
	"bytes"
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestCoalescedContent: the same events written as many small batches
// (coalesced before pqarrow) or as one batch read back as the same table
// with the same row groups.
func TestCoalescedContent(t *testing.T) {
	cases := []struct {
		name  string
		sizes []int
	}{
		{"pages of 1000", []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}},
		{"uneven", []int{1, 4095, 4096, 4097, 7, 1704}},
		{"larger than the coalescing size", []int{9000, 1000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			total := 0
			for _, n := range tc.sizes {
				total += n
			}
			opts := Options{RowGroupRows: 3000}
			small, ids := encode(t, opts, tc.sizes...)
			whole, wholeIDs := encode(t, opts, total)
			if len(ids) != len(wholeIDs) {
				t.Fatalf("ids: %d vs %d", len(ids), len(wholeIDs))
			}
			a, b := readTable(t, small), readTable(t, whole)
			defer a.Release()
			defer b.Release()
			if a.NumRows() != int64(total) {
				t.Fatalf("coalesced file has %d rows, want %d", a.NumRows(), total)
			}
			if !array.TableEqual(a, b) {
				t.Fatal("coalesced batches read back differently from one batch")
			}
			if ga, gb := rowGroups(t, small), rowGroups(t, whole); ga != gb {
				t.Fatalf("row groups %d vs %d", ga, gb)
			}
		})
	}
}

func readTable(t *testing.T, data []byte) arrow.Table {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdr.Close() })
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 4096}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func rowGroups(t *testing.T, data []byte) int {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	return rdr.NumRowGroups()
}
