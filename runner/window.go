package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// filled is a window whose unit holds every page, not yet committed.
type filled struct {
	w     source.Window
	unit  sinks.Unit
	stats source.WalkStats
	began time.Time
}

// fill opens w's unit and writes the whole window into it. The walk relies
// on the API's timestamp order to dedup with a small id set; if the events
// of the window go back in time, the unit is aborted and the window filled
// again with every id of the window remembered (exact, but memory grows
// with the window), and so are the org's later windows.
//
// k, when not nil, is w's walk already started (read ahead, lookahead.go);
// fill owns it from here on.
func (e *Engine) fill(ctx context.Context, spec OrgSpec, w source.Window, k *walk) (filled, error) {
	org := spec.Org.ID
	if k == nil {
		k = e.startWalk(ctx, spec, w, minWalkBuffer, nil) // backfill: windows in parallel
	}
	f, err := e.fillOnce(ctx, spec, w, k)
	if k.full || !errors.Is(err, source.ErrUnsorted) {
		return f, err
	}
	e.unsorted.Store(org, struct{}{})
	e.log.Info("events out of timestamp order in window; re-walking with a full id set",
		"org", org, "window", w.Range(), "err", err)
	return e.fillOnce(ctx, spec, w, e.startWalk(ctx, spec, w, cap(k.pages), k.then))
}

// fillOnce opens w's unit and writes the whole window into it: the walk k
// (fetch and decode) runs in its own goroutine and hands pages through a
// small channel to this one, which encodes them into the unit, so decoding
// page n+1 overlaps encoding page n. Memory stays bounded by the channel
// and the sink's row group. On error the unit is aborted. fillOnce returns
// only once k has ended.
func (e *Engine) fillOnce(ctx context.Context, spec OrgSpec, w source.Window, k *walk) (f filled, err error) {
	f = filled{w: w, began: time.Now()}
	org := spec.Org.ID
	unit, err := spec.Sink.Open(ctx, w)
	if err != nil {
		k.stop()
		e.m.Windows.WithLabelValues(org, "failed").Inc()
		return f, &stageError{"sink", fmt.Errorf("open %s: %w", w, err)}
	}
	defer func() {
		if err != nil {
			_ = unit.Abort(context.WithoutCancel(ctx))
		}
	}()

	var sinkErr error
	for p := range k.pages {
		if sinkErr == nil {
			crashAt("page")
			// ctx, not the walk's context: a sink may still be using the
			// context of its last Write after the walk ends (the S3 sink
			// uploads the last full part in the background until Commit).
			sinkErr = writePage(ctx, unit, p)
			if sinkErr != nil {
				k.cancel() // stop the walk; drain what it already sent
			}
		}
		if p.Rec != nil {
			p.Rec.Release()
		}
	}
	<-k.done
	k.cancel()
	st, walkErr := k.st, k.err
	if sinkErr != nil {
		e.m.Windows.WithLabelValues(org, "failed").Inc()
		return f, &stageError{"sink", fmt.Errorf("write %s: %w", w, sinkErr)}
	}
	if walkErr != nil {
		result := "failed"
		switch {
		case errors.Is(walkErr, context.Canceled):
			result = "aborted"
		case errors.Is(walkErr, source.ErrUnsorted) && !k.full:
			result = "" // fill walks it again at once
		}
		if result != "" {
			e.m.Windows.WithLabelValues(org, result).Inc()
		}
		return f, &stageError{"source", fmt.Errorf("walk %s: %w", w, walkErr)}
	}
	f.unit, f.stats = unit, st
	return f, nil
}

// window fills and commits one window.
// k, when not nil, is w's walk already started (lookahead.go).
func (e *Engine) window(ctx context.Context, spec OrgSpec, w source.Window, k *walk, log *slog.Logger) (sinks.Result, error) {
	f, err := e.fill(ctx, spec, w, k)
	if err != nil {
		return sinks.Result{}, err
	}
	defer func() { _ = f.unit.Abort(context.WithoutCancel(ctx)) }() // no-op after Commit
	crashAt("before-commit")
	res, err := f.unit.Commit(ctx)
	if err != nil {
		e.m.Windows.WithLabelValues(spec.Org.ID, "failed").Inc()
		return sinks.Result{}, &stageError{"sink", fmt.Errorf("commit %s: %w", w, err)}
	}
	crashAt("after-commit")
	e.committed(spec.Org.ID, f, res, log)
	return res, nil
}

