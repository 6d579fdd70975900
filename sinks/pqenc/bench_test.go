package pqenc

import (
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

// BenchmarkEncode measures the encoder alone on one file of benchRows
// synthetic ~420-byte events, fed in 1,000-row batches as the source
// produces them. Run it on one core:
//
//	go test -run '^$' -bench BenchmarkEncode -cpu 1 -benchtime 3x ./sinks/pqenc/
//
// Reported: events/s, MB/s of API JSON in, bytes/event out, and peak-heap-MB,
// the highest live+garbage heap seen while encoding, above the heap held by
// the prebuilt input batches (it includes garbage not yet collected, which is
// what drives RSS).
//
// Synthetic events compress better than real ones, so compare bytes/event
// between codecs and row-group sizes, not with production files. The
// table behind the defaults (zstd level 1, 32k-row groups) is in
// bench/DECISIONS.md.
func BenchmarkEncode(b *testing.B) {
	const (
		batchRows  = 1000
		distinct   = 32 // distinct prebuilt batches, cycled: 32k different events
		benchRows  = 256 * 1024
		numBatches = benchRows / batchRows
	)
	batches := make([]arrow.RecordBatch, distinct)
	var jsonPerBatch int64
	for i := range batches {
		evs := sinktest.Events(testWindow, sinktest.IDs("evt_01JZ3Q8K7M2N4P6R", i*batchRows, batchRows))
		jsonPerBatch += sinktest.JSONBytes(evs)
		batches[i] = sinktest.Batch(memory.DefaultAllocator, evs)
	}
	defer func() {
		for _, r := range batches {
			r.Release()
		}
	}()
	jsonPerBatch /= distinct

	codecs := []struct {
		name string
		opts Options
	}{
		{"zstd-default", Options{Compression: "zstd", CompressionLevel: 3}},
		{"zstd-1", Options{Compression: "zstd", CompressionLevel: 1}},
		{"snappy", Options{Compression: "snappy"}},
	}
	for _, c := range codecs {
		for _, rg := range []int{16 << 10, 32 << 10, 64 << 10, 128 << 10} {
			opts := c.opts
			opts.RowGroupRows = rg
			b.Run(fmt.Sprintf("codec=%s/rg=%dk", c.name, rg>>10), func(b *testing.B) {
				b.SetBytes(jsonPerBatch * numBatches)
				runtime.GC()
				base := heapBytes()
				peak := startPeakSampler()
				var out int64
				b.ResetTimer()
				for b.Loop() {
					cw := &countingWriter{w: io.Discard}
					w, err := newWriter(cw, Meta{Window: testWindow, Version: "bench"}, opts, memory.DefaultAllocator)
					if err != nil {
						b.Fatal(err)
					}
					for i := 0; i < numBatches; i++ {
						if err := w.Write(batches[i%distinct]); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
					out = cw.n
				}
				b.StopTimer()
				max := peak()
				b.ReportMetric(float64(numBatches*batchRows)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(out)/float64(numBatches*batchRows), "bytes/event")
				b.ReportMetric(float64(max-base)/(1<<20), "peak-heap-MB")
			})
		}
	}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// startPeakSampler samples the heap every millisecond until the returned
// function is called, which returns the highest value seen.
func startPeakSampler() func() uint64 {
	var max atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heapBytes(); h > max.Load() {
				max.Store(h)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		wg.Wait()
		return max.Load()
	}
}
