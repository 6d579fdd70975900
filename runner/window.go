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

// window writes one window: the walk (fetch and decode) runs in its own
// goroutine and hands pages through a small channel to this one, which
// encodes them into the sink unit, so decoding page n+1 overlaps encoding
// page n. Memory stays bounded by the channel and the sink's row group.
func (e *Engine) window(ctx context.Context, spec OrgSpec, w source.Window, log *slog.Logger) (sinks.Result, error) {
	began := time.Now()
	org := spec.Org.ID
	unit, err := spec.Sink.Open(ctx, w)
	if err != nil {
		e.m.Windows.WithLabelValues(org, "failed").Inc()
		return sinks.Result{}, &stageError{"sink", fmt.Errorf("open %s: %w", w, err)}
	}
	// Abort after Commit is a no-op; on every other path it discards the unit.
	defer func() { _ = unit.Abort(context.WithoutCancel(ctx)) }()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan source.Page, 2)
	var (
		st      source.WalkStats
		walkErr error
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		defer close(pages)
		st, walkErr = e.o.Source.Walk(wctx, spec.Org, w, e.o.Mem, func(p source.Page) error {
			select {
			case pages <- p:
				return nil
			case <-wctx.Done():
				if p.Rec != nil {
					p.Rec.Release()
				}
				return wctx.Err()
			}
		})
	}()
	var sinkErr error
	for p := range pages {
		if sinkErr == nil {
			sinkErr = writePage(wctx, unit, p)
			if sinkErr != nil {
				cancel() // stop the walk; drain what it already sent
			}
		}
		if p.Rec != nil {
			p.Rec.Release()
		}
	}
	<-done
	if sinkErr != nil {
		e.m.Windows.WithLabelValues(org, "failed").Inc()
		return sinks.Result{}, &stageError{"sink", fmt.Errorf("write %s: %w", w, sinkErr)}
	}
	if walkErr != nil {
		result, stage := "failed", "source"
		if errors.Is(walkErr, context.Canceled) {
			result = "aborted"
		}
		e.m.Windows.WithLabelValues(org, result).Inc()
		return sinks.Result{}, &stageError{stage, fmt.Errorf("walk %s: %w", w, walkErr)}
	}
	res, err := unit.Commit(ctx)
	if err != nil {
		e.m.Windows.WithLabelValues(org, "failed").Inc()
		return sinks.Result{}, &stageError{"sink", fmt.Errorf("commit %s: %w", w, err)}
	}
	result := "committed"
	if res.Events == 0 {
		result = "empty"
	}
	e.m.Windows.WithLabelValues(org, result).Inc()
	e.m.EventsWritten.WithLabelValues(org).Add(float64(res.Events))
	e.m.BytesWritten.WithLabelValues(org).Add(float64(res.Bytes))
	e.m.Quarantined.WithLabelValues(org).Add(float64(res.Quarantined))
	d := time.Since(began)
	e.m.WindowDuration.WithLabelValues(org).Observe(d.Seconds())
	log.Info("window committed", "window", w.Range(), "rows", res.Events, "bytes", res.Bytes,
		"pages", st.Pages, "quarantined", res.Quarantined, "duplicates", st.Duplicates,
		"retries", st.Retries, "duration", d.Round(time.Millisecond), "location", res.Location)
	return res, nil
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
