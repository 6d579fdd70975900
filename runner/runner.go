// Package runner ties source, sinks and checkpoint together: it plans each
// org's windows from its checkpoint, walks them through the source into a
// sink unit, commits, and only then advances the checkpoint. It also holds
// the daemon's scheduler, metrics and health endpoints.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/bufpool"
	"github.com/vaultsink/vaultsink/internal/pipeclock"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// OrgSpec is one org's effective settings.
type OrgSpec struct {
	Org      source.Org
	Start    time.Time     // where a new checkpoint begins (aligned to Window)
	Window   time.Duration // divides 24h
	Lookback int
	Sink     sinks.Sink
}

// Options configure an Engine.
type Options struct {
	Source      *source.Client
	Store       checkpoint.Store
	Orgs        []OrgSpec
	Settle      time.Duration
	Concurrency int           // orgs in parallel
	Owner       string        // lease owner id of this process
	LeaseTTL    time.Duration // how long a lease holds without renewal
	Log         *slog.Logger
	Registerer  prometheus.Registerer
	Mem         memory.Allocator // the decoder's Arrow buffers; nil: bufpool.Default
	// Now is this host's clock (tests inject one). Windows are judged
	// closed by the API's clock where its answers tell it (apiNow).
	Now func() time.Time
	// ConfigPath is the config file, quoted in the repair commands that
	// errors print; "" prints a placeholder.
	ConfigPath string
}

// Engine runs syncs. It is safe for concurrent use; an org never runs twice
// at once within one Engine, and the checkpoint lease guards it across
// processes.
type Engine struct {
	o    Options
	m    *Metrics
	log  *slog.Logger
	now  func() time.Time
	busy sync.Map // org -> struct{}: runs in progress

	clockMu     sync.Mutex
	clockProbed bool
	clockWarned time.Duration // the offset last warned about
	noDateWarn  bool
}

// New builds an Engine.
func New(o Options) *Engine {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Mem == nil {
		o.Mem = bufpool.Default // the next page reuses the buffers of an encoded one
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Minute
	}
	return &Engine{o: o, m: newMetrics(o.Registerer), log: o.Log, now: o.Now}
}

// Result is how one org's run ended.
type Result struct {
	Org         string
	Status      Status
	Windows     int       // windows committed (fresh and re-pulled)
	Events      int64     // events the run added to the sink
	Bytes       int64     // bytes committed
	Quarantined int64     // records quarantined
	Vanished    int64     // events the sink holds that re-pulls no longer returned (kept)
	End         time.Time // checkpoint after the run
	Err         error
	Duration    time.Duration
}

// Status classifies a Result.
type Status string

// Statuses of an org run.
const (
	StatusCurrent Status = "current" // every closed window is committed
	StatusFailed  Status = "failed"
	StatusYielded Status = "yielded" // another process holds the org's lease
	StatusBusy    Status = "busy"    // a run of this org is already in progress here
	StatusStopped Status = "stopped" // shutdown began before the org was current
)

// Summary is the outcome of one Sync over all orgs.
type Summary struct {
	Results  []Result
	Pipeline pipeclock.Totals // decode and encode busy times during the pass
}

// OK reports whether every org is current (or was left to another process).
func (s Summary) OK() bool {
	for _, r := range s.Results {
		if r.Status != StatusCurrent && r.Status != StatusYielded {
			return false
		}
	}
	return true
}

// String is a per-org table for the terminal.
func (s Summary) String() string {
	var b strings.Builder
	for _, r := range s.Results {
		fmt.Fprintf(&b, "%-24s %-8s windows=%-5d events=%-9d checkpoint=%s", r.Org, r.Status, r.Windows, r.Events, fmtTime(r.End))
		if r.Vanished > 0 {
			fmt.Fprintf(&b, "  vanished=%d (kept; see the log)", r.Vanished)
		}
		if r.Err != nil {
			fmt.Fprintf(&b, "  error: %v", r.Err)
		}
		b.WriteByte('\n')
	}
	if p := s.Pipeline; p.Decode > 0 || p.Encode > 0 {
		b.WriteString(p.Line())
		b.WriteByte('\n')
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// Sync runs one catch-up pass over every org, Concurrency at a time, and
// returns when all are done. Cancelling stop prevents new windows from
// starting; cancelling work abandons the windows in flight (uncommitted).
func (e *Engine) Sync(stop, work context.Context) Summary {
	clock0 := pipeclock.Read()
	results := make([]Result, len(e.o.Orgs))
	sem := make(chan struct{}, e.o.Concurrency)
	var wg sync.WaitGroup
	for i, spec := range e.o.Orgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-stop.Done():
				results[i] = Result{Org: spec.Org.ID, Status: StatusStopped}
				return
			}
			defer func() { <-sem }()
			results[i] = e.SyncOrg(stop, work, spec)
		}()
	}
	wg.Wait()
	sort.SliceStable(results, func(a, b int) bool { return results[a].Org < results[b].Org })
	return Summary{Results: results, Pipeline: pipeclock.Read().Sub(clock0)}
}

