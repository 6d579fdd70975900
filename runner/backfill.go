package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/sinks"
)

// BackfillOptions choose what Backfill does.
type BackfillOptions struct {
	From, To    time.Time // [From,To), rounded out to whole windows, capped at the closed horizon
	Concurrency int       // windows in parallel
	Force       bool      // rewrite windows that already exist
	// Progress, if set, is called after each window (from several goroutines).
	Progress func(done, skipped, total int, events int64)
}

// BackfillResult sums up a backfill.
type BackfillResult struct {
	Windows, Written, Skipped, Failed int
	// Empty counts the written windows that hold nothing (no event, no
	// quarantined record): the sink keeps no unit for them, so a rerun
	// without --force pulls them again.
	Empty         int
	Events, Bytes int64
	Errs          []error
}

// Backfill writes the windows of [From,To) for one org, the same units a
// sync would write (a window the sink holds gets what the API adds, never
// loses a row). Windows already in the sink are skipped unless Force. It
// holds the org's lease throughout, as a sync does: when a daemon holds it,
// Backfill waits for it (the daemon lets it go at the end of its pass, and
// yields the org while the backfill runs). Windows run in parallel in two
// waves, even then odd, so every window of the second wave sees both
// neighbours committed and an id repeated across a boundary is archived
// once. The checkpoint moves when the backfilled range starts at or before
// it and every window succeeded, so a later sync does not pull them again;
// a range before the org's history start extends that history.
func (e *Engine) Backfill(stop, work context.Context, spec OrgSpec, o BackfillOptions) (BackfillResult, error) {
	var res BackfillResult
	now := e.apiNow(work, spec)
	log := e.log.With("org", spec.Org.ID)
	cp, err := e.acquireWaiting(stop, work, spec, now, log)
	if err != nil {
		return res, err
	}
	h, ctx := e.hold(work, cp, log)
	status := Result{Org: spec.Org.ID, Status: StatusCurrent}
	defer func() { h.release(&status) }()

	horizon := now.Add(-e.o.Settle)
	to := o.To
	if to.After(horizon) {
		to = horizon
	}
	all := Windows(spec.Org.ID, o.From, to, spec.Window)
	var ws []event.Window
	for _, w := range all {
		if !w.End.After(to) {
			ws = append(ws, w)
		}
	}
	res.Windows = len(ws)
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	stater, _ := spec.Sink.(sinks.Stater)
	var (
		mu            sync.Mutex
		done, skipped atomic.Int64
		events        atomic.Int64
	)
	progress := func() {
		if o.Progress != nil {
			o.Progress(int(done.Load()), int(skipped.Load()), len(ws), events.Load())
		}
	}
	for wave := range 2 {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range o.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for stop.Err() == nil && ctx.Err() == nil {
					i := 2*int(next.Add(1)-1) + wave
					if i >= len(ws) {
						return
					}
					w := ws[i]
					if !o.Force && stater != nil {
						exists, _, err := stater.Stat(ctx, w)
						if err == nil && exists {
							skipped.Add(1)
							progress()
							continue
						}
					}
					r, err := e.oneWindow(ctx, spec, w, log, h)
					mu.Lock()
					if err != nil {
						res.Failed++
						res.Errs = append(res.Errs, err)
					} else {
						res.Written++
						if r.Events == 0 && r.Quarantined == 0 {
							res.Empty++
						}
						res.Events += r.New
						res.Bytes += r.Bytes
					}
					mu.Unlock()
					if err == nil {
						events.Add(r.New)
					}
					done.Add(1)
					progress()
				}
			}()
		}
		wg.Wait()
	}
	res.Skipped = int(skipped.Load())
	if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
		status.Status, status.Err = StatusFailed, cause
		return res, cause
	}
	if stop.Err() != nil {
		status.Status = StatusStopped
		return res, fmt.Errorf("backfill stopped: %w", stop.Err())
	}
	if res.Failed > 0 {
		err := fmt.Errorf("%d of %d windows failed; rerun the same command to retry them: %w", res.Failed, len(ws), errors.Join(res.Errs...))
		status.Status, status.Err = StatusFailed, err
		return res, err
	}
	if len(ws) > 0 {
		start, end := ws[0].Start, ws[len(ws)-1].End
		err := h.update(ctx, func(cp *checkpoint.Checkpoint) {
			if !cp.Start.IsZero() && start.Before(cp.Start) {
				cp.Start = start
			}
			cur := cp.End
			if cur.IsZero() {
				cur = spec.Start
			}
			if !start.After(cur) && end.After(cur) {
				cp.End = end
			}
		})
		if err != nil {
			status.Status, status.Err = StatusFailed, err
			return res, err
		}
	}
	return res, nil
}

// acquireWaiting takes the org's lease as a sync does, waiting while
// another live process holds it.
func (e *Engine) acquireWaiting(stop, work context.Context, spec OrgSpec, now time.Time, log *slog.Logger) (checkpoint.Checkpoint, error) {
	warned := false
	for {
		cp, err := e.acquire(work, spec, now)
		if !errors.Is(err, errLeaseHeld) {
			return cp, err
		}
		if !warned {
			log.Info("waiting for the org's lease, held by another process (a daemon lets it go at the end of its pass)", "err", err)
			warned = true
		}
		t := time.NewTimer(min(e.o.LeaseTTL/4, 2*time.Second))
		select {
		case <-stop.Done():
			t.Stop()
			return cp, fmt.Errorf("stopped while waiting for the lease: %w", err)
		case <-t.C:
		}
	}
}

// oneWindow writes w on its own: its neighbours' ids are read from the sink.
func (e *Engine) oneWindow(ctx context.Context, spec OrgSpec, w event.Window, log *slog.Logger, h *holder) (sinks.Result, error) {
	size := w.End.Sub(w.Start)
	prev, err := e.idsOf(ctx, spec, event.Window{Org: w.Org, Start: w.Start.Add(-size), End: w.Start})
	if err != nil {
		return sinks.Result{}, err
	}
	next, err := e.idsOf(ctx, spec, event.Window{Org: w.Org, Start: w.End, End: w.End.Add(size)})
	if err != nil {
		return sinks.Result{}, err
	}
	o, err := e.open(ctx, spec, w, h)
	if err != nil {
		return sinks.Result{}, err
	}
	k := e.startWalk(ctx, spec, o, append(prev, next...), minWalkBuffer, nil)
	f, err := e.fill(ctx, spec, o, k)
	if err != nil {
		return sinks.Result{}, err
	}
	s := f.stats
	if s.Rows+s.Held+s.NearDuplicates+s.Duplicates == 0 && s.Foreign > 0 {
		f.abort(ctx)
		e.m.Suspect.WithLabelValues(spec.Org.ID, "foreign").Inc()
		return sinks.Result{}, fmt.Errorf("%w: org %s: every record of window %s (%d) names org %s; set org %s's token to one of its own; nothing was written for this window",
			ErrForeignToken, spec.Org.ID, w.Range(), s.Foreign, s.ForeignOrg, spec.Org.ID)
	}
	var r sinks.Result
	err = e.commit(ctx, spec, nil, []filled{f}, log, h, func(_ int, res sinks.Result) error { r = res; return nil })
	return r, err
}
