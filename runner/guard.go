package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/sinks"
)

// The guards that keep a run from shrinking, overlapping or skipping the
// archive while every command exits 0.

// Errors of an org whose token answers, but not with the org's events.
var (
	// ErrForeignToken: every record of a window names another org.
	ErrForeignToken = errors.New("the token belongs to another org")
	// ErrEmptyAfterData: windows come back empty, and so does a window
	// that held events when it was archived.
	ErrEmptyAfterData = errors.New("the API returns no events for an org that had some")
	// ErrCheckpoint: the checkpoint was made for another window size or
	// sink, is being rewindowed, or lies in the future.
	ErrCheckpoint = errors.New("checkpoint refused")
)

// configPath is the config file for the repair commands errors print.
func (e *Engine) configPath() string {
	if e.o.ConfigPath == "" {
		return "<config>"
	}
	return e.o.ConfigPath
}

// guard refuses a checkpoint this run must not build on, before anything
// is written: one made with another window size (its units would overlap
// the new ones) or for another sink (which has none of its history), one
// in the middle of a rewindow, and one that lies in the future (corrupt,
// or moved by hand: every run would report the org current and pull
// nothing).
func (e *Engine) guard(spec OrgSpec, cp checkpoint.Checkpoint, now time.Time) error {
	org := spec.Org.ID
	cfg := e.configPath()
	if r := cp.Rewindow; r != nil {
		return fmt.Errorf("%w: org %s: a rewrite of its units from %s to %s windows began at %s and did not finish; run `vaultsink rewindow --config %s --org %s` to finish it",
			ErrCheckpoint, org, durfmt.String(r.From.D()), durfmt.String(r.To.D()), r.Started.UTC().Format(time.RFC3339), cfg, org)
	}
	if w := cp.Window.D(); w != 0 && w != spec.Window {
		return fmt.Errorf("%w: org %s: its units were written with %s windows, the config now says window %s; nothing was written. "+
			"Either set the org's window back to %s, or rewrite its units into %s windows with `vaultsink rewindow --config %s --org %s` (crash-safe, idempotent)",
			ErrCheckpoint, org, durfmt.String(w), durfmt.String(spec.Window), durfmt.String(w), durfmt.String(spec.Window), cfg, org)
	}
	if id := spec.Sink.Identity(); cp.Sink != "" && cp.Sink != id {
		return fmt.Errorf("%w: org %s: its checkpoint (%s) was made for the sink %s, the config now writes to %s, which holds none of that history; nothing was written. "+
			"Point the config back at %s; or start the new sink from the org's start with `vaultsink checkpoint reset --config %s --org %s --yes`; "+
			"or, if you copied the history over, `vaultsink checkpoint adopt --config %s --org %s --yes`",
			ErrCheckpoint, org, fmtTime(cp.End), cp.Sink, id, cp.Sink, cfg, org, cfg, org)
	}
	if !cp.End.IsZero() {
		if limit := now.Add(spec.Window); cp.End.After(limit) {
			return fmt.Errorf("%w: org %s: its checkpoint %s lies in the future (now %s): corrupt, or moved too far by hand; every run would pull nothing. "+
				"Move it back to the last window you trust with `vaultsink checkpoint set --config %s --org %s --to <time> --yes`",
				ErrCheckpoint, org, fmtTime(cp.End), fmtTime(now), cfg, org)
		}
		if !aligned(cp.End, spec.Window) {
			return fmt.Errorf("%w: org %s: its checkpoint %s is not on a %s window boundary: it was made with another window size; "+
				"set the org's window back, or move the checkpoint with `vaultsink checkpoint set --config %s --org %s --to <time> --yes`",
				ErrCheckpoint, org, fmtTime(cp.End), durfmt.String(spec.Window), cfg, org)
		}
	}
	return nil
}

// record stamps what the org's units are made with into cp.
func record(spec OrgSpec, cp *checkpoint.Checkpoint) {
	cp.Window = checkpoint.Duration(spec.Window)
	cp.Sink = spec.Sink.Identity()
	if cp.Start.IsZero() || (cp.End.IsZero() && spec.Start.Before(cp.Start)) {
		cp.Start = spec.Start
	}
}

