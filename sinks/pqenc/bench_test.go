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
// Measured here (2 shared cores, 256k events/file, 2 runs each, noise
// ±15%; 2026-11-26, pages built by pages.go). Synthetic events compress
// better than real ones (perf-notes: ~71-75 B/event with zstd), so compare
// bytes/event between rows, not to prod.
//
//	codec        rows  MB/s in  events/s  bytes/event  peak-heap-MB
//	zstd-default  16k      597   1.21M     23.3          41
//	zstd-default  32k      581   1.17M     22.4          13
//	zstd-default  64k      638   1.29M     19.8          20
//	zstd-default 128k      629   1.27M     19.3          29
//	zstd-1        16k      691   1.40M     26.8          13
//	zstd-1        32k      687   1.39M     25.3           6
//	zstd-1        64k      786   1.59M     22.6           9
//	zstd-1       128k      812   1.64M     22.1          12
//	snappy        16k      805   1.63M     43.4          52
//	snappy        32k      912   1.84M     41.9          17
//	snappy        64k      950   1.92M     38.7          17
//	snappy       128k      934   1.89M     37.8          33
//
// Chosen: zstd level 1 (~75% of snappy's speed at ~60% of its bytes) and
// 32k-row groups. Larger groups encode faster here, but a group's pages
// are held until it closes: in `vaultsink sync` 64k-row groups cost ~6 MiB
// more peak RSS for no measurable CPU (README, Performance), and the
// daemon has to fit several orgs' row groups in 128 MiB.
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
