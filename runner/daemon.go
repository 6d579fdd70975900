package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
)

// CronParser is the schedule syntax: five fields or descriptors (@every 5m, @hourly).
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// DaemonOptions configure Run.
type DaemonOptions struct {
	Schedule string
	Jitter   time.Duration // max random delay per org after a tick
	Listen   string        // address for /metrics, /healthz, /readyz; "" = none
	Gatherer prometheus.Gatherer
	// Ready is called with the bound address once the server listens.
	Ready func(addr string)
}

// Run is the daemon: a catch-up pass at start, then one per schedule tick,
// each org jittered and never overlapping itself. It returns after stop is
// cancelled and the runs in flight ended (they end early when work is
// cancelled).
func (e *Engine) Run(stop, work context.Context, d DaemonOptions) error {
	sched, err := CronParser.Parse(d.Schedule)
	if err != nil {
		return fmt.Errorf("schedule %q: %w", d.Schedule, err)
	}
	var ticked atomic.Bool
	var srv *http.Server
	if d.Listen != "" {
		ln, err := net.Listen("tcp", d.Listen)
		if err != nil {
			return fmt.Errorf("listen on server.listen %q: %w", d.Listen, err)
		}
		srv = &http.Server{Handler: e.handler(d.Gatherer, &ticked), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		e.log.Info("serving metrics and health", "addr", ln.Addr().String())
		if d.Ready != nil {
			d.Ready(ln.Addr().String())
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()
	}
	sem := make(chan struct{}, e.o.Concurrency)
	var wg sync.WaitGroup
	tick := func() {
		ticked.Store(true)
		for _, spec := range e.o.Orgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if d.Jitter > 0 {
					t := time.NewTimer(rand.N(d.Jitter))
					select {
					case <-t.C:
					case <-stop.Done():
						t.Stop()
						return
					}
				}
				select {
				case sem <- struct{}{}:
				case <-stop.Done():
					return
				}
				defer func() { <-sem }()
				r := e.SyncOrg(stop, work, spec)
				if r.Status == StatusBusy {
					e.log.Debug("org still running from the previous tick; skipped", "org", spec.Org.ID)
				}
			}()
		}
	}
	e.log.Info("daemon started", "orgs", len(e.o.Orgs), "schedule", d.Schedule)
	tick()
	for {
		next := sched.Next(e.now())
		t := time.NewTimer(time.Until(next))
		select {
		case <-stop.Done():
			t.Stop()
			e.log.Info("shutting down: no new windows start; waiting for windows in flight")
			wg.Wait()
			return nil
		case <-t.C:
			tick()
		}
	}
}

func (e *Engine) handler(g prometheus.Gatherer, ticked *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !ticked.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"starting"}` + "\n"))
			return
		}
		// Ready means the scheduler runs and the checkpoint store answers.
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := e.o.Store.List(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "checkpoint store unavailable", "error": err.Error()})
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	return mux
}
