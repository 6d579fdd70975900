package pqenc

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

var testWindow = event.Window{
	Org:   "org_acme",
	Start: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC),
	End:   time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC),
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      Options
		want    Options // after SetDefaults
		wantErr string  // substring; "" = valid
	}{
		{"zero", Options{}, Options{"zstd", DefaultZstdLevel, DefaultRowGroupRows, DefaultEncodeWorkers}, ""},
		{"snappy keeps level 0", Options{Compression: "Snappy"}, Options{"snappy", 0, DefaultRowGroupRows, DefaultEncodeWorkers}, ""},
		{"zstd level", Options{Compression: "zstd", CompressionLevel: 9, RowGroupRows: 1000}, Options{"zstd", 9, 1000, DefaultEncodeWorkers}, ""},
		{"gzip", Options{Compression: "gzip"}, Options{"gzip", 0, DefaultRowGroupRows, DefaultEncodeWorkers}, ""},
		{"none", Options{Compression: "none"}, Options{"none", 0, DefaultRowGroupRows, DefaultEncodeWorkers}, ""},
		{"bad codec", Options{Compression: "lzo"}, Options{"lzo", 0, DefaultRowGroupRows, DefaultEncodeWorkers}, `compression: "lzo"`},
		{"zstd level too high", Options{CompressionLevel: 23}, Options{"zstd", 23, DefaultRowGroupRows, DefaultEncodeWorkers}, "compression_level: 23"},
		{"gzip level too high", Options{Compression: "gzip", CompressionLevel: 10}, Options{"gzip", 10, DefaultRowGroupRows, DefaultEncodeWorkers}, "compression_level: 10"},
		{"snappy level", Options{Compression: "snappy", CompressionLevel: 3}, Options{"snappy", 3, DefaultRowGroupRows, DefaultEncodeWorkers}, "compression_level: 3"},
		{"negative rows", Options{RowGroupRows: -1}, Options{"zstd", DefaultZstdLevel, -1, DefaultEncodeWorkers}, "row_group_rows: -1"},
		{"huge rows", Options{RowGroupRows: MaxRowGroupRows + 1}, Options{"zstd", DefaultZstdLevel, MaxRowGroupRows + 1, DefaultEncodeWorkers}, "row_group_rows: 1048577"},
		{"two workers", Options{EncodeWorkers: 2}, Options{"zstd", DefaultZstdLevel, DefaultRowGroupRows, 2}, ""},
		{"negative workers", Options{EncodeWorkers: -1}, Options{"zstd", DefaultZstdLevel, DefaultRowGroupRows, -1}, "encode_workers: -1"},
		{"too many workers", Options{EncodeWorkers: MaxEncodeWorkers + 1}, Options{"zstd", DefaultZstdLevel, DefaultRowGroupRows, MaxEncodeWorkers + 1}, "encode_workers: 17"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.in
			o.SetDefaults()
			if o != tt.want {
				t.Fatalf("SetDefaults: got %+v, want %+v", o, tt.want)
			}
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// encode writes batches of the given sizes with a checked allocator and
// asserts nothing leaked.
func encode(t *testing.T, opts Options, sizes ...int) ([]byte, []string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var buf bytes.Buffer
	w, err := newWriter(&buf, Meta{Window: testWindow, Version: "test"}, opts, mem)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i, n := range sizes {
		ids := sinktest.IDs("evt", len(all), n)
		all = append(all, ids...)
		rec := sinktest.Batch(mem, sinktest.Events(testWindow, ids))
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatalf("write batch %d: %v", i, err)
		}
	}
	if got := w.Rows(); got != int64(len(all)) {
		t.Fatalf("Rows = %d, want %d", got, len(all))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if w.Bytes() != int64(buf.Len()) {
		t.Fatalf("Bytes = %d, buffer has %d", w.Bytes(), buf.Len())
	}
	return buf.Bytes(), all
}

func TestRoundTrip(t *testing.T) {
	data, ids := encode(t, Options{RowGroupRows: 2048}, 1000, 1000, 1000, 500, 1500)

	// Independent reader: types, metadata, ids.
	info, err := sinktest.CheckParquet(data, testWindow)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.IDs, ids) {
		t.Fatalf("ids differ: got %d, want %d", len(info.IDs), len(ids))
	}
	if info.Metadata[MetaVersion] != "test" {
		t.Fatalf("version metadata = %q", info.Metadata[MetaVersion])
	}

	// arrow-go reader: row groups, encodings, statistics, schema.
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	if got, want := rdr.NumRowGroups(), 3; got != want { // 5000 rows in groups of 2048
		t.Fatalf("row groups = %d, want %d", got, want)
	}
	rg := rdr.MetaData().RowGroup(0)
	if rg.NumRows() != 2048 {
		t.Fatalf("first row group has %d rows, want 2048", rg.NumRows())
	}
	dict := map[string]bool{}
	for _, c := range event.DictionaryColumns {
		dict[c] = true
	}
	for i := 0; i < rg.NumColumns(); i++ {
		cc, err := rg.ColumnChunk(i)
		if err != nil {
			t.Fatal(err)
		}
		name := cc.PathInSchema().String()
		if cc.Compression() != compress.Codecs.Zstd {
			t.Errorf("%s: compression %v, want zstd", name, cc.Compression())
		}
		if cc.HasDictionaryPage() != dict[name] {
			t.Errorf("%s: dictionary page %t, want %t", name, cc.HasDictionaryPage(), dict[name])
		}
		ok, err := cc.StatsSet()
		if err != nil {
			t.Fatal(err)
		}
		if want := !slices.Contains(NoStatsColumns, name); ok != want {
			t.Errorf("%s: statistics set %t, want %t", name, ok, want)
		}
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := fr.Schema()
	if err != nil {
		t.Fatal(err)
	}
	// Field metadata (PARQUET:field_id) aside, the schema must round-trip.
	if sc.NumFields() != event.Schema.NumFields() {
		t.Fatalf("schema read back has %d fields, want %d", sc.NumFields(), event.Schema.NumFields())
	}
	for i, f := range sc.Fields() {
		want := event.Schema.Field(i)
		if f.Name != want.Name || !arrow.TypeEqual(f.Type, want.Type) || f.Nullable != want.Nullable {
			t.Errorf("field %d read back as %v, want %v", i, f, want)
		}
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != int64(len(ids)) {
		t.Fatalf("table rows = %d, want %d", tbl.NumRows(), len(ids))
	}
}

func TestCodecs(t *testing.T) {
	for _, tt := range []struct {
		codec string
		want  compress.Compression
	}{
		{"zstd", compress.Codecs.Zstd},
		{"snappy", compress.Codecs.Snappy},
		{"gzip", compress.Codecs.Gzip},
		{"none", compress.Codecs.Uncompressed},
	} {
		t.Run(tt.codec, func(t *testing.T) {
			data, ids := encode(t, Options{Compression: tt.codec}, 700)
			info, err := sinktest.CheckParquet(data, testWindow)
			if err != nil {
				t.Fatal(err)
			}
			if len(info.IDs) != len(ids) {
				t.Fatalf("read %d ids, want %d", len(info.IDs), len(ids))
			}
			rdr, err := file.NewParquetReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			defer rdr.Close()
			cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(event.ColDetail)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Compression() != tt.want {
				t.Fatalf("compression %v, want %v", cc.Compression(), tt.want)
			}
		})
	}
}

func TestEmptyFile(t *testing.T) {
	data, _ := encode(t, Options{})
	info, err := sinktest.CheckParquet(data, testWindow)
	if err != nil {
		t.Fatal(err)
	}
	if info.Rows != 0 || info.Metadata[MetaEventCount] != "0" {
		t.Fatalf("rows %d, event_count %q; want 0", info.Rows, info.Metadata[MetaEventCount])
	}
}

func TestWriteAfterClose(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Meta{Window: testWindow}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(testWindow, sinktest.IDs("x", 0, 3)))
	defer rec.Release()
	if err := w.Write(rec); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestNewWriterRejectsBadOptions(t *testing.T) {
	_, err := NewWriter(&bytes.Buffer{}, Meta{Window: testWindow}, Options{Compression: "brotli"})
	if err == nil || !strings.Contains(err.Error(), "compression") {
		t.Fatalf("got %v, want a compression error", err)
	}
}
