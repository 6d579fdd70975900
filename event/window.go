package event

import (
	"fmt"
	"time"
)

// Window is one org's half-open time range [Start, End), both UTC. It is the
// unit of work and of idempotence: every sink writes exactly one unit per Window.
type Window struct {
	Org   string
	Start time.Time
	End   time.Time
}

// String renders the window as "org [start,end)" for logs and errors.
func (w Window) String() string {
	return fmt.Sprintf("%s [%s,%s)", w.Org, w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339))
}

// Range renders only the bounds, for the `window` log key.
func (w Window) Range() string {
	return w.Start.UTC().Format(time.RFC3339) + "/" + w.End.UTC().Format(time.RFC3339)
}

// Contains reports whether t lies in [Start, End).
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.Start) && t.Before(w.End)
}

// Quarantined is a record that could not be mapped to Schema. It is never
// dropped: the sink writes it beside the window's data with its raw JSON.
type Quarantined struct {
	Org    string `json:"org_id"`
	Window string `json:"window"`
	Page   int    `json:"page"`
	Reason string `json:"reason"`
	Raw    string `json:"raw"`
}
