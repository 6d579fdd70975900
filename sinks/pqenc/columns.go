package pqenc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// Column chunks and column-parallel encoding.
//
// A Parquet row group holds each column in its own chunk, so the columns
// of a row group can be encoded and compressed independently: each column
// below keeps its open data page and the row group's finished pages
// (compressed, with their headers) to itself. The Writer hands a batch's
// columns out to up to Options.EncodeWorkers goroutines (at most
// GOMAXPROCS), largest first, and the row group's last pages are
// compressed the same way; closing the row group (writing the chunks to
// the file, in column order, and their metadata) stays sequential. The
// file is the same whatever the number of goroutines
// (TestParallelColumnsSameFile).
//
// One goroutine is the default (DefaultEncodeWorkers): in a sync, fetch
// and decode run beside the encoding goroutine and keep the other cores
// busy, so more encoding goroutines only add hand-offs, costing CPU per
// event without shortening the sync (bench/DECISIONS.md). More pay where
// cores idle while one big window encodes.

// column is one leaf column of event.Schema in a Writer, with its share
// of the current row group.
type column struct {
	descr    *schema.Column
	path     string
	nullable bool
	stats    bool        // min/max statistics (not NoStatsColumns)
	int64s   bool        // INT64 (timestamps); otherwise BYTE_ARRAY (strings)
	weight   int         // rough encoded size, to hand out the biggest first
	dict     *dictColumn // nil unless dictionary-encoded: its rows gathered for the row group (dict.go)

	// The open data page: its PLAIN values follow pageReserve bytes kept
	// for the definition levels, which are only known when the page closes
	// and precede the values in the page.
	page  []byte
	valid []byte // validity bits of the open page's rows (nullable columns)
	rows  int
	nulls int

	// The column chunk of the current row group so far.
	chunk        []byte // page headers and pages, as they go into the file
	dictBytes    int    // bytes of chunk taken by its dictionary page (0: none)
	uncompressed int64  // the chunk's size with its pages uncompressed
	dataPages    int32
	values       int64 // rows, nulls included
	chunkNulls   int64
	hasMinMax    bool
	minB, maxB   []byte
	minI, maxI   int64

	out    []byte  // compression output
	levels []byte  // definition levels of a page being closed
	idx    []int32 // a dictionary page's indexes without its null rows
}

const (
	// maxPageRows closes a data page at this many rows even if its values
	// are small (nulls take no value bytes); it bounds pageReserve.
	maxPageRows = DataPageBytes / 4
	// pageReserve is room for the largest definition levels of a page
	// (appendDefLevels): a 4-byte length, a run header, a bit per row.
	pageReserve = 4 + binary.MaxVarintLen32 + maxPageRows/8
)

// Rough bytes per event of each column before compression, as in the
// simulator's realistic events: only their order matters, so that the
// biggest columns are handed out first; unknown columns come last.
var columnWeights = map[string]int{
	"detail": 118, "event_id": 34, "actor": 28, "resource": 27, "title": 21,
	"source_ip": 19, "timestamp": 8, "ingested_at": 8,
}

func newColumns(s *arrow.Schema, pq *schema.Schema, props *parquet.WriterProperties) ([]*column, error) {
	dict := map[string]bool{}
	for _, c := range event.DictionaryColumns {
		dict[c] = true
	}
	cols := make([]*column, s.NumFields())
	for i, f := range s.Fields() {
		descr := pq.Column(i)
		c := getColumn()
		c.descr, c.path, c.nullable = descr, descr.Path(), f.Nullable
		c.stats = props.StatisticsEnabledFor(c.path)
		c.weight = columnWeights[f.Name]
		switch {
		case f.Type.ID() == arrow.STRING && descr.PhysicalType() == parquet.Types.ByteArray:
		case f.Type.ID() == arrow.TIMESTAMP && descr.PhysicalType() == parquet.Types.Int64:
			c.int64s = true
		default:
			return nil, fmt.Errorf("column %s: type %s is not supported", f.Name, f.Type)
		}
		if dict[f.Name] {
			if c.int64s {
				return nil, fmt.Errorf("column %s: dictionary encoding of %s is not supported", f.Name, f.Type)
			}
			c.dict = getDictColumn()
		}
		cols[i] = c
	}
	return cols, nil
}

