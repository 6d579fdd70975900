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
// what drives RSS), and peak-alloc-MB, the most bytes the encoder held at once
// through its Arrow allocator (the buffered row group and its pages).
//
// Measured here (2 shared cores under load, 256k events/file, 3 runs each,
// noise ±15%). Synthetic events compress better than real ones (perf-notes:
// ~71-75 B/event with zstd), so compare bytes/event between rows, not to prod.
//
//	codec        rows  MB/s in  events/s  bytes/event  peak-heap-MB
//	zstd-default  16k      192   389k      26.3          92
//	zstd-default  32k      177   358k      25.7         110
//	zstd-default  64k      220   445k      22.7         117
//	zstd-default 128k      183   371k      21.3         128
//	zstd-1        16k      187   378k      28.8          74
//	zstd-1        32k      235   476k      28.1          83
//	zstd-1        64k      226   457k      24.6         108
//	zstd-1       128k      192   389k      23.1         111
//	snappy        16k      255   516k      49.9          67
//	snappy        32k      243   492k      49.6          73
//	snappy        64k      259   523k      46.2          90
//	snappy       128k      218   440k      44.5         114
//
// Chosen: zstd level 1 (near snappy's speed at ~55% of its bytes) and 32k-row
// groups (lowest heap of the zstd runs that is not slower; ~25 MiB below 64k).
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
				mem := &peakAllocator{Allocator: memory.NewGoAllocator()}
				b.ResetTimer()
				for b.Loop() {
					cw := &countingWriter{w: io.Discard}
					w, err := newWriter(cw, Meta{Window: testWindow, Version: "bench"}, opts, mem)
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
				b.ReportMetric(float64(mem.peak.Load())/(1<<20), "peak-alloc-MB")
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

// peakAllocator records the largest number of bytes outstanding at once.
type peakAllocator struct {
	memory.Allocator
	cur, peak atomic.Int64
}

func (a *peakAllocator) add(n int) {
	c := a.cur.Add(int64(n))
	for {
		p := a.peak.Load()
		if c <= p || a.peak.CompareAndSwap(p, c) {
			return
		}
	}
}

func (a *peakAllocator) Allocate(size int) []byte {
	a.add(size)
	return a.Allocator.Allocate(size)
}

func (a *peakAllocator) Reallocate(size int, b []byte) []byte {
	a.add(size - len(b))
	return a.Allocator.Reallocate(size, b)
}

func (a *peakAllocator) Free(b []byte) {
	a.add(-len(b))
	a.Allocator.Free(b)
}
