package runner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/sinks"
)

// RewindowResult sums up a rewindow.
type RewindowResult struct {
	From, To    time.Duration
	Groups      int   // spans rewritten (of the least common multiple of both sizes)
	Skipped     int   // spans already in the new size
	UnitsRead   int   // units read (old size, staged, or already new)
	UnitsStaged int   // new units written
	Rows        int64 // rows written into the new units
	Duplicates  int64 // rows whose id a span already had (kept once)
	End         time.Time
}

// Rewindow rewrites spec's org from the window size its checkpoint records
// to spec.Window, so the org's units never overlap (sinks.Rewriter). The
// checkpoint is marked while it runs (syncs refuse the org) and records the
// new size at the end, moved back to the last whole new window: a sync
// re-pulls the windows after it, and the re-pull adds to what the new
// units hold. Crash-safe and idempotent: run it again until it succeeds.
// A sink without units (BigQuery: the rows are keyed by id) only has the
// checkpoint changed.
func (e *Engine) Rewindow(ctx context.Context, spec OrgSpec) (RewindowResult, error) {
	org := spec.Org.ID
	res := RewindowResult{To: spec.Window}
	cp, err := e.o.Store.Get(ctx, org)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return res, fmt.Errorf("org %s has no checkpoint: nothing was written with another window; a sync starts it with window %s", org, durfmt.String(spec.Window))
	}
	if err != nil {
		return res, fmt.Errorf("read checkpoint: %w", err)
	}
	from := cp.Window.D()
	if r := cp.Rewindow; r != nil {
		if r.To.D() != spec.Window {
			return res, fmt.Errorf("org %s: a rewindow from %s to %s is in progress; set the org's window to %s to finish it (it can be rewindowed again afterwards)",
				org, durfmt.String(r.From.D()), durfmt.String(r.To.D()), durfmt.String(r.To.D()))
		}
		from = r.From.D()
	}
	res.From = from
	if from == 0 {
		return res, fmt.Errorf("org %s: its checkpoint does not record the window its units were written with (made by an older vaultsink); a sync records the configured one", org)
	}
	if from == spec.Window && cp.Rewindow == nil {
		res.End = cp.End
		return res, nil
	}
	if id := spec.Sink.Identity(); cp.Sink != "" && cp.Sink != id {
		return res, fmt.Errorf("org %s: its checkpoint was made for the sink %s, the config writes to %s", org, cp.Sink, id)
	}
	// The lease, and the mark: from now on syncs refuse the org.
	now := e.apiNow(ctx, spec)
	cp, err = e.lease(ctx, cp)
	if err != nil {
		return res, err
	}
	h, ctx := e.hold(ctx, cp, e.log.With("org", org))
	status := Result{Org: org}
	defer func() { h.release(&status) }()
	err = h.update(ctx, func(cp *checkpoint.Checkpoint) {
		if cp.Rewindow == nil {
			cp.Rewindow = &checkpoint.Rewindow{From: checkpoint.Duration(from), To: checkpoint.Duration(spec.Window), Started: now}
		}
	})
	if err != nil {
		status.Status, status.Err = StatusFailed, err
		return res, err
	}
	if rw, ok := spec.Sink.(sinks.Rewriter); ok {
		if err := e.rewrite(ctx, spec, rw, from, h, &res); err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
				err = cause
			}
			status.Status, status.Err = StatusFailed, err
			return res, err
		}
	}
	err = h.update(ctx, func(cp *checkpoint.Checkpoint) {
		cp.Window = checkpoint.Duration(spec.Window)
		cp.End = cp.End.UTC().Truncate(spec.Window)
		if ld := cp.LastData; ld != nil {
			cp.LastData = &checkpoint.Range{Start: ld.Start.UTC().Truncate(spec.Window), End: ld.Start.UTC().Truncate(spec.Window).Add(spec.Window)}
		}
		cp.Rewindow = nil
		res.End = cp.End
	})
	if err != nil {
		status.Status, status.Err = StatusFailed, err
		return res, err
	}
	status.Status = StatusCurrent
	return res, nil
}

// lease takes the org's lease on cp as a sync would, without its guard
// (a rewindow is the way out of a window mismatch).
func (e *Engine) lease(ctx context.Context, cp checkpoint.Checkpoint) (checkpoint.Checkpoint, error) {
	if err := e.leaseFree(cp); err != nil {
		return cp, fmt.Errorf("%w; stop it (or wait) and run the rewindow again", err)
	}
	return e.takeLease(ctx, cp)
}