// Columns outlive their Writer, as dictionary columns do (dict.go): an
// hourly sync opens a file per window, and a new column regrows its page
// and chunk buffers from nothing. At most two files' worth wait, none that
// a freak row group grew past retainColumnBytes.
var colFree = freeList[column]{max: 32}

const retainColumnBytes = 4 << 20

func getColumn() *column { return colFree.get(func() *column { return &column{} }) }

func putColumn(c *column) {
	if c.dict != nil {
		putDictColumn(c.dict)
	}
	if cap(c.chunk) > retainColumnBytes || cap(c.page) > retainColumnBytes || cap(c.out) > retainColumnBytes {
		return
	}
	*c = column{page: c.page[:0], valid: c.valid[:0], chunk: c.chunk[:0], out: c.out[:0],
		levels: c.levels[:0], idx: c.idx[:0], minB: c.minB[:0], maxB: c.maxB[:0]}
	colFree.put(c)
}

// freeList keeps up to max idle values for reuse.
type freeList[T any] struct {
	mu    sync.Mutex
	items []*T
	max   int
}

func (f *freeList[T]) get(alloc func() *T) *T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.items); n > 0 {
		x := f.items[n-1]
		f.items[n-1] = nil
		f.items = f.items[:n-1]
		return x
	}
	return alloc()
}

func (f *freeList[T]) put(x *T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.items) < f.max {
		f.items = append(f.items, x)
	}
}

// encodeWorkers is how many goroutines encode one file's columns: the
// configured number, at most one per usable core.
func encodeWorkers(configured int) int {
	return max(1, min(configured, runtime.GOMAXPROCS(0)))
}

// bySize returns the column indexes, biggest first.
func bySize(cols []*column) []int {
	idx := make([]int, len(cols))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cols[b].weight - cols[a].weight })
	return idx
}

// parallel runs fn for each column index in order on up to w.workers
// goroutines (the calling one included, the others as helpers allow) and
// returns the first error.
func (w *Writer) parallel(cols []int, fn func(col int) error) error {
	if len(cols) == 0 {
		return nil
	}
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	run := func() {
		for {
			i := next.Add(1) - 1
			if i >= int64(len(cols)) {
				return
			}
			if err := fn(cols[i]); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
		}
	}
	n := min(w.workers, len(cols))
spawn:
	for k := 1; k < n; k++ {
		select {
		case helpers <- struct{}{}:
		default:
			break spawn // every core is already helping some writer
		}
		wg.Add(1)
		go func() {
			defer func() { <-helpers; wg.Done() }()
			run()
		}()
	}
	run()
	wg.Wait()
	return first
}

// helpers bounds the extra encoding goroutines of all writers together to
// one fewer than the cores: a sync of one org with encode_workers set
// spreads its columns over every core, while windows already encoded in
// parallel (backfill --concurrency, several orgs) each keep to their own
// goroutine instead of multiplying goroutines and live zstd encoders
// (~2 MiB each).
var helpers = make(chan struct{}, max(runtime.GOMAXPROCS(0)-1, 1))

// writeBatches encodes recs, in order, into the current row group,
// starting a new row group every maxRGRows rows. Each column of the
// batches that fit in the row group is one task for the encoding
// goroutines.
func (w *Writer) writeBatches(recs []arrow.RecordBatch) error {
	var (
		parts []arrow.RecordBatch // what goes into the current row group
		owned []arrow.RecordBatch // slices made here, released at the end
	)
	defer func() {
		for _, r := range owned {
			r.Release()
		}
	}()
	flush := func() error {
		if len(parts) == 0 {
			return nil
		}
		err := w.parallel(w.order, func(col int) error {
			for _, p := range parts {
				if err := w.addColumn(w.cols[col], p.Column(col)); err != nil {
					return fmt.Errorf("column %s: %w", w.cols[col].path, err)
				}
			}
			return nil
		})
		parts = parts[:0]
		return err
	}
	for _, rec := range recs {
		n := rec.NumRows()
		for off := int64(0); off < n; {
			if !w.rgOpen || w.rgRows >= w.maxRGRows {
				if err := flush(); err != nil {
					return err
				}
				if err := w.closeRowGroup(); err != nil {
					return err
				}
				w.rgOpen, w.rgRows = true, 0
			}
			k := min(n-off, w.maxRGRows-w.rgRows)
			part := rec
			if off > 0 || k < n {
				part = rec.NewSlice(off, off+k)
				owned = append(owned, part)
			}
			parts = append(parts, part)
			w.rgRows += k
			off += k
		}
	}
	return flush()
}