// windows writes ws in order, calling after for each committed window in
// order. With a sink that commits in batches (sinks.BatchCommitter) up to
// MaxBatch windows are filled first and committed together; after then runs
// for each once the batch committed.
func (e *Engine) windows(stop, work context.Context, spec OrgSpec, ws []source.Window, log *slog.Logger, after func(source.Window, sinks.Result) error) error {
	la := e.lookahead(work, spec, ws)
	defer la.close()
	bc, ok := spec.Sink.(sinks.BatchCommitter)
	if !ok || bc.MaxBatch() <= 1 {
		for i, w := range ws {
			if stop.Err() != nil {
				return errStopped
			}
			r, err := e.window(work, spec, w, la.walk(i), log)
			if err != nil {
				return err
			}
			if err := after(w, r); err != nil {
				return err
			}
		}
		return nil
	}
	for done := 0; done < len(ws); {
		n := min(bc.MaxBatch(), len(ws)-done)
		batch := make([]filled, 0, n)
		abortAll := func() {
			for _, f := range batch {
				_ = f.unit.Abort(context.WithoutCancel(work))
			}
		}
		for i := done; i < done+n; i++ {
			if stop.Err() != nil {
				abortAll()
				return errStopped
			}
			f, err := e.fill(work, spec, ws[i], la.walk(i))
			if err != nil {
				abortAll()
				return err
			}
			batch = append(batch, f)
		}
		units := make([]sinks.Unit, len(batch))
		for i, f := range batch {
			units[i] = f.unit
		}
		crashAt("before-commit")
		results, err := bc.CommitBatch(work, units)
		if err != nil {
			abortAll()
			e.m.Windows.WithLabelValues(spec.Org.ID, "failed").Add(float64(len(batch)))
			return &stageError{"sink", fmt.Errorf("commit %d windows %s .. %s: %w", len(batch), batch[0].w.Range(), batch[len(batch)-1].w.Range(), err)}
		}
		if len(results) != len(batch) {
			return &stageError{"sink", fmt.Errorf("commit batch: %d results for %d windows", len(results), len(batch))}
		}
		crashAt("after-commit")
		for i, f := range batch {
			e.committed(spec.Org.ID, f, results[i], log)
			if err := after(f.w, results[i]); err != nil {
				return err
			}
		}
		done += n
	}
	return nil
}

var errStopped = errors.New("stopped before the org was current")

// committed records metrics and the one INFO line of a window.
func (e *Engine) committed(org string, f filled, res sinks.Result, log *slog.Logger) {
	result := "committed"
	if res.Events == 0 {
		result = "empty"
	}
	e.m.Windows.WithLabelValues(org, result).Inc()
	e.m.EventsWritten.WithLabelValues(org).Add(float64(res.Events))
	e.m.BytesWritten.WithLabelValues(org).Add(float64(res.Bytes))
	e.m.Quarantined.WithLabelValues(org).Add(float64(res.Quarantined))
	d := time.Since(f.began)
	e.m.WindowDuration.WithLabelValues(org).Observe(d.Seconds())
	log.Info("window committed", "window", f.w.Range(), "rows", res.Events, "bytes", res.Bytes,
		"pages", f.stats.Pages, "quarantined", res.Quarantined, "duplicates", f.stats.Duplicates,
		"retries", f.stats.Retries, "duration", d.Round(time.Millisecond), "location", res.Location)
}

func writePage(ctx context.Context, u sinks.Unit, p source.Page) error {
	if p.Rec != nil && p.Rec.NumRows() > 0 {
		if err := u.Write(ctx, p.Rec); err != nil {
			return err
		}
	}
	for _, q := range p.Quarantined {
		if err := u.Quarantine(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
