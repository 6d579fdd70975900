// Package pipeclock measures, in wall-clock time, how long the pipeline's
// decode and encode stages were busy and how long both were busy at the
// same moment: the evidence that pages are decoded while earlier ones are
// encoded rather than one after the other.
//
// The clock is process-wide: a stage is busy while any goroutine (any org)
// is inside it. Each Begin/end pair costs a mutex and a clock read; the
// source calls it once per page and the Parquet writer once per batch
// (1,000 events), which is negligible.
package pipeclock

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stage is one stage of the pipeline.
type Stage int

const (
	Decode Stage = iota // JSON page -> Arrow record (source)
	Encode              // Arrow record -> Parquet pages (sinks/pqenc)
	numStages
)

// Totals are the accumulated busy times.
type Totals struct {
	Decode, Encode time.Duration // wall time each stage was busy
	Both           time.Duration // wall time both were busy at once
}

// Sub returns t - u, for the totals of an interval.
func (t Totals) Sub(u Totals) Totals {
	return Totals{Decode: t.Decode - u.Decode, Encode: t.Encode - u.Encode, Both: t.Both - u.Both}
}

// Overlap is the share of the less busy stage's time during which the
// other stage was busy too: 0 when the stages alternate, 1 when the
// shorter one always ran alongside the other.
func (t Totals) Overlap() float64 {
	m := min(t.Decode, t.Encode)
	if m <= 0 {
		return 0
	}
	return float64(t.Both) / float64(m)
}

// Line is the totals as the one-line report `vaultsink sync` prints
// under its summary (`sync --output json` gives the same figures as data).
func (t Totals) Line() string {
	return fmt.Sprintf("pipeline: decode busy %.2fs, encode busy %.2fs, both at once %.2fs (%.0f%% of the shorter)",
		t.Decode.Seconds(), t.Encode.Seconds(), t.Both.Seconds(), 100*t.Overlap())
}

var now = time.Now // tests step it

var clock struct {
	mu     sync.Mutex
	active [numStages]int
	since  time.Time // when the active counts last changed
	t      Totals
}

// advance credits the time since the last change to the stages active
// during it. Called with clock.mu held.
func advance(now time.Time) {
	if d := now.Sub(clock.since); d > 0 && !clock.since.IsZero() {
		if clock.active[Decode] > 0 {
			clock.t.Decode += d
		}
		if clock.active[Encode] > 0 {
			clock.t.Encode += d
		}
		if clock.active[Decode] > 0 && clock.active[Encode] > 0 {
			clock.t.Both += d
		}
	}
	clock.since = now
}

// Begin marks one goroutine entering stage s; call the returned func when
// it leaves.
func Begin(s Stage) (end func()) {
	clock.mu.Lock()
	advance(now())
	clock.active[s]++
	clock.mu.Unlock()
	return func() {
		clock.mu.Lock()
		advance(now())
		clock.active[s]--
		clock.mu.Unlock()
	}
}

// Read returns the totals so far, including the stages still running.
func Read() Totals {
	clock.mu.Lock()
	defer clock.mu.Unlock()
	advance(now())
	return clock.t
}

const (
	busyHelp    = "Wall time the stage was busy (any org): decode is JSON -> Arrow, encode is Arrow -> Parquet including writing the pages out."
	overlapHelp = "Wall time decode and encode were both busy: pipelining at work."
)

var (
	busyDesc    = prometheus.NewDesc("vaultsink_pipeline_busy_seconds_total", busyHelp, []string{"stage"}, nil)
	overlapDesc = prometheus.NewDesc("vaultsink_pipeline_overlap_seconds_total", overlapHelp, nil, nil)
)

type collector struct{}

// Collector exports the totals as Prometheus counters.
var Collector prometheus.Collector = collector{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- busyDesc
	ch <- overlapDesc
}

func (collector) Collect(ch chan<- prometheus.Metric) {
	t := Read()
	ch <- prometheus.MustNewConstMetric(busyDesc, prometheus.CounterValue, t.Decode.Seconds(), "decode")
	ch <- prometheus.MustNewConstMetric(busyDesc, prometheus.CounterValue, t.Encode.Seconds(), "encode")
	ch <- prometheus.MustNewConstMetric(overlapDesc, prometheus.CounterValue, t.Both.Seconds())
}
