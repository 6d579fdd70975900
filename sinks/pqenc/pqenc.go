// Package pqenc encodes Arrow record batches in event.Schema into one
// Parquet file, streaming row groups into an io.Writer. Every sink that
// writes Parquet (local, S3, BigQuery loads) uses it, so every sink writes
// byte-for-byte the same kind of file.
//
// Memory is bounded by one row group: batches are encoded into the current
// (buffered) row group, its columns by Options.EncodeWorkers goroutines
// (columns.go), and the row group is flushed to w once it reaches
// RowGroupRows. Timestamps are INT64 TIMESTAMP(MICROS, UTC), never INT96
// or nanoseconds; only event.DictionaryColumns are dictionary-encoded,
// because dictionaries on unique values (ids, IPs, detail) cost throughput
// and buy nothing.
package pqenc

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/vaultsink/vaultsink/internal/pipeclock"
)

// Defaults. Each trades encode CPU against file size and peak memory; the
// measurements behind them are in bench/DECISIONS.md, to be repeated
// before one is changed.
const (
	// DefaultCompression is zstd: far fewer bytes than snappy for a little
	// less throughput, and every warehouse reader takes it.
	DefaultCompression = "zstd"
	// DefaultZstdLevel is zstd's fastest level: higher levels buy a little
	// size for much more CPU on this data.
	DefaultZstdLevel = 1
	// DefaultRowGroupRows: a row group's pages are held until it closes, so
	// its size bounds the encoder's memory. 32k rows (~13 MB of input,
	// ~1 MB encoded) keep that small for files a little larger than bigger
	// groups give; the daemon has to fit several orgs' row groups in 128 MiB.
	DefaultRowGroupRows = 32768
	// DataPageBytes is the uncompressed size at which a column's data page
	// is compressed and closed. Each column keeps one open page of
	// uncompressed values, so this bounds what a row group holds
	// uncompressed per column; smaller pages compress slightly worse and
	// add page headers.
	DataPageBytes = 256 << 10
	// MaxRowGroupRows bounds the memory a misconfiguration can cost.
	MaxRowGroupRows = 1 << 20
	// DefaultEncodeWorkers: one goroutine encodes a file's columns. In a
	// sync the other cores are busy fetching and decoding, so a second
	// encoding goroutine only adds hand-offs, each of which wakes a
	// thread: more CPU per event for no shorter sync. See columns.go.
	DefaultEncodeWorkers = 1
	// MaxEncodeWorkers bounds encode_workers; GOMAXPROCS bounds it further.
	MaxEncodeWorkers = 16
)

// File key-value metadata keys written into every file.
const (
	MetaOrg           = "vaultsink.org"
	MetaWindowStart   = "vaultsink.window_start"
	MetaWindowEnd     = "vaultsink.window_end"
	MetaSchemaVersion = "vaultsink.schema_version"
	MetaEventCount    = "vaultsink.event_count"
	MetaVersion       = "vaultsink.version"
)

// Options tune the Parquet encoding. Sinks embed it inline in their config.
type Options struct {
	Compression      string `yaml:"compression"`       // zstd (default), snappy, gzip, none
	CompressionLevel int    `yaml:"compression_level"` // 0 = package default (zstd: 1; others: codec default)
	RowGroupRows     int    `yaml:"row_group_rows"`    // rows per row group; default DefaultRowGroupRows
	EncodeWorkers    int    `yaml:"encode_workers"`    // goroutines encoding a file's columns at once; default DefaultEncodeWorkers, at most GOMAXPROCS
}

// SetDefaults fills unset fields.
func (o *Options) SetDefaults() {
	if o.Compression == "" {
		o.Compression = DefaultCompression
	}
	o.Compression = strings.ToLower(o.Compression)
	if o.CompressionLevel == 0 && o.Compression == "zstd" {
		o.CompressionLevel = DefaultZstdLevel
	}
	if o.RowGroupRows == 0 {
		o.RowGroupRows = DefaultRowGroupRows
	}
	if o.EncodeWorkers == 0 {
		o.EncodeWorkers = DefaultEncodeWorkers
	}
}

