package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
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
	var passes sync.WaitGroup
	var running atomic.Bool
	tick := func() {
		ticked.Store(true)
		if !running.CompareAndSwap(false, true) {
			e.log.Warn("the previous pass is still running; this tick is skipped (the schedule is shorter than a pass)",
				"schedule", d.Schedule)
			return
		}
		passes.Add(1)
		go func() {
			defer passes.Done()
			defer running.Store(false)
			sum := e.pass(stop, work, d.Jitter, false)
			e.log.Info("pass done", "orgs", len(sum.Results), "current", sum.count(StatusCurrent),
				"yielded", sum.count(StatusYielded), "failed", sum.count(StatusFailed), "windows", sum.windows(),
				"next", sched.Next(e.now()).UTC().Format(time.RFC3339))
		}()
	}
	e.log.Info("daemon started", "orgs", len(e.o.Orgs), "schedule", d.Schedule)
	e.readCheckpoints(stop, work)
	tick()
	for {
		next := sched.Next(e.now())
		t := time.NewTimer(time.Until(next))
		select {
		case <-stop.Done():
			t.Stop()
			e.log.Info("shutting down: no new windows start; waiting for windows in flight")
			passes.Wait()
			return nil
		case <-t.C:
			tick()
		}
	}
}

// pass runs every org once, Concurrency at a time: a fixed set of workers,
// whatever the number of orgs. Each org starts at a random offset within
// jitter after the tick, so replicas and orgs spread their requests. With
// lookback, every org re-pulls its lookback windows (see syncOrg).
func (e *Engine) pass(stop, work context.Context, jitter time.Duration, lookback bool) Summary {
	type job struct {
		i  int
		at time.Time
	}
	now := time.Now()
	jobs := make([]job, len(e.o.Orgs))
	for i := range jobs {
		jobs[i] = job{i: i, at: now}
		if jitter > 0 {
			jobs[i].at = now.Add(rand.N(jitter))
		}
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].at.Before(jobs[b].at) })
	results := make([]Result, len(jobs))
	queue := make(chan int)
	go func() {
		defer close(queue)
		for _, j := range jobs {
			if d := time.Until(j.at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-stop.Done():
					t.Stop()
					return
				}
			}
			select {
			case queue <- j.i:
			case <-stop.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range min(e.o.Concurrency, max(len(jobs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range queue {
				r := e.syncOrg(stop, work, e.o.Orgs[i], lookback)
				if r.Status == StatusBusy {
					e.log.Debug("org still running; skipped", "org", r.Org)
				}
				results[i] = r
			}
		}()
	}
	wg.Wait()
	out := results[:0]
	for _, r := range results {
		if r.Org != "" {
			out = append(out, r)
		}
	}
	return Summary{Results: out}
}

// count is how many orgs ended with status st.
func (s Summary) count(st Status) int {
	n := 0
	for _, r := range s.Results {
		if r.Status == st {
			n++
		}
	}
	return n
}

// windows is how many windows the pass committed.
func (s Summary) windows() int {
	n := 0
	for _, r := range s.Results {
		n += r.Windows
	}
	return n
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
