package event

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkIDSetMemory measures the dedup set's heap cost per event_id for
// windows of about a million events (reported as B/id; it depends on where
// the hash table is in its growth).
func BenchmarkIDSetMemory(b *testing.B) {
	for _, n := range []int{700_000, 1_000_000, 1 << 20} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				s := NewIDSet()
				var buf []byte
				for i := range n {
					buf = fmt.Appendf(buf[:0], "evt_%d", i)
					s.AddDigest(DigestOf(buf))
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n), "B/id")
				runtime.KeepAlive(s)
			}
		})
	}
}
