// Package sinks defines the Sink interface every destination implements and
// the registry that builds a sink from its configuration.
//
// The contract that makes vaultsink exactly-once: a sink writes one unit per
// source.Window whose identity is a pure function of the window and the sink's
// configuration (never of the clock, a random id or a counter), nothing of a
// unit is visible to readers before Commit returns nil, and committing the
// same window again replaces the earlier unit instead of adding to it.
package sinks

import (
	"context"
	"errors"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vaultsink/vaultsink/source"
)

// Sink is a destination for windows of events.
//
// Implementations are safe for concurrent use by several goroutines, each
// working on a different window. Two units for the same window must never be
// open at once; the caller (the planner) guarantees it.
type Sink interface {
	// Open starts the unit for w. Nothing is visible until Commit.
	Open(ctx context.Context, w source.Window) (Unit, error)
	// Close releases clients and connections. Units still open are aborted.
	Close() error
}

// Unit is one window being written. Call Write and Quarantine any number of
// times, then exactly one of Commit or Abort. Abort after Commit is a no-op,
// so `defer u.Abort(ctx)` is the idiom. A Unit is used by one goroutine.
type Unit interface {
	// Write appends a batch in source.Schema. The caller keeps ownership of
	// rec and may release it as soon as Write returns.
	Write(ctx context.Context, rec arrow.RecordBatch) error
	// Quarantine records a record that could not be mapped.
	Quarantine(ctx context.Context, q source.Quarantined) error
	// Commit makes the window's unit visible atomically, replacing any earlier
	// unit of the same window. After Commit returns nil the data is durable.
	// A window with no events writes no data object and keeps an existing one:
	// an append-only audit log never loses events, so an empty answer for a
	// window that had data means a token without org context (which fails
	// closed with zero rows) or expired retention, never a reason to delete.
	Commit(ctx context.Context) (Result, error)
	// Abort discards everything written; nothing becomes visible.
	Abort(ctx context.Context) error
}

// Result describes a committed unit.
type Result struct {
	Events      int64  // rows in the data unit
	Quarantined int64  // records in the quarantine unit
	Bytes       int64  // bytes of the data unit (0 when empty)
	Location    string // where the data went: path, s3:// URL or table; "" when empty
}

// BatchCommitter is implemented by sinks whose commits are expensive or
// rate-limited (BigQuery: load-job and DML quotas). The planner then gathers
// up to MaxBatch consecutive units of an org and commits them together; the
// checkpoint advances only after CommitBatch returns nil.
type BatchCommitter interface {
	MaxBatch() int
	// CommitBatch commits all units atomically or none of them.
	CommitBatch(ctx context.Context, units []Unit) ([]Result, error)
}

// Reader lists what a sink holds for a window, for `vaultsink verify`.
type Reader interface {
	// EventIDs calls fn with every event_id stored for w, duplicates included,
	// in no particular order.
	EventIDs(ctx context.Context, w source.Window, fn func(id string) error) error
}

// ErrPermanent marks errors that retrying cannot fix (access denied, bad
// configuration, incompatible schema). Wrap it; test with errors.Is.
var ErrPermanent = errors.New("permanent sink error")

// Config is one sink type's configuration section (`sink:` in the YAML). Its
// concrete type lives in the sink's package and builds the sink: this is the
// only way a sink is chosen. A Config may also implement Defaulter and
// Validator; the config loader calls them.
type Config interface {
	Build(ctx context.Context, env Env) (Sink, error)
}

// Defaulter fills unset fields with defaults; called before Validate.
type Defaulter interface{ SetDefaults() }

// Validator checks a section. Errors name the field (relative to the
// section, e.g. "path") and the bad value.
type Validator interface{ Validate() error }

// Stater is implemented by sinks that can tell cheaply whether a window's
// unit exists (a footer or object metadata), so backfill can resume.
type Stater interface {
	Stat(ctx context.Context, w source.Window) (exists bool, events int64, err error)
}

// Checker is implemented by sinks that can prove they are writable without
// writing a window (check-config --connect).
type Checker interface {
	Check(ctx context.Context) error
}
