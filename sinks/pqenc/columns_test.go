package pqenc

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/source"
)

// nullyBatch is n rows of source.Schema in which every nullable column is
// null on a different stride of rows, and dictionary columns cycle through
// a few values.
func nullyBatch(mem memory.Allocator, first, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, source.Schema)
	defer b.Release()
	base := testWindow.Start
	for r := first; r < first+n; r++ {
		for c, f := range source.Schema.Fields() {
			fb := b.Field(c)
			if f.Nullable && r%(c+2) == 0 {
				fb.AppendNull()
				continue
			}
			switch fb := fb.(type) {
			case *array.StringBuilder:
				switch f.Name {
				case "org_id":
					fb.Append(testWindow.Org)
				case "action", "category", "severity":
					fb.Append(fmt.Sprintf("%s_%d", f.Name, r%5))
				default:
					fb.Append(fmt.Sprintf("%s value %d %x", f.Name, r, r*2654435761))
				}
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(base.Add(time.Duration(r) * time.Millisecond).UnixMicro()))
			default:
				panic(fmt.Sprintf("column %s: unexpected builder %T", f.Name, fb))
			}
		}
	}
	return b.NewRecordBatch()
}

func encodeWith(t *testing.T, workers int, opts Options, sizes ...int) []byte {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var buf bytes.Buffer
	w, err := newWriterWorkers(&buf, Meta{Window: testWindow, Version: "test"}, opts, mem, workers)
	if err != nil {
		t.Fatal(err)
	}
	row := 0
	for _, n := range sizes {
		rec := nullyBatch(mem, row, n)
		row += n
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestParallelColumnsSameFile: encoding the columns on several goroutines
// makes byte for byte the file one goroutine makes (same pages, order,
// statistics), with nulls in every nullable column and row groups split
// inside batches; and the file reads back as the rows written.
func TestParallelColumnsSameFile(t *testing.T) {
	opts := Options{RowGroupRows: 2500}
	sizes := []int{1000, 1000, 3000, 7, 4096, 999, 1}
	one := encodeWith(t, 1, opts, sizes...)
	for _, workers := range []int{2, 3, 4} {
		if got := encodeWith(t, workers, opts, sizes...); !bytes.Equal(got, one) {
			t.Fatalf("%d workers wrote a different file than 1 (%d vs %d bytes)", workers, len(got), len(one))
		}
	}

	total := 0
	for _, n := range sizes {
		total += n
	}
	tbl := readTable(t, one)
	defer tbl.Release()
	want := nullyBatch(memory.DefaultAllocator, 0, total)
	defer want.Release()
	if tbl.NumRows() != int64(total) {
		t.Fatalf("%d rows read back, want %d", tbl.NumRows(), total)
	}
	for c := 0; c < int(tbl.NumCols()); c++ {
		got, err := array.Concatenate(tbl.Column(c).Data().Chunks(), memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		if !array.Equal(got, want.Column(c)) {
			t.Errorf("column %s reads back differently: %v...", source.Schema.Field(c).Name, got.String()[:200])
		}
		got.Release()
	}
	if got, want := rowGroups(t, one), (total+2499)/2500; got != want {
		t.Fatalf("%d row groups, want %d", got, want)
	}
}

// TestAbortReleases: Abort releases the batches the writer still holds
// (coalescing) and writes nothing more; Close after Abort is a no-op.
func TestAbortReleases(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var buf bytes.Buffer
	w, err := newWriterWorkers(&buf, Meta{Window: testWindow, Version: "test"}, Options{}, mem, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // 3,000 rows: below the coalescing size, all held
		rec := nullyBatch(mem, i*1000, 1000)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	n := buf.Len()
	w.Abort()
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Abort: %v", err)
	}
	if buf.Len() != n {
		t.Fatalf("Abort wrote %d more bytes", buf.Len()-n)
	}
	rec := nullyBatch(mem, 0, 1)
	defer rec.Release()
	if err := w.Write(rec); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
}
