package pqenc

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/vaultsink/vaultsink/source"
)

// Column-parallel encoding.
//
// A Parquet row group holds each column in its own chunk, and arrow-go's
// buffered row group gives every column its own writer, page buffer and
// encoder, so the columns of a row group can be encoded and compressed at
// the same time. pqarrow's FileWriter writes them one after the other, and
// encoding was the single busiest goroutine of a sync: it bounded the
// throughput while the other core idled (runtime trace of `vaultsink
// sync`). Here each batch's columns can be handed out to up to
// Options.EncodeWorkers goroutines (at most GOMAXPROCS), largest first,
// and the row group's last pages are compressed the same way before the
// row group is closed; closing (writing the chunks to the file, in column
// order) stays sequential. Each goroutine has its
// own pqarrow write context (its scratch buffers), so no state is shared
// but the writer properties, which are read-only.
//
// The file is the same as a sequential write would make: the same pages,
// in the same order, with the same statistics.
//
// It is off by default (DefaultEncodeWorkers). Since it was written,
// encoding got ~2x cheaper and the simulator stopped rendering pages on
// the same cores; a sync now keeps both cores busy with one encoding
// goroutine (fetch and decode run beside it), and a second one only adds
// hand-offs: 3-6% more CPU per event, no faster (interleaved runs,
// 2026-11-26; README, Performance).
// It still pays where cores idle while one big window encodes.

// colSpec is one leaf column of source.Schema in a Writer.
type colSpec struct {
	nullable bool
	weight   int         // rough encoded size, to hand out the biggest first
	dict     *dictColumn // nil unless dictionary-encoded: its rows gathered for the row group (dict.go)
}

// colWorker is one encoding goroutine's private state.
type colWorker struct {
	ctx       context.Context // pqarrow write context (scratch buffers)
	defLevels []int16
}

// Rough bytes per event of each column before compression, measured on
// the simulator's realistic events; unknown columns come last.
var columnWeights = map[string]int{
	"detail": 118, "event_id": 34, "actor": 28, "resource": 27, "title": 21,
	"source_ip": 19, "timestamp": 8, "ingested_at": 8,
}

func columnSpecs(s *arrow.Schema) []colSpec {
	dict := map[string]bool{}
	for _, c := range source.DictionaryColumns {
		dict[c] = true
	}
	specs := make([]colSpec, s.NumFields())
	for i, f := range s.Fields() {
		specs[i] = colSpec{nullable: f.Nullable, weight: columnWeights[f.Name]}
		if dict[f.Name] {
			specs[i].dict = getDictColumn()
		}
	}
	return specs
}

// encodeWorkers is how many goroutines encode one file's columns: the
// configured number, at most one per usable core.
func encodeWorkers(configured int) int {
	return max(1, min(configured, runtime.GOMAXPROCS(0)))
}

func newWorkers(n int, props *pqarrow.ArrowWriterProperties) []colWorker {
	ws := make([]colWorker, n)
	for i := range ws {
		ws[i].ctx = pqarrow.NewArrowWriteContext(context.Background(), props)
	}
	return ws
}

// bySize returns the column indexes, biggest first.
func bySize(cols []colSpec) []int {
	idx := make([]int, len(cols))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cols[b].weight - cols[a].weight })
	return idx
}