// SyncOrg brings one org up to date.
func (e *Engine) SyncOrg(stop, work context.Context, spec OrgSpec) (res Result) {
	org := spec.Org.ID
	res = Result{Org: org}
	if _, loaded := e.busy.LoadOrStore(org, struct{}{}); loaded {
		res.Status = StatusBusy
		return res
	}
	defer e.busy.Delete(org)
	e.m.Running.Inc()
	defer e.m.Running.Dec()
	began := e.now()
	defer func() { res.Duration = e.now().Sub(began) }()
	log := e.log.With("org", org)

	now := e.apiNow(work, spec)
	cp, err := e.acquire(work, spec, now)
	if err != nil {
		if errors.Is(err, errLeaseHeld) {
			log.Info("org is leased by another process; yielding", "err", err)
			res.Status = StatusYielded
			return res
		}
		return e.fail(log, res, stageOf(err, "checkpoint"), err)
	}
	res.End = cp.End
	defer e.release(log, &cp, &res)

	if !cp.Start.IsZero() && spec.Start.Before(cp.Start) {
		log.Warn("the configured start is earlier than the org's history in the sink; a sync does not fill it",
			"start", spec.Start.UTC().Format(time.RFC3339), "history_start", cp.Start.UTC().Format(time.RFC3339),
			"hint", fmt.Sprintf("vaultsink backfill --config %s --org %s --from %s --to %s", e.configPath(), org,
				spec.Start.UTC().Format(time.RFC3339), cp.Start.UTC().Format(time.RFC3339)))
	}
	start := cp.End
	if start.IsZero() {
		start = spec.Start
	}
	redo, fresh, err := Plan(org, spec.Start, start, spec.Window, e.o.Settle, spec.Lookback, now)
	if err != nil {
		return e.fail(log, res, "checkpoint", err)
	}
	st := &orgState{e: e, spec: spec, cp: &cp, log: log}
	ws := append(redo, fresh...)
	_, err = e.windows(stop, work, spec, ws, nil, log, st.check, func(i int, w source.Window, r sinks.Result) error {
		res.add(r)
		st.committed(w, r)
		if i < len(redo) {
			return nil
		}
		cp.End = w.End
		cp.Windows++
		cp.Lease.Expires = e.now().Add(e.o.LeaseTTL)
		if err := e.put(work, &cp); err != nil {
			return &stageError{"checkpoint", err}
		}
		crashAt("after-checkpoint")
		res.End = cp.End
		e.m.Lag.WithLabelValues(org).Set(now.Sub(cp.End).Seconds())
		return nil
	})
	e.setQuiet(&cp)
	if errors.Is(err, errStopped) || (stop.Err() != nil && errors.Is(err, context.Canceled)) {
		// Shutdown, not a failure: the window in flight was abandoned
		// uncommitted and the next run picks up at the checkpoint.
		res.Status = StatusStopped
		return res
	}
	if err != nil {
		return e.fail(log, res, stageOf(err, "run"), err)
	}
	if cp.End.IsZero() {
		e.m.Lag.WithLabelValues(org).Set(now.Sub(start).Seconds())
	} else {
		e.m.Lag.WithLabelValues(org).Set(now.Sub(cp.End).Seconds())
	}
	res.Status = StatusCurrent
	return res
}

func (r *Result) add(w sinks.Result) {
	r.Windows++
	r.Events += w.New
	r.Bytes += w.Bytes
	r.Quarantined += w.Quarantined
	r.Vanished += w.Vanished
}

// stageError tags an error with the pipeline stage that failed.
type stageError struct {
	stage string
	err   error
}

func (s *stageError) Error() string { return s.err.Error() }
func (s *stageError) Unwrap() error { return s.err }

func stageOf(err error, def string) string {
	var se *stageError
	if errors.As(err, &se) {
		return se.stage
	}
	return def
}

func (e *Engine) fail(log *slog.Logger, res Result, stage string, err error) Result {
	switch {
	case errors.Is(err, source.ErrAuth):
		stage = "auth"
	case errors.Is(err, ErrForeignToken), errors.Is(err, ErrEmptyAfterData):
		stage = "token"
	}
	e.m.Errors.WithLabelValues(res.Org, stage).Inc()
	res.Status = StatusFailed
	res.Err = err
	log.Error("org run failed", "stage", stage, "err", err)
	return res
}
