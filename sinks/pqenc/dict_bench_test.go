package pqenc

import (
	"testing"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

// BenchmarkDictAdd gathers the seven dictionary columns of one 32k-row
// group (32 synthetic 1,000-row batches) per op; ns/value is per row and
// column.
//
//	go test -run '^$' -bench BenchmarkDictAdd -cpu 1 ./sinks/pqenc/
func BenchmarkDictAdd(b *testing.B) {
	const batches, rows = 32, 1000
	var cols [][]*array.String
	for _, name := range event.DictionaryColumns {
		idx := event.Schema.FieldIndices(name)[0]
		var col []*array.String
		for i := range batches {
			rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(testWindow, sinktest.IDs("evt_01JZ3Q8K7M2N4P6R", i*rows, rows)))
			col = append(col, rec.Column(idx).(*array.String))
		}
		cols = append(cols, col)
	}
	ds := make([]*dictColumn, len(cols))
	for i := range ds {
		ds[i] = newDictColumn()
	}
	for b.Loop() {
		for c, col := range cols {
			d := ds[c]
			d.reset()
			for _, arr := range col {
				d.add(arr)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batches*rows*len(cols)), "ns/value")
}
