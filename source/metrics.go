package source

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/internal/metrics"
)

// Metrics are the source's Prometheus collectors.
type Metrics struct {
	Pages       *prometheus.CounterVec
	Events      *prometheus.CounterVec
	Bytes       *prometheus.CounterVec
	Quarantined *prometheus.CounterVec
	Duplicates  *prometheus.CounterVec
	Retries     *prometheus.CounterVec
	Requests    *prometheus.HistogramVec
	Prefetch    *prometheus.CounterVec
}

// NewMetrics registers the source metrics on reg (nil: not registered).
// Registering on a registry that already has them reuses the existing ones.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_source_pages_total", Help: "Pages fetched from the Events API.",
		}, []string{"org"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_source_events_total", Help: "Events decoded into rows (after dedup).",
		}, []string{"org"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_source_bytes_total", Help: "Response body bytes read from the Events API.",
		}, []string{"org"}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_source_quarantined_total", Help: "Records that could not be mapped and went to quarantine.",
		}, []string{"org"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_source_duplicates_total", Help: "Records skipped because their event_id was already seen in the window.",
		}, []string{"org"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_source_retries_total", Help: "Page requests retried, by reason (429, 5xx, network, malformed).",
		}, []string{"org", "reason"}),
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vaultsink_source_request_duration_seconds", Help: "Events API request latency, body included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"org", "code"}),
		Prefetch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_source_prefetch_total", Help: "Pages read ahead while the previous page decoded, by outcome: used, or discarded (the guessed next URL was wrong).",
		}, []string{"org", "outcome"}),
	}
	if reg == nil {
		return m
	}
	m.Pages = metrics.Register(reg, m.Pages)
	m.Events = metrics.Register(reg, m.Events)
	m.Bytes = metrics.Register(reg, m.Bytes)
	m.Quarantined = metrics.Register(reg, m.Quarantined)
	m.Duplicates = metrics.Register(reg, m.Duplicates)
	m.Retries = metrics.Register(reg, m.Retries)
	m.Requests = metrics.Register(reg, m.Requests)
	m.Prefetch = metrics.Register(reg, m.Prefetch)
	return m
}