// addColumn adds one column of a batch to the row group: a dictionary
// column is gathered (dict.go), any other is appended to its pages.
func (w *Writer) addColumn(c *column, arr arrow.Array) error {
	if !c.nullable && arr.NullN() > 0 {
		return fmt.Errorf("%d nulls in a required column", arr.NullN())
	}
	d := c.dict
	if d == nil || d.dense {
		return w.addPlain(c, arr)
	}
	s, ok := arr.(*array.String)
	if !ok {
		return fmt.Errorf("dictionary column of type %s, want string", arr.DataType())
	}
	d.add(s)
	if len(d.data) <= w.dictLimit {
		return nil
	}
	// Too many distinct values for a dictionary in this row group: the
	// column chunk is written PLAIN, what was gathered first.
	dense := d.denseArray(w.mem)
	defer dense.Release()
	d.reset()
	d.dense = true
	return w.addPlain(c, dense)
}

// addPlain appends arr's rows to c's pages, PLAIN-encoded, closing each
// page as it fills.
func (w *Writer) addPlain(c *column, arr arrow.Array) error {
	if len(c.page) < pageReserve {
		c.page = append(c.page[:0], make([]byte, pageReserve)...)
	}
	hasNulls := arr.NullN() > 0
	switch a := arr.(type) {
	case *array.String:
		if c.int64s {
			return fmt.Errorf("strings in an INT64 column")
		}
		n := a.Len()
		if n == 0 {
			return nil // an empty array may have no offsets buffer at all
		}
		offs := a.ValueOffsets()[:n+1] // into the whole data buffer, also for a slice
		var data []byte
		if b := a.Data().Buffers()[2]; b != nil {
			data = b.Bytes()
		}
		var r byteRange // this batch's min and max, aliasing data
		for i := range n {
			if c.markRow(hasNulls && a.IsNull(i)) {
				v := data[offs[i]:offs[i+1]]
				c.page = binary.LittleEndian.AppendUint32(c.page, uint32(len(v)))
				c.page = append(c.page, v...)
				if c.stats {
					r.add(v)
				}
			}
			w.endRow(c)
		}
		if r.set {
			c.mergeBytes(r.lo, r.hi)
		}
	case *array.Timestamp:
		if !c.int64s {
			return fmt.Errorf("timestamps in a BYTE_ARRAY column")
		}
		vals := a.TimestampValues()
		for i, v := range vals {
			if c.markRow(hasNulls && a.IsNull(i)) {
				c.page = binary.LittleEndian.AppendUint64(c.page, uint64(v))
				if c.stats {
					c.mergeInt(int64(v))
				}
			}
			w.endRow(c)
		}
	default:
		return fmt.Errorf("arrays of type %s are not supported", arr.DataType())
	}
	return nil
}

// markRow records whether the open page's next row is null, and reports
// whether it has a value to append.
func (c *column) markRow(null bool) bool {
	if c.nullable && c.rows&7 == 0 {
		c.valid = append(c.valid, 0)
	}
	if null {
		c.nulls++
		return false
	}
	if c.nullable {
		c.valid[c.rows>>3] |= 1 << (c.rows & 7)
	}
	return true
}

// endRow counts the row markRow began and closes the page once it is full.
func (w *Writer) endRow(c *column) {
	c.rows++
	if len(c.page)-pageReserve >= DataPageBytes || c.rows >= maxPageRows {
		w.flushPage(c)
	}
}

// byteRange is the least and greatest of the values added to it.
type byteRange struct {
	lo, hi []byte
	set    bool
}

