package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/config"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// freshnessEnv is three orgs on a fake clock, half an hour past base:
// org_1's checkpoint is two windows behind (due), org_2's is current (it
// does not run) and records its last window with events and last success,
// org_3 has no checkpoint and starts at base (it does not run either).
type freshnessEnv struct {
	base     time.Time
	clock    atomic.Int64
	reg      *prometheus.Registry
	engine   *Engine
	held     chan struct{} // closed when the API holds its first GET
	release  func()        // lets the API answer
	lastGood time.Time     // org_2's recorded last success
}

func (f *freshnessEnv) now() time.Time          { return time.Unix(0, f.clock.Load()).UTC() }
func (f *freshnessEnv) advance(d time.Duration) { f.clock.Add(int64(d)) }

// newFreshnessEnv builds the orgs' engine with concurrency workers. The
// fake clock runs near the real one: the daemon's timer waits for the
// next tick by the real clock.
func newFreshnessEnv(t *testing.T, concurrency int) *freshnessEnv {
	t.Helper()
	f := &freshnessEnv{base: time.Now().UTC().Truncate(time.Hour), held: make(chan struct{}), reg: prometheus.NewRegistry()}
	f.clock.Store(f.base.Add(30 * time.Minute).UnixNano())
	f.lastGood = f.base.Add(6 * time.Minute)
	sim, err := vaultsim.New(vaultsim.Config{Seed: 21, Orgs: 3, From: f.base.Add(-4 * time.Hour), To: f.base.Add(2 * time.Hour), Rate: 20, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var held, released sync.Once
	f.release = func() { released.Do(func() { close(release) }) }
	// No Date headers: windows are judged by the fake clock. The clock
	// probe is a HEAD; every GET is a window's page, held until released.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			held.Do(func() { close(f.held) })
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		sim.Handler().ServeHTTP(noDate{w}, r)
	}))
	t.Cleanup(api.Close)
	t.Cleanup(f.release) // before api.Close, which waits for the held requests
	cfg := source.Config{BaseURL: api.URL + "/api", PageSize: 100}
	cfg.SetDefaults()
	client, sink, store := testParts(t, cfg, nil, f.reg)

	ctx := context.Background()
	for _, cp := range []checkpoint.Checkpoint{
		{Org: "org_1", End: f.base.Add(-2 * time.Hour)},
		{Org: "org_2", End: f.base, LastData: &checkpoint.Range{Start: f.base.Add(-4 * time.Hour), End: f.base.Add(-3 * time.Hour)}, LastSuccess: f.lastGood},
	} {
		if _, err := store.Put(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	var specs []OrgSpec
	for _, c := range sim.Creds() {
		start := f.base.Add(-4 * time.Hour)
		if c.OrgID == "org_3" {
			start = f.base
		}
		specs = append(specs, OrgSpec{Resolved: config.Resolved{Org: source.Org{ID: c.OrgID, Credential: source.Credential{Token: secret.New(c.Token)}}, Start: start, Window: time.Hour}, Sink: sink})
	}
	f.engine = New(Options{Source: client, Store: store, Orgs: specs, Settle: 5 * time.Minute, Concurrency: concurrency,
		Owner: OwnerID("freshness"), Registerer: f.reg, Now: f.now})
	return f
}

// gauges scrapes the registry: metric name -> org -> value.
func (f *freshnessEnv) gauges(t *testing.T) map[string]map[string]float64 {
	t.Helper()
	fams, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "org" && m.GetGauge() != nil {
					if out[fam.GetName()] == nil {
						out[fam.GetName()] = map[string]float64{}
					}
					out[fam.GetName()][l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// checkGauge compares one org's gauge with want.
func checkGauge(t *testing.T, g map[string]map[string]float64, name, org string, want float64) {
	t.Helper()
	got, ok := g[name][org]
	switch {
	case !ok:
		t.Errorf("%s{org=%q}: no series", name, org)
	case got != want:
		t.Errorf("%s{org=%q} = %v, want %v", name, org, got, want)
	}
}

// TestLagGrowsWhileIdle: an org that does not run keeps the lag of its
// checkpoint, computed at each scrape: two scrapes ten minutes apart
// differ by ten minutes. The gauge used to be set when a pass looked at
// the org, and stood still until the next pass.
func TestLagGrowsWhileIdle(t *testing.T) {
	f := newFreshnessEnv(t, 3)
	f.release() // org_1 runs to the end
	ctx := context.Background()
	if sum := f.engine.Sync(ctx, ctx); !sum.OK() {
		t.Fatalf("sync: %s", sum)
	}
	first := f.gauges(t)
	f.advance(10 * time.Minute)
	second := f.gauges(t)
	const lag = "vaultsink_checkpoint_lag_seconds"
	for _, org := range []string{"org_1", "org_2", "org_3"} {
		before, ok := first[lag][org]
		if !ok {
			t.Errorf("%s: no lag after the sync", org)
			continue
		}
		checkGauge(t, second, lag, org, before+600)
	}
	// org_1 ran: its checkpoint is at base, and it succeeded just now.
	checkGauge(t, second, lag, "org_1", 40*60)
	checkGauge(t, first, "vaultsink_checkpoint_last_success_timestamp_seconds", "org_1", float64(f.base.Add(30*time.Minute).Unix()))
	// org_2 did not run: its checkpoint, quiet spell and last success as read.
	checkGauge(t, second, lag, "org_2", 40*60)
	checkGauge(t, second, "vaultsink_checkpoint_quiet_seconds", "org_2", 3*3600)
	checkGauge(t, second, "vaultsink_checkpoint_last_success_timestamp_seconds", "org_2", float64(f.lastGood.Unix()))
	// org_3 has no checkpoint: behind by as much as it has to pull from its start.
	checkGauge(t, second, lag, "org_3", 40*60)
}

// TestLagBeforeFirstRun: the daemon reads every org's checkpoint before
// its first pass, so with one worker busy on org_1's windows (the API
// holds them), org_2 and org_3, queued behind it, already have their
// series, and their lag grows with the clock. They used to have none
// until the pass reached them.
func TestLagBeforeFirstRun(t *testing.T) {
	f := newFreshnessEnv(t, 1)
	stop, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.engine.Run(stop, context.Background(), DaemonOptions{Schedule: "@every 1h"}) }()
	defer func() {
		cancel()
		f.release()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	select {
	case <-f.held:
	case <-time.After(30 * time.Second):
		t.Fatal("org_1's run sent no request within 30s")
	}
	const lag = "vaultsink_checkpoint_lag_seconds"
	first := f.gauges(t)
	checkGauge(t, first, lag, "org_1", 150*60)
	checkGauge(t, first, lag, "org_2", 30*60)
	checkGauge(t, first, lag, "org_3", 30*60)
	checkGauge(t, first, "vaultsink_checkpoint_quiet_seconds", "org_2", 3*3600)
	checkGauge(t, first, "vaultsink_checkpoint_last_success_timestamp_seconds", "org_2", float64(f.lastGood.Unix()))
	f.advance(90 * time.Second)
	second := f.gauges(t)
	checkGauge(t, second, lag, "org_1", 150*60+90)
	checkGauge(t, second, lag, "org_2", 30*60+90)
	checkGauge(t, second, lag, "org_3", 30*60+90)
}

// TestAlertCountersStartAtZero: the counters an alert fires on at their
// first increment (deploy/prometheus) have a series at zero for every org
// before anything happened. A series that first appears at 1 shows
// Prometheus no increase, and the first lost lease would go unnoticed.
func TestAlertCountersStartAtZero(t *testing.T) {
	f := newFreshnessEnv(t, 1)
	fams, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{} // name{label values} -> value
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			key := fam.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for _, org := range []string{"org_1", "org_2", "org_3"} {
		for _, key := range []string{
			"vaultsink_lease_lost_total " + org,
			"vaultsink_run_suspect_windows_total " + org + " foreign",
			"vaultsink_run_suspect_windows_total " + org + " empty",
		} {
			if v, ok := got[key]; !ok || v != 0 {
				t.Errorf("%s: value %v, present %v; want a series at 0", key, v, ok)
			}
		}
	}
}
