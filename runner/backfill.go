package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
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
	Events, Bytes                     int64
	Errs                              []error
}

// Backfill writes the windows of [From,To) for one org in parallel, the same
// units a sync would write. Windows already in the sink are skipped unless
// Force. It does not take the org's lease, and moves the checkpoint only
// when the backfilled range starts at or before it and every window
// succeeded, so a later sync does not pull them again.
func (e *Engine) Backfill(stop, work context.Context, spec OrgSpec, o BackfillOptions) (BackfillResult, error) {
	var res BackfillResult
	horizon := e.now().Add(-e.o.Settle)
	to := o.To
	if to.After(horizon) {
		to = horizon
	}
	all := Windows(spec.Org.ID, o.From, to, spec.Window)
	var ws []source.Window
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
	log := e.log.With("org", spec.Org.ID)
	var (
		mu            sync.Mutex
		next          atomic.Int64
		done, skipped atomic.Int64
		events        atomic.Int64
		wg            sync.WaitGroup
	)
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stop.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(ws) {
					return
				}
				w := ws[i]
				if !o.Force && stater != nil {
					exists, _, err := stater.Stat(work, w)
					if err == nil && exists {
						skipped.Add(1)
						if o.Progress != nil {
							o.Progress(int(done.Load()), int(skipped.Load()), len(ws), events.Load())
						}
						continue
					}
				}
				r, err := e.window(work, spec, w, nil, log)
				mu.Lock()
				if err != nil {
					res.Failed++
					res.Errs = append(res.Errs, err)
				} else {
					res.Written++
					res.Events += r.Events
					res.Bytes += r.Bytes
				}
				mu.Unlock()
				if err == nil {
					events.Add(r.Events)
				}
				done.Add(1)
				if o.Progress != nil {
					o.Progress(int(done.Load()), int(skipped.Load()), len(ws), events.Load())
				}
			}
		}()
	}
	wg.Wait()
	res.Skipped = int(skipped.Load())
	if stop.Err() != nil {
		return res, fmt.Errorf("backfill stopped: %w", stop.Err())
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d windows failed; rerun the same command to retry them: %w", res.Failed, len(ws), errors.Join(res.Errs...))
	}
	if len(ws) > 0 {
		if err := e.advanceAfterBackfill(work, spec, ws[0].Start, ws[len(ws)-1].End); err != nil {
			return res, err
		}
	}
	return res, nil
}

// advanceAfterBackfill moves the checkpoint to end when [start,end) covers
// it, under the lease like any other write.
func (e *Engine) advanceAfterBackfill(ctx context.Context, spec OrgSpec, start, end time.Time) error {
	cp, err := e.acquire(ctx, spec)
	if err != nil {
		if errors.Is(err, errLeaseHeld) {
			return nil // the running daemon will get there itself
		}
		return err
	}
	var res Result
	res.Status = StatusCurrent
	defer e.release(e.log, &cp, &res)
	cur := cp.End
	if cur.IsZero() {
		cur = spec.Start
	}
	if start.After(cur) || !end.After(cur) {
		return nil
	}
	cp.End = end
	return e.put(ctx, &cp)
}