func (r *byteRange) add(v []byte) {
	switch {
	case !r.set:
		r.lo, r.hi, r.set = v, v, true
	case bytes.Compare(v, r.lo) < 0:
		r.lo = v
	case bytes.Compare(v, r.hi) > 0:
		r.hi = v
	}
}

func (c *column) mergeBytes(lo, hi []byte) {
	if !c.hasMinMax {
		c.minB, c.maxB, c.hasMinMax = append(c.minB[:0], lo...), append(c.maxB[:0], hi...), true
		return
	}
	if bytes.Compare(lo, c.minB) < 0 {
		c.minB = append(c.minB[:0], lo...)
	}
	if bytes.Compare(hi, c.maxB) > 0 {
		c.maxB = append(c.maxB[:0], hi...)
	}
}

func (c *column) mergeInt(v int64) {
	if !c.hasMinMax {
		c.minI, c.maxI, c.hasMinMax = v, v, true
		return
	}
	c.minI, c.maxI = min(c.minI, v), max(c.maxI, v)
}

// flushPage closes c's open data page, if it has rows.
func (w *Writer) flushPage(c *column) {
	if c.rows == 0 {
		return
	}
	start := pageReserve
	if c.nullable {
		c.levels = appendDefLevels(c.levels[:0], c.valid, c.rows, c.nulls)
		start -= len(c.levels)
		copy(c.page[start:], c.levels)
	}
	w.addPage(c, pageTypeData, c.page[start:], c.rows, encPlain)
	c.values += int64(c.rows)
	c.chunkNulls += int64(c.nulls)
	c.page = c.page[:pageReserve]
	c.valid = c.valid[:0]
	c.rows, c.nulls = 0, 0
}

// addPage compresses a page and appends it, after its header, to c's
// column chunk.
func (w *Writer) addPage(c *column, pageType int32, body []byte, numValues int, encoding int32) {
	data := body
	if w.codec != nil {
		bound := int(w.codec.CompressBound(int64(len(body))))
		c.out = slices.Grow(c.out[:0], bound)
		data = w.codec.EncodeLevel(c.out[:bound], body, w.level)
		if cap(data) > cap(c.out) {
			c.out = data[:0]
		}
	}
	n := len(c.chunk)
	c.chunk = appendPageHeader(c.chunk, pageType, len(body), len(data), numValues, encoding)
	c.uncompressed += int64(len(c.chunk) - n + len(body))
	c.chunk = append(c.chunk, data...)
	if pageType == pageTypeData {
		c.dataPages++
	}
}

// finishDict writes a gathered dictionary column's chunk: the dictionary
// page, then data pages of its rows' indexes.
func (w *Writer) finishDict(c *column) {
	d := c.dict
	if d.rows == 0 {
		return
	}
	n := len(d.offsets) - 1
	body := c.page[:0]
	var r byteRange // every dictionary value is some row's: the statistics are theirs
	for k := range n {
		v := d.data[d.offsets[k]:d.offsets[k+1]]
		body = binary.LittleEndian.AppendUint32(body, uint32(len(v)))
		body = append(body, v...)
		if c.stats {
			r.add(v)
		}
	}
	if c.stats && r.set {
		c.mergeBytes(r.lo, r.hi)
	}
	c.page = body[:0]
	w.addPage(c, pageTypeDictionary, body, n, encPlain)
	c.dictBytes = len(c.chunk)

	width := dictBitWidth(n)
	perPage := min(maxPageRows, DataPageBytes*8/width) &^ 7
	for r0 := 0; r0 < d.rows; r0 += perPage {
		r1 := min(d.rows, r0+perPage)
		rows, nulls := r1-r0, 0
		body := c.page[:0]
		idx := d.idx[r0:r1]
		if c.nullable {
			c.valid = append(c.valid[:0], d.valid[r0/8:(r1+7)/8]...)
			if rows%8 != 0 {
				c.valid[len(c.valid)-1] &= 1<<(rows%8) - 1
			}
			set := 0
			for _, b := range c.valid {
				set += bits.OnesCount8(b)
			}
			nulls = rows - set
			body = appendDefLevels(body, c.valid, rows, nulls)
			if nulls > 0 { // only the rows with a value have an index
				c.idx = c.idx[:0]
				for i, k := range idx {
					if c.valid[i>>3]&(1<<(i&7)) != 0 {
						c.idx = append(c.idx, k)
					}
				}
				idx = c.idx
			}
		}
		body = appendIndexes(body, idx, width)
		c.page = body[:0]
		w.addPage(c, pageTypeData, body, rows, encRLEDictionary)
		c.values += int64(rows)
		c.chunkNulls += int64(nulls)
	}
	c.valid = c.valid[:0]
}

