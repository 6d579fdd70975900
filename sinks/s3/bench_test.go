package s3_test

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/internal/s3client"
	s3sink "github.com/vaultsink/vaultsink/sinks/s3"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

// BenchmarkS3Window writes one 2-million-event window to versitygw with the
// default settings (zstd, 8 MiB parts) and reports the object's MB/s, events/s
// and the peak Go heap and process RSS. Batches are built as the source
// builds them, one 1000-event page at a time, outside the timer.
//
//	go test -run '^$' -bench BenchmarkS3Window -benchtime 1x ./sinks/s3/
func BenchmarkS3Window(b *testing.B) {
	const events = 2_000_000
	srv := s3test.Versity(b)
	s := newSink(b, srv, nil)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var peak atomic.Uint64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				if h := heapBytes(); h > peak.Load() {
					peak.Store(h)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		var busy time.Duration
		u, err := s.Open(ctx, window)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for j := 0; j < events; j += 1000 {
			rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(window, sinktest.IDs("bench", j, 1000)))
			b.StartTimer()
			t0 := time.Now()
			err := u.Write(ctx, rec)
			busy += time.Since(t0)
			b.StopTimer()
			rec.Release()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		t0 := time.Now()
		res, err := u.Commit(ctx)
		busy += time.Since(t0)
		close(stop)
		<-done
		if err != nil {
			b.Fatal(err)
		}
		if res.Events != events {
			b.Fatalf("committed %d events, want %d", res.Events, events)
		}
		b.ReportMetric(float64(res.Bytes)/busy.Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(events)/busy.Seconds(), "events/s")
		b.ReportMetric(float64(res.Bytes)/(1<<20), "object-MiB")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		if rss := peakRSS(); rss > 0 {
			b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
		}
		if peak.Load() > 256<<20 {
			b.Fatalf("peak heap %d MiB is above 256 MiB: the window is buffered", peak.Load()>>20)
		}
	}
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakRSS is the process's high-water RSS (VmHWM) on Linux, 0 elsewhere.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// BenchmarkS3Upload measures the multipart writer alone: 256 MiB in 64 KiB
// writes to versitygw, 8 MiB parts, one part in flight while the next fills.
func BenchmarkS3Upload(b *testing.B) {
	srv := s3test.Versity(b)
	client, err := s3client.NewClient(context.Background(), srv.ClientConfig())
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	const total = 256 << 20
	b.SetBytes(total)
	for i := 0; i < b.N; i++ {
		w := s3sink.NewPartWriterForTest(context.Background(), client, srv.Bucket, "bench/upload.bin", s3sink.DefaultPartSize)
		for n := 0; n < total; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Complete(); err != nil {
			b.Fatal(err)
		}
	}
}
