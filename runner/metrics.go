package runner

import (
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
	Lag            *prometheus.GaugeVec     // org
	LastSuccess    *prometheus.GaugeVec     // org
	Running        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Windows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_windows_total", Help: "Windows processed, by result (committed, empty, failed, aborted).",
		}, []string{"org", "result"}),
		WindowDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vaultsink_run_window_duration_seconds", Help: "Time to fetch, encode and commit one window.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}, []string{"org"}),
		EventsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_events_written_total", Help: "Events committed to the sink (a re-pulled window counts again).",
		}, []string{"org"}),
		BytesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_bytes_written_total", Help: "Bytes of data committed to the sink.",
		}, []string{"org"}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_quarantined_total", Help: "Records written to quarantine.",
		}, []string{"org"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_run_errors_total", Help: "Failed org runs, by stage (auth, source, sink, checkpoint, lease).",
		}, []string{"org", "stage"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vaultsink_checkpoint_lag_seconds", Help: "Now minus the org's checkpoint: how far behind the mirror is.",
		}, []string{"org"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vaultsink_checkpoint_last_success_timestamp_seconds", Help: "Unix time of the org's last run without error.",
		}, []string{"org"}),
		Running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vaultsink_run_orgs_running", Help: "Org runs in progress.",
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
	m.Lag = metrics.Register(reg, m.Lag)
	m.LastSuccess = metrics.Register(reg, m.LastSuccess)
	m.Running = metrics.Register(reg, m.Running)
	metrics.Register(reg, pipeclock.Collector)
	return m
}
