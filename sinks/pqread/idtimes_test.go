package pqread

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestIDTimesOtherWriter: a file another writer made (columns in another
// order, nullable, millisecond timestamps, more rows than a batch) reads
// back row by row, nulls as "" and the zero time.
func TestIDTimesOtherWriter(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "timestamp", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "event_id", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	base := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	const n = batchRows + 100
	for i := range n {
		ts, note, id := b.Field(0).(*array.TimestampBuilder), b.Field(1).(*array.StringBuilder), b.Field(2).(*array.StringBuilder)
		if i == 5 {
			ts.AppendNull()
			id.AppendNull()
		} else {
			ts.Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Millisecond).UnixMilli()))
			id.Append(fmt.Sprintf("evt_%05d", i))
		}
		note.Append("x")
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(3000)), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	i := 0
	err = IDTimes(context.Background(), bytes.NewReader(buf.Bytes()), func(id string, ts time.Time) error {
		wantID, wantTS := fmt.Sprintf("evt_%05d", i), base.Add(time.Duration(i)*time.Millisecond)
		if i == 5 {
			wantID, wantTS = "", time.Time{}
		}
		if id != wantID || !ts.Equal(wantTS) {
			t.Fatalf("row %d: %q at %s, want %q at %s", i, id, ts, wantID, wantTS)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Fatalf("%d rows read, want %d", i, n)
	}

	// A file without the columns is an error, not an empty unit.
	other := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	buf.Reset()
	w, err = pqarrow.NewFileWriter(other, &buf, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := IDTimes(context.Background(), bytes.NewReader(buf.Bytes()), func(string, time.Time) error { return nil }); err == nil {
		t.Fatal("a file without event_id and timestamp read without error")
	}
}