// rewrite rewrites every span of the least common multiple of both sizes
// that holds a unit, in time order.
func (e *Engine) rewrite(ctx context.Context, spec OrgSpec, rw sinks.Rewriter, from time.Duration, h *holder, res *RewindowResult) error {
	org := spec.Org.ID
	to := spec.Window
	span := lcm(from, to)
	// Every unit of the org, any key, any size, and every staged one.
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	units, err := rw.Units(ctx, org, time.Time{}, far)
	if err != nil {
		return fmt.Errorf("list the units of org %s: %w", org, err)
	}
	staged, err := rw.Staged(ctx, org)
	if err != nil {
		return fmt.Errorf("list the staged units of org %s: %w", org, err)
	}
	groups := map[time.Time][]sinks.UnitInfo{}
	add := func(u sinks.UnitInfo) error {
		if u.Hidden && !u.Staged {
			return nil // a temp file of an interrupted write: never published
		}
		if u.Err != nil {
			return fmt.Errorf("unit %s cannot be read (%v): repair or remove it, then run the rewindow again", u.Key, u.Err)
		}
		w := u.Window
		if w.Start.IsZero() || w.Org != org {
			return fmt.Errorf("unit %s records no window of org %s: move it away, then run the rewindow again", u.Key, org)
		}
		g := w.Start.UTC().Truncate(span)
		if w.End.After(g.Add(span)) {
			return fmt.Errorf("unit %s spans %s, across a %s boundary: run `vaultsink verify` and repair it first", u.Key, w.Range(), durfmt.String(span))
		}
		groups[g] = append(groups[g], u)
		return nil
	}
	for _, u := range units {
		if err := add(u); err != nil {
			return err
		}
	}
	for _, u := range staged {
		u.Staged = true
		if err := add(u); err != nil {
			return err
		}
	}
	starts := make([]time.Time, 0, len(groups))
	for g := range groups {
		starts = append(starts, g)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	for _, g := range starts {
		if err := ctx.Err(); err != nil {
			return err
		}
		us := groups[g]
		done := true
		for _, u := range us {
			if u.Staged || u.Window.End.Sub(u.Window.Start) != to {
				done = false
			}
		}
		if done {
			res.Skipped++
			continue
		}
		if err := e.rewriteSpan(ctx, org, rw, g, span, to, us, h, res); err != nil {
			return fmt.Errorf("rewrite %s [%s, %s): %w", org, g.Format(time.RFC3339), g.Add(span).Format(time.RFC3339), err)
		}
		res.Groups++
	}
	return nil
}

// rewriteSpan rewrites the units us of one span [g, g+span) into units of
// size to: stage every new unit, remove the old ones, publish the staged.
// Readers see the span's rows once or (briefly, between removal and
// publication) not at all; never twice.
func (e *Engine) rewriteSpan(ctx context.Context, org string, rw sinks.Rewriter, g time.Time, span, to time.Duration, us []sinks.UnitInfo, h *holder, res *RewindowResult) error {
	// The new windows of the span, written a few at a time: each pass reads
	// the span's units once and keeps one Parquet writer per window in it.
	const perPass = 24
	var targets []event.Window
	for s := g; s.Before(g.Add(span)); s = s.Add(to) {
		targets = append(targets, event.Window{Org: org, Start: s, End: s.Add(to)})
	}
	res.UnitsRead += len(us)
	seen := event.NewIDSet() // each id once in the span: the first copy read wins
	for i := 0; i < len(targets); i += perPass {
		ws := targets[i:min(i+perPass, len(targets))]
		n, dups, err := e.stagePass(ctx, rw, us, ws, seen)
		if err != nil {
			return err
		}
		res.Rows += n
		res.Duplicates += dups
	}
	// Every new unit is staged and durable: the old units can go, once the
	// lease is proved still ours. A unit already at a new window's key is
	// replaced by Publish, not removed.
	if err := h.check(ctx); err != nil {
		return err
	}
	newKeys := map[string]bool{}
	for _, w := range targets {
		newKeys[sinks.ObjectKey(w)] = true
	}
	for _, u := range us {
		if u.Staged || (u.KeyWindow != (event.Window{}) && newKeys[sinks.ObjectKey(u.KeyWindow)] && u.Window == u.KeyWindow) {
			continue
		}
		if err := rw.Remove(ctx, u); err != nil {
			return fmt.Errorf("remove %s: %w", u.Key, err)
		}
	}
	staged, err := rw.Staged(ctx, org)
	if err != nil {
		return err
	}
	for _, u := range staged {
		w := u.Window
		if w.Start.Before(g) || w.End.After(g.Add(span)) {
			continue
		}
		if err := rw.Publish(ctx, w); err != nil {
			return fmt.Errorf("publish %s: %w", w, err)
		}
		res.UnitsStaged++
	}
	return nil
}

// stagePass stages the units of windows ws from the rows of us, each id
// once (seen: the first copy read wins), and returns the rows written and
// the repeats dropped. A window without rows gets no unit.
func (e *Engine) stagePass(ctx context.Context, rw sinks.Rewriter, us []sinks.UnitInfo, ws []event.Window, seen *event.IDSet) (int64, int64, error) {
	type out struct {
		w    event.Window
		done chan error
		rows chan arrow.RecordBatch
	}
	lo, hi := ws[0].Start, ws[len(ws)-1].End
	var dups int64
	// Each staged unit is written by Stage in its own goroutine, fed
	// through a channel: Stage owns its writer for the duration of fill.
	outs := make([]*out, len(ws))
	var total int64
	start := func(i int) *out {
		o := &out{w: ws[i], done: make(chan error, 1), rows: make(chan arrow.RecordBatch)}
		go func() {
			_, err := rw.Stage(ctx, o.w, func(write func(arrow.RecordBatch) error) error {
				var werr error
				for rec := range o.rows {
					if werr == nil {
						werr = write(rec)
					}
					rec.Release()
				}
				return werr
			})
			for rec := range o.rows { // Stage failed before fill drained them
				rec.Release()
			}
			o.done <- err
		}()
		return o
	}
	finish := func() error {
		var errs []error
		for _, o := range outs {
			if o == nil {
				continue
			}
			close(o.rows)
			errs = append(errs, <-o.done)
		}
		return errors.Join(errs...)
	}
	var rerr error
	for _, u := range us {
		rerr = rw.Rows(ctx, u, func(rec arrow.RecordBatch) error {
			ids, ok := rec.Column(event.ColEventID).(*array.String)
			ts, ok2 := rec.Column(event.ColTimestamp).(*array.Timestamp)
			if !ok || !ok2 {
				return errors.New("unit is not in vaultsink's schema")
			}
			// Rows by target window, in runs.
			n := int(rec.NumRows())
			for i := 0; i < n; {
				t := time.UnixMicro(int64(ts.Value(i))).UTC()
				if t.Before(lo) || !t.Before(hi) {
					if !t.Before(u.Window.Start) && t.Before(u.Window.End) {
						i++ // another pass's window
						continue
					}
					return fmt.Errorf("unit %s holds a row at %s, outside its window %s: run `vaultsink verify` and repair it first", u.Key, t.Format(time.RFC3339Nano), u.Window.Range())
				}
				k := int(t.Sub(lo) / ws[0].End.Sub(ws[0].Start))
				j := i
				for j < n {
					tj := time.UnixMicro(int64(ts.Value(j))).UTC()
					if tj.Before(ws[k].Start) || !tj.Before(ws[k].End) || !seen.Add(ids.Value(j)) {
						break
					}
					j++
				}
				if j > i {
					if outs[k] == nil {
						outs[k] = start(k)
					}
					part := rec.NewSlice(int64(i), int64(j))
					outs[k].rows <- part
					total += int64(j - i)
					i = j
					continue
				}
				if t := time.UnixMicro(int64(ts.Value(i))).UTC(); !t.Before(ws[k].Start) && t.Before(ws[k].End) {
					dups++ // the id was already written in this span
				}
				i++
			}
			return nil
		})
		if rerr != nil {
			rerr = fmt.Errorf("read %s: %w", u.Key, rerr)
			break
		}
	}
	if err := finish(); err != nil && rerr == nil {
		rerr = err
	}
	return total, dups, rerr
}

// lcm is the least common multiple of two window sizes (both divide 24h,
// so it does too).
func lcm(a, b time.Duration) time.Duration {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}
