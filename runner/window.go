package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// opened is a window's unit, open: the sink has read what it holds for the
// window (held, for sinks that read back).
type opened struct {
	w    event.Window
	unit sinks.Unit
	held *event.HeldSet
}

// open opens w's unit; with h, the unit carries the lease's fence.
func (e *Engine) open(ctx context.Context, spec OrgSpec, w event.Window, h *holder) (*opened, error) {
	u, err := spec.Sink.Open(ctx, w)
	if err != nil {
		e.m.Windows.WithLabelValues(spec.Org.ID, "failed").Inc()
		return nil, &stageError{"sink", fmt.Errorf("open %s: %w", w, err)}
	}
	if fu, ok := u.(sinks.FencedUnit); ok && h != nil {
		fu.SetFence(h.fence())
	}
	o := &opened{w: w, unit: u}
	if hu, ok := u.(sinks.HeldUnit); ok {
		o.held = hu.Held()
	}
	return o, nil
}

func (o *opened) abort(ctx context.Context) { _ = o.unit.Abort(context.WithoutCancel(ctx)) }

// carry is what one window of a walk leaves to the next: the ids the sink
// holds for it afterwards (what it held, and what its walk emitted), so that
// an id repeated in the next window is archived once.
type carry struct {
	w    event.Window
	sets []event.IDLookup
}

func carryOf(o *opened, st source.WalkStats) *carry {
	c := &carry{w: o.w}
	if o.held.Len() > 0 {
		c.sets = append(c.sets, o.held)
	}
	if st.IDs.Len() > 0 {
		c.sets = append(c.sets, st.IDs)
	}
	return c
}

// idsOf reads the ids the sink holds for w, for a window next to one being
// written; nil when the sink cannot tell cheaply or holds nothing. Sinks
// that drop such repeats in their own commit (sinks.NearDeduper) are not
// asked.
func (e *Engine) idsOf(ctx context.Context, spec OrgSpec, w event.Window) ([]event.IDLookup, error) {
	if _, ok := spec.Sink.(sinks.NearDeduper); ok {
		return nil, nil
	}
	rd, ok := spec.Sink.(sinks.Reader)
	if !ok {
		return nil, nil
	}
	ids := event.NewIDSet()
	if err := rd.EventIDs(ctx, w, func(id string) error { ids.Add(id); return nil }); err != nil {
		return nil, &stageError{"sink", fmt.Errorf("read the ids of %s (next to a window being written): %w", w, err)}
	}
	if ids.Len() == 0 {
		return nil, nil
	}
	return []event.IDLookup{ids}, nil
}

// filled is a window whose unit holds every page, not yet committed.
type filled struct {
	*opened
	stats source.WalkStats
	began time.Time
}

// fill writes the walk k of o's window into its unit: k fetches and decodes
// in its own goroutine and hands pages through a small channel to this
// one, which encodes them, so decoding page n+1 overlaps encoding page n.
// Memory stays bounded by the channel and the sink's row group. On error
// the unit is aborted. fill returns only once k has ended.
func (e *Engine) fill(ctx context.Context, spec OrgSpec, o *opened, k *walk) (f filled, err error) {
	f = filled{opened: o, began: time.Now()}
	org := spec.Org.ID
	defer func() {
		if err != nil {
			o.abort(ctx)
		}
	}()
	var sinkErr error
	for p := range k.pages {
		if sinkErr == nil {
			crashAt("page")
			// ctx, not the walk's context: a sink may still be using the
			// context of its last Write after the walk ends (the S3 sink
			// uploads the last full part in the background until Commit).
			sinkErr = writePage(ctx, o.unit, p)
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
		return f, &stageError{"sink", fmt.Errorf("write %s: %w", o.w, sinkErr)}
	}
	if walkErr != nil {
		result := "failed"
		if errors.Is(walkErr, context.Canceled) {
			result = "aborted"
		}
		e.m.Windows.WithLabelValues(org, result).Inc()
		return f, &stageError{"source", fmt.Errorf("walk %s: %w", o.w, walkErr)}
	}
	f.stats = st
	return f, nil
}

// committed records metrics and the one INFO line of a window.
func (e *Engine) committed(org string, f filled, res sinks.Result, log *slog.Logger) {
	result := "committed"
	if res.New == 0 {
		result = "unchanged"
		if res.Events == 0 {
			result = "empty"
		}
	}
	e.m.Windows.WithLabelValues(org, result).Inc()
	e.m.EventsWritten.WithLabelValues(org).Add(float64(res.New))
	e.m.BytesWritten.WithLabelValues(org).Add(float64(res.Bytes))
	e.m.Quarantined.WithLabelValues(org).Add(float64(res.Quarantined))
	e.m.Vanished.WithLabelValues(org).Add(float64(res.Vanished))
	e.m.Changed.WithLabelValues(org).Add(float64(res.Changed))
	d := time.Since(f.began)
	e.m.WindowDuration.WithLabelValues(org).Observe(d.Seconds())
	log.Info("window committed", "window", f.w.Range(), "rows", res.Events, "new", res.New, "bytes", res.Bytes,
		"pages", f.stats.Pages, "quarantined", res.Quarantined, "duplicates", f.stats.Duplicates+f.stats.NearDuplicates,
		"retries", f.stats.Retries, "duration", d.Round(time.Millisecond), "location", res.Location)
	if res.Vanished > 0 {
		log.Warn("the API no longer returns events the sink holds for this window; they are kept",
			"window", f.w.Range(), "vanished", res.Vanished, "rows", res.Events,
			"hint", "a token that lost part of its scope, a retention cut or a deletion at the API; `vaultsink verify` lists them")
	}
	if res.Changed > 0 {
		log.Warn("events came back with other content than the sink holds; the archived copy is kept",
			"window", f.w.Range(), "changed", res.Changed)
	}
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