// Validate checks the options; errors name the field and the bad value.
func (o *Options) Validate() error {
	switch strings.ToLower(o.Compression) {
	case "zstd":
		if o.CompressionLevel < 0 || o.CompressionLevel > 22 {
			return fmt.Errorf("compression_level: %d is out of range for zstd (1-22, 0 for the default)", o.CompressionLevel)
		}
	case "gzip":
		if o.CompressionLevel < 0 || o.CompressionLevel > 9 {
			return fmt.Errorf("compression_level: %d is out of range for gzip (1-9, 0 for the default)", o.CompressionLevel)
		}
	case "snappy", "none":
		if o.CompressionLevel != 0 {
			return fmt.Errorf("compression_level: %d is not supported by %s (leave it 0)", o.CompressionLevel, o.Compression)
		}
	default:
		return fmt.Errorf("compression: %q is not one of zstd, snappy, gzip, none", o.Compression)
	}
	if o.RowGroupRows < 0 || o.RowGroupRows > MaxRowGroupRows {
		return fmt.Errorf("row_group_rows: %d is out of range (1-%d, 0 for the default %d)", o.RowGroupRows, MaxRowGroupRows, DefaultRowGroupRows)
	}
	if o.EncodeWorkers < 0 || o.EncodeWorkers > MaxEncodeWorkers {
		return fmt.Errorf("encode_workers: %d is out of range (1-%d, 0 for the default %d)", o.EncodeWorkers, MaxEncodeWorkers, DefaultEncodeWorkers)
	}
	return nil
}

// Meta is recorded in the file's key-value metadata.
type Meta struct {
	Window  event.Window
	Version string // vaultsink version
}

// Writer encodes one Parquet file. It is not safe for concurrent use.
type Writer struct {
	out    *countingWriter
	mem    memory.Allocator // statistics, and a dictionary column's fallback
	props  *parquet.WriterProperties
	meta   *metadata.FileMetaDataBuilder
	codec  compress.Codec // nil: pages are stored uncompressed
	level  int
	rows   int64
	closed bool
	failed error // a write error leaves the file unusable

	// The current row group. Its columns are encoded by up to workers
	// goroutines at once (columns.go).
	rgOpen    bool
	rgRows    int64
	rowGroups int
	maxRGRows int64
	cols      []*column
	order     []int // column indexes, biggest first
	dictLimit int   // dictionary bytes per column and row group
	workers   int

	// Batches are coalesced up to coalesceRows before they are encoded:
	// each column write costs per call (a goroutine hand-off, a type
	// switch, the statistics' merge), a cost that page-sized batches of
	// 1,000 rows would pay for every page.
	pending     []arrow.RecordBatch
	pendingRows int64
	maxPending  int64
}

// NewWriter starts a Parquet file on w. Row groups are written to w as they
// fill; w is not closed by Close (the caller owns it, e.g. to fsync it).
func NewWriter(w io.Writer, meta Meta, opts Options) (*Writer, error) {
	return newWriter(w, meta, opts, memory.DefaultAllocator)
}

// NoStatsColumns are the free-text columns written without min/max
// statistics; every other column (ids, org, timestamps, action, category,
// severity, source_ip) keeps them for row-group pruning.
var NoStatsColumns = []string{"title", "actor", "resource", "detail", "extra"}

func newWriter(w io.Writer, meta Meta, opts Options, mem memory.Allocator) (*Writer, error) {
	return newWriterWorkers(w, meta, opts, mem, 0)
}

