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

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/config"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/bufpool"
	"github.com/vaultsink/vaultsink/internal/pipeclock"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// OrgSpec is one org's settings (as config resolves them) with the sink
// built from them.
type OrgSpec struct {
	config.Resolved
	Sink sinks.Sink
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
	o      Options
	m      *Metrics
	log    *slog.Logger
	now    func() time.Time
	busy   sync.Map // org -> struct{}: runs in progress
	warned sync.Map // warnings given once per process
	idle   sync.Map // org -> time.Time: daemon passes skip the org until then
	held   sync.Map // org -> heldBack: a permanent error holds the org back until then

	clockMu     sync.Mutex
	clockProbe  sync.Once     // the API clock probe, when no answer has told the clock yet
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
	return &Engine{o: o, m: newMetrics(o.Registerer, o.Now, o.Orgs), log: o.Log, now: o.Now}
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

// SummaryReport is a Summary as `vaultsink sync --output json` prints it:
// for scripts and the benchmark, which read it instead of parsing the
// text table.
type SummaryReport struct {
	OK       bool          `json:"ok"`
	Orgs     []OrgReport   `json:"orgs"`
	Pipeline PipelineTimes `json:"pipeline"`
}

// OrgReport is one org's Result.
type OrgReport struct {
	Org             string  `json:"org"`
	Status          Status  `json:"status"`
	Windows         int     `json:"windows"`
	Events          int64   `json:"events"`
	Bytes           int64   `json:"bytes"`
	Quarantined     int64   `json:"quarantined"`
	Vanished        int64   `json:"vanished"`
	Checkpoint      string  `json:"checkpoint,omitempty"` // RFC 3339; empty when the org has none
	Error           string  `json:"error,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// PipelineTimes are the pass's decode and encode busy times in wall-clock
// seconds, and how long both were busy at once.
type PipelineTimes struct {
	DecodeBusySeconds float64 `json:"decode_busy_seconds"`
	EncodeBusySeconds float64 `json:"encode_busy_seconds"`
	BothBusySeconds   float64 `json:"both_busy_seconds"`
}

// Report is the summary as data.
func (s Summary) Report() SummaryReport {
	r := SummaryReport{OK: s.OK(), Orgs: make([]OrgReport, 0, len(s.Results)), Pipeline: PipelineTimes{
		DecodeBusySeconds: s.Pipeline.Decode.Seconds(),
		EncodeBusySeconds: s.Pipeline.Encode.Seconds(),
		BothBusySeconds:   s.Pipeline.Both.Seconds(),
	}}
	for _, x := range s.Results {
		o := OrgReport{Org: x.Org, Status: x.Status, Windows: x.Windows, Events: x.Events, Bytes: x.Bytes,
			Quarantined: x.Quarantined, Vanished: x.Vanished, DurationSeconds: x.Duration.Seconds()}
		if !x.End.IsZero() {
			o.Checkpoint = x.End.UTC().Format(time.RFC3339)
		}
		if x.Err != nil {
			o.Error = x.Err.Error()
		}
		r.Orgs = append(r.Orgs, o)
	}
	return r
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
	sum := e.pass(stop, work, 0, true)
	done := map[string]bool{}
	for _, r := range sum.Results {
		done[r.Org] = true
	}
	for _, spec := range e.o.Orgs {
		if !done[spec.Org.ID] {
			sum.Results = append(sum.Results, Result{Org: spec.Org.ID, Status: StatusStopped})
		}
	}
	sort.SliceStable(sum.Results, func(a, b int) bool { return sum.Results[a].Org < sum.Results[b].Org })
	sum.Pipeline = pipeclock.Read().Sub(clock0)
	return sum
}

// SyncOrg brings one org up to date, re-pulling its lookback windows.
func (e *Engine) SyncOrg(stop, work context.Context, spec OrgSpec) Result {
	return e.syncOrg(stop, work, spec, true)
}

// syncOrg brings one org up to date. A pass that finds nothing due reads
// the org's checkpoint and writes nothing; otherwise the run takes the
// org's lease (yielding when another live process holds it), keeps it
// while it works, and lets it go at the end. The lookback windows are due
// on every call with lookback set (a `sync`), and otherwise only with a
// fresh window (the daemon's passes).
//
// A daemon pass that found an org idle remembers when its next window
// closes and skips the org until then (at most idleRecheck later): no
// other process can make a window due sooner, since the window's end is
// fixed by the checkpoint, and a checkpoint another process advanced only
// moves it later. An idle pass thus costs no request for most orgs, and
// replicas add one read per org per window each, not one per tick.
func (e *Engine) syncOrg(stop, work context.Context, spec OrgSpec, lookback bool) (res Result) {
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
	if until, ok := e.idle.Load(org); ok && !lookback && now.Before(until.(time.Time)) {
		res.Status, res.End = StatusCurrent, e.m.fresh.end(org)
		return res
	}
	e.idle.Delete(org)
	if v, ok := e.held.Load(org); ok {
		if hb := v.(heldBack); e.now().Before(hb.until) {
			res.Status, res.End = StatusFailed, e.m.fresh.end(org)
			res.Err = fmt.Errorf("held back until %s after a permanent error: %w", hb.until.UTC().Format(time.RFC3339), hb.err)
			return res
		}
		e.held.Delete(org)
	}
	cp, due, err := e.look(work, spec, now, lookback, log)
	res.End = cp.End
	if err != nil {
		return e.fail(log, res, "checkpoint", err)
	}
	if !due {
		res.Status = StatusCurrent
		return res
	}
	if err := e.leaseFree(cp); err != nil {
		log.Info("org is leased by another process; yielding", "err", err)
		res.Status = StatusYielded
		return res
	}
	cp, err = e.take(work, spec, cp, now)
	if err != nil {
		if errors.Is(err, errLeaseHeld) {
			log.Info("org is leased by another process; yielding", "err", err)
			res.Status = StatusYielded
			return res
		}
		return e.fail(log, res, stageOf(err, "checkpoint"), err)
	}
	res.End = cp.End
	h, ctx := e.hold(work, cp, log)
	defer func() { e.m.fresh.seen(spec, h.release(&res)) }()

	start := cp.End
	if start.IsZero() {
		start = spec.Start
	}
	redo, fresh, err := Plan(org, spec.Start, start, spec.Window, e.o.Settle, spec.Lookback, now)
	if err != nil {
		return e.fail(log, res, "checkpoint", err)
	}
	if len(fresh) == 0 && !lookback {
		redo = nil // another process brought the org up to date meanwhile
	}
	st := &orgState{e: e, spec: spec, h: h, log: log}
	ws := append(redo, fresh...)
	_, err = e.windows(stop, ctx, spec, ws, nil, log, h, st.check, func(i int, w event.Window, r sinks.Result) error {
		res.add(r)
		st.committed(w, r)
		count := func(cp *checkpoint.Checkpoint) {
			cp.Events += r.New
			cp.Bytes += r.Bytes
			cp.Quarantined += r.Quarantined
		}
		if i < len(redo) {
			h.with(count) // written with the next window, or at release
			return nil
		}
		err := h.update(ctx, func(cp *checkpoint.Checkpoint) {
			count(cp)
			cp.End = w.End
			cp.Windows++
		})
		if err != nil {
			return &stageError{"checkpoint", err}
		}
		crashAt("after-checkpoint")
		res.End = w.End
		h.with(func(cp *checkpoint.Checkpoint) { e.m.fresh.seen(spec, *cp) })
		return nil
	})
	if errors.Is(err, ErrLeaseLost) || errors.Is(context.Cause(ctx), ErrLeaseLost) {
		if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
			err = cause
		}
		return e.fail(log, res, "lease", err)
	}
	if errors.Is(err, errStopped) || (stop.Err() != nil && errors.Is(err, context.Canceled)) {
		// Shutdown, not a failure: the window in flight was abandoned
		// uncommitted and the next run picks up at the checkpoint.
		res.Status = StatusStopped
		return res
	}
	if err != nil {
		return e.fail(log, res, stageOf(err, "run"), err)
	}
	res.Status = StatusCurrent
	return res
}

// permanentHold is how long a daemon leaves an org alone after an error
// that retrying cannot fix (sinks.ErrPermanent, checkpoint.ErrPermanent:
// access denied, a missing bucket or dataset, an invalid table): one attempt per hold instead of one
// per tick, each failing pass saying why, until an operator fixes the cause
// (a restart retries at once).
const permanentHold = 15 * time.Minute

// heldBack is an org's hold after a permanent error.
type heldBack struct {
	until time.Time
	err   error
}

// idleRecheck bounds how long a daemon trusts an idle org's checkpoint
// without reading it: a checkpoint set or reset by an operator while the
// daemon runs is acted on within this time (or when the org's next window
// closes, if sooner).
const idleRecheck = 15 * time.Minute

// rememberIdle records that org has nothing due before its next window
// closes, as judged by now (the API's clock).
func (e *Engine) rememberIdle(spec OrgSpec, cp checkpoint.Checkpoint, now time.Time) {
	end := cp.End
	if end.IsZero() {
		end = spec.Start
	}
	until := end.Add(spec.Window + e.o.Settle)
	if limit := now.Add(idleRecheck); until.After(limit) {
		until = limit
	}
	e.idle.Store(spec.Org.ID, until)
}

// readCheckpoint reads the org's checkpoint (an empty one when it has none).
func (e *Engine) readCheckpoint(ctx context.Context, org string) (checkpoint.Checkpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	cp, err := e.o.Store.Get(ctx, org)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return checkpoint.Checkpoint{Org: org}, nil
	}
	if err != nil {
		return cp, fmt.Errorf("read checkpoint: %w", err)
	}
	return cp, nil
}

// due reports whether a closed window waits after the org's checkpoint,
// or (with lookback) a committed window to re-pull.
func (e *Engine) due(spec OrgSpec, cp checkpoint.Checkpoint, now time.Time, lookback bool) (bool, error) {
	start := cp.End
	if start.IsZero() {
		start = spec.Start
	}
	n := 0
	if lookback {
		n = spec.Lookback
	}
	redo, fresh, err := Plan(spec.Org.ID, spec.Start, start, spec.Window, e.o.Settle, n, now)
	return len(fresh)+len(redo) > 0, err
}

// look reads the org's checkpoint and judges it by now (the API's clock):
// refused by guard, due, or idle until its next window closes (remembered,
// so that daemon passes skip the org meanwhile). Every error is of the
// checkpoint stage.
func (e *Engine) look(ctx context.Context, spec OrgSpec, now time.Time, lookback bool, log *slog.Logger) (checkpoint.Checkpoint, bool, error) {
	cp, err := e.readCheckpoint(ctx, spec.Org.ID)
	if err != nil {
		return cp, false, err
	}
	e.m.fresh.seen(spec, cp)
	if err := e.guard(spec, cp, now); err != nil {
		return cp, false, err
	}
	due, err := e.due(spec, cp, now, lookback)
	if err != nil {
		return cp, false, err
	}
	e.warnStart(spec, cp, log)
	if !due {
		e.rememberIdle(spec, cp, now)
	}
	return cp, due, nil
}

// warnStart reports, once per process and org, a configured start earlier
// than the org's history in the sink, with the backfill command that fills
// the gap.
func (e *Engine) warnStart(spec OrgSpec, cp checkpoint.Checkpoint, log *slog.Logger) {
	if cp.Start.IsZero() || !spec.Start.Before(cp.Start) {
		return
	}
	key := spec.Org.ID + "\x00" + spec.Start.String() + "\x00" + cp.Start.String()
	if _, done := e.warned.LoadOrStore(key, struct{}{}); done {
		return
	}
	log.Warn("the configured start is earlier than the org's history in the sink; a sync does not fill it",
		"start", spec.Start.UTC().Format(time.RFC3339), "history_start", cp.Start.UTC().Format(time.RFC3339),
		"hint", fmt.Sprintf("vaultsink backfill --config %s --org %s --from %s --to %s", e.configPath(), spec.Org.ID,
			spec.Start.UTC().Format(time.RFC3339), cp.Start.UTC().Format(time.RFC3339)))
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
	if errors.Is(err, sinks.ErrPermanent) || errors.Is(err, checkpoint.ErrPermanent) {
		until := e.now().Add(permanentHold)
		e.held.Store(res.Org, heldBack{until: until, err: err})
		log.Error("org run failed; retrying cannot fix this error, so the org is held back until it is fixed", "stage", stage, "err", err,
			"permanent", true, "retry_at", until.UTC().Format(time.RFC3339))
		return res
	}
	log.Error("org run failed", "stage", stage, "err", err)
	return res
}