// closeRowGroup finishes the current row group: the gathered dictionary
// columns are encoded and the last pages of the others compressed, in
// parallel; then the column chunks are written in column order, each
// with its metadata.
func (w *Writer) closeRowGroup() error {
	if !w.rgOpen {
		return nil
	}
	w.rgOpen = false
	err := w.parallel(w.order, func(col int) error {
		c := w.cols[col]
		if c.dict != nil && !c.dict.dense {
			w.finishDict(c)
		} else {
			w.flushPage(c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rg := w.meta.AppendRowGroup()
	rg.SetNumRows(int(w.rgRows))
	for _, c := range w.cols {
		if err := w.writeChunk(rg.NextColumnChunk(), c); err != nil {
			return fmt.Errorf("column %s: %w", c.path, err)
		}
		if c.dict != nil {
			c.dict.reset()
		}
	}
	if err := rg.Finish(0, int16(w.rowGroups)); err != nil {
		return err
	}
	w.rowGroups++
	return nil
}

// writeChunk writes c's column chunk to the file and records it in the
// row group's metadata; c is then empty for the next row group.
func (w *Writer) writeChunk(cb *metadata.ColumnChunkMetaDataBuilder, c *column) error {
	off := w.out.n
	if _, err := w.out.Write(c.chunk); err != nil {
		return err
	}
	info := metadata.ChunkMetaInfo{
		NumValues:        c.values,
		IndexPageOffset:  -1,
		DataPageOffset:   off,
		CompressedSize:   int64(len(c.chunk)),
		UncompressedSize: c.uncompressed,
	}
	hasDict := c.dictBytes > 0
	enc := metadata.EncodingStats{DataEncodingStats: map[parquet.Encoding]int32{}}
	if hasDict {
		info.DictPageOffset = off
		info.DataPageOffset = off + int64(c.dictBytes)
		enc.DictEncodingStats = map[parquet.Encoding]int32{parquet.Encodings.Plain: 1}
		enc.DataEncodingStats[parquet.Encodings.RLEDict] = c.dataPages
	} else {
		enc.DataEncodingStats[parquet.Encodings.Plain] = c.dataPages
	}
	if c.stats && c.values > 0 {
		st, err := w.statistics(c)
		if err != nil {
			return err
		}
		if st.IsSet() {
			cb.SetStats(st)
		}
	}
	if err := cb.Finish(info, hasDict, false, enc); err != nil {
		return err
	}
	c.chunk, c.dictBytes, c.uncompressed, c.dataPages = c.chunk[:0], 0, 0, 0
	c.values, c.chunkNulls, c.hasMinMax = 0, 0, false
	return nil
}

// statistics encodes c's column chunk statistics the way arrow-go's column
// writers do: min, max (truncated to the configured size) and null count.
func (w *Writer) statistics(c *column) (metadata.EncodedStatistics, error) {
	st := metadata.NewStatistics(c.descr, w.mem)
	st.IncNulls(c.chunkNulls)
	st.IncNumValues(c.values - c.chunkNulls)
	if c.hasMinMax {
		switch s := st.(type) {
		case *metadata.ByteArrayStatistics:
			s.SetMinMax(c.minB, c.maxB)
		case *metadata.Int64Statistics:
			s.SetMinMax(c.minI, c.maxI)
		default:
			return metadata.EncodedStatistics{}, fmt.Errorf("statistics of type %T", st)
		}
	}
	enc, err := st.Encode()
	if err != nil {
		return enc, err
	}
	enc.ApplyStatSizeLimits(int(w.props.MaxStatsSizeFor(c.path)))
	enc.Signed = c.descr.SortOrder() == schema.SortSIGNED
	return enc, nil
}