// newWriterWorkers is newWriter with workers encoding goroutines (0: as
// opts.EncodeWorkers says).
func newWriterWorkers(w io.Writer, meta Meta, opts Options, mem memory.Allocator, workers int) (*Writer, error) {
	opts.SetDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("parquet options: %w", err)
	}
	if workers <= 0 {
		workers = encodeWorkers(opts.EncodeWorkers)
	}
	codecType, level := codecOf(opts)
	props := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithCompression(codecType),
		parquet.WithCompressionLevel(level),
		parquet.WithMaxRowGroupLength(int64(opts.RowGroupRows)),
		parquet.WithStats(true),
		parquet.WithDictionaryDefault(false),
		// V2_6 keeps microsecond timestamps as TIMESTAMP(MICROS) logical
		// types; data pages are V1, which every warehouse reader accepts.
		parquet.WithVersion(parquet.V2_6),
		parquet.WithDataPageVersion(parquet.DataPageV1),
		parquet.WithDataPageSize(DataPageBytes),
	}
	for _, c := range event.DictionaryColumns {
		props = append(props, parquet.WithDictionaryFor(c, true))
	}
	// Min/max statistics serve pruning only on columns that queries filter
	// by; on long free text they cost encode time (comparing every value)
	// and bytes in every footer for no reader benefit.
	for _, c := range NoStatsColumns {
		props = append(props, parquet.WithStatsFor(c, false))
	}
	// The ARROW:schema blob is not stored: the Parquet logical types already
	// describe event.Schema exactly (arrow-go reads isAdjustedToUTC back as
	// time zone "UTC"), and DuckDB and BigQuery ignore it anyway.
	arrProps := pqarrow.NewArrowWriterProperties(
		pqarrow.WithCoerceTimestamps(arrow.Microsecond),
		pqarrow.WithDeprecatedInt96Timestamps(false),
	)
	wprops := parquet.NewWriterProperties(props...)
	pqschema, err := pqarrow.ToParquet(event.Schema, wprops, arrProps)
	if err != nil {
		return nil, fmt.Errorf("parquet schema: %w", err)
	}
	var codec compress.Codec
	if codecType != compress.Codecs.Uncompressed {
		if codec, err = compress.GetCodec(codecType); err != nil {
			return nil, fmt.Errorf("parquet codec: %w", err)
		}
	}
	kv := metadata.NewKeyValueMetadata()
	for _, p := range [][2]string{
		{MetaOrg, meta.Window.Org},
		{MetaWindowStart, meta.Window.Start.UTC().Format(time.RFC3339)},
		{MetaWindowEnd, meta.Window.End.UTC().Format(time.RFC3339)},
		{MetaSchemaVersion, event.SchemaVersion},
		{MetaVersion, meta.Version},
	} {
		if err := kv.Append(p[0], p[1]); err != nil {
			return nil, fmt.Errorf("parquet metadata %s: %w", p[0], err)
		}
	}
	cols, err := newColumns(event.Schema, pqschema, wprops)
	if err != nil {
		return nil, fmt.Errorf("parquet schema: %w", err)
	}
	wr := &Writer{
		out:        &countingWriter{w: w},
		mem:        mem,
		props:      wprops,
		meta:       metadata.NewFileMetadataBuilder(pqschema, wprops, kv),
		codec:      codec,
		level:      level,
		dictLimit:  int(wprops.DictionaryPageSizeLimit()),
		maxRGRows:  int64(opts.RowGroupRows),
		maxPending: coalesceRows(opts.RowGroupRows),
		cols:       cols,
		order:      bySize(cols),
		workers:    max(workers, 1),
	}
	if _, err := wr.out.Write(parquetMagic); err != nil {
		wr.recycle()
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	return wr, nil
}

var parquetMagic = []byte("PAR1")

func codecOf(o Options) (compress.Compression, int) {
	level := o.CompressionLevel
	if level == 0 {
		level = compress.DefaultCompressionLevel
	}
	switch o.Compression {
	case "snappy":
		return compress.Codecs.Snappy, compress.DefaultCompressionLevel
	case "gzip":
		return compress.Codecs.Gzip, level
	case "none":
		return compress.Codecs.Uncompressed, compress.DefaultCompressionLevel
	default:
		return compress.Codecs.Zstd, level
	}
}

