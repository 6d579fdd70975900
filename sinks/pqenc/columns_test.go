package pqenc

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// nullyBatch is n rows of event.Schema in which every nullable column is
// null on a different stride of rows, and dictionary columns cycle through
// a few values.
func nullyBatch(mem memory.Allocator, first, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, event.Schema)
	defer b.Release()
	base := testWindow.Start
	for r := first; r < first+n; r++ {
		for c, f := range event.Schema.Fields() {
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
			t.Errorf("column %s reads back differently: %v...", event.Schema.Field(c).Name, got.String()[:200])
		}
		got.Release()
	}
	if got, want := rowGroups(t, one), (total+2499)/2500; got != want {
		t.Fatalf("%d row groups, want %d", got, want)
	}
}

// TestEncodeWorkersOption: encode_workers sets the encoding goroutines of
// a Writer, one by default and never more than GOMAXPROCS.
func TestEncodeWorkersOption(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	for _, tt := range []struct{ set, want int }{{0, 1}, {1, 1}, {2, 2}, {MaxEncodeWorkers, 2}} {
		w, err := NewWriter(io.Discard, Meta{Window: testWindow, Version: "test"}, Options{EncodeWorkers: tt.set})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.workers; got != tt.want {
			t.Errorf("encode_workers %d at GOMAXPROCS 2: %d workers, want %d", tt.set, got, tt.want)
		}
		w.Abort()
	}
	if _, err := NewWriter(io.Discard, Meta{Window: testWindow, Version: "test"}, Options{EncodeWorkers: -2}); err == nil || !strings.Contains(err.Error(), "encode_workers: -2") {
		t.Fatalf("encode_workers -2: got %v, want an error naming the field", err)
	}
}

// TestSameAsArrowWriter: the Writer's hand-built pages (pages.go) make a
// file that arrow-go's own writer, given the same properties, agrees with:
// the same rows in the same row groups, and per column chunk the same
// encodings, dictionary page, value count and statistics (min, max, null
// count). The bytes differ: arrow-go also writes page statistics and RLE
// runs in its dictionary indexes.
func TestSameAsArrowWriter(t *testing.T) {
	const rg = 2500
	sizes := []int{1000, 1000, 3000, 7, 4096, 999, 1}
	ours := encodeWith(t, 1, Options{RowGroupRows: rg}, sizes...)

	// The reference: pqarrow with the Writer's properties.
	props := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(rg),
		parquet.WithStats(true),
		parquet.WithDictionaryDefault(false),
		parquet.WithVersion(parquet.V2_6),
		parquet.WithDataPageVersion(parquet.DataPageV1),
	}
	for _, c := range event.DictionaryColumns {
		props = append(props, parquet.WithDictionaryFor(c, true))
	}
	for _, c := range NoStatsColumns {
		props = append(props, parquet.WithStatsFor(c, false))
	}
	var ref bytes.Buffer
	fw, err := pqarrow.NewFileWriter(event.Schema, &ref, parquet.NewWriterProperties(props...),
		pqarrow.NewArrowWriterProperties(pqarrow.WithCoerceTimestamps(arrow.Microsecond)))
	if err != nil {
		t.Fatal(err)
	}
	row := 0
	for _, n := range sizes {
		rec := nullyBatch(memory.DefaultAllocator, row, n)
		row += n
		if err := fw.WriteBuffered(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}

	a, b := openParquet(t, ours), openParquet(t, ref.Bytes())
	if a.NumRowGroups() != b.NumRowGroups() || a.NumRows() != b.NumRows() {
		t.Fatalf("%d rows in %d row groups, arrow-go: %d in %d", a.NumRows(), a.NumRowGroups(), b.NumRows(), b.NumRowGroups())
	}
	for g := 0; g < a.NumRowGroups(); g++ {
		ga, gb := a.MetaData().RowGroup(g), b.MetaData().RowGroup(g)
		if ga.NumRows() != gb.NumRows() {
			t.Fatalf("row group %d: %d rows, arrow-go %d", g, ga.NumRows(), gb.NumRows())
		}
		for c := 0; c < ga.NumColumns(); c++ {
			ca, _ := ga.ColumnChunk(c)
			cb, _ := gb.ColumnChunk(c)
			name := ca.PathInSchema().String()
			if ca.NumValues() != cb.NumValues() || ca.HasDictionaryPage() != cb.HasDictionaryPage() ||
				fmt.Sprint(ca.Encodings()) != fmt.Sprint(cb.Encodings()) || ca.Compression() != cb.Compression() {
				t.Errorf("row group %d %s: values %d dict %v %v %v; arrow-go %d %v %v %v", g, name,
					ca.NumValues(), ca.HasDictionaryPage(), ca.Encodings(), ca.Compression(),
					cb.NumValues(), cb.HasDictionaryPage(), cb.Encodings(), cb.Compression())
			}
			sa, errA := ca.StatsSet()
			sb, errB := cb.StatsSet()
			if errA != nil || errB != nil || sa != sb {
				t.Fatalf("row group %d %s: statistics set %v (%v), arrow-go %v (%v)", g, name, sa, errA, sb, errB)
			}
			if !sa {
				continue
			}
			ea, _ := ca.Statistics()
			eb, _ := cb.Statistics()
			if ea.HasMinMax() != eb.HasMinMax() || ea.NullCount() != eb.NullCount() ||
				!bytes.Equal(ea.EncodeMin(), eb.EncodeMin()) || !bytes.Equal(ea.EncodeMax(), eb.EncodeMax()) {
				t.Errorf("row group %d %s: statistics min %q max %q nulls %d; arrow-go %q %q %d", g, name,
					ea.EncodeMin(), ea.EncodeMax(), ea.NullCount(), eb.EncodeMin(), eb.EncodeMax(), eb.NullCount())
			}
		}
	}
	ta, tb := readTable(t, ours), readTable(t, ref.Bytes())
	defer ta.Release()
	defer tb.Release()
	if !array.TableEqual(ta, tb) {
		t.Fatal("the rows read back differ from arrow-go's file")
	}
}