// orgState is one org run's view of its checkpoint and of the API.
type orgState struct {
	e      *Engine
	spec   OrgSpec
	h      *holder
	log    *slog.Logger
	served bool // the API served the org's LastData window during this run
}

// check runs on every filled window before its commit. A window whose
// records all name another org, or that comes back empty while the API
// no longer serves a window that held events, stops the run there: the
// checkpoint stays, and the windows are pulled again once the token is
// fixed. A quiet org is not held up: its empty windows pass as long as the
// API still serves its last window with events.
func (st *orgState) check(f filled) error {
	s := f.stats
	own := s.Rows + s.Held + s.NearDuplicates + s.Duplicates
	org := st.spec.Org.ID
	var end time.Time
	var lastData *checkpoint.Range
	st.h.with(func(cp *checkpoint.Checkpoint) { end, lastData = cp.End, cp.LastData })
	if own == 0 && s.Foreign > 0 {
		st.e.m.Suspect.WithLabelValues(org, "foreign").Inc()
		return fmt.Errorf("%w: org %s: every record of window %s (%d) names org %s; set org %s's token to one of its own. Nothing was written for this window; the checkpoint stays at %s",
			ErrForeignToken, org, f.w.Range(), s.Foreign, s.ForeignOrg, org, fmtTime(end))
	}
	if own > 0 || s.Quarantined > 0 || lastData == nil || st.served {
		return nil
	}
	last := event.Window{Org: org, Start: lastData.Start, End: lastData.End}
	ok, err := st.e.o.Source.Probe(context.WithoutCancel(context.Background()), st.spec.Org, last)
	if err != nil {
		return &stageError{"source", fmt.Errorf("window %s came back empty; asking the API again for %s, which held events: %w", f.w.Range(), last.Range(), err)}
	}
	if ok {
		st.served = true
		return nil
	}
	st.e.m.Suspect.WithLabelValues(org, "empty").Inc()
	return fmt.Errorf("%w: org %s: window %s came back empty, and so does window %s, which held events when it was archived: "+
		"the token has likely lost its org context (the API answers such a token with zero rows, not an error). Check org %s's token; "+
		"the checkpoint stays at %s and the windows are pulled again once the API serves the org's events",
		ErrEmptyAfterData, org, f.w.Range(), last.Range(), org, fmtTime(end))
}

// committed records what a committed window tells about the org.
func (st *orgState) committed(w event.Window, r sinks.Result) {
	if r.Events == 0 {
		return
	}
	st.served = true
	st.h.with(func(cp *checkpoint.Checkpoint) {
		if cp.LastData == nil || w.End.After(cp.LastData.End) {
			cp.LastData = &checkpoint.Range{Start: w.Start, End: w.End}
		}
	})
}

// apiNow is the API's current time, by the Date headers of its answers;
// this host's clock when the API sends none. A window is closed once its
// end is settle behind it, so a skew between the clocks never commits a
// window the API is still filling.
func (e *Engine) apiNow(ctx context.Context, spec OrgSpec) time.Time {
	src := e.o.Source
	if src == nil {
		return e.now()
	}
	off, ok := src.ClockOffset()
	if !ok {
		// One probe per process; orgs that ask meanwhile wait for its
		// answer rather than judge by this host's clock.
		e.clockProbe.Do(func() { src.ProbeClock(ctx, spec.Org) })
		off, ok = src.ClockOffset()
	}
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	if !ok {
		if !e.noDateWarn {
			e.noDateWarn = true
			e.log.Warn("the API's answers carry no Date header: windows are judged closed by this host's clock; keep settle above the worst clock skew")
		}
		return e.now()
	}
	e.m.ClockOffset.Set(off.Seconds())
	if off.Abs() > time.Second && (off-e.clockWarned).Abs() > time.Minute && off.Abs() >= min(e.o.Settle, time.Minute) {
		e.clockWarned = off
		e.log.Warn("the API's clock differs from this host's; windows are judged closed by the API's clock",
			"offset", off.Round(time.Second).String(), "settle", e.o.Settle.String())
	}
	// The API's clock itself (this host's real clock plus the offset the
	// Date headers show), not e.now(): tests give the engine and the
	// simulator one fake clock, and the offset is against the real one.
	return time.Now().Add(off)
}

func aligned(t time.Time, size time.Duration) bool { return t.UTC().Truncate(size).Equal(t) }