// Write buffers rec (in event.Schema) into the current row group, flushing
// full row groups to the underlying writer. The caller keeps ownership of rec;
// the Writer retains it until it is coalesced with the next batches (at most
// 4,096 rows) or Close.
func (w *Writer) Write(rec arrow.RecordBatch) error {
	if w.closed {
		return fmt.Errorf("write parquet: writer closed")
	}
	if w.failed != nil {
		return fmt.Errorf("write parquet: an earlier write failed: %w", w.failed)
	}
	if rec.NumRows() == 0 {
		return nil
	}
	rec.Retain()
	w.pending = append(w.pending, rec)
	w.pendingRows += rec.NumRows()
	w.rows += rec.NumRows()
	if w.pendingRows >= w.maxPending {
		return w.flushPending()
	}
	return nil
}

// flushPending encodes the pending batches together: each column is
// handed to an encoding goroutine once for all of them.
func (w *Writer) flushPending() error {
	if len(w.pending) == 0 {
		return nil
	}
	defer pipeclock.Begin(pipeclock.Encode)()
	defer func() {
		for _, r := range w.pending {
			r.Release()
		}
		clear(w.pending)
		w.pending = w.pending[:0]
		w.pendingRows = 0
	}()
	if err := w.writeBatches(w.pending); err != nil {
		w.failed = err
		return fmt.Errorf("write parquet: %w", err)
	}
	return nil
}

// coalesceRows: batches of 4,096 rows pay the per-call cost of a column
// write rarely enough that larger ones save no more CPU, and hold a
// quarter of the memory of 16,384-row ones while coalescing (about 2 MB;
// bench/DECISIONS.md).
func coalesceRows(rowGroup int) int64 {
	return int64(min(rowGroup, 4096))
}

// Rows is the number of rows written so far.
func (w *Writer) Rows() int64 { return w.rows }

// Bytes is the number of bytes written to the underlying writer so far; after
// Close it is the file size.
func (w *Writer) Bytes() int64 { return w.out.n }

// Close flushes the last row group and writes the footer, including the
// event count. It does not close the underlying writer. Calling it again is
// a no-op.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.failed != nil {
		w.release()
		return fmt.Errorf("close parquet: an earlier write failed: %w", w.failed)
	}
	defer pipeclock.Begin(pipeclock.Encode)()
	if err := w.flushPending(); err != nil {
		w.release()
		return err
	}
	if err := w.closeRowGroup(); err != nil {
		w.release()
		return fmt.Errorf("close parquet: %w", err)
	}
	defer w.recycle()
	if err := w.meta.AppendKeyValueMetadata(MetaEventCount, strconv.FormatInt(w.rows, 10)); err != nil {
		return fmt.Errorf("parquet metadata %s: %w", MetaEventCount, err)
	}
	fm, err := w.meta.Finish()
	if err != nil {
		return fmt.Errorf("close parquet: %w", err)
	}
	n, err := fm.WriteTo(w.out, nil)
	if err != nil {
		return fmt.Errorf("close parquet: footer: %w", err)
	}
	tail := binary.LittleEndian.AppendUint32(nil, uint32(n))
	if _, err := w.out.Write(append(tail, parquetMagic...)); err != nil {
		return fmt.Errorf("close parquet: footer: %w", err)
	}
	return nil
}

// Abort drops the file: batches still held are released and nothing more
// is encoded or written. Close or Abort after Abort is a no-op.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.release()
}

// release drops what a failed writer holds; the file is not finished.
func (w *Writer) release() {
	for _, r := range w.pending {
		r.Release()
	}
	w.pending = nil
	w.recycle()
}

// recycle hands the columns (and their buffers) on to the next Writer.
func (w *Writer) recycle() {
	for _, c := range w.cols {
		putColumn(c)
	}
	w.cols = nil
}

// countingWriter counts the bytes written to the destination.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