// parallel runs fn for each column index in order on up to len(w.workers)
// goroutines (the calling one included, the others as helpers allow) and
// returns the first error.
func (w *Writer) parallel(cols []int, fn func(wk *colWorker, col int) error) error {
	if len(cols) == 0 {
		return nil
	}
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	run := func(wk *colWorker) {
		for {
			i := next.Add(1) - 1
			if i >= int64(len(cols)) {
				return
			}
			if err := fn(wk, cols[i]); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
		}
	}
	n := min(len(w.workers), len(cols))
spawn:
	for k := 1; k < n; k++ {
		select {
		case helpers <- struct{}{}:
		default:
			break spawn // every core is already helping some writer
		}
		wg.Add(1)
		go func(wk *colWorker) {
			defer func() { <-helpers; wg.Done() }()
			run(wk)
		}(&w.workers[k])
	}
	run(&w.workers[0])
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
		err := w.parallel(w.order, func(wk *colWorker, col int) error {
			for _, p := range parts {
				if err := w.addColumn(wk, col, p.Column(col)); err != nil {
					return err
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
			if w.rgw == nil || w.rgRows >= w.maxRGRows {
				if err := flush(); err != nil {
					return err
				}
				if err := w.closeRowGroup(); err != nil {
					return err
				}
				rgw, err := w.wr.AppendBufferedRowGroupChecked()
				if err != nil {
					return err
				}
				w.rgw, w.rgRows = rgw, 0
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

// addColumn hands one column of a batch to the row group: a dictionary
// column is gathered (dict.go), any other is encoded at once.
func (w *Writer) addColumn(wk *colWorker, col int, arr arrow.Array) error {
	d := w.cols[col].dict
	if d == nil || d.dense {
		return w.writeColumn(wk, col, arr)
	}
	s, ok := arr.(*array.String)
	if !ok {
		return fmt.Errorf("column %d: dictionary column of type %s, want string", col, arr.DataType())
	}
	d.add(s)
	if len(d.data) <= w.dictLimit {
		return nil
	}
	// Too many distinct values for a dictionary in this row group: write
	// what was gathered as plain strings; arrow-go takes it from here.
	dense := d.denseArray(w.mem)
	defer dense.Release()
	d.reset()
	d.dense = true
	return w.writeColumn(wk, col, dense)
}

// finishDict writes a dictionary column's gathered rows, if any, as one
// Arrow dictionary array.
func (w *Writer) finishDict(wk *colWorker, col int) error {
	d := w.cols[col].dict
	if d == nil || d.dense || d.rows == 0 {
		return nil
	}
	arr := d.dictArray()
	defer arr.Release()
	return w.writeColumn(wk, col, arr)
}

// writeColumn encodes one column of a batch: a flat schema, so the
// definition level of a row is 1 if it has a value (0 if null) and there
// are no repetition levels.
func (w *Writer) writeColumn(wk *colWorker, col int, arr arrow.Array) error {
	cw, err := w.rgw.Column(col)
	if err != nil {
		return err
	}
	var def []int16
	if w.cols[col].nullable {
		def = slices.Grow(wk.defLevels[:0], arr.Len())[:arr.Len()]
		if arr.NullN() == 0 {
			for i := range def {
				def[i] = 1
			}
		} else {
			for i := range def {
				def[i] = 0
				if arr.IsValid(i) {
					def[i] = 1
				}
			}
		}
		wk.defLevels = def
	}
	if d, ok := arr.(*array.Dictionary); ok && writeGatheredOn {
		done, err := writeGathered(cw, d, def)
		if err != nil {
			return fmt.Errorf("column %d: %w", col, err)
		}
		if done {
			return nil
		}
	}
	if err := pqarrow.WriteArrowToColumn(wk.ctx, cw, arr, def, nil, w.cols[col].nullable); err != nil {
		return fmt.Errorf("column %d: %w", col, err)
	}
	return nil
}

// writeGatheredOn is off only in a test that compares the file with
// pqarrow's own path.
var writeGatheredOn = true

// dictEncoder is the part of arrow-go's dictionary encoders (an internal
// type, reached through the column writer) that writeGathered uses.
type dictEncoder interface {
	PutDictionary(arrow.Array) error
	NumEntries() int
	PreservedDictionary() arrow.Array
}

// writeGathered writes a row group's gathered dictionary column the way
// pqarrow does for a dictionary array (seed the Parquet dictionary, count
// the statistics, write the indexes) but without the hash pass pqarrow
// makes over every index to find the dictionary values in use: here all
// of them are, since dictColumn adds a value only for a row that has it.
// That pass was ~3% of a sync's CPU. It reports false, having written
// nothing, where pqarrow must do the work (the column is no longer
// dictionary-encoded, or already has a dictionary); the statistics and
// the file are the same either way (TestDictionaryStatistics,
// TestParallelColumnsSameFile).
func writeGathered(cw file.ColumnChunkWriter, arr *array.Dictionary, def []int16) (bool, error) {
	enc, ok := cw.CurrentEncoder().(dictEncoder)
	if e := cw.CurrentEncoder().Encoding(); !ok || (e != parquet.Encodings.RLEDict && e != parquet.Encodings.PlainDict) || enc.PreservedDictionary() != nil {
		return false, nil
	}
	dict := arr.Dictionary() // PutDictionary retains it as the preserved dictionary
	if err := enc.PutDictionary(dict); err != nil {
		return false, err
	}
	if enc.NumEntries() != dict.Len() { // a value twice: cannot happen here; pqarrow's fallback
		cw.FallbackToPlain()
		return false, nil
	}
	if ps := cw.PageStatistics(); ps != nil {
		idx := arr.Indices()
		nonNull := idx.Len() - idx.NullN()
		ps.IncNulls(int64(max(len(def)-nonNull, 0)))
		ps.IncNumValues(int64(nonNull))
		if err := ps.UpdateFromArrow(dict, false); err != nil {
			return false, err
		}
	}
	return true, cw.WriteDictIndices(arr.Indices(), def, nil)
}

// pageFlusher is implemented by arrow-go's column chunk writers (promoted
// from their common base): compress and buffer the pages still open.
type pageFlusher interface {
	FlushBufferedDataPages() error
}

// closeRowGroup finishes the current row group: the gathered dictionary
// columns are encoded and the last pages of the plain-encoded columns
// compressed, in parallel; then the row group is closed in column order
// (dictionary pages, chunk metadata, the bytes written to the file).
func (w *Writer) closeRowGroup() error {
	if w.rgw == nil {
		return nil
	}
	rgw := w.rgw
	err := w.parallel(w.order, func(wk *colWorker, col int) error {
		if w.cols[col].dict != nil {
			// Its data pages must follow its dictionary page, which
			// Close writes: only the gathered rows are encoded here.
			return w.finishDict(wk, col)
		}
		cw, err := rgw.Column(col)
		if err != nil {
			return err
		}
		if f, ok := cw.(pageFlusher); ok {
			return f.FlushBufferedDataPages()
		}
		return nil // flushed by Close instead
	})
	w.rgw = nil
	if err == nil {
		err = rgw.Close()
	}
	// Only now: the dictionary arrays written above alias the gathered
	// buffers, and the column writers hold them until they close.
	for _, c := range w.cols {
		if c.dict != nil {
			c.dict.reset()
		}
	}
	return err
}
