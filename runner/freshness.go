package runner

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
)

var (
	lagDesc = prometheus.NewDesc("vaultsink_checkpoint_lag_seconds",
		"Now minus the org's checkpoint: how far behind the mirror is.", []string{"org"}, nil)
	quietDesc = prometheus.NewDesc("vaultsink_checkpoint_quiet_seconds",
		"How long before the org's checkpoint its last window with events ended: a long quiet spell can also be a token that fails closed.", []string{"org"}, nil)
	lastSuccessDesc = prometheus.NewDesc("vaultsink_checkpoint_last_success_timestamp_seconds",
		"Unix time of the org's last run without error.", []string{"org"}, nil)
)

// freshness is the one place that knows each org's checkpoint as this
// process last read or wrote it, and it reports the org's lag, quiet spell
// and last success from it when scraped. A gauge set by the runs would
// stand still between them: an hourly daemon's lag would read the same for
// an hour, and an org that has not run since the process started would
// have no series at all.
type freshness struct {
	now func() time.Time

	mu   sync.Mutex
	orgs map[string]*orgFreshness
}

// orgFreshness is one org's last known checkpoint.
type orgFreshness struct {
	end         time.Time // the checkpoint's end; the configured start when it has none
	lastData    time.Time // end of the last window with events; zero: none recorded
	lastSuccess time.Time
}

func newFreshness(now func() time.Time) *freshness {
	return &freshness{now: now, orgs: map[string]*orgFreshness{}}
}

// seen records cp, the org's checkpoint as just read or written.
func (f *freshness) seen(spec OrgSpec, cp checkpoint.Checkpoint) {
	o := orgFreshness{end: cp.End, lastSuccess: cp.LastSuccess}
	if o.end.IsZero() {
		o.end = spec.Start
	}
	if cp.LastData != nil && !cp.End.IsZero() {
		o.lastData = cp.LastData.End
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgs[spec.Org.ID] = &o
}

// end is the org's checkpoint end as last known (see seen).
func (f *freshness) end(org string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.orgs[org]; o != nil {
		return o.end
	}
	return time.Time{}
}

// Describe implements prometheus.Collector.
func (f *freshness) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- quietDesc
	ch <- lastSuccessDesc
}

// Collect implements prometheus.Collector: the lag is computed now, on
// this host's clock, from the last known checkpoint; no store request.
func (f *freshness) Collect(ch chan<- prometheus.Metric) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for org, o := range f.orgs {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, now.Sub(o.end).Seconds(), org)
		if !o.lastData.IsZero() {
			ch <- prometheus.MustNewConstMetric(quietDesc, prometheus.GaugeValue, max(0, o.end.Sub(o.lastData).Seconds()), org)
		}
		if !o.lastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(o.lastSuccess.Unix()), org)
		}
	}
}

// readCheckpoints reads every org's checkpoint once, Concurrency at a
// time, before the daemon's first pass: the lag of every org is known from
// the start, also of orgs the first pass reaches only after others caught
// up. An org with nothing due is remembered idle, so the first pass does
// not read it again; an org whose checkpoint cannot be read or is refused
// is left to the first pass, which reads it again and reports the error.
func (e *Engine) readCheckpoints(stop, work context.Context) {
	specs := make(chan OrgSpec)
	var wg sync.WaitGroup
	for range min(e.o.Concurrency, len(e.o.Orgs)) {
		wg.Go(func() {
			for spec := range specs {
				_, _, _ = e.look(work, spec, e.apiNow(work, spec), false, e.log.With("org", spec.Org.ID))
			}
		})
	}
	defer wg.Wait()
	defer close(specs)
	for _, spec := range e.o.Orgs {
		select {
		case specs <- spec:
		case <-stop.Done():
			return
		}
	}
}
