// Package pqread reads back the Parquet units that sinks/pqenc writes: the
// window a file's footer records, the ids and content digests of its rows
// (what a sink holds for a window), and its rows themselves, one batch at
// a time. Memory is bounded by one batch, never by the file.
package pqread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/vaultsink/vaultsink/sinks/pqenc"
)

// batchRows is how many rows a read decodes at once.
const batchRows = 8192

// noClose hides a caller's Close from the Parquet reader, which closes its
// source when it can: the caller owns the file (a sink reads its held unit
// at Open and again at Commit).
type noClose struct{ parquet.ReaderAtSeeker }

func open(r parquet.ReaderAtSeeker) (*file.Reader, error) {
	pr, err := file.NewParquetReader(noClose{r})
	if err != nil {
		return nil, fmt.Errorf("open parquet: %w", err)
	}
	return pr, nil
}

// Footer is what a unit's footer says about it.
type Footer struct {
	Window event.Window // from the key-value metadata; zero times when absent
	Rows   int64
}

// ReadFooter reads r's footer. A file without vaultsink's metadata is not an
// error: its Window has zero times.
func ReadFooter(r parquet.ReaderAtSeeker) (Footer, error) {
	pr, err := open(r)
	if err != nil {
		return Footer{}, err
	}
	defer pr.Close()
	return footer(pr)
}

func footer(pr *file.Reader) (Footer, error) {
	f := Footer{Rows: pr.NumRows()}
	kv := pr.MetaData().KeyValueMetadata()
	if v := kv.FindValue(pqenc.MetaOrg); v != nil {
		f.Window.Org = *v
	}
	for _, m := range []struct {
		key string
		dst *time.Time
	}{{pqenc.MetaWindowStart, &f.Window.Start}, {pqenc.MetaWindowEnd, &f.Window.End}} {
		if v := kv.FindValue(m.key); v != nil {
			t, err := time.Parse(time.RFC3339, *v)
			if err != nil {
				return f, fmt.Errorf("footer %s %q: %w", m.key, *v, err)
			}
			*m.dst = t.UTC()
		}
	}
	if c := kv.FindValue(pqenc.MetaEventCount); c != nil {
		if n, err := strconv.ParseInt(*c, 10, 64); err != nil || n != f.Rows {
			return f, fmt.Errorf("footer %s %q disagrees with %d rows", pqenc.MetaEventCount, *c, f.Rows)
		}
	}
	return f, nil
}