func openParquet(t *testing.T, data []byte) *file.Reader {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return r
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

// TestDictionaryStatistics: the dictionary columns gathered per row group
// (dict.go) carry the statistics of a value-by-value write: min, max and
// null count of each row group's rows.
func TestDictionaryStatistics(t *testing.T) {
	const rg = 2500
	sizes := []int{1000, 3000, 999, 1}
	data := encodeWith(t, 2, Options{RowGroupRows: rg}, sizes...)
	total := 0
	for _, n := range sizes {
		total += n
	}
	want := nullyBatch(memory.DefaultAllocator, 0, total)
	defer want.Release()
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	checked := 0
	for g := 0; g < rdr.NumRowGroups(); g++ {
		rgm := rdr.MetaData().RowGroup(g)
		for c := 0; c < rgm.NumColumns(); c++ {
			name := event.Schema.Field(c).Name
			if !slices.Contains(event.DictionaryColumns, name) || slices.Contains(NoStatsColumns, name) {
				continue
			}
			cc, err := rgm.ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			if !cc.HasDictionaryPage() {
				t.Errorf("row group %d %s: no dictionary page", g, name)
			}
			st, err := cc.Statistics()
			if err != nil || st == nil {
				t.Fatalf("row group %d %s: statistics: %v", g, name, err)
			}
			col := want.Column(c).(*array.String)
			var lo, hi string
			nulls, seen := 0, false
			for r := g * rg; r < min((g+1)*rg, total); r++ {
				if col.IsNull(r) {
					nulls++
					continue
				}
				v := col.Value(r)
				if !seen || v < lo {
					lo = v
				}
				if !seen || v > hi {
					hi = v
				}
				seen = true
			}
			bs := st.(*metadata.ByteArrayStatistics)
			if string(bs.Min()) != lo || string(bs.Max()) != hi || bs.NullCount() != int64(nulls) {
				t.Errorf("row group %d %s: statistics min %q max %q nulls %d, want %q %q %d",
					g, name, bs.Min(), bs.Max(), bs.NullCount(), lo, hi, nulls)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no dictionary column with statistics was checked")
	}
}

// TestDictionaryFallback: a dictionary column with more distinct bytes in a
// row group than a dictionary may hold is written as plain strings for that
// row group, and reads back unchanged.
func TestDictionaryFallback(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	actor := event.Schema.FieldIndices("actor")[0]
	long := strings.Repeat("x", 700)
	batch := func(first, n int) arrow.RecordBatch {
		rec := nullyBatch(mem, first, n)
		defer rec.Release()
		b := array.NewStringBuilder(mem)
		defer b.Release()
		old := rec.Column(actor).(*array.String)
		for i := range n {
			if old.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(fmt.Sprintf("%s-%d", long, first+i)) // distinct, ~700 bytes
			}
		}
		a := b.NewArray()
		defer a.Release()
		cols := slices.Clone(rec.Columns())
		cols[actor] = a
		return array.NewRecordBatch(event.Schema, cols, int64(n))
	}
	var buf bytes.Buffer
	w, err := newWriterWorkers(&buf, Meta{Window: testWindow, Version: "test"}, Options{RowGroupRows: 4000}, mem, 2)
	if err != nil {
		t.Fatal(err)
	}
	var recs []arrow.RecordBatch
	for i := range 5 { // 5,000 rows, ~2.9 MB of distinct actors in the first row group
		rec := batch(i*1000, 1000)
		recs = append(recs, rec)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rdr, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(actor)
	if err != nil {
		t.Fatal(err)
	}
	plainData := false
	for _, ps := range cc.EncodingStats() {
		if ps.PageType == 0 && ps.Encoding == parquet.Encodings.Plain { // 0: DATA_PAGE
			plainData = true
		}
	}
	if !plainData {
		t.Errorf("actor in row group 0: page encodings %+v, want plain data pages (fallback)", cc.EncodingStats())
	}
	rdr.Close()
	tbl := readTable(t, buf.Bytes())
	defer tbl.Release()
	got, err := array.Concatenate(tbl.Column(actor).Data().Chunks(), memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	parts := make([]arrow.Array, len(recs))
	for i, r := range recs {
		parts[i] = r.Column(actor)
	}
	wantArr, err := array.Concatenate(parts, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer wantArr.Release()
	if !array.Equal(got, wantArr) {
		t.Fatal("actor column reads back differently after the dictionary fallback")
	}
	for _, r := range recs {
		r.Release()
	}
}

// TestDictionaryAllNull: a dictionary column that is null in every row (an
// API that never sends the field) makes an empty dictionary per row group
// and reads back as nulls.
func TestDictionaryAllNull(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var buf bytes.Buffer
	w, err := newWriterWorkers(&buf, Meta{Window: testWindow, Version: "test"}, Options{RowGroupRows: 1500}, mem, 2)
	if err != nil {
		t.Fatal(err)
	}
	sev := event.Schema.FieldIndices("severity")[0]
	for i := range 3 {
		rec := nullyBatch(mem, i*1000, 1000)
		b := array.NewStringBuilder(mem)
		b.AppendNulls(1000)
		a := b.NewArray()
		b.Release()
		cols := append([]arrow.Array(nil), rec.Columns()...)
		cols[sev] = a
		r2 := array.NewRecordBatch(event.Schema, cols, 1000)
		a.Release()
		rec.Release()
		if err := w.Write(r2); err != nil {
			t.Fatal(err)
		}
		r2.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tbl := readTable(t, buf.Bytes())
	defer tbl.Release()
	if n := tbl.Column(sev).NullN(); n != 3000 {
		t.Fatalf("severity read back with %d nulls, want 3000", n)
	}
	if tbl.NumRows() != 3000 {
		t.Fatalf("%d rows read back, want 3000", tbl.NumRows())
	}
}

// TestColumnsReused: a closed Writer's columns, with their buffers, go to
// the next Writer (emptied: the files are the same, TestDictColumnsReused),
// but not one that a freak row group grew past retainColumnBytes.
func TestColumnsReused(t *testing.T) {
	takeFree(t, &colFree)
	idle := func() []*column { return idleIn(&colFree) }

	encodeWith(t, 1, Options{RowGroupRows: 2500}, 3000)
	first := idle()
	if len(first) != len(event.Schema.Fields()) {
		t.Fatalf("%d columns idle after Close, want %d", len(first), len(event.Schema.Fields()))
	}
	for _, c := range first {
		if len(c.chunk) != 0 || c.rows != 0 || c.dict != nil || cap(c.page) == 0 {
			t.Fatal("an idle column was not emptied, or lost its buffers")
		}
	}
	w, err := NewWriter(io.Discard, Meta{Window: testWindow, Version: "test"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range w.cols {
		if !slices.Contains(first, c) {
			t.Fatal("a new column was made though idle ones waited")
		}
	}
	w.cols[0].chunk = make([]byte, 0, retainColumnBytes+1)
	w.Abort()
	if n := len(idle()); n != len(first)-1 {
		t.Fatalf("%d columns idle after an Abort, want %d (all but the oversized one)", n, len(first)-1)
	}
}

// TestRequiredColumnNulls: a null in a required column (event_id) is an
// error naming the column, not a file that says otherwise.
func TestRequiredColumnNulls(t *testing.T) {
	rec := nullyBatch(memory.DefaultAllocator, 0, 10)
	defer rec.Release()
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	for i := range 10 {
		if i == 3 {
			b.AppendNull()
		} else {
			b.Append(fmt.Sprint("evt_", i))
		}
	}
	ids := b.NewArray()
	defer ids.Release()
	cols := slices.Clone(rec.Columns())
	cols[0] = ids
	bad := array.NewRecordBatch(event.Schema, cols, 10)
	defer bad.Release()

	w, err := NewWriter(io.Discard, Meta{Window: testWindow, Version: "test"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	err = w.Write(bad)
	if err == nil {
		err = w.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "event_id") || !strings.Contains(err.Error(), "required") {
		t.Fatalf("got %v, want an error naming event_id as required", err)
	}
}
