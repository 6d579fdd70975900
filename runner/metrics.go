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
	Vanished       *prometheus.CounterVec // org
	Changed        *prometheus.CounterVec // org
	Suspect        *prometheus.CounterVec // org, reason
	Quiet          *prometheus.GaugeVec   // org
	ClockOffset    prometheus.Gauge
	LeaseLost      *prometheus.CounterVec // org
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
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
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vaultsink_checkpoint_lag_seconds", Help: "Now minus the org's checkpoint: how far behind the mirror is.",
		}, []string{"org"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vaultsink_checkpoint_last_success_timestamp_seconds", Help: "Unix time of the org's last run without error.",
		}, []string{"org"}),
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
		Quiet: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vaultsink_checkpoint_quiet_seconds", Help: "How long before the org's checkpoint its last window with events ended: a long quiet spell can also be a token that fails closed.",
		}, []string{"org"}),
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
	m.Lag = metrics.Register(reg, m.Lag)
	m.LastSuccess = metrics.Register(reg, m.LastSuccess)
	m.Running = metrics.Register(reg, m.Running)
	m.Vanished = metrics.Register(reg, m.Vanished)
	m.Changed = metrics.Register(reg, m.Changed)
	m.Suspect = metrics.Register(reg, m.Suspect)
	m.Quiet = metrics.Register(reg, m.Quiet)
	m.ClockOffset = metrics.Register(reg, m.ClockOffset)
	m.LeaseLost = metrics.Register(reg, m.LeaseLost)
	metrics.Register(reg, pipeclock.Collector)
	return m
}