// Held reads what the unit r holds: every event id with the digest of its
// row's content (event.RowDigester). It checks that the footer names w.
func Held(ctx context.Context, r parquet.ReaderAtSeeker, w event.Window) (*event.HeldSet, error) {
	pr, err := open(r)
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	f, err := footer(pr)
	if err != nil {
		return nil, err
	}
	if f.Window.Org != w.Org || !f.Window.Start.Equal(w.Start) || !f.Window.End.Equal(w.End) {
		return nil, fmt.Errorf("the unit's footer names %s, not %s", f.Window, w)
	}
	held := event.NewHeldSet(int(f.Rows))
	var dg event.RowDigester
	err = each(ctx, pr, func(rec arrow.RecordBatch) error {
		ids, ok := rec.Column(event.ColEventID).(*array.String)
		if !ok || !dg.Reset(rec) {
			return errors.New("columns are not in vaultsink's schema")
		}
		for i := range ids.Len() {
			held.Add(ids.Value(i), dg.Digest(i))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return held, nil
}

// IDs calls fn with every event id of the unit r, reading only that column.
func IDs(ctx context.Context, r parquet.ReaderAtSeeker, fn func(id string) error) error {
	pr, err := open(r)
	if err != nil {
		return err
	}
	defer pr.Close()
	col := pr.MetaData().Schema.ColumnIndexByName("event_id")
	if col < 0 {
		return errors.New("no event_id column")
	}
	values := make([]parquet.ByteArray, 4096)
	for g := 0; g < pr.NumRowGroups(); g++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		cr, err := pr.RowGroup(g).Column(col)
		if err != nil {
			return fmt.Errorf("row group %d: %w", g, err)
		}
		br, ok := cr.(*file.ByteArrayColumnChunkReader)
		if !ok {
			return fmt.Errorf("event_id column is %T, want byte array", cr)
		}
		for br.HasNext() {
			_, n, err := br.ReadBatch(int64(len(values)), values, nil, nil)
			if err != nil {
				return fmt.Errorf("row group %d: %w", g, err)
			}
			for _, v := range values[:n] {
				if err := fn(string(v)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Rows calls fn with every row batch of the unit r, relabelled with
// event.Schema (the reader adds field-id metadata the writers do not
// want). fn must not keep the batch.
func Rows(ctx context.Context, r parquet.ReaderAtSeeker, fn func(arrow.RecordBatch) error) error {
	pr, err := open(r)
	if err != nil {
		return err
	}
	defer pr.Close()
	return each(ctx, pr, fn)
}

// Copy streams every row batch of the parquet file r, relabelled with
// schema, into write (BigQuery's batch files use another schema).
func Copy(ctx context.Context, r parquet.ReaderAtSeeker, schema *arrow.Schema, write func(arrow.RecordBatch) error) error {
	pr, err := open(r)
	if err != nil {
		return err
	}
	defer pr.Close()
	return eachAs(ctx, pr, schema, write)
}

func each(ctx context.Context, pr *file.Reader, fn func(arrow.RecordBatch) error) error {
	return eachAs(ctx, pr, event.Schema, fn)
}

func eachAs(ctx context.Context, pr *file.Reader, schema *arrow.Schema, fn func(arrow.RecordBatch) error) error {
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: batchRows}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rb := rr.RecordBatch()
		if int(rb.NumCols()) != schema.NumFields() {
			return fmt.Errorf("%d columns, want %d", rb.NumCols(), schema.NumFields())
		}
		rec := array.NewRecordBatch(schema, rb.Columns(), rb.NumRows())
		err := fn(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// IDTimes calls fn with the event id and timestamp of every row of the unit
// r, in file order, reading only those two columns, one batch at a time.
// A null id is passed as "" and a null timestamp as the zero time (files
// vaultsink writes have neither; other writers may).
func IDTimes(ctx context.Context, r parquet.ReaderAtSeeker, fn func(id string, ts time.Time) error) error {
	pr, err := open(r)
	if err != nil {
		return err
	}
	defer pr.Close()
	sc := pr.MetaData().Schema
	idCol, tsCol := sc.ColumnIndexByName("event_id"), sc.ColumnIndexByName("timestamp")
	if idCol < 0 || tsCol < 0 {
		return errors.New("no event_id or timestamp column")
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: batchRows}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(ctx, []int{idCol, tsCol}, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		ids, tss := rec.Schema().FieldIndices("event_id"), rec.Schema().FieldIndices("timestamp")
		if len(ids) != 1 || len(tss) != 1 {
			return fmt.Errorf("read columns %s, want event_id and timestamp", rec.Schema())
		}
		idAt, tsAt := ids[0], tss[0]
		id, err := stringsOf(rec.Column(idAt))
		if err != nil {
			return fmt.Errorf("event_id: %w", err)
		}
		ts, ok := rec.Column(tsAt).(*array.Timestamp)
		if !ok {
			return fmt.Errorf("timestamp column is %s, want a timestamp", rec.Column(tsAt).DataType())
		}
		toTime, err := ts.DataType().(*arrow.TimestampType).GetToTimeFunc()
		if err != nil {
			return fmt.Errorf("timestamp: %w", err)
		}
		for i := range int(rec.NumRows()) {
			var t time.Time
			if ts.IsValid(i) {
				t = toTime(ts.Value(i)).UTC()
			}
			if err := fn(id(i), t); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// stringsOf returns the value getter of a string or binary column.
func stringsOf(a arrow.Array) (func(i int) string, error) {
	switch c := a.(type) {
	case *array.String:
		return func(i int) string { return c.Value(i) }, nil
	case *array.LargeString:
		return func(i int) string { return c.Value(i) }, nil
	case *array.Binary:
		return func(i int) string { return string(c.Value(i)) }, nil
	}
	return nil, fmt.Errorf("column is %s, want a string", a.DataType())
}
