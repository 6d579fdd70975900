package runner

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/internal/metrics"
	"github.com/vaultsink/vaultsink/internal/pipeclock"
)

// Metrics are the run loop's collectors.
type Metrics struct {
	Windows        *prometheus.CounterVec   // org, result
	WindowDuration *prometheus.HistogramVec // org
	EventsWritten  *prometheus.CounterVec   // org
	BytesWritten   *prometheus.CounterVec   // org
	Quarantined    *prometheus.CounterVec   // org
	Errors         *prometheus.CounterVec   // org, stage
	Running        prometheus.Gauge
	Vanished       *prometheus.CounterVec // org
	Changed        *prometheus.CounterVec // org
	Suspect        *prometheus.CounterVec // org, reason
	ClockOffset    prometheus.Gauge
	LeaseLost      *prometheus.CounterVec // org

	// fresh reports the checkpoint gauges (lag, quiet spell, last
	// success) of every org at scrape time.
	fresh *freshness
}

// newMetrics builds the collectors on reg; now is the clock the lag is
// computed with at scrape time. The counters alerts watch for a single
// increment start at zero for every org: a series that appears with the
// value 1 shows Prometheus no increase.
func newMetrics(reg prometheus.Registerer, now func() time.Time, orgs []OrgSpec) *Metrics {
	m := &Metrics{
		fresh: newFreshness(now),
		Windows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_windows_total", Help: "Windows processed, by result (committed: new events written; unchanged: nothing new; empty: nothing held; failed; aborted).",
		}, []string{"org", "result"}),
		WindowDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vaultsink_run_window_duration_seconds", Help: "Time to fetch, encode and commit one window.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}, []string{"org"}),
		EventsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_events_written_total", Help: "Events added to the sink (a re-pulled window counts only what it added).",
		}, []string{"org"}),
		BytesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_bytes_written_total", Help: "Bytes of data committed to the sink.",
		}, []string{"org"}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_quarantined_total", Help: "Records written to quarantine.",
		}, []string{"org"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_errors_total", Help: "Failed org runs, by stage (auth, token, source, sink, checkpoint, lease).",
		}, []string{"org", "stage"}),
		Running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vaultsink_run_orgs_running", Help: "Org runs in progress.",
		}),
		Vanished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_vanished_events_total", Help: "Events the sink holds that a re-pull of their window no longer returned (they are kept).",
		}, []string{"org"}),
		Changed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_changed_events_total", Help: "Events that came back with other content than the sink holds (the archived copy is kept).",
		}, []string{"org"}),
		Suspect: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_suspect_windows_total", Help: "Windows held back because the API answered, but not with the org's events: reason foreign (another org's records) or empty (no events while the API no longer serves a window that had some).",
		}, []string{"org", "reason"}),
		LeaseLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_lease_lost_total", Help: "Org runs stopped because another process took the org's lease (a stale writer fenced out).",
		}, []string{"org"}),
		ClockOffset: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vaultsink_source_clock_offset_seconds", Help: "The API's clock minus this host's, from the Date headers of its answers.",
		}),
	}
	if reg == nil {
		return m
	}
	m.Windows = metrics.Register(reg, m.Windows)
	m.WindowDuration = metrics.Register(reg, m.WindowDuration)
	m.EventsWritten = metrics.Register(reg, m.EventsWritten)
	m.BytesWritten = metrics.Register(reg, m.BytesWritten)
	m.Quarantined = metrics.Register(reg, m.Quarantined)
	m.Errors = metrics.Register(reg, m.Errors)
	m.Running = metrics.Register(reg, m.Running)
	m.Vanished = metrics.Register(reg, m.Vanished)
	m.Changed = metrics.Register(reg, m.Changed)
	m.Suspect = metrics.Register(reg, m.Suspect)
	m.ClockOffset = metrics.Register(reg, m.ClockOffset)
	m.LeaseLost = metrics.Register(reg, m.LeaseLost)
	m.fresh = metrics.Register(reg, m.fresh)
	metrics.Register(reg, pipeclock.Collector)
	for _, spec := range orgs {
		m.LeaseLost.WithLabelValues(spec.Org.ID)
		m.Suspect.WithLabelValues(spec.Org.ID, "foreign")
		m.Suspect.WithLabelValues(spec.Org.ID, "empty")
	}
	return m
}
