package runner

import (
	"fmt"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/internal/durfmt"
)

// Plan lists the windows one run of an org should write, in order:
// first up to lookback already-committed windows before end (re-pulled so
// late events arrive; the sink adds them to what it holds), then every
// closed window from end on. A window [s,e) is closed once e <= now-settle,
// now being the API's clock. end is the checkpoint (or the org's start when
// there is none); windows never begin before start. The two slices are
// returned separately because only the second moves the checkpoint. An end
// that is not on a window boundary is an error: realigning it would pull
// windows that overlap the ones already written.
func Plan(org string, start, end time.Time, size, settle time.Duration, lookback int, now time.Time) (redo, fresh []event.Window, err error) {
	if end.Before(start) {
		end = start
	}
	if !aligned(end, size) {
		return nil, nil, fmt.Errorf("%w: org %s: %s is not on a %s window boundary", ErrCheckpoint, org, fmtTime(end), durfmt.String(size))
	}
	first := end.Add(-time.Duration(lookback) * size)
	if first.Before(start) {
		first = start
	}
	for s := first; s.Before(end); s = s.Add(size) {
		redo = append(redo, event.Window{Org: org, Start: s, End: s.Add(size)})
	}
	horizon := now.Add(-settle)
	for s := end; !s.Add(size).After(horizon); s = s.Add(size) {
		fresh = append(fresh, event.Window{Org: org, Start: s, End: s.Add(size)})
	}
	return redo, fresh, nil
}

// Windows lists the windows that cover [from,to), aligned to size.
func Windows(org string, from, to time.Time, size time.Duration) []event.Window {
	var out []event.Window
	for s := align(from, size); s.Before(to); s = s.Add(size) {
		out = append(out, event.Window{Org: org, Start: s, End: s.Add(size)})
	}
	return out
}

// align rounds t down to a multiple of size in UTC (size divides a day).
func align(t time.Time, size time.Duration) time.Time {
	return t.UTC().Truncate(size)
}
